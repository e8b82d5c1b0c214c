//! `GET /api/security`: addresses the brute-force guard bans now, and the
//! recent logins and failures of every service (mail protocols and this
//! page) from the mail log; `POST /api/security/unban {address}`.

use std::net::IpAddr;

use pochta_maillog::Entry;
use serde_json::json;

use crate::http::{self, Body, Reply};
use crate::{logsearch, State};

/// Login lines shown at most.
const MAX_LOGINS: usize = 100;

/// `GET /api/security`.
pub fn overview(state: &State) -> Reply {
    let banned: Vec<serde_json::Value> = state
        .ctx
        .auth
        .guard()
        .banned()
        .iter()
        .map(|b| {
            json!({
                "address": b.ip.to_string(),
                "failures": b.failures,
                "seconds_left": b.left.as_secs(),
            })
        })
        .collect();
    let mut logins = Vec::new();
    let mut complete = true;
    match logsearch::open(state) {
        Ok(Some(mut lines)) => {
            for line in lines.by_ref() {
                if !line.contains(" auth_ok ") && !line.contains(" auth_failed ") {
                    continue;
                }
                let Some(e) = Entry::parse(&line) else {
                    continue;
                };
                let ok = match e.event.as_str() {
                    "auth_ok" => true,
                    "auth_failed" => false,
                    _ => continue,
                };
                logins.push(json!({
                    "time": e.time,
                    "ok": ok,
                    "service": e.field("service").unwrap_or(""),
                    "user": e.field("user").unwrap_or(""),
                    "peer": e.field("peer").unwrap_or(""),
                }));
                if logins.len() >= MAX_LOGINS {
                    break;
                }
            }
            complete = logins.len() < MAX_LOGINS && !lines.stopped_early();
        }
        Ok(None) => {}
        Err(r) => return r,
    }
    Reply::json(
        200,
        &json!({ "banned": banned, "logins": logins, "complete": complete }),
    )
}

/// `POST /api/security/unban {address}`: the address may log in again at
/// once, with its failure count cleared.
pub fn unban(state: &State, body: &Body) -> Reply {
    let text = match http::field(body, "address") {
        Ok(a) => a.trim(),
        Err(r) => return r,
    };
    let Ok(ip) = text.parse::<IpAddr>() else {
        return Reply::error(
            400,
            format!("{text:?} is not an IP address (expected e.g. 192.168.1.20)"),
        );
    };
    if state.ctx.auth.guard().unban(ip) {
        tracing::info!(%ip, "address unbanned on the admin page");
        Reply::json(200, &json!({ "address": ip.to_string(), "unbanned": true }))
    } else {
        Reply::error(404, format!("{ip} is not banned"))
    }
}
