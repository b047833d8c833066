#![no_main]
//! rootstock.conf, ostree's prepare-root.conf, and the composefs key file.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = std::path::Path::new("/fuzz.conf");
    let _ = rootstock_core::config::Config::parse(path, &text);
    let mut c = rootstock_core::config::Config::default();
    let _ = c.apply_ostree(path, &text);
    let _ = rootstock_core::composefs::parse_keys(&text);
});
