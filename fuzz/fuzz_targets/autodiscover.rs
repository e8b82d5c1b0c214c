//! Outlook autodiscover requests (XML POSTed to the admin port from any
//! source): the address read out is trimmed and has an `@`, and the parser
//! never panics on hostile XML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_admin::parsers;

fuzz_target!(|data: &[u8]| {
    if let Ok((email, schema)) = parsers::autodiscover(data) {
        assert!(email.contains('@'));
        assert_eq!(email.trim(), email);
        if let Some(s) = schema {
            assert_eq!(s.trim(), s);
        }
        // Text was read from the document, so the document is UTF-8 and
        // has a root element.
        let text = std::str::from_utf8(data).expect("parsed from UTF-8");
        assert!(text.contains("Autodiscover"));
    }
});
