//! A stored message turned into a POP3 multi-line response, chunk by chunk,
//! without holding the message: dot-stuffing, CRLF line ends, the final
//! `.` line, and for TOP the cut after the header and n body lines
//! (RFC 1939 §3 and §7). No I/O: bytes in, bytes out.

/// The state of one RETR or TOP transfer.
#[derive(Debug)]
pub struct Transfer {
    /// Body lines still to send; `None` sends everything (RETR).
    body_lines_left: Option<u32>,
    in_header: bool,
    at_line_start: bool,
    /// Bytes of the current line so far, terminator excluded.
    line_len: usize,
    /// The last byte seen was a CR (it may pair with an LF in the next chunk).
    after_cr: bool,
    done: bool,
}

/// Whether a transfer wants more input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Feed the next chunk.
    More,
    /// Enough has been sent (TOP); call [`Transfer::finish`].
    Done,
}

impl Transfer {
    /// A whole message (RETR).
    pub fn whole() -> Transfer {
        Transfer::new(None)
    }

    /// The header, the blank line and `lines` lines of the body (TOP).
    pub fn top(lines: u32) -> Transfer {
        Transfer::new(Some(lines))
    }

    fn new(body_lines_left: Option<u32>) -> Transfer {
        Transfer {
            body_lines_left,
            in_header: true,
            at_line_start: true,
            line_len: 0,
            after_cr: false,
            done: false,
        }
    }

    /// Appends the wire form of `chunk` to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<u8>) -> Progress {
        while !chunk.is_empty() && !self.done {
            if self.at_line_start {
                if !self.in_header && self.body_lines_left == Some(0) {
                    self.done = true;
                    break;
                }
                // RFC 1939 §3: a line starting with "." gets one more.
                if chunk[0] == b'.' {
                    out.push(b'.');
                }
                self.at_line_start = false;
                self.line_len = 0;
            }
            let Some(lf) = chunk.iter().position(|&b| b == b'\n') else {
                out.extend_from_slice(chunk);
                self.line_len += chunk.len();
                self.after_cr = chunk.last() == Some(&b'\r');
                break;
            };
            let content = &chunk[..lf];
            out.extend_from_slice(content);
            let has_cr = match content.last() {
                Some(&b) => b == b'\r',
                None => self.after_cr,
            };
            if !has_cr {
                // A bare LF: send the CRLF a POP3 client expects, so that
                // clients splitting on LF and on CRLF see the same lines.
                out.push(b'\r');
            }
            out.push(b'\n');
            let line_len = self.line_len + content.len() - usize::from(has_cr);
            self.end_line(line_len == 0);
            chunk = &chunk[lf + 1..];
        }
        if self.done {
            Progress::Done
        } else {
            Progress::More
        }
    }

    fn end_line(&mut self, blank: bool) {
        if self.in_header {
            // RFC 5322 §2.1: the first empty line ends the header.
            self.in_header = !blank;
        } else if let Some(left) = self.body_lines_left.as_mut() {
            *left = left.saturating_sub(1);
        }
        self.at_line_start = true;
        self.after_cr = false;
    }

    /// Appends the end of the response: a CRLF if the message did not end
    /// with one, then the `.` line.
    pub fn finish(self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut t: Transfer, input: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            if t.feed(piece, &mut out) == Progress::Done {
                break;
            }
        }
        t.finish(&mut out);
        out
    }

    /// Every chunking gives the same bytes as one piece.
    fn check(make: impl Fn() -> Transfer, input: &[u8], want: &[u8]) {
        for chunk in 1..=input.len().max(1) {
            let got = run(make(), input, chunk);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(want),
                "chunk size {chunk}"
            );
        }
    }

    const MESSAGE: &[u8] =
        b"Subject: x\r\nFrom: a@b\r\n\r\nline 1\r\n.line 2\r\n..line 3\r\n.\r\nline 5\r\n";

    #[test]
    fn retr_stuffs_dots_and_terminates() {
        check(
            Transfer::whole,
            MESSAGE,
            b"Subject: x\r\nFrom: a@b\r\n\r\nline 1\r\n..line 2\r\n...line 3\r\n..\r\nline 5\r\n.\r\n",
        );
    }

    #[test]
    fn retr_edge_cases() {
        check(Transfer::whole, b"", b".\r\n");
        check(Transfer::whole, b".", b"..\r\n.\r\n");
        check(Transfer::whole, b"no newline", b"no newline\r\n.\r\n");
        check(Transfer::whole, b"a\r\n.", b"a\r\n..\r\n.\r\n");
        // Bare LF becomes CRLF; the dot after it is stuffed, so no client
        // can see an early end of the response ("\n.\r\n" smuggling).
        check(Transfer::whole, b"a\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n");
        // A bare CR is not a line end.
        check(Transfer::whole, b"a\r.b\r\n", b"a\r.b\r\n.\r\n");
        check(Transfer::whole, b"a\r\r\n", b"a\r\r\n.\r\n");
    }

    #[test]
    fn top_sends_header_blank_line_and_n_body_lines() {
        let header = b"Subject: x\r\nFrom: a@b\r\n\r\n".to_vec();
        check(
            || Transfer::top(0),
            MESSAGE,
            &[&header[..], b".\r\n"].concat(),
        );
        check(
            || Transfer::top(1),
            MESSAGE,
            &[&header[..], b"line 1\r\n.\r\n"].concat(),
        );
        check(
            || Transfer::top(3),
            MESSAGE,
            &[&header[..], b"line 1\r\n..line 2\r\n...line 3\r\n.\r\n"].concat(),
        );
        // More lines than the body has: the whole message.
        check(
            || Transfer::top(100),
            MESSAGE,
            &run(Transfer::whole(), MESSAGE, 7),
        );
    }

    #[test]
    fn top_of_unusual_messages() {
        // Header only, no blank line: all of it.
        check(
            || Transfer::top(0),
            b"Subject: x\r\n",
            b"Subject: x\r\n.\r\n",
        );
        // Blank line first: empty header, body counted from line 2.
        check(|| Transfer::top(1), b"\r\na\r\nb\r\n", b"\r\na\r\n.\r\n");
        // Bare-LF blank line ends the header too.
        check(|| Transfer::top(0), b"S: x\n\nbody\n", b"S: x\r\n\r\n.\r\n");
        // A body line without final newline.
        check(
            || Transfer::top(5),
            b"S: x\r\n\r\nend",
            b"S: x\r\n\r\nend\r\n.\r\n",
        );
        // CR at the end of one chunk and LF at the start of the next is
        // one CRLF, and the line is blank (covered by every chunk size).
        check(
            || Transfer::top(0),
            b"S: x\r\n\r\nbody\r\n",
            b"S: x\r\n\r\n.\r\n",
        );
    }

    #[test]
    fn top_stops_reading_early() {
        let mut t = Transfer::top(0);
        let mut out = Vec::new();
        assert_eq!(t.feed(b"S: x\r\n\r\nbody", &mut out), Progress::Done);
        assert_eq!(out, b"S: x\r\n\r\n");
    }
}
