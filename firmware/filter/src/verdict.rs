//! The policy decision for a checked message, kept free of I/O so that it
//! can be tested from a table: what DMARC said, what the domain asked for,
//! and what the operator configured.

use pochta_config::{Action, Auth, TempErrorAction};

/// A check's result in RFC 8601 §2.7 terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The identity is authenticated.
    Pass,
    /// It is not.
    Fail,
    /// SPF `~all`: probably not.
    SoftFail,
    /// No statement either way.
    Neutral,
    /// Nothing to check (no record, no signature).
    None,
    /// DNS failed; trying later may give an answer.
    TempError,
    /// The record or signature is broken.
    PermError,
}

impl Outcome {
    /// The RFC 8601 keyword.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
        }
    }
}

/// What the sender's domain asks receivers to do with failing mail
/// (RFC 7489 §6.3 `p=`/`sp=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    /// `p=none`, or no record.
    None,
    /// `p=quarantine`.
    Quarantine,
    /// `p=reject`.
    Reject,
}

/// What happens to the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store it in the recipients' INBOX.
    Inbox,
    /// Store it in the recipients' Junk folder.
    Junk,
    /// Refuse it with `550 5.7.1` and this text.
    Reject(String),
    /// Answer `451 4.4.3` with this text: DNS failed and the operator
    /// prefers a retry to an unchecked message.
    Defer(String),
}

impl Decision {
    /// A short word for the mail log.
    pub fn name(&self) -> &'static str {
        match self {
            Decision::Inbox => "inbox",
            Decision::Junk => "junk",
            Decision::Reject(_) => "reject",
            Decision::Defer(_) => "defer",
        }
    }
}

/// Everything the checks found, and what to do about it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// SPF of the EHLO name.
    pub spf_helo: Outcome,
    /// SPF of the MAIL FROM domain.
    pub spf_mail_from: Outcome,
    /// DKIM: the best result over all signatures.
    pub dkim: Outcome,
    /// ARC chain validation.
    pub arc: Outcome,
    /// DMARC of the `From:` domain.
    pub dmarc: Outcome,
    /// The policy the `From:` domain publishes.
    pub dmarc_policy: DmarcPolicy,
    /// The `From:` domain (RFC 5322), for the log.
    pub from_domain: String,
    /// The `Authentication-Results:` header, CRLF-terminated.
    pub header: String,
    /// What to do.
    pub decision: Decision,
}

/// Applies the configured policy to the check results.
pub fn decide(
    dmarc: Outcome,
    policy: DmarcPolicy,
    from_domain: &str,
    any_temperror: bool,
    config: &Auth,
) -> Decision {
    if dmarc == Outcome::Fail {
        let action = match policy {
            DmarcPolicy::Reject => config.dmarc_reject,
            DmarcPolicy::Quarantine => config.dmarc_quarantine,
            DmarcPolicy::None => Action::None,
        };
        let asked = match policy {
            DmarcPolicy::Reject => "reject",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::None => "none",
        };
        return match action {
            Action::Reject => Decision::Reject(format!(
                "Message rejected: it fails DMARC for {from_domain}, whose policy is p={asked} \
                 (not authenticated by SPF or DKIM aligned with the From: domain)"
            )),
            Action::Quarantine => Decision::Junk,
            Action::None => Decision::Inbox,
        };
    }
    // A DMARC pass stands even if some other lookup failed.
    if dmarc != Outcome::Pass && any_temperror && config.temperror == TempErrorAction::Defer {
        return Decision::Defer(
            "Cannot check the sender's authentication now (DNS failure), try again later".into(),
        );
    }
    Decision::Inbox
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let default = Auth::default();
        let lenient = Auth {
            dmarc_reject: Action::Quarantine,
            dmarc_quarantine: Action::None,
            temperror: TempErrorAction::Defer,
            ..Auth::default()
        };
        use DmarcPolicy as P;
        use Outcome as O;
        let cases: &[(O, P, bool, &Auth, &str)] = &[
            (O::Pass, P::Reject, false, &default, "inbox"),
            (O::Fail, P::Reject, false, &default, "reject"),
            (O::Fail, P::Quarantine, false, &default, "junk"),
            (O::Fail, P::None, false, &default, "inbox"),
            (O::None, P::None, false, &default, "inbox"),
            (O::TempError, P::None, true, &default, "inbox"),
            (O::Fail, P::Reject, false, &lenient, "junk"),
            (O::Fail, P::Quarantine, false, &lenient, "inbox"),
            (O::TempError, P::None, true, &lenient, "defer"),
            (O::Pass, P::Reject, true, &lenient, "inbox"),
        ];
        for (dmarc, policy, temp, config, want) in cases {
            let d = decide(*dmarc, *policy, "a.test", *temp, config);
            assert_eq!(d.name(), *want, "{dmarc:?} {policy:?} temperror={temp}");
        }
        match decide(O::Fail, P::Reject, "a.test", false, &default) {
            Decision::Reject(text) => assert!(text.contains("a.test") && text.contains("p=reject")),
            other => panic!("{other:?}"),
        }
    }
}

/// Removes `Authentication-Results` fields that claim to come from this
/// server (`authserv_id`) from a message's header section: only this
/// server may say what it checked (RFC 8601 §5). Fields of other servers
/// and the body are kept byte for byte.
pub fn strip_own_results<'m>(message: &'m [u8], authserv_id: &str) -> std::borrow::Cow<'m, [u8]> {
    const NAME: &[u8] = b"authentication-results:";
    let mut fields = Vec::new();
    let mut pos = 0;
    // Split the header section into fields (a field continues on lines
    // that start with white space); stop at the empty line.
    while pos < message.len() {
        let line_end = |from: usize| {
            message[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(message.len(), |i| from + i + 1)
        };
        if message[pos..].starts_with(b"\r\n") || message[pos..].starts_with(b"\n") {
            break;
        }
        let start = pos;
        pos = line_end(pos);
        while pos < message.len() && matches!(message[pos], b' ' | b'\t') {
            pos = line_end(pos);
        }
        fields.push(start..pos);
    }
    let forged = |r: &std::ops::Range<usize>| {
        let field = &message[r.clone()];
        if field.len() < NAME.len() || !field[..NAME.len()].eq_ignore_ascii_case(NAME) {
            return false;
        }
        let value = String::from_utf8_lossy(&field[NAME.len()..]);
        let id = value
            .split(';')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        id.eq_ignore_ascii_case(authserv_id)
    };
    if !fields.iter().any(forged) {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    let mut last = 0;
    for r in fields.iter().filter(|r| forged(r)) {
        out.extend_from_slice(&message[last..r.start]);
        last = r.end;
    }
    out.extend_from_slice(&message[last..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod strip_tests {
    use super::strip_own_results;

    #[test]
    fn only_our_own_results_go() {
        let m = b"Received: from x\r\n\tby mx.test\r\n\
Authentication-Results: MX.test;\r\n\tdmarc=pass header.from=bank.test\r\n\
Authentication-Results: other.test; spf=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.test; body text stays\r\n";
        let out = strip_own_results(m, "mx.test");
        let want = b"Received: from x\r\n\tby mx.test\r\n\
Authentication-Results: other.test; spf=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.test; body text stays\r\n";
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
        let clean = b"Subject: x\r\n\r\nbody\r\n";
        assert!(matches!(
            strip_own_results(clean, "mx.test"),
            std::borrow::Cow::Borrowed(_)
        ));
        // A look-alike id is not ours.
        let m = b"Authentication-Results: mx.test.evil; x=y\r\n\r\n";
        assert_eq!(&strip_own_results(m, "mx.test")[..], &m[..]);
    }
}
