//! `GET /api/dashboard`: how the box is doing at a glance — each service up
//! or down, the queue, today's mail, disk space, and alerts that each say
//! what to do.

use serde_json::{json, Value};

use pochta_config::{format_duration, format_size};

use crate::http::Reply;
use crate::{health, State};

/// Free space below this share of the disk raises an alert.
const LOW_SPACE_PERCENT: f64 = 10.0;
/// A queue item older than this raises an alert.
const STUCK_QUEUE_SECS: i64 = 3600;
/// A certificate expiring within this raises an alert.
const CERT_WARN_SECS: i64 = 14 * 24 * 3600;

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

/// Each configured service with its addresses, checked now.
fn services(state: &State) -> (Vec<Value>, Vec<Value>) {
    let mut all: Vec<(&str, Vec<std::net::SocketAddr>)> = state.ctx.services.clone();
    all.push(("admin", state.admin_addrs.clone()));
    // Off (and so left out) without `admin.listen_tls` or a certificate.
    if !state.admin_tls_addrs.is_empty() {
        all.push(("admin_tls", state.admin_tls_addrs.clone()));
    }
    let flat: Vec<std::net::SocketAddr> = all.iter().flat_map(|(_, a)| a.clone()).collect();
    let mut up = health::answering(&flat).into_iter();
    let mut alerts = Vec::new();
    let list = all
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
            if !down.is_empty() {
                alerts.push(alert(
                    "critical",
                    format!("{} does not answer on {}", label(name), down.join(", ")),
                    "Restart Pochta (or the box). If it stays down, look at the system log for \
                     why the service stopped, and check that nothing else took its port.",
                ));
            }
            json!({
                "name": name,
                "label": label(name),
                "status": status,
                "addresses": checked.iter().map(|(a, ok)| json!({ "address": a, "up": ok })).collect::<Vec<_>>(),
            })
        })
        .collect();
    (list, alerts)
}

/// `GET /api/dashboard`.
pub fn dashboard(state: &State) -> Reply {
    let store = &state.ctx.store;
    let (queue, accounts, domains) = match (store.queue(), store.accounts(), store.domains()) {
        (Ok(q), Ok(a), Ok(d)) => (q, a, d),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return crate::directory::reply_for(e),
    };
    let now = now();
    let (services, mut alerts) = services(state);

    let oldest = queue.iter().map(|q| q.created).min();
    let oldest_age = oldest.map(|t| now - t);
    if let Some(age) = oldest_age.filter(|a| *a > STUCK_QUEUE_SECS) {
        alerts.push(alert(
            "warning",
            format!(
                "The oldest message in the queue has waited {} ({} in the queue)",
                format_duration(age),
                queue.len()
            ),
            "Open the Queue page and read the last error: a remote server refusing mail, \
             DNS not answering, or outgoing port 25 blocked by the internet provider \
             (then configure a smarthost).",
        ));
    }

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
    let disk = health::disk(data);
    let mail_bytes: u64 = accounts.iter().map(|a| a.bytes).sum();
    let database_bytes: u64 = ["pochta.db", "pochta.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(data.join(f)).ok())
        .map(|m| m.len())
        .sum();
    let storage = match disk {
        Some(d) => {
            let free_percent = if d.total == 0 {
                0.0
            } else {
                d.available as f64 * 100.0 / d.total as f64
            };
            if free_percent < LOW_SPACE_PERCENT {
                alerts.push(alert(
                    "critical",
                    format!(
                        "Only {} ({free_percent:.0}%) free on the data disk",
                        format_size(d.available)
                    ),
                    "When the disk is full, mail is refused. Ask users to delete old mail, \
                     lower quotas on the Accounts page, or move the data to a larger disk.",
                ));
            }
            json!({
                "total_bytes": d.total,
                "free_bytes": d.available,
                "used_bytes": d.total.saturating_sub(d.available),
                "free_percent": (free_percent * 10.0).round() / 10.0,
                "mail_bytes": mail_bytes,
                "database_bytes": database_bytes,
            })
        }
        None => json!({ "mail_bytes": mail_bytes, "database_bytes": database_bytes }),
    };

    let tls = health::certificate_expiry(&state.ctx.tls_cert).map(|not_after| {
        let left = not_after - now;
        if left < CERT_WARN_SECS {
            alerts.push(alert(
                if left <= 0 { "critical" } else { "warning" },
                if left <= 0 {
                    "The TLS certificate has expired: mail clients will refuse to connect".to_owned()
                } else {
                    format!("The TLS certificate expires in {}", format_duration(left))
                },
                "Put a renewed certificate in the data folder's tls/ folder (or the files named in \
                 [tls]); Pochta serves it within five minutes, or at once on SIGHUP.",
            ));
        }
        json!({ "not_after": not_after, "seconds_left": left })
    });

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
        }),
    )
}
