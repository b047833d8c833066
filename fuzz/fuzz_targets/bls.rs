#![no_main]
//! A BLS entry, then its `options` as a command line.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let e = rootstock_core::layout::parse_bls(&text);
    if let Some(o) = e.options {
        if let Ok(a) = rootstock_core::cmdline::KernelArgs::parse(&o) {
            if let Some(arg) = a.ostree {
                let _ = rootstock_core::layout::parse_ostree_arg(&arg);
            }
        }
    }
    if let Some(v) = e.version {
        let _ = rootstock_core::layout::compare_versions(&v, "1");
    }
});
