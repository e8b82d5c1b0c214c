//! After an attempt: each recipient delivered, deferred on the retry
//! schedule, warned about once it has waited long, or failed (permanently
//! or by expiry) with a DSN to the sender. Blocking: runs off the runtime.

use pochta_store::QueueEntry;

use super::dsn::{DsnKind, DsnRecipient, Report};
use super::tls::TlsInfo;
use super::{Failure, Outbound, Severity};

/// The wait before the next attempt after `attempts` failed ones: the
/// schedule's entry for it, its last entry repeating.
pub fn retry_delay(schedule: &[u64], attempts: u32) -> u64 {
    let i = (attempts as usize).min(schedule.len().saturating_sub(1));
    schedule.get(i).copied().unwrap_or(3600)
}

/// Whether the sender asked for this kind of DSN (RFC 3461 §4.1): by
/// default failures and delays are reported.
fn wants(notify: Option<&str>, what: &str) -> bool {
    match notify {
        None => true,
        Some(n) => n.split(',').any(|w| w.trim().eq_ignore_ascii_case(what)),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn tls_note(tls: Option<TlsInfo>) -> &'static str {
    match tls {
        Some(TlsInfo { verified: true }) => "yes,verified",
        Some(TlsInfo { verified: false }) => "yes,unverified",
        None => "no",
    }
}

impl Outbound {
    /// Records the outcome of one attempt for its rows.
    pub(super) fn record(
        &self,
        entries: Vec<QueueEntry>,
        results: Vec<Result<String, Failure>>,
        via: Option<(String, Option<TlsInfo>)>,
    ) {
        let t = now();
        let q = &self.queue;
        let mut failed: Vec<(QueueEntry, Failure)> = Vec::new();
        let mut delayed: Vec<(QueueEntry, Failure)> = Vec::new();
        for (e, result) in entries.into_iter().zip(results) {
            match result {
                Ok(reply) => {
                    let (host, tls) = via.clone().unwrap_or_default();
                    self.maillog
                        .relayed(e.id, &e.recipient, &host, tls_note(tls), &reply);
                    if let Err(err) = self.store.queue_done(e.id) {
                        tracing::error!(id = e.id, error = %err, "queue: cannot remove a delivered row");
                    }
                }
                Err(f) if f.severity == Severity::Permanent => {
                    self.maillog.bounced(e.id, &e.recipient, &f.text);
                    failed.push((e, f));
                }
                Err(f) if t - e.created >= q.lifetime_secs as i64 => {
                    self.maillog.expired(e.id, &e.recipient, &f.text);
                    let expired = Failure {
                        severity: Severity::Permanent,
                        status: "4.4.7".into(),
                        text: format!(
                            "gave up after {} attempts over {} s; last error: {}",
                            e.attempts + 1,
                            t - e.created,
                            f.text
                        ),
                        ..f
                    };
                    failed.push((e, expired));
                }
                Err(f) => {
                    let next = t + retry_delay(&q.retry_secs, e.attempts) as i64;
                    let warn = q.delay_warning_secs > 0
                        && !e.warned
                        && t - e.created >= q.delay_warning_secs as i64;
                    match self.store.queue_defer(e.id, next, &f.text) {
                        Ok(()) => self.maillog.deferred(e.id, &e.recipient, &f.text, next),
                        Err(err) => {
                            tracing::error!(id = e.id, error = %err, "queue: cannot defer a row")
                        }
                    }
                    if warn {
                        delayed.push((e, f));
                    }
                }
            }
        }
        if !failed.is_empty() {
            self.report(&failed, DsnKind::Failed, "FAILURE", t);
            for (e, _) in &failed {
                let _ = self.store.queue_done(e.id);
            }
        }
        if !delayed.is_empty() {
            let until = delayed[0].0.created + q.lifetime_secs as i64;
            self.report(
                &delayed,
                DsnKind::Delayed { retry_until: until },
                "DELAY",
                t,
            );
            for (e, _) in &delayed {
                let _ = self.store.queue_mark_warned(e.id);
            }
        }
    }

    /// Sends one DSN to the sender about these rows of one message, unless
    /// the sender is `<>` (never a bounce to a bounce, RFC 5321 §6.1) or
    /// asked not to hear of it. A DSN that cannot be committed leaves the
    /// rows for a later attempt instead (by deferring them briefly).
    fn report(&self, rows: &[(QueueEntry, Failure)], kind: DsnKind, notify: &str, t: i64) {
        let first = &rows[0].0;
        let wanted: Vec<&(QueueEntry, Failure)> = rows
            .iter()
            .filter(|(e, _)| wants(e.notify.as_deref(), notify))
            .collect();
        if first.sender.is_empty() || wanted.is_empty() {
            return;
        }
        let original = match std::fs::read(self.store.blob_path(&first.blob)) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "queue: cannot read a message for its DSN");
                Vec::new()
            }
        };
        let recipients: Vec<DsnRecipient> = wanted
            .iter()
            .map(|(e, f)| DsnRecipient {
                recipient: &e.recipient,
                orcpt: e.orcpt.as_deref(),
                failure: f,
            })
            .collect();
        let unique = format!("{}-{}", t, first.id);
        let report = Report {
            hostname: &self.hostname,
            kind,
            sender: &first.sender,
            envid: first.envid.as_deref(),
            arrival: first.created,
            recipients: &recipients,
            original: &original,
            full: first
                .ret
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("FULL")),
        };
        let bytes = report.build(t, &unique);
        let what = match kind {
            DsnKind::Failed => "failed",
            DsnKind::Delayed { .. } => "delayed",
        };
        let ids: Vec<String> = wanted.iter().map(|(e, _)| e.id.to_string()).collect();
        match crate::from_null::submit(&self.store, &first.sender, &bytes).map(|_| ()) {
            Ok(()) => self.maillog.dsn_sent(&first.sender, what, &ids.join(",")),
            Err(e) => tracing::error!(to = %first.sender, error = %e, "queue: DSN not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_repeats_its_last_wait() {
        let s = [300, 900, 1800, 3600];
        let waits: Vec<u64> = (0..6).map(|a| retry_delay(&s, a)).collect();
        assert_eq!(waits, vec![300, 900, 1800, 3600, 3600, 3600]);
    }

    #[test]
    fn notify_words() {
        assert!(wants(None, "FAILURE"));
        assert!(wants(Some("SUCCESS,FAILURE"), "FAILURE"));
        assert!(!wants(Some("NEVER"), "FAILURE"));
        assert!(!wants(Some("FAILURE"), "DELAY"));
    }
}
