//! The security page: addresses banned now (with unban), and recent logins
//! and failures of every service.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{security, State};
use pochta_config::format_duration;

use super::{csrf_field, error_box, esc, local_time, page};

/// `GET /security`, or the page again after a refused form.
pub(super) fn show(state: &State, s: &Session, status: u16, error: Option<&str>) -> Reply {
    let reply = security::overview(state);
    let Some(v) = reply.json_value() else {
        return page(
            reply.status,
            "Security",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    let banned = v["banned"].as_array().cloned().unwrap_or_default();
    let bans = if banned.is_empty() {
        "<p>No address is banned.</p>".to_owned()
    } else {
        let rows: String = banned
            .iter()
            .map(|b| {
                let address = esc(b["address"].as_str().unwrap_or(""));
                format!(
                    "<tr><td class=\"data\">{address}</td><td>{}</td><td>{}</td><td>\
                     <form method=\"post\" action=\"/security/unban\" class=\"inline\">{}\
                     <input type=\"hidden\" name=\"address\" value=\"{address}\">\
                     <button>Unban</button></form></td></tr>",
                    b["failures"].as_u64().unwrap_or(0),
                    format_duration(b["seconds_left"].as_i64().unwrap_or(0)),
                    csrf_field(s)
                )
            })
            .collect();
        format!(
            "<p>These addresses failed to log in too often and are refused on every service \
             until the ban ends.</p><table><tr><th>Address</th><th>Failures</th><th>Ban ends in</th>\
             <th></th></tr>{rows}</table>"
        )
    };
    let logins = v["logins"].as_array().cloned().unwrap_or_default();
    let rows: String = logins
        .iter()
        .map(|l| {
            let ok = l["ok"].as_bool() == Some(true);
            format!(
                "<tr><td class=\"data time\">{}</td><td><span class=\"state {}\">{}</span></td><td>{}</td>\
                 <td>{}</td><td class=\"data optional\">{}</td></tr>",
                esc(&local_time::log_time(l["time"].as_str().unwrap_or(""))),
                if ok { "up" } else { "down" },
                if ok { "ok" } else { "failed" },
                esc(l["service"].as_str().unwrap_or("")),
                esc(l["user"].as_str().unwrap_or("")),
                esc(l["peer"].as_str().unwrap_or("")),
            )
        })
        .collect();
    let recent = if logins.is_empty() {
        "<p>No logins recorded yet.</p>".to_owned()
    } else {
        format!(
            "<p class=\"muted\">{}</p><div class=\"scroll\"><table><tr><th>Time</th><th>Result</th>\
             <th>Service</th><th>User</th><th class=\"optional\">From</th></tr>{rows}</table></div>",
            local_time::note()
        )
    };
    page(
        status,
        "Security",
        Some(s),
        &format!(
            "{}<section><h2>Banned addresses</h2>{bans}</section>\
             <section><h2>Recent logins and failures</h2>{recent}</section>",
            error_box(error)
        ),
    )
}

/// `POST /security/unban`.
pub(super) fn unban(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = security::unban(state, form);
    if reply.is_success() {
        Reply::redirect("/security")
    } else {
        show(state, s, reply.status, Some(&reply.error_message()))
    }
}
