//! Reading the mail log back: a line parsed into its time, event and
//! fields ([`Entry`]), and the file read from its end in fixed-size chunks,
//! newest line first ([`Backwards`]), so that a search, a trace or today's
//! counters never hold more than a chunk of a large log in memory, and a
//! search for recent events stops early.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read from the file at once.
const CHUNK: usize = 64 * 1024;

/// Longest line kept; a longer one (never written by [`crate::MailLog`]) is
/// skipped.
const MAX_LINE: usize = 64 * 1024;

/// One parsed line of the mail log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// UTC, `2026-11-27T23:50:41Z`.
    pub time: String,
    /// `accepted`, `rejected`, `delivered`, … (`ALERT send_limit_reached`
    /// for alerts).
    pub event: String,
    /// The `key=value` pairs in the order written, values unquoted;
    /// `session` comes first.
    pub fields: Vec<(String, String)>,
}

impl Entry {
    /// Parses a line as [`crate::MailLog`] writes it; `None` when it is not
    /// one (a line cut by a crash, a line from something else).
    pub fn parse(line: &str) -> Option<Entry> {
        let line = line.trim_end_matches(['\r', '\n']);
        let (time, rest) = line.split_once(' ')?;
        if !is_timestamp(time) {
            return None;
        }
        let mut event = String::new();
        let mut fields = Vec::new();
        let mut rest = rest.trim_start();
        while !rest.is_empty() {
            let word_end = rest.find(' ').unwrap_or(rest.len());
            match rest[..word_end].split_once('=') {
                None if fields.is_empty() => {
                    if !event.is_empty() {
                        event.push(' ');
                    }
                    event.push_str(&rest[..word_end]);
                    rest = rest[word_end..].trim_start();
                }
                None => return None,
                Some((key, _)) => {
                    let after = &rest[key.len() + 1..];
                    let (value, left) = value(after)?;
                    fields.push((key.to_owned(), value));
                    rest = left.trim_start();
                }
            }
        }
        if event.is_empty() {
            return None;
        }
        Some(Entry {
            time: time.to_owned(),
            event,
            fields,
        })
    }

    /// The date and event of a line without parsing its fields (counting
    /// a day's events reads every line of it).
    pub fn date_and_event(line: &str) -> Option<(&str, &str)> {
        let (time, rest) = line.split_once(' ')?;
        if !is_timestamp(time) {
            return None;
        }
        let end = rest.find('=').and_then(|eq| rest[..eq].rfind(' '))?;
        Some((&time[..10], rest[..end].trim()))
    }

    /// The value of a plain (unquoted) field found by a text search, without
    /// parsing the line: a cheap first test before [`Entry::parse`].
    pub fn quick_field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
        let at = line.find(&format!(" {name}="))? + name.len() + 2;
        let rest = &line[at..];
        Some(&rest[..rest.find(' ').unwrap_or(rest.len())])
    }

    /// The value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `YYYY-MM-DD` part of the time.
    pub fn date(&self) -> &str {
        self.time.get(..10).unwrap_or("")
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// A value at the start of `s`: quoted (with `\\` and `\"` escapes, as
/// `quote` writes them) or up to the next space. Returns it and the rest.
fn value(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find(' ').unwrap_or(s.len());
        return Some((s[..end].to_owned(), &s[end..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &quoted[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// The lines of a log file from the last to the first, reading at most a
/// given number of bytes.
pub struct Backwards {
    file: File,
    /// Where the part not yet read ends.
    pos: u64,
    /// Bytes read so far.
    read: u64,
    budget: u64,
    /// The start of a line whose beginning is in the part not yet read.
    carry: Vec<u8>,
    /// Whole lines of the last chunk, in file order; taken from the end.
    lines: Vec<String>,
    /// A line was longer than [`MAX_LINE`]; its bytes are being dropped.
    skipping: bool,
}

impl Backwards {
    /// Opens `path` to read at most `budget` bytes from its end. A file
    /// that is not there yet reads as empty.
    pub fn open(path: &Path, budget: u64) -> std::io::Result<Option<Backwards>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let pos = file.metadata()?.len();
        Ok(Some(Backwards {
            file,
            pos,
            read: 0,
            budget,
            carry: Vec::new(),
            lines: Vec::new(),
            skipping: false,
        }))
    }

    /// Whether the reading stopped at the budget before the file's start.
    pub fn stopped_early(&self) -> bool {
        self.pos > 0 && self.read >= self.budget
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads the chunk before `pos`; false at the start of the file, at
    /// the budget, or on a read error (logged).
    fn fill(&mut self) -> bool {
        if self.pos == 0 || self.read >= self.budget {
            return false;
        }
        let n = (CHUNK as u64).min(self.pos).min(self.budget - self.read);
        let start = self.pos - n;
        let mut chunk = vec![0u8; n as usize];
        let got = self
            .file
            .seek(SeekFrom::Start(start))
            .and_then(|_| self.file.read_exact(&mut chunk));
        if let Err(e) = got {
            tracing::warn!(error = %e, "cannot read the mail log");
            self.pos = 0;
            return false;
        }
        self.pos = start;
        self.read += n;
        chunk.extend_from_slice(&self.carry);
        // The bytes before the first newline may continue in the part not
        // yet read: carry them, unless this is the file's start.
        let first_newline = chunk.iter().position(|&b| b == b'\n');
        let whole_from = match first_newline {
            Some(i) if self.pos > 0 => i + 1,
            Some(_) | None if self.pos == 0 => 0,
            _ => chunk.len(),
        };
        let head = chunk[..whole_from].to_vec();
        let skip_tail = std::mem::replace(&mut self.skipping, false);
        self.carry = head;
        if self.carry.len() > MAX_LINE || (skip_tail && whole_from == chunk.len()) {
            self.carry.clear();
            self.skipping = true;
        }
        let body = &chunk[whole_from..];
        let mut lines: Vec<String> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        if skip_tail && !body.ends_with(b"\n") {
            // The end of the over-long line dropped before.
            lines.pop();
        }
        self.lines = lines;
        true
    }
}

impl Iterator for Backwards {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        loop {
            if let Some(line) = self.lines.pop() {
                return Some(line);
            }
            if !self.fill() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_written_lines() {
        let e = Entry::parse(
            "2026-11-27T23:50:41Z rejected session=6b.2 peer=127.0.0.1:5 stage=rcpt \
             subject=<x@y> reply=\"550 5.1.1 No \\\"such\\\" user\"",
        )
        .unwrap();
        assert_eq!(e.event, "rejected");
        assert_eq!(e.date(), "2026-11-27");
        assert_eq!(e.field("session"), Some("6b.2"));
        assert_eq!(e.field("reply"), Some("550 5.1.1 No \"such\" user"));
        assert_eq!(e.field("subject"), Some("<x@y>"));
        let alert = Entry::parse(
            "2026-11-27T23:50:41Z ALERT send_limit_reached session=a peer=1.2.3.4:5 account=a@b limit=3/24h",
        )
        .unwrap();
        assert_eq!(alert.event, "ALERT send_limit_reached");
        assert_eq!(alert.field("limit"), Some("3/24h"));
        let line =
            "2026-11-27T23:50:41Z ALERT send_limit_reached session=a peer=1.2.3.4:5 queue_id=7";
        assert_eq!(
            Entry::date_and_event(line),
            Some(("2026-11-27", "ALERT send_limit_reached"))
        );
        assert_eq!(Entry::quick_field(line, "queue_id"), Some("7"));
        assert_eq!(Entry::quick_field(line, "session"), Some("a"));
        assert_eq!(Entry::quick_field(line, "id"), None);
        assert_eq!(Entry::date_and_event("garbage line=x"), None);
        let empty = Entry::parse("2026-11-27T23:50:41Z x session=s a=\"\" b=c").unwrap();
        assert_eq!(empty.field("a"), Some(""));
        assert_eq!(empty.field("b"), Some("c"));
        for bad in [
            "",
            "garbage",
            "2026-11-27 accepted session=x",
            "2026-11-27T23:50:41Z session=x",
            "2026-11-27T23:50:41Z a session=x loose b=c",
            "2026-11-27T23:50:41Z a session=\"unterminated",
        ] {
            assert_eq!(Entry::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_backwards_across_chunks_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        let mut text = String::new();
        for n in 0..20_000 {
            text.push_str(&format!("line {n} {}\n", "x".repeat(n % 50)));
        }
        std::fs::write(&path, &text).unwrap();
        let all: Vec<String> = Backwards::open(&path, u64::MAX).unwrap().unwrap().collect();
        let mut expected: Vec<&str> = text.lines().collect();
        expected.reverse();
        assert_eq!(all, expected);
        let mut some = Backwards::open(&path, 100_000).unwrap().unwrap();
        let n = some.by_ref().count();
        assert!(some.stopped_early());
        assert!(n > 1000 && n < 20_000, "{n}");
        assert!(Backwards::open(&dir.path().join("none"), 10)
            .unwrap()
            .is_none());
    }

    #[test]
    fn over_long_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mail.log");
        let long = "y".repeat(3 * CHUNK);
        std::fs::write(&path, format!("first\n{long}\nlast\n")).unwrap();
        let all: Vec<String> = Backwards::open(&path, u64::MAX).unwrap().unwrap().collect();
        assert_eq!(all, vec!["last", "first"]);
    }
}
