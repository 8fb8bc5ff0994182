//! Invoice currencies: ISO 4217 minor units, a dated exchange-rate file, and
//! the one rule that picks a month's rate (docs/CURRENCY.md).
//!
//! Amounts are computed in USD; an invoice in another currency converts each
//! line's exact USD amount with [`Applied::convert`] (exact decimal, rounded at
//! the internal scale's 10th decimal), and `invoice.rs` then rounds each
//! converted line to the currency's minor unit, once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::money::{div_round, format_fixed_exact, mul_fixed, parse_fixed, Rounding, ONE};
use crate::types::BillingPeriod;

/// ISO 4217 codes billxfer accepts, with their minor units (decimals). Codes
/// not listed are refused rather than guessed.
const MINOR_UNITS: &[(&str, u32)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// An ISO 4217 currency billxfer can invoice in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency {
    code: &'static str,
    decimals: u32,
}

impl Currency {
    /// US dollars: the currency every amount is computed in.
    pub const USD: Currency = Currency {
        code: "USD",
        decimals: 2,
    };

    /// The currency of an ISO 4217 code (upper case), if billxfer knows its minor unit.
    pub fn parse(code: &str) -> std::result::Result<Currency, String> {
        MINOR_UNITS
            .iter()
            .find(|(c, _)| *c == code)
            .map(|&(code, decimals)| Currency { code, decimals })
            .ok_or_else(|| {
                format!("`{code}` is not an ISO 4217 currency billxfer knows (an upper-case code such as EUR, GBP, JPY; the list with each one's minor unit is in docs/CURRENCY.md)")
            })
    }

    /// The code, e.g. `EUR`.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimals of the minor unit (0 for JPY, 2 for EUR, 3 for KWD).
    pub fn decimals(self) -> u32 {
        self.decimals
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

/// Which published rate a month uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDate {
    /// The last rate published on or before the last day of the billing period.
    PeriodEnd,
    /// The last rate published on or before a fixed date (an invoice date).
    OnOrBefore(Date),
}

/// A calendar date, `YYYY-MM-DD`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// Parses `YYYY-MM-DD` (a real calendar date).
    pub fn parse(text: &str) -> std::result::Result<Date, String> {
        let bad = || format!("`{text}` is not a date YYYY-MM-DD");
        let b = text.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<u16>().map_err(|_| bad());
        let (year, month, day) = (num(&text[0..4])?, num(&text[5..7])?, num(&text[8..10])?);
        let period = u8::try_from(month)
            .ok()
            .and_then(|m| BillingPeriod::new(year, m))
            .ok_or_else(bad)?;
        if day == 0 || day > u16::from(period.days()) {
            return Err(bad());
        }
        Ok(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    /// The last day of a billing period.
    pub fn last_of(period: BillingPeriod) -> Date {
        Date {
            year: period.year(),
            month: period.month(),
            day: period.days(),
        }
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The rate file: USD → currency rates by publication date.
#[derive(Debug, Clone, Default)]
pub struct RateTable {
    /// The file, as named in the config.
    pub path: PathBuf,
    /// Who publishes the rates (shown on invoices), e.g. "ECB euro reference rates".
    pub source: String,
    /// Which rate a month uses.
    pub rate_date: Option<RateDate>,
    /// (currency, date) → (USD → currency rate as applied, the file's row and text).
    rates: BTreeMap<(Currency, Date), (i128, String)>,
}

/// The rate used for one invoice: what the invoice, the manifest and `diff` show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    /// The invoice currency.
    pub currency: String,
    /// Decimals of its minor unit.
    pub decimals: u32,
    /// 1 USD = `rate` units of the currency (internal scale, 10 decimals).
    pub rate: i128,
    /// The rate's publication date.
    pub date: String,
    /// Who published it.
    pub source: String,
    /// How the file gave it: `USD->EUR 0.9250`, or the inverse row it was derived from.
    pub as_published: String,
}

impl Applied {
    /// A USD amount in the invoice currency, exact to the internal scale.
    pub fn convert(&self, usd: i128) -> Option<i128> {
        mul_fixed(usd, self.rate)
    }

    /// The rate as decimal text.
    pub fn rate_text(&self) -> String {
        format_fixed_exact(self.rate)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

impl RateTable {
    /// Reads a rate file: a CSV with columns `date,from,to,rate` (any order,
    /// more columns ignored). Rows from USD are used as they are; rows to USD
    /// (a central bank's `1 EUR = x USD`) are inverted, 1/x rounded half to
    /// even at the 10th decimal. Every problem names the row and column.
    pub fn load(
        path: &Path,
        shown: &str,
        source: String,
        rate_date: RateDate,
    ) -> Result<RateTable> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(file);
        let header: Vec<String> = csv
            .headers()
            .map_err(|e| Error::input(path, format!("not a CSV file: {e}")))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let col = |name: &str| -> Result<usize> {
            header.iter().position(|h| h == name).ok_or_else(|| {
                Error::input(
                    path,
                    format!("the rate file has no `{name}` column (it needs date, from, to, rate)"),
                )
            })
        };
        let (c_date, c_from, c_to, c_rate) = (col("date")?, col("from")?, col("to")?, col("rate")?);
        let mut table = RateTable {
            path: PathBuf::from(shown),
            source,
            rate_date: Some(rate_date),
            rates: BTreeMap::new(),
        };
        for (i, record) in csv.records().enumerate() {
            let row = i + 2;
            let record = record.map_err(|e| Error::input(path, format!("row {row}: {e}")))?;
            if record.iter().all(|c| c.trim().is_empty()) {
                continue;
            }
            let cell = |c: usize, name: &str| -> Result<&str> {
                record.get(c).map(str::trim).ok_or_else(|| {
                    Error::input(path, format!("row {row}: column `{name}` is missing"))
                })
            };
            let bad = |name: &str, why: String| {
                Error::input(path, format!("row {row}, column `{name}`: {why}"))
            };
            let date = Date::parse(cell(c_date, "date")?).map_err(|e| bad("date", e))?;
            let (from, to) = (cell(c_from, "from")?, cell(c_to, "to")?);
            let text = cell(c_rate, "rate")?;
            let rate = parse_fixed(text)
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(|| bad("rate", format!("`{text}` is not a positive decimal")))?;
            let (currency, applied, shown) = if from == "USD" {
                let c = Currency::parse(to).map_err(|e| bad("to", e))?;
                (c, rate, format!("USD->{to} {text}"))
            } else if to == "USD" {
                let c = Currency::parse(from).map_err(|e| bad("from", e))?;
                let inverse = div_round(ONE * ONE, rate, Rounding::HalfEven);
                (c, inverse, format!("1 / ({from}->USD {text})"))
            } else {
                continue; // Cross rates between two other currencies are not needed.
            };
            if let Some((_, earlier)) = table
                .rates
                .insert((currency, date), (applied, shown.clone()))
            {
                if earlier != shown {
                    return Err(bad(
                        "date",
                        format!("a second rate for {currency} on {date} ({earlier}, then {shown})"),
                    ));
                }
            }
        }
        Ok(table)
    }

    /// The rate an invoice of `period` in `currency` uses, by the table's rule.
    pub fn rate_for(
        &self,
        currency: Currency,
        period: BillingPeriod,
    ) -> std::result::Result<Applied, String> {
        let on_or_before = match self.rate_date.unwrap_or(RateDate::PeriodEnd) {
            RateDate::PeriodEnd => Date::last_of(period),
            RateDate::OnOrBefore(d) => d,
        };
        let first = Date {
            year: 0,
            month: 1,
            day: 1,
        };
        self.rates
            .range((currency, first)..=(currency, on_or_before))
            .next_back()
            .map(|((_, date), (rate, shown))| Applied {
                currency: currency.code().to_string(),
                decimals: currency.decimals(),
                rate: *rate,
                date: date.to_string(),
                source: self.source.clone(),
                as_published: shown.clone(),
            })
            .ok_or_else(|| {
                format!(
                    "no USD->{currency} rate on or before {on_or_before} in {}",
                    self.path.display()
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str, rule: RateDate) -> Result<RateTable> {
        let dir =
            std::env::temp_dir().join(format!("billxfer-fx-{}-{}", std::process::id(), text.len()));
        std::fs::write(&dir, text).unwrap();
        let t = RateTable::load(&dir, "rates.csv", "test".into(), rule);
        let _ = std::fs::remove_file(&dir);
        t
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(Currency::parse("JPY").unwrap().decimals(), 0);
        assert_eq!(Currency::parse("EUR").unwrap().decimals(), 2);
        assert_eq!(Currency::parse("KWD").unwrap().decimals(), 3);
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("XXX").is_err());
    }

    #[test]
    fn the_last_rate_on_or_before_the_period_end_is_used() {
        let t = table(
            "date,from,to,rate\n2026-10-29,USD,EUR,0.9241\n2026-10-30,USD,EUR,0.9250\n2026-11-02,USD,EUR,0.9262\n",
            RateDate::PeriodEnd,
        )
        .unwrap();
        let eur = Currency::parse("EUR").unwrap();
        let a = t
            .rate_for(eur, BillingPeriod::new(2026, 10).unwrap())
            .unwrap();
        assert_eq!((a.date.as_str(), a.rate), ("2026-10-30", 9_250_000_000));
        let e = t
            .rate_for(eur, BillingPeriod::new(2026, 9).unwrap())
            .unwrap_err();
        assert!(
            e.contains("no USD->EUR rate on or before 2026-09-30"),
            "{e}"
        );
        let fixed = table(
            "date,from,to,rate\n2026-10-29,USD,EUR,0.9241\n2026-11-02,USD,EUR,0.9262\n",
            RateDate::OnOrBefore(Date::parse("2026-11-05").unwrap()),
        )
        .unwrap();
        let a = fixed
            .rate_for(eur, BillingPeriod::new(2026, 10).unwrap())
            .unwrap();
        assert_eq!(a.date, "2026-11-02");
    }

    #[test]
    fn a_central_banks_rate_to_usd_is_inverted_at_ten_decimals() {
        // ECB style: 1 EUR = 1.0803 USD, so 1 USD = 0.92567805239... EUR.
        let t = table(
            "date,from,to,rate\n2026-10-30,EUR,USD,1.0803\n",
            RateDate::PeriodEnd,
        )
        .unwrap();
        let a = t
            .rate_for(
                Currency::parse("EUR").unwrap(),
                BillingPeriod::new(2026, 10).unwrap(),
            )
            .unwrap();
        assert_eq!(a.rate, 9_256_687_957);
        assert_eq!(a.as_published, "1 / (EUR->USD 1.0803)");
    }

    #[test]
    fn bad_rows_name_their_row_and_column() {
        let e = table(
            "date,from,to,rate\n2026-10-30,USD,EUR,abc\n",
            RateDate::PeriodEnd,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("row 2, column `rate`: `abc` is not a positive decimal"),
            "{e}"
        );
        let e = table(
            "date,from,to,rate\n2026-13-30,USD,EUR,1\n",
            RateDate::PeriodEnd,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("row 2, column `date`"), "{e}");
        let e = table("day,from,to,rate\n", RateDate::PeriodEnd)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no `date` column"), "{e}");
    }
}
