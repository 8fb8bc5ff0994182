#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::own_panics_only(|| {
        if let Ok(source) = billxfer::ingest::parquet::ParquetSource::from_bytes(bytes::Bytes::copy_from_slice(data), std::path::Path::new("fuzz.parquet"), Default::default(), None) {
            common::exercise(Box::new(source));
        }
    });
});
