//! The dataset writers: Parquet, or CSV with formula-safe text; rolled up when asked.

use super::*;

/// Rows per batch of a rolled-up file as it is written.
pub(super) const ROLLED_BATCH_ROWS: usize = 65_536;

/// The Parquet writer settings of every export file of `schema`: amounts (decimals, doubles) are written without a
/// dictionary, since nearly every value differs and interning each one costs time for nothing.
pub(super) fn parquet_props_for(schema: &Schema) -> WriterProperties {
    let mut b = parquet_props_builder();
    for f in schema.fields() {
        if matches!(
            f.data_type(),
            DataType::Decimal128(_, _) | DataType::Float64
        ) {
            b = b.set_column_dictionary_enabled(
                parquet::schema::types::ColumnPath::from(f.name().as_str()),
                false,
            );
        }
    }
    b.build()
}

fn parquet_props_builder() -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        // Min/max statistics cost a comparison per text cell (a fifth of the
        // writing time, measured); readers scan these files whole anyway.
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        // A row group is buffered whole before it is written: 128K rows (not the
        // default 1M) keeps an org's three open datasets small in memory.
        .set_max_row_group_row_count(Some(131_072))
        .set_created_by(format!("billxfer {}", env!("CARGO_PKG_VERSION")))
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
            (a, b) => Err(Error::Internal(format!(
                "a rolled-up {a} column written as {b}"
            ))),
        })
        .collect::<Result<_>>()?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| Error::Internal(format!("writing a roll-up: {e}")))
}

/// Writes a finished roll-up to `path`: checks its rows still sum to the lines'
/// total, then writes the groups sorted by key, CUR metrics as doubles. Returns the rows written.
pub(super) fn write_roll_up(
    path: &Path,
    rel: &str,
    label: &str,
    agg: RollUp,
    lines_total: i128,
    format: ExportFormat,
) -> Result<u64> {
    let err = |e: String| Error::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    // The rolled-up rows must still sum to the invoice.
    let total = agg.metric_total(agg.spec().cost)?;
    if total != lines_total {
        return Err(Error::Internal(format!(
            "the {label} roll-up of {rel} sums to {} instead of {}",
            format_fixed_exact(total),
            format_fixed_exact(lines_total)
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
    let w = create_output(path)?;
    let mut rows = 0u64;
    match format {
        ExportFormat::Parquet => {
            let mut pw = ArrowWriter::try_new(w, schema.clone(), Some(parquet_props_for(&schema)))
                .map_err(|e| err(e.to_string()))?;
            agg.finish_with(ROLLED_BATCH_ROWS, |b| {
                let b = rolled_for_output(b, &schema)?;
                rows += b.num_rows() as u64;
                pw.write(&b).map_err(|e| err(e.to_string()))
            })?;
            pw.close().map_err(|e| err(e.to_string()))?;
        }
        ExportFormat::Csv => {
            let mut w = w;
            write_csv_header(&mut w, &schema).map_err(|e| err(e.to_string()))?;
            agg.finish_with(ROLLED_BATCH_ROWS, |b| {
                let b = rolled_for_output(b, &schema)?;
                rows += b.num_rows() as u64;
                write_csv_rows(&mut w, &b).map_err(|e| err(e.to_string()))
            })?;
            w.flush().map_err(|e| err(e.to_string()))?;
        }
    }
    Ok(rows)
}

/// A new output file (and its folder).
pub(super) fn create_output(path: &Path) -> Result<BufWriter<File>> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::Output {
            path: d.to_path_buf(),
            source: e,
        })?;
    }
    let file = File::create(path).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        source: e,
    })?;
    Ok(BufWriter::with_capacity(1 << 20, file))
}

/// Joins part files (with their row counts), in order, into the dataset file at
/// `path` and removes them. CSV: the header, then each part's bytes. Parquet: a
/// lone part with rows is renamed; several are joined by copying their row
/// groups' column chunks as they are (no decoding, no re-encoding).
pub(super) fn join_parts(
    path: &Path,
    parts: &[(&Path, u64)],
    schema: &SchemaRef,
    format: ExportFormat,
) -> Result<()> {
    let out_err = |e: String| Error::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    match format {
        ExportFormat::Csv => {
            let mut w = create_output(path)?;
            write_csv_header(&mut w, schema).map_err(|e| out_err(e.to_string()))?;
            for (part, _) in parts {
                let mut r = File::open(part).map_err(|e| Error::io(part, e))?;
                std::io::copy(&mut r, &mut w).map_err(|e| out_err(e.to_string()))?;
            }
            w.flush().map_err(|e| out_err(e.to_string()))?;
        }
        ExportFormat::Parquet => {
            let with_rows: Vec<&Path> = parts.iter().filter(|p| p.1 > 0).map(|p| p.0).collect();
            match with_rows.as_slice() {
                [] | [_] => {
                    // Every part has the same schema: the one with rows, or any empty one.
                    let only = with_rows.first().copied().or(parts.last().map(|p| p.0));
                    let Some(only) = only else {
                        return Err(Error::Internal(format!("{}: no parts", path.display())));
                    };
                    if let Some(d) = path.parent() {
                        std::fs::create_dir_all(d).map_err(|e| Error::Output {
                            path: d.to_path_buf(),
                            source: e,
                        })?;
                    }
                    std::fs::rename(only, path).map_err(|e| Error::Output {
                        path: path.to_path_buf(),
                        source: e,
                    })?;
                }
                several => concat_parquet(path, several)?,
            }
        }
    }
    for (part, _) in parts {
        match std::fs::remove_file(part) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Output {
                    path: part.to_path_buf(),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// Parquet files of one schema joined into one: their row groups' column chunks
/// are copied as they are, with their page indexes; the first file's key-value
/// metadata (arrow's schema) is kept.
fn concat_parquet(path: &Path, inputs: &[&Path]) -> Result<()> {
    use parquet::column::writer::ColumnCloseResult;
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    use parquet::file::writer::SerializedFileWriter;
    let out_err = |e: String| Error::Output {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    };
    let mut opened = Vec::with_capacity(inputs.len());
    for p in inputs {
        let file = File::open(p).map_err(|e| Error::io(p, e))?;
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&file)
            .map_err(|e| {
                Error::Internal(format!("{}: reading an export part: {e}", p.display()))
            })?;
        opened.push((file, meta));
    }
    let Some((_, first)) = opened.first() else {
        return Err(Error::Internal(format!("{}: no parts", path.display())));
    };
    let schema = first.file_metadata().schema_descr().root_schema_ptr();
    let kv = first.file_metadata().key_value_metadata().cloned();
    for (p, (_, m)) in inputs.iter().zip(&opened) {
        if m.file_metadata().schema() != first.file_metadata().schema() {
            return Err(Error::Internal(format!(
                "{}: an export part's schema differs from the first part's",
                p.display()
            )));
        }
    }
    let props = Arc::new(parquet_props_builder().set_key_value_metadata(kv).build());
    let w = create_output(path)?;
    let mut writer =
        SerializedFileWriter::new(w, schema, props).map_err(|e| out_err(e.to_string()))?;
    for (file, meta) in &opened {
        for (g, group) in meta.row_groups().iter().enumerate() {
            let mut out = writer
                .next_row_group()
                .map_err(|e| out_err(e.to_string()))?;
            for (c, column) in group.columns().iter().enumerate() {
                let result = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: group.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: meta
                        .column_index()
                        .and_then(|x| x.get(g))
                        .and_then(|x| x.get(c))
                        .cloned(),
                    offset_index: meta
                        .offset_index()
                        .and_then(|x| x.get(g))
                        .and_then(|x| x.get(c))
                        .cloned(),
                };
                out.append_column(file, result)
                    .map_err(|e| out_err(e.to_string()))?;
            }
            out.close().map_err(|e| out_err(e.to_string()))?;
        }
    }
    let mut w = writer.into_inner().map_err(|e| out_err(e.to_string()))?;
    w.flush().map_err(|e| out_err(e.to_string()))
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
    let borrowed: Vec<(&str, Option<&str>)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    let mut out = String::with_capacity(2 + pairs.len() * 24);
    write_pairs_json(&mut out, &borrowed);
    out
}

/// Appends pairs as a JSON object: the first value of a repeated key wins (FOCUS keys are unique).
pub(super) fn write_pairs_json(out: &mut String, pairs: &[(&str, Option<&str>)]) {
    out.push('{');
    let mut first = true;
    for (i, (k, v)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(seen, _)| seen == k) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        json_string(out, k);
        out.push(':');
        match v {
            Some(v) => json_string(out, v),
            None => out.push_str("null"),
        }
    }
    out.push('}');
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it (quote, backslash,
/// control characters; nothing else).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "a\"b",
            "back\\slash",
            "line\nbreak\r\t",
            "\u{1}\u{8}\u{c}\u{1f}",
            "é/ü 💶",
            "",
        ] {
            let mut ours = String::new();
            json_string(&mut ours, s);
            assert_eq!(
                ours,
                serde_json::Value::String(s.to_string()).to_string(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_first_value_of_a_repeated_key_wins() {
        let mut out = String::new();
        write_pairs_json(
            &mut out,
            &[("team", Some("a")), ("env", None), ("team", Some("b"))],
        );
        assert_eq!(out, r#"{"team":"a","env":null}"#);
    }
}
