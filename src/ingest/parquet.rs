//! Parquet cost-and-usage files, read batch by batch with only the needed columns.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field as ArrowField, Float32Type, Float64Type, Int32Type, Int64Type, Schema, TimeUnit,
};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use std::sync::Arc;

use super::{
    ChunkSource, ColumnMap, Field, Kind, NumColumn, NumState, PeriodColumn, RawChunk, TextColumn,
    BATCH_ROWS,
};
use crate::error::{Error, Result};
use crate::money::{
    fixed_from_f64, fixed_from_f64_fast_units, parse_fixed, DecimalError, FAST_UNDECIDED, MAX_ABS,
    ONE, SCALE,
};

/// A Parquet file read with positional reads (`pread`): the `File` reader of the
/// parquet crate duplicates the descriptor and seeks on every column chunk,
/// which costs several system calls per chunk on files with many row groups.
#[derive(Debug, Clone)]
pub struct PreadFile {
    file: Arc<File>,
    len: u64,
}

impl PreadFile {
    /// Opens a file for positional reads.
    pub fn open(path: &Path) -> std::io::Result<PreadFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(PreadFile {
            file: Arc::new(file),
            len,
        })
    }
}

/// A sequential reader over a [`PreadFile`] from a start offset.
pub struct PreadReader {
    file: Arc<File>,
    pos: u64,
}

impl std::io::Read for PreadReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl parquet::file::reader::Length for PreadFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl parquet::file::reader::ChunkReader for PreadFile {
    type T = std::io::BufReader<PreadReader>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(std::io::BufReader::new(PreadReader {
            file: self.file.clone(),
            pos: start,
        }))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; length];
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(buf.into())
    }
}

/// A Parquet input being read.
pub struct ParquetSource {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    /// For each field, the column index in the projected batches.
    projected: [Option<usize>; super::FIELDS],
    map: ColumnMap,
    row: u64,
    /// Positions of the identity columns in the projected batches.
    identity: Vec<usize>,
    /// Per period field stored as a bare Parquet integer, the arrow type the writer
    /// recorded for it (arrow `Date64`, second timestamps): how to read its unit.
    period_types: [Option<DataType>; super::FIELDS],
    /// Whether every column is read and handed on in `RawChunk::carried`.
    carry: bool,
}

impl ParquetSource {
    /// Opens a Parquet file and plans the projection of needed columns.
    pub fn open(path: &Path) -> Result<ParquetSource> {
        ParquetSource::open_part(path, None, super::Reading::default(), None)
    }

    /// Opens some row groups of a Parquet file; `first_row` is the file row number
    /// (0-based) of the first row of the first group, so row numbers stay file-wide.
    /// `reading` says what is read beyond the rating columns; `footer`, the file's
    /// footer when the plan has read it already (it is then not read again).
    pub fn open_part(
        path: &Path,
        part: Option<&super::Part>,
        reading: super::Reading,
        footer: Option<&Footer>,
    ) -> Result<ParquetSource> {
        let file = PreadFile::open(path).map_err(|e| Error::io(path, e))?;
        ParquetSource::from_reader(file, path, part, reading, footer)
    }

    /// Reads a whole Parquet file held in memory (a run's hashed bytes, fuzzing);
    /// `path` only labels messages; `footer`, the file's footer when already read.
    pub fn from_bytes(
        bytes: bytes::Bytes,
        path: &Path,
        reading: super::Reading,
        footer: Option<&Footer>,
    ) -> Result<ParquetSource> {
        ParquetSource::from_reader(bytes, path, None, reading, footer)
    }

    fn from_reader<R: parquet::file::reader::ChunkReader + Clone + 'static>(
        file: R,
        path: &Path,
        part: Option<&super::Part>,
        reading: super::Reading,
        footer: Option<&Footer>,
    ) -> Result<ParquetSource> {
        let identity = reading.identity;
        let builder = match footer {
            Some(f) => ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), f.clone()),
            None => ParquetRecordBatchReaderBuilder::new_with_metadata(
                file.clone(),
                read_footer(&file, path)?,
            ),
        };
        let schema = builder.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut map = ColumnMap::from_headers(path, &names)?;
        if !identity {
            map.identity.clear();
        }
        let period_types = period_types(&file, &schema, &map);
        // Check types up front so a wrong-typed file fails before any row is rated.
        for (k, field) in Field::ALL.iter().enumerate() {
            if let Some(idx) = map.index[k] {
                let dt = schema.field(idx).data_type();
                // A column of arrow's Null type holds no value at all (pyarrow writes an
                // all-empty CSV column so): read as empty cells, whatever its field.
                let ok = dt == &DataType::Null
                    || match field.kind() {
                        Kind::Text => is_text(dt) || is_integer(dt),
                        Kind::Number => {
                            is_text(dt)
                                || is_integer(dt)
                                || matches!(
                                    dt,
                                    DataType::Float64
                                        | DataType::Float32
                                        | DataType::Decimal128(_, _)
                                )
                        }
                        Kind::Period => {
                            is_text(dt)
                                || period_types[k].is_some()
                                || matches!(
                                    dt,
                                    DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
                                )
                        }
                    };
                if !ok {
                    return Err(Error::input(
                        path,
                        format!(
                            "column `{}` has type {dt}; expected {}",
                            names[idx],
                            match field.kind() {
                                Kind::Text => "text",
                                Kind::Number => "a number (double, decimal or decimal text)",
                                Kind::Period if is_integer(dt) => "a timestamp or ISO 8601 text (a bare Parquet integer has no unit: write the column as a Parquet DATE or TIMESTAMP)",
                                Kind::Period => "a timestamp or ISO 8601 text",
                            }
                        ),
                    ));
                }
            }
        }
        // Rows are checked against the period by their billing period start when the
        // file has one (normalize's rule); the usage start is then not read, except
        // to find a file's periods or to carry it into the exports.
        if !reading.periods_only && map.index[Field::BillingPeriodStart as usize].is_some() {
            map.index[Field::UsageStart as usize] = None;
        }
        // Ask the reader to keep text columns dictionary-encoded, as CUR files store
        // them, so checks and rule lookups run once per distinct value.
        let text_idx: Vec<usize> = Field::ALL
            .iter()
            .enumerate()
            // Rates are decimal text in CUR 2.0: as a dictionary they parse once per distinct value.
            .filter(|(_, f)| matches!(f.kind(), Kind::Text | Kind::Period | Kind::Number))
            .filter_map(|(k, _)| map.index[k])
            .collect();
        let hinted: Vec<ArrowField> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let dt = f.data_type();
                if text_idx.contains(&i) && matches!(dt, DataType::Utf8 | DataType::LargeUtf8) {
                    f.as_ref().clone().with_data_type(DataType::Dictionary(
                        Box::new(DataType::Int32),
                        Box::new(dt.clone()),
                    ))
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        let options = ArrowReaderOptions::new()
            .with_skip_arrow_metadata(true)
            .with_schema(Arc::new(Schema::new_with_metadata(
                hinted,
                schema.metadata().clone(),
            )));
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file.clone(), options)
            .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
        let mut roots: Vec<usize> = if reading.periods_only {
            Field::ALL
                .iter()
                .zip(map.index.iter())
                .filter(|(f, _)| f.kind() == Kind::Period)
                .filter_map(|(_, idx)| *idx)
                .collect()
        } else if reading.carry {
            // The exports carry every column: one read gives both.
            (0..schema.fields().len()).collect()
        } else {
            map.index.iter().flatten().copied().collect()
        };
        roots.extend(map.identity.iter().copied());
        roots.sort_unstable();
        roots.dedup();
        let identity_projected: Vec<usize> = map
            .identity
            .iter()
            .filter_map(|idx| roots.iter().position(|r| r == idx))
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let mut projected = [None; super::FIELDS];
        for (k, idx) in map.index.iter().enumerate() {
            if let Some(idx) = idx {
                projected[k] = roots.iter().position(|r| r == idx);
            }
        }
        let mut builder = builder.with_projection(mask).with_batch_size(BATCH_ROWS);
        if let Some(part) = part {
            builder = builder.with_row_groups(part.groups.clone());
        }
        let reader = builder
            .build()
            .map_err(|e| Error::input(path, format!("cannot read Parquet: {e}")))?;
        Ok(ParquetSource {
            path: path.to_path_buf(),
            reader,
            projected,
            map,
            row: part.map_or(0, |p| p.first_row),
            identity: identity_projected,
            period_types,
            carry: reading.carry,
        })
    }

    /// Reads every batch of the projected columns and does nothing with them:
    /// the decode floor for benchmarks.
    pub fn decode_only(mut self) -> Result<u64> {
        let mut n = 0u64;
        for b in self.reader.by_ref() {
            n += b
                .map_err(|e| Error::input(&self.path, e.to_string()))?
                .num_rows() as u64;
        }
        Ok(n)
    }

    /// The column map.
    pub fn map(&self) -> &ColumnMap {
        &self.map
    }

    fn convert(&mut self, batch: RecordBatch) -> Result<RawChunk> {
        let n = batch.num_rows();
        let rows: Vec<u64> = (self.row + 1..=self.row + n as u64).collect();
        self.row += n as u64;
        let mut text: [Option<TextColumn>; super::FIELDS] = Default::default();
        let mut num: [Option<NumColumn>; super::FIELDS] = Default::default();
        let mut period: [Option<PeriodColumn>; super::FIELDS] = Default::default();
        for (k, field) in Field::ALL.iter().enumerate() {
            let Some(pi) = self.projected[k] else {
                continue;
            };
            let array = batch.column(pi);
            let name = self.map.name(*field);
            let fail = |e: String| Error::input(&self.path, format!("column `{name}`: {e}"));
            match field.kind() {
                Kind::Text => {
                    text[k] = Some(
                        if is_integer(array.data_type())
                            && matches!(*field, Field::UsageAccount | Field::Payer)
                        {
                            // Readers that typed account ids as integers dropped leading zeros: restore 12 digits.
                            let a =
                                cast(array, &DataType::Int64).map_err(|e| fail(e.to_string()))?;
                            let s: StringArray = a
                                .as_primitive::<Int64Type>()
                                .iter()
                                .map(|v| v.map(|v| format!("{v:012}")))
                                .collect();
                            to_dictionary(&s).map_err(fail)?
                        } else {
                            to_dictionary(array.as_ref()).map_err(fail)?
                        },
                    );
                }
                Kind::Number => num[k] = Some(numbers(array.as_ref())),
                Kind::Period => {
                    let array = match &self.period_types[k] {
                        Some(dt) => cast(array, dt).map_err(|e| fail(e.to_string()))?,
                        None => array.clone(),
                    };
                    period[k] = Some(periods(array.as_ref()).map_err(fail)?)
                }
            }
        }
        let identity = self.identities(&batch)?;
        Ok(RawChunk {
            rows,
            lines: Vec::new(),
            text,
            num,
            period,
            broken: Vec::new(),
            identity,
            carried: self.carry.then_some(batch),
        })
    }

    /// Each row's identity hash over the identity columns as text (empty when not read).
    fn identities(&self, batch: &RecordBatch) -> Result<Vec<u64>> {
        if self.identity.is_empty() {
            return Ok(Vec::new());
        }
        let columns: Vec<arrow::array::ArrayRef> = self
            .identity
            .iter()
            .map(|&pi| cast(batch.column(pi), &DataType::Utf8))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::input(&self.path, format!("identity columns: {e}")))?;
        let texts: Vec<&StringArray> = columns.iter().map(|c| c.as_string::<i32>()).collect();
        Ok((0..batch.num_rows())
            .map(|i| {
                let mut h = std::hash::DefaultHasher::new();
                for t in &texts {
                    let cell = if t.is_valid(i) { t.value(i).trim() } else { "" };
                    super::hash_cell(&mut h, cell.as_bytes());
                }
                std::hash::Hasher::finish(&h)
            })
            .collect())
    }
}

/// For each period field stored as a bare integer, the date or timestamp type
/// of the writer's embedded arrow schema (`ARROW:schema`). Arrow writes `Date64`
/// and second timestamps as plain Parquet INT64, so only that schema gives their
/// unit. It is decoded only then, and a decoder panic on a corrupt one (a fuzzing
/// finding) counts as no schema.
fn period_types<R: parquet::file::reader::ChunkReader + Clone + 'static>(
    file: &R,
    schema: &Schema,
    map: &ColumnMap,
) -> [Option<DataType>; super::FIELDS] {
    let mut out: [Option<DataType>; super::FIELDS] = Default::default();
    let bare: Vec<(usize, usize)> = Field::ALL
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind() == Kind::Period)
        .filter_map(|(k, _)| map.index[k].map(|idx| (k, idx)))
        .filter(|(_, idx)| is_integer(schema.field(*idx).data_type()))
        .collect();
    if bare.is_empty() {
        return out;
    }
    let embedded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ParquetRecordBatchReaderBuilder::try_new_with_options(
            file.clone(),
            ArrowReaderOptions::new(),
        )
        .ok()
        .map(|b| b.schema().clone())
    }))
    .ok()
    .flatten();
    let Some(embedded) = embedded else {
        return out;
    };
    for (k, idx) in bare {
        if let Some(f) = embedded
            .fields()
            .get(idx)
            .filter(|f| f.name() == schema.field(idx).name())
        {
            if matches!(
                f.data_type(),
                DataType::Date64 | DataType::Date32 | DataType::Timestamp(_, _)
            ) {
                out[k] = Some(f.data_type().clone());
            }
        }
    }
    out
}

fn is_text(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// Whether a type is an integer (account ids some readers typed as numbers).
pub(crate) fn is_integer(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// A text column as `Dictionary(Int32, Utf8)`, casting only when the file did not already deliver one.
fn to_dictionary(array: &dyn Array) -> std::result::Result<TextColumn, String> {
    let target = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let a = if array.data_type() == &target {
        array.slice(0, array.len())
    } else {
        cast(array, &target).map_err(|e| e.to_string())?
    };
    Ok(a.as_dictionary::<Int32Type>().clone())
}

/// Converts a numeric column to fixed point by the documented rules.
fn numbers(array: &dyn Array) -> NumColumn {
    let n = array.len();
    let mut out = NumColumn::with_capacity(n);
    let raw = |r: std::result::Result<i128, DecimalError>, text: &dyn Fn() -> String| {
        r.map_err(|e| (text(), e))
    };
    match array.data_type() {
        DataType::Float64 => float64_cells(array.as_primitive::<Float64Type>(), &mut out),
        DataType::Float32 => {
            for v in array.as_primitive::<Float32Type>().iter() {
                out.push(v.map(|x| raw(fixed_from_f64(x as f64), &|| x.to_string())));
            }
        }
        DataType::Decimal128(_, scale) => {
            let scale = *scale as i32;
            for v in array
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .iter()
            {
                out.push(v.map(|x| raw(rescale(x, scale), &|| format!("{x}e-{scale}"))));
            }
        }
        DataType::Dictionary(_, _) => match to_dictionary(array) {
            Ok(d) => dictionary_cells(&d, &mut out),
            Err(_) => {
                (0..n).for_each(|_| out.push(Some(Err((String::new(), DecimalError::Invalid)))))
            }
        },
        dt if is_integer(dt) => match cast(array, &DataType::Int64) {
            Ok(a) => {
                for v in a.as_primitive::<Int64Type>().iter() {
                    out.push(v.map(|x| {
                        raw(
                            (x as i128)
                                .checked_mul(ONE)
                                .filter(|v| v.abs() <= MAX_ABS)
                                .ok_or(DecimalError::Overflow),
                            &|| x.to_string(),
                        )
                    }));
                }
            }
            Err(_) => {
                (0..n).for_each(|_| out.push(Some(Err((String::new(), DecimalError::Invalid)))))
            }
        },
        _ => match cast(array, &DataType::Utf8) {
            Ok(a) => {
                for v in a.as_string::<i32>().iter() {
                    out.push(match v.map(str::trim) {
                        None | Some("") => None,
                        Some(t) => Some(raw(parse_fixed(t), &|| t.to_string())),
                    });
                }
            }
            Err(_) => {
                (0..n).for_each(|_| out.push(Some(Err((String::new(), DecimalError::Invalid)))))
            }
        },
    }
    out
}

/// Converts a dictionary column of decimal text (CUR 2.0's rates) into an empty
/// `out`: each distinct value parsed once, then every cell's figure and state
/// copied from its value's in one pass over the keys; null and unreadable cells,
/// which are rare, fixed after.
fn dictionary_cells(d: &TextColumn, out: &mut NumColumn) {
    let values = d.values().as_string::<i32>();
    let parsed: Vec<Option<std::result::Result<i128, DecimalError>>> = (0..values.len())
        .map(
            |k| match values.is_valid(k).then(|| values.value(k).trim()) {
                None | Some("") => None,
                Some(t) => Some(parse_fixed(t)),
            },
        )
        .collect();
    let figures: Vec<(i128, NumState)> = parsed
        .iter()
        .map(|p| match p {
            Some(Ok(v)) => (*v, NumState::Value),
            Some(Err(_)) => (0, NumState::Bad),
            None => (0, NumState::Null),
        })
        .collect();
    // A key past the dictionary reads as an empty cell.
    let figure = |k: i32| {
        figures
            .get(k as usize)
            .copied()
            .unwrap_or((0, NumState::Null))
    };
    let keys = d.keys();
    out.values
        .extend(keys.values().iter().map(|&k| figure(k).0));
    out.state.extend(keys.values().iter().map(|&k| figure(k).1));
    if let Some(nulls) = keys.nulls().filter(|m| m.null_count() > 0) {
        for i in null_positions(nulls) {
            out.values[i] = 0;
            out.state[i] = NumState::Null;
        }
    }
    if figures.iter().any(|f| f.1 == NumState::Bad) {
        for (i, &k) in keys.values().iter().enumerate() {
            if let (true, Some(Some(Err(e)))) = (keys.is_valid(i), parsed.get(k as usize)) {
                let text = values.value(k as usize).trim().to_string();
                out.bad.push((i, text, e.clone()));
            }
        }
    }
}

/// Converts a Float64 column into an empty `out`: every cell by the integer path
/// in one pass over the values slice (no per-cell push), then, only where needed,
/// nulls marked and the cells that path left undecided converted by their text.
fn float64_cells(a: &Float64Array, out: &mut NumColumn) {
    // Marks a cell the integer path left undecided (no converted figure is this far out).
    const UNDECIDED: i128 = i128::MIN;
    let xs = a.values();
    let mut all_fast = true;
    out.values
        .extend(xs.iter().map(|&x| match fixed_from_f64_fast_units(x) {
            FAST_UNDECIDED => {
                all_fast = false;
                UNDECIDED
            }
            v => i128::from(v),
        }));
    out.state.resize(xs.len(), NumState::Value);
    let nulls = a.nulls().filter(|m| m.null_count() > 0);
    if !all_fast {
        for (i, &x) in xs.iter().enumerate() {
            if out.values[i] != UNDECIDED || nulls.is_some_and(|m| m.is_null(i)) {
                continue;
            }
            match fixed_from_f64(x) {
                Ok(v) => out.values[i] = v,
                Err(e) => {
                    out.values[i] = 0;
                    out.state[i] = NumState::Bad;
                    out.bad.push((i, x.to_string(), e));
                }
            }
        }
    }
    if let Some(nulls) = nulls {
        for i in null_positions(nulls) {
            out.values[i] = 0;
            out.state[i] = NumState::Null;
        }
    }
}

/// The positions of a validity buffer's nulls, found a 64-bit word at a time
/// (most words of a column hold none).
fn null_positions(nulls: &arrow::buffer::NullBuffer) -> Vec<usize> {
    let chunks = nulls.inner().bit_chunks();
    let mut out = Vec::with_capacity(nulls.null_count());
    let mut push = |word: usize, valid: u64, bits: usize| {
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let mut missing = !valid & mask;
        while missing != 0 {
            out.push(word * 64 + missing.trailing_zeros() as usize);
            missing &= missing - 1;
        }
    };
    for (word, valid) in chunks.iter().enumerate() {
        push(word, valid, 64);
    }
    if chunks.remainder_len() > 0 {
        push(
            chunks.chunk_len(),
            chunks.remainder_bits(),
            chunks.remainder_len(),
        );
    }
    out
}

/// Rescales a decimal with `scale` places to the internal scale, exactly or
/// rounding half away from zero past the 10th decimal.
fn rescale(v: i128, scale: i32) -> std::result::Result<i128, DecimalError> {
    let s = SCALE as i32;
    let out = if scale <= s {
        v.checked_mul(10i128.pow((s - scale) as u32))
            .ok_or(DecimalError::Overflow)?
    } else {
        crate::money::div_round(
            v,
            10i128.pow((scale - s) as u32),
            crate::money::Rounding::HalfAwayFromZero,
        )
    };
    if out.abs() > MAX_ABS {
        return Err(DecimalError::Overflow);
    }
    Ok(out)
}

/// Each cell of `a` through `to_micros`, nulls kept: over the values slice alone
/// when the column has no null (timestamp columns seldom do).
fn scaled(a: &Int64Array, to_micros: impl Fn(i64) -> i64) -> Vec<Option<i64>> {
    match a.nulls().filter(|n| n.null_count() > 0) {
        None => a.values().iter().map(|&x| Some(to_micros(x))).collect(),
        Some(_) => a.iter().map(|v| v.map(&to_micros)).collect(),
    }
}

fn periods(array: &dyn Array) -> std::result::Result<PeriodColumn, String> {
    Ok(match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let a = cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
            let a = a.as_primitive::<Int64Type>();
            // One loop per unit, the unit's factor a constant in it.
            let micros: Vec<Option<i64>> = match unit {
                TimeUnit::Second => scaled(a, |x| x.saturating_mul(1_000_000)),
                TimeUnit::Millisecond => scaled(a, |x| x.saturating_mul(1_000)),
                TimeUnit::Microsecond => scaled(a, |x| x),
                TimeUnit::Nanosecond => scaled(a, |x| x.div_euclid(1_000)),
            };
            PeriodColumn::Micros(micros)
        }
        DataType::Date32 => {
            // A Date32 array is not an Int32 array: cast before reading the days.
            let a = cast(array, &DataType::Int32).map_err(|e| e.to_string())?;
            PeriodColumn::Micros(
                a.as_primitive::<Int32Type>()
                    .iter()
                    .map(|v| v.map(|d| i64::from(d) * 86_400_000_000))
                    .collect(),
            )
        }
        DataType::Date64 => {
            let a = cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
            PeriodColumn::Micros(
                a.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map(|ms| ms.saturating_mul(1_000)))
                    .collect(),
            )
        }
        _ => PeriodColumn::Text(to_dictionary(array)?),
    })
}

impl ChunkSource for ParquetSource {
    fn next_chunk(&mut self) -> Option<Result<RawChunk>> {
        match self.reader.next()? {
            Ok(batch) => Some(self.convert(batch)),
            Err(e) => Some(Err(Error::input(
                &self.path,
                format!("corrupt Parquet data after row {}: {e}", self.row),
            ))),
        }
    }

    fn column_map(&self) -> &ColumnMap {
        &self.map
    }

    fn describe(&self) -> String {
        let d = serde_json::to_value(self.map.dialect)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        format!("{d} Parquet")
    }
}

/// A Parquet file's footer as the readers use it: its metadata and arrow schema.
pub type Footer = ArrowReaderMetadata;

/// Reads a Parquet file's footer. The embedded arrow schema (ARROW:schema) is
/// ignored: billxfer reads the Parquet types itself, and a corrupt one made the
/// arrow-ipc decoder panic (fuzzing finding).
fn read_footer<R: parquet::file::reader::ChunkReader>(file: &R, path: &Path) -> Result<Footer> {
    ArrowReaderMetadata::load(
        file,
        ArrowReaderOptions::new().with_skip_arrow_metadata(true),
    )
    .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))
}

/// A Parquet file's footer, read once when the run is planned and handed to the
/// readers of its tasks.
pub fn footer(path: &Path) -> Result<Footer> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    read_footer(&file, path)
}

/// Row counts of each row group, from a footer.
pub fn row_groups(footer: &Footer) -> Vec<u64> {
    footer
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect()
}

/// A file's billing periods from its row groups' statistics alone, without decoding
/// a value; `None` when they cannot tell exactly, and the column must be read.
///
/// A row group answers when its period column (the billing period start, or the
/// usage start in a file without one) is a timestamp or date stored as an integer
/// (not INT96, whose statistics writers get wrong) and either every value is null
/// or its minimum and maximum fall in the same month: every value between them is
/// then of that month too. A row group whose minimum and maximum are in different
/// months might skip a month between them, so the file is read instead.
pub fn periods_from_statistics(
    path: &Path,
) -> Option<std::collections::BTreeSet<crate::types::BillingPeriod>> {
    use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
    use parquet::basic::Type as PhysicalType;
    let footer = footer(path).ok()?;
    let schema = footer.schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let map = ColumnMap::from_headers(path, &names).ok()?;
    let mut found = std::collections::BTreeSet::new();
    let Some(idx) = [Field::BillingPeriodStart, Field::UsageStart]
        .iter()
        .find_map(|f| map.index[*f as usize])
    else {
        return Some(found);
    };
    let field = schema.field(idx);
    if !matches!(
        field.data_type(),
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    ) {
        return None;
    }
    let parquet_schema = footer.metadata().file_metadata().schema_descr();
    let converter = StatisticsConverter::try_new(field.name(), schema, parquet_schema).ok()?;
    let leaf = converter.parquet_column_index()?;
    if parquet_schema.column(leaf).physical_type() == PhysicalType::INT96 {
        return None;
    }
    let groups = footer.metadata().row_groups();
    let rows = converter.row_group_row_counts(groups.iter()).ok()??;
    let nulls = converter.row_group_null_counts(groups.iter()).ok()?;
    let micros = |a: arrow::array::ArrayRef| match periods(a.as_ref()) {
        Ok(PeriodColumn::Micros(v)) => Some(v),
        _ => None,
    };
    let mins = micros(converter.row_group_mins(groups.iter()).ok()?)?;
    let maxes = micros(converter.row_group_maxes(groups.iter()).ok()?)?;
    let month = |v: Option<&Option<i64>>| {
        v.copied()
            .flatten()
            .and_then(crate::types::BillingPeriod::from_unix_micros)
    };
    for g in 0..groups.len() {
        let all_null = rows.is_valid(g) && nulls.is_valid(g) && nulls.value(g) == rows.value(g);
        if all_null {
            continue;
        }
        match (month(mins.get(g)), month(maxes.get(g))) {
            (Some(low), Some(high)) if low == high => {
                found.insert(low);
            }
            _ => return None,
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_cells_are_each_cell_by_the_documented_rule() {
        let cells = [
            Some(1.5),
            None,
            Some(f64::NAN),
            Some(0.1),
            Some(1e300),
            Some(72_057_594_037_927_952.0),
            Some(-0.000_123_4),
            Some(f64::INFINITY),
        ];
        let column: Float64Array = cells.iter().copied().collect();
        let mut out = NumColumn::with_capacity(cells.len());
        float64_cells(&column, &mut out);
        // One cell at a time, by the rule itself.
        let mut expected = NumColumn::with_capacity(cells.len());
        for cell in cells {
            expected.push(cell.map(|x| fixed_from_f64(x).map_err(|e| (x.to_string(), e))));
        }
        assert_eq!(out.values, expected.values);
        assert_eq!(out.state, expected.state);
        assert_eq!(out.bad, expected.bad);
        assert_eq!(out.state[1], NumState::Null);
        assert_eq!(out.bad.len(), 3, "NaN, 1e300 (beyond range) and infinity");
        assert_eq!(out.values[3], ONE / 10);
    }

    #[test]
    fn null_positions_are_the_null_cells() {
        // 150 cells of an offset slice: nulls in the first word, at a word's edges and in the tail.
        let cells: Vec<Option<f64>> = (0..160)
            .map(|i| (![3, 63, 64, 70, 127, 128, 150, 158].contains(&i)).then_some(1.0))
            .collect();
        let column = Float64Array::from(cells).slice(5, 150);
        let nulls = column.nulls().unwrap();
        let by_cell: Vec<usize> = (0..150).filter(|&i| column.is_null(i)).collect();
        assert_eq!(by_cell, vec![58, 59, 65, 122, 123, 145]);
        assert_eq!(null_positions(nulls), by_cell);
    }

    #[test]
    fn dictionary_cells_are_each_cell_of_its_text() {
        use arrow::array::{DictionaryArray, Int32Array};
        let values = StringArray::from(vec![
            Some("1.5"),
            Some("x"),
            Some(" "),
            None,
            Some("-0.0000000001"),
        ]);
        let keys = Int32Array::from(vec![
            Some(0),
            Some(1),
            Some(2),
            Some(3),
            None,
            Some(0),
            Some(4),
            Some(1),
        ]);
        let column = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values)).unwrap();
        let mut out = NumColumn::with_capacity(8);
        dictionary_cells(&column, &mut out);
        // By hand: 1.5, "x" unreadable, blank, null value, null key, 1.5, -1e-10, "x" again.
        let (v, n, b) = (NumState::Value, NumState::Null, NumState::Bad);
        assert_eq!(out.state, vec![v, b, n, n, n, v, v, b]);
        assert_eq!(
            out.values,
            vec![15_000_000_000, 0, 0, 0, 0, 15_000_000_000, -1, 0]
        );
        assert_eq!(
            out.bad,
            vec![
                (1, "x".to_string(), DecimalError::Invalid),
                (7, "x".to_string(), DecimalError::Invalid)
            ]
        );
    }
}
