#![no_main]
//! rootstock.conf.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = rootstock_core::config::Config::parse(std::path::Path::new("/fuzz.conf"), &text);
});
