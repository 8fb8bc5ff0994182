//! The Partner Discount Business Report (AWS Partner Central data subscription):
//! the partner's program discounts per invoice line, delivered as change-data
//! capture rows. Rows are applied per key (`dbr_id_pk`) in `row_modified_date`
//! order; the latest state of each key that is for the run's month is joined to
//! the rated lines of the org that owns its account (docs/DISCOUNTS.md).
//!
//! Everything here is the partner's: it reaches the partner's invoices, margin
//! report and manifest, never a customer's file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::money::parse_fixed;
use crate::types::BillingPeriod;

/// The program components, as the report's `<name>_discount` columns name them.
pub const COMPONENTS: &[&str] = &[
    "support",
    "net_new_business",
    "partner_originated",
    "internal",
    "no_eur",
    "shareshift",
    "exception",
    "psp",
    "base_or_base_tech",
    "br_exception",
];

/// What a CDC row does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowType {
    Insert,
    Update,
    Delete,
}

/// The state of one discounted invoice line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiscountState {
    /// `dbr_id_pk`.
    pub key: String,
    /// The billing month the line belongs to.
    pub period: BillingPeriod,
    /// `payer_account_id`, as 12 digits.
    pub payer: String,
    /// `invoice_id`.
    pub invoice_id: String,
    /// `linked_account_id`, as 12 digits.
    pub account: String,
    /// `product_code`.
    pub service: String,
    /// Discount per component (internal scale; positive lowers the partner's cost).
    pub components: BTreeMap<&'static str, i128>,
    /// `total_discount`.
    pub total: i128,
    /// Where the state was last set: file and row.
    pub from: String,
}

/// One CDC row as read.
#[derive(Debug, Clone)]
struct Change {
    key: String,
    kind: RowType,
    /// `row_modified_date`, as text that sorts in time order (ISO 8601).
    modified: String,
    /// The file's position in the sorted file list, and the row's in the file:
    /// the tie-break for equal timestamps (a later delivery wins).
    order: (usize, usize),
    state: Option<DiscountState>,
}

/// The report's current state: every key's latest row.
#[derive(Debug, Default)]
pub struct DiscountReport {
    /// Files read, in order.
    pub files: Vec<String>,
    /// CDC rows read.
    pub rows_read: u64,
    /// Keys whose latest row is not a DELETE.
    pub states: BTreeMap<String, DiscountState>,
    /// Rows whose components do not add up to `total_discount` (key, what).
    pub warnings: Vec<String>,
}

impl DiscountReport {
    /// Reads every delivery (CSV, gzip CSV, Parquet) and applies the changes in
    /// `row_modified_date` order per key. Every bad row names its file, row and column.
    pub fn load(files: &[(PathBuf, String)]) -> Result<DiscountReport> {
        let mut changes = Vec::new();
        let mut report = DiscountReport::default();
        for (i, (path, shown)) in files.iter().enumerate() {
            report.files.push(shown.clone());
            let rows = read_file(path, shown, i, &mut changes)?;
            report.rows_read += rows;
        }
        // Time order per key; equal times keep delivery order.
        changes.sort_by(|a, b| {
            (a.key.as_str(), a.modified.as_str(), a.order).cmp(&(
                b.key.as_str(),
                b.modified.as_str(),
                b.order,
            ))
        });
        for c in changes {
            match (c.kind, c.state) {
                (RowType::Delete, _) => {
                    report.states.remove(&c.key);
                }
                (_, Some(s)) => {
                    let sum: i128 = s.components.values().sum();
                    if sum != s.total {
                        report.warnings.push(format!(
                            "discount row {} ({}): its components add up to {} but total_discount is {}; the components are applied",
                            s.key,
                            s.from,
                            crate::money::format_fixed_exact(sum),
                            crate::money::format_fixed_exact(s.total)
                        ));
                    }
                    report.states.insert(c.key, s);
                }
                (_, None) => {}
            }
        }
        Ok(report)
    }

    /// The states of one billing month, by key.
    pub fn for_period(&self, period: BillingPeriod) -> impl Iterator<Item = &DiscountState> {
        self.states.values().filter(move |s| s.period == period)
    }
}

/// The columns a report file must have.
const REQUIRED: &[&str] = &[
    "dbr_id_pk",
    "row_type",
    "row_modified_date",
    "payer_account_id",
    "invoice_id",
    "linked_account_id",
    "product_code",
    "total_discount",
];

fn read_file(path: &Path, shown: &str, index: usize, out: &mut Vec<Change>) -> Result<u64> {
    let (header, records) = if shown.ends_with(".parquet") {
        parquet_records(path)?
    } else {
        csv_records(path, shown)?
    };
    let position = |name: &str| header.iter().position(|h| h == name);
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| position(c).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(Error::input(
            path,
            format!(
                "not a Partner Discount Business Report file: missing column(s) {}",
                missing.join(", ")
            ),
        ));
    }
    let month_col = position("billing_period")
        .or_else(|| position("bill_month"))
        .or_else(|| position("discount_start_date"))
        .ok_or_else(|| {
            Error::input(path, "no column gives the billing month: billxfer reads `billing_period` (YYYY-MM), else `discount_start_date`")
        })?;
    let col = |name: &str| position(name).unwrap_or(usize::MAX);
    let components: Vec<(&'static str, Option<usize>)> = COMPONENTS
        .iter()
        .map(|c| (*c, position(&format!("{c}_discount"))))
        .collect();
    let mut rows = 0u64;
    for (i, record) in records.into_iter().enumerate() {
        let row = i + 2;
        let record = record?;
        rows += 1;
        let cell = |c: usize| record.get(c).map_or("", |v| v.trim());
        let bad = |name: &str, why: String| {
            Error::input(path, format!("row {row}, column `{name}`: {why}"))
        };
        let key = cell(col("dbr_id_pk")).to_string();
        if key.is_empty() {
            return Err(bad("dbr_id_pk", "empty: every row needs its key".into()));
        }
        let kind = match cell(col("row_type")).to_ascii_uppercase().as_str() {
            "INSERT" => RowType::Insert,
            "UPDATE" => RowType::Update,
            "DELETE" => RowType::Delete,
            other => {
                return Err(bad(
                    "row_type",
                    format!("`{other}` is not INSERT, UPDATE or DELETE"),
                ))
            }
        };
        let modified = cell(col("row_modified_date")).to_string();
        if crate::timestamp::parse_millis(&modified).is_none() {
            return Err(bad(
                "row_modified_date",
                format!("`{modified}` is not a timestamp"),
            ));
        }
        let state = if kind == RowType::Delete {
            None
        } else {
            let money = |name: &str, c: usize| -> Result<i128> {
                let t = cell(c);
                if t.is_empty() {
                    return Ok(0);
                }
                parse_fixed(t).map_err(|_| bad(name, format!("`{t}` is not a number")))
            };
            let month_text = cell(month_col);
            let period = BillingPeriod::from_iso_prefix(month_text).ok_or_else(|| {
                bad(
                    &header[month_col],
                    format!("`{month_text}` does not start with a month YYYY-MM"),
                )
            })?;
            let mut by_component = BTreeMap::new();
            for (name, c) in &components {
                if let Some(c) = c {
                    let v = money(&format!("{name}_discount"), *c)?;
                    if v != 0 {
                        by_component.insert(*name, v);
                    }
                }
            }
            Some(DiscountState {
                key: key.clone(),
                period,
                payer: account12(cell(col("payer_account_id"))),
                invoice_id: cell(col("invoice_id")).to_string(),
                account: account12(cell(col("linked_account_id"))),
                service: cell(col("product_code")).to_string(),
                components: by_component,
                total: money("total_discount", col("total_discount"))?,
                from: format!("{shown} row {row}"),
            })
        };
        out.push(Change {
            key,
            kind,
            modified: normalized_time(&modified),
            order: (index, row),
            state,
        });
    }
    Ok(rows)
}

/// A delivery's rows as text, with its lower-cased header.
type Records = (Vec<String>, Vec<Result<Vec<String>>>);

fn csv_records(path: &Path, shown: &str) -> Result<Records> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader: Box<dyn Read> = if shown.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut csv = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| Error::input(path, format!("not a CSV file: {e}")))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    let records = csv
        .records()
        .enumerate()
        .map(|(i, r)| {
            r.map(|r| r.iter().map(String::from).collect())
                .map_err(|e| Error::input(path, format!("row {}: {e}", i + 2)))
        })
        .collect();
    Ok((header, records))
}

/// A Parquet delivery's rows as text. Doubles (the report's discount columns)
/// go through billxfer's one exact rule for doubles (`money::fixed_from_f64`);
/// timestamps become ISO 8601 UTC; everything else is cast to text.
fn parquet_records(path: &Path) -> Result<Records> {
    use arrow::array::{Array, AsArray, RecordBatchReader};
    use arrow::datatypes::DataType;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let bad = |e: String| Error::input(path, format!("not a readable Parquet file: {e}"));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().to_ascii_lowercase())
        .collect();
    let mut records = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| bad(e.to_string()))?;
        let mut columns: Vec<Vec<String>> = Vec::with_capacity(batch.num_columns());
        for a in batch.columns() {
            let text: Vec<String> = match a.data_type() {
                DataType::Float64 | DataType::Float32 => {
                    let d = arrow::compute::cast(a, &DataType::Float64)
                        .map_err(|e| bad(e.to_string()))?;
                    let d = d.as_primitive::<arrow::datatypes::Float64Type>();
                    (0..d.len())
                        .map(|i| {
                            if d.is_null(i) {
                                return Ok(String::new());
                            }
                            crate::money::fixed_from_f64(d.value(i))
                                .map(crate::money::format_fixed_exact)
                                .map_err(|e| bad(format!("a number that is no decimal: {e}")))
                        })
                        .collect::<Result<_>>()?
                }
                DataType::Timestamp(_, _) => {
                    let ms = crate::timestamp::to_utc_millis(a).map_err(|e| bad(e.to_string()))?;
                    let ms = ms.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
                    (0..ms.len())
                        .map(|i| {
                            if ms.is_null(i) {
                                String::new()
                            } else {
                                crate::timestamp::iso_from_millis(ms.value(i))
                            }
                        })
                        .collect()
                }
                _ => {
                    let t =
                        arrow::compute::cast(a, &DataType::Utf8).map_err(|e| bad(e.to_string()))?;
                    let t = t.as_string::<i32>();
                    (0..t.len())
                        .map(|i| {
                            if t.is_null(i) {
                                String::new()
                            } else {
                                t.value(i).to_string()
                            }
                        })
                        .collect()
                }
            };
            columns.push(text);
        }
        for i in 0..batch.num_rows() {
            records.push(Ok(columns.iter().map(|c| c[i].clone()).collect()));
        }
    }
    Ok((header, records))
}

/// Account ids arrive as `bigint`: leading zeros are lost, so pad to 12 digits.
fn account12(text: &str) -> String {
    let t = text.trim();
    if t.len() < 12 && t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() {
        format!("{t:0>12}")
    } else {
        t.to_string()
    }
}

/// A timestamp as milliseconds, zero-padded so text order is time order.
fn normalized_time(text: &str) -> String {
    crate::timestamp::parse_millis(text)
        .map(|ms| format!("{:020}", ms.saturating_add(i64::MAX / 2)))
        .unwrap_or_else(|| text.to_string())
}
