//! MAIL (RFC 5321 §4.1.1.2) and RCPT (§4.1.1.3): who may send, who may
//! receive, and where each recipient's copy goes.

use pochta_store::{CatchAll, LocalRecipient, QueuedRecipient, Resolution};
use smtp_proto::{
    MailFrom, RcptTo, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8, RCPT_NOTIFY_DELAY,
    RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
};

use crate::reply::{common, Reply};
use crate::session::{Envelope, Flow, Session};
use crate::Service;

use super::blocking;

pub(crate) async fn mail(s: &mut Session, from: MailFrom<String>) -> Flow {
    if s.helo.is_none() {
        s.reply(common::bad_sequence("Send EHLO first"));
        return Flow::Continue;
    }
    if s.envelope.is_some() {
        s.reply(common::bad_sequence("Nested MAIL command"));
        return Flow::Continue;
    }
    let address = from.address.trim().to_string();
    if s.service.is_submission() && s.login.is_none() {
        let text = if s.conn.is_tls() {
            "Authentication required"
        } else {
            "Authentication required: use STARTTLS, then AUTH"
        };
        s.reject("mail", &address, Reply::new(530, "5.7.0", text));
        return Flow::Continue;
    }
    if from.size as u64 > s.ctx.limits.max_message_bytes {
        s.reject("mail", &address, common::too_big());
        return Flow::Continue;
    }
    let smtputf8 = from.flags & MAIL_SMTPUTF8 != 0;
    if !address.is_ascii() && !smtputf8 {
        // RFC 6531 §3.4
        s.reject(
            "mail",
            &address,
            Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"),
        );
        return Flow::Continue;
    }
    if let Some(login) = &s.login {
        let account = login.account;
        let user = login.user.clone();
        let candidate = address.clone();
        let allowed = if address.is_empty() {
            Some(Ok(false))
        } else {
            blocking(s, move |store| store.may_send_as(account, &candidate)).await
        };
        match allowed {
            Some(Ok(true)) => {}
            Some(Ok(false)) => {
                let reply = Reply::new(
                    550,
                    "5.7.1",
                    format!("Sender address <{address}> is not owned by {user}"),
                );
                s.reject("mail", &address, reply);
                return Flow::Continue;
            }
            _ => {
                s.reply(common::local_error());
                return Flow::Continue;
            }
        }
    }
    // Before the disk is full, new mail waits at the sender's side; mail
    // already accepted is safe, and this clears by itself with space. (A
    // reading a second old at most: no blocking task per MAIL.)
    match s.ctx.store.disk_room() {
        Ok(()) => {}
        Err(pochta_store::StoreError::DiskFull { used_percent }) => {
            s.reject("mail", &address, common::disk_full(used_percent));
            return Flow::Continue;
        }
        _ => {
            s.reply(common::local_error());
            return Flow::Continue;
        }
    }
    let ret = if from.flags & MAIL_RET_FULL != 0 {
        Some("FULL".to_string())
    } else if from.flags & MAIL_RET_HDRS != 0 {
        Some("HDRS".to_string())
    } else {
        None
    };
    // RFC 7208 §2.3, §2.4: SPF for the EHLO name and the MAIL FROM
    // identity. Recorded for DMARC and Authentication-Results after DATA.
    let spf = match (s.service, s.ctx.checks(), &s.helo) {
        (Service::Mx, Some(checks), Some(helo)) => {
            Some(checks.spf(s.peer.ip(), &helo.name, &address).await)
        }
        _ => None,
    };
    s.envelope = Some(Envelope {
        from: address,
        smtputf8,
        declared_size: from.size as u64,
        envid: from.env_id,
        ret,
        spf,
        ..Envelope::default()
    });
    s.reply(Reply::new(250, "2.1.0", "Sender OK"));
    Flow::Continue
}

pub(crate) async fn rcpt(s: &mut Session, to: RcptTo<String>) -> Flow {
    let Some(envelope) = &s.envelope else {
        s.reply(common::bad_sequence("Send MAIL first"));
        return Flow::Continue;
    };
    let address = to.address.trim().to_string();
    if envelope.rcpts.len() >= s.ctx.limits.max_recipients {
        // RFC 5321 §4.5.3.1.10: 452 lets the client send the rest later.
        s.reject(
            "rcpt",
            &address,
            Reply::new(452, "4.5.3", "Too many recipients"),
        );
        return Flow::Continue;
    }
    if !address.is_ascii() && !envelope.smtputf8 {
        s.reject(
            "rcpt",
            &address,
            Reply::new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8"),
        );
        return Flow::Continue;
    }
    if let Some(login) = &s.login {
        let (account, user) = (login.account, login.user.clone());
        let in_transaction = envelope.rcpts.len() as u64;
        let default = s.ctx.limits.recipients_per_day;
        let counted = blocking(s, move |store| {
            let limit = store.send_limit(account)?.unwrap_or(default);
            let sent = store.recipients_sent(account)?;
            Ok::<_, pochta_store::StoreError>((limit, sent))
        })
        .await;
        match counted {
            Some(Ok((limit, sent))) if sent + in_transaction >= u64::from(limit) => {
                // 451, not 550: the window rolls, so the same recipient is
                // accepted later, and a client must not bounce it for good.
                s.ctx
                    .maillog
                    .send_limit_reached(&s.id, s.peer, &user, limit);
                let reply = Reply::new(
                    451,
                    "4.7.1",
                    format!(
                        "Sending limit reached: {user} may send to {limit} recipients \
                         in 24 hours; try again later"
                    ),
                );
                s.reject("rcpt", &address, reply);
                return Flow::Continue;
            }
            Some(Ok(_)) => {}
            _ => {
                s.reply(common::local_error());
                return Flow::Continue;
            }
        }
    }
    let Some(envelope) = &s.envelope else {
        s.reply(common::bad_sequence("Send MAIL first"));
        return Flow::Continue;
    };
    let declared = envelope.declared_size.max(1);
    let lookup = address.clone();
    let resolved = blocking(s, move |store| {
        let r = store.resolve(&lookup, CatchAll::Use)?;
        // A single full mailbox is refused now rather than after DATA.
        let full = match &r {
            Resolution::Deliver { accounts, .. } if accounts.len() == 1 => {
                !store.has_room(accounts[0].0, declared)?
            }
            _ => false,
        };
        Ok::<_, pochta_store::StoreError>((r, full))
    })
    .await;
    let (resolution, full) = match resolved {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            tracing::error!(session = %s.id, error = %e, "recipient lookup failed");
            s.reply(common::local_error());
            return Flow::Continue;
        }
        None => {
            s.reply(common::local_error());
            return Flow::Continue;
        }
    };
    let notify = notify_param(to.flags);
    let queued = |address: String| QueuedRecipient {
        address,
        orcpt: to.orcpt.clone(),
        notify: notify.clone(),
    };
    let authenticated = s.login.is_some();
    let (local, remote): (Vec<LocalRecipient>, Vec<QueuedRecipient>) = match resolution {
        Resolution::Deliver { .. } if full => {
            s.reject("rcpt", &address, Reply::new(552, "5.2.2", "Mailbox full"));
            return Flow::Continue;
        }
        Resolution::Deliver { accounts, remote } => (
            accounts
                .into_iter()
                .map(|(account, address)| LocalRecipient {
                    account,
                    address,
                    folder: "INBOX".into(),
                })
                .collect(),
            remote.into_iter().map(queued).collect(),
        ),
        Resolution::NotLocal if authenticated => (Vec::new(), vec![queued(address.clone())]),
        Resolution::NotLocal => {
            s.reject(
                "rcpt",
                &address,
                Reply::new(550, "5.7.1", "Relaying denied"),
            );
            return Flow::Continue;
        }
        Resolution::Unknown => {
            s.reject(
                "rcpt",
                &address,
                Reply::new(550, "5.1.1", "No such user here"),
            );
            return Flow::Continue;
        }
    };
    let envelope = s
        .envelope
        .as_mut()
        .expect("checked above; only this task touches the session");
    envelope.rcpts.push(address);
    for l in local {
        if !envelope.local.iter().any(|e| e.account == l.account) {
            envelope.local.push(l);
        }
    }
    for r in remote {
        if !envelope.remote.iter().any(|e| e.address == r.address) {
            envelope.remote.push(r);
        }
    }
    s.reply(Reply::new(250, "2.1.5", "Recipient OK"));
    Flow::Continue
}

/// RFC 3461 §4.1 NOTIFY as stored.
fn notify_param(flags: u64) -> Option<String> {
    if flags & RCPT_NOTIFY_NEVER != 0 {
        return Some("NEVER".into());
    }
    let names: Vec<&str> = [
        (RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (RCPT_NOTIFY_FAILURE, "FAILURE"),
        (RCPT_NOTIFY_DELAY, "DELAY"),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| *name)
    .collect();
    (!names.is_empty()).then(|| names.join(","))
}
