#![no_main]
//! The module index PID 1 reads from the initramfs.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = rootstock_core::modules::Index::parse(&text);
});
