//! Checks of mail arriving on the MX service: SPF for the EHLO name and the
//! MAIL FROM domain (RFC 7208) while the envelope arrives, then DKIM
//! (RFC 6376), ARC (RFC 8617) and DMARC (RFC 7489) once the message is in,
//! summed up in an `Authentication-Results` header (RFC 8601) and a
//! [`Decision`].

use std::net::IpAddr;
use std::time::Duration;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput,
    DmarcResult, MessageAuthenticator, SpfOutput, SpfResult,
};
use pochta_config::{Auth, Dns};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::cache::Caches;
use crate::verdict::{decide, DmarcPolicy, Outcome, Verdict};
use crate::FilterError;

/// SPF results of one transaction, taken at MAIL FROM.
#[derive(Debug, Clone)]
pub struct SpfChecks {
    helo: SpfOutput,
    mail_from: SpfOutput,
}

impl SpfChecks {
    /// SPF of the EHLO name.
    pub fn helo(&self) -> Outcome {
        spf_outcome(self.helo.result())
    }

    /// SPF of the MAIL FROM domain.
    pub fn mail_from(&self) -> Outcome {
        spf_outcome(self.mail_from.result())
    }
}

/// The inbound checker, shared by all MX sessions.
pub struct Inbound {
    authenticator: MessageAuthenticator,
    caches: Caches,
    hostname: String,
    config: Auth,
    permits: Semaphore,
}

impl Inbound {
    /// A checker asking the `[dns]` servers (the system's when none are
    /// configured). `hostname` is the authserv-id of the header.
    pub fn new(dns: &Dns, config: &Auth, hostname: &str) -> Result<Inbound, FilterError> {
        let (resolver, mut opts) = if dns.servers.is_empty() {
            mail_auth::hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| FilterError::Resolver(e.to_string()))?
        } else {
            let mut servers = Vec::new();
            for addr in &dns.servers {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut server.connections {
                    c.port = addr.port();
                }
                servers.push(server);
            }
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = Duration::from_secs(dns.timeout_secs);
        opts.attempts = 1;
        // hickory's own answer cache, bounded too (it honours TTLs).
        opts.cache_size = config.dns_cache_entries as u64;
        let authenticator = MessageAuthenticator::new(resolver, opts)
            .map_err(|e| FilterError::Resolver(e.to_string()))?;
        Ok(Inbound {
            authenticator,
            caches: Caches::new(config.dns_cache_entries),
            hostname: hostname.to_owned(),
            config: config.clone(),
            permits: Semaphore::new(config.max_concurrent_checks),
        })
    }

    /// The authserv-id of the headers this checker writes.
    pub fn authserv_id(&self) -> &str {
        &self.hostname
    }

    /// Whether checks run at all (`auth.checks`).
    pub fn enabled(&self) -> bool {
        self.config.checks
    }

    /// Waits for a turn to verify a message: `mail-auth` parses the whole
    /// message in memory, so only a few are verified at once.
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// SPF for the EHLO name and for the MAIL FROM identity (for the null
    /// sender, `postmaster@` the EHLO name; RFC 7208 §2.4).
    pub async fn spf(&self, ip: IpAddr, helo: &str, mail_from: &str) -> SpfChecks {
        let helo_result = self
            .authenticator
            .verify_spf(
                self.caches
                    .params(SpfParameters::verify_ehlo(ip, helo, &self.hostname)),
            )
            .await;
        let mail_from_result = if mail_from.is_empty() {
            helo_result.clone()
        } else {
            self.authenticator
                .verify_spf(self.caches.params(SpfParameters::verify_mail_from(
                    ip,
                    helo,
                    &self.hostname,
                    mail_from,
                )))
                .await
        };
        SpfChecks {
            helo: helo_result,
            mail_from: mail_from_result,
        }
    }

    /// DKIM, ARC and DMARC of a received message, the header, the decision.
    pub async fn check(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        spf: &SpfChecks,
        message: &[u8],
    ) -> Verdict {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            // No header section to speak of: nothing to verify.
            let t = Transaction {
                hostname: &self.hostname,
                ip,
                helo,
                mail_from,
                header_from: "",
            };
            return summarize(
                &t,
                &self.config,
                spf,
                &[],
                &ArcOutput::default(),
                &DmarcOutput::default(),
                DmarcPolicy::None,
            );
        };
        let dkim = self
            .authenticator
            .verify_dkim(self.caches.params(&parsed))
            .await;
        let arc = self
            .authenticator
            .verify_arc(self.caches.params(&parsed))
            .await;
        let mail_from_domain = match mail_from.rsplit_once('@') {
            Some((_, d)) => d,
            None => helo,
        };
        let dmarc = self
            .authenticator
            .verify_dmarc(self.caches.params(DmarcParameters::new(
                &parsed,
                &dkim,
                mail_from_domain,
                &spf.mail_from,
            )))
            .await;
        let policy = match dmarc.policy() {
            Policy::Reject => DmarcPolicy::Reject,
            Policy::Quarantine => DmarcPolicy::Quarantine,
            Policy::None | Policy::Unspecified => DmarcPolicy::None,
        };
        summarize(
            &Transaction {
                hostname: &self.hostname,
                ip,
                helo,
                mail_from,
                header_from: parsed.from(),
            },
            &self.config,
            spf,
            &dkim,
            &arc,
            &dmarc,
            policy,
        )
    }
}

/// Who sent a message, for [`summarize`].
struct Transaction<'a> {
    hostname: &'a str,
    ip: IpAddr,
    helo: &'a str,
    mail_from: &'a str,
    header_from: &'a str,
}

/// The header and the decision from the checks' outputs; no I/O.
fn summarize(
    t: &Transaction<'_>,
    config: &Auth,
    spf: &SpfChecks,
    dkim: &[DkimOutput<'_>],
    arc: &ArcOutput<'_>,
    dmarc: &DmarcOutput,
    policy: DmarcPolicy,
) -> Verdict {
    let from_domain = t
        .header_from
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let mut header = AuthenticationResults::new(t.hostname)
        .with_spf_ehlo_result(&spf.helo, t.ip, t.helo)
        .with_spf_mailfrom_result(&spf.mail_from, t.ip, t.mail_from, t.helo)
        .with_dkim_results(dkim, t.header_from)
        .with_arc_result(arc, t.ip);
    // mail-auth leaves DMARC out when the From: domain cannot be read.
    let dmarc_known = !dmarc.domain().is_empty();
    if dmarc_known {
        header = header.with_dmarc_result(dmarc);
    }
    let mut text = header.to_string();
    if dkim.is_empty() {
        text.push_str(";\r\n\tdkim=none");
    }
    if !dmarc_known {
        text.push_str(";\r\n\tdmarc=none");
    }
    let dkim_outcome = best_dkim(dkim.iter().map(|d| d.result()));
    let dmarc_outcome = dmarc_outcome(&dmarc.result());
    let any_temperror =
        [spf.mail_from(), dkim_outcome, dmarc_outcome].contains(&Outcome::TempError);
    let decision = decide(dmarc_outcome, policy, &from_domain, any_temperror, config);
    if any_temperror {
        // RFC 8601 §2.2 comment: the reader learns why it was let in.
        text.push_str(match decision {
            crate::Decision::Defer(_) => " (DNS failure: deferred)",
            _ => " (DNS failure: accepted unverified)",
        });
    }
    Verdict {
        spf_helo: spf.helo(),
        spf_mail_from: spf.mail_from(),
        dkim: dkim_outcome,
        arc: dkim_outcome_of(arc.result()),
        dmarc: dmarc_outcome,
        dmarc_policy: policy,
        from_domain,
        header: format!("Authentication-Results: {text}\r\n"),
        decision,
    }
}

fn spf_outcome(r: SpfResult) -> Outcome {
    match r {
        SpfResult::Pass => Outcome::Pass,
        SpfResult::Fail => Outcome::Fail,
        SpfResult::SoftFail => Outcome::SoftFail,
        SpfResult::Neutral => Outcome::Neutral,
        SpfResult::TempError => Outcome::TempError,
        SpfResult::PermError => Outcome::PermError,
        SpfResult::None => Outcome::None,
    }
}

fn dkim_outcome_of(r: &DkimResult) -> Outcome {
    match r {
        DkimResult::Pass => Outcome::Pass,
        DkimResult::Neutral(_) => Outcome::Neutral,
        DkimResult::Fail(_) => Outcome::Fail,
        DkimResult::PermError(_) => Outcome::PermError,
        DkimResult::TempError(_) => Outcome::TempError,
        DkimResult::None => Outcome::None,
    }
}

/// One signature passing is enough; otherwise the most telling failure.
fn best_dkim<'a>(results: impl Iterator<Item = &'a DkimResult>) -> Outcome {
    let rank = |o: Outcome| match o {
        Outcome::Pass => 0,
        Outcome::TempError => 1,
        Outcome::Fail => 2,
        Outcome::PermError => 3,
        Outcome::Neutral => 4,
        _ => 5,
    };
    results
        .map(dkim_outcome_of)
        .min_by_key(|o| rank(*o))
        .unwrap_or(Outcome::None)
}

fn dmarc_outcome(r: &DmarcResult) -> Outcome {
    match r {
        DmarcResult::Pass => Outcome::Pass,
        DmarcResult::Fail(_) => Outcome::Fail,
        DmarcResult::TempError(_) => Outcome::TempError,
        DmarcResult::PermError(_) => Outcome::PermError,
        DmarcResult::None => Outcome::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pochta_config::TempErrorAction;

    fn spf(helo: SpfResult, mail_from: SpfResult) -> SpfChecks {
        SpfChecks {
            helo: SpfOutput::new("client.test".into()).with_result(helo),
            mail_from: SpfOutput::new("a.test".into()).with_result(mail_from),
        }
    }

    fn summary(
        config: &Auth,
        spf: &SpfChecks,
        dkim: &[DkimOutput<'_>],
        dmarc: &DmarcOutput,
        policy: DmarcPolicy,
    ) -> Verdict {
        let t = Transaction {
            hostname: "mx.example.net",
            ip: "192.0.2.9".parse().unwrap(),
            helo: "client.test",
            mail_from: "ceo@a.test",
            header_from: "ceo@a.test",
        };
        summarize(&t, config, spf, dkim, &ArcOutput::default(), dmarc, policy)
    }

    #[test]
    fn header_names_every_method_and_the_authserv_id() {
        let dmarc = DmarcOutput::new("a.test".into())
            .with_spf_result(DmarcResult::Pass)
            .with_dkim_result(DmarcResult::Pass);
        let v = summary(
            &Auth::default(),
            &spf(SpfResult::None, SpfResult::Pass),
            &[DkimOutput::pass()],
            &dmarc,
            DmarcPolicy::Reject,
        );
        let h = &v.header;
        assert!(
            h.starts_with("Authentication-Results: mx.example.net;\r\n\t"),
            "{h}"
        );
        assert!(h.ends_with("\r\n") && !h.ends_with("\r\n\r\n"), "{h}");
        for needle in [
            "spf=none",
            "smtp.helo=client.test",
            "spf=pass",
            "smtp.mailfrom=ceo@a.test",
            "dkim=pass",
            "arc=none",
            "dmarc=pass header.from=a.test",
        ] {
            assert!(h.contains(needle), "{needle:?} not in {h}");
        }
        // Every line but the first is a folded continuation.
        for line in h.trim_end().split("\r\n").skip(1) {
            assert!(line.starts_with('\t'), "{line:?}");
        }
        assert_eq!(v.decision, crate::Decision::Inbox);
    }

    #[test]
    fn no_signature_and_no_from_domain_say_none() {
        let v = summary(
            &Auth::default(),
            &spf(SpfResult::Fail, SpfResult::Fail),
            &[],
            &DmarcOutput::default(),
            DmarcPolicy::None,
        );
        assert!(v.header.contains("dkim=none"), "{}", v.header);
        assert!(v.header.contains("dmarc=none"), "{}", v.header);
        assert_eq!(v.spf_mail_from, Outcome::Fail);
    }

    #[test]
    fn dmarc_failure_and_dns_failure() {
        let fail = DmarcOutput::new("a.test".into())
            .with_spf_result(DmarcResult::Fail(mail_auth::Error::NotAligned))
            .with_dkim_result(DmarcResult::None);
        let v = summary(
            &Auth::default(),
            &spf(SpfResult::None, SpfResult::Fail),
            &[],
            &fail,
            DmarcPolicy::Reject,
        );
        assert!(matches!(v.decision, crate::Decision::Reject(_)));
        assert!(v.header.contains("dmarc=fail"), "{}", v.header);

        let dns = mail_auth::Error::Dns(mail_auth::DnsError::Resolver("timeout".into()));
        let temp = DmarcOutput::new("a.test".into())
            .with_spf_result(DmarcResult::TempError(dns.clone()))
            .with_dkim_result(DmarcResult::TempError(dns));
        let checks = spf(SpfResult::TempError, SpfResult::TempError);
        let v = summary(&Auth::default(), &checks, &[], &temp, DmarcPolicy::None);
        assert_eq!(v.decision, crate::Decision::Inbox);
        assert!(v.header.contains("dmarc=temperror"), "{}", v.header);
        assert!(
            v.header.contains("(DNS failure: accepted unverified)"),
            "{}",
            v.header
        );
        let defer = Auth {
            temperror: TempErrorAction::Defer,
            ..Auth::default()
        };
        let v = summary(&defer, &checks, &[], &temp, DmarcPolicy::None);
        assert!(matches!(v.decision, crate::Decision::Defer(_)));
    }
}
