//! `GET /api/dashboard`: how the box is doing at a glance — the health
//! checks (`pochta-system`), each service up or down, the queue, today's
//! mail, disk space, and alerts that each say what to do; and
//! `GET /api/health`: the health checks alone.

use serde_json::{json, Value};

use crate::http::Reply;
use crate::{health, State};

/// What each service in `serve.json` is, for a person.
fn label(service: &str) -> &'static str {
    match service {
        "smtp" => "SMTP (mail from the internet)",
        "submission" => "Submission (mail clients, STARTTLS)",
        "submissions" => "Submission over TLS",
        "imap" => "IMAP",
        "imaps" => "IMAP over TLS",
        "pop3" => "POP3",
        "pop3s" => "POP3 over TLS",
        "admin" => "Admin page",
        "admin_tls" => "Admin page (HTTPS)",
        _ => "Service",
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn alert(level: &str, text: String, action: &str) -> Value {
    json!({ "level": level, "text": text, "action": action })
}

/// Each configured service with its addresses, checked now (whether it
/// answers is also a health check; this is the per-address view).
fn services(state: &State) -> Vec<Value> {
    let mut all: Vec<(&str, Vec<std::net::SocketAddr>)> = state.ctx.services.clone();
    all.push(("admin", state.admin_addrs.clone()));
    // Off (and so left out) without `admin.listen_tls` or a certificate.
    if !state.admin_tls_addrs.is_empty() {
        all.push(("admin_tls", state.admin_tls_addrs.clone()));
    }
    let flat: Vec<std::net::SocketAddr> = all.iter().flat_map(|(_, a)| a.clone()).collect();
    let mut up = health::answering(&flat).into_iter();
    all
        .iter()
        .map(|(name, addrs)| {
            let checked: Vec<(String, bool)> = addrs
                .iter()
                .map(|a| (a.to_string(), up.next().unwrap_or(false)))
                .collect();
            let down: Vec<&str> = checked
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(a, _)| a.as_str())
                .collect();
            let status = match (addrs.is_empty(), down.is_empty()) {
                (true, _) => "off",
                (false, true) => "up",
                (false, false) => "down",
            };
            json!({
                "name": name,
                "label": label(name),
                "status": status,
                "addresses": checked.iter().map(|(a, ok)| json!({ "address": a, "up": ok })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The health report with the alerts raised now, as `/api/health` and the
/// dashboard give it.
fn health_json(report: &pochta_system::Report, raised: &[pochta_system::Alert]) -> Value {
    json!({
        "state": report.worst(),
        "checked_at": report.checked_at,
        "round_ms": report.round_ms,
        "interval_secs": report.interval_secs,
        "checks": report.checks,
        "alerts": raised,
    })
}

/// The alerts raised now (none without the system part).
fn raised(state: &State) -> Vec<pochta_system::Alert> {
    state
        .ctx
        .alerts
        .as_ref()
        .map(|a| a.active())
        .unwrap_or_default()
}

/// `GET /api/health`.
pub fn health(state: &State) -> Reply {
    Reply::json(
        200,
        &health_json(&state.ctx.health.report(), &raised(state)),
    )
}

/// `GET /api/dashboard`.
pub fn dashboard(state: &State) -> Reply {
    let store = &state.ctx.store;
    let (queue, accounts, domains) = match (store.queue(), store.accounts(), store.domains()) {
        (Ok(q), Ok(a), Ok(d)) => (q, a, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return crate::directory::reply_for(e),
    };
    let now = now();
    let services = services(state);
    let report = state.ctx.health.report();
    let raised = raised(state);
    let health = health_json(&report, &raised);
    // Every check that is not ok, worst first, in the words of its check.
    let mut bad: Vec<&pochta_system::Check> = report
        .checks
        .iter()
        .filter(|c| c.state != pochta_system::State::Ok)
        .collect();
    bad.sort_by_key(|c| std::cmp::Reverse(c.state));
    let mut alerts: Vec<Value> = bad
        .iter()
        .map(|c| {
            alert(
                match c.state {
                    pochta_system::State::Failing => "critical",
                    _ => "warning",
                },
                format!("{}: {}", c.title, c.reason),
                &c.fix,
            )
        })
        .collect();
    // One-off events (a watchdog reset) are alerts without a check.
    for a in raised.iter().filter(|a| a.key.starts_with("event.")) {
        alerts.push(alert(
            "warning",
            format!("{}: {}", a.title, a.reason),
            &a.fix,
        ));
    }
    let oldest = queue.iter().map(|q| q.created).min();
    let oldest_age = oldest.map(|t| now - t);

    let today = state.ctx.maillog.today();
    let send_alerts = today.event("ALERT send_limit_reached");
    if send_alerts > 0 {
        alerts.push(alert(
            "warning",
            format!("{send_alerts} sending-limit alert(s) today: an account hit its daily limit"),
            "Search the Mail log for send_limit_reached. If the account's owner did not send \
             that much mail, its password is probably stolen: reset it now.",
        ));
    }

    let data = &state.ctx.data;
    let mail_bytes: u64 = accounts.iter().map(|a| a.bytes).sum();
    let database_bytes: u64 = ["pochta.db", "pochta.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let storage = match store.disk_space() {
        Ok(d) => {
            let usable = d.usable();
            let used = usable - d.available;
            let free_percent = if usable == 0 {
                0.0
            } else {
                d.available as f64 * 100.0 / usable as f64
            };
            json!({
                "total_bytes": usable,
                "free_bytes": d.available,
                "used_bytes": used,
                "used_percent": d.used_percent(),
                "free_percent": (free_percent * 10.0).round() / 10.0,
                "mail_bytes": mail_bytes,
                "database_bytes": database_bytes,
            })
        }
        Err(_) => json!({ "mail_bytes": mail_bytes, "database_bytes": database_bytes }),
    };

    let tls = pochta_system::certificate_expiry(&state.ctx.tls_cert)
        .map(|not_after| json!({ "not_after": not_after, "seconds_left": not_after - now }));

    let bans = state.ctx.auth.guard().banned();
    if !bans.is_empty() {
        alerts.push(alert(
            "info",
            format!(
                "{} address(es) banned after repeated failed logins",
                bans.len()
            ),
            "Open the Security page. A colleague's phone with an old password saved is a \
             common cause: fix the password on the phone, then unban its address.",
        ));
    }

    Reply::json(
        200,
        &json!({
            "services": services,
            "queue": { "length": queue.len(), "oldest_age_secs": oldest_age },
            "today": {
                "date": today.date,
                "received": today.event("accepted"),
                "sent_out": today.relayed,
                "delivered_local": today.delivered_local,
                "rejected": today.event("rejected"),
                "deferred": today.event("deferred"),
                "bounced": today.event("bounced") + today.event("expired"),
                "failed_logins": today.event("auth_failed"),
                "send_limit_alerts": send_alerts,
            },
            "storage": storage,
            "tls_certificate": tls,
            "banned": bans.len(),
            "domains": domains.len(),
            "accounts": accounts.len(),
            "alerts": alerts,
            "health": health,
        }),
    )
}
