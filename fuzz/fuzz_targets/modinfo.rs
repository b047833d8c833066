#![no_main]
//! A kernel module file: ELF, then its `.modinfo`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rootstock::modules::modinfo_from_elf(data, std::path::Path::new("fuzz/m.ko"));
});
