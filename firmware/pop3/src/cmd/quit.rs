//! QUIT (RFC 1939 §6): in the TRANSACTION state it enters UPDATE and
//! removes the messages marked with DELE, for every client (IMAP included)
//! to see. A session that ends any other way removes nothing.

use super::blocking;
use crate::reply::{Code, Reply};
use crate::session::{Flow, Session, State};

pub(crate) async fn quit(s: &mut Session) -> Flow {
    let state = std::mem::replace(&mut s.state, State::Authorization { user: None });
    let State::Transaction(maildrop) = state else {
        s.reply(Reply::ok(format!(
            "{} Pochta POP3 server signing off",
            s.ctx.hostname
        )));
        return Flow::Close;
    };
    let marked: Vec<u32> = maildrop
        .messages
        .iter()
        .zip(&maildrop.deleted)
        .filter(|(_, &deleted)| deleted)
        .map(|(m, _)| m.uid)
        .collect();
    let folder = maildrop.folder;
    let removed = blocking(&s.ctx.store, &s.id, move |store| {
        store.remove_messages(folder, &marked)
    })
    .await;
    let reply = match removed {
        Some(Ok(uids)) => {
            if !uids.is_empty() {
                tracing::info!(
                    session = %s.id,
                    user = %maildrop.user,
                    deleted = uids.len(),
                    "pop3 messages deleted"
                );
            }
            // Messages already expunged by another session (IMAP) are not
            // counted: they were not removed by this one.
            Reply::ok(format!(
                "{} Pochta POP3 server signing off ({} messages deleted)",
                s.ctx.hostname,
                uids.len()
            ))
        }
        Some(Err(e)) => {
            tracing::error!(session = %s.id, error = %e, "POP3 update failed");
            Reply::err_code(Code::SysTemp, "Some deleted messages not removed")
        }
        None => Reply::err_code(Code::SysTemp, "Some deleted messages not removed"),
    };
    s.reply(reply);
    // The maildrop lock goes with `maildrop`, after the removal.
    drop(maildrop);
    Flow::Close
}
