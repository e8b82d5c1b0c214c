//! Stored messages through what FETCH makes of them: ENVELOPE, BODY and
//! BODYSTRUCTURE (which must be well-formed IMAP: imap-codec must read them
//! back in a FETCH response), BINARY (transfer decoding: bounded output),
//! sections and HEADER.FIELDS.
//!
//! mail-parser 0.11.9 has a `debug_assert!(false, "Invalid part ID, ...")`
//! that crafted MIME nesting reaches; it is compiled out of release builds
//! (the parser then ends the part, which is handled), but these targets
//! build with debug assertions on. That one panic is let through; any other
//! aborts as usual.
#![no_main]

use std::panic;
use std::sync::Once;

use imap_codec::decode::Decoder;
use imap_codec::ResponseCodec;
use libfuzzer_sys::fuzz_target;
use pochta_imap::parsers;

/// Parentheses imap-codec's response parser follows: it reads body
/// structures nested seven deep (`body(8)`; RFC 9051 sets no limit, and
/// Pochta describes 32), so deeper ones are not checked.
const CODEC_DEPTH: usize = 7;

/// How deep parentheses nest outside quoted strings and literals.
fn depth(value: &[u8]) -> usize {
    let (mut depth, mut max, mut quoted, mut i) = (0usize, 0, false, 0);
    while i < value.len() {
        match value[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'{' if !quoted => {
                // `{n}CRLF` then n bytes.
                let rest = &value[i + 1..];
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let n: usize = std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                i += 1 + digits + 3 + n;
                continue;
            }
            b'(' if !quoted => {
                depth += 1;
                max = max.max(depth);
            }
            b')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// The response a client would get; it must parse.
fn assert_wire(item: &str, value: &[u8]) {
    if depth(value) > CODEC_DEPTH {
        return;
    }
    let mut response = format!("* 1 FETCH ({item} ").into_bytes();
    response.extend_from_slice(value);
    response.extend_from_slice(b")\r\n");
    if let Err(e) = ResponseCodec::default().decode(&response) {
        panic!(
            "{item} is not valid IMAP: {e:?}\n{}",
            String::from_utf8_lossy(&response)
        );
    }
}

/// mail-parser's own debug assertion, not a fault of Pochta's.
const KNOWN: &str = "Invalid part ID, could not find multipart.";

fn allow_known_debug_assertion() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // libfuzzer-sys's hook prints and aborts; keep it for the rest.
        let abort = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let known = info.payload().downcast_ref::<&str>() == Some(&KNOWN)
                && info
                    .location()
                    .is_some_and(|l| l.file().contains("mail-parser"));
            if !known {
                abort(info);
            }
        }));
    });
}

fuzz_target!(|raw: &[u8]| {
    allow_known_debug_assertion();
    // Only the known panic unwinds this far (the hook aborts on others).
    let _ = panic::catch_unwind(|| check(raw));
});

fn check(raw: &[u8]) {
    let (envelope, body_structure) = parsers::fetch_structure(raw, true);
    let (envelope_again, body) = parsers::fetch_structure(raw, false);
    assert_eq!(envelope, envelope_again);
    assert_wire("ENVELOPE", &envelope);
    assert_wire("BODYSTRUCTURE", &body_structure);
    assert_wire("BODY", &body);
    let parts = parsers::part_count(raw).min(8) as u32;
    let mut paths: Vec<Vec<u32>> = vec![vec![]];
    for n in 1..=parts {
        paths.push(vec![n]);
        paths.push(vec![1, n]);
    }
    for path in &paths {
        if let Ok(decoded) = parsers::binary(raw, path) {
            // No transfer decoding makes a body bigger.
            assert!(decoded.len() <= raw.len());
        }
        if let Some((header, text)) = parsers::section(raw, path) {
            assert!(header.len() <= raw.len() && text.len() <= raw.len());
            let names = ["subject".to_string(), "From".to_string()];
            for not in [false, true] {
                let fields = parsers::header_fields(&header, &names, not);
                assert!(fields.len() <= header.len() + 2);
                assert!(fields.ends_with(b"\r\n"));
            }
        }
    }
}
