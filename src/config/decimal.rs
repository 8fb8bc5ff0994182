//! Decimals in the config: one exact rule for every decimal key, plain or in
//! scientific notation, never through a float (docs/CONFIG.md, "Numbers").

use serde::Deserialize;

use crate::money::{MAX_ABS, SCALE};

/// A decimal written in the config either as a string (`"0.08"`, exact) or as a
/// TOML number (read through its shortest decimal text).
#[derive(Debug, Clone)]
pub struct DecimalText(pub String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            S(String),
            I(i64),
            F(f64),
        }
        Ok(DecimalText(match Any::deserialize(d)? {
            Any::S(s) => s,
            Any::I(i) => i.to_string(),
            Any::F(f) => {
                if !f.is_finite() {
                    return Err(serde::de::Error::custom("not a finite number"));
                }
                ryu::Buffer::new().format_finite(f).to_string()
            }
        }))
    }
}

/// Why a decimal of the config was refused (docs/CONFIG.md, "Numbers").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigDecimalError {
    /// Nothing but spaces.
    #[error("empty value")]
    Empty,
    /// Not plain decimal text nor scientific notation.
    #[error("not a decimal number: write a plain decimal (`0.08`, `-3`, `.5`) or scientific notation (`1e6`, `2.5E-3`)")]
    Invalid,
    /// Beyond ±10^18.
    #[error("out of range: billxfer accepts values up to ±10^18")]
    Overflow,
    /// More significant decimal places than the key keeps.
    #[error(
        "needs {needed} decimal places, but this key takes at most {max} (it is never rounded)"
    )]
    TooPrecise {
        /// Places the value needs (trailing zeros do not count).
        needed: u64,
        /// Places the key allows.
        max: u32,
    },
}

/// A decimal read exactly from config text: `±digits × 10^exp`, where `digits`
/// holds the significant digits (no leading or trailing zeros; empty for zero).
///
/// The one syntax of every decimal in the config: optional sign, digits with at
/// most one `.` (at least one digit), then optionally `e`/`E`, an optional sign
/// and digits. No float is involved; the value is converted exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactDecimal {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

/// Exponents beyond this are clamped: the value is then far out of range or far
/// below any key's places either way, and the arithmetic stays small.
const EXP_CLAMP: i64 = 1_000_000_000;

impl ExactDecimal {
    /// Parses decimal text (surrounding spaces allowed).
    pub fn parse(text: &str) -> std::result::Result<ExactDecimal, ConfigDecimalError> {
        let s = text.trim().as_bytes();
        if s.is_empty() {
            return Err(ConfigDecimalError::Empty);
        }
        let mut i = 0;
        let negative = match s[0] {
            b'-' => {
                i = 1;
                true
            }
            b'+' => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut all = Vec::new();
        let mut frac_len: i64 = 0;
        let mut seen_dot = false;
        while i < s.len() {
            match s[i] {
                c @ b'0'..=b'9' => {
                    all.push(c - b'0');
                    if seen_dot {
                        frac_len += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                b'e' | b'E' => break,
                _ => return Err(ConfigDecimalError::Invalid),
            }
            i += 1;
        }
        if all.is_empty() {
            return Err(ConfigDecimalError::Invalid);
        }
        let mut exp: i64 = 0;
        if i < s.len() {
            i += 1; // the `e`
            let exp_negative = match s.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            if i >= s.len() {
                return Err(ConfigDecimalError::Invalid);
            }
            for &c in &s[i..] {
                if !c.is_ascii_digit() {
                    return Err(ConfigDecimalError::Invalid);
                }
                exp = (exp * 10 + i64::from(c - b'0')).min(EXP_CLAMP);
            }
            if exp_negative {
                exp = -exp;
            }
        }
        // value = all × 10^(exp - frac_len); keep only the significant digits.
        let start = all.iter().position(|&d| d != 0).unwrap_or(all.len());
        let end = all.iter().rposition(|&d| d != 0).map_or(start, |e| e + 1);
        let trailing = (all.len() - end) as i64;
        let digits = all[start..end].to_vec();
        let exp = if digits.is_empty() {
            0
        } else {
            exp - frac_len + trailing
        };
        Ok(ExactDecimal {
            negative: negative && !digits.is_empty(),
            digits,
            exp,
        })
    }

    /// Decimal places the value needs (0 for integers).
    pub fn places(&self) -> u64 {
        if self.exp < 0 {
            self.exp.unsigned_abs()
        } else {
            0
        }
    }

    /// `±digits × 10^shift` as an integer (`shift >= 0`), if it stays within
    /// `limit` in magnitude.
    fn scaled(&self, shift: i64, limit: i128) -> std::result::Result<i128, ConfigDecimalError> {
        // A number of more than 39 digits cannot fit in an i128.
        if self.digits.len() as i64 + shift > 39 {
            return Err(ConfigDecimalError::Overflow);
        }
        let mut v: i128 = 0;
        for &d in &self.digits {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(d)))
                .ok_or(ConfigDecimalError::Overflow)?;
        }
        let v = 10i128
            .checked_pow(shift as u32)
            .and_then(|f| v.checked_mul(f))
            .filter(|v| *v <= limit)
            .ok_or(ConfigDecimalError::Overflow)?;
        Ok(if self.negative { -v } else { v })
    }

    /// The value in internal units (10^-10), refusing more than `max_places`
    /// decimal places (never rounding) and magnitudes above 10^18.
    pub fn to_fixed(&self, max_places: u32) -> std::result::Result<i128, ConfigDecimalError> {
        let max_places = max_places.min(SCALE);
        if self.digits.is_empty() {
            return Ok(0);
        }
        if self.places() > u64::from(max_places) {
            return Err(ConfigDecimalError::TooPrecise {
                needed: self.places(),
                max: max_places,
            });
        }
        self.scaled(self.exp + i64::from(SCALE), MAX_ABS)
    }

    /// The value in hundredths, rounded half away from zero at the 2nd decimal
    /// (how Billing Conductor treats `ModifierPercentage`), in one exact step.
    pub fn to_hundredths_rounded(&self) -> std::result::Result<i64, ConfigDecimalError> {
        let shift = self.exp + 2;
        if shift >= 0 {
            let v = self.scaled(shift, MAX_ABS)?;
            return i64::try_from(v).map_err(|_| ConfigDecimalError::Overflow);
        }
        // Drop the last `k` significant digits; the first dropped one decides.
        let k = shift.unsigned_abs();
        let n = self.digits.len() as u64;
        let (kept, first_dropped) = if k > n {
            (ExactDecimal::zero(), 0)
        } else {
            let cut = (n - k) as usize;
            let kept = ExactDecimal {
                negative: false,
                digits: self.digits[..cut].to_vec(),
                exp: 0,
            };
            (kept, self.digits[cut])
        };
        let mut v = kept.scaled(0, MAX_ABS)?;
        if first_dropped >= 5 {
            v += 1;
        }
        let v = i64::try_from(v).map_err(|_| ConfigDecimalError::Overflow)?;
        Ok(if self.negative { -v } else { v })
    }

    fn zero() -> ExactDecimal {
        ExactDecimal {
            negative: false,
            digits: Vec::new(),
            exp: 0,
        }
    }
}
