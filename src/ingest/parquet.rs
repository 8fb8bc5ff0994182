//! Parquet cost-and-usage files, read batch by batch with only the needed columns.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::{ChunkSource, ColumnMap, Field, Kind, NumCell, PeriodCell, RawChunk, BATCH_ROWS};
use crate::error::{Error, Result};
use crate::money::{fixed_from_f64, parse_fixed, DecimalError, MAX_ABS, ONE, SCALE};
use crate::types::BillingPeriod;

/// A Parquet input being read.
pub struct ParquetSource {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    /// For each field, the column index in the projected batches.
    projected: [Option<usize>; 15],
    map: ColumnMap,
    row: u64,
}

impl ParquetSource {
    /// Opens a Parquet file and plans the projection of needed columns.
    pub fn open(path: &Path) -> Result<ParquetSource> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| Error::input(path, format!("not a readable Parquet file: {e}")))?;
        let schema = builder.schema().clone();
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let map = ColumnMap::from_headers(path, &names)?;
        // Check types up front so a wrong-typed file fails before any row is rated.
        for (k, field) in Field::ALL.iter().enumerate() {
            if let Some(idx) = map.index[k] {
                let dt = schema.field(idx).data_type();
                let ok = match field.kind() {
                    Kind::Text => is_text(dt) || is_integer(dt),
                    Kind::Number => {
                        is_text(dt)
                            || is_integer(dt)
                            || matches!(
                                dt,
                                DataType::Float64 | DataType::Float32 | DataType::Decimal128(_, _)
                            )
                    }
                    Kind::Period => {
                        is_text(dt)
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
                                Kind::Period => "a timestamp or ISO 8601 text",
                            }
                        ),
                    ));
                }
            }
        }
        let mut roots: Vec<usize> = map.index.iter().flatten().copied().collect();
        roots.sort_unstable();
        roots.dedup();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let mut projected = [None; 15];
        for (k, idx) in map.index.iter().enumerate() {
            if let Some(idx) = idx {
                projected[k] = roots.iter().position(|r| r == idx);
            }
        }
        let reader = builder
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| Error::input(path, format!("cannot read Parquet: {e}")))?;
        Ok(ParquetSource {
            path: path.to_path_buf(),
            reader,
            projected,
            map,
            row: 0,
        })
    }

    /// The column map.
    pub fn map(&self) -> &ColumnMap {
        &self.map
    }

    fn convert(&mut self, batch: RecordBatch) -> Result<RawChunk> {
        let n = batch.num_rows();
        let rows: Vec<u64> = (self.row + 1..=self.row + n as u64).collect();
        self.row += n as u64;
        let mut text: [Option<StringArray>; 15] = Default::default();
        let mut num: [Option<Vec<NumCell>>; 15] = Default::default();
        let mut period: [Option<Vec<PeriodCell>>; 15] = Default::default();
        for (k, field) in Field::ALL.iter().enumerate() {
            let Some(pi) = self.projected[k] else {
                continue;
            };
            let array = batch.column(pi);
            let name = self.map.name(*field);
            match field.kind() {
                Kind::Text => {
                    let s = if is_integer(array.data_type()) && *field == Field::UsageAccount {
                        // Readers that typed account ids as integers dropped leading zeros: restore 12 digits.
                        let a = cast(array, &DataType::Int64).map_err(|e| {
                            Error::input(&self.path, format!("column `{name}`: {e}"))
                        })?;
                        a.as_primitive::<Int64Type>()
                            .iter()
                            .map(|v| v.map(|v| format!("{v:012}")))
                            .collect::<StringArray>()
                    } else {
                        let a = cast(array, &DataType::Utf8).map_err(|e| {
                            Error::input(&self.path, format!("column `{name}`: {e}"))
                        })?;
                        a.as_string::<i32>().clone()
                    };
                    text[k] = Some(s);
                }
                Kind::Number => num[k] = Some(numbers(array.as_ref())),
                Kind::Period => {
                    period[k] =
                        Some(periods(array.as_ref()).map_err(|e| {
                            Error::input(&self.path, format!("column `{name}`: {e}"))
                        })?)
                }
            }
        }
        Ok(RawChunk {
            rows,
            lines: Vec::new(),
            text,
            num,
            period,
            broken: Vec::new(),
        })
    }
}

fn is_text(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

fn is_integer(dt: &DataType) -> bool {
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

/// Converts a numeric column to fixed point by the documented rules.
fn numbers(array: &dyn Array) -> Vec<NumCell> {
    let n = array.len();
    let cell = |r: std::result::Result<i128, DecimalError>, raw: &dyn Fn() -> String| match r {
        Ok(v) => NumCell::Value(v),
        Err(e) => NumCell::Bad(raw(), e),
    };
    match array.data_type() {
        DataType::Float64 => array
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| {
                v.map_or(NumCell::Null, |x| {
                    cell(fixed_from_f64(x), &|| x.to_string())
                })
            })
            .collect(),
        DataType::Float32 => array
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| {
                v.map_or(NumCell::Null, |x| {
                    cell(fixed_from_f64(x as f64), &|| x.to_string())
                })
            })
            .collect(),
        DataType::Decimal128(_, scale) => {
            let scale = *scale as i32;
            array
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .iter()
                .map(|v| {
                    v.map_or(NumCell::Null, |x| {
                        cell(rescale(x, scale), &|| format!("{x}e-{scale}"))
                    })
                })
                .collect()
        }
        dt if is_integer(dt) => match cast(array, &DataType::Int64) {
            Ok(a) => a
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| {
                    v.map_or(NumCell::Null, |x| {
                        cell(
                            (x as i128)
                                .checked_mul(ONE)
                                .filter(|v| v.abs() <= MAX_ABS)
                                .ok_or(DecimalError::Overflow),
                            &|| x.to_string(),
                        )
                    })
                })
                .collect(),
            Err(_) => vec![NumCell::Bad(String::new(), DecimalError::Invalid); n],
        },
        _ => match cast(array, &DataType::Utf8) {
            Ok(a) => a
                .as_string::<i32>()
                .iter()
                .map(|v| match v.map(str::trim) {
                    None | Some("") => NumCell::Null,
                    Some(t) => cell(parse_fixed(t), &|| t.to_string()),
                })
                .collect(),
            Err(_) => vec![NumCell::Bad(String::new(), DecimalError::Invalid); n],
        },
    }
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

fn periods(array: &dyn Array) -> std::result::Result<Vec<PeriodCell>, String> {
    let from_micros = |m: Option<i64>| match m {
        None => PeriodCell::Null,
        Some(m) => BillingPeriod::from_unix_micros(m).map_or(
            PeriodCell::Bad(format!("{m} µs since 1970")),
            PeriodCell::Value,
        ),
    };
    Ok(match array.data_type() {
        DataType::Timestamp(unit, _) => {
            let a = cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
            let per = match unit {
                TimeUnit::Second => 1_000_000,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1,
                TimeUnit::Nanosecond => 0,
            };
            a.as_primitive::<Int64Type>()
                .iter()
                .map(|v| {
                    from_micros(v.map(|x| {
                        if per == 0 {
                            x.div_euclid(1_000)
                        } else {
                            x.saturating_mul(per)
                        }
                    }))
                })
                .collect()
        }
        DataType::Date32 => array
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| from_micros(v.map(|d| d as i64 * 86_400_000_000)))
            .collect(),
        DataType::Date64 => {
            let a = cast(array, &DataType::Int64).map_err(|e| e.to_string())?;
            a.as_primitive::<Int64Type>()
                .iter()
                .map(|v| from_micros(v.map(|ms| ms.saturating_mul(1_000))))
                .collect()
        }
        _ => {
            let a = cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
            a.as_string::<i32>()
                .iter()
                .map(|v| match v.map(str::trim) {
                    None | Some("") => PeriodCell::Null,
                    Some(t) => BillingPeriod::from_iso_prefix(t)
                        .map_or(PeriodCell::Bad(t.to_string()), PeriodCell::Value),
                })
                .collect()
        }
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
