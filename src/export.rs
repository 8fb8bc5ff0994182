//! Analyst exports, written by `billxfer run` after the invoices are known:
//! each customer's pro forma CUR 2.0 (`customers/<org>/cur/`) and FOCUS 1.2
//! (`customers/<org>/focus/`) datasets, and the partner's actual FOCUS 1.2
//! dataset across all orgs (`partner/focus/`). See docs/EXPORTS.md.
//!
//! A second pass over each org's inputs, in file and row order: the same
//! normalization and rating kernel gives each row's amounts, and a reader of
//! every column gives the row's other cells. Charges priced at month end
//! (custom tiers, free tier off) are split back onto their rows by cumulative
//! usage share, so each line's rows sum exactly to the invoice line.
//! Exported rows sum exactly (at 10 decimals) to the invoices' exact totals:
//! the pass checks it and fails the run otherwise.
//!
//! With `--granularity daily|monthly` the same pass rolls each dataset up
//! (`crate::rollup`): its rows are aggregated instead of written, and the
//! groups, sorted by key, are written when the dataset is finished.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Decimal128Builder, MapArray, RecordBatch,
    StringArray, StringBuilder, TimestampMillisecondArray, TimestampMillisecondBuilder,
    UInt32Array, UInt64Array, UInt8Array,
};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;
use serde::Serialize;

use crate::config::{CliKind, Config};
use crate::error::{Error, Result};
use crate::focus;
use crate::ingest::{self, snake_name, Dialect, BATCH_ROWS};
use crate::money::{format_fixed_exact, mul_fixed, ONE};
use crate::normalize::{self, col};
use crate::rate::{is_support, LineKey, Rater, Track, Treatment};
use crate::rollup::{Metrics, Per, RollUp, RollUpSpec};
use crate::run::{self, InputFile, OrgResult, RunResult};
use crate::timestamp::{iso_from_millis, to_utc_millis};
use crate::types::BillingPeriod;
use crate::types::LineType;

/// Which exports a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Apache Parquet (zstd).
    Parquet,
    /// CSV with a header row; text cells neutralized against spreadsheet formulas.
    Csv,
}

pub use crate::rollup::Granularity;

/// What to export and how.
#[derive(Debug, Clone, Copy)]
pub struct ExportOptions {
    /// Which exports.
    pub set: ExportSet,
    /// Parquet or CSV.
    pub format: ExportFormat,
    /// Line, daily or monthly rows.
    pub granularity: Granularity,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            set: ExportSet::All,
            format: ExportFormat::Parquet,
            granularity: Granularity::Line,
        }
    }
}

/// One written export file, for `exports.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportFile {
    /// Path relative to the period's output folder.
    pub path: String,
    /// Org the rows belong to.
    pub org: String,
    /// `cur`, `focus` or `partner_focus`.
    pub kind: &'static str,
    /// Rows written.
    pub rows: u64,
    /// Σ of the cost column (line_item_unblended_cost or BilledCost), exact.
    pub cost_total: String,
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
// Reading every column of an input file

/// CUR 2.0 columns typed double (reference: cur-and-focus.md section 2).
fn is_cur_double(name: &str) -> bool {
    const DOUBLES: &[&str] = &[
        "discount_bundled_discount",
        "discount_total_discount",
        "line_item_blended_cost",
        "line_item_net_unblended_cost",
        "line_item_normalization_factor",
        "line_item_normalized_usage_amount",
        "line_item_unblended_cost",
        "line_item_usage_amount",
        "pricing_public_on_demand_cost",
    ];
    DOUBLES.contains(&name)
        || ((name.starts_with("reservation_")
            || name.starts_with("savings_plan_")
            || name.starts_with("split_line_item_"))
            && !matches!(
                name,
                "reservation_availability_zone"
                    | "reservation_end_time"
                    | "reservation_modification_status"
                    | "reservation_reservation_a_r_n"
                    | "reservation_start_time"
                    | "reservation_subscription_id"
                    | "savings_plan_end_time"
                    | "savings_plan_instance_type_family"
                    | "savings_plan_offering_type"
                    | "savings_plan_payment_option"
                    | "savings_plan_purchase_term"
                    | "savings_plan_region"
                    | "savings_plan_savings_plan_a_r_n"
                    | "savings_plan_savings_plan_rate"
                    | "savings_plan_start_time"
                    | "split_line_item_parent_resource_id"
            ))
}

/// CUR 2.0 columns typed timestamp.
fn is_cur_timestamp(name: &str) -> bool {
    matches!(
        name,
        "bill_billing_period_end_date"
            | "bill_billing_period_start_date"
            | "line_item_usage_end_date"
            | "line_item_usage_start_date"
    )
}

/// Timestamps in the exports: milliseconds, UTC.
fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Where a FOCUS input column goes in the CUR-shaped row (the rest are recomputed or dropped).
fn cur_name_of_focus(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "chargeperiodstart" => "line_item_usage_start_date",
        "chargeperiodend" => "line_item_usage_end_date",
        "chargedescription" => "line_item_line_item_description",
        "resourceid" => "line_item_resource_id",
        "skuid" => "product_sku",
        "regionid" => "product_region_code",
        "pricingunit" => "pricing_unit",
        "availabilityzone" => "line_item_availability_zone",
        "subaccountname" => "line_item_usage_account_name",
        "publishername" => "line_item_legal_entity",
        "invoiceid" => "bill_invoice_id",
        "commitmentdiscountid" => "x_commitment_discount_id",
        "commitmentdiscountcategory" => "x_commitment_discount_category",
        "commitmentdiscountstatus" => "x_commitment_discount_status",
        _ => return None,
    })
}

/// The CUR-shaped name and export type of each column of a file; `None` for
/// columns not carried (FOCUS metrics, which are recomputed).
/// Whether a (snake_case) column name is a CUR column: one of the CUR 2.0 / legacy CUR
/// column families. Columns that loaders add (dlt's `_dlt_id`, Glue/Athena partitions
/// such as `billing_period`, `year`, `month`) are not, and never travel to an export.
pub fn is_cur_column(name: &str) -> bool {
    const FAMILIES: [&str; 16] = [
        "bill_",
        "identity_",
        "line_item_",
        "pricing_",
        "product_",
        "reservation_",
        "savings_plan_",
        "resource_tags_",
        "cost_category_",
        "discount_",
        "split_line_item_",
        "capacity_reservation_",
        "product",
        "resource_tags",
        "cost_category",
        "discount",
    ];
    FAMILIES[..12].iter().any(|f| name.starts_with(f)) || FAMILIES[12..].contains(&name)
}

/// Each input column's export name and type; `None` for columns that do not travel
/// (not a CUR column, or a FOCUS column without a CUR counterpart).
fn wide_columns(dialect: Dialect, schema: &Schema) -> Vec<Option<(String, DataType)>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let name = if dialect == Dialect::Focus {
                cur_name_of_focus(f.name())?.to_string()
            } else {
                let n = snake_name(f.name());
                if !is_cur_column(&n) {
                    return None;
                }
                n
            };
            let t = if is_cur_double(&name) {
                DataType::Float64
            } else if is_cur_timestamp(&name) {
                ts_type()
            } else if f.data_type().is_nested() {
                // Maps (tags, product attributes), lists and structs are carried as they are.
                f.data_type().clone()
            } else {
                DataType::Utf8
            };
            Some((name, t))
        })
        .collect()
}

enum Full {
    Parquet(parquet::arrow::arrow_reader::ParquetRecordBatchReader),
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        width: usize,
        row: u64,
        record: csv::ByteRecord,
    },
}

/// Every column of an input file, as batches of (cells, file row numbers).
struct FullReader {
    path: PathBuf,
    schema: SchemaRef,
    inner: Full,
    next_row: u64,
}

impl FullReader {
    fn open(path: &Path) -> Result<FullReader> {
        let mut magic = [0u8; 4];
        let n = File::open(path)
            .and_then(|mut f| f.read(&mut magic))
            .map_err(|e| Error::io(path, e))?;
        if n == 4 && &magic == b"PAR1" {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let b = ParquetRecordBatchReaderBuilder::try_new_with_options(
                file,
                ArrowReaderOptions::new().with_skip_arrow_metadata(true),
            )
            .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
            let schema = b.schema().clone();
            let reader = b
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| Error::input(path, format!("cannot read Parquet: {e}")))?;
            return Ok(FullReader {
                path: path.to_path_buf(),
                schema,
                inner: Full::Parquet(reader),
                next_row: 1,
            });
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let input: Box<dyn Read + Send> = if n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
            Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                file,
            )))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(input);
        let headers = reader
            .headers()
            .map_err(|e| Error::input(path, format!("cannot read the CSV header: {e}")))?
            .clone();
        let schema = Arc::new(Schema::new(
            headers
                .iter()
                .map(|h| {
                    Field::new(
                        h.trim().trim_start_matches('\u{feff}'),
                        DataType::Utf8,
                        true,
                    )
                })
                .collect::<Vec<_>>(),
        ));
        Ok(FullReader {
            path: path.to_path_buf(),
            schema,
            inner: Full::Csv {
                reader,
                width: headers.len(),
                row: 0,
                record: csv::ByteRecord::new(),
            },
            next_row: 1,
        })
    }

    fn next_batch(&mut self) -> Option<Result<(RecordBatch, Vec<u64>)>> {
        match &mut self.inner {
            Full::Parquet(r) => {
                let b = r.next()?;
                Some(
                    b.map_err(|e| Error::input(&self.path, e.to_string()))
                        .map(|b| {
                            let n = b.num_rows() as u64;
                            let rows = (self.next_row..self.next_row + n).collect();
                            self.next_row += n;
                            (b, rows)
                        }),
                )
            }
            Full::Csv {
                reader,
                width,
                row,
                record,
            } => {
                let width = *width;
                let mut builders: Vec<StringBuilder> =
                    (0..width).map(|_| StringBuilder::new()).collect();
                let mut rows = Vec::new();
                while rows.len() < BATCH_ROWS {
                    // Bytes, as the run's reader reads them: a row with invalid UTF-8 in a
                    // column the run ignores was rated and must be found again.
                    match reader.read_byte_record(record) {
                        Ok(false) => break,
                        Ok(true) => {}
                        // Rows a reader cannot parse were quarantined by the run: stop here,
                        // rated rows before them are all delivered.
                        Err(_) => break,
                    }
                    *row += 1;
                    if record.len() == 1 && record[0].is_empty() {
                        *row -= 1;
                        continue;
                    }
                    if record.len() != width {
                        continue;
                    }
                    rows.push(*row);
                    for (b, cell) in builders.iter_mut().zip(record.iter()) {
                        let cell = String::from_utf8_lossy(cell);
                        let t = cell.trim();
                        if t.is_empty() || t.eq_ignore_ascii_case("null") {
                            b.append_null();
                        } else {
                            b.append_value(t);
                        }
                    }
                }
                if rows.is_empty() {
                    return None;
                }
                let columns: Vec<ArrayRef> = builders
                    .into_iter()
                    .map(|mut b| Arc::new(b.finish()) as ArrayRef)
                    .collect();
                Some(
                    RecordBatch::try_new(self.schema.clone(), columns)
                        .map_err(|e| Error::input(&self.path, e.to_string()))
                        .map(|b| (b, rows)),
                )
            }
        }
    }
}

/// Batches read ahead from the full reader, kept until the rated rows pass them.
struct Aligner {
    reader: FullReader,
    queue: Vec<(RecordBatch, Vec<u64>)>,
}

impl Aligner {
    /// (batch index in `queue`, row index) of each wanted row number (ascending).
    fn locate(&mut self, wanted: &[u64]) -> Result<Vec<(usize, usize)>> {
        let Some(&last) = wanted.last() else {
            return Ok(Vec::new());
        };
        while self
            .queue
            .last()
            .is_none_or(|(_, rows)| rows.last().is_none_or(|&l| l < last))
        {
            match self.reader.next_batch() {
                Some(x) => self.queue.push(x?),
                None => break,
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut b = 0usize;
        for &r in wanted {
            while b < self.queue.len() && self.queue[b].1.last().is_none_or(|&l| l < r) {
                b += 1;
            }
            let found = self
                .queue
                .get(b)
                .and_then(|(_, rows)| rows.binary_search(&r).ok());
            match found {
                Some(p) => out.push((b, p)),
                None => {
                    return Err(Error::input(
                        &self.reader.path,
                        format!("internal: row {r} was rated but is missing when the file is read again for the exports (was it changed during the run?)"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Forgets batches whose rows all come before `row`.
    fn release(&mut self, row: u64) {
        let keep_from = self
            .queue
            .iter()
            .position(|(_, rows)| rows.last().is_some_and(|&l| l >= row))
            .unwrap_or(self.queue.len());
        self.queue.drain(..keep_from);
    }
}

// ---------------------------------------------------------------------------
// Writers

/// A dataset file being written (Parquet, or CSV with formula-safe text), or
/// rolled up in memory and written at `finish` (`--granularity daily|monthly`).
enum Sink {
    Parquet(Box<ArrowWriter<BufWriter<File>>>),
    Csv(BufWriter<File>, bool),
    RollUp(Box<RollUp>, BufWriter<File>),
}

/// Rows per batch of a rolled-up file as it is written.
const ROLLED_BATCH_ROWS: usize = 65_536;

struct Dataset {
    path: PathBuf,
    rel: String,
    /// `cur`, `focus` or `partner_focus`.
    kind: &'static str,
    schema: SchemaRef,
    sink: Option<Sink>,
    format: ExportFormat,
    /// Rows written (line rows; the rolled-up rows once a roll-up is finished).
    rows: u64,
    cost_total: i128,
}

/// The Parquet writer settings of every export file.
fn parquet_props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        // Min/max statistics cost a comparison per text cell (a fifth of the
        // writing time, measured); readers scan these files whole anyway.
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        // A row group is buffered whole before it is written: 128K rows (not the
        // default 1M) keeps an org's three open datasets small in memory.
        .set_max_row_group_row_count(Some(131_072))
        .set_created_by(format!("billxfer {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A CSV header row: the column names, formula-neutralized and quoted as needed.
fn write_csv_header(w: &mut impl Write, schema: &Schema) -> std::io::Result<()> {
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| crate::render::csv_field(f.name()))
        .collect();
    writeln!(w, "{}", names.join(","))
}

/// A rolled-up batch as written: for CUR, the exact decimal sums become the
/// nearest doubles (CUR's cost and amount columns are doubles; docs/EXPORTS.md).
fn rolled_for_output(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema().fields() == schema.fields() {
        return Ok(batch);
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| match (c.data_type(), f.data_type()) {
            (DataType::Decimal128(_, 10), DataType::Float64) => Ok(Arc::new(
                c.as_primitive::<arrow::datatypes::Decimal128Type>()
                    .iter()
                    .map(|v| v.map(f64_of))
                    .collect::<arrow::array::Float64Array>(),
            ) as ArrayRef),
            (a, b) if a == b => Ok(c.clone()),
            (a, b) => Err(Error::Overflow(format!(
                "internal: a rolled-up {a} column written as {b}"
            ))),
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Overflow(format!("writing a roll-up: {e}")))
}

impl Dataset {
    /// A dataset file at `root/rel`; with `roll_up`, its rows are rolled up
    /// (they arrive with CUR doubles as exact Decimal128(38,10), see `OrgCtx::rolled`).
    fn create(
        root: &Path,
        rel: String,
        kind: &'static str,
        schema: SchemaRef,
        format: ExportFormat,
        roll_up: Option<RollUpSpec>,
    ) -> Result<Dataset> {
        let path = root.join(&rel);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::Output {
                path: d.to_path_buf(),
                source: e,
            })?;
        }
        let file = File::create(&path).map_err(|e| Error::Output {
            path: path.clone(),
            source: e,
        })?;
        let w = BufWriter::with_capacity(1 << 20, file);
        let sink = match (roll_up, format) {
            (Some(spec), _) => Sink::RollUp(Box::new(RollUp::new(schema.clone(), spec)?), w),
            (None, ExportFormat::Parquet) => Sink::Parquet(Box::new(
                ArrowWriter::try_new(w, schema.clone(), Some(parquet_props()))
                    .map_err(|e| Error::Overflow(format!("{}: {e}", path.display())))?,
            )),
            (None, ExportFormat::Csv) => Sink::Csv(w, false),
        };
        Ok(Dataset {
            path,
            rel,
            kind,
            schema,
            sink: Some(sink),
            format,
            rows: 0,
            cost_total: 0,
        })
    }

    fn write(&mut self, batch: &RecordBatch, cost: i128) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        self.cost_total = self
            .cost_total
            .checked_add(cost)
            .ok_or_else(|| Error::Overflow("summing an export".into()))?;
        let err = |path: &Path, e: String| Error::Output {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        match self.sink.as_mut() {
            Some(Sink::Parquet(w)) => w.write(batch).map_err(|e| err(&self.path, e.to_string())),
            Some(Sink::Csv(w, header)) => {
                if !*header {
                    write_csv_header(w, &self.schema)
                        .map_err(|e| err(&self.path, e.to_string()))?;
                    *header = true;
                }
                write_csv_rows(w, batch).map_err(|e| err(&self.path, e.to_string()))
            }
            Some(Sink::RollUp(agg, _)) => agg.push(batch),
            None => Ok(()),
        }
    }

    /// Writes the rolled-up rows: checks they still sum to the lines' total, then
    /// writes them sorted by key, CUR metrics as doubles.
    fn finish_roll_up(&mut self, agg: RollUp, w: BufWriter<File>) -> Result<()> {
        let err = |path: &Path, e: String| Error::Output {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        // The rolled-up rows must still sum to the invoice.
        let total = agg.metric_total(agg.spec().cost)?;
        if total != self.cost_total {
            return Err(Error::Overflow(format!(
                "internal: the {} roll-up of {} sums to {} instead of {}",
                self.kind,
                self.rel,
                format_fixed_exact(total),
                format_fixed_exact(self.cost_total)
            )));
        }
        let exact = agg.output_schema();
        let schema: SchemaRef = if agg.spec().metrics == Metrics::Decimals {
            // CUR's cost and amount columns are doubles.
            Arc::new(Schema::new(
                exact
                    .fields()
                    .iter()
                    .map(|f| match f.data_type() {
                        DataType::Decimal128(_, _) => {
                            Field::new(f.name(), DataType::Float64, f.is_nullable())
                        }
                        _ => f.as_ref().clone(),
                    })
                    .collect::<Vec<_>>(),
            ))
        } else {
            exact
        };
        let mut rows = 0u64;
        let path = self.path.clone();
        match self.format {
            ExportFormat::Parquet => {
                let mut pw = ArrowWriter::try_new(w, schema.clone(), Some(parquet_props()))
                    .map_err(|e| Error::Overflow(format!("{}: {e}", path.display())))?;
                agg.finish_with(ROLLED_BATCH_ROWS, |b| {
                    let b = rolled_for_output(b, &schema)?;
                    rows += b.num_rows() as u64;
                    pw.write(&b).map_err(|e| err(&path, e.to_string()))
                })?;
                pw.close().map_err(|e| err(&path, e.to_string()))?;
            }
            ExportFormat::Csv => {
                let mut w = w;
                write_csv_header(&mut w, &schema).map_err(|e| err(&path, e.to_string()))?;
                agg.finish_with(ROLLED_BATCH_ROWS, |b| {
                    let b = rolled_for_output(b, &schema)?;
                    rows += b.num_rows() as u64;
                    write_csv_rows(&mut w, &b).map_err(|e| err(&path, e.to_string()))
                })?;
                w.flush().map_err(|e| err(&path, e.to_string()))?;
            }
        }
        self.rows = rows;
        Ok(())
    }

    fn finish(mut self) -> Result<(PathBuf, String, u64, i128)> {
        let err = |path: &Path, e: String| Error::Output {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        };
        match self.sink.take() {
            Some(Sink::Parquet(w)) => {
                w.close().map_err(|e| err(&self.path, e.to_string()))?;
            }
            Some(Sink::Csv(mut w, header)) => {
                if !header {
                    write_csv_header(&mut w, &self.schema)
                        .map_err(|e| err(&self.path, e.to_string()))?;
                }
                w.flush().map_err(|e| err(&self.path, e.to_string()))?;
            }
            Some(Sink::RollUp(agg, w)) => self.finish_roll_up(*agg, w)?,
            None => {}
        }
        Ok((self.path, self.rel, self.rows, self.cost_total))
    }
}

/// CSV cells: text formula-neutralized and quoted as needed, decimals exact,
/// timestamps ISO 8601 UTC, doubles in their shortest round-trip form, maps as JSON.
fn write_csv_rows(w: &mut impl Write, batch: &RecordBatch) -> std::io::Result<()> {
    let cols: Vec<Vec<String>> = batch.columns().iter().map(csv_cells).collect();
    let mut line = String::new();
    for i in 0..batch.num_rows() {
        line.clear();
        for (k, c) in cols.iter().enumerate() {
            if k > 0 {
                line.push(',');
            }
            line.push_str(&c[i]);
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

fn csv_cells(a: &ArrayRef) -> Vec<String> {
    let n = a.len();
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            s.iter()
                .map(|v| v.map(crate::render::csv_field).unwrap_or_default())
                .collect()
        }
        DataType::Decimal128(_, _) => {
            let d = a.as_primitive::<arrow::datatypes::Decimal128Type>();
            d.iter()
                .map(|v| v.map(format_fixed_exact).unwrap_or_default())
                .collect()
        }
        DataType::Float64 => {
            let d = a.as_primitive::<arrow::datatypes::Float64Type>();
            d.iter()
                .map(|v| {
                    v.map(|x| {
                        let mut b = ryu::Buffer::new();
                        let s = b.format(x).to_string();
                        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
                    })
                    .unwrap_or_default()
                })
                .collect()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let d = a.as_primitive::<arrow::datatypes::TimestampMillisecondType>();
            d.iter()
                .map(|v| v.map(iso_from_millis).unwrap_or_default())
                .collect()
        }
        DataType::Map(_, _) => map_pairs(a.as_map())
            .into_iter()
            .map(|p| {
                p.map(|p| crate::render::csv_field(&pairs_json(&p)))
                    .unwrap_or_default()
            })
            .collect(),
        _ => match cast(a, &DataType::Utf8) {
            Ok(s) => s
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(crate::render::csv_field).unwrap_or_default())
                .collect(),
            // Lists and structs: arrow's display form.
            Err(_) => {
                match arrow::util::display::ArrayFormatter::try_new(a.as_ref(), &Default::default())
                {
                    Ok(f) => (0..n)
                        .map(|i| {
                            if a.is_null(i) {
                                String::new()
                            } else {
                                crate::render::csv_field(&f.value(i).to_string())
                            }
                        })
                        .collect(),
                    Err(_) => vec![String::new(); n],
                }
            }
        },
    }
}

/// A map cell's (key, value) text pairs.
type Pairs = Vec<(String, Option<String>)>;

/// Each map cell as its (key, value) text pairs; keys and values are cast to text once per column.
fn map_pairs(m: &MapArray) -> Vec<Option<Pairs>> {
    let keys = cast(m.keys(), &DataType::Utf8).ok();
    let values = cast(m.values(), &DataType::Utf8).ok();
    let offsets = m.value_offsets();
    (0..m.len())
        .map(|i| {
            if m.is_null(i) {
                return None;
            }
            let (Some(k), Some(v)) = (keys.as_ref(), values.as_ref()) else {
                return Some(Vec::new());
            };
            let (k, v) = (k.as_string::<i32>(), v.as_string::<i32>());
            let range = offsets[i] as usize..offsets[i + 1] as usize;
            Some(
                range
                    .filter(|&j| k.is_valid(j))
                    .map(|j| {
                        (
                            k.value(j).to_string(),
                            v.is_valid(j).then(|| v.value(j).to_string()),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A map's pairs as a JSON object (FOCUS KeyValueFormat: unique keys, text or null values).
fn pairs_json(pairs: &[(String, Option<String>)]) -> String {
    let mut out = String::with_capacity(2 + pairs.len() * 24);
    out.push('{');
    let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        // FOCUS keys are unique: the first value of a repeated key wins.
        if seen.contains(&k.as_str()) {
            continue;
        }
        if !seen.is_empty() {
            out.push(',');
        }
        seen.push(k);
        out.push_str(&serde_json::Value::String(k.clone()).to_string());
        out.push(':');
        match v {
            Some(v) => out.push_str(&serde_json::Value::String(v.clone()).to_string()),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    out
}

// ---------------------------------------------------------------------------
// Building export rows

/// A chunk's selected rows, with their cells and amounts.
struct Selected<'a> {
    /// Wide (CUR-shaped, typed) columns by name.
    wide: BTreeMap<String, ArrayRef>,
    /// Normalized batch rows (indexes into `norm`) in output order.
    idx: Vec<usize>,
    norm: &'a RecordBatch,
    /// Final amount of each selected row on the track.
    amount: Vec<i128>,
    /// Effective (amortized) amount of each selected row on the track.
    effective: Vec<i128>,
    /// Whether the track rated the row (vs. took it as delivered).
    rated: Vec<bool>,
    /// Line item type, usage amount, public rate and public cost of each selected row.
    lt: Vec<LineType>,
    usage: Vec<i128>,
    public_rate: Vec<Option<i128>>,
    public_cost: Vec<Option<i128>>,
}

impl<'a> Selected<'a> {
    fn new(
        wide: BTreeMap<String, ArrayRef>,
        idx: Vec<usize>,
        norm: &'a RecordBatch,
        amount: Vec<i128>,
        effective: Vec<i128>,
        rated: Vec<bool>,
    ) -> Result<Selected<'a>> {
        let missing = |c: &str| Error::Overflow(format!("internal: normalized column {c} missing"));
        let dec = |c: &str| {
            norm.column_by_name(c)
                .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
                .ok_or_else(|| missing(c))
        };
        let types = norm
            .column_by_name(col::LINE_TYPE)
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::UInt8Type>())
            .ok_or_else(|| missing(col::LINE_TYPE))?;
        let (usage, rate, cost) = (
            dec(col::USAGE)?,
            dec(col::PUBLIC_RATE)?,
            dec(col::PUBLIC_COST)?,
        );
        let opt = |a: &Decimal128Array, r: usize| a.is_valid(r).then(|| a.value(r));
        Ok(Selected {
            lt: idx
                .iter()
                .map(|&r| LineType::from_code(types.value(r)).unwrap_or(LineType::Usage))
                .collect(),
            usage: idx.iter().map(|&r| usage.value(r)).collect(),
            public_rate: idx.iter().map(|&r| opt(rate, r)).collect(),
            public_cost: idx.iter().map(|&r| opt(cost, r)).collect(),
            wide,
            idx,
            norm,
            amount,
            effective,
            rated,
        })
    }

    /// A carried text column, for per-row access.
    fn text_col(&self, name: &str) -> TextCol<'_> {
        TextCol(self.wide.get(name).and_then(|a| a.as_string_opt::<i32>()))
    }

    /// A carried timestamp column (ms, UTC), for per-row access.
    fn millis_col(&self, name: &str) -> Option<&TimestampMillisecondArray> {
        self.wide
            .get(name)
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::TimestampMillisecondType>())
    }

    /// A carried text column (empty strings as nulls, as FOCUS asks), or nulls when not carried.
    fn wide_strings(&self, name: &str) -> ArrayRef {
        let n = self.idx.len();
        match self.wide.get(name).and_then(|a| a.as_string_opt::<i32>()) {
            Some(s) => blank_as_null(s),
            None => arrow::array::new_null_array(&DataType::Utf8, n),
        }
    }

    /// A normalized text column at the selected rows, as plain strings.
    fn norm_strings(&self, name: &str, empty_as_null: bool) -> Result<ArrayRef> {
        let err = |e: arrow::error::ArrowError| Error::Overflow(format!("selecting {name}: {e}"));
        let a = self.norm.column_by_name(name).ok_or_else(|| {
            Error::Overflow(format!("internal: normalized column {name} missing"))
        })?;
        let idx = UInt32Array::from_iter_values(self.idx.iter().map(|&i| i as u32));
        let picked = arrow::compute::take(a, &idx, None).map_err(err)?;
        let s = cast(&picked, &DataType::Utf8).map_err(err)?;
        Ok(if empty_as_null {
            blank_as_null(s.as_string::<i32>())
        } else {
            s
        })
    }
}

/// Text with empty strings as nulls (FOCUS NullHandling: no empty placeholders).
fn blank_as_null(s: &StringArray) -> ArrayRef {
    if s.iter().any(|v| v == Some("")) {
        Arc::new(
            s.iter()
                .map(|v| v.filter(|v| !v.is_empty()))
                .collect::<StringArray>(),
        )
    } else {
        Arc::new(s.clone())
    }
}

/// A carried text column, possibly absent.
struct TextCol<'a>(Option<&'a StringArray>);

impl<'a> TextCol<'a> {
    /// Row `i`'s text, `None` when absent, null or empty.
    fn get(&self, i: usize) -> Option<&'a str> {
        let s = self.0?;
        if s.is_null(i) {
            return None;
        }
        Some(s.value(i)).filter(|v| !v.is_empty())
    }
}

/// Text computed per row.
fn strings<'x>(n: usize, f: impl Fn(usize) -> Option<&'x str>) -> ArrayRef {
    Arc::new((0..n).map(f).collect::<StringArray>())
}

/// The same text on every row.
fn constant(v: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, n)))
}

/// Text computed per row from a text column.
fn mapped(a: &ArrayRef, f: impl Fn(&str) -> &'static str) -> ArrayRef {
    let s = a.as_string::<i32>();
    Arc::new(s.iter().map(|v| v.map(&f)).collect::<StringArray>())
}

/// Typed wide columns of the selected rows: each carried column cast to its export type.
fn wide_selection(
    aligner: &Aligner,
    kinds: &[Option<(String, DataType)>],
    at: &[(usize, usize)],
) -> Result<BTreeMap<String, ArrayRef>> {
    let mut out = BTreeMap::new();
    if at.is_empty() {
        return Ok(out);
    }
    let err = |e: arrow::error::ArrowError| Error::input(&aligner.reader.path, e.to_string());
    for (c, kind) in kinds.iter().enumerate() {
        let Some((name, t)) = kind else {
            continue;
        };
        if out.contains_key(name) {
            continue;
        }
        let parts: Vec<&dyn Array> = aligner
            .queue
            .iter()
            .map(|(b, _)| b.column(c).as_ref())
            .collect();
        let picked = interleave(&parts, at).map_err(err)?;
        let typed = if picked.data_type() == t {
            picked
        } else if matches!(t, DataType::Utf8)
            && crate::ingest::parquet::is_integer(picked.data_type())
            && name.ends_with("_account_id")
        {
            // Readers that typed account ids as integers dropped leading zeros: restore 12 digits.
            let v = cast(&picked, &DataType::Int64).map_err(err)?;
            Arc::new(
                v.as_primitive::<arrow::datatypes::Int64Type>()
                    .iter()
                    .map(|x| x.map(|x| format!("{x:012}")))
                    .collect::<StringArray>(),
            )
        } else if matches!(t, DataType::Utf8)
            && matches!(
                picked.data_type(),
                DataType::Dictionary(_, _) | DataType::LargeUtf8 | DataType::Utf8View
            )
        {
            cast(&picked, t).map_err(err)?
        } else if matches!(t, DataType::Float64)
            && matches!(
                picked.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            )
        {
            // Text amounts: parsed exactly, then the nearest double.
            let s = cast(&picked, &DataType::Utf8).map_err(err)?;
            Arc::new(
                s.as_string::<i32>()
                    .iter()
                    .map(|v| {
                        v.and_then(|t| crate::money::parse_fixed(t.trim()).ok())
                            .map(f64_of)
                    })
                    .collect::<arrow::array::Float64Array>(),
            )
        } else if matches!(t, DataType::Timestamp(_, _)) {
            let s = match picked.data_type() {
                DataType::Timestamp(_, _) => picked,
                _ => {
                    let text = cast(&picked, &DataType::Utf8).map_err(err)?;
                    Arc::new(
                        text.as_string::<i32>()
                            .iter()
                            .map(|v| v.and_then(parse_iso_millis))
                            .collect::<TimestampMillisecondArray>(),
                    ) as ArrayRef
                }
            };
            to_utc_millis(&s).map_err(err)?
        } else {
            arrow::compute::kernels::cast::cast_with_options(
                &picked,
                t,
                &arrow::compute::CastOptions {
                    safe: true,
                    ..Default::default()
                },
            )
            .map_err(err)?
        };
        out.insert(name.clone(), typed);
    }
    Ok(out)
}

/// `YYYY-MM-DD[THH:mm:ss[.fff]][Z]` as milliseconds since 1970 (UTC).
fn parse_iso_millis(t: &str) -> Option<i64> {
    let t = t.trim();
    let p = crate::types::BillingPeriod::from_iso_prefix(t)?;
    let day: i64 = t.get(8..10)?.parse().ok()?;
    let (h, mi, s) = if t.len() >= 19 {
        (
            t.get(11..13)?.parse::<i64>().ok()?,
            t.get(14..16)?.parse::<i64>().ok()?,
            t.get(17..19)?.parse::<i64>().ok()?,
        )
    } else {
        (0, 0, 0)
    };
    Some(p.start_micros() / 1000 + ((day - 1) * 86_400 + h * 3600 + mi * 60 + s) * 1000)
}

/// Columns a customer never sees in the pro forma CUR: non-public discounts and
/// everything net of them (docs/EXPORTS.md).
fn is_confidential_column(name: &str) -> bool {
    name.contains("_net_")
        || name.starts_with("line_item_net_")
        || name == "discount"
        || name.starts_with("discount_")
}

/// FOCUS input columns carried for the FOCUS export only (not CUR columns).
fn is_focus_only_column(name: &str) -> bool {
    name.starts_with("x_commitment_")
}

/// Core CUR 2.0 columns every pro forma CUR export has, whatever the input carried.
const CUR_CORE: &[(&str, bool)] = &[
    ("bill_billing_period_start_date", true),
    ("bill_billing_period_end_date", true),
    ("bill_payer_account_id", false),
    ("bill_payer_account_name", false),
    ("bill_invoice_id", false),
    ("line_item_usage_account_id", false),
    ("line_item_line_item_type", false),
    ("line_item_product_code", false),
    ("line_item_usage_type", false),
    ("line_item_operation", false),
    ("product_region_code", false),
    ("line_item_line_item_description", false),
    ("line_item_usage_start_date", true),
    ("line_item_usage_end_date", true),
    ("line_item_usage_amount", false),
    ("line_item_currency_code", false),
    ("line_item_unblended_rate", false),
    ("line_item_unblended_cost", false),
    ("pricing_public_on_demand_rate", false),
    ("pricing_public_on_demand_cost", false),
];

/// The customer CUR schema: core columns, then every carried column of the
/// org's files in first-seen order, minus confidential ones.
fn cur_schema(files_kinds: &[Vec<Option<(String, DataType)>>], exact: bool) -> SchemaRef {
    let double = if exact {
        DataType::Decimal128(38, 10)
    } else {
        DataType::Float64
    };
    let mut fields: Vec<Field> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let type_of = |name: &str, ts: bool| {
        if ts {
            ts_type()
        } else if is_cur_double(name) {
            double.clone()
        } else {
            DataType::Utf8
        }
    };
    for (name, ts) in CUR_CORE {
        seen.insert(name.to_string());
        fields.push(Field::new(*name, type_of(name, *ts), true));
    }
    for kinds in files_kinds {
        for (name, t) in kinds.iter().flatten() {
            if is_confidential_column(name)
                || is_focus_only_column(name)
                || !seen.insert(name.clone())
            {
                continue;
            }
            let t = if t == &DataType::Float64 {
                double.clone()
            } else {
                t.clone()
            };
            fields.push(Field::new(name, t, true));
        }
    }
    Arc::new(Schema::new(fields))
}

/// Per-org context of the export pass.
struct OrgCtx<'a> {
    config: &'a Config,
    period: BillingPeriod,
    result: &'a OrgResult,
    /// Customer org name, management account and pro forma invoice number (customers only).
    customer: Option<(&'a str, &'a str, String)>,
    mgmt: &'a str,
    currency: &'a str,
    opts: ExportOptions,
    /// Rolled up (`--granularity daily|monthly`): rows are built with CUR doubles
    /// as exact decimals, summed, and only the sums become doubles.
    rolled: bool,
}

impl OrgCtx<'_> {
    /// A CUR money/amount column: doubles in line-level files, exact decimals for a roll-up.
    fn amounts(&self, v: Vec<Option<i128>>) -> Result<ArrayRef> {
        if self.rolled {
            decs(v)
        } else {
            Ok(doubles(v))
        }
    }

    /// How a dataset of `focus` or CUR rows rolls up, if it does.
    fn roll_up(&self, focus: bool) -> Option<RollUpSpec> {
        let per = Per::of(self.opts.granularity)?;
        Some(if focus {
            RollUpSpec::focus(per)
        } else {
            RollUpSpec::cur(per)
        })
    }
}

/// Text column builder from per-row options.
fn texts(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(v.into_iter().collect::<StringArray>())
}

fn decs(v: Vec<Option<i128>>) -> Result<ArrayRef> {
    let mut b = Decimal128Builder::with_capacity(v.len());
    for x in v {
        b.append_option(x);
    }
    Ok(Arc::new(
        b.finish()
            .with_precision_and_scale(38, 10)
            .map_err(|e| Error::Overflow(e.to_string()))?,
    ))
}

fn times(v: Vec<Option<i64>>) -> ArrayRef {
    let mut b = TimestampMillisecondBuilder::with_capacity(v.len());
    for x in v {
        b.append_option(x);
    }
    Arc::new(b.finish().with_timezone("UTC"))
}

fn doubles(v: Vec<Option<i128>>) -> ArrayRef {
    Arc::new(
        v.into_iter()
            .map(|x| x.map(f64_of))
            .collect::<arrow::array::Float64Array>(),
    )
}

/// FOCUS ChargeCategory of a CUR line item type.
pub fn charge_category(lt: LineType) -> &'static str {
    use LineType::*;
    match lt {
        Fee | RIFee | SavingsPlanUpfrontFee | SavingsPlanRecurringFee => "Purchase",
        Tax => "Tax",
        Credit => "Credit",
        Refund => "Adjustment",
        _ => "Usage",
    }
}

/// FOCUS ChargeFrequency of a CUR line item type.
fn charge_frequency(lt: LineType) -> &'static str {
    use LineType::*;
    match charge_category(lt) {
        "Usage" => "Usage-Based",
        _ => match lt {
            RIFee | SavingsPlanRecurringFee | Tax => "Recurring",
            _ => "One-Time",
        },
    }
}

/// The CUR pro forma batch for selected rows (customer view).
fn cur_batch(ctx: &OrgCtx<'_>, s: &Selected<'_>, schema: &SchemaRef) -> Result<RecordBatch> {
    let n = s.idx.len();
    let (name, mgmt, _) = ctx
        .customer
        .as_ref()
        .ok_or_else(|| Error::Overflow("internal: CUR export for the partner".into()))?;
    let start = ctx.period.start_micros() / 1000;
    let end = ctx.period.next().start_micros() / 1000;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        let c: ArrayRef = match f.name().as_str() {
            "bill_billing_period_start_date" => times(vec![Some(start); n]),
            "bill_billing_period_end_date" => times(vec![Some(end); n]),
            "bill_payer_account_id" => constant(mgmt, n),
            "bill_payer_account_name" => constant(name, n),
            "bill_invoice_id" => arrow::array::new_null_array(&DataType::Utf8, n),
            "line_item_usage_account_id" => s.norm_strings(col::ACCOUNT, false)?,
            "line_item_line_item_type" => Arc::new(StringArray::from_iter_values(
                s.lt.iter().map(|t| t.as_str()),
            )),
            "line_item_product_code" => s.norm_strings(col::PRODUCT, false)?,
            "line_item_usage_type" => s.norm_strings(col::USAGE_TYPE, true)?,
            "line_item_operation" => s.norm_strings(col::OPERATION, true)?,
            "product_region_code" => s.norm_strings(col::REGION, true)?,
            "line_item_usage_amount" => ctx.amounts(s.usage.iter().map(|u| Some(*u)).collect())?,
            "line_item_currency_code" => constant(ctx.currency, n),
            "line_item_unblended_cost" | "line_item_blended_cost" => {
                ctx.amounts(s.amount.iter().map(|a| Some(*a)).collect())?
            }
            "line_item_unblended_rate" | "line_item_blended_rate" => {
                let own_rate = s.text_col(f.name());
                let unblended_rate = s.text_col("line_item_unblended_rate");
                Arc::new(
                    (0..n)
                        .map(|i| {
                            if s.rated[i] {
                                div_fixed(s.amount[i], s.usage[i]).map(format_fixed_exact)
                            } else {
                                own_rate
                                    .get(i)
                                    .or_else(|| unblended_rate.get(i))
                                    .map(str::to_string)
                            }
                        })
                        .collect::<StringArray>(),
                )
            }
            // The public rate as the input wrote it, else the value read.
            "pricing_public_on_demand_rate" => match s.wide.get("pricing_public_on_demand_rate") {
                Some(a) if a.data_type() == &DataType::Utf8 => a.clone(),
                _ => Arc::new(
                    s.public_rate
                        .iter()
                        .map(|r| r.map(format_fixed_exact))
                        .collect::<StringArray>(),
                ),
            },
            "pricing_public_on_demand_cost" => ctx.amounts(s.public_cost.clone())?,
            other => match s.wide.get(other) {
                Some(a) if a.data_type() == f.data_type() => a.clone(),
                Some(a) => cast(a, f.data_type()).map_err(|e| Error::Overflow(e.to_string()))?,
                None => arrow::array::new_null_array(f.data_type(), n),
            },
        };
        columns.push(c);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Overflow(format!("building the CUR export: {e}")))
}

/// Unit price and cost fields of a FOCUS row (docs/EXPORTS.md): list from the
/// public rate, contracted from the row's own amount, products exact at 10 decimals.
struct Priced {
    quantity: Option<i128>,
    list_unit: Option<i128>,
    list_cost: i128,
    contracted_unit: Option<i128>,
    contracted_cost: i128,
}

fn priced(category: &str, amount: i128, qty: i128, public_rate: Option<i128>) -> Result<Priced> {
    let overflow = || Error::Overflow("pricing a FOCUS row".into());
    if !matches!(category, "Usage" | "Purchase") {
        return Ok(Priced {
            quantity: None,
            list_unit: None,
            list_cost: amount,
            contracted_unit: None,
            contracted_cost: amount,
        });
    }
    let list_unit = public_rate.filter(|r| *r >= 0).unwrap_or(0);
    let list_cost = mul_fixed(list_unit, qty).ok_or_else(overflow)?;
    let contracted_unit = div_fixed(amount, qty)
        .filter(|p| *p >= 0)
        .unwrap_or(list_unit);
    let contracted_cost = mul_fixed(contracted_unit, qty).ok_or_else(overflow)?;
    Ok(Priced {
        quantity: Some(qty),
        list_unit: Some(list_unit),
        list_cost,
        contracted_unit: Some(contracted_unit),
        contracted_cost,
    })
}

/// Tags of each row as a FOCUS KeyValueFormat JSON object: from the CUR 2.0
/// `resource_tags` map (`user_` prefix dropped) or legacy `resource_tags_user_*` /
/// `resource_tags_aws_*` columns; user tags unprefixed, AWS tags `aws:`.
fn tags_column(s: &Selected<'_>) -> ArrayRef {
    let n = s.idx.len();
    let mut rows: Vec<Pairs> = vec![Vec::new(); n];
    if let Some(m) = s.wide.get("resource_tags").and_then(|a| a.as_map_opt()) {
        for (row, pairs) in rows.iter_mut().zip(map_pairs(m)) {
            for (k, v) in pairs.unwrap_or_default() {
                let k = k.strip_prefix("user_").map(str::to_string).unwrap_or(k);
                row.push((k, v));
            }
        }
    }
    for (name, a) in &s.wide {
        let key = if let Some(k) = name.strip_prefix("resource_tags_user_") {
            k.to_string()
        } else if let Some(k) = name.strip_prefix("resource_tags_aws_") {
            format!("aws:{k}")
        } else {
            continue;
        };
        let Some(a) = a.as_string_opt::<i32>() else {
            continue;
        };
        for (i, row) in rows.iter_mut().enumerate() {
            if a.is_valid(i) && !a.value(i).is_empty() {
                row.push((key.clone(), Some(a.value(i).to_string())));
            }
        }
    }
    Arc::new(
        rows.into_iter()
            .map(|r| (!r.is_empty()).then(|| pairs_json(&r)))
            .collect::<StringArray>(),
    )
}

/// The FOCUS batch for selected rows: pro forma for a customer, actual for the partner.
fn focus_batch(ctx: &OrgCtx<'_>, s: &Selected<'_>, partner: bool) -> Result<RecordBatch> {
    let n = s.idx.len();
    let schema = focus::schema(partner);
    let start = ctx.period.start_micros() / 1000;
    let end = ctx.period.next().start_micros() / 1000;
    let org_name = ctx
        .customer
        .as_ref()
        .map(|c| c.0)
        .unwrap_or(ctx.config.partner.name.as_str());
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    let mut category = Vec::with_capacity(n);
    let mut prices = Vec::with_capacity(n);
    for i in 0..n {
        let cat = charge_category(s.lt[i]);
        category.push(cat);
        prices.push(priced(cat, s.amount[i], s.usage[i], s.public_rate[i])?);
    }
    let product = s.norm_strings(col::PRODUCT, false)?;
    let bill_invoicing_entity = s.text_col("bill_invoicing_entity");
    let li_legal_entity = s.text_col("line_item_legal_entity");
    let pricing_rate_code = s.text_col("pricing_rate_code");
    let pricing_rate_id = s.text_col("pricing_rate_id");
    let pricing_unit = s.text_col("pricing_unit");
    let reservation_reservation_a_r_n = s.text_col("reservation_reservation_a_r_n");
    let savings_plan_savings_plan_a_r_n = s.text_col("savings_plan_savings_plan_a_r_n");
    let x_commitment_discount_id = s.text_col("x_commitment_discount_id");
    let x_commitment_discount_status = s.text_col("x_commitment_discount_status");
    let usage_end = s.millis_col("line_item_usage_end_date");
    let usage_start = s.millis_col("line_item_usage_start_date");
    let account = s.norm_strings(col::ACCOUNT, false)?;
    let commitment: Vec<Option<(String, &str, &str)>> = (0..n)
        .map(|i| {
            use LineType::*;
            let sp = savings_plan_savings_plan_a_r_n.get(i).map(str::to_string);
            let ri = reservation_reservation_a_r_n.get(i).map(str::to_string);
            let x = x_commitment_discount_id.get(i).map(str::to_string);
            match s.lt[i] {
                SavingsPlanCoveredUsage
                | SavingsPlanNegation
                | SavingsPlanRecurringFee
                | SavingsPlanUpfrontFee => sp.or(x).map(|id| (id, "Spend", "Savings Plan")),
                DiscountedUsage | RIFee | Fee => {
                    ri.or(x).map(|id| (id, "Usage", "Reserved Instance"))
                }
                _ => None,
            }
        })
        .collect();
    let region = s.norm_strings(col::REGION, true)?;
    let services = mapped(&product, focus::service_category);
    cols.insert(
        "AvailabilityZone",
        s.wide_strings("line_item_availability_zone"),
    );
    cols.insert(
        "BilledCost",
        decs(s.amount.iter().map(|a| Some(*a)).collect())?,
    );
    cols.insert("BillingAccountId", constant(ctx.mgmt, n));
    cols.insert("BillingAccountName", constant(org_name, n));
    cols.insert("BillingAccountType", constant("Management account", n));
    cols.insert("BillingCurrency", constant(ctx.currency, n));
    cols.insert("BillingPeriodEnd", times(vec![Some(end); n]));
    cols.insert("BillingPeriodStart", times(vec![Some(start); n]));
    cols.insert("ChargeCategory", strings(n, |i| Some(category[i])));
    cols.insert(
        "ChargeDescription",
        s.wide_strings("line_item_line_item_description"),
    );
    cols.insert(
        "ChargeFrequency",
        strings(n, |i| Some(charge_frequency(s.lt[i]))),
    );
    let or_period = |a: Option<&TimestampMillisecondArray>, default: i64| {
        times(
            (0..n)
                .map(|i| Some(a.filter(|a| a.is_valid(i)).map_or(default, |a| a.value(i))))
                .collect(),
        )
    };
    cols.insert("ChargePeriodEnd", or_period(usage_end, end));
    cols.insert("ChargePeriodStart", or_period(usage_start, start));
    cols.insert(
        "CommitmentDiscountCategory",
        strings(n, |i| commitment[i].as_ref().map(|c| c.1)),
    );
    cols.insert(
        "CommitmentDiscountId",
        strings(n, |i| commitment[i].as_ref().map(|c| c.0.as_str())),
    );
    cols.insert(
        "CommitmentDiscountStatus",
        strings(n, |i| {
            commitment[i]
                .as_ref()
                .filter(|_| category[i] == "Usage")
                .map(|_| x_commitment_discount_status.get(i).unwrap_or("Used"))
        }),
    );
    cols.insert(
        "CommitmentDiscountType",
        strings(n, |i| commitment[i].as_ref().map(|c| c.2)),
    );
    cols.insert(
        "ConsumedQuantity",
        decs(
            (0..n)
                .map(|i| (category[i] == "Usage").then_some(s.usage[i]))
                .collect(),
        )?,
    );
    cols.insert(
        "ConsumedUnit",
        strings(n, |i| {
            pricing_unit.get(i).filter(|_| category[i] == "Usage")
        }),
    );
    cols.insert(
        "ContractedCost",
        decs(prices.iter().map(|p| Some(p.contracted_cost)).collect())?,
    );
    cols.insert(
        "ContractedUnitPrice",
        decs(prices.iter().map(|p| p.contracted_unit).collect())?,
    );
    cols.insert(
        "EffectiveCost",
        decs(s.effective.iter().map(|a| Some(*a)).collect())?,
    );
    cols.insert(
        "InvoiceId",
        match &ctx.customer {
            Some((_, _, number)) if !partner => constant(number, n),
            _ => s.wide_strings("bill_invoice_id"),
        },
    );
    cols.insert(
        "InvoiceIssuerName",
        if partner {
            strings(n, |i| {
                Some(
                    bill_invoicing_entity
                        .get(i)
                        .unwrap_or("Amazon Web Services, Inc."),
                )
            })
        } else {
            constant(&ctx.config.partner.name, n)
        },
    );
    cols.insert(
        "ListCost",
        decs(prices.iter().map(|p| Some(p.list_cost)).collect())?,
    );
    cols.insert(
        "ListUnitPrice",
        decs(prices.iter().map(|p| p.list_unit).collect())?,
    );
    cols.insert(
        "PricingCategory",
        strings(n, |i| match category[i] {
            "Usage" if commitment[i].is_some() => Some("Committed"),
            "Usage" | "Purchase" => Some("Standard"),
            "Tax" => None,
            _ => Some("Other"),
        }),
    );
    cols.insert("PricingCurrency", constant(ctx.currency, n));
    cols.insert(
        "PricingQuantity",
        decs(prices.iter().map(|p| p.quantity).collect())?,
    );
    cols.insert(
        "PricingUnit",
        strings(n, |i| {
            pricing_unit
                .get(i)
                .filter(|_| matches!(category[i], "Usage" | "Purchase"))
        }),
    );
    cols.insert("ProviderName", constant("AWS", n));
    cols.insert(
        "PublisherName",
        strings(n, |i| {
            Some(
                li_legal_entity
                    .get(i)
                    .unwrap_or("Amazon Web Services, Inc."),
            )
        }),
    );
    cols.insert("RegionId", region);
    cols.insert("ResourceId", s.wide_strings("line_item_resource_id"));
    cols.insert(
        "ServiceSubcategory",
        mapped(&services, focus::other_subcategory),
    );
    cols.insert("ServiceCategory", services);
    // ServiceName is the service's display name (AWS's own FOCUS export writes it so);
    // x_ServiceCode keeps the product code that rules and invoices use.
    cols.insert(
        "ServiceName",
        Arc::new(
            product
                .as_string::<i32>()
                .iter()
                .map(|v| {
                    v.map(|code| normalize::service_name_of_product_code(code).unwrap_or(code))
                })
                .collect::<StringArray>(),
        ) as ArrayRef,
    );
    cols.insert("SkuId", s.wide_strings("product_sku"));
    cols.insert(
        "SkuPriceId",
        strings(n, |i| {
            pricing_rate_code.get(i).or_else(|| pricing_rate_id.get(i))
        }),
    );
    cols.insert("SubAccountId", account.clone());
    cols.insert(
        "SubAccountName",
        s.wide_strings("line_item_usage_account_name"),
    );
    cols.insert(
        "SubAccountType",
        mapped(&account, |a| {
            if a == ctx.mgmt {
                "Management account"
            } else {
                "Member account"
            }
        }),
    );
    cols.insert("Tags", tags_column(s));
    cols.insert("x_ServiceCode", product);
    cols.insert("x_UsageType", s.norm_strings(col::USAGE_TYPE, true)?);
    cols.insert("x_Operation", s.norm_strings(col::OPERATION, true)?);
    cols.insert("x_LineItemType", strings(n, |i| Some(s.lt[i].as_str())));
    if partner {
        cols.insert(
            focus::CUSTOMER_ORG_COLUMN,
            constant(ctx.result.id.as_str(), n),
        );
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            cols.remove(f.name().as_str())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), n))
        })
        .collect();
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::Overflow(format!("building the FOCUS export: {e}")))
}

/// The service a custom line item is shown under when none is chosen (ABC's default).
const CUSTOM_ITEM_SERVICE: &str = "AWSBillingConductor";

/// Whether a custom line item is shown under its own service (ABC's default), not another one.
fn shown_on_its_own(c: &crate::invoice::CliLine) -> bool {
    c.service.is_empty() || c.service == CUSTOM_ITEM_SERVICE
}

/// What custom line item rows need: the customer's invoice, names, the period and the items' sum.
struct CustomRows<'a> {
    inv: &'a crate::invoice::CustomerInvoice,
    name: &'a str,
    mgmt: &'a str,
    number: &'a str,
    start: i64,
    end: i64,
    total: i128,
}

/// The custom line items of a customer org (`None` for the partner).
fn custom_rows<'a>(ctx: &'a OrgCtx<'_>) -> Result<Option<CustomRows<'a>>> {
    let (Some(inv), Some((name, mgmt, number))) =
        (ctx.result.customer.as_ref(), ctx.customer.as_ref())
    else {
        return Ok(None);
    };
    let total = inv
        .custom
        .iter()
        .try_fold(0i128, |a, c| a.checked_add(c.exact))
        .ok_or_else(|| Error::Overflow("summing custom items".into()))?;
    Ok(Some(CustomRows {
        inv,
        name,
        mgmt,
        number,
        start: ctx.period.start_micros() / 1000,
        end: ctx.period.next().start_micros() / 1000,
        total,
    }))
}

/// Custom line items as CUR rows.
fn custom_cur_batch(ctx: &OrgCtx<'_>, schema: &SchemaRef) -> Result<(RecordBatch, i128)> {
    let Some(CustomRows {
        inv,
        name,
        mgmt,
        number: _,
        start,
        end,
        total,
    }) = custom_rows(ctx)?
    else {
        return Ok((RecordBatch::new_empty(schema.clone()), 0));
    };
    let n = inv.custom.len();
    let line_type = |c: &crate::invoice::CliLine| {
        let base = match c.kind {
            CliKind::Fee => "Fee",
            CliKind::Credit => "Credit",
        };
        if shown_on_its_own(c) {
            base.to_string()
        } else {
            format!("Proforma_{base}")
        }
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> Result<ArrayRef> {
            Ok(match f.name().as_str() {
                "bill_billing_period_start_date" | "line_item_usage_start_date" => {
                    times(vec![Some(start); n])
                }
                "bill_billing_period_end_date" | "line_item_usage_end_date" => {
                    times(vec![Some(end); n])
                }
                "bill_payer_account_id" => constant(mgmt, n),
                "bill_payer_account_name" => constant(name, n),
                "line_item_usage_account_id" => {
                    texts(inv.custom.iter().map(|c| Some(c.account.clone())).collect())
                }
                "line_item_line_item_type" => {
                    texts(inv.custom.iter().map(|c| Some(line_type(c))).collect())
                }
                "line_item_product_code" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(c.service.clone()).filter(|s| !s.is_empty()))
                        .collect(),
                ),
                "line_item_line_item_description" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(c.description.clone()))
                        .collect(),
                ),
                "line_item_usage_type" => texts(
                    inv.custom
                        .iter()
                        .map(|c| Some(format!("CustomLineItem:{}", c.id)))
                        .collect(),
                ),
                "line_item_currency_code" => constant(ctx.currency, n),
                "line_item_unblended_cost" | "line_item_blended_cost" => {
                    ctx.amounts(inv.custom.iter().map(|c| Some(c.exact)).collect())?
                }
                "line_item_usage_amount" => ctx.amounts(vec![Some(0); n])?,
                _ => arrow::array::new_null_array(f.data_type(), n),
            })
        })
        .collect::<Result<_>>()?;
    Ok((
        RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| Error::Overflow(e.to_string()))?,
        total,
    ))
}

/// Custom line items as FOCUS rows (customer view).
fn custom_focus_batch(ctx: &OrgCtx<'_>) -> Result<(RecordBatch, i128)> {
    let schema = focus::schema(false);
    let Some(CustomRows {
        inv,
        name,
        mgmt,
        number,
        start,
        end,
        total,
    }) = custom_rows(ctx)?
    else {
        return Ok((RecordBatch::new_empty(schema), 0));
    };
    let n = inv.custom.len();
    let is_fee = |c: &crate::invoice::CliLine| c.kind == CliKind::Fee && c.exact >= 0;
    let category: Vec<&str> = inv
        .custom
        .iter()
        .map(|c| if is_fee(c) { "Purchase" } else { "Credit" })
        .collect();
    let mut cols: BTreeMap<&str, ArrayRef> = BTreeMap::new();
    let amounts: Vec<Option<i128>> = inv.custom.iter().map(|c| Some(c.exact)).collect();
    cols.insert("BilledCost", decs(amounts.clone())?);
    cols.insert("EffectiveCost", decs(amounts.clone())?);
    cols.insert("ListCost", decs(amounts.clone())?);
    cols.insert("ContractedCost", decs(amounts.clone())?);
    let fee_only = |v: Option<i128>| -> Vec<Option<i128>> {
        inv.custom
            .iter()
            .map(|c| if is_fee(c) { v.or(Some(c.exact)) } else { None })
            .collect()
    };
    cols.insert("ListUnitPrice", decs(fee_only(None))?);
    cols.insert("ContractedUnitPrice", decs(fee_only(None))?);
    cols.insert("PricingQuantity", decs(fee_only(Some(ONE)))?);
    cols.insert(
        "PricingCategory",
        texts(
            category
                .iter()
                .map(|c| {
                    Some(
                        if *c == "Purchase" {
                            "Standard"
                        } else {
                            "Other"
                        }
                        .to_string(),
                    )
                })
                .collect(),
        ),
    );
    cols.insert(
        "PricingUnit",
        texts(
            category
                .iter()
                .map(|c| (*c == "Purchase").then(|| "Item".to_string()))
                .collect(),
        ),
    );
    cols.insert("BillingAccountId", constant(mgmt, n));
    cols.insert("BillingAccountName", constant(name, n));
    cols.insert("BillingAccountType", constant("Management account", n));
    cols.insert("BillingCurrency", constant(ctx.currency, n));
    cols.insert("PricingCurrency", constant(ctx.currency, n));
    cols.insert("BillingPeriodStart", times(vec![Some(start); n]));
    cols.insert("BillingPeriodEnd", times(vec![Some(end); n]));
    cols.insert("ChargePeriodStart", times(vec![Some(start); n]));
    cols.insert("ChargePeriodEnd", times(vec![Some(end); n]));
    cols.insert(
        "ChargeCategory",
        texts(category.iter().map(|c| Some(c.to_string())).collect()),
    );
    cols.insert("ChargeFrequency", constant("Recurring", n));
    cols.insert(
        "ChargeDescription",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(c.description.clone()))
                .collect(),
        ),
    );
    cols.insert("InvoiceId", constant(number, n));
    cols.insert("InvoiceIssuerName", constant(&ctx.config.partner.name, n));
    cols.insert("ProviderName", constant(&ctx.config.partner.name, n));
    cols.insert("PublisherName", constant(&ctx.config.partner.name, n));
    cols.insert(
        "ServiceCategory",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(focus::service_category(&c.service).to_string()))
                .collect(),
        ),
    );
    cols.insert(
        "ServiceSubcategory",
        texts(
            inv.custom
                .iter()
                .map(|c| Some(format!("Other ({})", focus::service_category(&c.service))))
                .collect(),
        ),
    );
    cols.insert(
        "ServiceName",
        texts(
            inv.custom
                .iter()
                .map(|c| {
                    Some(if c.service.is_empty() {
                        "Custom line item".to_string()
                    } else {
                        c.service.clone()
                    })
                })
                .collect(),
        ),
    );
    cols.insert(
        "SubAccountId",
        texts(inv.custom.iter().map(|c| Some(c.account.clone())).collect()),
    );
    cols.insert(
        "x_LineItemType",
        texts(
            inv.custom
                .iter()
                .map(|c| {
                    Some(
                        match (c.kind, shown_on_its_own(c)) {
                            (CliKind::Fee, true) => "Fee",
                            (CliKind::Credit, true) => "Credit",
                            (CliKind::Fee, false) => "Proforma_Fee",
                            (CliKind::Credit, false) => "Proforma_Credit",
                        }
                        .to_string(),
                    )
                })
                .collect(),
        ),
    );
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| {
            cols.remove(f.name().as_str())
                .unwrap_or_else(|| arrow::array::new_null_array(f.data_type(), n))
        })
        .collect();
    Ok((
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Overflow(e.to_string()))?,
        total,
    ))
}

// ---------------------------------------------------------------------------
// The pass

/// Σ of a slice of amounts.
fn sum(v: &[i128]) -> Result<i128> {
    v.iter()
        .try_fold(0i128, |a, x| a.checked_add(*x))
        .ok_or_else(|| Error::Overflow("summing export rows".into()))
}

struct OrgDatasets {
    cur: Option<Dataset>,
    focus: Option<Dataset>,
    partner_focus: Option<Dataset>,
}

fn ext(format: ExportFormat) -> &'static str {
    match format {
        ExportFormat::Parquet => "parquet",
        ExportFormat::Csv => "csv",
    }
}

/// A track's selected rows of a chunk: row indexes, final amounts, effective amounts, rated flags.
type TrackRows = (Vec<usize>, Vec<i128>, Vec<i128>, Vec<bool>);

/// Writes one org's exports under `root`, rolled up in the same pass when the
/// granularity is daily or monthly.
fn export_org(
    ctx: &OrgCtx<'_>,
    files: &[&InputFile],
    root: &Path,
) -> Result<(Vec<ExportFile>, BTreeSet<String>)> {
    let config = ctx.config;
    let r = ctx.result;
    let org = config.party(r.org_index).customer();
    let (actual_p, proforma_p) = run::pricing_for(config, org);
    let mut check = run::org_check(config, r.org_index, ctx.period);
    check.excluded = r.excluded.clone();
    let org_id = r.id.to_string();
    let is_customer = ctx.customer.is_some();
    let e = ext(ctx.opts.format);

    // Every file's columns first: one CUR schema for the org.
    let mut kinds_per_file = Vec::new();
    let mut dropped = BTreeSet::new();
    for f in files {
        let reader = FullReader::open(&f.path)?;
        let source = ingest::open(&f.path)?;
        let dialect = source.column_map().dialect;
        let kinds = wide_columns(dialect, &reader.schema);
        if dialect != Dialect::Focus {
            for (field, kind) in reader.schema.fields().iter().zip(&kinds) {
                if kind.is_none() {
                    dropped.insert(field.name().clone());
                }
            }
        }
        kinds_per_file.push(kinds);
    }
    let cur_schema = cur_schema(&kinds_per_file, ctx.rolled);
    let mut sets = OrgDatasets {
        cur: (is_customer && ctx.opts.set.cur())
            .then(|| {
                Dataset::create(
                    root,
                    format!("customers/{org_id}/cur/{org_id}-{}.{e}", ctx.period),
                    "cur",
                    cur_schema.clone(),
                    ctx.opts.format,
                    ctx.roll_up(false),
                )
            })
            .transpose()?,
        focus: (is_customer && ctx.opts.set.focus())
            .then(|| {
                Dataset::create(
                    root,
                    format!("customers/{org_id}/focus/{org_id}-{}.{e}", ctx.period),
                    "focus",
                    focus::schema(false),
                    ctx.opts.format,
                    ctx.roll_up(true),
                )
            })
            .transpose()?,
        partner_focus: ctx
            .opts
            .set
            .focus()
            .then(|| {
                Dataset::create(
                    root,
                    format!("partner/focus/{org_id}-{}.{e}", ctx.period),
                    "partner_focus",
                    focus::schema(true),
                    ctx.opts.format,
                    ctx.roll_up(true),
                )
            })
            .transpose()?,
    };

    let mut rater = Rater::new(actual_p, proforma_p);
    let mut split = Splitter::new(&r.ledger.deferred);
    for (f, kinds) in files.iter().zip(&kinds_per_file) {
        let display = PathBuf::from(&f.display);
        let mut source = ingest::open(&f.path)?;
        rater.list_base = source.column_map().dialect == Dialect::Focus;
        let mut aligner = Aligner {
            reader: FullReader::open(&f.path)?,
            queue: Vec::new(),
        };
        while let Some(chunk) = source.next_chunk() {
            let norm = normalize::normalize(&display, source.column_map(), chunk?, &check)?;
            let batch = &norm.batch;
            let rated = rater.rate(batch)?;
            let rows: &UInt64Array = batch
                .column_by_name(col::ROW)
                .and_then(|a| a.as_primitive_opt())
                .ok_or_else(|| Error::Overflow("internal: row numbers missing".into()))?;
            let types: &UInt8Array = batch
                .column_by_name(col::LINE_TYPE)
                .and_then(|a| a.as_primitive_opt())
                .ok_or_else(|| Error::Overflow("internal: line types missing".into()))?;
            let products = batch
                .column_by_name(col::PRODUCT)
                .and_then(|a| a.as_dictionary_opt::<Int32Type>())
                .ok_or_else(|| Error::Overflow("internal: products missing".into()))?;
            let accounts = batch
                .column_by_name(col::ACCOUNT)
                .and_then(|a| a.as_dictionary_opt::<Int32Type>())
                .ok_or_else(|| Error::Overflow("internal: accounts missing".into()))?;
            let usage = batch
                .column_by_name(col::USAGE)
                .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
                .ok_or_else(|| Error::Overflow("internal: usage missing".into()))?;
            let effective_in = batch
                .column_by_name(col::EFFECTIVE)
                .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
                .ok_or_else(|| Error::Overflow("internal: effective missing".into()))?;
            let pvals = products.values().as_string::<i32>();
            // Once per distinct product, not per row.
            let support_of: Vec<bool> = (0..pvals.len())
                .map(|k| is_support(pvals.value(k)))
                .collect();
            let avals = accounts.values().as_string::<i32>();
            let n = batch.num_rows();
            // Per track: selected rows, final amounts, effective amounts, rated flags.
            let mut per_track: [TrackRows; 2] = Default::default();
            for i in 0..n {
                let lt = LineType::from_code(types.value(i)).unwrap_or(LineType::Usage);
                let product_key = products.keys().value(i) as usize;
                let product = pvals.value(product_key);
                let treat = rater.treatments_for(lt, support_of[product_key]);
                for t in [Track::Actual, Track::Proforma] {
                    let ti = t as usize;
                    if treat[ti] == Treatment::Excluded {
                        continue;
                    }
                    let mut amount = if ti == 0 {
                        rated.actual[i]
                    } else {
                        rated.proforma[i]
                    };
                    if rated.deferred[i] & (1 << ti) != 0 {
                        let key = LineKey {
                            account: avals.value(accounts.keys().value(i) as usize).to_string(),
                            service: product.to_string(),
                            line_type: lt,
                        };
                        amount = amount
                            .checked_add(split.next(t, key, usage.value(i))?)
                            .ok_or_else(|| Error::Overflow("splitting".into()))?;
                    }
                    let rate_like = matches!(treat[ti], Treatment::Rate);
                    let effective = match (t, treat[ti]) {
                        (Track::Actual, Treatment::Rate) => amount,
                        (Track::Actual, _) => rated.effective[i],
                        (Track::Proforma, Treatment::Rate) => amount,
                        (Track::Proforma, Treatment::SameAsActual) => rated.effective[i],
                        (Track::Proforma, _) => effective_in.value(i),
                    };
                    let slot = &mut per_track[ti];
                    slot.0.push(i);
                    slot.1.push(amount);
                    slot.2.push(effective);
                    slot.3.push(rate_like);
                }
            }
            let last_row = (n > 0).then(|| rows.value(n - 1));
            for t in [Track::Actual, Track::Proforma] {
                let ti = t as usize;
                let wanted_customer = ti == 1 && (sets.cur.is_some() || sets.focus.is_some());
                let wanted_partner = ti == 0 && sets.partner_focus.is_some();
                if !(wanted_customer || wanted_partner) {
                    continue;
                }
                let (idx, amount, effective, rated_flags) = std::mem::take(&mut per_track[ti]);
                if idx.is_empty() {
                    continue;
                }
                let wanted_rows: Vec<u64> = idx.iter().map(|&i| rows.value(i)).collect();
                let at = aligner.locate(&wanted_rows)?;
                let wide = wide_selection(&aligner, kinds, &at)?;
                let cost = sum(&amount)?;
                let sel = Selected::new(wide, idx, batch, amount, effective, rated_flags)?;
                if wanted_customer {
                    if let Some(ds) = sets.cur.as_mut() {
                        ds.write(&cur_batch(ctx, &sel, &cur_schema)?, cost)?;
                    }
                    if let Some(ds) = sets.focus.as_mut() {
                        ds.write(&focus_batch(ctx, &sel, false)?, cost)?;
                    }
                } else if let Some(ds) = sets.partner_focus.as_mut() {
                    ds.write(&focus_batch(ctx, &sel, true)?, cost)?;
                }
            }
            if let Some(r) = last_row {
                aligner.release(r + 1);
            }
        }
    }
    if let Some(ds) = sets.cur.as_mut() {
        let (b, total) = custom_cur_batch(ctx, &cur_schema)?;
        ds.write(&b, total)?;
    }
    if let Some(ds) = sets.focus.as_mut() {
        let (b, total) = custom_focus_batch(ctx)?;
        ds.write(&b, total)?;
    }
    // The rows must add up to the invoices exactly.
    let mut written = Vec::new();
    for ds in [sets.cur, sets.focus, sets.partner_focus] {
        let Some(ds) = ds else { continue };
        let kind = ds.kind;
        let (_, rel, rows, total) = ds.finish()?;
        let expected = if kind == "partner_focus" {
            r.actual.exact_total
        } else {
            r.customer.as_ref().map(|c| c.exact_total).unwrap_or(0)
        };
        if total != expected {
            return Err(Error::Overflow(format!(
                "internal: the {kind} export of org `{org_id}` sums to {} but its invoice's exact total is {}; nothing was written",
                format_fixed_exact(total),
                format_fixed_exact(expected)
            )));
        }
        written.push(ExportFile {
            path: rel,
            org: org_id.clone(),
            kind,
            rows,
            cost_total: format_fixed_exact(total),
        });
    }
    Ok((written, dropped))
}

/// Writes every export of a run under `dir` (the run's output folder being
/// built) and returns the `exports.json` listing.
pub fn write_exports(
    config: &Config,
    result: &RunResult,
    opts: ExportOptions,
    dir: &Path,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    if opts.set == ExportSet::None {
        return Ok(Vec::new());
    }
    let files = run::plan_inputs(config, Some(result.period))?.files;
    let per_org: Result<Vec<(Vec<ExportFile>, BTreeSet<String>)>> = result
        .orgs
        .par_iter()
        .map(|r| {
            let org_files: Vec<&InputFile> = files
                .iter()
                .filter(|f| f.org_index == r.org_index)
                .collect();
            let party = config.party(r.org_index);
            let org = party.customer();
            let ctx = OrgCtx {
                config,
                period: result.period,
                result: r,
                customer: org.map(|o| {
                    (
                        o.name.as_str(),
                        o.management_account.as_str(),
                        format!("{}-{}", o.id, result.period),
                    )
                }),
                mgmt: party.management_account().as_str(),
                currency: config.partner.currency.as_str(),
                opts,
                rolled: opts.granularity != Granularity::Line,
            };
            run::guarded(Path::new(&r.id.to_string()), || {
                export_org(&ctx, &org_files, dir)
            })
        })
        .collect();
    let mut listing = Vec::new();
    let mut dropped = BTreeSet::new();
    for (files, d) in per_org? {
        listing.extend(files);
        dropped.extend(d);
    }
    let doc = serde_json::json!({
        "granularity": opts.granularity,
        "format": opts.format,
        "files": listing,
        "dropped_input_columns": dropped,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    Ok(vec![(PathBuf::from("exports.json"), bytes)])
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
