#![no_main]
//! `/proc/self/mountinfo` as `mkinitramfs --host` reads it (`parse_mountinfo`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for m in rootstock::hostonly::parse_mountinfo(&text) {
        // Every line kept has a point and an fstype taken from the input.
        assert!(m.point.len() <= text.len() && !m.fstype.contains(' '));
    }
});
