//! Exact fixed-point money, quantities, rates and percentages.
//!
//! Every amount inside billxfer is an `i128` counting units of 10^-10 (the
//! internal scale, [`SCALE`]). Costs, rates and usage quantities all use that
//! scale, so a line amount is `quantity × rate / 10^10`, rounded half away from
//! zero at the 10th decimal: the only rounding that happens before the invoice.
//! Rounding to the currency's minor unit happens once per invoice line, in
//! [`round_to_minor`], with the configured [`Rounding`] mode.
//!
//! Input decimals arrive either as text (CSV, CUR 2.0 rate strings, config) and
//! are parsed exactly by [`parse_fixed`], or as IEEE doubles (CUR Parquet cost
//! columns) and are converted by [`fixed_from_f64`]: the double is written as
//! its shortest round-trip decimal text, and that text is parsed exactly. This is
//! the only place a float touches money, and it is documented in docs/DOMAIN.md.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Decimal places of the internal fixed-point scale.
pub const SCALE: u32 = 10;
/// 10^SCALE: one currency unit (one dollar) in internal units.
pub const ONE: i128 = 10_000_000_000;

/// Why a decimal could not be turned into a fixed-point value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("empty value")]
    Empty,
    #[error("not a decimal number")]
    Invalid,
    #[error("not a finite number (NaN or infinite)")]
    NotFinite,
    #[error("out of range: billxfer accepts amounts up to ±10^18")]
    Overflow,
}

/// How an amount is rounded to the currency's minor unit on an invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// 2.345 -> 2.35, -2.345 -> -2.35 (the default; commercial rounding).
    #[default]
    HalfAwayFromZero,
    /// Banker's rounding: 2.345 -> 2.34, 2.355 -> 2.36, -2.345 -> -2.34.
    HalfEven,
    /// Truncate: 2.349 -> 2.34, -2.349 -> -2.34.
    TowardZero,
    /// 2.341 -> 2.35, -2.341 -> -2.35.
    AwayFromZero,
}

/// Divides `value` by `divisor` (> 0), rounding the quotient with `mode`.
///
/// Values that fit in 64 bits take a 64-bit path: i128 division is a library
/// call, while a 64-bit division by a constant divisor compiles to a multiply.
#[inline(always)]
pub fn div_round(value: i128, divisor: i128, mode: Rounding) -> i128 {
    debug_assert!(divisor > 0);
    if let (Ok(v), Ok(d)) = (i64::try_from(value), i64::try_from(divisor)) {
        return div_round_64(v, d, mode) as i128;
    }
    let q = value / divisor;
    let r = value % divisor;
    if r == 0 {
        return q;
    }
    let sign = if value < 0 { -1 } else { 1 };
    if round_away(
        r.unsigned_abs() * 2,
        divisor.unsigned_abs(),
        q % 2 != 0,
        mode,
    ) {
        q + sign
    } else {
        q
    }
}

#[inline(always)]
fn div_round_64(value: i64, divisor: i64, mode: Rounding) -> i64 {
    let q = value / divisor;
    let r = value % divisor;
    if r == 0 {
        return q;
    }
    let sign = if value < 0 { -1 } else { 1 };
    if round_away(
        r.unsigned_abs() as u128 * 2,
        divisor.unsigned_abs() as u128,
        q % 2 != 0,
        mode,
    ) {
        q + sign
    } else {
        q
    }
}

/// Whether a quotient with remainder `twice_r / 2` of `d` rounds away from zero.
#[inline(always)]
fn round_away(twice_r: u128, d: u128, q_odd: bool, mode: Rounding) -> bool {
    match mode {
        Rounding::TowardZero => false,
        Rounding::AwayFromZero => true,
        Rounding::HalfAwayFromZero => twice_r >= d,
        Rounding::HalfEven => twice_r > d || (twice_r == d && q_odd),
    }
}

/// `a × b / 10^SCALE`, rounded half away from zero; `None` on overflow.
#[inline]
pub fn mul_fixed(a: i128, b: i128) -> Option<i128> {
    let p = a.checked_mul(b)?;
    Some(div_one_rounded(p))
}

/// `p / ONE`, rounded half away from zero, without a 128-bit division for most
/// products (a usage quantity times a rate under about 1.9 × 10^22 units, $189).
///
/// ONE = 10^10 = 2^10 × 5^10, and for integers ⌊⌊u / 2^10⌋ / 5^10⌋ = ⌊u / 10^10⌋:
/// below 2^74 the shifted value fits 64 bits, where a division by the constant
/// 5^10 compiles to a multiplication. Larger products take [`div_round`].
#[inline(always)]
fn div_one_rounded(p: i128) -> i128 {
    const FIVE_POW_10: u64 = 9_765_625;
    let u = p.unsigned_abs();
    if u >= 1 << 74 {
        return div_round(p, ONE, Rounding::HalfAwayFromZero);
    }
    let q = ((u >> 10) as u64) / FIVE_POW_10;
    // The remainder is below 10^10 < 2^34: no overflow in 64 bits.
    let r = (u - q as u128 * ONE as u128) as u64;
    let q = (q + u64::from(2 * r >= ONE as u64)) as i128;
    if p < 0 {
        -q
    } else {
        q
    }
}

/// Rounds an internal amount to the minor unit (`decimals` places) of a currency,
/// returning the result still at the internal scale.
pub fn round_to_minor(value: i128, decimals: u32, mode: Rounding) -> i128 {
    let unit = 10i128.pow(SCALE - decimals.min(SCALE));
    div_round(value, unit, mode) * unit
}

/// Parses decimal text (`-12.5`, `+3`, `.25`, `1E-7`, `4.5e3`) into internal units.
///
/// Digits past the 10th decimal are rounded half away from zero, so the result
/// is exact whenever the text has at most 10 decimals.
pub fn parse_fixed(text: &str) -> Result<i128, DecimalError> {
    parse_fixed_bytes(text.trim().as_bytes())
}

/// Byte-level parser behind [`parse_fixed`]; no allocation.
pub fn parse_fixed_bytes(s: &[u8]) -> Result<i128, DecimalError> {
    if s.is_empty() {
        return Err(DecimalError::Empty);
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
    // Collect up to 38 significant digits as an integer plus a decimal exponent.
    let mut digits: i128 = 0;
    let mut n_digits = 0u32;
    let mut exp10: i32 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    // When more digits than fit arrive, remember the first dropped one for rounding.
    let mut dropped_first: Option<u8> = None;
    while i < s.len() {
        let c = s[i];
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                let d = (c - b'0') as i128;
                if n_digits < 37 {
                    if digits != 0 || d != 0 {
                        n_digits += 1;
                    }
                    digits = digits * 10 + d;
                    if seen_dot {
                        exp10 -= 1;
                    }
                } else {
                    // Only the first dropped digit decides rounding (half away from zero).
                    if dropped_first.is_none() {
                        dropped_first = Some(c - b'0');
                    }
                    if !seen_dot {
                        exp10 += 1;
                    }
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'e' | b'E' => break,
            _ => return Err(DecimalError::Invalid),
        }
        i += 1;
    }
    if !seen_digit {
        return Err(DecimalError::Invalid);
    }
    if i < s.len() {
        // Exponent part.
        i += 1;
        let mut exp_neg = false;
        if i < s.len() && (s[i] == b'-' || s[i] == b'+') {
            exp_neg = s[i] == b'-';
            i += 1;
        }
        if i >= s.len() {
            return Err(DecimalError::Invalid);
        }
        let mut e: i32 = 0;
        while i < s.len() {
            let c = s[i];
            if !c.is_ascii_digit() {
                return Err(DecimalError::Invalid);
            }
            e = e.saturating_mul(10).saturating_add((c - b'0') as i32);
            i += 1;
        }
        exp10 = exp10.saturating_add(if exp_neg { -e } else { e });
    }
    if digits == 0 {
        return Ok(0);
    }
    // value = digits × 10^exp10; internal = value × 10^SCALE.
    let shift = exp10.saturating_add(SCALE as i32);
    let magnitude = if shift >= 0 {
        if shift > 38 {
            return Err(DecimalError::Overflow);
        }
        let factor = 10i128
            .checked_pow(shift as u32)
            .ok_or(DecimalError::Overflow)?;
        let v = digits.checked_mul(factor).ok_or(DecimalError::Overflow)?;
        // Digits dropped beyond 37 significant ones sit at or left of the decimal
        // point here, which means the number is far beyond range anyway.
        if dropped_first.is_some() && shift > 0 {
            return Err(DecimalError::Overflow);
        }
        match dropped_first {
            Some(first) if first >= 5 => v.checked_add(1).ok_or(DecimalError::Overflow)?,
            _ => v,
        }
    } else {
        let down = (-shift) as u32;
        if down > 38 {
            0
        } else {
            let divisor = 10i128.pow(down);
            let mut v = digits / divisor;
            let r = digits % divisor;
            // Half away from zero on the magnitude; dropped digits only ever sit
            // below the retained ones, so they cannot change a non-tie outcome,
            // and a tie with non-zero dropped digits rounds up either way.
            if r * 2 >= divisor {
                v += 1;
            }
            v
        }
    };
    if magnitude > MAX_ABS {
        return Err(DecimalError::Overflow);
    }
    Ok(if negative { -magnitude } else { magnitude })
}

/// Largest magnitude accepted from input: 10^28 units (10^18 dollars), which
/// leaves room for sums of billions of lines and products with rates.
pub const MAX_ABS: i128 = 10i128.pow(28);

/// Converts a CUR double to internal units by its shortest round-trip decimal text.
///
/// `0.1` becomes exactly `0.1` (not 0.1000000000000000055…), which is what AWS
/// meant when it wrote the value. NaN and infinities are refused.
#[inline]
pub fn fixed_from_f64(v: f64) -> Result<i128, DecimalError> {
    if !v.is_finite() {
        return Err(DecimalError::NotFinite);
    }
    match fixed_from_f64_fast(v) {
        Some(x) => Ok(x),
        None => fixed_from_f64_text(v),
    }
}

/// The reference path of [`fixed_from_f64`]: shortest round-trip text, parsed exactly.
#[cold]
#[inline(never)]
pub fn fixed_from_f64_text(v: f64) -> Result<i128, DecimalError> {
    if !v.is_finite() {
        return Err(DecimalError::NotFinite);
    }
    let mut buf = ryu::Buffer::new();
    parse_fixed_bytes(buf.format_finite(v).as_bytes())
}

/// Integer-only path giving the same result as [`fixed_from_f64_text`], or `None`
/// when it cannot be sure (then the text path decides).
///
/// The double is exactly `m × 2^-k`. Its value at the internal scale is
/// `m × 10^10 × 2^-k = m × 5^10 × 2^-s` with `s = k - 10`; rounding that half away
/// from zero gives the answer of the text path unless a rounding boundary (an odd
/// multiple of half a unit) lies within one ulp of the double, because the shortest
/// round-trip text is within half an ulp of the double. One ulp is `5^10` units of
/// the remainder below the shift, so such near-ties are left to the text path.
/// Below `s = 25` half a step is itself within `5^10` of every remainder: doubles
/// from 2^18 up (whole numbers among them, whose shortest text can drop digits
/// from 2^54 on) always take the text path.
#[inline]
pub fn fixed_from_f64_fast(v: f64) -> Option<i128> {
    match fixed_from_f64_fast_units(v) {
        FAST_UNDECIDED => None,
        x => Some(x as i128),
    }
}

/// What [`fixed_from_f64_fast_units`] returns for a double it leaves to the text
/// path (never a result: those are below 2^53 in magnitude).
pub const FAST_UNDECIDED: i64 = i64::MIN;

/// [`fixed_from_f64_fast`] as a plain 64-bit value, [`FAST_UNDECIDED`] for `None`:
/// a column's loop then keeps the result in one register, not a 32-byte `Option<i128>`.
#[inline(always)]
pub fn fixed_from_f64_fast_units(v: f64) -> i64 {
    const FIVE_POW_10: u64 = 9_765_625;
    const NONE: i64 = FAST_UNDECIDED;
    if v == 0.0 {
        return 0;
    }
    let bits = v.to_bits();
    let negative = bits >> 63 == 1;
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    if exp_bits == 0 {
        // Subnormal: below 1e-307, rounds to 0 whatever the text.
        return 0;
    }
    let m = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    let s = 1075 - exp_bits - 10; // v × 10^10 = m × 5^10 × 2^-s
    if s < 25 {
        return NONE;
    }
    if s >= 90 {
        return 0; // below 2^-13 internal units
    }
    let product = m as u128 * FIVE_POW_10 as u128; // < 2^77
    let (quotient, round_up) = if s < 64 {
        // The common case (amounts from about 5e-7 to 262,144), in 64-bit halves:
        // the quotient is below 2^52 and the remainder fits in the low half.
        let (low, high) = (product as u64, (product >> 64) as u64);
        let quotient = (low >> s) | (high << (64 - s));
        let remainder = low & ((1u64 << s) - 1);
        let half = 1u64 << (s - 1);
        if remainder.abs_diff(half) <= FIVE_POW_10 {
            return NONE;
        }
        (quotient, remainder > half)
    } else {
        let remainder = product & ((1u128 << s) - 1);
        let half = 1u128 << (s - 1);
        if remainder.abs_diff(half) <= FIVE_POW_10 as u128 {
            return NONE;
        }
        ((product >> s) as u64, remainder > half)
    };
    // quotient < 2^52 (see above): the sum and its negation fit an i64.
    let x = (quotient + round_up as u64) as i64;
    if negative {
        -x
    } else {
        x
    }
}

/// Writes an internal amount as plain decimal text with exactly `places` decimals
/// (the value must already be a multiple of 10^(SCALE-places) or is truncated).
pub fn format_fixed(value: i128, places: u32) -> String {
    let places = places.min(SCALE);
    let neg = value < 0;
    let abs = value.unsigned_abs();
    let one = ONE as u128;
    let int = abs / one;
    let frac = abs % one;
    let frac = frac / 10u128.pow(SCALE - places);
    let sign = if neg && (int != 0 || frac != 0) {
        "-"
    } else {
        ""
    };
    if places == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac:0width$}", width = places as usize)
    }
}

/// Writes an internal amount with all 10 decimals, trailing zeros trimmed
/// (but at least 2 decimals), for audit figures that must not lose precision.
pub fn format_fixed_exact(value: i128) -> String {
    let s = format_fixed(value, SCALE);
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let trimmed = frac.trim_end_matches('0');
    if trimmed.len() < 2 {
        format!("{int}.{:0<2}", trimmed)
    } else {
        format!("{int}.{trimmed}")
    }
}

/// A money amount in internal units (10^-10 of the currency), exact.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Money(pub i128);

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(0);

    /// Adds, returning `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Subtracts, returning `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Σ of amounts, `None` on overflow.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |a, b| a.checked_add(b))
    }

    /// Rounds to the minor unit of a currency with `decimals` places.
    pub fn round(self, decimals: u32, mode: Rounding) -> Money {
        Money(round_to_minor(self.0, decimals, mode))
    }

    /// Text with `decimals` places (e.g. `"12.34"`).
    pub fn to_string_places(self, decimals: u32) -> String {
        format_fixed(self.0, decimals)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_fixed_exact(self.0))
    }
}

/// A percentage with two decimals, held in hundredths of a percent (1% = 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(pub i64);

impl Percent {
    /// Parses a percentage and rounds it to 2 decimals half away from zero, as
    /// Billing Conductor does for `ModifierPercentage` (7.126 -> 7.13).
    pub fn parse_rounded(text: &str) -> Result<Percent, DecimalError> {
        let v = parse_fixed(text)?;
        // internal scale 10 -> hundredths: divide by 10^8.
        let h = div_round(v, 100_000_000, Rounding::HalfAwayFromZero);
        i64::try_from(h)
            .map(Percent)
            .map_err(|_| DecimalError::Overflow)
    }

    /// `amount × percent / 100`, rounded half away from zero at the internal scale.
    pub fn of(self, amount: i128) -> Option<i128> {
        let p = amount.checked_mul(self.0 as i128)?;
        Some(div_round(p, 10_000, Rounding::HalfAwayFromZero))
    }

    /// `amount × (100 + signed_percent) / 100`, the markup (positive) or discount
    /// (negative) factor applied to a public price.
    #[inline(always)]
    pub fn adjust(amount: i128, signed_hundredths: i64) -> Option<i128> {
        let factor = 10_000i128 + signed_hundredths as i128;
        // Most lines: the product fits 64 bits (|amount| < 2^47, |factor| < 2^16), and
        // one machine multiplication gives what the checked 128-bit one would.
        if amount.unsigned_abs() < 1 << 47 && factor.unsigned_abs() < 1 << 16 {
            let p = amount as i64 * factor as i64;
            return Some(div_round_64(p, 10_000, Rounding::HalfAwayFromZero) as i128);
        }
        let p = amount.checked_mul(factor)?;
        Some(div_round(p, 10_000, Rounding::HalfAwayFromZero))
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let neg = self.0 < 0;
        let a = self.0.unsigned_abs();
        write!(
            f,
            "{}{}.{:02}",
            if neg { "-" } else { "" },
            a / 100,
            a % 100
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_decimals_exactly() {
        assert_eq!(parse_fixed("1.6823086974"), Ok(16_823_086_974));
        assert_eq!(parse_fixed("-0.5"), Ok(-5_000_000_000));
        assert_eq!(parse_fixed("+3"), Ok(3 * ONE));
        assert_eq!(parse_fixed(".25"), Ok(2_500_000_000));
        assert_eq!(parse_fixed("0"), Ok(0));
        assert_eq!(parse_fixed("000.000"), Ok(0));
    }

    #[test]
    fn parses_exponents() {
        assert_eq!(parse_fixed("1E-7"), Ok(1_000));
        assert_eq!(parse_fixed("4.5e3"), Ok(4500 * ONE));
        assert_eq!(parse_fixed("1e-11"), Ok(0));
        assert_eq!(parse_fixed("5e-11"), Ok(1)); // half away from zero
        assert_eq!(parse_fixed("-5e-11"), Ok(-1));
    }

    #[test]
    fn rounds_digits_past_the_tenth_half_away_from_zero() {
        assert_eq!(parse_fixed("0.00000000004"), Ok(0));
        assert_eq!(parse_fixed("0.00000000005"), Ok(1));
        assert_eq!(parse_fixed("-0.00000000015"), Ok(-2));
        assert_eq!(parse_fixed("0.123456789049999999999999"), Ok(1_234_567_890));
    }

    #[test]
    fn refuses_garbage_and_huge_values() {
        assert_eq!(parse_fixed(""), Err(DecimalError::Empty));
        assert_eq!(parse_fixed("abc"), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("1.2.3"), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("1e"), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("-"), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("NaN"), Err(DecimalError::Invalid));
        assert_eq!(parse_fixed("1e40"), Err(DecimalError::Overflow));
        assert_eq!(parse_fixed("1e18"), Ok(MAX_ABS));
        assert_eq!(parse_fixed("1.1e18"), Err(DecimalError::Overflow));
        assert_eq!(
            parse_fixed("99999999999999999999999999999999999999999999"),
            Err(DecimalError::Overflow)
        );
    }

    #[test]
    fn doubles_convert_by_shortest_round_trip_text() {
        assert_eq!(fixed_from_f64(0.1), Ok(1_000_000_000));
        assert_eq!(fixed_from_f64(1.6823086974), Ok(16_823_086_974));
        assert_eq!(fixed_from_f64(1e-7), Ok(1_000));
        assert_eq!(fixed_from_f64(-2.5), Ok(-25_000_000_000));
        assert_eq!(fixed_from_f64(f64::NAN), Err(DecimalError::NotFinite));
        assert_eq!(fixed_from_f64(f64::INFINITY), Err(DecimalError::NotFinite));
        assert_eq!(fixed_from_f64(1e300), Err(DecimalError::Overflow));
    }

    #[test]
    fn fast_double_conversion_agrees_with_the_text_rule() {
        // Decimal-looking values, products of rates, tiny and large ones, and ties.
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut checked = 0;
        for _ in 0..200_000 {
            let r = next();
            let v = match r % 4 {
                0 => f64::from_bits(r >> 2 | 0x3000_0000_0000_0000),
                1 => (r % 10_000_000_000) as f64 / 10f64.powi((r % 13) as i32),
                2 => (r % 1_000_000) as f64 * 0.0000166667,
                _ => ((r % 2_000_000) as f64 - 1_000_000.0) / 3.0,
            };
            if !v.is_finite() || v.abs() > 1e17 {
                continue;
            }
            if let Some(fast) = fixed_from_f64_fast(v) {
                assert_eq!(Ok(fast), fixed_from_f64_text(v), "{v:e}");
                checked += 1;
            }
        }
        assert!(checked > 150_000, "fast path taken {checked} times");
        for v in [
            0.1,
            7.488,
            1.6823086974,
            -0.7488,
            5e-11,
            1.5e-10,
            2.5e-10,
            123456.00000000005,
            // Whole doubles from 2^54 on: the shortest text (7.205759403792795e16) is not
            // the double's exact value (72057594037927952); the text is the rule.
            72_057_594_037_927_952.0,
            4_503_599_627_370_497.0,
            262_144.000_000_000_03,
        ] {
            assert_eq!(fixed_from_f64(v), fixed_from_f64_text(v), "{v}");
        }
        assert_eq!(
            fixed_from_f64(72_057_594_037_927_952.0),
            Ok(72_057_594_037_927_950 * ONE)
        );
    }

    #[test]
    fn rounding_modes_at_exact_halves_both_signs() {
        let c = |v: &str, m| format_fixed(round_to_minor(parse_fixed(v).unwrap(), 2, m), 2);
        assert_eq!(c("2.345", Rounding::HalfAwayFromZero), "2.35");
        assert_eq!(c("-2.345", Rounding::HalfAwayFromZero), "-2.35");
        assert_eq!(c("2.345", Rounding::HalfEven), "2.34");
        assert_eq!(c("2.355", Rounding::HalfEven), "2.36");
        assert_eq!(c("-2.345", Rounding::HalfEven), "-2.34");
        assert_eq!(c("2.349", Rounding::TowardZero), "2.34");
        assert_eq!(c("-2.349", Rounding::TowardZero), "-2.34");
        assert_eq!(c("2.341", Rounding::AwayFromZero), "2.35");
        assert_eq!(c("-2.341", Rounding::AwayFromZero), "-2.35");
        assert_eq!(c("2.344999", Rounding::HalfAwayFromZero), "2.34");
    }

    #[test]
    fn formats_amounts() {
        assert_eq!(format_fixed(16_823_086_974, 2), "1.68");
        assert_eq!(format_fixed(-5_000_000, 2), "0.00");
        assert_eq!(format_fixed(-ONE, 2), "-1.00");
        assert_eq!(format_fixed_exact(16_823_086_974), "1.6823086974");
        assert_eq!(format_fixed_exact(ONE), "1.00");
        assert_eq!(format_fixed_exact(-15 * ONE / 10), "-1.50");
    }

    #[test]
    fn modifier_percent_rounds_to_two_places() {
        // Shared reference T-D4.
        assert_eq!(Percent::parse_rounded("7.126").unwrap(), Percent(713));
        assert_eq!(Percent::parse_rounded("7.124").unwrap(), Percent(712));
        assert_eq!(Percent(713).to_string(), "7.13");
    }

    #[test]
    fn fixed_multiplication_rounds_half_away() {
        // 100 h x 0.10 = 10.00
        assert_eq!(mul_fixed(100 * ONE, ONE / 10), Some(10 * ONE));
        // 1.5e-9 x 0.1 = 1.5e-10 -> 2e-10, half away from zero for both signs
        assert_eq!(mul_fixed(15, ONE / 10), Some(2));
        assert_eq!(mul_fixed(-15, ONE / 10), Some(-2));
        assert_eq!(mul_fixed(14, ONE / 10), Some(1));
        assert_eq!(mul_fixed(i128::MAX, 2), None);
    }

    /// `amount × (10,000 + hundredths) / 10,000`, half away from zero, by 256-bit
    /// integers and the definition (not by [`div_round`]).
    fn adjusted_by_definition(amount: i128, hundredths: i64) -> Option<i128> {
        use arrow::datatypes::i256;
        let p =
            i256::from_i128(amount).checked_mul(i256::from_i128(10_000 + hundredths as i128))?;
        let d = i256::from_i128(10_000);
        let (q, r) = (p / d, p % d);
        let away = r.wrapping_abs() * i256::from_i128(2) >= d;
        let q = if away {
            q + if p < i256::ZERO {
                i256::MINUS_ONE
            } else {
                i256::ONE
            }
        } else {
            q
        };
        q.to_i128()
    }

    /// `a × b / 10^10`, half away from zero, by 256-bit integers and the definition.
    fn mul_fixed_by_definition(a: i128, b: i128) -> Option<i128> {
        use arrow::datatypes::i256;
        let p = i256::from_i128(a).checked_mul(i256::from_i128(b))?;
        p.to_i128()?;
        let d = i256::from_i128(ONE);
        let (q, r) = (p / d, p % d);
        let away = r.wrapping_abs() * i256::from_i128(2) >= d;
        let sign = if p < i256::ZERO {
            i256::MINUS_ONE
        } else {
            i256::ONE
        };
        (if away { q + sign } else { q }).to_i128()
    }

    proptest::proptest! {
        /// `mul_fixed` gives the definition's figure on its 64-bit division path, on
        /// the 128-bit one, around the 2^74 bound between them and at exact halves.
        #[test]
        fn mul_fixed_is_the_definition_on_both_paths(
            a in proptest::prop_oneof![-(1i128 << 40)..1 << 40, -(1i128 << 70)..1 << 70],
            b in proptest::prop_oneof![-(1i128 << 34)..1 << 34, -(1i128 << 60)..1 << 60],
            near_bound in -(1i128 << 20)..1 << 20,
            half_units in -(1i128 << 50)..1 << 50,
        ) {
            proptest::prop_assert_eq!(mul_fixed(a, b), mul_fixed_by_definition(a, b));
            // a × 1 straddling ±2^74, and odd multiples of half a unit (ONE / 2 × odd).
            for p in [(1i128 << 74) + near_bound, -(1i128 << 74) + near_bound, (2 * half_units + 1) * (ONE / 2)] {
                proptest::prop_assert_eq!(mul_fixed(p, 1), mul_fixed_by_definition(p, 1));
            }
        }
    }

    proptest::proptest! {
        /// The 64-bit path of `Percent::adjust` and its checked 128-bit path both give
        /// the definition's figure, around the 2^47 and 2^16 bounds between them too.
        #[test]
        fn adjust_is_the_definition_on_both_paths(
            magnitude in proptest::prop_oneof![0i128..1 << 20, (1i128 << 47) - 4096..(1i128 << 47) + 4096, 0i128..1 << 100],
            negative: bool,
            hundredths in proptest::prop_oneof![-10_000i64..10_000, 55_000i64..56_000, -70_000i64..-65_000],
        ) {
            let amount = if negative { -magnitude } else { magnitude };
            proptest::prop_assert_eq!(Percent::adjust(amount, hundredths), adjusted_by_definition(amount, hundredths));
        }
    }

    #[test]
    fn adjust_rounds_halves_away_from_zero() {
        // 0.0000000005 units... in internal units: 5 × 1.10 = 5.5 -> 6, -5.5 -> -6; 4 × 1.125 -> 4.5 -> 5.
        assert_eq!(Percent::adjust(5, 1_000), Some(6));
        assert_eq!(Percent::adjust(-5, 1_000), Some(-6));
        assert_eq!(Percent::adjust(4, 1_250), Some(5));
        assert_eq!(Percent::adjust(100 * ONE, -1_550), Some(845 * ONE / 10));
    }
}
