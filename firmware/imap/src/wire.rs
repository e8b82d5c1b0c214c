//! Writing IMAP data on the wire (RFC 9051 §4): atoms, quoted strings,
//! literals and NIL, chosen so that any byte string is sent correctly.

use std::fmt::Write;

/// Appends `s` as a quoted string when that is safe, else as a literal.
/// A string cannot carry NUL (RFC 9051 §4.3: CHAR8 excludes it; only a
/// literal8, which ENVELOPE and BODYSTRUCTURE may not hold, can): NULs,
/// which only a broken header field brings, are dropped.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    if s.contains(&0) {
        let without: Vec<u8> = s.iter().copied().filter(|&b| b != 0).collect();
        return string(out, &without);
    }
    let quotable = s.len() < 1024
        && s.iter()
            .all(|&b| b != b'\r' && b != b'\n' && b != 0 && b < 0x80);
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

/// Appends a literal `{n}\r\n` followed by the bytes; a literal8
/// `~{n}` when they hold NUL, which a plain literal may not carry (RFC 3501
/// §4.3, RFC 3516 §4.4: only a message APPENDed with a literal8 can).
pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    if s.contains(&0) {
        out.push(b'~');
    }
    let _ = write!(Text(out), "{{{}}}\r\n", s.len());
    out.extend_from_slice(s);
}

/// Appends a string or NIL.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// Appends a mailbox name: an atom when it is one, else a string.
pub fn astring(out: &mut Vec<u8>, s: &[u8]) {
    let atom = !s.is_empty()
        && s.iter().all(|&b| {
            b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
        });
    if atom {
        out.extend_from_slice(s);
    } else {
        string(out, s);
    }
}

/// Appends a mailbox name kept in UTF-8: in modified UTF-7 for an
/// IMAP4rev1 session, as UTF-8 (quoted where it can be) for IMAP4rev2
/// (RFC 9051 §5.1).
pub fn mailbox(out: &mut Vec<u8>, name: &str, utf8: bool) {
    if !utf8 {
        astring(out, crate::utf7::encode(name).as_bytes());
    } else if name.is_ascii() {
        astring(out, name.as_bytes());
    } else if name.len() < 1024 && !name.contains(['\r', '\n', '\0']) {
        // RFC 9051 §9: quoted strings may carry UTF-8.
        out.push(b'"');
        for &b in name.as_bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, name.as_bytes());
    }
}

/// `fmt::Write` over a byte buffer.
pub struct Text<'a>(pub &'a mut Vec<u8>);

impl Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: fn(&mut Vec<u8>, &[u8]), s: &[u8]) -> String {
        let mut out = Vec::new();
        f(&mut out, s);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn strings() {
        assert_eq!(enc(string, b"hello"), "\"hello\"");
        assert_eq!(enc(string, b"say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
        assert_eq!(enc(string, b"two\r\nlines"), "{10}\r\ntwo\r\nlines");
        assert_eq!(enc(string, "Grüße".as_bytes()), "{7}\r\nGrüße");
        assert_eq!(enc(astring, b"INBOX"), "INBOX");
        assert_eq!(enc(astring, b"My Folder"), "\"My Folder\"");
        assert_eq!(enc(astring, b"a*b"), "\"a*b\"");
        assert_eq!(enc(astring, b""), "\"\"");
        // Found by fuzz/imap_mime: a NUL in a header field made ENVELOPE
        // carry a literal8, which no client parses there.
        assert_eq!(enc(string, b"a\0b"), "\"ab\"");
        assert_eq!(enc(string, b"two\r\n\0lines"), "{10}\r\ntwo\r\nlines");
    }
}
