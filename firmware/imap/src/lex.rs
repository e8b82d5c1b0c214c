//! A lenient tokenizer for command bytes: atoms, quoted strings, literals
//! and parentheses, each with where it lies. The pre-parsers that rewrite
//! a command before imap-codec sees it (`searchres`, `nesting`) use it;
//! the codec judges the syntax afterwards.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Atom,
    /// A quoted string or a literal (header and data).
    String,
    Open,
    Close,
}

/// A token and its byte range in the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    /// The atom's bytes, if it is one.
    pub fn atom<'m>(&self, message: &'m [u8]) -> Option<&'m [u8]> {
        (self.kind == Kind::Atom).then(|| &message[self.start..self.end])
    }

    /// Whether it is the atom `word`, in any case.
    pub fn is(&self, message: &[u8], word: &str) -> bool {
        self.atom(message)
            .is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    }
}

/// Splits a command into tokens. Never fails: a broken quoted string or
/// literal runs to the end.
pub fn lex(b: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut push = |kind, start, end: usize, b: &[u8]| {
        tokens.push(Token {
            kind,
            start,
            end: end.min(b.len()),
        })
    };
    while i < b.len() {
        let start = i;
        match b[i] {
            b' ' | b'\r' | b'\n' => i += 1,
            b'(' => {
                i += 1;
                push(Kind::Open, start, i, b);
            }
            b')' => {
                i += 1;
                push(Kind::Close, start, i, b);
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                push(Kind::String, start, i, b);
            }
            b'{' | b'~' if literal_length(&b[i..]).is_some() => {
                let (header, n) = literal_length(&b[i..]).expect("just checked");
                i = i.saturating_add(header).saturating_add(n);
                push(Kind::String, start, i, b);
            }
            _ => {
                while i < b.len() && !matches!(b[i], b' ' | b'(' | b')' | b'"' | b'\r' | b'\n') {
                    i += 1;
                }
                push(Kind::Atom, start, i, b);
            }
        }
    }
    tokens
}

/// `{n}\r\n`, `{n+}\r\n` or `~{n}\r\n` at the start of `b`: the length of
/// that header and `n`.
fn literal_length(b: &[u8]) -> Option<(usize, usize)> {
    let open = usize::from(b.first() == Some(&b'~'));
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let digits = b[open + 1..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let n: usize = std::str::from_utf8(&b[open + 1..open + 1 + digits])
        .ok()?
        .parse()
        .ok()?;
    let mut at = open + 1 + digits;
    if b.get(at) == Some(&b'+') {
        at += 1;
    }
    (b.get(at..at + 3)? == b"}\r\n").then_some((at + 3, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_their_ranges() {
        let m = b"a SEARCH (OR \"x y\" {3}\r\nabc) ~{2}\r\nzz UID\r\n";
        let kinds: Vec<(Kind, &[u8])> = lex(m)
            .iter()
            .map(|t| (t.kind, &m[t.start..t.end]))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Atom, &b"a"[..]),
                (Kind::Atom, b"SEARCH"),
                (Kind::Open, b"("),
                (Kind::Atom, b"OR"),
                (Kind::String, b"\"x y\""),
                (Kind::String, b"{3}\r\nabc"),
                (Kind::Close, b")"),
                (Kind::String, b"~{2}\r\nzz"),
                (Kind::Atom, b"UID"),
            ]
        );
    }

    #[test]
    fn broken_input_runs_to_the_end() {
        for m in [&b"a \"open"[..], b"a {99}\r\nshort", b"a \"x\\", b"{", b"~"] {
            let tokens = lex(m);
            assert!(
                tokens.iter().all(|t| t.start <= t.end && t.end <= m.len()),
                "{m:?}"
            );
        }
    }
}
