//! Sorting and threading rules of RFC 5256, free of I/O: base subjects
//! (§2.1), and the ORDEREDSUBJECT and REFERENCES threading algorithms
//! (§3). Input is one [`Facts`] per message; output is nested threads of
//! the numbers given.

use std::collections::HashMap;

/// What sorting and threading need to know of a message.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Sequence number or UID, as the response needs it.
    pub number: u32,
    /// Sent date (Date: header, else the internal date), seconds.
    pub date: i64,
    /// Base subject (see [`base_subject`]).
    pub subject: String,
    /// The subject was a reply or forward ("Re:", "Fwd:", "(fwd)").
    pub is_reply: bool,
    /// Message-ID without angle brackets, if any.
    pub message_id: Option<String>,
    /// References, oldest first; else the first In-Reply-To id.
    pub references: Vec<String>,
}

/// A thread: a message (or a missing parent, `None`) and its replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub number: Option<u32>,
    pub children: Vec<Node>,
}

/// RFC 5256 §2.1: the subject without reply/forward markers, blobs and
/// trailing "(fwd)", whitespace collapsed, upper-cased for comparison.
pub fn base_subject(subject: &str) -> String {
    let mut s: String = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        let before = s.clone();
        // (2) trailing "(fwd)" and whitespace.
        loop {
            let t = s.trim_end();
            match t.len().checked_sub(5) {
                Some(i) if t.is_char_boundary(i) && t[i..].eq_ignore_ascii_case("(fwd)") => {
                    s = t[..i].to_string()
                }
                _ => {
                    s = t.to_string();
                    break;
                }
            }
        }
        // (3)-(5) leading "re:", "fw:", "fwd:" (with optional [blob]) and
        // leading [blob]s when something remains after them.
        loop {
            let t = s.trim_start();
            if let Some(rest) = strip_refwd(t) {
                s = rest.to_string();
                continue;
            }
            if let Some(rest) = strip_blob(t) {
                if !rest.trim().is_empty() {
                    s = rest.to_string();
                    continue;
                }
            }
            s = t.to_string();
            break;
        }
        // (6) "[fwd: ... ]" wrapping.
        let upper = s.to_ascii_uppercase();
        if upper.starts_with("[FWD:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_string();
            continue;
        }
        if s == before {
            break;
        }
    }
    s.to_uppercase()
}

/// Whether a subject marks a reply or forward (RFC 5256 §2.1 steps 2-6
/// removed something other than blobs and whitespace).
pub fn is_reply(subject: &str) -> bool {
    let mut s = subject.trim();
    while let Some(rest) = strip_blob(s) {
        if rest.trim().is_empty() {
            break;
        }
        s = rest.trim_start();
    }
    strip_refwd(s).is_some()
        || s.to_ascii_lowercase().ends_with("(fwd)")
        || s.to_ascii_lowercase().starts_with("[fwd:")
}

fn strip_blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find(']')?;
    if rest[..end].contains('[') {
        return None;
    }
    Some(&rest[end + 1..])
}

fn strip_refwd(s: &str) -> Option<&str> {
    let lower = s.to_ascii_lowercase();
    let len = ["fwd", "fw", "re"]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| p.len())?;
    let mut rest = s[len..].trim_start();
    while let Some(r) = strip_blob(rest) {
        rest = r.trim_start();
    }
    rest.strip_prefix(':')
}

/// ORDEREDSUBJECT (§3.1): threads of equal base subject, by date.
pub fn ordered_subject(mut msgs: Vec<Facts>) -> Vec<Node> {
    msgs.sort_by(|a, b| {
        a.subject
            .cmp(&b.subject)
            .then(a.date.cmp(&b.date))
            .then(a.number.cmp(&b.number))
    });
    let mut threads: Vec<(i64, u32, Node)> = Vec::new();
    let mut i = 0;
    while i < msgs.len() {
        let mut j = i + 1;
        while j < msgs.len() && msgs[j].subject == msgs[i].subject {
            j += 1;
        }
        let root = Node {
            number: Some(msgs[i].number),
            children: msgs[i + 1..j]
                .iter()
                .map(|m| Node {
                    number: Some(m.number),
                    children: Vec::new(),
                })
                .collect(),
        };
        threads.push((msgs[i].date, msgs[i].number, root));
        i = j;
    }
    threads.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    threads.into_iter().map(|t| t.2).collect()
}

struct Container {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// REFERENCES (§3.2): threads from Message-ID, References and In-Reply-To,
/// then merged by base subject.
pub fn references(msgs: Vec<Facts>) -> Vec<Node> {
    let mut arena: Vec<Container> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    fn get(arena: &mut Vec<Container>, by_id: &mut HashMap<String, usize>, id: &str) -> usize {
        *by_id.entry(id.to_string()).or_insert_with(|| {
            arena.push(Container {
                msg: None,
                parent: None,
                children: Vec::new(),
            });
            arena.len() - 1
        })
    }
    let is_ancestor = |arena: &Vec<Container>, ancestor: usize, mut node: usize| -> bool {
        let mut steps = 0;
        while let Some(p) = arena[node].parent {
            if p == ancestor || steps > arena.len() {
                return true;
            }
            node = p;
            steps += 1;
        }
        node == ancestor
    };
    fn unlink(arena: &mut [Container], child: usize) {
        if let Some(p) = arena[child].parent.take() {
            arena[p].children.retain(|&c| c != child);
        }
    }
    for (i, m) in msgs.iter().enumerate() {
        // §3.2 (1)(A): a duplicate or missing Message-ID gets a unique one.
        let id = match &m.message_id {
            Some(id) if by_id.get(id).is_none_or(|&c| arena[c].msg.is_none()) => id.clone(),
            _ => format!("\0pochta-{i}"),
        };
        let me = get(&mut arena, &mut by_id, &id);
        arena[me].msg = Some(i);
        // (1)(B): link the references in order.
        let refs: Vec<usize> = m
            .references
            .iter()
            .map(|r| get(&mut arena, &mut by_id, r))
            .collect();
        for pair in refs.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if arena[child].parent.is_none()
                && parent != child
                && !is_ancestor(&arena, child, parent)
            {
                arena[child].parent = Some(parent);
                arena[parent].children.push(child);
            }
        }
        // (1)(C): the last reference is the parent, whatever was there.
        unlink(&mut arena, me);
        if let Some(&parent) = refs.last() {
            if parent != me && !is_ancestor(&arena, me, parent) {
                arena[me].parent = Some(parent);
                arena[parent].children.push(me);
            }
        }
    }
    // (2) the root set; (4) prune empty containers.
    let roots: Vec<usize> = (0..arena.len())
        .filter(|&c| arena[c].parent.is_none())
        .collect();
    let mut tree: Vec<Node> = roots
        .into_iter()
        .flat_map(|r| prune(&arena, &msgs, r, true))
        .collect();
    // (4) sort siblings by date; (5) group by base subject; (6) sort roots.
    sort_nodes(&mut tree, &msgs);
    let tree = group_by_subject(tree, &msgs);
    let mut tree = tree;
    sort_nodes(&mut tree, &msgs);
    tree
}

fn prune(arena: &[Container], msgs: &[Facts], c: usize, is_root: bool) -> Vec<Node> {
    let children: Vec<Node> = arena[c]
        .children
        .iter()
        .flat_map(|&k| prune(arena, msgs, k, false))
        .collect();
    match arena[c].msg {
        Some(i) => vec![Node {
            number: Some(msgs[i].number),
            children,
        }],
        None if children.is_empty() => Vec::new(),
        // A missing message's replies move up, but at the root only a
        // single child does (§3.2 (3)).
        None if !is_root || children.len() == 1 => children,
        None => vec![Node {
            number: None,
            children,
        }],
    }
}

fn index_of(msgs: &[Facts], number: u32) -> Option<&Facts> {
    msgs.iter().find(|m| m.number == number)
}

/// The date and number a node sorts by: its own, or its first child's.
fn key(node: &Node, msgs: &[Facts]) -> (i64, u32) {
    match node.number.and_then(|n| index_of(msgs, n)) {
        Some(m) => (m.date, m.number),
        None => node
            .children
            .first()
            .map_or((i64::MAX, u32::MAX), |c| key(c, msgs)),
    }
}

fn sort_nodes(nodes: &mut [Node], msgs: &[Facts]) {
    for n in nodes.iter_mut() {
        sort_nodes(&mut n.children, msgs);
    }
    nodes.sort_by_key(|n| key(n, msgs));
}

fn subject_of(node: &Node, msgs: &[Facts]) -> String {
    match node.number.and_then(|n| index_of(msgs, n)) {
        Some(m) => m.subject.clone(),
        None => node
            .children
            .first()
            .map(|c| subject_of(c, msgs))
            .unwrap_or_default(),
    }
}

/// §3.2 (5): roots with the same base subject are merged into one thread.
fn group_by_subject(roots: Vec<Node>, msgs: &[Facts]) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    let mut by_subject: HashMap<String, usize> = HashMap::new();
    for node in roots {
        let subject = subject_of(&node, msgs);
        if subject.is_empty() {
            out.push(node);
            continue;
        }
        match by_subject.get(&subject) {
            None => {
                by_subject.insert(subject, out.len());
                out.push(node);
            }
            Some(&i) => {
                let reply = |n: &Node| {
                    n.number
                        .and_then(|k| index_of(msgs, k))
                        .is_some_and(|m| m.is_reply)
                };
                let existing = &mut out[i];
                if existing.number.is_none() {
                    // (5)(C)(i): an empty container takes the other.
                    existing.children.push(node);
                } else if reply(&node) && !reply(existing) {
                    // (5)(C)(iii): a reply becomes a child of the original.
                    existing.children.push(node);
                } else {
                    let old = std::mem::replace(
                        existing,
                        Node {
                            number: None,
                            children: Vec::new(),
                        },
                    );
                    existing.children = vec![old, node];
                }
            }
        }
    }
    out
}

/// RFC 5256 §4: `(1 2 (3)(4 5))`.
pub fn format(threads: &[Node]) -> String {
    let mut out = String::new();
    for t in threads {
        out.push('(');
        write_chain(&mut out, t);
        out.push(')');
    }
    out
}

fn write_chain(out: &mut String, node: &Node) {
    let mut node = node;
    let mut first = true;
    loop {
        if let Some(n) = node.number {
            if !first {
                out.push(' ');
            }
            out.push_str(&n.to_string());
            first = false;
        }
        match node.children.as_slice() {
            [] => return,
            [only] if node.number.is_some() => node = only,
            many => {
                if !first {
                    out.push(' ');
                }
                for c in many {
                    out.push('(');
                    write_chain(out, c);
                    out.push(')');
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        let cases = [
            ("Re: hello", "HELLO"),
            ("RE: Re: re: hello", "HELLO"),
            ("Fwd: [list] Re: hello (fwd)", "HELLO"),
            ("[fwd: hello]", "HELLO"),
            ("[list]   hello   world", "HELLO WORLD"),
            ("[list]", "[LIST]"),
            ("Re:", ""),
            ("  ", ""),
        ];
        for (s, want) in cases {
            assert_eq!(base_subject(s), want, "{s:?}");
        }
    }

    fn m(number: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Facts {
        Facts {
            number,
            date,
            subject: base_subject(subject),
            is_reply: is_reply(subject),
            message_id: Some(id.to_string()),
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn references_threads_replies_and_missing_parents() {
        let msgs = vec![
            m(1, 10, "Plan", "a", &[]),
            m(2, 20, "Re: Plan", "b", &["a"]),
            m(3, 30, "Re: Plan", "c", &["a", "b"]),
            m(4, 25, "Re: Plan", "d", &["a"]),
            m(5, 40, "Other", "e", &["missing"]),
            m(6, 50, "Re: Other", "f", &["missing"]),
            m(7, 5, "Lonely", "g", &[]),
        ];
        let threads = references(msgs);
        assert_eq!(format(&threads), "(7)(1 (2 3)(4))((5)(6))");
    }

    #[test]
    fn subject_grouping_merges_roots() {
        let msgs = vec![m(1, 10, "News", "a", &[]), m(2, 20, "Re: News", "b", &[])];
        assert_eq!(format(&references(msgs)), "(1 2)");
        let msgs = vec![m(1, 10, "News", "a", &[]), m(2, 20, "News", "b", &[])];
        assert_eq!(format(&references(msgs)), "((1)(2))");
    }

    #[test]
    fn loops_in_references_terminate() {
        let msgs = vec![m(1, 10, "x", "a", &["b"]), m(2, 20, "y", "b", &["a"])];
        let t = references(msgs);
        assert!(!format(&t).is_empty());
    }

    #[test]
    fn ordered_subject_groups() {
        let msgs = vec![
            m(1, 30, "B", "a", &[]),
            m(2, 10, "A", "b", &[]),
            m(3, 40, "Re: B", "c", &[]),
        ];
        assert_eq!(format(&ordered_subject(msgs)), "(2)(1 3)");
    }
}
