//! NOOP/CHECK, SELECT/EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE and
//! STATUS (RFC 9051 §6.1.2, §6.3.2–6.3.11).

use imap_codec::imap_types::status::StatusDataItemName;

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::sequence::SequenceSet;

use super::copy::uid_set;
use super::{blocking, in_set, refresh, store_error};
use crate::selected::Selected;
use crate::session::{Flow, Session, State};
use crate::wire;

pub(crate) async fn noop(s: &mut Session, tag: &str) -> Flow {
    refresh(s, true).await;
    s.ok(tag, None, "NOOP completed");
    Flow::Continue
}

/// QRESYNC's SELECT parameters (RFC 7162 §3.2.5).
struct Resync {
    uidvalidity: u32,
    modseq: u64,
    known_uids: Option<SequenceSet>,
}

pub(crate) async fn select(
    s: &mut Session,
    tag: &str,
    name: &str,
    read_only: bool,
    params: &[SelectParameter],
) -> Flow {
    let mut resync = None;
    for p in params {
        match p {
            SelectParameter::CondStore => s.condstore = true,
            SelectParameter::QResync {
                uid_validity,
                mod_sequence_value,
                known_uids,
                ..
            } => {
                if !s.qresync {
                    s.bad(tag, "QRESYNC is not enabled (ENABLE QRESYNC first)");
                    return Flow::Continue;
                }
                resync = Some(Resync {
                    uidvalidity: uid_validity.get(),
                    modseq: mod_sequence_value.get(),
                    known_uids: known_uids.clone(),
                });
            }
        }
    }
    let login = s.login().cloned().expect("dispatch checked the state");
    // SELECT while selected first deselects, without expunging (§6.3.2).
    let was_selected = matches!(s.state, State::Selected(..));
    s.state = State::Authenticated(login.clone());
    // RFC 5182 §2.1: `$` is empty in a newly selected mailbox.
    s.saved.clear();
    if was_selected && (s.qresync || s.rev2) {
        // RFC 7162 §3.2.11, RFC 9051 §7.1
        s.conn.push("* OK [CLOSED] Previous mailbox closed\r\n");
    }
    let account = login.account;
    let lookup = name.to_string();
    let (condstore, qresync, rev2) = (s.condstore, s.qresync, s.rev2);
    let since = resync.as_ref().map(|r| r.modseq);
    let opened = blocking(s, move |store| {
        let Some(folder) = store.folder(account, &lookup)? else {
            return Ok(None);
        };
        let folder = folder.selectable()?;
        // RFC 9051 §6.3.2: an IMAP4rev2 client is also told the folder's
        // LIST attributes.
        let has_children = if rev2 {
            let prefix = format!("{}/", folder.name);
            store
                .folders(account)?
                .iter()
                .any(|f| f.name.starts_with(&prefix))
        } else {
            false
        };
        let (selected, messages) = Selected::open(store, folder, read_only, condstore, qresync)?;
        let changes = match since {
            Some(m) => Some(store.changes_since(selected.folder.id, m)?),
            None => None,
        };
        Ok(Some((selected, messages, changes, has_children)))
    })
    .await;
    let (selected, messages, changes, has_children) = match opened {
        Ok(Some(x)) => x,
        Ok(None) => {
            s.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Flow::Continue;
        }
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    };
    let first_unseen = messages.iter().position(|m| !m.has_flag("\\Seen"));
    let f = &selected.folder;
    let mut out = String::new();
    out.push_str("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n");
    out.push_str(&format!("* {} EXISTS\r\n", messages.len()));
    if !rev2 {
        // IMAP4rev2 has neither \Recent nor UNSEEN (RFC 9051 Appendix E).
        out.push_str("* 0 RECENT\r\n");
        if let Some(i) = first_unseen {
            out.push_str(&format!("* OK [UNSEEN {}] First unseen message\r\n", i + 1));
        }
    }
    if read_only {
        out.push_str("* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
    } else {
        out.push_str("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n");
    }
    out.push_str(&format!(
        "* OK [UIDVALIDITY {}] UIDs valid\r\n",
        f.uidvalidity
    ));
    out.push_str(&format!(
        "* OK [UIDNEXT {}] Predicted next UID\r\n",
        f.uidnext.max(1)
    ));
    if s.condstore {
        out.push_str(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            f.highestmodseq
        ));
    }
    // RFC 7162 §3.2.5.2: what the client missed since its last visit.
    if let (Some(r), Some(changes)) = (&resync, &changes) {
        if r.uidvalidity == f.uidvalidity {
            let star = selected
                .uids
                .last()
                .copied()
                .unwrap_or(0)
                .max(changes.uidnext);
            let vanished: Vec<u32> = changes
                .expunged
                .iter()
                .copied()
                .filter(|u| r.known_uids.as_ref().is_none_or(|k| in_set(k, *u, star)))
                .collect();
            if !vanished.is_empty() {
                out.push_str(&format!("* VANISHED (EARLIER) {}\r\n", uid_set(&vanished)));
            }
            for m in &changes.changed {
                if let Some(seq) = selected.seq_of(m.uid) {
                    out.push_str(&format!(
                        "* {seq} FETCH ({})\r\n",
                        selected.flags_item(m, true)
                    ));
                }
            }
        }
    }
    if rev2 {
        let mut attrs = vec![if has_children {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        }];
        attrs.extend(f.special_use.as_deref());
        let mut line = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        wire::mailbox(&mut line, &f.name, true);
        line.extend_from_slice(b"\r\n");
        out.push_str(&String::from_utf8_lossy(&line));
    }
    s.conn.push(&out);
    let (code, verb) = if read_only {
        ("READ-ONLY", "EXAMINE")
    } else {
        ("READ-WRITE", "SELECT")
    };
    s.state = State::Selected(login, selected);
    s.ok(tag, Some(code), &format!("{verb} completed"));
    Flow::Continue
}

pub(crate) async fn create(s: &mut Session, tag: &str, name: &str) -> Flow {
    let account = s.login().expect("authenticated").account;
    // RFC 9051 §6.3.4: a trailing separator only says "will have children".
    let name = name.trim_end_matches('/').to_string();
    if name.eq_ignore_ascii_case("INBOX") {
        s.no(tag, Some("ALREADYEXISTS"), "INBOX exists already");
        return Flow::Continue;
    }
    let result = blocking(s, move |store| {
        pochta_store::check_folder_name(&name)?;
        // Create missing parents too (§6.3.4 SHOULD).
        let levels: Vec<&str> = name.split('/').collect();
        for i in 1..levels.len() {
            let parent = levels[..i].join("/");
            if store.folder(account, &parent)?.is_none() {
                store.create_folder(account, &parent)?;
            }
        }
        store.create_folder(account, &name).map(|_| ())
    })
    .await;
    match result {
        Ok(()) => s.ok(tag, None, "CREATE completed"),
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}

pub(crate) async fn delete(s: &mut Session, tag: &str, name: &str) -> Flow {
    let account = s.login().expect("authenticated").account;
    if let State::Selected(_, sel) = &s.state {
        if sel.folder.name == name {
            s.no(
                tag,
                Some("INUSE"),
                "Unselect the mailbox before deleting it",
            );
            return Flow::Continue;
        }
    }
    let n = name.to_string();
    match blocking(s, move |store| store.delete_folder(account, &n)).await {
        Ok(()) => s.ok(tag, None, "DELETE completed"),
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}

pub(crate) async fn rename(s: &mut Session, tag: &str, from: &str, to: &str) -> Flow {
    let account = s.login().expect("authenticated").account;
    let (f, t) = (from.to_string(), to.trim_end_matches('/').to_string());
    let renamed = blocking(s, move |store| {
        pochta_store::check_folder_name(&t)?;
        // RFC 3501 §6.3.5: superior names of the new name are created.
        let levels: Vec<&str> = t.split('/').collect();
        for i in 1..levels.len() {
            let parent = levels[..i].join("/");
            if parent != f && store.folder(account, &parent)?.is_none() {
                store.create_folder(account, &parent)?;
            }
        }
        store.rename_folder(account, &f, &t)
    })
    .await;
    match renamed {
        Ok(()) => s.ok(tag, None, "RENAME completed"),
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}

pub(crate) async fn subscribe(s: &mut Session, tag: &str, name: &str, on: bool) -> Flow {
    let account = s.login().expect("authenticated").account;
    let n = name.to_string();
    let verb = if on { "SUBSCRIBE" } else { "UNSUBSCRIBE" };
    match blocking(s, move |store| store.subscribe(account, &n, on)).await {
        Ok(()) => s.ok(tag, None, &format!("{verb} completed")),
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}

/// STATUS APPENDLIMIT was asked for (RFC 7889 §3.2); `only` when it was
/// the only item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendLimit {
    pub only: bool,
}

pub(crate) async fn status(
    s: &mut Session,
    tag: &str,
    name: &str,
    items: &[StatusDataItemName],
    appendlimit: Option<AppendLimit>,
) -> Flow {
    let account = s.login().expect("authenticated").account;
    let n = name.to_string();
    if items.contains(&StatusDataItemName::HighestModSeq) {
        // RFC 7162 §3.1.2.1: asking for it turns CONDSTORE on.
        super::enable_condstore(s);
    }
    let result = blocking(s, move |store| {
        let Some(folder) = store.folder(account, &n)? else {
            return Ok(None);
        };
        let folder = folder.selectable()?;
        let counts = store.folder_counts(folder.id)?;
        Ok(Some((folder, counts)))
    })
    .await;
    let (folder, counts) = match result {
        Ok(Some(x)) => x,
        Ok(None) => {
            s.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Flow::Continue;
        }
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    };
    let mut parts = Vec::new();
    for item in items {
        match item {
            StatusDataItemName::Messages => parts.push(format!("MESSAGES {}", counts.messages)),
            StatusDataItemName::Recent => parts.push("RECENT 0".to_string()),
            StatusDataItemName::UidNext => parts.push(format!("UIDNEXT {}", folder.uidnext.max(1))),
            StatusDataItemName::UidValidity => {
                parts.push(format!("UIDVALIDITY {}", folder.uidvalidity))
            }
            StatusDataItemName::Unseen => parts.push(format!("UNSEEN {}", counts.unseen)),
            StatusDataItemName::Deleted => parts.push(format!("DELETED {}", counts.deleted)),
            // RFC 9208 §4.2: in units of 1024 octets, like STORAGE.
            StatusDataItemName::DeletedStorage => parts.push(format!(
                "DELETED-STORAGE {}",
                counts.deleted_size.div_ceil(1024)
            )),
            // RFC 8438: total octets of the mailbox's messages.
            StatusDataItemName::Size => parts.push(format!("SIZE {}", counts.size)),
            StatusDataItemName::HighestModSeq => {
                parts.push(format!("HIGHESTMODSEQ {}", folder.highestmodseq))
            }
        }
    }
    if let Some(a) = appendlimit {
        if a.only {
            parts.clear();
        }
        parts.push(format!("APPENDLIMIT {}", s.ctx.limits.max_message_bytes));
    }
    let mut out = b"* STATUS ".to_vec();
    wire::mailbox(&mut out, &folder.name, s.rev2);
    out.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
    s.send(&out);
    s.ok(tag, None, "STATUS completed");
    Flow::Continue
}
