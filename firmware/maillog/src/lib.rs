//! The operator's mail log: one line per accepted, rejected, delivered or
//! queued message and per failed login, in `log/mail.log` of the data folder
//! (chasquid's `maillog`). Debugging detail goes to `tracing` instead.
//!
//! Lines are `key=value` pairs after a UTC timestamp, so they can be read by
//! a person and searched with grep. Passwords and AUTH payloads are never
//! passed here, so they cannot be logged.
//!
//! Depends on nothing of Pochta's own.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

/// What the inbound checks found, for [`MailLog::authentication`].
pub struct AuthResults<'a> {
    /// The RFC 5322 `From:` domain.
    pub from_domain: &'a str,
    /// SPF of the EHLO name.
    pub spf_helo: &'a str,
    /// SPF of the MAIL FROM domain.
    pub spf_mail_from: &'a str,
    /// Best DKIM result.
    pub dkim: &'a str,
    /// ARC chain.
    pub arc: &'a str,
    /// DMARC.
    pub dmarc: &'a str,
    /// The domain's published DMARC policy.
    pub policy: &'a str,
    /// What was done.
    pub action: &'a str,
}

/// Appends events to the mail log.
pub struct MailLog {
    file: Option<Mutex<File>>,
}

impl MailLog {
    /// Opens (creating) the log file for appending.
    pub fn open(path: &Path) -> std::io::Result<MailLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(MailLog {
            file: Some(Mutex::new(file)),
        })
    }

    /// A log that only goes to `tracing` (tests, CLI).
    pub fn discard() -> MailLog {
        MailLog { file: None }
    }

    /// A message was accepted (`250` sent) for the given recipients.
    pub fn accepted(
        &self,
        session: &str,
        peer: SocketAddr,
        from: &str,
        rcpts: &[String],
        size: u64,
        id: &str,
    ) {
        self.line(
            "accepted",
            session,
            &[
                ("peer", &peer.to_string()),
                ("from", &format!("<{from}>")),
                (
                    "to",
                    &rcpts
                        .iter()
                        .map(|r| format!("<{r}>"))
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                ("size", &size.to_string()),
                ("id", id),
            ],
        );
    }

    /// A command or message was refused; `reply` is what the client got.
    pub fn rejected(
        &self,
        session: &str,
        peer: SocketAddr,
        stage: &str,
        subject: &str,
        reply: &str,
    ) {
        self.line(
            "rejected",
            session,
            &[
                ("peer", &peer.to_string()),
                ("stage", stage),
                ("subject", subject),
                ("reply", reply),
            ],
        );
    }

    /// A message was stored in a local mailbox.
    pub fn delivered(&self, session: &str, to: &str, folder: &str, uid: u32, id: &str) {
        self.line(
            "delivered",
            session,
            &[
                ("to", &format!("<{to}>")),
                ("folder", folder),
                ("uid", &uid.to_string()),
                ("id", id),
            ],
        );
    }

    /// A message was put in the outbound queue.
    pub fn queued(&self, session: &str, to: &str, queue_id: i64, id: &str) {
        self.line(
            "queued",
            session,
            &[
                ("to", &format!("<{to}>")),
                ("queue_id", &queue_id.to_string()),
                ("id", id),
            ],
        );
    }

    /// Inbound authentication results of a message and what was done with
    /// it (`inbox`, `junk`, `reject`, `defer`). Each result is an RFC 8601
    /// keyword such as `pass` or `temperror`.
    pub fn authentication(&self, session: &str, results: &AuthResults<'_>) {
        self.line(
            "auth_checked",
            session,
            &[
                ("from_domain", results.from_domain),
                ("spf_helo", results.spf_helo),
                ("spf", results.spf_mail_from),
                ("dkim", results.dkim),
                ("arc", results.arc),
                ("dmarc", results.dmarc),
                ("policy", results.policy),
                ("action", results.action),
            ],
        );
    }

    /// Alert: an account hit its sending limit (a stolen password is the
    /// usual reason when it was not expected).
    pub fn send_limit_reached(&self, session: &str, peer: SocketAddr, account: &str, limit: u32) {
        self.line(
            "ALERT send_limit_reached",
            session,
            &[
                ("peer", &peer.to_string()),
                ("account", account),
                ("limit", &format!("{limit}/24h")),
            ],
        );
    }

    /// A recipient domain's MTA-STS policy in testing mode would have
    /// refused a delivery that went ahead (RFC 8461 §5).
    pub fn mta_sts_testing_failure(&self, domain: &str, host: &str, why: &str) {
        self.line(
            "mta_sts_testing_failure",
            "queue",
            &[("domain", domain), ("relay", host), ("why", why)],
        );
    }

    /// The outbound queue delivered to a remote server. `tls` says whether
    /// TLS was used and the certificate verified; `reply` is the remote's.
    pub fn relayed(&self, queue_id: i64, to: &str, host: &str, tls: &str, reply: &str) {
        self.line(
            "delivered",
            "queue",
            &[
                ("queue_id", &queue_id.to_string()),
                ("to", &format!("<{to}>")),
                ("relay", host),
                ("tls", tls),
                ("reply", reply),
            ],
        );
    }

    /// An attempt failed transiently; the next one is at `next` (epoch seconds).
    pub fn deferred(&self, queue_id: i64, to: &str, reason: &str, next: i64) {
        let in_secs = next - time::OffsetDateTime::now_utc().unix_timestamp();
        self.line(
            "deferred",
            "queue",
            &[
                ("queue_id", &queue_id.to_string()),
                ("to", &format!("<{to}>")),
                ("reason", reason),
                ("next_attempt_in", &format!("{in_secs}s")),
            ],
        );
    }

    /// Delivery failed for good.
    pub fn bounced(&self, queue_id: i64, to: &str, reason: &str) {
        self.line(
            "bounced",
            "queue",
            &[
                ("queue_id", &queue_id.to_string()),
                ("to", &format!("<{to}>")),
                ("reason", reason),
            ],
        );
    }

    /// The queue lifetime ran out.
    pub fn expired(&self, queue_id: i64, to: &str, last_error: &str) {
        self.line(
            "expired",
            "queue",
            &[
                ("queue_id", &queue_id.to_string()),
                ("to", &format!("<{to}>")),
                ("last_error", last_error),
            ],
        );
    }

    /// A DSN (`failed` or `delayed`) about the listed queue rows went to the sender.
    pub fn dsn_sent(&self, to: &str, action: &str, about: &str) {
        self.line(
            "dsn_sent",
            "queue",
            &[
                ("to", &format!("<{to}>")),
                ("action", action),
                ("queue_ids", about),
            ],
        );
    }

    /// A login failed. `user` is the name tried, never the password.
    pub fn auth_failed(&self, session: &str, peer: SocketAddr, service: &str, user: &str) {
        self.line(
            "auth_failed",
            session,
            &[
                ("peer", &peer.to_string()),
                ("service", service),
                ("user", user),
            ],
        );
    }

    /// A login succeeded.
    pub fn auth_ok(&self, session: &str, peer: SocketAddr, service: &str, user: &str) {
        self.line(
            "auth_ok",
            session,
            &[
                ("peer", &peer.to_string()),
                ("service", service),
                ("user", user),
            ],
        );
    }

    /// The admin page refused a client because of its source address.
    pub fn admin_refused(&self, peer: SocketAddr, path: &str) {
        self.line(
            "admin_refused",
            "-",
            &[
                ("peer", &peer.to_string()),
                ("path", path),
                ("reason", "source address not allowed"),
            ],
        );
    }

    /// A login was refused, with why (e.g. the account is disabled, or a
    /// two-factor account tried its account password). `user` is the name
    /// tried, never the password.
    pub fn auth_refused(
        &self,
        session: &str,
        peer: SocketAddr,
        service: &str,
        user: &str,
        reason: &str,
    ) {
        self.line(
            "auth_failed",
            session,
            &[
                ("peer", &peer.to_string()),
                ("service", service),
                ("user", user),
                ("reason", reason),
            ],
        );
    }

    /// A login succeeded with the named credential (e.g. an app password).
    pub fn auth_ok_via(
        &self,
        session: &str,
        peer: SocketAddr,
        service: &str,
        user: &str,
        via: &str,
    ) {
        self.line(
            "auth_ok",
            session,
            &[
                ("peer", &peer.to_string()),
                ("service", service),
                ("user", user),
                ("via", via),
            ],
        );
    }

    /// An auto-reply of a disabled account (RFC 3834) was not sent, and why.
    pub fn auto_reply_skipped(&self, session: &str, account: &str, to: &str, why: &str) {
        self.line(
            "auto_reply_skipped",
            session,
            &[
                ("account", account),
                ("to", &format!("<{to}>")),
                ("why", why),
            ],
        );
    }

    fn line(&self, event: &str, session: &str, fields: &[(&str, &str)]) {
        let now = time::OffsetDateTime::now_utc();
        let mut line = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z {event} session={session}",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        for (k, v) in fields {
            let _ = write!(line, " {k}={}", quote(v));
        }
        tracing::info!(target: "maillog", "{line}");
        line.push('\n');
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = f.write_all(line.as_bytes()) {
                tracing::error!(error = %e, "cannot write the mail log");
            }
        }
    }
}

/// Quotes a value that has spaces or quotes; strips control characters so a
/// client cannot forge log lines.
fn quote(v: &str) -> String {
    let clean: String = v
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if clean.is_empty() || clean.contains([' ', '"', '=']) {
        format!("\"{}\"", clean.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_control_characters_removed() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("evil\r\n12:00 accepted"), "\"evil??12:00 accepted\"");
        assert_eq!(quote(""), "\"\"");
    }

    #[test]
    fn lines_are_appended() {
        let dir = std::env::temp_dir().join(format!("maillog-test-{}", std::process::id()));
        let path = dir.join("mail.log");
        let log = MailLog::open(&path).unwrap();
        log.auth_failed("s1", "127.0.0.1:5".parse().unwrap(), "submission", "bob@x");
        log.delivered("s1", "bob@x", "INBOX", 7, "abc");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0]
            .contains(" auth_failed session=s1 peer=127.0.0.1:5 service=submission user=bob@x"));
        assert!(lines[1].ends_with("delivered session=s1 to=<bob@x> folder=INBOX uid=7 id=abc"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
