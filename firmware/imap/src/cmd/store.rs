//! STORE and UID STORE (RFC 9051 §6.4.6).

use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::sequence::SequenceSet;
use pochta_store::FlagOp;

use super::{blocking, flag_list, flags_from, refresh, store_error};
use crate::session::{Flow, Session, State};

pub(crate) async fn store(
    s: &mut Session,
    tag: &str,
    set: &SequenceSet,
    kind: StoreType,
    response: StoreResponse,
    flags: &[Flag<'_>],
    by_uid: bool,
) -> Flow {
    refresh(s, by_uid).await;
    let State::Selected(_, selected) = &s.state else {
        unreachable!("dispatch checked the state");
    };
    if selected.read_only {
        s.no(tag, Some("READ-ONLY"), "Mailbox is read-only");
        return Flow::Continue;
    }
    let pairs = match selected.resolve(set, by_uid) {
        Ok(p) => p,
        Err(_) => {
            s.bad(tag, "Invalid sequence set");
            return Flow::Continue;
        }
    };
    let folder = selected.folder.id;
    let op = match kind {
        StoreType::Add => FlagOp::Add,
        StoreType::Remove => FlagOp::Remove,
        StoreType::Replace => FlagOp::Replace,
    };
    let flags = flags_from(flags);
    let uids: Vec<u32> = pairs.iter().map(|(_, u)| *u).collect();
    let result = blocking(s, move |store| {
        store.set_flags(folder, &uids, op, &flags, None)
    })
    .await;
    let updated = match result {
        Ok((updated, _)) => updated,
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
        if response == StoreResponse::Silent {
            continue;
        }
        if let Some(seq) = selected.seq_of(m.uid) {
            let uid = if by_uid {
                format!("UID {} ", m.uid)
            } else {
                String::new()
            };
            out.push_str(&format!(
                "* {seq} FETCH ({uid}FLAGS ({}))\r\n",
                flag_list(&m.flags)
            ));
        }
    }
    s.conn.push(&out);
    s.ok(tag, None, "STORE completed");
    Flow::Continue
}
