//! Modified UTF-7 (RFC 3501 §5.1.3), the encoding IMAP4rev1 clients use
//! for mailbox names. The store keeps names in UTF-8; an IMAP4rev1 session
//! converts on the way in and out, an IMAP4rev2 session (RFC 9051 §5.1)
//! sends and receives UTF-8 as it is.
//!
//! Hand-written rather than taken from the `utf7-imap` crate: that crate
//! unwraps base64 errors (a panic on a hostile name), cannot report an
//! invalid name, and lets 0x7F through unencoded.

use std::sync::LazyLock;

use base64::alphabet::Alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// RFC 3501 §5.1.3: base64 with `,` in place of `/`, no padding.
static MODIFIED_BASE64: LazyLock<GeneralPurpose> = LazyLock::new(|| {
    let alphabet =
        Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
            .expect("64 distinct printable characters");
    GeneralPurpose::new(
        &alphabet,
        GeneralPurposeConfig::new()
            .with_encode_padding(false)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(false),
    )
});

/// Printable US-ASCII stands for itself (`&` excepted).
fn is_direct(c: char) -> bool {
    (' '..='~').contains(&c)
}

/// A UTF-8 name in modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&MODIFIED_BASE64.encode(bytes));
        out.push('-');
        run.clear();
    };
    for c in name.chars() {
        if is_direct(c) {
            flush(&mut run, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A modified UTF-7 name in UTF-8, or `None` when it is not valid,
/// canonical modified UTF-7: 8-bit or control bytes, a shift that is not
/// closed, bad base64 or UTF-16, printable ASCII encoded, or two encoded
/// runs side by side. Canonical form matters because names are compared as
/// strings: two spellings of one name must not make two folders.
pub fn decode(wire: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(wire.len());
    let mut i = 0;
    while i < wire.len() {
        let b = wire[i];
        if b != b'&' {
            if !(0x20..0x7f).contains(&b) {
                return None;
            }
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let end = i + 1 + wire[i + 1..].iter().position(|&b| b == b'-')?;
        let encoded = &wire[i + 1..end];
        if encoded.is_empty() {
            out.push('&');
        } else {
            let bytes = MODIFIED_BASE64.decode(encoded).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units = bytes.chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
            for c in char::decode_utf16(units) {
                let c = c.ok()?;
                if is_direct(c) {
                    return None;
                }
                out.push(c);
            }
        }
        i = end + 1;
    }
    // Two runs side by side (`&AOQ-&APY-`) decode fine but are not the form
    // `encode` writes.
    (encode(&out).as_bytes() == wire).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_round_trip() {
        // RFC 3501 §5.1.3 and RFC 2152 examples.
        let cases = [
            ("~peter/mail/日本語/台北", "~peter/mail/&ZeVnLIqe-/&U,BTFw-"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("Q&A", "Q&-A"),
            ("&", "&-"),
            ("Отправленные", "&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-"),
            ("INBOX", "INBOX"),
            ("", ""),
            ("😀 smile", "&2D3eAA- smile"),
            ("tab\there", "tab&AAk-here"),
            ("del\u{7f}", "del&AH8-"),
        ];
        for (utf8, wire) in cases {
            assert_eq!(encode(utf8), wire, "encode {utf8:?}");
            assert_eq!(
                decode(wire.as_bytes()).as_deref(),
                Some(utf8),
                "decode {wire}"
            );
        }
    }

    #[test]
    fn invalid_forms_are_refused() {
        for bad in [
            &b"&"[..],          // unterminated shift
            b"&AOQ",            // unterminated shift
            b"&AOQ-&APY-",      // two runs side by side
            b"&AGE-",           // "a" encoded
            b"&A-",             // truncated base64
            b"&AOQ=-",          // padding
            b"&AOR-",           // non-zero trailing bits
            b"&2D0-",           // lone high surrogate
            b"Entw\xc3\xbcrfe", // raw 8-bit
            b"a\x01b",          // control byte
            b"&AOQ/-",          // '/' is not in the modified alphabet
        ] {
            assert_eq!(decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
