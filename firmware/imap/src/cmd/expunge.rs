//! CLOSE, UNSELECT (RFC 3691), EXPUNGE and UID EXPUNGE (RFC 4315 §2.1).

use imap_codec::imap_types::sequence::SequenceSet;

use super::{blocking, refresh, store_error};
use crate::session::{Flow, Session, State};

/// CLOSE expunges silently (§6.4.1); UNSELECT does not.
pub(crate) async fn close(s: &mut Session, tag: &str, expunge: bool) -> Flow {
    let State::Selected(login, selected) = std::mem::replace(&mut s.state, State::NotAuthenticated)
    else {
        unreachable!("dispatch checked the state");
    };
    let folder = selected.folder.id;
    let writable = !selected.read_only;
    s.state = State::Authenticated(login);
    s.saved.clear();
    if expunge && writable {
        if let Err(e) = blocking(s, move |store| store.expunge(folder, None)).await {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    }
    let verb = if expunge { "CLOSE" } else { "UNSELECT" };
    s.ok(tag, None, &format!("{verb} completed"));
    Flow::Continue
}

pub(crate) async fn expunge(s: &mut Session, tag: &str, uid_set: Option<&SequenceSet>) -> Flow {
    let State::Selected(_, selected) = &s.state else {
        unreachable!("dispatch checked the state");
    };
    if selected.read_only {
        s.no(tag, Some("READ-ONLY"), "Mailbox is read-only");
        return Flow::Continue;
    }
    let folder = selected.folder.id;
    let only: Option<Vec<u32>> = match uid_set {
        Some(set) => match selected.resolve(set, true) {
            Ok(pairs) => Some(pairs.into_iter().map(|(_, uid)| uid).collect()),
            Err(_) => {
                s.bad(tag, "Invalid sequence set");
                return Flow::Continue;
            }
        },
        None => None,
    };
    match blocking(s, move |store| store.expunge(folder, only.as_deref())).await {
        Ok(_) => {
            // The removed UIDs come back through the change log, with every
            // other session's changes, in the right order.
            refresh(s, true).await;
            // RFC 7162 §3.2.10 (SHOULD): the new HIGHESTMODSEQ with QRESYNC.
            let code = match &s.state {
                State::Selected(_, sel) if s.qresync => {
                    Some(format!("HIGHESTMODSEQ {}", sel.folder.highestmodseq))
                }
                _ => None,
            };
            s.ok(tag, code.as_deref(), "EXPUNGE completed");
        }
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}
