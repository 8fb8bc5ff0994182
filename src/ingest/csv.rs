//! CSV (and gzip CSV) cost-and-usage files, streamed record by record.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use arrow::array::StringDictionaryBuilder;
use arrow::datatypes::Int32Type;
use flate2::read::MultiGzDecoder;

use super::{ChunkSource, ColumnMap, Field, Kind, NumColumn, PeriodColumn, RawChunk, BATCH_ROWS};
use crate::error::{Error, Result};
use crate::money::parse_fixed_bytes;

/// A CSV input being read.
pub struct CsvSource {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    map: ColumnMap,
    width: usize,
    record: csv::ByteRecord,
    row: u64,
    done: bool,
    gzip: bool,
    /// Every column's name, when every column is carried for the exports.
    carry: Option<arrow::datatypes::SchemaRef>,
    names: Vec<String>,
}

impl CsvSource {
    /// Opens a CSV file and reads its header.
    pub fn open(path: &Path, gzip: bool) -> Result<CsvSource> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        CsvSource::from_reader(Box::new(file), path, gzip)
    }

    /// Reads CSV from any reader (fuzzing, tests); `path` only labels messages.
    pub fn from_reader(input: Box<dyn Read + Send>, path: &Path, gzip: bool) -> Result<CsvSource> {
        let inner: Box<dyn Read + Send> = if gzip {
            Box::new(MultiGzDecoder::new(BufReader::with_capacity(
                1 << 16,
                input,
            )))
        } else {
            Box::new(BufReader::with_capacity(1 << 16, input))
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(inner);
        let headers = reader
            .byte_headers()
            .map_err(|e| Error::input(path, format!("cannot read the CSV header: {e}")))?
            .clone();
        if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
            return Err(Error::input(
                path,
                "the file is empty: expected a CUR file with a header row",
            ));
        }
        let names: Vec<String> = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
        if names.len() == 1
            && (names[0].contains(';') || names[0].contains('\t') || names[0].contains('|'))
        {
            return Err(Error::input(
                path,
                "the header has a single column containing `;`, tab or `|`: CUR CSV files are comma-separated",
            ));
        }
        let map = ColumnMap::from_headers(path, &names)?;
        Ok(CsvSource {
            path: path.to_path_buf(),
            reader,
            width: names.len(),
            map,
            record: csv::ByteRecord::new(),
            row: 0,
            done: false,
            gzip,
            carry: None,
            names,
        })
    }

    /// Reads every record and does nothing with it: the decode floor for benchmarks.
    pub fn decode_only(mut self) -> Result<u64> {
        let mut n = 0u64;
        while self
            .reader
            .read_byte_record(&mut self.record)
            .map_err(|e| Error::input(&self.path, e.to_string()))?
        {
            n += 1;
        }
        Ok(n)
    }

    /// The column map.
    pub fn map(&self) -> &ColumnMap {
        &self.map
    }

    /// Does not hash identity columns (the run does not compare deliveries).
    pub fn skip_identity(&mut self) {
        self.map.identity.clear();
    }

    /// Carries every column (as text; empty and `null` cells as nulls) in
    /// `RawChunk::carried`, for the exports.
    pub fn carry_all(&mut self) {
        use arrow::datatypes::{DataType, Field as ArrowField, Schema};
        let fields: Vec<ArrowField> = self
            .names
            .iter()
            .map(|h| {
                ArrowField::new(
                    h.trim().trim_start_matches('\u{feff}'),
                    DataType::Utf8,
                    true,
                )
            })
            .collect();
        self.carry = Some(std::sync::Arc::new(Schema::new(fields)));
    }
}

/// A carried cell as the exports see it: text (invalid UTF-8 replaced, the row was
/// rated on its other columns), trimmed; empty and `null` cells are nulls.
fn append_carried(b: &mut arrow::array::StringBuilder, cell: &[u8]) {
    let cell = String::from_utf8_lossy(cell);
    let t = cell.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("null") {
        b.append_null();
    } else {
        b.append_value(t);
    }
}

/// Whether a field holds, after a line break, a line with as many separators as a
/// row of the file: the mark of a quote left open that swallowed the rows after it.
fn swallowed_rows(record: &csv::ByteRecord, width: usize) -> bool {
    let separators = width.saturating_sub(1).max(1);
    record.iter().any(|field| {
        field
            .split(|b| *b == b'\n')
            .skip(1)
            .any(|line| line.iter().filter(|b| **b == b',').count() >= separators)
    })
}

impl ChunkSource for CsvSource {
    fn next_chunk(&mut self) -> Option<Result<RawChunk>> {
        if self.done {
            return None;
        }
        let mut rows = Vec::with_capacity(BATCH_ROWS);
        let mut lines = Vec::with_capacity(BATCH_ROWS);
        // Text and period cells are interned as they are read: CUR text repeats a lot.
        let mut text: [Option<StringDictionaryBuilder<Int32Type>>; super::FIELDS] =
            Default::default();
        let mut num: [Option<NumColumn>; super::FIELDS] = Default::default();
        for (k, field) in Field::ALL.iter().enumerate() {
            if self.map.index[k].is_some() {
                match field.kind() {
                    Kind::Text | Kind::Period => {
                        text[k] = Some(StringDictionaryBuilder::with_capacity(
                            BATCH_ROWS, 256, 4096,
                        ))
                    }
                    Kind::Number => num[k] = Some(NumColumn::with_capacity(BATCH_ROWS)),
                }
            }
        }
        let mut broken = Vec::new();
        let mut identity = Vec::new();
        // FOCUS examples spell null as the literal `null`.
        let focus = self.map.dialect == super::Dialect::Focus;
        let mut carried: Vec<arrow::array::StringBuilder> = match &self.carry {
            Some(_) => (0..self.width)
                .map(|_| arrow::array::StringBuilder::new())
                .collect(),
            None => Vec::new(),
        };
        while rows.len() < BATCH_ROWS {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => {
                    self.done = true;
                    let what = if self.gzip {
                        "the gzip stream or CSV is corrupt"
                    } else {
                        "the CSV is malformed"
                    };
                    let at = e
                        .position()
                        .map(|p| format!(" at line {}", p.line()))
                        .unwrap_or_default();
                    return Some(Err(Error::input(&self.path, format!("{what}{at}: {e}"))));
                }
            }
            self.row += 1;
            let line = self.record.position().map(|p| p.line()).unwrap_or(0);
            if self.record.len() == 1 && self.record[0].is_empty() {
                // A blank line is not a row.
                self.row -= 1;
                continue;
            }
            if self.record.len() != self.width {
                broken.push((
                    self.row,
                    line,
                    String::new(),
                    format!(
                        "the row has {} fields but the header has {}",
                        self.record.len(),
                        self.width
                    ),
                ));
                continue;
            }
            // A quoted line break is valid CSV (descriptions, tags). A field holding
            // a whole row's worth of separators after a line break is an unterminated
            // quote that swallowed the rows after it: not rated (docs/INPUTS.md).
            // One scan of the whole record first: almost no row holds a line break.
            if self.record.as_slice().contains(&b'\n') && swallowed_rows(&self.record, self.width) {
                broken.push((
                    self.row,
                    line,
                    String::new(),
                    "a field holds a line break: an unterminated quote swallowed the rows after it, so they are not rated".into(),
                ));
                continue;
            }
            // Every text field we read must be UTF-8; check before pushing anything.
            let mut bad_utf8 = None;
            for (k, field) in Field::ALL.iter().enumerate() {
                if let (Some(idx), Kind::Text | Kind::Period) = (self.map.index[k], field.kind()) {
                    if std::str::from_utf8(&self.record[idx]).is_err() {
                        bad_utf8 = Some(self.map.name(*field));
                        break;
                    }
                }
            }
            if let Some(column) = bad_utf8 {
                broken.push((
                    self.row,
                    line,
                    column,
                    "the value is not valid UTF-8 text".into(),
                ));
                continue;
            }
            rows.push(self.row);
            lines.push(line);
            for (b, cell) in carried.iter_mut().zip(self.record.iter()) {
                append_carried(b, cell);
            }
            if !self.map.identity.is_empty() {
                let mut h = std::hash::DefaultHasher::new();
                for &idx in &self.map.identity {
                    super::hash_cell(&mut h, self.record[idx].trim_ascii());
                }
                identity.push(std::hash::Hasher::finish(&h));
            }
            for k in 0..super::FIELDS {
                let Some(idx) = self.map.index[k] else {
                    continue;
                };
                let cell = &self.record[idx];
                if let Some(b) = text[k].as_mut() {
                    let t = std::str::from_utf8(cell).unwrap_or("").trim();
                    if focus && t.eq_ignore_ascii_case("null") {
                        b.append_null();
                    } else {
                        b.append_value(t);
                    }
                } else if let Some(v) = num[k].as_mut() {
                    let t = cell.trim_ascii();
                    v.push(
                        if t.is_empty() || (focus && t.eq_ignore_ascii_case(b"null")) {
                            None
                        } else {
                            Some(
                                parse_fixed_bytes(t)
                                    .map_err(|e| (String::from_utf8_lossy(t).into_owned(), e)),
                            )
                        },
                    );
                }
            }
        }
        if rows.is_empty() && broken.is_empty() {
            return None;
        }
        let mut text = text.map(|b| b.map(|mut b| b.finish()));
        let mut period: [Option<PeriodColumn>; super::FIELDS] = Default::default();
        for (k, field) in Field::ALL.iter().enumerate() {
            if field.kind() == Kind::Period {
                period[k] = text[k].take().map(PeriodColumn::Text);
            }
        }
        let carried = match &self.carry {
            Some(schema) => {
                let columns: Vec<arrow::array::ArrayRef> = carried
                    .into_iter()
                    .map(|mut b| std::sync::Arc::new(b.finish()) as arrow::array::ArrayRef)
                    .collect();
                match arrow::array::RecordBatch::try_new(schema.clone(), columns) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        return Some(Err(Error::Internal(format!(
                            "{}: carrying columns: {e}",
                            self.path.display()
                        ))))
                    }
                }
            }
            None => None,
        };
        Some(Ok(RawChunk {
            rows,
            lines,
            text,
            num,
            period,
            broken,
            identity,
            carried,
        }))
    }

    fn column_map(&self) -> &ColumnMap {
        &self.map
    }

    fn describe(&self) -> String {
        let d = serde_json::to_value(self.map.dialect)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        format!("{d} CSV{}", if self.gzip { " (gzip)" } else { "" })
    }
}
