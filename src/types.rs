//! Domain identifiers that are valid by construction: parse, don't validate.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A 12-digit AWS account id, kept as text so leading zeros survive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// Parses a 12-digit account id.
    pub fn parse(text: &str) -> Result<AccountId, String> {
        AccountId::parse_padded(text).map(|(id, _)| id)
    }

    /// Parses an account id, left-padding 1 to 11 digits with zeros to 12: AWS ids are
    /// 12 digits, and spreadsheets and some exports drop the leading zeros. The flag says
    /// whether padding happened (callers warn once per distinct id).
    pub fn parse_padded(text: &str) -> Result<(AccountId, bool), String> {
        let t = text.trim();
        if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "`{text}` is not an AWS account id (12 digits; shorter digit strings are zero-padded)"
            ));
        }
        Ok((AccountId(format!("{t:0>12}")), t.len() < 12))
    }

    /// The 12-digit form of an input cell, if it is a digit string that lost leading zeros.
    pub fn padded_text(text: &str) -> Option<String> {
        let t = text.trim();
        (!t.is_empty() && t.len() < 12 && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| format!("{t:0>12}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AccountId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An organization id chosen by the partner; it names output files and folders,
/// so it is restricted to `[A-Za-z0-9_-]`, 1 to 64 characters, and cannot start with `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    /// Parses an org id, refusing anything that could escape an output folder.
    pub fn parse(text: &str) -> Result<OrgId, String> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(OrgId(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not a valid org id: use 1 to 64 of A-Z a-z 0-9 _ - (it names output files), not starting with `-`"
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OrgId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A calendar month, the unit AWS bills by (`YYYY-MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillingPeriod {
    year: u16,
    month: u8,
}

impl BillingPeriod {
    /// Builds a period from a year (2000-2199) and month (1-12).
    pub fn new(year: u16, month: u8) -> Option<BillingPeriod> {
        ((2000..=2199).contains(&year) && (1..=12).contains(&month))
            .then_some(BillingPeriod { year, month })
    }

    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<BillingPeriod, String> {
        let bad = || format!("`{text}` is not a billing period: expected YYYY-MM, e.g. 2026-03");
        let b = text.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(bad());
        }
        let year: u16 = text[..4].parse().map_err(|_| bad())?;
        let month: u8 = text[5..].parse().map_err(|_| bad())?;
        BillingPeriod::new(year, month).ok_or_else(bad)
    }

    /// The period containing a timestamp prefix `YYYY-MM-...` (ISO 8601 text).
    pub fn from_iso_prefix(text: &str) -> Option<BillingPeriod> {
        let t = text.trim();
        if t.len() < 7 {
            return None;
        }
        BillingPeriod::parse(&t[..7]).ok()
    }

    /// Number of days in the month.
    pub fn days(self) -> u8 {
        ((self.next().start_micros() - self.start_micros()) / 86_400_000_000) as u8
    }

    /// The period containing a UNIX timestamp in microseconds (UTC).
    pub fn from_unix_micros(micros: i64) -> Option<BillingPeriod> {
        let days = micros.div_euclid(86_400_000_000);
        let (y, m, _) = civil_from_days(days);
        u16::try_from(y).ok().and_then(|y| BillingPeriod::new(y, m))
    }

    /// First instant of the period in microseconds since 1970 (UTC).
    pub fn start_micros(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let (y, m) = (self.year as i64, self.month as i64);
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        (era * 146_097 + doe - 719_468) * 86_400_000_000
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1-12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// First instant of the period, ISO 8601 UTC.
    pub fn start_iso(self) -> String {
        format!("{:04}-{:02}-01T00:00:00Z", self.year, self.month)
    }

    /// First instant of the next period (exclusive end), ISO 8601 UTC.
    pub fn end_iso(self) -> String {
        self.next().start_iso()
    }

    /// The following month.
    pub fn next(self) -> BillingPeriod {
        if self.month == 12 {
            BillingPeriod {
                year: self.year + 1,
                month: 1,
            }
        } else {
            BillingPeriod {
                year: self.year,
                month: self.month + 1,
            }
        }
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for BillingPeriod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BillingPeriod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        BillingPeriod::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Line item types billxfer knows; anything else is quarantined.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum LineType {
    /// On-demand usage.
    Usage = 0,
    /// Usage covered by a Reserved Instance.
    DiscountedUsage,
    /// Usage covered by a Savings Plan.
    SavingsPlanCoveredUsage,
    /// Negation of the on-demand cost of SP-covered usage.
    SavingsPlanNegation,
    /// SP upfront fee.
    SavingsPlanUpfrontFee,
    /// SP recurring fee.
    SavingsPlanRecurringFee,
    /// RI recurring fee.
    RIFee,
    /// Other fee (RI upfront, subscriptions).
    Fee,
    /// Tax.
    Tax,
    /// Credit.
    Credit,
    /// Refund.
    Refund,
    /// Enterprise Discount Program discount (non-public).
    EdpDiscount,
    /// Private rate discount (non-public).
    PrivateRateDiscount,
    /// Solution Provider Program discount (non-public, the partner's).
    SppDiscount,
    /// Bundled discount (public product bundle).
    BundledDiscount,
    /// Generic discount (treated as non-public).
    Discount,
    /// RI volume discount (public volume tier).
    RiVolumeDiscount,
}

impl LineType {
    /// Every type, in code order.
    pub const ALL: [LineType; 17] = [
        LineType::Usage,
        LineType::DiscountedUsage,
        LineType::SavingsPlanCoveredUsage,
        LineType::SavingsPlanNegation,
        LineType::SavingsPlanUpfrontFee,
        LineType::SavingsPlanRecurringFee,
        LineType::RIFee,
        LineType::Fee,
        LineType::Tax,
        LineType::Credit,
        LineType::Refund,
        LineType::EdpDiscount,
        LineType::PrivateRateDiscount,
        LineType::SppDiscount,
        LineType::BundledDiscount,
        LineType::Discount,
        LineType::RiVolumeDiscount,
    ];

    /// The CUR spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LineType::Usage => "Usage",
            LineType::DiscountedUsage => "DiscountedUsage",
            LineType::SavingsPlanCoveredUsage => "SavingsPlanCoveredUsage",
            LineType::SavingsPlanNegation => "SavingsPlanNegation",
            LineType::SavingsPlanUpfrontFee => "SavingsPlanUpfrontFee",
            LineType::SavingsPlanRecurringFee => "SavingsPlanRecurringFee",
            LineType::RIFee => "RIFee",
            LineType::Fee => "Fee",
            LineType::Tax => "Tax",
            LineType::Credit => "Credit",
            LineType::Refund => "Refund",
            LineType::EdpDiscount => "EdpDiscount",
            LineType::PrivateRateDiscount => "PrivateRateDiscount",
            LineType::SppDiscount => "SppDiscount",
            LineType::BundledDiscount => "BundledDiscount",
            LineType::Discount => "Discount",
            LineType::RiVolumeDiscount => "RiVolumeDiscount",
        }
    }

    /// Parses the CUR spelling (exact, as AWS writes it).
    /// `Proforma_Fee` and `Proforma_Credit` (custom line items shown under another
    /// service in a pro forma CUR, billxfer's own export included) read as `Fee` and `Credit`.
    pub fn parse(text: &str) -> Option<LineType> {
        match text {
            "Proforma_Fee" => Some(LineType::Fee),
            "Proforma_Credit" => Some(LineType::Credit),
            _ => LineType::ALL.iter().copied().find(|t| t.as_str() == text),
        }
    }

    /// From the code stored in a normalized batch.
    pub fn from_code(code: u8) -> Option<LineType> {
        LineType::ALL.get(code as usize).copied()
    }

    /// The signs a billed cost of this type may have (docs/DOMAIN.md, decision 26):
    /// charges are never negative, discounts and credits never positive, and
    /// Fee, Tax and Refund lines may be either (reversals, tax on credits, adjustments).
    pub fn cost_sign(self) -> CostSign {
        match self {
            LineType::Usage
            | LineType::DiscountedUsage
            | LineType::SavingsPlanCoveredUsage
            | LineType::SavingsPlanUpfrontFee
            | LineType::SavingsPlanRecurringFee
            | LineType::RIFee => CostSign::NotNegative,
            LineType::SavingsPlanNegation
            | LineType::Credit
            | LineType::EdpDiscount
            | LineType::PrivateRateDiscount
            | LineType::SppDiscount
            | LineType::BundledDiscount
            | LineType::Discount
            | LineType::RiVolumeDiscount => CostSign::NotPositive,
            LineType::Fee | LineType::Tax | LineType::Refund => CostSign::Either,
        }
    }
}

/// The signs a line item type's billed cost may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostSign {
    /// Zero or more: a charge.
    NotNegative,
    /// Zero or less: a discount, credit or negation.
    NotPositive,
    /// Either sign.
    Either,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert!(AccountId::parse("012345678901").is_ok());
        assert_eq!(
            AccountId::parse("012345678901").unwrap().as_str(),
            "012345678901"
        );
        // Ids that lost their leading zeros are padded back to 12 digits, and say so.
        let (id, padded) = AccountId::parse_padded("12345678901").unwrap();
        assert_eq!((id.as_str(), padded), ("012345678901", true));
        assert!(!AccountId::parse_padded("012345678901").unwrap().1);
        assert!(AccountId::parse("1234567890123").is_err());
        assert!(AccountId::parse("01234567890a").is_err());
        assert!(AccountId::parse("").is_err());
        assert!(AccountId::parse("-1234").is_err());
    }

    #[test]
    fn org_ids_cannot_escape_the_output_folder() {
        assert!(OrgId::parse("acme-corp_1").is_ok());
        for bad in ["", "../x", "/etc", "a/b", "a b", "-x", ".", "..", "é"] {
            assert!(OrgId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn periods_parse_and_format() {
        let p = BillingPeriod::parse("2026-03").unwrap();
        assert_eq!(p.to_string(), "2026-03");
        assert_eq!(p.start_iso(), "2026-03-01T00:00:00Z");
        assert_eq!(
            BillingPeriod::parse("2026-12").unwrap().end_iso(),
            "2027-01-01T00:00:00Z"
        );
        assert!(BillingPeriod::parse("2026-13").is_err());
        assert!(BillingPeriod::parse("2026-3").is_err());
        assert_eq!(
            BillingPeriod::from_iso_prefix("2023-11-01T00:00:00.000Z"),
            BillingPeriod::new(2023, 11)
        );
    }

    #[test]
    fn period_start_micros_round_trips() {
        for (y, m) in [(2026, 3), (2024, 2), (2000, 2), (2199, 12)] {
            let p = BillingPeriod::new(y, m).unwrap();
            assert_eq!(BillingPeriod::from_unix_micros(p.start_micros()), Some(p));
            assert_eq!(
                BillingPeriod::from_unix_micros(p.start_micros() - 1).map(|q| q.next()),
                Some(p)
            );
        }
        assert_eq!(
            BillingPeriod::new(2026, 3).unwrap().start_micros(),
            1_772_323_200_000_000
        );
    }

    #[test]
    fn periods_from_timestamps() {
        // 2026-03-01T00:00:00Z = 1772323200 s
        assert_eq!(
            BillingPeriod::from_unix_micros(1_772_323_200_000_000),
            BillingPeriod::new(2026, 3)
        );
        assert_eq!(
            BillingPeriod::from_unix_micros(1_772_323_199_999_999),
            BillingPeriod::new(2026, 2)
        );
        assert_eq!(BillingPeriod::from_unix_micros(0), None); // 1970 is out of range
    }
}
