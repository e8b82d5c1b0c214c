//! QUOTA (RFC 9208) with the STORAGE resource, in units of 1024 octets.
//! One quota root, `""`, per account; quotas are set by the administrator
//! (`pochta account quota`), never over IMAP.

use super::{blocking, store_error};
use crate::session::{Flow, Session};
use crate::wire;

/// `* QUOTA "" (STORAGE used limit)`, or `None` when unlimited.
async fn quota_line(s: &mut Session, tag: &str) -> Result<Option<String>, ()> {
    let account = s.login().expect("authenticated").account;
    match blocking(s, move |store| store.usage(account)).await {
        Ok((_, 0)) => Ok(None),
        Ok((used, quota)) => Ok(Some(format!(
            "* QUOTA \"\" (STORAGE {} {})\r\n",
            used.div_ceil(1024),
            quota / 1024
        ))),
        Err(e) => {
            store_error(s, tag, &e);
            Err(())
        }
    }
}

pub(crate) async fn get_quota_root(s: &mut Session, tag: &str, mailbox: &str) -> Flow {
    let account = s.login().expect("authenticated").account;
    let name = mailbox.to_string();
    match blocking(s, move |store| store.folder(account, &name)).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            s.no(tag, Some("NONEXISTENT"), "No such mailbox");
            return Flow::Continue;
        }
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    }
    let Ok(line) = quota_line(s, tag).await else {
        return Flow::Continue;
    };
    let mut out = b"* QUOTAROOT ".to_vec();
    wire::mailbox(&mut out, mailbox, s.rev2);
    if line.is_some() {
        out.extend_from_slice(b" \"\"");
    }
    out.extend_from_slice(b"\r\n");
    s.send(&out);
    if let Some(line) = line {
        s.conn.push(&line);
    }
    s.ok(tag, None, "GETQUOTAROOT completed");
    Flow::Continue
}

pub(crate) async fn get_quota(s: &mut Session, tag: &str, root: &[u8]) -> Flow {
    if !root.is_empty() {
        s.no(tag, Some("NONEXISTENT"), "No such quota root");
        return Flow::Continue;
    }
    match quota_line(s, tag).await {
        Ok(Some(line)) => {
            s.conn.push(&line);
            s.ok(tag, None, "GETQUOTA completed");
        }
        Ok(None) => s.no(tag, Some("NONEXISTENT"), "No quota for this account"),
        Err(()) => {}
    }
    Flow::Continue
}
