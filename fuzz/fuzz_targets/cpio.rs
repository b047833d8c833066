#![no_main]
//! The cpio writer on entries made from the input: an error or an archive, never a panic.
use libfuzzer_sys::fuzz_target;
use rootstock_core::cpio::{Entry, write_newc};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let entries: Vec<Entry> = text
        .split('\n')
        .take(64)
        .enumerate()
        .map(|(i, l)| match i % 4 {
            0 => Entry::dir(l, 0o755),
            1 => Entry::file(l, 0o644, l.as_bytes().to_vec()),
            2 => Entry::symlink(l, "target"),
            _ => Entry::char_dev(l, 0o600, 5, 1),
        })
        .collect();
    let _ = write_newc(&entries);
});
