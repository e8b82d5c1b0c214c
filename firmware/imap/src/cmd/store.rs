//! STORE and UID STORE (RFC 9051 §6.4.6), with UNCHANGEDSINCE and
//! [MODIFIED] (RFC 7162 §3.1.3).

use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use pochta_store::FlagOp;

use super::copy::uid_set;
use super::{blocking, flags_from, refresh, store_error};
use crate::session::{Flow, Session, State};

/// What STORE was asked to do, beside the set and the flags.
pub(crate) struct Request {
    pub kind: StoreType,
    pub response: StoreResponse,
    pub unchanged_since: Option<u64>,
    pub by_uid: bool,
}

pub(crate) async fn store(
    s: &mut Session,
    tag: &str,
    set: &SequenceSet,
    flags: &[Flag<'_>],
    req: Request,
) -> Flow {
    if req.unchanged_since.is_some() {
        super::enable_condstore(s);
    }
    refresh(s, req.by_uid).await;
    let (condstore, qresync) = (s.condstore, s.qresync);
    let State::Selected(_, selected) = &mut s.state else {
        unreachable!("dispatch checked the state");
    };
    selected.condstore |= condstore;
    if selected.read_only {
        s.no(tag, Some("READ-ONLY"), "Mailbox is read-only");
        return Flow::Continue;
    }
    let pairs = match selected.resolve(set, req.by_uid) {
        Ok(p) => p,
        Err(_) => {
            s.bad(tag, "Invalid sequence set");
            return Flow::Continue;
        }
    };
    let folder = selected.folder.id;
    let op = match req.kind {
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
        StoreType::Replace => FlagOp::Replace,
    };
    let flags = flags_from(flags);
    let uids: Vec<u32> = pairs.iter().map(|(_, u)| *u).collect();
    let since = req.unchanged_since;
    let result = blocking(s, move |store| {
        store.set_flags(folder, &uids, op, &flags, since)
    })
    .await;
    let (updated, refused) = match result {
        Ok(x) => x,
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    };
    let State::Selected(_, selected) = &mut s.state else {
        unreachable!("state does not change during STORE");
    };
    let mut out = String::new();
    for m in &updated {
        selected.note_own_change(m.uid, m.modseq);
        // RFC 7162 §3.1.3: with UNCHANGEDSINCE the new MODSEQ is always
        // reported, even for .SILENT.
        if req.response == StoreResponse::Silent && since.is_none() {
            continue;
        }
        if let Some(seq) = selected.seq_of(m.uid) {
            out.push_str(&format!(
                "* {seq} FETCH ({})\r\n",
                selected.flags_item(m, req.by_uid || qresync)
            ));
        }
    }
    // MODIFIED lists UIDs for UID STORE, sequence numbers otherwise.
    let modified: Vec<u32> = if req.by_uid {
        refused.clone()
    } else {
        refused.iter().filter_map(|u| selected.seq_of(*u)).collect()
    };
    s.conn.push(&out);
    if modified.is_empty() {
        s.ok(tag, None, "STORE completed");
    } else {
        s.ok(
            tag,
            Some(&format!("MODIFIED {}", uid_set(&modified))),
            "Some messages changed meanwhile",
        );
    }
    Flow::Continue
}
