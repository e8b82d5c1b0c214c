//! Delivery status notifications (RFC 3464): a `multipart/report` with a
//! human part, a `message/delivery-status` part, and the original message
//! (RET=FULL) or its header (otherwise).

use std::fmt::Write as _;

use super::Failure;

/// Why a DSN is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnKind {
    /// Delivery failed for good, or the message expired (`Action: failed`).
    Failed,
    /// Still being retried (`Action: delayed`) until the given time.
    Delayed {
        /// Seconds since the epoch.
        retry_until: i64,
    },
}

/// One recipient the DSN reports on.
pub struct DsnRecipient<'a> {
    /// The forward-path that failed.
    pub recipient: &'a str,
    /// ORCPT address (type rfc822) as given at submission, if any.
    pub orcpt: Option<&'a str>,
    /// What happened.
    pub failure: &'a Failure,
}

/// The report's envelope and content.
pub struct Report<'a> {
    /// This host, the Reporting-MTA.
    pub hostname: &'a str,
    /// Failed or delayed.
    pub kind: DsnKind,
    /// The original sender, who gets the DSN.
    pub sender: &'a str,
    /// DSN ENVID of the original.
    pub envid: Option<&'a str>,
    /// When the original was queued (seconds since the epoch).
    pub arrival: i64,
    /// The recipients.
    pub recipients: &'a [DsnRecipient<'a>],
    /// The original message, whole.
    pub original: &'a [u8],
    /// Return the whole message (RET=FULL) rather than its header.
    pub full: bool,
}

fn date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// The header of a message: everything before the first empty line.
pub fn header_of(message: &[u8]) -> &[u8] {
    for (i, w) in message.windows(2).enumerate() {
        if w == b"\n\n" {
            return &message[..=i];
        }
        if i + 4 <= message.len() && &message[i..i + 4] == b"\r\n\r\n" {
            return &message[..i + 2];
        }
    }
    message
}

impl Report<'_> {
    /// The DSN as a complete message, CRLF line ends.
    pub fn build(&self, now: i64, unique: &str) -> Vec<u8> {
        let boundary = format!("=_pochta-dsn-{unique}");
        let (subject, action) = match self.kind {
            DsnKind::Failed => ("Undelivered Mail Returned to Sender", "failed"),
            DsnKind::Delayed { .. } => ("Delayed Mail (still being retried)", "delayed"),
        };
        let mut m = String::new();
        let _ = write!(
            m,
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <dsn-{unique}@{host}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"{boundary}\"\r\n\
             \r\n\
             This is a delivery status notification (RFC 3464).\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\
             \r\n",
            host = self.hostname,
            to = self.sender,
            date = date(now),
        );
        match self.kind {
            DsnKind::Failed => m.push_str(
                "Your message could not be delivered to one or more recipients.\r\n\
                 It has been returned below.\r\n\r\n",
            ),
            DsnKind::Delayed { retry_until } => {
                let _ = write!(
                    m,
                    "Your message has not been delivered yet to one or more recipients.\r\n\
                     Delivery will be retried until {}; you need not send it again.\r\n\r\n",
                    date(retry_until)
                );
            }
        }
        for r in self.recipients {
            let _ = write!(m, "<{}>: {}\r\n", r.recipient, one_line(&r.failure.text));
        }
        let _ = write!(
            m,
            "\r\n--{boundary}\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; {host}\r\n",
            host = self.hostname
        );
        if let Some(envid) = self.envid {
            let _ = write!(m, "Original-Envelope-Id: {}\r\n", one_line(envid));
        }
        let _ = write!(m, "Arrival-Date: {}\r\n", date(self.arrival));
        for r in self.recipients {
            m.push_str("\r\n");
            if let Some(orcpt) = r.orcpt {
                let _ = write!(m, "Original-Recipient: rfc822; {}\r\n", one_line(orcpt));
            }
            let _ = write!(
                m,
                "Final-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {}\r\n",
                r.recipient,
                r.failure.status()
            );
            if let Some(host) = &r.failure.remote_host {
                let _ = write!(m, "Remote-MTA: dns; {host}\r\n");
            }
            let diagnostic = if r.failure.remote_host.is_some() && r.failure.remote {
                "smtp"
            } else {
                "x-pochta"
            };
            let _ = write!(
                m,
                "Diagnostic-Code: {diagnostic}; {}\r\nLast-Attempt-Date: {}\r\n",
                one_line(&r.failure.text),
                date(now)
            );
            if let DsnKind::Delayed { retry_until } = self.kind {
                let _ = write!(m, "Will-Retry-Until: {}\r\n", date(retry_until));
            }
        }
        let (ctype, body) = if self.full {
            ("message/rfc822", self.original)
        } else {
            ("text/rfc822-headers", header_of(self.original))
        };
        let _ = write!(m, "\r\n--{boundary}\r\nContent-Type: {ctype}\r\n\r\n");
        let mut out = m.into_bytes();
        out.extend_from_slice(body);
        if !body.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

/// Text safe on one header line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_the_three_parts() {
        let failure = Failure::remote_permanent("550 5.1.1 no such user (after RCPT TO)".into())
            .at("mx.b.test");
        let recipients = [DsnRecipient {
            recipient: "bob@b.test",
            orcpt: Some("Bob@B.test"),
            failure: &failure,
        }];
        let original = b"Subject: hi\r\nFrom: a@a.test\r\n\r\nsecret body\r\n";
        let report = Report {
            hostname: "mx.a.test",
            kind: DsnKind::Failed,
            sender: "a@a.test",
            envid: Some("E1"),
            arrival: 0,
            recipients: &recipients,
            original,
            full: false,
        };
        let text = String::from_utf8(report.build(100, "u1")).unwrap();
        assert!(text.contains("multipart/report; report-type=delivery-status"));
        assert!(text.contains(
            "Final-Recipient: rfc822; bob@b.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ));
        assert!(text.contains("Remote-MTA: dns; mx.b.test"));
        assert!(text.contains("Original-Recipient: rfc822; Bob@B.test\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        assert!(text.contains("Original-Envelope-Id: E1"));
        assert!(text.contains("text/rfc822-headers\r\n\r\nSubject: hi\r\nFrom: a@a.test\r\n"));
        assert!(!text.contains("secret body"));
        assert!(text.ends_with("--=_pochta-dsn-u1--\r\n"));
        let full = Report {
            full: true,
            ..report
        };
        assert!(String::from_utf8(full.build(100, "u2"))
            .unwrap()
            .contains("secret body"));
    }

    #[test]
    fn header_ends_at_the_empty_line() {
        assert_eq!(header_of(b"A: 1\r\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_of(b"A: 1\n\nbody"), b"A: 1\n");
        assert_eq!(header_of(b"A: 1\r\n"), b"A: 1\r\n");
    }
}
