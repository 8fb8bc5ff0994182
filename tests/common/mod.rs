//! Helpers shared by the integration tests.

/// A file's values as text: Parquet decoded (every non-timestamp column as
/// text, so doubles and decimals are seen as numbers), anything else as is.
pub fn readable_text(path: &str, bytes: &[u8]) -> String {
    use arrow::array::Array;
    if !path.ends_with(".parquet") {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .and_then(|b| b.build())
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = String::new();
    for batch in reader {
        let batch = batch.unwrap();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            out.push_str(f.name());
            out.push('\n');
            if matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(_, _)) {
                continue;
            }
            match arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8) {
                Ok(s) => {
                    let s = s
                        .as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .unwrap();
                    for v in s.iter().flatten() {
                        out.push_str(v);
                        out.push('\n');
                    }
                }
                Err(_) => out.push_str(&format!("{c:?}\n")),
            }
        }
    }
    out
}
