//! Deeply nested search criteria, made shallow enough for imap-codec.
//!
//! The codec refuses search keys nested more than nine levels deep (a
//! guard for its recursive parser), but clients build long chains such as
//! `OR FROM a OR FROM b OR FROM c ...` for "any of these senders", and RFC
//! 9051 §6.4.4 sets no limit. When a SEARCH, SORT or THREAD command is
//! nested too deeply, [`rebalance`] rewrites its criteria into an equal
//! query: chains of OR become a balanced tree of OR (depth log2 n instead
//! of n), `NOT NOT x` becomes `x`, and parentheses around a single key or
//! inside another AND list are dropped. Only a query that is still too deep
//! after that gets the codec's BAD.
//!
//! Sans-I/O: command bytes in, command bytes out.

use crate::lex::{lex, Kind, Token};

/// The deepest nesting imap-codec parses: `search_key(9)`, one level per
/// key, OR, NOT and parenthesised list.
const CODEC_DEPTH: usize = 9;

/// Search keys and how many arguments follow them (RFC 9051 §6.4.4, RFC
/// 7162 §3.1.5 for MODSEQ, which has one or three).
pub fn arguments(key: &[u8]) -> usize {
    const ONE: &[&str] = &[
        "BCC",
        "BEFORE",
        "BODY",
        "CC",
        "FROM",
        "KEYWORD",
        "LARGER",
        "OLDER",
        "ON",
        "SENTBEFORE",
        "SENTON",
        "SENTSINCE",
        "SINCE",
        "SMALLER",
        "SUBJECT",
        "TEXT",
        "TO",
        "UID",
        "UNKEYWORD",
        "YOUNGER",
        "MODSEQ",
    ];
    if key.eq_ignore_ascii_case(b"HEADER") {
        2
    } else if ONE.iter().any(|k| key.eq_ignore_ascii_case(k.as_bytes())) {
        1
    } else {
        0
    }
}

/// A parsed search key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// A key with its arguments: the byte range in the command.
    Leaf(usize, usize),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// A parenthesised list: all must match.
    And(Vec<Node>),
}

impl Node {
    /// Levels of the codec's recursion this key takes.
    fn depth(&self) -> usize {
        match self {
            Node::Leaf(..) => 1,
            Node::Or(a, b) => 1 + a.depth().max(b.depth()),
            Node::Not(a) => 1 + a.depth(),
            Node::And(list) => 1 + list.iter().map(Node::depth).max().unwrap_or(0),
        }
    }

    /// An equal key, as shallow as the rules above make it.
    fn simplify(self) -> Node {
        match self {
            Node::Leaf(..) => self,
            Node::Not(inner) => match inner.simplify() {
                Node::Not(x) => *x,
                x => Node::Not(Box::new(x)),
            },
            Node::Or(a, b) => {
                let mut alternatives = Vec::new();
                collect_or(*a, &mut alternatives);
                collect_or(*b, &mut alternatives);
                balanced_or(alternatives)
            }
            Node::And(list) => {
                let mut all = Vec::new();
                for n in list {
                    match n.simplify() {
                        Node::And(inner) => all.extend(inner),
                        x => all.push(x),
                    }
                }
                if all.len() == 1 {
                    all.pop().expect("one element")
                } else {
                    Node::And(all)
                }
            }
        }
    }

    fn write(&self, message: &[u8], out: &mut Vec<u8>) {
        match self {
            Node::Leaf(start, end) => out.extend_from_slice(&message[*start..*end]),
            Node::Or(a, b) => {
                out.extend_from_slice(b"OR ");
                a.write(message, out);
                out.push(b' ');
                b.write(message, out);
            }
            Node::Not(a) => {
                out.extend_from_slice(b"NOT ");
                a.write(message, out);
            }
            Node::And(list) => {
                out.push(b'(');
                for (i, n) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    n.write(message, out);
                }
                out.push(b')');
            }
        }
    }
}

fn collect_or(node: Node, out: &mut Vec<Node>) {
    match node.simplify() {
        Node::Or(a, b) => {
            collect_or(*a, out);
            collect_or(*b, out);
        }
        x => out.push(x),
    }
}

fn balanced_or(mut alternatives: Vec<Node>) -> Node {
    if alternatives.len() == 1 {
        return alternatives.pop().expect("one alternative");
    }
    let right = alternatives.split_off(alternatives.len() / 2);
    Node::Or(
        Box::new(balanced_or(alternatives)),
        Box::new(balanced_or(right)),
    )
}

/// Parses search keys from `tokens`; `None` on anything unexpected (the
/// codec then reports the syntax error).
struct Parser<'t> {
    message: &'t [u8],
    tokens: &'t [Token],
    at: usize,
    /// How deep `key` has recursed: this parser is recursive too, so it
    /// gives up where a hostile command would exhaust the stack.
    level: usize,
}

/// The deepest query this module rewrites (an OR chain of this length).
const MAX_LEVEL: usize = 200;

impl Parser<'_> {
    fn key(&mut self) -> Option<Node> {
        if self.level >= MAX_LEVEL {
            return None;
        }
        self.level += 1;
        let node = self.key_inner();
        self.level -= 1;
        node
    }

    fn key_inner(&mut self) -> Option<Node> {
        let t = *self.tokens.get(self.at)?;
        self.at += 1;
        match t.kind {
            Kind::Open => {
                let mut list = Vec::new();
                loop {
                    if self.tokens.get(self.at)?.kind == Kind::Close {
                        self.at += 1;
                        break;
                    }
                    list.push(self.key()?);
                }
                (!list.is_empty()).then_some(Node::And(list))
            }
            Kind::Close | Kind::String => None,
            Kind::Atom if t.is(self.message, "OR") => {
                let a = self.key()?;
                let b = self.key()?;
                Some(Node::Or(Box::new(a), Box::new(b)))
            }
            Kind::Atom if t.is(self.message, "NOT") => Some(Node::Not(Box::new(self.key()?))),
            Kind::Atom => {
                let word = t.atom(self.message)?;
                let mut n = arguments(word);
                // MODSEQ "/flags/\\draft" all 620162338: entry name, type, value.
                if word.eq_ignore_ascii_case(b"MODSEQ")
                    && self.tokens.get(self.at).map(|t| t.kind) == Some(Kind::String)
                {
                    n = 3;
                }
                let mut end = t.end;
                for _ in 0..n {
                    let arg = self.tokens.get(self.at)?;
                    if !matches!(arg.kind, Kind::Atom | Kind::String) {
                        return None;
                    }
                    end = arg.end;
                    self.at += 1;
                }
                Some(Node::Leaf(t.start, end))
            }
        }
    }
}

/// The command with its search criteria rebalanced, when they are nested
/// deeper than the codec takes and rebalancing brings them within it;
/// `None` otherwise (including for every other command).
pub fn rebalance(message: &[u8]) -> Option<Vec<u8>> {
    // Most commands are not searches: look at the verb before lexing all.
    let head = lex(&message[..message.len().min(64)]);
    let verb_at = if head.get(1)?.is(message, "UID") {
        2
    } else {
        1
    };
    let verb = head.get(verb_at)?;
    if !["SEARCH", "SORT", "THREAD"]
        .iter()
        .any(|v| verb.is(message, v))
    {
        return None;
    }
    let tokens = lex(message);
    let mut at = 1;
    if tokens.get(at)?.is(message, "UID") {
        at += 1;
    }
    let verb = tokens.get(at)?;
    at += 1;
    if verb.is(message, "SEARCH") {
        if tokens.get(at)?.is(message, "RETURN") {
            at += 1;
            if tokens.get(at)?.kind != Kind::Open {
                return None;
            }
            while tokens.get(at)?.kind != Kind::Close {
                at += 1;
            }
            at += 1;
        }
        if tokens.get(at)?.is(message, "CHARSET") {
            at += 2;
        }
    } else if verb.is(message, "SORT") {
        // (sort criteria) charset
        while tokens.get(at)?.kind != Kind::Close {
            at += 1;
        }
        at += 2;
    } else if verb.is(message, "THREAD") {
        // algorithm charset
        at += 2;
    } else {
        return None;
    }
    let first = tokens.get(at)?.start;
    let mut parser = Parser {
        message,
        tokens: &tokens,
        at,
        level: 0,
    };
    let mut keys = Vec::new();
    while parser.at < tokens.len() {
        keys.push(parser.key()?);
    }
    if keys.iter().all(|k| k.depth() <= CODEC_DEPTH) {
        return None;
    }
    let keys: Vec<Node> = keys.into_iter().map(Node::simplify).collect();
    if keys.iter().any(|k| k.depth() > CODEC_DEPTH) {
        return None;
    }
    let mut out = message[..first].to_vec();
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        k.write(message, &mut out);
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rb(s: &str) -> Option<String> {
        rebalance(s.as_bytes()).map(|b| String::from_utf8(b).unwrap())
    }

    fn or_chain(n: usize) -> String {
        let mut s = String::new();
        for i in 1..=n {
            s.push_str(&format!("OR FROM n{i} "));
        }
        s.push_str("FROM last");
        s
    }

    #[test]
    fn shallow_queries_are_left_alone() {
        assert_eq!(rb("a SEARCH OR FROM x FROM y\r\n"), None);
        assert_eq!(rb(&format!("a SEARCH {}\r\n", or_chain(8))), None);
        assert_eq!(rb("a FETCH 1 (FLAGS)\r\n"), None);
    }

    #[test]
    fn or_chains_become_balanced() {
        let out = rb(&format!("a UID SEARCH CHARSET UTF-8 {}\r\n", or_chain(12))).unwrap();
        assert!(
            out.starts_with("a UID SEARCH CHARSET UTF-8 OR OR OR "),
            "{out}"
        );
        for i in 1..=12 {
            assert!(out.contains(&format!("FROM n{i} ")), "{out}");
        }
        assert!(out.ends_with("FROM last\r\n"));
        // Still 13 alternatives: 12 ORs.
        assert_eq!(out.matches("OR ").count(), 12);
        let tokens = lex(out.as_bytes());
        let mut p = Parser {
            message: out.as_bytes(),
            tokens: &tokens,
            at: 4,
            level: 0,
        };
        assert!(p.key().unwrap().depth() <= 5);
    }

    #[test]
    fn double_negation_and_groups_collapse() {
        let nots = "NOT ".repeat(10);
        assert_eq!(
            rb(&format!("a SEARCH {nots}FROM smith\r\n")).as_deref(),
            Some("a SEARCH FROM smith\r\n")
        );
        let nots = "NOT ".repeat(11);
        assert_eq!(
            rb(&format!("a SEARCH {nots}FROM smith\r\n")).as_deref(),
            Some("a SEARCH NOT FROM smith\r\n")
        );
        let deep = format!("a SEARCH {}SEEN{}\r\n", "(".repeat(12), ")".repeat(12));
        assert_eq!(rb(&deep).as_deref(), Some("a SEARCH SEEN\r\n"));
    }

    #[test]
    fn arguments_and_literals_are_kept_verbatim() {
        let m = format!(
            "a SEARCH RETURN (MIN) {}HEADER X-A \"b c\" OR BODY {{3}}\r\nxyz SUBJECT OR\r\n",
            "OR SEEN ".repeat(9)
        );
        let out = rb(&m).unwrap();
        assert!(out.starts_with("a SEARCH RETURN (MIN) "));
        assert!(out.contains("HEADER X-A \"b c\""));
        assert!(out.contains("BODY {3}\r\nxyz"));
        assert!(out.contains("SUBJECT OR"));
    }

    #[test]
    fn sort_and_thread_criteria() {
        let out = rb(&format!("a SORT (DATE) UTF-8 {}\r\n", or_chain(10))).unwrap();
        assert!(out.starts_with("a SORT (DATE) UTF-8 OR OR "));
        let out = rb(&format!(
            "a UID THREAD REFERENCES UTF-8 {}\r\n",
            or_chain(10)
        ))
        .unwrap();
        assert!(out.starts_with("a UID THREAD REFERENCES UTF-8 OR OR "));
    }

    #[test]
    fn broken_queries_are_left_to_the_codec() {
        for s in [
            "a SEARCH OR\r\n",
            "a SEARCH ((((((((((SEEN\r\n",
            "a SEARCH )\r\n",
            "a SEARCH HEADER\r\n",
            "a SEARCH RETURN (MIN\r\n",
            "a SORT (DATE\r\n",
            "a\r\n",
            "",
        ] {
            assert_eq!(rb(s), None, "{s:?}");
        }
    }

    #[test]
    fn hostile_depth_does_not_exhaust_the_stack() {
        let deep = format!(
            "a SEARCH {}SEEN{}\r\n",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        assert_eq!(rb(&deep), None);
        let nots = format!("a SEARCH {}SEEN\r\n", "NOT ".repeat(100_000));
        assert_eq!(rb(&nots), None);
        let ors = format!("a SEARCH {}\r\n", or_chain(150));
        assert!(rb(&ors).is_some());
    }
}
