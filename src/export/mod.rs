//! Analyst exports, written by `billxfer run` after the invoices are known:
//! each customer's pro forma CUR 2.0 (`customers/<org>/cur/`) and FOCUS 1.2
//! (`customers/<org>/focus/`) datasets, and the partner's actual FOCUS 1.2
//! dataset across all orgs (`partner/focus/`). See docs/EXPORTS.md.
//!
//! Written in the run's one pass (`sink`): each rating task hands its rated
//! chunks, with every column of the input carried by the same read, to the
//! org's sinks, which build and write the rows into the task's part of each
//! dataset. Charges priced at month end (custom tiers, free tier off) are split
//! back onto their rows by cumulative usage share, in file and row order, once
//! the org's month is rated, so each line's rows sum exactly to the invoice
//! line. Exported rows sum exactly (at 10 decimals) to the invoices' exact
//! totals: the run checks it and fails otherwise.
//!
//! With `--granularity daily|monthly` each task rolls its rows up instead
//! (`rollup`), and the org's roll-ups are merged and written, sorted by key,
//! when the org is finished.

mod cur;
mod custom;
mod dataset;
mod focus14;
mod focus_rows;
mod fx_columns;
mod held;
mod read;
pub mod rollup;
mod rows;
mod sink;

use cur::*;
use custom::*;
use dataset::*;
use focus_rows::*;
use read::*;
use rows::*;
pub use sink::{OrgExport, OrgTotals, OrgWritten, TaskParts, TaskSink, PARTS_DIR};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Decimal128Builder, MapArray, RecordBatch,
    StringArray, TimestampMillisecondArray, TimestampMillisecondBuilder, UInt32Array, UInt64Array,
    UInt8Array,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use crate::config::{CliKind, Config};
use crate::error::{Error, Result};
use crate::focus;
use crate::ingest::{self, snake_name, Dialect};
use crate::money::{format_fixed_exact, mul_fixed, ONE};
use crate::normalize::{self, col};
use crate::rate::{is_support, LineKey, Rater, Track, Treatment};
use crate::timestamp::{iso_from_millis, to_utc_millis};
use crate::types::BillingPeriod;
use crate::types::LineType;
use rollup::{Metrics, Per, RollUp, RollUpSpec};

/// Which exports a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportSet {
    /// Invoices only.
    None,
    /// Pro forma CUR 2.0 per customer.
    Cur,
    /// FOCUS 1.2: pro forma per customer, actual for the partner.
    Focus,
    /// Both.
    All,
}

impl ExportSet {
    fn cur(self) -> bool {
        matches!(self, ExportSet::Cur | ExportSet::All)
    }
    fn focus(self) -> bool {
        matches!(self, ExportSet::Focus | ExportSet::All)
    }
}

/// File format of the exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Apache Parquet (zstd).
    Parquet,
    /// CSV with a header row; text cells neutralized against spreadsheet formulas.
    Csv,
}

pub use rollup::Granularity;

/// What to export and how.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct ExportOptions {
    /// Which exports.
    pub set: ExportSet,
    /// Parquet or CSV.
    pub format: ExportFormat,
    /// Line, daily or monthly rows.
    pub granularity: Granularity,
    /// The FOCUS version of the FOCUS exports.
    #[serde(default)]
    pub focus_version: crate::focus::FocusVersion,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            set: ExportSet::All,
            format: ExportFormat::Parquet,
            granularity: Granularity::Line,
            focus_version: crate::focus::FocusVersion::V1_2,
        }
    }
}

/// One written export file, for `exports.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportFile {
    /// Path relative to the period's output folder.
    pub path: String,
    /// Org the rows belong to.
    pub org: String,
    /// `cur`, `focus` or `partner_focus`.
    pub kind: String,
    /// Rows written.
    pub rows: u64,
    /// Σ of the cost column (line_item_unblended_cost or BilledCost), exact.
    pub cost_total: String,
    /// The currency of the cost column: USD, or a customer's invoice currency in its FOCUS.
    pub currency: String,
}

// ---------------------------------------------------------------------------
// Small conversions

/// The nearest double to an exact amount, for CUR's double columns: the exact
/// decimal text parsed by Rust's correctly rounded parser. This is the one
/// place money leaves fixed point, at the output edge (docs/EXPORTS.md).
fn f64_of(v: i128) -> f64 {
    // Below 2^53 both v and 10^10 are exact doubles and IEEE division rounds
    // correctly, so v / 10^10 is the same nearest double, without the text.
    const EXACT: i128 = 1 << 53;
    if v.abs() < EXACT {
        return v as f64 / ONE as f64;
    }
    format_fixed_exact(v).parse::<f64>().unwrap_or(f64::NAN)
}

/// `a / b` at 10 decimals, rounded half away from zero; `None` when b is 0.
fn div_fixed(a: i128, b: i128) -> Option<i128> {
    if b == 0 {
        return None;
    }
    // money::div_round wants a positive divisor; amounts up to 10^28 keep a × 10^10 in i128.
    let (a, b) = if b < 0 {
        (a.checked_neg()?, -b)
    } else {
        (a, b)
    };
    Some(crate::money::div_round(
        a.checked_mul(ONE)?,
        b,
        crate::money::Rounding::HalfAwayFromZero,
    ))
}

/// Exact `a × b / c` floored, in 256 bits (cumulative allocation).
fn mul_div_floor(a: i128, b: i128, c: i128) -> Option<i128> {
    use arrow::datatypes::i256;
    if c == 0 {
        return Some(0);
    }
    let n = i256::from_i128(a).checked_mul(i256::from_i128(b))?;
    let d = i256::from_i128(c);
    let q = n.checked_div(d)?;
    let r = n.checked_rem(d)?;
    let q = if r != i256::ZERO && ((r < i256::ZERO) != (d < i256::ZERO)) {
        q.checked_sub(i256::ONE)?
    } else {
        q
    };
    q.to_i128()
}

/// Splits a month-end charge back onto its rows in file order: row k of a line
/// gets D·(U₁+…+Uₖ)/U − (what rows 1…k−1 got), so the rows sum to D exactly.
#[derive(Debug, Default)]
struct Splitter {
    /// (track, line) → (charge, quantity, quantity seen, amount given).
    state: HashMap<(Track, LineKey), (i128, i128, i128, i128)>,
}

impl Splitter {
    fn new(deferred: &BTreeMap<(Track, LineKey), (i128, i128)>) -> Splitter {
        Splitter {
            state: deferred
                .iter()
                .map(|(k, (d, u))| (k.clone(), (*d, *u, 0, 0)))
                .collect(),
        }
    }

    fn next(&mut self, track: Track, key: LineKey, qty: i128) -> Result<i128> {
        let overflow = || Error::Overflow("splitting a month-end charge onto rows".into());
        let Some(s) = self.state.get_mut(&(track, key)) else {
            return Ok(0);
        };
        s.2 = s.2.checked_add(qty).ok_or_else(overflow)?;
        let upto = if s.2 == s.1 {
            s.0
        } else {
            mul_div_floor(s.0, s.2, s.1).ok_or_else(overflow)?
        };
        let amount = upto.checked_sub(s.3).ok_or_else(overflow)?;
        s.3 = upto;
        Ok(amount)
    }
}

// ---------------------------------------------------------------------------
// The pass

/// Σ of a slice of amounts.
fn sum(v: &[i128]) -> Result<i128> {
    v.iter()
        .try_fold(0i128, |a, x| a.checked_add(*x))
        .ok_or_else(|| Error::Overflow("summing export rows".into()))
}

fn ext(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Parquet => "parquet",
        ExportFormat::Csv => "csv",
    }
}

/// The `exports.json` listing of a run's exports.
pub fn listing(opts: ExportOptions, orgs: Vec<OrgWritten>) -> (PathBuf, Vec<u8>) {
    let mut files = Vec::new();
    let mut dropped = BTreeSet::new();
    for o in orgs {
        files.extend(o.files);
        dropped.extend(o.dropped);
    }
    let doc = serde_json::json!({
        "granularity": opts.granularity,
        "format": opts.format,
        "files": files,
        "dropped_input_columns": dropped,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    (PathBuf::from("exports.json"), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_round_trip() {
        let p = BillingPeriod::parse("2026-10").unwrap();
        let ms = p.start_micros() / 1000;
        assert_eq!(iso_from_millis(ms), "2026-10-01T00:00:00Z");
        assert_eq!(parse_iso_millis("2026-10-01T00:00:00Z"), Some(ms));
        assert_eq!(
            iso_from_millis(ms + 86_400_000 + 3_723_000),
            "2026-10-02T01:02:03Z"
        );
        assert_eq!(
            parse_iso_millis("2026-10-02T01:02:03Z"),
            Some(ms + 86_400_000 + 3_723_000)
        );
        assert_eq!(iso_from_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_from_millis(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn the_splitter_gives_rows_the_whole_charge() {
        let key = LineKey {
            account: "1".into(),
            service: "S".into(),
            line_type: LineType::Usage,
        };
        let mut d = BTreeMap::new();
        // 10.00 over quantities 1, 1, 1: 3.3333333333, 3.3333333333, 3.3333333334.
        d.insert((Track::Proforma, key.clone()), (10 * ONE, 3 * ONE));
        let mut s = Splitter::new(&d);
        let parts: Vec<i128> = (0..3)
            .map(|_| s.next(Track::Proforma, key.clone(), ONE).unwrap())
            .collect();
        assert_eq!(parts, vec![33_333_333_333, 33_333_333_333, 33_333_333_334]);
        assert_eq!(parts.iter().sum::<i128>(), 10 * ONE);
        assert_eq!(s.next(Track::Actual, key, ONE).unwrap(), 0);
    }

    #[test]
    fn the_fast_double_is_the_nearest_double_of_the_exact_text() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % (1u64 << 53)) as i128 * if x & 1 == 0 { 1 } else { -1 };
            let v = v >> (x % 40);
            let text = format_fixed_exact(v).parse::<f64>().unwrap();
            assert_eq!(f64_of(v).to_bits(), text.to_bits(), "{v}");
        }
    }

    #[test]
    fn division_rounds_half_away_from_zero() {
        assert_eq!(div_fixed(ONE, 3 * ONE), Some(3_333_333_333));
        assert_eq!(div_fixed(2 * ONE, 3 * ONE), Some(6_666_666_667));
        assert_eq!(div_fixed(-2 * ONE, 3 * ONE), Some(-6_666_666_667));
        assert_eq!(div_fixed(ONE, 0), None);
    }

    #[test]
    fn focus_prices_multiply_out() {
        let p = priced("Usage", 25 * ONE / 10, 2 * ONE, Some(15 * ONE / 10)).unwrap();
        assert_eq!(p.list_cost, 3 * ONE);
        assert_eq!(p.contracted_unit, Some(125 * ONE / 100));
        assert_eq!(p.contracted_cost, 25 * ONE / 10);
        let tax = priced("Tax", 7 * ONE, 0, None).unwrap();
        assert_eq!(
            (tax.list_unit, tax.quantity, tax.list_cost),
            (None, None, 7 * ONE)
        );
        // A negative amount keeps a non-negative contracted price (the list price).
        let neg = priced("Usage", -ONE, ONE, Some(ONE)).unwrap();
        assert_eq!(neg.contracted_unit, Some(ONE));
    }

    #[test]
    fn confidential_columns_are_recognised() {
        for c in [
            "line_item_net_unblended_cost",
            "reservation_net_effective_cost",
            "savings_plan_net_savings_plan_effective_cost",
            "discount",
            "discount_total_discount",
        ] {
            assert!(is_confidential_column(c), "{c}");
        }
        for c in [
            "line_item_unblended_cost",
            "pricing_public_on_demand_cost",
            "reservation_effective_cost",
        ] {
            assert!(!is_confidential_column(c), "{c}");
        }
    }
}
