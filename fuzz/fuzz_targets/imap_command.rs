//! One complete IMAP command message through Pochta's pre-parsers
//! (`nesting`, `searchres`, `extended`) and imap-codec, as a selected
//! session runs them; and modified UTF-7 mailbox names both ways.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_imap::parsers;

fuzz_target!(|data: &[u8]| {
    let mut rewritten = None;
    let _ = parsers::command(data, &mut rewritten);
    if let Some(r) = parsers::rebalance(data) {
        // Rebalanced criteria are within the codec's depth: a second pass
        // finds nothing to do.
        assert!(r.ends_with(b"\r\n"));
        assert_eq!(parsers::rebalance(&r), None, "rebalancing is not stable");
    }
    // Mailbox names: any UTF-8 name survives modified UTF-7.
    let name = String::from_utf8_lossy(data);
    let wire = parsers::utf7_encode(&name);
    assert!(wire.is_ascii());
    assert_eq!(
        parsers::utf7_decode(wire.as_bytes()).as_deref(),
        Some(&*name)
    );
    if let Some(decoded) = parsers::utf7_decode(data) {
        let again = parsers::utf7_encode(&decoded);
        assert_eq!(parsers::utf7_decode(again.as_bytes()), Some(decoded));
    }
});
