//! Admin page forms and query strings (`application/x-www-form-urlencoded`)
//! and path segments: fields come out as UTF-8 strings, the first of a
//! repeated name wins, and an address survives the path encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_admin::parsers;

fuzz_target!(|data: &[u8]| {
    let fields = parsers::form(data);
    assert!(fields.len() <= data.iter().filter(|&&b| b == b'&').count() + 1);
    for value in fields.values() {
        assert!(value.is_string());
    }
    let text = String::from_utf8_lossy(data);
    let url = format!("/api/log?{text}");
    assert_eq!(parsers::query(&url), parsers::form(text.as_bytes()));
    // Path segments.
    let encoded = parsers::percent_encode(&text);
    assert!(!encoded.contains(['/', '?', '#', ' ']));
    assert_eq!(parsers::percent_decode(&encoded), text);
    let _ = parsers::percent_decode(&text);
});
