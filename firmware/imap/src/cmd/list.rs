//! LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9) with CHILDREN
//! (RFC 3348) and SPECIAL-USE (RFC 6154) attributes.

use super::{blocking, store_error};
use crate::extended::ExtendedList;
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
    let pattern = super::pattern_text(pattern, s.rev2);
    if pattern.is_empty() && !subscribed_only {
        // §6.3.9: the hierarchy delimiter and the root.
        s.conn.push("* LIST (\\Noselect) \"/\" \"\"\r\n");
        s.ok(tag, None, "LIST completed");
        return Flow::Continue;
    }
    let full = full_pattern(reference, &pattern);
    let account = s.login().expect("authenticated").account;
    let listed = blocking(s, move |store| {
        Ok((store.folders(account)?, store.subscriptions(account)?))
    })
    .await;
    let (folders, subscriptions) = match listed {
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
        if f.noselect {
            attrs.push("\\Noselect");
        }
        if names.iter().any(|n| n.starts_with(&prefix)) {
            attrs.push("\\HasChildren");
        } else {
            attrs.push("\\HasNoChildren");
        }
        if let Some(special) = &f.special_use {
            attrs.push(special);
        }
        out.extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
        wire::mailbox(&mut out, &f.name, s.rev2);
        out.extend_from_slice(b"\r\n");
    }
    if subscribed_only {
        // A subscription outlives its folder (RFC 3501 §6.3.9): listed
        // \Noselect.
        for name in subscriptions
            .iter()
            .filter(|n| !names.contains(&n.as_str()) && matches(&full, n))
        {
            out.extend_from_slice(b"* LSUB (\\Noselect) \"/\" ");
            wire::mailbox(&mut out, name, s.rev2);
            out.extend_from_slice(b"\r\n");
        }
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

/// Extended LIST (RFC 5258) with LIST-STATUS (RFC 5819): selection options
/// SUBSCRIBED, SPECIAL-USE, RECURSIVEMATCH; return options SUBSCRIBED,
/// CHILDREN, SPECIAL-USE, STATUS; several patterns.
pub(crate) async fn list_extended(s: &mut Session, l: ExtendedList) -> Flow {
    let tag = l.tag.clone();
    if l.patterns.iter().all(|p| p.is_empty()) {
        s.conn.push("* LIST (\\Noselect) \"/\" \"\"\r\n");
        s.ok(&tag, None, "LIST completed");
        return Flow::Continue;
    }
    let reference = super::pattern_text(&l.reference, s.rev2);
    let patterns: Vec<String> = l
        .patterns
        .iter()
        .map(|p| full_pattern(&reference, &super::pattern_text(p, s.rev2)))
        .collect();
    let account = s.login().expect("authenticated").account;
    let wants_status = l.return_status.is_some();
    let listed = blocking(s, move |store| {
        let folders = store.folders(account)?;
        let subscriptions = store.subscriptions(account)?;
        let mut counts = Vec::new();
        for f in &folders {
            counts.push(if wants_status {
                Some(store.folder_counts(f.id)?)
            } else {
                None
            });
        }
        Ok((folders, counts, subscriptions))
    })
    .await;
    let (folders, counts, subscriptions) = match listed {
        Ok(x) => x,
        Err(e) => {
            store_error(s, &tag, &e);
            return Flow::Continue;
        }
    };
    let names: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    let mut out = Vec::new();
    for (f, count) in folders.iter().zip(&counts) {
        let matched = patterns.iter().any(|p| matches(p, &f.name));
        let prefix = format!("{}/", f.name);
        let mut attrs: Vec<&str> = Vec::new();
        if f.noselect {
            attrs.push("\\Noselect");
        }
        let mut childinfo = false;
        if l.subscribed && !f.subscribed {
            // RFC 5258 §3.5: a parent of subscribed children is named with
            // CHILDINFO under RECURSIVEMATCH.
            let subscribed_child = folders
                .iter()
                .any(|c| c.subscribed && c.name.starts_with(&prefix));
            if !(l.recursive_match && matched && subscribed_child) {
                continue;
            }
            childinfo = true;
        }
        if l.special_use_only && f.special_use.is_none() || !matched {
            continue;
        }
        if names.iter().any(|n| n.starts_with(&prefix)) {
            attrs.push("\\HasChildren");
        } else {
            attrs.push("\\HasNoChildren");
        }
        if (l.subscribed || l.return_subscribed) && f.subscribed {
            attrs.push("\\Subscribed");
        }
        if let Some(special) = &f.special_use {
            attrs.push(special);
        }
        out.extend_from_slice(format!("* LIST ({}) \"/\" ", attrs.join(" ")).as_bytes());
        wire::mailbox(&mut out, &f.name, s.rev2);
        if childinfo {
            out.extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
        }
        out.extend_from_slice(b"\r\n");
        // RFC 5819 §3: no STATUS for a \Noselect name.
        if let (Some(items), Some(c), false) = (&l.return_status, count, f.noselect) {
            let values: Vec<String> = items
                .iter()
                .map(|i| match i.as_str() {
                    "MESSAGES" => format!("MESSAGES {}", c.messages),
                    "UIDNEXT" => format!("UIDNEXT {}", f.uidnext.max(1)),
                    "UIDVALIDITY" => format!("UIDVALIDITY {}", f.uidvalidity),
                    "UNSEEN" => format!("UNSEEN {}", c.unseen),
                    "HIGHESTMODSEQ" => format!("HIGHESTMODSEQ {}", f.highestmodseq),
                    "DELETED" => format!("DELETED {}", c.deleted),
                    "SIZE" => format!("SIZE {}", c.size),
                    "APPENDLIMIT" => format!("APPENDLIMIT {}", s.ctx.limits.max_message_bytes),
                    _ => "RECENT 0".to_string(),
                })
                .collect();
            out.extend_from_slice(b"* STATUS ");
            wire::mailbox(&mut out, &f.name, s.rev2);
            out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        }
    }
    if l.subscribed {
        // RFC 5258 §3.1: subscribed names without a folder are listed
        // \NonExistent.
        for name in subscriptions
            .iter()
            .filter(|n| !names.contains(&n.as_str()) && patterns.iter().any(|p| matches(p, n)))
        {
            out.extend_from_slice(b"* LIST (\\Subscribed \\NonExistent) \"/\" ");
            wire::mailbox(&mut out, name, s.rev2);
            out.extend_from_slice(b"\r\n");
        }
    }
    s.send(&out);
    s.ok(&tag, None, "LIST completed");
    Flow::Continue
}

fn full_pattern(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with('/') {
        pattern.to_string()
    } else if reference.ends_with('/') {
        format!("{reference}{pattern}")
    } else {
        format!("{reference}/{pattern}")
    }
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
