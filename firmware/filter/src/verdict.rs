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
