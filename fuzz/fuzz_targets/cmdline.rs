#![no_main]
//! The kernel command line: never a panic, whatever the bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let _ = rootstock_core::cmdline::KernelArgs::parse(&line);
});
