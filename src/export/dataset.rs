//! The dataset writers: Parquet, or CSV with formula-safe text; rolled up when asked.

use super::*;

/// A dataset file being written (Parquet, or CSV with formula-safe text), or
/// rolled up in memory and written at `finish` (`--granularity daily|monthly`).
pub(super) enum Sink {
    Parquet(Box<ArrowWriter<BufWriter<File>>>),
    Csv(BufWriter<File>, bool),
    RollUp(Box<RollUp>, BufWriter<File>),
}

/// Rows per batch of a rolled-up file as it is written.
pub(super) const ROLLED_BATCH_ROWS: usize = 65_536;

pub(super) struct Dataset {
    pub(super) path: PathBuf,
    pub(super) rel: String,
    /// `cur`, `focus` or `partner_focus`.
    pub(super) kind: &'static str,
    pub(super) schema: SchemaRef,
    pub(super) sink: Option<Sink>,
    pub(super) format: ExportFormat,
    /// Rows written (line rows; the rolled-up rows once a roll-up is finished).
    pub(super) rows: u64,
    pub(super) cost_total: i128,
}

/// The Parquet writer settings of every export file.
pub(super) fn parquet_props() -> WriterProperties {
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
pub(super) fn write_csv_header(w: &mut impl Write, schema: &Schema) -> std::io::Result<()> {
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| crate::csv_cell::csv_field(f.name()))
        .collect();
    writeln!(w, "{}", names.join(","))
}

/// A rolled-up batch as written: for CUR, the exact decimal sums become the
/// nearest doubles (CUR's cost and amount columns are doubles; docs/EXPORTS.md).
pub(super) fn rolled_for_output(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
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
    pub(super) fn create(
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

    pub(super) fn write(&mut self, batch: &RecordBatch, cost: i128) -> Result<()> {
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
    pub(super) fn finish_roll_up(&mut self, agg: RollUp, w: BufWriter<File>) -> Result<()> {
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

    pub(super) fn finish(mut self) -> Result<(PathBuf, String, u64, i128)> {
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
pub(super) fn write_csv_rows(w: &mut impl Write, batch: &RecordBatch) -> std::io::Result<()> {
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

pub(super) fn csv_cells(a: &ArrayRef) -> Vec<String> {
    let n = a.len();
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            s.iter()
                .map(|v| v.map(crate::csv_cell::csv_field).unwrap_or_default())
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
                p.map(|p| crate::csv_cell::csv_field(&pairs_json(&p)))
                    .unwrap_or_default()
            })
            .collect(),
        _ => match cast(a, &DataType::Utf8) {
            Ok(s) => s
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(crate::csv_cell::csv_field).unwrap_or_default())
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
                                crate::csv_cell::csv_field(&f.value(i).to_string())
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
pub(super) type Pairs = Vec<(String, Option<String>)>;

/// Each map cell as its (key, value) text pairs; keys and values are cast to text once per column.
pub(super) fn map_pairs(m: &MapArray) -> Vec<Option<Pairs>> {
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
pub(super) fn pairs_json(pairs: &[(String, Option<String>)]) -> String {
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
