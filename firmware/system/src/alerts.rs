//! One alert pipeline: a condition is raised (mailed, logged, shown), a
//! condition that lasts is mailed again once a day, and its end is mailed
//! too. Alerts come from health checks that stay bad past a grace period
//! (see [`Alerts::review`]) and from one-off events (a watchdog reset, a
//! service restarted too often).
//!
//! Each alert goes to the postmaster's mailbox on the box
//! ([`Store::postmaster`]), to `[system] alert_email` through the outbound
//! queue, to the dashboard ([`Alerts::active`]), and to the console (the
//! log). Which alerts are raised is kept in the store, so a restart does
//! not mail the same problem again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pochta_maillog::MailLog;
use pochta_store::{Delivery, LocalRecipient, QueuedRecipient, Store};
use serde::{Deserialize, Serialize};

use crate::health::{Report, State};

/// A problem that lasts is mailed again after this long.
const REPEAT_SECS: i64 = 24 * 3600;
/// One-off events stay on the dashboard this long.
const EVENT_SHOWN_SECS: i64 = 24 * 3600;
/// A week, for the summary.
const WEEK_SECS: i64 = 7 * 24 * 3600;
/// Rounds a failing check waits before it is an alert (a service being
/// restarted, a blip).
const FAILING_GRACE_ROUNDS: i64 = 3;
/// Rounds a warning waits (a clock not yet set at boot).
const WARNING_GRACE_ROUNDS: i64 = 20;

/// One raised alert, as the dashboard and `/api/health` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// `check.<id>` for a health check, `event.<name>` for a one-off.
    pub key: String,
    /// What it is about ("Disk space").
    pub title: String,
    /// How bad.
    pub state: State,
    /// What is the case.
    pub reason: String,
    /// What to do.
    pub fix: String,
    /// When it was raised.
    pub raised_at: i64,
    /// When it was last mailed.
    pub mailed_at: i64,
}

/// The alert pipeline.
pub struct Alerts {
    store: Store,
    maillog: Arc<MailLog>,
    hostname: String,
    external: Option<String>,
    weekly_summary: bool,
    active: Mutex<BTreeMap<String, Alert>>,
}

impl Alerts {
    /// The pipeline, with the alerts raised before a restart.
    pub fn new(
        store: Store,
        maillog: Arc<MailLog>,
        hostname: String,
        config: &pochta_config::System,
    ) -> Alerts {
        let active = store
            .value("alerts")
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default();
        Alerts {
            store,
            maillog,
            hostname,
            external: config.alert_email.clone(),
            weekly_summary: config.weekly_summary,
            active: Mutex::new(active),
        }
    }

    /// The alerts raised now, oldest first.
    pub fn active(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.lock().values().cloned().collect();
        v.sort_by_key(|a| a.raised_at);
        v
    }

    /// A one-off event: mailed and logged now, shown for a day.
    pub fn event(&self, name: &str, title: &str, reason: &str, fix: &str, now: i64) {
        let alert = Alert {
            key: format!("event.{name}"),
            title: title.to_owned(),
            state: State::Warning,
            reason: reason.to_owned(),
            fix: fix.to_owned(),
            raised_at: now,
            mailed_at: now,
        };
        self.send(&alert, Kind::Raised);
        self.lock().insert(alert.key.clone(), alert);
        self.save();
    }

    /// After each health round: raises checks that stayed bad past their
    /// grace, mails again those that last, clears those that are well, drops
    /// old events, and sends the weekly summary when it is due.
    pub fn review(&self, report: &Report, interval_secs: i64, now: i64) {
        let mut changed = false;
        for check in &report.checks {
            let key = format!("check.{}", check.id);
            let grace = match check.state {
                State::Ok => continue,
                State::Warning => WARNING_GRACE_ROUNDS,
                State::Failing => FAILING_GRACE_ROUNDS,
            } * interval_secs;
            let existing = self.lock().get(&key).cloned();
            match existing {
                None if now - check.since >= grace => {
                    let alert = Alert {
                        key: key.clone(),
                        title: check.title.clone(),
                        state: check.state,
                        reason: check.reason.clone(),
                        fix: check.fix.clone(),
                        raised_at: check.since,
                        mailed_at: now,
                    };
                    self.send(&alert, Kind::Raised);
                    self.lock().insert(key, alert);
                    changed = true;
                }
                None => {}
                Some(mut alert) => {
                    let worse = check.state > alert.state;
                    alert.state = check.state;
                    alert.reason = check.reason.clone();
                    alert.fix = check.fix.clone();
                    if worse || now - alert.mailed_at >= REPEAT_SECS {
                        alert.mailed_at = now;
                        self.send(&alert, Kind::Again);
                        changed = true;
                    }
                    self.lock().insert(key, alert);
                }
            }
        }
        let over: Vec<Alert> = self
            .lock()
            .values()
            .filter(|a| match a.key.strip_prefix("check.") {
                Some(id) => report.check(id).is_none_or(|c| c.state == State::Ok),
                None => now - a.raised_at >= EVENT_SHOWN_SECS,
            })
            .cloned()
            .collect();
        for alert in over {
            if alert.key.starts_with("check.") {
                let mut done = alert.clone();
                if let Some(c) = report.check(alert.key.trim_start_matches("check.")) {
                    done.reason = c.reason.clone();
                }
                self.send(&done, Kind::Cleared);
            }
            self.lock().remove(&alert.key);
            changed = true;
        }
        if changed {
            self.save();
        }
        if self.weekly_summary {
            self.weekly(report, now);
        }
    }

    /// The summary mail once a week; the first a week after the first start.
    fn weekly(&self, report: &Report, now: i64) {
        let last = match self.store.value("summary.last") {
            Ok(Some(v)) => v.parse::<i64>().unwrap_or(now),
            Ok(None) => {
                let _ = self.store.set_value("summary.last", &now.to_string());
                return;
            }
            Err(_) => return,
        };
        if now - last < WEEK_SECS {
            return;
        }
        if self
            .store
            .set_value("summary.last", &now.to_string())
            .is_err()
        {
            return;
        }
        let worst = report.worst();
        let subject = match worst {
            State::Ok => "Weekly summary: all well".to_owned(),
            _ => format!("Weekly summary: {} needs attention", count_bad(report)),
        };
        let mut body = format!(
            "This is the weekly note from Pochta on {}. It is running.\n\n",
            self.hostname
        );
        for c in &report.checks {
            body.push_str(&format!(
                "  [{}] {}: {}\n",
                c.state.word(),
                c.title,
                c.reason
            ));
            if !c.fix.is_empty() {
                body.push_str(&format!("        What to do: {}\n", c.fix));
            }
        }
        body.push_str("\nYou get this mail every week, also when all is well, so that you know the box is alive.\n");
        self.mail(&subject, &body);
    }

    fn send(&self, alert: &Alert, kind: Kind) {
        let (word, opening) = match kind {
            Kind::Raised => ("Problem", "found a problem that needs you"),
            Kind::Again => ("Still a problem", "still has a problem that needs you"),
            Kind::Cleared => ("Solved", "reports that a problem is over"),
        };
        let state = match kind {
            Kind::Cleared => "cleared",
            _ => alert.state.word(),
        };
        self.maillog.alert(&alert.key, state, &alert.title);
        match kind {
            Kind::Cleared => tracing::info!("alert cleared: {}: {}", alert.title, alert.reason),
            _ => tracing::warn!(
                "ALERT: {}: {} What to do: {}",
                alert.title,
                alert.reason,
                alert.fix
            ),
        }
        let subject = format!("{word}: {}", alert.title);
        let mut body = format!(
            "Pochta on {} {opening}.\n\n  {}\n  Since: {}\n  What is the case: {}\n",
            self.hostname,
            alert.title,
            utc(alert.raised_at),
            alert.reason
        );
        if !matches!(kind, Kind::Cleared) && !alert.fix.is_empty() {
            body.push_str(&format!("  What to do: {}\n", alert.fix));
        }
        body.push_str(
            "\nThe admin page's dashboard shows every check. You get one mail when a problem \
             starts, one a day while it lasts, and one when it is over.\n",
        );
        self.mail(&subject, &body);
    }

    /// Delivers a mail from the box to the postmaster (and the external
    /// address). Failure is logged: an alert must never stop the box.
    fn mail(&self, subject: &str, body: &str) {
        if let Err(e) = self.try_mail(subject, body) {
            tracing::error!(error = %e, subject, "cannot deliver an alert mail");
        }
    }

    fn try_mail(&self, subject: &str, body: &str) -> Result<(), String> {
        let local: Vec<LocalRecipient> = self
            .store
            .postmaster()
            .map_err(|e| e.to_string())?
            .unwrap_or_default()
            .into_iter()
            .map(|(account, address)| LocalRecipient {
                account,
                address,
                folder: "INBOX".into(),
            })
            .collect();
        let remote: Vec<QueuedRecipient> = self
            .external
            .iter()
            .map(|a| QueuedRecipient {
                address: a.clone(),
                ..QueuedRecipient::default()
            })
            .collect();
        if local.is_empty() && remote.is_empty() {
            return Ok(());
        }
        let from = match local.first() {
            Some(r) => format!("postmaster@{}", domain_of(&r.address)),
            None => format!("postmaster@{}", self.hostname),
        };
        let to: Vec<String> = local
            .iter()
            .map(|r| r.address.clone())
            .chain(remote.iter().map(|r| r.address.clone()))
            .collect();
        let message = compose(&from, &to, &self.hostname, subject, body);
        let mut writer = self.store.blob_writer().map_err(|e| e.to_string())?;
        writer
            .write(message.as_bytes())
            .map_err(|e| e.to_string())?;
        let staged = writer.finish().map_err(|e| e.to_string())?;
        self.store
            .deliver(
                staged,
                Delivery {
                    // The null sender: nothing bounces back to an alert.
                    sender: String::new(),
                    local,
                    remote,
                    ..Delivery::default()
                },
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn save(&self) {
        let json = serde_json::to_string(&*self.lock()).unwrap_or_default();
        if let Err(e) = self.store.set_value("alerts", &json) {
            tracing::warn!(error = %e, "cannot save the alert state");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Alert>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Raised,
    Again,
    Cleared,
}

fn count_bad(report: &Report) -> String {
    let n = report
        .checks
        .iter()
        .filter(|c| c.state != State::Ok)
        .count();
    if n == 1 {
        "1 check".into()
    } else {
        format!("{n} checks")
    }
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

/// `2026-12-03 12:01 UTC`.
fn utc(at: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(at) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => at.to_string(),
    }
}

/// A plain-text message (RFC 5322), marked as machine-made (RFC 3834
/// `Auto-Submitted`) so that auto-replies leave it alone.
fn compose(from: &str, to: &[String], hostname: &str, subject: &str, body: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default();
    let id = format!(
        "<pochta-alert.{}.{}@{hostname}>",
        now.unix_timestamp_nanos(),
        std::process::id()
    );
    let body: String = body.lines().map(|l| format!("{l}\r\n")).collect();
    format!(
        "From: Pochta <{from}>\r\nTo: {}\r\nSubject: [Pochta {hostname}] {subject}\r\n\
         Date: {date}\r\nMessage-ID: {id}\r\nAuto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}",
        to.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Finding, Health};

    struct TestBox {
        _dir: tempfile::TempDir,
        store: Store,
        alerts: Alerts,
    }

    fn a_box(config: pochta_config::System) -> TestBox {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_domain("a.test").unwrap();
        store
            .add_account("owner@a.test", "Long-enough-pass-1", 0)
            .unwrap();
        let alerts = Alerts::new(
            store.clone(),
            Arc::new(MailLog::discard()),
            "mx.a.test".into(),
            &config,
        );
        TestBox {
            _dir: dir,
            store,
            alerts,
        }
    }

    /// The subjects in the postmaster's INBOX, oldest first.
    fn subjects(store: &Store) -> Vec<String> {
        store
            .messages("owner@a.test", "INBOX")
            .unwrap()
            .iter()
            .map(|m| {
                let text = std::fs::read_to_string(&m.path).unwrap();
                let line = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
                line["Subject: ".len()..].to_owned()
            })
            .collect()
    }

    #[test]
    fn a_failing_check_is_mailed_once_after_its_grace_then_solved() {
        let b = a_box(pochta_config::System::default());
        let h = Health::new();
        let disk = || Finding::failing("The data disk is 96 % full", "Delete old mail");
        h.record("disk", "Disk space", disk(), 1000);
        // Within the grace (3 rounds of 15 s): nothing yet.
        b.alerts.review(&h.report(), 15, 1030);
        assert!(subjects(&b.store).is_empty());
        b.alerts.review(&h.report(), 15, 1045);
        b.alerts.review(&h.report(), 15, 1060);
        assert_eq!(
            subjects(&b.store),
            ["[Pochta mx.a.test] Problem: Disk space"]
        );
        assert_eq!(b.alerts.active().len(), 1);
        // A day later, still failing: mailed again, once.
        b.alerts.review(&h.report(), 15, 1045 + REPEAT_SECS);
        b.alerts.review(&h.report(), 15, 1060 + REPEAT_SECS);
        assert_eq!(subjects(&b.store).len(), 2);
        assert!(subjects(&b.store)[1].ends_with("Still a problem: Disk space"));
        // Well again: "Solved", and nothing raised any more.
        h.record(
            "disk",
            "Disk space",
            Finding::ok("The data disk is 40 % full"),
            2000,
        );
        b.alerts.review(&h.report(), 15, 2000 + REPEAT_SECS);
        assert!(subjects(&b.store)[2].ends_with("Solved: Disk space"));
        assert!(b.alerts.active().is_empty());
        let text =
            std::fs::read_to_string(&b.store.messages("owner@a.test", "INBOX").unwrap()[0].path)
                .unwrap();
        assert!(
            text.contains("Auto-Submitted: auto-generated\r\n"),
            "{text}"
        );
        assert!(text.contains("What to do: Delete old mail"), "{text}");
    }

    #[test]
    fn alert_email_gets_a_copy_through_the_outbound_queue() {
        let config = pochta_config::System {
            alert_email: Some("it@partner.example".into()),
            ..pochta_config::System::default()
        };
        let b = a_box(config);
        b.alerts.event(
            "restarts-imap",
            "The imap service keeps stopping",
            "why",
            "what",
            5,
        );
        assert_eq!(subjects(&b.store).len(), 1);
        let queue = b.store.queue().unwrap();
        assert_eq!(queue.len(), 1, "{queue:?}");
        assert_eq!(queue[0].recipient, "it@partner.example");
        // The null sender: a bounce of an alert goes nowhere.
        assert_eq!(queue[0].sender, "");
    }

    #[test]
    fn raised_alerts_survive_a_restart_without_a_second_mail() {
        let b = a_box(pochta_config::System::default());
        let h = Health::new();
        h.record(
            "queue",
            "Outgoing mail",
            Finding::failing("stuck", "look"),
            0,
        );
        b.alerts.review(&h.report(), 1, 10);
        assert_eq!(subjects(&b.store).len(), 1);
        let again = Alerts::new(
            b.store.clone(),
            Arc::new(MailLog::discard()),
            "mx.a.test".into(),
            &pochta_config::System::default(),
        );
        assert_eq!(again.active().len(), 1);
        again.review(&h.report(), 1, 20);
        assert_eq!(subjects(&b.store).len(), 1);
    }

    #[test]
    fn events_and_the_weekly_summary() {
        let b = a_box(pochta_config::System::default());
        b.alerts.event(
            "watchdog-reset",
            "Restart forced by the watchdog",
            "why",
            "what",
            100,
        );
        assert_eq!(
            subjects(&b.store),
            ["[Pochta mx.a.test] Problem: Restart forced by the watchdog"]
        );
        let h = Health::new();
        h.record("disk", "Disk space", Finding::ok("fine"), 100);
        // The first review starts the week; the event is shown for a day.
        b.alerts.review(&h.report(), 15, 200);
        assert_eq!(b.alerts.active().len(), 1);
        b.alerts.review(&h.report(), 15, 200 + EVENT_SHOWN_SECS);
        assert!(b.alerts.active().is_empty());
        assert_eq!(subjects(&b.store).len(), 1);
        b.alerts.review(&h.report(), 15, 200 + WEEK_SECS);
        let all = subjects(&b.store);
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[1].ends_with("Weekly summary: all well"), "{all:?}");
        b.alerts.review(&h.report(), 15, 300 + WEEK_SECS);
        assert_eq!(subjects(&b.store).len(), 2);
    }
}
