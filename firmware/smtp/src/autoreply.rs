//! Auto-replies of disabled accounts (offboarding): "I have left, write to
//! …", sent after a message to such an account was committed, following
//! RFC 3834 so that responders do not answer lists, bounces or each other:
//!
//! - only mail sent to the account's own address (not through a group or
//!   alias: those are not personal mail, RFC 3834 §2);
//! - never to the null reverse-path, nor when the message says it was
//!   automatic (`Auto-Submitted` other than `no`, RFC 3834 §5) or comes
//!   from a list (`List-Id`, RFC 2919; `Precedence: bulk|list|junk`), nor
//!   to the usual robot senders (RFC 5230 §4.5), nor for junk;
//! - at most once per sender in [`pochta_store::AUTO_REPLY_INTERVAL_SECS`];
//! - the reply has `Auto-Submitted: auto-replied` (§5), `In-Reply-To` and
//!   `References` (§3.1.6), `Subject: Auto: …` (§3.1.5), and the null
//!   reverse-path (§3.3; RFC 5230 §5.1), so nothing answers it in turn.
//!
//! The reply goes where a bounce would: a local mailbox, or the outbound
//! queue.

use std::io::Read;

use pochta_store::{AccountId, AutoReply, BlobId, Store, StoreError};

use crate::session::Session;

/// Most header bytes read from the original.
const MAX_HEADER: u64 = 64 * 1024;

/// After a message was committed: auto-replies from the disabled accounts
/// among its direct recipients. Failures are logged, never reported to the
/// client (its message is delivered already).
pub(crate) async fn answer(
    s: &Session,
    sender: &str,
    rcpts: &[String],
    local: Vec<(AccountId, String)>,
    blob: BlobId,
) {
    let direct: Vec<AccountId> = local
        .iter()
        .filter(|(_, address)| rcpts.iter().any(|r| r.eq_ignore_ascii_case(address)))
        .map(|(id, _)| *id)
        .collect();
    if direct.is_empty() {
        return;
    }
    let sender = sender.to_owned();
    let (session, hostname) = (s.id.clone(), s.ctx.hostname.clone());
    let maillog = s.ctx.maillog.clone();
    let done = crate::cmd::blocking(s, move |store| {
        let replies = store.auto_replies(&direct)?;
        if replies.is_empty() {
            return Ok(());
        }
        let header = read_header(store, &blob)?;
        for reply in replies {
            let skip =
                |why: &str| maillog.auto_reply_skipped(&session, &reply.address, &sender, why);
            if let Some(why) = refusal(&sender, &reply.address, &header) {
                skip(why);
                continue;
            }
            if !store.claim_auto_reply(reply.account, &sender)? {
                skip("answered already in the last 7 days");
                continue;
            }
            let unique = format!("{}-{}", &blob.0[..16.min(blob.0.len())], reply.account.0);
            let now = time::OffsetDateTime::now_utc();
            let message = build(&reply, &sender, &header, &hostname, now, &unique);
            match crate::from_null::submit(store, &sender, &message) {
                Ok(receipt) => {
                    for copy in &receipt.stored {
                        maillog.delivered(&session, &copy.address, &copy.folder, copy.uid, &unique);
                    }
                    for (q, rcpt) in &receipt.queued {
                        maillog.queued(&session, rcpt, *q, &unique);
                    }
                }
                Err(why) => skip(&why),
            }
        }
        Ok::<_, StoreError>(())
    })
    .await;
    if let Some(Err(e)) = done {
        tracing::error!(session = %s.id, error = %e, "auto-reply failed");
    }
}

/// The original's header section, as stored.
fn read_header(store: &Store, blob: &BlobId) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    std::fs::File::open(store.blob_path(blob))?
        .take(MAX_HEADER)
        .read_to_end(&mut bytes)?;
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |i| i + 2);
    bytes.truncate(end);
    Ok(bytes)
}

/// The header fields, unfolded (RFC 5322 §2.2.3), names as sent.
fn fields(header: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(header);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why this message gets no auto-reply from `account`; `None` when it does.
fn refusal(sender: &str, account: &str, header: &[u8]) -> Option<&'static str> {
    if sender.is_empty() {
        return Some("null sender (a bounce or another automatic message)");
    }
    if sender.eq_ignore_ascii_case(account) {
        return Some("sent by the account itself");
    }
    let local = sender
        .rsplit_once('@')
        .map_or(sender, |(l, _)| l)
        .to_ascii_lowercase();
    // RFC 5230 §4.5: addresses that are robots, not people.
    let robot = local.starts_with("owner-")
        || local.ends_with("-request")
        || [
            "mailer-daemon",
            "listserv",
            "majordomo",
            "noreply",
            "no-reply",
        ]
        .contains(&local.as_str());
    if robot {
        return Some("sender is a robot address");
    }
    let fields = fields(header);
    // RFC 3834 §5: only `no` means a person sent it.
    if let Some(v) = field(&fields, "Auto-Submitted") {
        let keyword = v.split(';').next().unwrap_or("").trim();
        if !keyword.eq_ignore_ascii_case("no") {
            return Some("message is Auto-Submitted");
        }
    }
    if field(&fields, "List-Id").is_some() {
        return Some("message is from a mailing list");
    }
    if let Some(p) = field(&fields, "Precedence") {
        if ["bulk", "list", "junk"].contains(&p.trim().to_ascii_lowercase().as_str()) {
            return Some("message has Precedence: bulk, list or junk");
        }
    }
    None
}

/// The reply message (RFC 3834 §3), CRLF line ends.
fn build(
    reply: &AutoReply,
    to: &str,
    header: &[u8],
    hostname: &str,
    now: time::OffsetDateTime,
    unique: &str,
) -> Vec<u8> {
    let fields = fields(header);
    let subject = field(&fields, "Subject").unwrap_or("");
    // §3.1.5: "Auto: " and the original subject, not repeated.
    let repeated = subject
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("auto:"));
    let subject = if repeated {
        subject.to_owned()
    } else {
        format!("Auto: {subject}")
    };
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\n\
         Message-ID: <auto-{unique}@{hostname}>\r\nAuto-Submitted: auto-replied\r\n",
        from = reply.address,
        date = now
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default(),
    );
    // §3.1.6: In-Reply-To is the original's Message-ID; References add it
    // to the original's References.
    if let Some(id) = field(&fields, "Message-ID").filter(|v| !v.is_empty()) {
        let references = match field(&fields, "References") {
            Some(r) if !r.is_empty() => format!("{r} {id}"),
            _ => id.to_owned(),
        };
        m.push_str(&format!(
            "In-Reply-To: {id}\r\nReferences: {references}\r\n"
        ));
    }
    let body: String = reply
        .text
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .split('\n')
        .map(|line| format!("{line}\r\n"))
        .collect();
    let encoding = if body.is_ascii() { "7bit" } else { "8bit" };
    m.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: {encoding}\r\n\r\n{body}"
    ));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] = b"Received: from x\r\n\tby y; Fri, 27 Nov 2026 08:05:09 +0000\r\n\
        From: Anna <anna@remote.org>\r\nSubject: Offer for\r\n the spring\r\n\
        Message-ID: <m1@remote.org>\r\nReferences: <m0@remote.org>\r\n";

    fn with(extra: &str) -> Vec<u8> {
        let mut h = ORIGINAL.to_vec();
        h.extend_from_slice(extra.as_bytes());
        h
    }

    #[test]
    fn who_gets_no_reply() {
        let me = "bob@example.com";
        assert_eq!(refusal("anna@remote.org", me, ORIGINAL), None);
        let cases: [(&str, &str, &str); 10] = [
            ("", "", "null sender"),
            ("Bob@example.com", "", "itself"),
            ("MAILER-DAEMON@remote.org", "", "robot"),
            ("owner-staff@remote.org", "", "robot"),
            ("staff-request@remote.org", "", "robot"),
            (
                "anna@remote.org",
                "Auto-Submitted: auto-generated\r\n",
                "Auto-Submitted",
            ),
            (
                "anna@remote.org",
                "auto-submitted: auto-replied; x=y\r\n",
                "Auto-Submitted",
            ),
            (
                "anna@remote.org",
                "List-Id: Staff <staff.remote.org>\r\n",
                "mailing list",
            ),
            ("anna@remote.org", "Precedence: Bulk\r\n", "Precedence"),
            ("anna@remote.org", "Precedence: junk\r\n", "Precedence"),
        ];
        for (sender, extra, needle) in cases {
            let why = refusal(sender, me, &with(extra)).unwrap_or("");
            assert!(why.contains(needle), "{sender} {extra:?}: {why:?}");
        }
        assert_eq!(
            refusal("anna@remote.org", me, &with("Auto-Submitted: no\r\n")),
            None
        );
        assert_eq!(
            refusal("anna@remote.org", me, &with("Precedence: first-class\r\n")),
            None
        );
    }

    #[test]
    fn reply_headers_and_body() {
        let reply = AutoReply {
            account: AccountId(7),
            address: "bob@example.com".into(),
            text: "I have left.\nWrite to amy@example.com — thanks.".into(),
        };
        let now = time::macros::datetime!(2026-11-27 08:05:09 UTC);
        let m = build(
            &reply,
            "anna@remote.org",
            ORIGINAL,
            "mx.example.com",
            now,
            "u1",
        );
        let m = String::from_utf8(m).unwrap();
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        for line in [
            "From: <bob@example.com>",
            "To: <anna@remote.org>",
            "Subject: Auto: Offer for the spring",
            "Auto-Submitted: auto-replied",
            "In-Reply-To: <m1@remote.org>",
            "References: <m0@remote.org> <m1@remote.org>",
            "Message-ID: <auto-u1@mx.example.com>",
            "Date: Fri, 27 Nov 2026 08:05:09 +0000",
            "Content-Transfer-Encoding: 8bit",
        ] {
            assert!(
                head.split("\r\n").any(|l| l == line),
                "{line} missing in\n{head}"
            );
        }
        assert_eq!(
            body,
            "I have left.\r\nWrite to amy@example.com — thanks.\r\n"
        );
        assert!(!m.replace("\r\n", "").contains('\n'), "bare LF");
        // No Message-ID: no In-Reply-To; an "Auto:" subject is not doubled.
        let plain = b"Subject: auto: hello\r\n";
        let m = String::from_utf8(build(&reply, "a@b.c", plain, "h", now, "u2")).unwrap();
        assert!(m.contains("Subject: auto: hello\r\n") && !m.contains("In-Reply-To"));
        assert!(m.contains("Content-Transfer-Encoding: 8bit"));
    }
}
