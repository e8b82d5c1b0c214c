//! Parsing of the command forms imap-codec 2.0.0-alpha does not know yet:
//! `SEARCH RETURN (...)` (ESEARCH, RFC 4731; SAVE, RFC 5182) and extended LIST (RFC 5258
//! selection and return options, several patterns; LIST-STATUS RFC 5819).
//!
//! Sans-I/O: takes the complete message bytes, returns what it found or
//! `None` to let the codec handle the command as usual.

/// ESEARCH result options (RFC 4731 §3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchReturn {
    pub min: bool,
    pub max: bool,
    pub all: bool,
    pub count: bool,
    /// Keep the result for `$` (RFC 5182 §2).
    pub save: bool,
}

/// An extended LIST command (RFC 5258 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedList {
    pub tag: String,
    pub subscribed: bool,
    pub special_use_only: bool,
    pub recursive_match: bool,
    pub reference: Vec<u8>,
    pub patterns: Vec<Vec<u8>>,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    /// LIST-STATUS items, upper case (RFC 5819).
    pub return_status: Option<Vec<String>>,
}

/// What the pre-parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum Extended {
    /// `SEARCH RETURN (...)`: the options, and the command with the RETURN
    /// clause removed, for the codec.
    Search(SearchReturn, Vec<u8>),
    /// A LIST the codec cannot parse.
    List(ExtendedList),
    /// STATUS asking for APPENDLIMIT (RFC 7889 §3.2): the command without
    /// that item, for the codec, and whether it was the only item (the
    /// rewritten command then asks for MESSAGES, which is not reported).
    StatusAppendLimit { rest: Vec<u8>, only: bool },
    /// A recognised form with bad syntax: answer BAD with this text.
    Bad(String, &'static str),
}

/// Looks at a complete command message.
pub fn recognise(message: &[u8]) -> Option<Extended> {
    let mut t = Tokens::new(message);
    let tag = t.atom()?;
    let tag_text = String::from_utf8_lossy(&tag).into_owned();
    t.space()?;
    let mut verb = t.atom()?;
    let mut uid = false;
    if verb.eq_ignore_ascii_case(b"UID") {
        uid = true;
        t.space()?;
        verb = t.atom()?;
    }
    if verb.eq_ignore_ascii_case(b"SEARCH") {
        let at = t.pos;
        t.space()?;
        let word = t.atom()?;
        if !word.eq_ignore_ascii_case(b"RETURN") {
            return None;
        }
        return Some(search_return(&mut t, message, at, &tag_text));
    }
    if verb.eq_ignore_ascii_case(b"LIST") && !uid {
        return list(&mut t, tag_text);
    }
    if verb.eq_ignore_ascii_case(b"STATUS") && !uid {
        return status_appendlimit(&mut t, message);
    }
    None
}

fn status_appendlimit(t: &mut Tokens<'_>, message: &[u8]) -> Option<Extended> {
    t.space()?;
    t.astring()?;
    t.space()?;
    let open = t.pos;
    let items = t.list_of_atoms()?;
    let close = t.pos;
    if !items.iter().any(|i| i.eq_ignore_ascii_case(b"APPENDLIMIT")) {
        return None;
    }
    let kept: Vec<&[u8]> = items
        .iter()
        .filter(|i| !i.eq_ignore_ascii_case(b"APPENDLIMIT"))
        .map(Vec::as_slice)
        .collect();
    let only = kept.is_empty();
    let mut rest = message[..open].to_vec();
    rest.push(b'(');
    rest.extend_from_slice(&if only {
        b"MESSAGES".to_vec()
    } else {
        kept.join(&b' ')
    });
    rest.push(b')');
    rest.extend_from_slice(&message[close..]);
    Some(Extended::StatusAppendLimit { rest, only })
}

fn search_return(t: &mut Tokens<'_>, message: &[u8], start: usize, tag: &str) -> Extended {
    let bad = |why| Extended::Bad(tag.to_string(), why);
    if t.space().is_none() {
        return bad("RETURN needs a list of options");
    }
    let Some(options) = t.list_of_atoms() else {
        return bad("RETURN needs a list of options");
    };
    let mut ret = SearchReturn::default();
    for o in &options {
        match o.to_ascii_uppercase().as_slice() {
            b"MIN" => ret.min = true,
            b"MAX" => ret.max = true,
            b"ALL" => ret.all = true,
            b"COUNT" => ret.count = true,
            b"SAVE" => ret.save = true,
            _ => return bad("Unknown SEARCH RETURN option (MIN, MAX, ALL, COUNT, SAVE)"),
        }
    }
    if options.is_empty() {
        // RFC 4731 §3.1: RETURN () means RETURN (ALL).
        ret.all = true;
    }
    let mut rest = message[..start].to_vec();
    rest.extend_from_slice(&message[t.pos..]);
    Extended::Search(ret, rest)
}

fn list(t: &mut Tokens<'_>, tag: String) -> Option<Extended> {
    let bad = |why| Some(Extended::Bad(tag.clone(), why));
    t.space()?;
    let mut l = ExtendedList {
        tag: tag.clone(),
        ..ExtendedList::default()
    };
    let mut extended = false;
    if t.peek() == Some(b'(') {
        extended = true;
        let Some(opts) = t.list_of_atoms() else {
            return bad("Bad LIST selection options");
        };
        for o in opts {
            match o.to_ascii_uppercase().as_slice() {
                b"SUBSCRIBED" => l.subscribed = true,
                b"SPECIAL-USE" => l.special_use_only = true,
                b"RECURSIVEMATCH" => l.recursive_match = true,
                b"REMOTE" => {}
                _ => return bad("Unknown LIST selection option"),
            }
        }
        if l.recursive_match && !l.subscribed {
            // RFC 5258 §3.1: RECURSIVEMATCH needs another selection option.
            return bad("RECURSIVEMATCH needs SUBSCRIBED");
        }
        t.space()?;
    }
    let Some(reference) = t.astring() else {
        return if extended {
            bad("Bad LIST reference")
        } else {
            None
        };
    };
    l.reference = reference;
    t.space()?;
    if t.peek() == Some(b'(') {
        extended = true;
        let Some(patterns) = t.list_of_strings() else {
            return bad("Bad LIST pattern list");
        };
        l.patterns = patterns;
    } else {
        let Some(p) = t.list_mailbox() else {
            return if extended {
                bad("Bad LIST pattern")
            } else {
                None
            };
        };
        l.patterns = vec![p];
    }
    if t.space().is_some() {
        let Some(word) = t.atom() else {
            return bad("Expected RETURN");
        };
        if !word.eq_ignore_ascii_case(b"RETURN") || t.space().is_none() {
            return bad("Expected RETURN");
        }
        extended = true;
        if !return_options(t, &mut l) {
            return bad("Bad LIST return options");
        }
    }
    if !t.at_end() {
        return if extended {
            bad("Junk after LIST")
        } else {
            None
        };
    }
    extended.then_some(Extended::List(l))
}

fn return_options(t: &mut Tokens<'_>, l: &mut ExtendedList) -> bool {
    if t.byte() != Some(b'(') {
        return false;
    }
    loop {
        match t.peek() {
            Some(b')') => {
                t.pos += 1;
                return true;
            }
            Some(b' ') => t.pos += 1,
            _ => {
                let Some(word) = t.atom() else { return false };
                match word.to_ascii_uppercase().as_slice() {
                    b"SUBSCRIBED" => l.return_subscribed = true,
                    b"CHILDREN" => l.return_children = true,
                    b"SPECIAL-USE" => l.return_special_use = true,
                    b"STATUS" => {
                        if t.space().is_none() {
                            return false;
                        }
                        let Some(items) = t.list_of_atoms() else {
                            return false;
                        };
                        let items: Vec<String> = items
                            .iter()
                            .map(|i| String::from_utf8_lossy(i).to_ascii_uppercase())
                            .collect();
                        let known = [
                            "MESSAGES",
                            "UIDNEXT",
                            "UIDVALIDITY",
                            "UNSEEN",
                            "RECENT",
                            "DELETED",
                            "SIZE",
                            "APPENDLIMIT",
                            "HIGHESTMODSEQ",
                        ];
                        if items.is_empty() || !items.iter().all(|i| known.contains(&i.as_str())) {
                            return false;
                        }
                        l.return_status = Some(items);
                    }
                    _ => return false,
                }
            }
        }
    }
}

/// A cursor over command bytes.
struct Tokens<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(b: &'a [u8]) -> Self {
        Tokens { b, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn byte(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn at_end(&self) -> bool {
        matches!(&self.b[self.pos..], b"\r\n" | b"\n")
    }

    fn space(&mut self) -> Option<()> {
        (self.byte()? == b' ').then_some(())
    }

    /// An atom: ATOM-CHARs plus `\` (flags) and `]`.
    fn atom(&mut self) -> Option<Vec<u8>> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c <= b' ' || c >= 0x7f || matches!(c, b'(' | b')' | b'{' | b'"' | b'%' | b'*') {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| self.b[start..self.pos].to_vec())
    }

    /// A LIST pattern: atom characters plus the wildcards, or a string.
    fn list_mailbox(&mut self) -> Option<Vec<u8>> {
        if matches!(self.peek(), Some(b'"') | Some(b'{')) {
            return self.string();
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c <= b' ' || c >= 0x7f || matches!(c, b'(' | b')' | b'{' | b'"') {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| self.b[start..self.pos].to_vec())
    }

    fn astring(&mut self) -> Option<Vec<u8>> {
        match self.peek()? {
            b'"' | b'{' => self.string(),
            _ => self.atom(),
        }
    }

    /// A quoted string or a literal `{n}\r\n...` / `{n+}\r\n...`.
    fn string(&mut self) -> Option<Vec<u8>> {
        match self.byte()? {
            b'"' => {
                let mut out = Vec::new();
                loop {
                    match self.byte()? {
                        b'"' => return Some(out),
                        b'\\' => out.push(self.byte()?),
                        b'\r' | b'\n' => return None,
                        c => out.push(c),
                    }
                }
            }
            b'{' => {
                let start = self.pos;
                while self.peek()?.is_ascii_digit() {
                    self.pos += 1;
                }
                let n: usize = std::str::from_utf8(&self.b[start..self.pos])
                    .ok()?
                    .parse()
                    .ok()?;
                if self.peek() == Some(b'+') {
                    self.pos += 1;
                }
                if self.byte()? != b'}' || self.byte()? != b'\r' || self.byte()? != b'\n' {
                    return None;
                }
                let data = self.b.get(self.pos..self.pos.checked_add(n)?)?.to_vec();
                self.pos += n;
                Some(data)
            }
            _ => None,
        }
    }

    fn list_of_atoms(&mut self) -> Option<Vec<Vec<u8>>> {
        self.list(|t| t.atom())
    }

    fn list_of_strings(&mut self) -> Option<Vec<Vec<u8>>> {
        self.list(|t| t.list_mailbox())
    }

    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
        if self.byte()? != b'(' {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b')' => {
                    self.pos += 1;
                    return Some(out);
                }
                b' ' if !out.is_empty() => self.pos += 1,
                _ => out.push(item(self)?),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_return_is_split_off() {
        let r = recognise(b"a1 UID SEARCH RETURN (MIN COUNT) UNSEEN\r\n");
        let Some(Extended::Search(opts, rest)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            opts,
            SearchReturn {
                min: true,
                count: true,
                ..Default::default()
            }
        );
        assert_eq!(rest, b"a1 UID SEARCH UNSEEN\r\n");
        let Some(Extended::Search(opts, _)) = recognise(b"a SEARCH RETURN () ALL\r\n") else {
            panic!()
        };
        assert!(opts.all);
        let Some(Extended::Search(opts, _)) = recognise(b"a SEARCH RETURN (SAVE) ALL\r\n") else {
            panic!()
        };
        assert!(opts.save && !opts.all);
        assert!(matches!(
            recognise(b"a SEARCH RETURN (PARTIAL 1:5) ALL\r\n"),
            Some(Extended::Bad(..))
        ));
        assert_eq!(recognise(b"a SEARCH UNSEEN\r\n"), None);
    }

    #[test]
    fn status_appendlimit_is_split_off() {
        let Some(Extended::StatusAppendLimit { rest, only }) =
            recognise(b"a STATUS INBOX (MESSAGES APPENDLIMIT UNSEEN)\r\n")
        else {
            panic!()
        };
        assert_eq!(rest, b"a STATUS INBOX (MESSAGES UNSEEN)\r\n");
        assert!(!only);
        let Some(Extended::StatusAppendLimit { rest, only }) =
            recognise(b"a STATUS \"a b\" (APPENDLIMIT)\r\n")
        else {
            panic!()
        };
        assert_eq!(rest, b"a STATUS \"a b\" (MESSAGES)\r\n");
        assert!(only);
        assert_eq!(recognise(b"a STATUS INBOX (MESSAGES)\r\n"), None);
    }

    #[test]
    fn extended_list_forms() {
        assert_eq!(recognise(b"a LIST \"\" *\r\n"), None);
        assert_eq!(recognise(b"a LIST \"\" \"%\"\r\n"), None);
        let Some(Extended::List(l)) =
            recognise(b"A01 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" \"%\" RETURN (CHILDREN)\r\n")
        else {
            panic!()
        };
        assert!(l.subscribed && l.recursive_match && l.return_children);
        assert_eq!(l.patterns, vec![b"%".to_vec()]);
        let Some(Extended::List(l)) = recognise(b"a LIST \"\" (INBOX \"Sent\" Work/%)\r\n") else {
            panic!()
        };
        assert_eq!(
            l.patterns,
            vec![b"INBOX".to_vec(), b"Sent".to_vec(), b"Work/%".to_vec()]
        );
        let Some(Extended::List(l)) =
            recognise(b"a LIST \"\" * RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n")
        else {
            panic!()
        };
        assert!(l.return_special_use);
        assert_eq!(
            l.return_status,
            Some(vec!["MESSAGES".to_string(), "UNSEEN".to_string()])
        );
        assert!(matches!(
            recognise(b"a LIST (RECURSIVEMATCH) \"\" *\r\n"),
            Some(Extended::Bad(..))
        ));
        assert!(matches!(
            recognise(b"a LIST \"\" * RETURN (BOGUS)\r\n"),
            Some(Extended::Bad(..))
        ));
        assert!(matches!(
            recognise(b"a LIST \"\" * RETURN (STATUS ())\r\n"),
            Some(Extended::Bad(..))
        ));
    }
}
