#![no_main]
//! Marker names: parse, and a name rootstock writes parses back to the same count.
use libfuzzer_sys::fuzz_target;
use rootstock_core::counting::{marker_name, parse_marker, reduce};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<String> = text.split('\n').map(str::to_string).collect();
    for n in &names {
        let m = parse_marker(n);
        if let Some(again) = marker_name(&m.base, m.count) {
            assert_eq!(parse_marker(&again).count, m.count, "{n:?} -> {again:?}");
        }
        let _ = m.count.to_string();
    }
    let known: Vec<String> = names.iter().take(3).map(|n| parse_marker(n).base).collect();
    let markers = reduce(&names, &known);
    for c in &markers.repairs {
        assert!(!c.to_string().contains('\n'), "one log line: {c}");
    }
});
