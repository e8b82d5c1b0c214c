//! Reading a server's reply (RFC 5321 §4.2), sans I/O: bytes in, a complete
//! reply and how many bytes it took, or "incomplete", or an error. Lines and
//! their number are bounded so a hostile server cannot make us buffer
//! without end.

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; be lenient).
pub const MAX_LINE: usize = 4096;
/// Most lines in one reply.
pub const MAX_LINES: usize = 64;

/// A reply: its code and the text of each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200 to 599.
    pub code: u16,
    /// Text after the code and separator, one entry per line.
    pub lines: Vec<String>,
}

/// Why bytes are not a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// A line does not start with a three-digit code from 200 to 599
    /// followed by space, hyphen or the line end.
    Malformed,
    /// The lines of one reply carry different codes (RFC 5321 §4.2.1).
    MixedCodes,
    /// A line or the reply is longer than the limits.
    TooLong,
}

/// The first complete reply in `buf` and the bytes it took, or `None`
/// when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut lines = Vec::new();
    let mut code = None;
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() > MAX_LINE {
                Err(ReplyError::TooLong)
            } else {
                Ok(None)
            };
        };
        if end > MAX_LINE {
            return Err(ReplyError::TooLong);
        }
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        pos += end + 1;
        let digits = line.get(..3).ok_or(ReplyError::Malformed)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::Malformed);
        }
        let c = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        if !(200..600).contains(&c) {
            return Err(ReplyError::Malformed);
        }
        if code.is_some_and(|first| first != c) {
            return Err(ReplyError::MixedCodes);
        }
        code = Some(c);
        let more = match line.get(3) {
            None | Some(b' ') => false,
            Some(b'-') => true,
            Some(_) => return Err(ReplyError::Malformed),
        };
        lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or(b"")).into_owned());
        if !more {
            return Ok(Some((Reply { code: c, lines }, pos)));
        }
        if lines.len() >= MAX_LINES {
            return Err(ReplyError::TooLong);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &[u8]) -> (u16, Vec<String>, usize) {
        let (r, n) = parse(input).unwrap().unwrap();
        (r.code, r.lines, n)
    }

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn replies() {
        // RFC 5321 §4.2 and §4.3.2 examples, and leniencies seen in the wild.
        assert_eq!(ok(b"250 OK\r\n"), (250, v(&["OK"]), 8));
        assert_eq!(ok(b"220\r\n"), (220, v(&[""]), 5));
        assert_eq!(ok(b"250 OK\n"), (250, v(&["OK"]), 7));
        assert_eq!(
            ok(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\nextra"),
            (250, v(&["mx.example", "PIPELINING", "SIZE 100"]), 46)
        );
        assert_eq!(
            ok(b"550 5.1.1 unknown \xff user\r\n").1,
            v(&["5.1.1 unknown \u{fffd} user"])
        );
    }

    #[test]
    fn incomplete() {
        for input in [&b""[..], b"25", b"250 OK", b"250-a\r\n", b"250-a\r\n250 b"] {
            assert_eq!(parse(input), Ok(None), "{input:?}");
        }
    }

    #[test]
    fn nasty() {
        let cases: [(&[u8], ReplyError); 9] = [
            (b"hello\r\n", ReplyError::Malformed),
            (b"25\r\n", ReplyError::Malformed),
            (b"199 x\r\n", ReplyError::Malformed),
            (b"600 x\r\n", ReplyError::Malformed),
            (b"250x\r\n", ReplyError::Malformed),
            (b"+25 x\r\n", ReplyError::Malformed),
            (b"250-a\r\n550 b\r\n", ReplyError::MixedCodes),
            (b"\r\n", ReplyError::Malformed),
            (b"\xff\xfe\xfd\r\n", ReplyError::Malformed),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Err(want), "{input:?}");
        }
        let long = vec![b'2'; MAX_LINE + 2];
        assert_eq!(parse(&long), Err(ReplyError::TooLong));
        let many = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(parse(&many), Err(ReplyError::TooLong));
    }
}
