//! Reading cost-and-usage files: which format a header is and where each needed
//! column is (`columns`), the CSV and Parquet readers, and the raw chunks they
//! yield: the columns billxfer needs, found by name, with numbers already
//! converted to fixed point by the exact rules in [`crate::money`].
//! `crate::normalize` then checks every row against its organization.

mod columns;
pub mod csv;
pub mod parquet;

pub use columns::*;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::array::{Array, AsArray, DictionaryArray, RecordBatch, StringArray};
use arrow::datatypes::Int32Type;

use crate::error::{Error, Result};
use crate::money::DecimalError;
use crate::types::BillingPeriod;

/// Rows per batch handed to the rating kernel.
pub const BATCH_ROWS: usize = 32_768;

/// Text column as read: a dictionary of distinct values and a key per row.
pub type TextColumn = DictionaryArray<Int32Type>;

/// State of one numeric cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NumState {
    /// A value.
    Value = 0,
    /// Empty or null.
    Null = 1,
    /// Unreadable; details in `NumColumn::bad`.
    Bad = 2,
}

/// A numeric column converted to fixed point, with per-row state.
#[derive(Debug, Clone, Default)]
pub struct NumColumn {
    /// Values at the internal scale (0 where not `Value`).
    pub values: Vec<i128>,
    /// State per row.
    pub state: Vec<NumState>,
    /// Unreadable cells: row index in the chunk, text, reason.
    pub bad: Vec<(usize, String, DecimalError)>,
}

impl NumColumn {
    /// An empty column with room for `n` rows.
    pub fn with_capacity(n: usize) -> NumColumn {
        NumColumn {
            values: Vec::with_capacity(n),
            state: Vec::with_capacity(n),
            bad: Vec::new(),
        }
    }

    /// Appends a converted cell.
    pub fn push(&mut self, cell: Option<Result<i128, (String, DecimalError)>>) {
        match cell {
            None => {
                self.values.push(0);
                self.state.push(NumState::Null);
            }
            Some(Ok(v)) => {
                self.values.push(v);
                self.state.push(NumState::Value);
            }
            Some(Err((text, e))) => {
                self.bad.push((self.values.len(), text, e));
                self.values.push(0);
                self.state.push(NumState::Bad);
            }
        }
    }

    /// Appends a value read without error (the hot path of [`NumColumn::push`]).
    #[inline]
    pub fn push_value(&mut self, v: i128) {
        self.values.push(v);
        self.state.push(NumState::Value);
    }

    /// Σ of the column's values (`None` on overflow).
    pub fn sum(&self) -> Option<i128> {
        self.values
            .iter()
            .zip(&self.state)
            .try_fold(0i128, |a, (v, s)| match s {
                NumState::Value => a.checked_add(*v),
                _ => Some(a),
            })
    }

    /// Row `i`'s value, `None` when empty or unreadable.
    pub fn get(&self, i: usize) -> Option<i128> {
        (self.state[i] == NumState::Value).then(|| self.values[i])
    }

    /// Row `i`'s unreadable cell: (row, text, why), if it has one.
    pub fn bad_at(&self, i: usize) -> Option<&(usize, String, DecimalError)> {
        self.bad.iter().find(|b| b.0 == i)
    }
}

/// A period column: timestamps (Parquet) or ISO 8601 text (CSV).
#[derive(Debug, Clone)]
pub enum PeriodColumn {
    /// Microseconds since 1970, UTC.
    Micros(Vec<Option<i64>>),
    /// Text such as `2026-10-01T00:00:00Z`.
    Text(TextColumn),
}

impl PeriodColumn {
    /// The distinct billing periods of the column, what period detection keeps:
    /// a timestamp is converted only where it differs from the row before, a
    /// text once per dictionary value that a row uses.
    pub fn distinct_periods(&self) -> BTreeSet<BillingPeriod> {
        let mut found = BTreeSet::new();
        match self {
            PeriodColumn::Micros(v) => {
                let mut previous = None;
                for m in v.iter().flatten() {
                    if previous != Some(*m) {
                        found.extend(BillingPeriod::from_unix_micros(*m));
                        previous = Some(*m);
                    }
                }
            }
            PeriodColumn::Text(d) => {
                let values = dict_values(d);
                let mut used = vec![false; values.len()];
                for k in d.keys().iter().flatten() {
                    if let Some(u) = used.get_mut(k as usize) {
                        *u = true;
                    }
                }
                found.extend(
                    (0..values.len())
                        .filter(|&k| used[k] && values.is_valid(k))
                        .filter_map(|k| period_from_text(values.value(k))),
                );
            }
        }
        found
    }
}

/// Parses the billing period of an ISO 8601 date or timestamp text, read whole
/// (docs/INPUTS.md, "Dates"): `2026-10-45T99:99:99Z` is not a date.
pub fn period_from_text(t: &str) -> Option<BillingPeriod> {
    timestamp_micros(t).and_then(BillingPeriod::from_unix_micros)
}

/// An ISO 8601 date or timestamp as microseconds since 1970 (UTC):
/// `YYYY-MM-DD`, optionally followed by `T` or a space, `HH:MM[:SS[.fraction]]`
/// and `Z`, `±HH:MM`, `±HHMM`, `±HH` or ` UTC`; every part range-checked.
pub fn timestamp_micros(text: &str) -> Option<i64> {
    let t = text.trim().as_bytes();
    let digits = |b: &[u8]| -> Option<i64> {
        (!b.is_empty() && b.iter().all(u8::is_ascii_digit))
            .then(|| b.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if t.len() < 10 || t[4] != b'-' || t[7] != b'-' {
        return None;
    }
    let year = u16::try_from(digits(&t[..4])?).ok()?;
    let month = u8::try_from(digits(&t[5..7])?).ok()?;
    let period = BillingPeriod::new(year, month)?;
    let day = digits(&t[8..10])?;
    if day < 1 || day > i64::from(period.days()) {
        return None;
    }
    let mut micros = period.start_micros() + (day - 1) * 86_400_000_000;
    let rest = &t[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let (hour, minute) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
    let mut rest = &rest[6..];
    let mut second = 0;
    let mut fraction_micros = 0;
    if rest.first() == Some(&b':') {
        second = digits(rest.get(1..3)?)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            let f = &rest[1..1 + n];
            let padded: Vec<u8> = f
                .iter()
                .copied()
                .chain(std::iter::repeat(b'0'))
                .take(6)
                .collect();
            fraction_micros = digits(&padded)?;
            rest = &rest[1 + n..];
        }
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction_micros;
    let offset_minutes = match rest {
        b"" | b"Z" | b"z" | b" UTC" | b"+00:00" => 0,
        [sign @ (b'+' | b'-'), zone @ ..] => {
            let (h, m) = match zone {
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                [h1, h2, m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                [h1, h2, b':', m1, m2] => (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?),
                _ => return None,
            };
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    Some(micros - offset_minutes * 60_000_000)
}

/// The string values of a text column's dictionary.
pub fn dict_values(d: &TextColumn) -> &StringArray {
    d.values().as_string::<i32>()
}

/// A chunk of rows from one input file, columns as read (before checks).
#[derive(Debug)]
pub struct RawChunk {
    /// Row number of each row in the file (1-based, header excluded).
    pub rows: Vec<u64>,
    /// Physical line of each row in a CSV file (for humans); empty for Parquet.
    pub lines: Vec<u64>,
    /// Text columns by `Field` index; `None` when the file lacks the column.
    pub text: [Option<TextColumn>; FIELDS],
    /// Number columns by `Field` index.
    pub num: [Option<NumColumn>; FIELDS],
    /// Period columns by `Field` index.
    pub period: [Option<PeriodColumn>; FIELDS],
    /// Rows that could not even be split into columns (ragged CSV, bad UTF-8): row, line, column, reason.
    pub broken: Vec<(u64, u64, String, String)>,
    /// Identity hash of each row (`ColumnMap::identity`), empty when not read.
    pub identity: Vec<u64>,
    /// Every column of the file at the chunk's rows (one row per entry of `rows`),
    /// when the exports carry them ([`Reading::carry`]); `None` otherwise.
    pub carried: Option<RecordBatch>,
}

impl RawChunk {
    /// Rows in the chunk (broken rows excluded).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the chunk has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A source of raw chunks: one input file.
pub trait ChunkSource: Send {
    /// The next chunk, `None` at the end of the file.
    fn next_chunk(&mut self) -> Option<Result<RawChunk>>;
    /// The detected dialect and format label.
    fn describe(&self) -> String;
    /// Where each field is found in the file.
    fn column_map(&self) -> &ColumnMap;
}

/// A slice of a Parquet file: some row groups, so one large file can be read by several threads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    /// Row group indexes.
    pub groups: Vec<usize>,
    /// Row number (0-based) of the first row of the first group in the file.
    pub first_row: u64,
}

/// Whether a file is Parquet (magic `PAR1`).
pub fn is_parquet(path: &Path) -> Result<bool> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    Ok(n == 4 && &magic == b"PAR1")
}

pub use parquet::Footer;

/// How a file will be read.
#[derive(Debug, Default)]
pub struct FilePlan {
    /// Its parts (`None`: whole).
    pub parts: Option<Vec<Part>>,
    /// Its row count when the footer tells it (Parquet), for progress estimates.
    pub rows: Option<u64>,
    /// Its footer (Parquet), read once here for every task of the file.
    pub footer: Option<Footer>,
}

/// Splits a file into parts of whole row groups of at least `min_rows` rows each;
/// `None` (read whole) for CSV or single-group files.
pub fn plan_parts(path: &Path, min_rows: u64) -> Result<FilePlan> {
    if !is_parquet(path)? {
        return Ok(FilePlan::default());
    }
    let footer = parquet::footer(path)?;
    let groups = parquet::row_groups(&footer);
    let mut plan = FilePlan {
        parts: None,
        rows: Some(groups.iter().sum()),
        footer: Some(footer),
    };
    if groups.len() < 2 {
        return Ok(plan);
    }
    let mut parts = Vec::new();
    let mut current = Part {
        groups: Vec::new(),
        first_row: 0,
    };
    let (mut rows_in_part, mut row) = (0u64, 0u64);
    for (g, n) in groups.iter().enumerate() {
        if current.groups.is_empty() {
            current.first_row = row;
        }
        current.groups.push(g);
        rows_in_part += n;
        row += n;
        if rows_in_part >= min_rows {
            parts.push(std::mem::replace(
                &mut current,
                Part {
                    groups: Vec::new(),
                    first_row: 0,
                },
            ));
            rows_in_part = 0;
        }
    }
    if !current.groups.is_empty() {
        parts.push(current);
    }
    plan.parts = Some(parts);
    Ok(plan)
}

/// What a reader reads beyond the rating columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    /// Hash each row's identity columns (only runs that must compare deliveries pay for it).
    pub identity: bool,
    /// Carry every column of the file in [`RawChunk::carried`], for the exports: the
    /// rating columns and the carried ones come from one read of the file.
    pub carry: bool,
    /// Read only the period columns (billing period start, usage start): what
    /// period detection needs, without decoding the rest of the file.
    pub periods_only: bool,
}

/// Opens a part of a file (or the whole file with `None`).
pub fn open_part(path: &Path, part: Option<&Part>) -> Result<Box<dyn ChunkSource>> {
    open_with(path, part, None, Reading::default())
}

/// Opens a part of a file (the whole file with `None`), reading what `reading` asks
/// beyond the rating columns; with `footer`, the footer the plan read (a Parquet
/// file, whose footer is then not read again).
pub fn open_with(
    path: &Path,
    part: Option<&Part>,
    footer: Option<&Footer>,
    reading: Reading,
) -> Result<Box<dyn ChunkSource>> {
    match (part, footer) {
        (None, None) => open_whole(path, reading),
        (part, footer) => Ok(Box::new(parquet::ParquetSource::open_part(
            path, part, reading, footer,
        )?)),
    }
}

/// Opens a whole Parquet file already read into memory (the bytes a run has just
/// hashed), with the footer the plan read: its pages are then sliced from `bytes`,
/// not read from the file a second time.
pub fn open_in_memory(
    path: &Path,
    bytes: bytes::Bytes,
    footer: &Footer,
    reading: Reading,
) -> Result<Box<dyn ChunkSource>> {
    Ok(Box::new(parquet::ParquetSource::from_bytes(
        bytes,
        path,
        reading,
        Some(footer),
    )?))
}

/// Opens an input file, detecting Parquet (magic `PAR1`), gzip CSV and plain CSV.
pub fn open(path: &Path) -> Result<Box<dyn ChunkSource>> {
    open_whole(path, Reading::default())
}

/// Opens a whole input file to read its period columns only (Parquet decodes
/// nothing else; CSV still parses every row).
pub fn open_periods(path: &Path) -> Result<Box<dyn ChunkSource>> {
    open_whole(
        path,
        Reading {
            periods_only: true,
            ..Reading::default()
        },
    )
}

/// The billing periods of one input file: from a Parquet footer's row-group
/// statistics where they tell (`parquet::periods_from_statistics`), else by
/// reading only its period column.
pub fn file_periods(path: &Path) -> Result<BTreeSet<BillingPeriod>> {
    match parquet::periods_from_statistics(path) {
        Some(found) => Ok(found),
        None => read_periods(path),
    }
}

/// The billing periods of a file's period column, read value by value: the
/// billing period start, or the usage start in a file without one.
fn read_periods(path: &Path) -> Result<BTreeSet<BillingPeriod>> {
    let mut source = open_periods(path)?;
    let mut found = BTreeSet::new();
    while let Some(chunk) = source.next_chunk() {
        let chunk = chunk?;
        for field in [Field::BillingPeriodStart, Field::UsageStart] {
            if let Some(column) = &chunk.period[field as usize] {
                found.extend(column.distinct_periods());
                break;
            }
        }
    }
    Ok(found)
}

fn open_whole(path: &Path, reading: Reading) -> Result<Box<dyn ChunkSource>> {
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    if n == 0 {
        return Err(Error::input(
            path,
            "the file is empty: expected a CUR file with a header row",
        ));
    }
    if n == 4 && &magic == b"PAR1" {
        Ok(Box::new(parquet::ParquetSource::open_part(
            path, None, reading, None,
        )?))
    } else {
        let mut source =
            csv::CsvSource::open(path, n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)?;
        if !reading.identity {
            source.skip_identity();
        }
        if reading.carry {
            source.carry_all();
        }
        Ok(Box::new(source))
    }
}

/// Reads a file with the same reader and projection a run uses, and nothing
/// else (no conversion, no checks): the decode floor for benchmarks.
pub fn decode_only(path: &Path, part: Option<&Part>, footer: Option<&Footer>) -> Result<u64> {
    if let Some(f) = footer {
        return parquet::ParquetSource::open_part(path, part, Reading::default(), Some(f))?
            .decode_only();
    }
    let mut magic = [0u8; 4];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::io(path, e))?;
    if n == 4 && &magic == b"PAR1" {
        parquet::ParquetSource::open_part(path, part, Reading::default(), None)?.decode_only()
    } else {
        csv::CsvSource::open(path, n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)?.decode_only()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LineType;

    #[test]
    fn legacy_headers_become_snake_case() {
        assert_eq!(
            snake_name("lineItem/UsageAccountId"),
            "line_item_usage_account_id"
        );
        assert_eq!(
            snake_name("pricing/publicOnDemandRate"),
            "pricing_public_on_demand_rate"
        );
        assert_eq!(snake_name("product/regionCode"), "product_region_code");
        assert_eq!(
            snake_name("bill/BillingPeriodStartDate"),
            "bill_billing_period_start_date"
        );
        assert_eq!(
            snake_name("line_item_usage_account_id"),
            "line_item_usage_account_id"
        );
        assert_eq!(
            snake_name("\u{feff}Line_Item_Usage_Account_Id"),
            "line_item_usage_account_id"
        );
    }

    #[test]
    fn every_line_type_round_trips() {
        for t in LineType::ALL {
            assert_eq!(LineType::parse(t.as_str()), Some(t));
            assert_eq!(LineType::from_code(t as u8), Some(t));
        }
        assert_eq!(LineType::parse("usage"), None);
        assert_eq!(LineType::parse("FlatRateSubscription"), None);
    }

    #[test]
    fn missing_required_columns_are_named() {
        let headers: Vec<String> = ["line_item_usage_account_id", "line_item_line_item_type"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let err = ColumnMap::from_headers(Path::new("x.csv"), &headers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line_item_product_code"), "{err}");
        assert!(err.contains("line_item_unblended_cost"), "{err}");
        assert!(err.starts_with("x.csv"), "{err}");
    }

    /// 2026-10-01, 2026-10-15, 2026-11-01 and 2026-12-01 at 00:00 UTC, in microseconds.
    const OCT_1: i64 = 1_790_812_800_000_000;
    const OCT_15: i64 = OCT_1 + 14 * 86_400_000_000;
    const NOV_1: i64 = 1_793_491_200_000_000;
    const DEC_1: i64 = NOV_1 + 30 * 86_400_000_000;

    /// A CUR 2.0 Parquet file with these billing period starts, `per_group` rows
    /// a row group, with or without column statistics.
    fn cur_parquet(
        dir: &Path,
        starts: Vec<Option<i64>>,
        per_group: usize,
        statistics: bool,
    ) -> std::path::PathBuf {
        use ::parquet::file::properties::{EnabledStatistics, WriterProperties};
        use arrow::array::{ArrayRef, Float64Array, StringArray, TimestampMicrosecondArray};
        use arrow::datatypes::{Field as ArrowField, Schema};
        use std::sync::Arc;
        let n = starts.len();
        let text = |v: &str| Arc::new(StringArray::from(vec![v; n])) as ArrayRef;
        // 0.5, 0.25, 0.125, …: exact in binary.
        let numbers: Vec<f64> = (0..n).map(|i| 0.5 / f64::from(1u32 << i)).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("line_item_usage_account_id", text("111111111111")),
            ("line_item_line_item_type", text("Usage")),
            ("line_item_product_code", text("AmazonEC2")),
            (
                "line_item_usage_amount",
                Arc::new(Float64Array::from(vec![1.0; n])),
            ),
            (
                "line_item_unblended_cost",
                Arc::new(Float64Array::from(numbers)),
            ),
            (
                "bill_billing_period_start_date",
                Arc::new(TimestampMicrosecondArray::from(starts)),
            ),
        ];
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, a)| ArrowField::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = arrow::record_batch::RecordBatch::try_new(
            schema.clone(),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(per_group))
            .set_statistics_enabled(if statistics {
                EnabledStatistics::Chunk
            } else {
                EnabledStatistics::None
            })
            .build();
        let path = dir.join(format!("x{n}-{per_group}-{statistics}.parquet"));
        let file = File::create(&path).unwrap();
        let mut w = ::parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        path
    }

    /// A one-row-group CUR 2.0 Parquet file: two October rows, one November row.
    fn three_row_parquet(dir: &Path) -> std::path::PathBuf {
        cur_parquet(dir, vec![Some(OCT_1), Some(OCT_1), Some(NOV_1)], 3, true)
    }

    fn months(texts: &[&str]) -> BTreeSet<BillingPeriod> {
        texts
            .iter()
            .map(|t| BillingPeriod::parse(t).unwrap())
            .collect()
    }

    /// The periods found by reading the file's period column (what detection falls back to).
    fn periods_read(path: &Path) -> BTreeSet<BillingPeriod> {
        read_periods(path).unwrap()
    }

    #[test]
    fn statistics_give_the_periods_of_row_groups_of_one_month_each() {
        let dir = tempfile::tempdir().unwrap();
        // Row groups: [Oct 1, Oct 15], [null, null], [Dec 1].
        let starts = vec![Some(OCT_1), Some(OCT_15), None, None, Some(DEC_1)];
        let path = cur_parquet(dir.path(), starts, 2, true);
        let found = parquet::periods_from_statistics(&path);
        assert_eq!(found, Some(months(&["2026-10", "2026-12"])));
        // The same as reading every value.
        assert_eq!(periods_read(&path), months(&["2026-10", "2026-12"]));
    }

    #[test]
    fn statistics_do_not_guess_the_months_between_a_minimum_and_a_maximum() {
        let dir = tempfile::tempdir().unwrap();
        // One row group from October to December, without November: min and max cannot tell.
        let path = cur_parquet(dir.path(), vec![Some(OCT_1), Some(DEC_1)], 2, true);
        assert_eq!(parquet::periods_from_statistics(&path), None);
        assert_eq!(periods_read(&path), months(&["2026-10", "2026-12"]));
        assert_eq!(
            file_periods(&path).unwrap(),
            months(&["2026-10", "2026-12"])
        );
    }

    #[test]
    fn without_statistics_the_period_column_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = cur_parquet(dir.path(), vec![Some(OCT_1), Some(OCT_15)], 2, false);
        assert_eq!(parquet::periods_from_statistics(&path), None);
        assert_eq!(periods_read(&path), months(&["2026-10"]));
    }

    #[test]
    fn period_detection_reads_only_the_period_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = three_row_parquet(dir.path());
        let mut periods = open_periods(&path).unwrap();
        let chunk = periods.next_chunk().unwrap().unwrap();
        assert!(periods.next_chunk().is_none());
        assert_eq!(chunk.len(), 3);
        assert!(
            chunk.num.iter().all(Option::is_none),
            "a number column was decoded"
        );
        assert!(
            chunk.text.iter().all(Option::is_none),
            "a text column was decoded"
        );
        let found: Vec<BillingPeriod> = chunk.period[Field::BillingPeriodStart as usize]
            .as_ref()
            .unwrap()
            .distinct_periods()
            .into_iter()
            .collect();
        let expect = |text: &str| BillingPeriod::parse(text).unwrap();
        assert_eq!(found, vec![expect("2026-10"), expect("2026-11")]);
        // The rating read of the same file decodes the costs (the test's control).
        let chunk = open(&path).unwrap().next_chunk().unwrap().unwrap();
        let cost = chunk.num[Field::UnblendedCost as usize].as_ref().unwrap();
        assert_eq!(cost.get(2), Some(crate::money::ONE / 8));
    }

    #[test]
    fn focus_files_are_recognised() {
        let headers: Vec<String> = ["BilledCost", "ChargeCategory"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let err = ColumnMap::from_headers(Path::new("f.csv"), &headers)
            .unwrap_err()
            .to_string();
        assert!(err.contains("FOCUS"), "{err}");
    }
}
