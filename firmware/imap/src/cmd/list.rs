//! LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9) with CHILDREN
//! (RFC 3348) and SPECIAL-USE (RFC 6154) attributes.

use super::{blocking, store_error};
use crate::session::{Flow, Session};
use crate::wire;

pub(crate) async fn list(
    s: &mut Session,
    tag: &str,
    reference: &str,
    pattern: &[u8],
    subscribed_only: bool,
) -> Flow {
    let verb = if subscribed_only { "LSUB" } else { "LIST" };
    let pattern = String::from_utf8_lossy(pattern).into_owned();
    if pattern.is_empty() && !subscribed_only {
        // §6.3.9: the hierarchy delimiter and the root.
        s.conn.push("* LIST (\\Noselect) \"/\" \"\"\r\n");
        s.ok(tag, None, "LIST completed");
        return Flow::Continue;
    }
    let full = if reference.is_empty() || pattern.starts_with('/') {
        pattern
    } else if reference.ends_with('/') {
        format!("{reference}{pattern}")
    } else {
        format!("{reference}/{pattern}")
    };
    let account = s.login().expect("authenticated").account;
    let folders = match blocking(s, move |store| store.folders(account)).await {
        Ok(f) => f,
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    };
    let names: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    let mut out = Vec::new();
    for f in &folders {
        if subscribed_only && !f.subscribed {
            continue;
        }
        if !matches(&full, &f.name) {
            continue;
        }
        let prefix = format!("{}/", f.name);
        let mut attrs: Vec<&str> = Vec::new();
        if names.iter().any(|n| n.starts_with(&prefix)) {
            attrs.push("\\HasChildren");
        } else {
            attrs.push("\\HasNoChildren");
        }
        if let Some(special) = &f.special_use {
            attrs.push(special);
        }
        out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
        wire::astring(&mut out, f.name.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    s.send(&out);
    s.ok(tag, None, &format!("{verb} completed"));
    Flow::Continue
}

/// The bytes of a LIST pattern.
pub(crate) fn pattern(p: &imap_codec::imap_types::mailbox::ListMailbox<'_>) -> Vec<u8> {
    use imap_codec::imap_types::mailbox::ListMailbox;
    match p {
        ListMailbox::Token(t) => t.as_ref().to_vec(),
        ListMailbox::String(s) => s.as_ref().to_vec(),
    }
}

/// IMAP wildcards: `*` matches anything, `%` anything but the delimiter.
/// INBOX matches case-insensitively.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = if name == "INBOX" {
        (pattern.to_ascii_uppercase(), name.to_string())
    } else {
        (pattern.to_string(), name.to_string())
    };
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // reach[j]: the pattern prefix seen so far matches name[..j].
    let mut reach = vec![false; n.len() + 1];
    reach[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '%' => {
                for j in 0..=n.len() {
                    if reach[j] {
                        next[j] = true;
                        let mut k = j;
                        while k < n.len() && (pc == '*' || n[k] != '/') {
                            k += 1;
                            next[k] = true;
                        }
                    }
                }
            }
            c => {
                for j in 0..n.len() {
                    if reach[j] && n[j] == c {
                        next[j + 1] = true;
                    }
                }
            }
        }
        reach = next;
    }
    reach[n.len()]
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "INBOX", true),
            ("inbox", "INBOX", true),
            ("%", "Work/2026", false),
            ("%", "Work", true),
            ("Work/%", "Work/2026", true),
            ("Work/%", "Work/2026/Q1", false),
            ("Work/*", "Work/2026/Q1", true),
            ("W*6", "Work/2026", true),
            ("Sent", "Sent", true),
            ("Sent", "sent", false),
            ("%/%", "a/b", true),
            ("", "a", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(matches(p, n), want, "{p:?} vs {n:?}");
        }
    }
}
