//! USER and PASS (RFC 1939 §7) and AUTH PLAIN (RFC 5034, RFC 4616): only
//! over TLS, and every attempt through the shared `Authenticator` (mail
//! log, brute-force guard). A good login locks and opens the maildrop.

use pochta_auth::Login;
use pochta_net::{Line, ReadError};
use pochta_store::{AccountId, Folder, Message, StoreError};

use super::{blocking, in_authorization};
use crate::reply::{common, Code, Reply};
use crate::session::{Flow, Maildrop, Session, State};

/// The only SASL mechanism: PLAIN, and only over TLS.
const MECHANISM: &str = "PLAIN";

/// Refuses logins before TLS (and says so in the mail log); true if refused.
fn refuse_plaintext(s: &mut Session) -> bool {
    if s.conn.is_tls() {
        return false;
    }
    s.reject("auth", "plaintext", common::plaintext_login());
    true
}

pub(crate) fn user(s: &mut Session, name: String) -> Flow {
    if !in_authorization(s) {
        s.reply(common::not_in_authorization());
        return Flow::Continue;
    }
    if refuse_plaintext(s) {
        return Flow::Continue;
    }
    s.state = State::Authorization { user: Some(name) };
    // Whether the name exists is not told (RFC 1939 §7 allows this).
    s.reply(Reply::ok("Send PASS"));
    Flow::Continue
}

pub(crate) async fn pass(s: &mut Session, password: String) -> Flow {
    let State::Authorization { user } = &mut s.state else {
        s.reply(common::not_in_authorization());
        return Flow::Continue;
    };
    // RFC 1939 §7: after PASS, right or wrong, USER must come again.
    let user = user.take();
    if refuse_plaintext(s) {
        return Flow::Continue;
    }
    let Some(user) = user else {
        s.reply(Reply::err("Send USER first"));
        return Flow::Continue;
    };
    login(s, user, password).await
}

pub(crate) async fn auth(
    s: &mut Session,
    mechanism: Option<String>,
    initial: Option<String>,
) -> Flow {
    let State::Authorization { user } = &mut s.state else {
        s.reply(common::not_in_authorization());
        return Flow::Continue;
    };
    *user = None;
    if refuse_plaintext(s) {
        return Flow::Continue;
    }
    let Some(mechanism) = mechanism else {
        // Not in RFC 5034, but clients of the older RFC 1734 ask this way.
        s.conn.push(&format!("+OK\r\n{MECHANISM}\r\n.\r\n"));
        return Flow::Continue;
    };
    if mechanism != MECHANISM {
        s.reply(Reply::err("Unsupported authentication mechanism"));
        return Flow::Continue;
    }
    let response = match initial {
        Some(r) => r,
        None => match ask(s).await {
            Answer::Response(r) => r,
            Answer::Done(flow) => return flow,
        },
    };
    let Some((user, password)) = pochta_auth::decode_plain(&response) else {
        s.reply(Reply::err("Cannot decode the PLAIN response"));
        return Flow::Continue;
    };
    login(s, user, password).await
}

enum Answer {
    Response(String),
    /// Cancelled, unreadable or gone; the reply is queued.
    Done(Flow),
}

/// RFC 5034 §4: an empty challenge, `+ `, then one line of base64 or `*`.
async fn ask(s: &mut Session) -> Answer {
    s.conn.push("+ \r\n");
    match s.conn.read_line(s.ctx.limits.max_line_bytes).await {
        Ok(Line::Complete(line)) => {
            let text = String::from_utf8_lossy(&line).trim().to_string();
            if text == "*" {
                s.reply(Reply::err("Authentication cancelled"));
                Answer::Done(Flow::Continue)
            } else {
                Answer::Response(text)
            }
        }
        Ok(Line::TooLong) => {
            s.reply(common::line_too_long());
            Answer::Done(Flow::Continue)
        }
        Err(ReadError::Timeout) => {
            s.reject("auth", "timeout", common::timeout());
            Answer::Done(Flow::Close)
        }
        Err(_) => Answer::Done(Flow::Close),
    }
}

async fn login(s: &mut Session, user: String, password: String) -> Flow {
    let verdict = s
        .ctx
        .auth
        .login(s.service.name(), &s.id, s.peer, &user, password)
        .await;
    match verdict {
        Login::Accepted(account) => open_maildrop(s, account, user).await,
        Login::Refused => {
            s.auth_failures += 1;
            if s.auth_failures >= s.ctx.limits.max_auth_failures {
                s.reply(Reply::err_code(
                    Code::Auth,
                    "Too many failed logins, closing connection",
                ));
                return Flow::Close;
            }
            s.reply(Reply::err_code(Code::Auth, "Invalid user name or password"));
            Flow::Continue
        }
        Login::Banned => {
            s.reply(Reply::err_code(
                Code::Auth,
                "Too many failed logins from your address, try again later",
            ));
            Flow::Close
        }
        Login::Unavailable => {
            s.reply(Reply::err_code(
                Code::SysTemp,
                "Temporary authentication failure, try again later",
            ));
            Flow::Continue
        }
    }
}

/// RFC 1939 §4: lock the maildrop, then take its snapshot. On failure the
/// session stays in the AUTHORIZATION state.
async fn open_maildrop(s: &mut Session, account: AccountId, user: String) -> Flow {
    let Some(lock) = s.ctx.lock_maildrop(account) else {
        s.reply(Reply::err_code(
            Code::InUse,
            "Maildrop is in use by another POP3 session, try again later",
        ));
        return Flow::Continue;
    };
    let snapshot = blocking(&s.ctx.store, &s.id, move |store| {
        let Some(inbox) = store.folder(account, "INBOX")? else {
            return Ok(None);
        };
        let messages = store.folder_messages(inbox.id)?;
        Ok::<Option<(Folder, Vec<Message>)>, StoreError>(Some((inbox, messages)))
    })
    .await;
    match snapshot {
        Some(Ok(Some((inbox, messages)))) => {
            let maildrop = Maildrop::new(user, inbox.id, inbox.uidvalidity, messages, lock);
            let (count, size) = maildrop.totals();
            tracing::debug!(session = %s.id, user = %maildrop.user, count, size, "maildrop open");
            s.state = State::Transaction(maildrop);
            s.reply(Reply::ok(format!(
                "Logged in, maildrop has {count} messages ({size} octets)"
            )));
        }
        Some(Ok(None)) => {
            s.reply(Reply::err_code(Code::SysPerm, "The account has no INBOX"));
        }
        Some(Err(e)) => {
            tracing::error!(session = %s.id, error = %e, "cannot open the maildrop");
            s.reply(Reply::err_code(
                Code::SysTemp,
                "Cannot open the maildrop, try again later",
            ));
        }
        None => {
            s.reply(Reply::err_code(
                Code::SysTemp,
                "Cannot open the maildrop, try again later",
            ));
        }
    }
    Flow::Continue
}
