//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The billxfer binary under test.
#[allow(dead_code)]
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_billxfer"))
}

/// The repository root.
#[allow(dead_code)]
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Asserts success (showing stdout and stderr otherwise) and returns stdout.
#[allow(dead_code)]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "billxfer failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A JSON file, parsed.
#[allow(dead_code)]
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[allow(dead_code)]
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
