#![no_main]
mod common;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::own_panics_only(|| {
        let gzip = data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b;
        let reader: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
        if let Ok(source) = billxfer::ingest::csv::CsvSource::from_reader(reader, std::path::Path::new("fuzz.csv"), gzip) {
            common::exercise(Box::new(source));
        }
    });
});
