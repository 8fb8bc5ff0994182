//! Rows held until month end, on disk: each task writes the rows whose amount
//! waits for the org's month-end charges to an Arrow IPC stream in the parts
//! folder, so memory does not grow with them; the org's finish reads them back,
//! one batch at a time, in file and row order.

use super::*;
use crate::normalize::normalized_schema;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use sink::{output_err as output, Held};

/// Column name prefixes of a held batch: normalized columns, carried columns, amounts.
const NORM: &str = "n.";
const WIDE: &str = "w.";
const AMOUNT: &str = "x.amount";
const TREATMENT: &str = "x.treatment";
const RATED_EFFECTIVE: &str = "x.rated_effective";
const EFFECTIVE_IN: &str = "x.effective_in";

const TREATMENTS: [Treatment; 5] = [
    Treatment::Billed,
    Treatment::AsDelivered,
    Treatment::Rate,
    Treatment::SameAsActual,
    Treatment::Excluded,
];

fn internal(what: impl std::fmt::Display) -> Error {
    Error::Internal(format!("held month-end rows: {what}"))
}

/// One task's held rows of one track, as an Arrow IPC stream file.
pub(super) struct HeldFile {
    pub(super) track: Track,
    path: PathBuf,
    /// The input file the rows come from (for messages).
    source: PathBuf,
    writer: Option<StreamWriter<BufWriter<File>>>,
    rows: u64,
}

impl HeldFile {
    pub(super) fn new(path: PathBuf, track: Track, source: PathBuf) -> HeldFile {
        HeldFile {
            track,
            path,
            source,
            writer: None,
            rows: 0,
        }
    }

    /// Appends held rows (the file is created with the first ones).
    pub(super) fn write(&mut self, h: &Held) -> Result<()> {
        let batch = encode(h)?;
        if self.writer.is_none() {
            let w = dataset::create_output(&self.path)?;
            self.writer =
                Some(StreamWriter::try_new(w, &batch.schema()).map_err(|e| output(&self.path, e))?);
        }
        if let Some(w) = self.writer.as_mut() {
            w.write(&batch).map_err(|e| output(&self.path, e))?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Finishes the stream.
    pub(super) fn close(&mut self) -> Result<()> {
        if let Some(mut w) = self.writer.take() {
            w.finish().map_err(|e| output(&self.path, e))?;
            let mut inner = w.into_inner().map_err(|e| output(&self.path, e))?;
            inner.flush().map_err(|e| output(&self.path, e))?;
        }
        Ok(())
    }

    /// Reads the held rows back, batch by batch, handing each to `each`; then removes the file.
    pub(super) fn read_each(&self, mut each: impl FnMut(Held) -> Result<()>) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let reader = StreamReader::try_new(BufReader::new(file), None).map_err(internal)?;
        for batch in reader {
            each(decode(batch.map_err(internal)?, self.track, &self.source)?)?;
        }
        std::fs::remove_file(&self.path).map_err(|e| Error::Output {
            path: self.path.clone(),
            source: e,
        })
    }
}

fn money_column(v: &[i128]) -> Result<ArrayRef> {
    Ok(Arc::new(
        Decimal128Array::from(v.to_vec())
            .with_precision_and_scale(38, 10)
            .map_err(internal)?,
    ))
}

/// Held rows as one batch: the normalized columns, the carried ones, the amounts so far.
fn encode(h: &Held) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in h.norm.schema().fields().iter().zip(h.norm.columns()) {
        fields.push(Field::new(
            format!("{NORM}{}", f.name()),
            f.data_type().clone(),
            true,
        ));
        columns.push(c.clone());
    }
    for (name, c) in &h.wide {
        fields.push(Field::new(
            format!("{WIDE}{name}"),
            c.data_type().clone(),
            true,
        ));
        columns.push(c.clone());
    }
    let treatment: UInt8Array = h
        .treatment
        .iter()
        .map(|t| TREATMENTS.iter().position(|x| x == t).map(|p| p as u8))
        .collect();
    for (name, c) in [
        (AMOUNT, money_column(&h.amount)?),
        (TREATMENT, Arc::new(treatment) as ArrayRef),
        (RATED_EFFECTIVE, money_column(&h.rated_effective)?),
        (EFFECTIVE_IN, money_column(&h.effective_in)?),
    ] {
        fields.push(Field::new(name, c.data_type().clone(), true));
        columns.push(c);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

/// A held batch back as rows: each row's invoice line and usage come from its normalized columns.
fn decode(batch: RecordBatch, track: Track, source: &Path) -> Result<Held> {
    let schema = batch.schema();
    let mut norm = Vec::new();
    let mut wide = BTreeMap::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if let Some(n) = f.name().strip_prefix(NORM) {
            norm.push((n.to_string(), c.clone()));
        } else if let Some(w) = f.name().strip_prefix(WIDE) {
            wide.insert(w.to_string(), c.clone());
        }
    }
    let norm = RecordBatch::try_new(
        normalized_schema(),
        norm.into_iter().map(|(_, c)| c).collect(),
    )
    .map_err(internal)?;
    let decimals = |name: &str| -> Result<Vec<i128>> {
        let a = batch
            .column_by_name(name)
            .and_then(|a| a.as_primitive_opt::<arrow::datatypes::Decimal128Type>())
            .ok_or_else(|| internal(format!("column {name} missing")))?;
        Ok(a.values().to_vec())
    };
    let treatment = batch
        .column_by_name(TREATMENT)
        .and_then(|a| a.as_primitive_opt::<arrow::datatypes::UInt8Type>())
        .ok_or_else(|| internal("treatments missing"))?
        .iter()
        .map(|t| {
            t.and_then(|t| TREATMENTS.get(t as usize).copied())
                .ok_or_else(|| internal("an unknown treatment"))
        })
        .collect::<Result<Vec<Treatment>>>()?;
    let cols = sink::NormColumns::of(&norm)?;
    let n = norm.num_rows();
    let mut line = Vec::with_capacity(n);
    let mut usage = Vec::with_capacity(n);
    for i in 0..n {
        let lt = LineType::from_code(cols.types.value(i)).unwrap_or(LineType::Usage);
        line.push(cols.line_key(i, lt));
        usage.push(cols.usage.value(i));
    }
    Ok(Held {
        track,
        path: source.to_path_buf(),
        norm,
        wide,
        amount: decimals(AMOUNT)?,
        treatment,
        rated_effective: decimals(RATED_EFFECTIVE)?,
        effective_in: decimals(EFFECTIVE_IN)?,
        line,
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::DictionaryArray;

    /// Normalized rows (row, account, product, usage) with their own dictionaries.
    fn norm(rows: &[(u64, &str, &str, i128)]) -> RecordBatch {
        let n = rows.len();
        let dict = |v: Vec<&str>| -> ArrayRef {
            Arc::new(v.into_iter().collect::<DictionaryArray<Int32Type>>())
        };
        let dec = |v: Vec<i128>| -> ArrayRef {
            Arc::new(
                Decimal128Array::from(v)
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            )
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            dict(rows.iter().map(|r| r.1).collect()),
            Arc::new(UInt8Array::from(vec![LineType::Usage as u8; n])),
            dict(rows.iter().map(|r| r.2).collect()),
            dict(vec!["USE1-TimedStorage-ByteHrs"; n]),
            dict(vec![""; n]),
            dict(vec!["us-east-1"; n]),
            dict(vec!["AWS"; n]),
            dec(rows.iter().map(|r| r.3).collect()),
            dec(vec![0; n]),
            dec(vec![0; n]),
            dec(vec![0; n]),
            dec(vec![0; n]),
            dec(vec![0; n]),
        ];
        RecordBatch::try_new(normalized_schema(), columns).unwrap()
    }

    fn held(rows: &[(u64, &str, &str, i128)], resource: &[&str]) -> Held {
        let n = rows.len();
        let norm = norm(rows);
        let cols = sink::NormColumns::of(&norm).unwrap();
        let line = (0..n).map(|i| cols.line_key(i, LineType::Usage)).collect();
        let mut wide = BTreeMap::new();
        wide.insert(
            "line_item_resource_id".to_string(),
            Arc::new(StringArray::from(resource.to_vec())) as ArrayRef,
        );
        Held {
            track: Track::Proforma,
            path: PathBuf::from("in.csv"),
            norm,
            wide,
            amount: vec![7; n],
            treatment: vec![Treatment::Rate; n],
            rated_effective: vec![3; n],
            effective_in: vec![5; n],
            line,
            usage: rows.iter().map(|r| r.3).collect(),
        }
    }

    #[test]
    fn held_rows_come_back_from_disk_as_they_went_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.arrows");
        let mut file = HeldFile::new(path.clone(), Track::Proforma, PathBuf::from("in.csv"));
        // Two batches with different dictionaries (a stream may replace them).
        let first = held(&[(1, "111111111112", "AmazonS3", 6)], &["bucket-a"]);
        let second = held(
            &[
                (9, "111111111113", "AmazonEC2", 2),
                (12, "111111111112", "AmazonS3", 8),
            ],
            &["i-1", "bucket-b"],
        );
        file.write(&first).unwrap();
        file.write(&second).unwrap();
        file.close().unwrap();
        let mut back = Vec::new();
        file.read_each(|h| {
            back.push(h);
            Ok(())
        })
        .unwrap();
        assert_eq!(back.len(), 2);
        for (got, want) in back.iter().zip([&first, &second]) {
            assert_eq!(got.norm, want.norm);
            assert_eq!(got.wide, want.wide);
            assert_eq!(got.line, want.line);
            assert_eq!(got.usage, want.usage);
            assert_eq!(got.amount, want.amount);
            assert_eq!(got.rated_effective, want.rated_effective);
            assert_eq!(got.effective_in, want.effective_in);
            assert_eq!(got.treatment, want.treatment);
            assert_eq!(got.track, Track::Proforma);
        }
        assert_eq!(back[1].line[0].account, "111111111113");
        assert_eq!(back[1].line[1].service, "AmazonS3");
        // Read once, then removed.
        assert!(!path.exists());
    }
}
