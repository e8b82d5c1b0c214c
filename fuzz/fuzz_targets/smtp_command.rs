//! SMTP command lines as the session reads them: split at LF, bounded like
//! `max_line_bytes`, the session's own checks (CRLF, NUL, UTF-8), then
//! smtp-proto's parser. Anything a command carries that the server echoes
//! in a reply must stay on one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp::reply::Reply;
use smtp_proto::Request;

/// The default `max_line_bytes`.
const MAX_LINE: usize = 4096;

fn one_line_reply(text: &str) {
    let wire = Reply::new(550, "5.1.1", format!("<{text}>")).to_wire();
    assert!(wire.ends_with("\r\n"));
    let body = &wire[..wire.len() - 2];
    assert!(
        !body.contains(['\r', '\n']),
        "a reply echoing {text:?} spans lines: {wire:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    for line in data.split_inclusive(|&b| b == b'\n') {
        if line.len() > MAX_LINE || !line.ends_with(b"\r\n") || line.contains(&0) {
            continue;
        }
        if std::str::from_utf8(line).is_err() {
            continue;
        }
        let parsed = Request::parse(&mut line.iter()).map(|r| r.into_owned());
        // The parser is a function of the line.
        let again = Request::parse(&mut line.iter()).map(|r| r.into_owned());
        assert_eq!(format!("{parsed:?}"), format!("{again:?}"));
        match parsed {
            Ok(Request::Mail { from }) => one_line_reply(&from.address),
            Ok(Request::Rcpt { to }) => one_line_reply(&to.address),
            Ok(Request::Ehlo { host } | Request::Helo { host }) => one_line_reply(&host),
            Ok(Request::Bdat { chunk_size, .. }) => {
                // The size is taken from the line's digits.
                assert!(chunk_size == 0 || line.iter().any(u8::is_ascii_digit));
            }
            _ => {}
        }
    }
});
