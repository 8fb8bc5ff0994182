#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = billxfer::config::Config::from_str(text, std::path::Path::new("fuzz.toml"), std::path::PathBuf::new(), String::new());
    }
});
