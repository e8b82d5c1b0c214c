//! The operator's mail log: one line per accepted, rejected, delivered or
//! queued message and per failed login, in `log/mail.log` of the data folder
//! (chasquid's `maillog`). Debugging detail goes to `tracing` instead.
//!
//! Lines are `key=value` pairs after a UTC timestamp, so they can be read by
//! a person and searched with grep. Passwords and AUTH payloads are never
//! passed here, so they cannot be logged.
//!
//! Layout: [`MailLog`] writes; `read` parses lines back ([`Entry`]) and
//! reads the file from its end ([`Backwards`]); `counts` keeps today's
//! numbers for the dashboard ([`Today`]).
//!
//! Depends on nothing of Pochta's own.

mod counts;
mod read;

pub use counts::{Today, SEED_BUDGET};
pub use read::{Backwards, Entry};

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// A message accepted over SMTP, for [`MailLog::accepted`].
pub struct Accepted<'a> {
    /// The client.
    pub peer: SocketAddr,
    /// The reverse-path.
    pub from: &'a str,
    /// The forward-paths.
    pub rcpts: &'a [String],
    /// Bytes received.
    pub size: u64,
    /// Pochta's id of the message (in the `250` reply).
    pub id: &'a str,
    /// The `Message-ID:` header (RFC 5322 §3.6.4), when it has one: what a
    /// person asking "where is my mail?" can find in their copy.
    pub message_id: Option<&'a str>,
}

/// Appends events to the mail log.
pub struct MailLog {
    file: Option<Mutex<File>>,
    path: Option<PathBuf>,
    today: counts::DayCounts,
}

impl MailLog {
    /// Opens (creating) the log file for appending.
    pub fn open(path: &Path) -> std::io::Result<MailLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let today = counts::DayCounts::default();
        today.seed(path, &date(time::OffsetDateTime::now_utc()));
        Ok(MailLog {
            file: Some(Mutex::new(file)),
            path: Some(path.to_owned()),
            today,
        })
    }

    /// A log that only goes to `tracing` (tests, CLI).
    pub fn discard() -> MailLog {
        MailLog {
            file: None,
            path: None,
            today: counts::DayCounts::default(),
        }
    }

    /// The file written, for reading it back (`None` for [`MailLog::discard`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Events counted today (UTC), including those written before a restart.
    pub fn today(&self) -> Today {
        self.today.on(&date(time::OffsetDateTime::now_utc()))
    }

    /// A message was accepted (`250` sent) for the given recipients.
    pub fn accepted(&self, session: &str, m: &Accepted<'_>) {
        let mut fields = vec![
            ("peer", m.peer.to_string()),
            ("from", format!("<{}>", m.from)),
            (
                "to",
                m.rcpts
                    .iter()
                    .map(|r| format!("<{r}>"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("size", m.size.to_string()),
            ("id", m.id.to_owned()),
        ];
        if let Some(message_id) = m.message_id {
            fields.push(("msgid", message_id.to_owned()));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.line("accepted", session, &fields);
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

    /// The box restarted because the hardware watchdog was not fed: the
    /// software hung (or was frozen) before this start.
    pub fn watchdog_reset(&self, device: &str) {
        self.line(
            "watchdog_reset",
            "-",
            &[
                ("device", device),
                ("what", "the last restart was forced by the watchdog"),
            ],
        );
    }

    /// The system clock was set: from a time server (`source` its name) or
    /// forward to the last time saved before a restart (`source` is
    /// `saved`). `old` and `new` in seconds since the epoch.
    pub fn clock_set(&self, source: &str, old: i64, new: i64) {
        self.line(
            "clock_set",
            "system",
            &[
                ("source", source),
                ("old", &stamp(old)),
                ("new", &stamp(new)),
                ("step", &format!("{:+}s", new - old)),
            ],
        );
    }

    /// An alert was raised (or raised again) or cleared.
    pub fn alert(&self, key: &str, state: &str, title: &str) {
        self.line(
            "alert",
            "-",
            &[("key", key), ("state", state), ("title", title)],
        );
    }

    /// A service stopped answering (or its task ended) and was restarted.
    pub fn service_restarted(&self, service: &str, why: &str) {
        self.line(
            "service_restarted",
            "-",
            &[("service", service), ("why", why)],
        );
    }

    /// A backup was written and checked: `snapshot` in `destination`, with
    /// `added` bytes new to it.
    pub fn backup_done(&self, destination: &str, snapshot: &str, added: u64, secs: u64) {
        self.line(
            "backup_done",
            "backup",
            &[
                ("destination", destination),
                ("snapshot", snapshot),
                ("added", &added.to_string()),
                ("secs", &secs.to_string()),
            ],
        );
    }

    /// A backup (or its pruning) did not complete; nothing of it counts.
    pub fn backup_failed(&self, destination: &str, why: &str) {
        self.line(
            "backup_failed",
            "backup",
            &[("destination", destination), ("why", why)],
        );
    }

    /// A test restore of `snapshot` ended: `result` is `ok` or what it found.
    pub fn backup_verified(&self, destination: &str, snapshot: &str, result: &str) {
        self.line(
            "backup_verified",
            "backup",
            &[
                ("destination", destination),
                ("snapshot", snapshot),
                ("result", result),
            ],
        );
    }

    fn line(&self, event: &str, session: &str, fields: &[(&str, &str)]) {
        let now = time::OffsetDateTime::now_utc();
        let today = date(now);
        let relay = fields.iter().any(|(k, _)| *k == "relay");
        self.today.note(&today, event, relay);
        let mut line = format!(
            "{today}T{:02}:{:02}:{:02}Z {event} session={session}",
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

/// `YYYY-MM-DD` of a UTC time.
/// A moment as `2026-12-03T11:40:53Z`; the bare number when out of range.
fn stamp(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{}T{:02}:{:02}:{:02}Z",
            date(t),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

fn date(t: time::OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), t.month() as u8, t.day())
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

    #[test]
    fn todays_counts_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log").join("mail.log");
        let peer: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let rcpts = ["a@x".to_string(), "b@y".to_string()];
        {
            let log = MailLog::open(&path).unwrap();
            log.accepted(
                "s1",
                &Accepted {
                    peer,
                    from: "f@z",
                    rcpts: &rcpts,
                    size: 10,
                    id: "abc",
                    message_id: Some("<m1@z>"),
                },
            );
            log.delivered("s1", "a@x", "INBOX", 1, "abc");
            log.relayed(3, "b@y", "mx.y", "verified", "250 ok");
            log.rejected("s2", peer, "rcpt", "<c@x>", "550 no");
            assert_eq!(log.today().event("accepted"), 1);
        }
        // Yesterday's lines (written before today's in a real log) do not count.
        let text = std::fs::read_to_string(&path).unwrap();
        let old = "2000-01-01T00:00:00Z accepted session=old id=x\n";
        std::fs::write(&path, format!("{old}{text}")).unwrap();
        let log = MailLog::open(&path).unwrap();
        let today = log.today();
        assert_eq!(today.event("accepted"), 1);
        assert_eq!(today.event("rejected"), 1);
        assert_eq!(today.event("delivered"), 2);
        assert_eq!((today.delivered_local, today.relayed), (1, 1));
        log.rejected("s3", peer, "mail", "<d@x>", "550 no");
        assert_eq!(log.today().event("rejected"), 2);
        let last = std::fs::read_to_string(&path).unwrap();
        let first = Entry::parse(last.lines().nth(1).unwrap()).unwrap();
        assert_eq!(first.field("msgid"), Some("<m1@z>"));
        assert_eq!(first.field("to"), Some("<a@x>,<b@y>"));
    }
}
