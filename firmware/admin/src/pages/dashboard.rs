//! The dashboard: how the box is doing at a glance, drawn from
//! `GET /api/dashboard` (alerts first, then services, today's mail, the
//! queue and storage).

use serde_json::Value;

use pochta_config::format_size;

use crate::http::Reply;
use crate::session::Session;
use crate::State;
use pochta_config::format_duration as duration;

use super::{error_box, esc, page};

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn alerts(d: &Value) -> String {
    let items: String = d["alerts"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|a| {
                    format!(
                        "<li class=\"alert {}\"><strong>{}</strong><br>{}</li>",
                        esc(a["level"].as_str().unwrap_or("info")),
                        esc(a["text"].as_str().unwrap_or("")),
                        esc(a["action"].as_str().unwrap_or(""))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        "<section><h2>Alerts</h2><p class=\"ok\">Nothing needs attention.</p></section>".into()
    } else {
        format!("<section><h2>Alerts</h2><ul class=\"alerts\">{items}</ul></section>")
    }
}

/// Every health check: its state, what is the case, and what to do.
fn health(d: &Value) -> String {
    let h = &d["health"];
    let rows: String = h["checks"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    let state = c["state"].as_str().unwrap_or("failing");
                    let fix = c["fix"].as_str().unwrap_or("");
                    let fix = if state == "ok" || fix.is_empty() {
                        String::new()
                    } else {
                        format!("<br><small class=\"fix\">What to do: {}</small>", esc(fix))
                    };
                    let id = c["id"].as_str().unwrap_or("");
                    let title = esc(c["title"].as_str().unwrap_or(""));
                    // A check with a page of its own links to it.
                    let title = match id {
                        "backup" => format!("<a href=\"/backup\">{title}</a>"),
                        _ => title,
                    };
                    format!(
                        "<tr class=\"check\" data-state=\"{state}\" data-check=\"{}\"><td>{title}</td>\
                         <td><span class=\"state {state}\">{state}</span></td>\
                         <td>{}{fix}</td></tr>",
                        esc(id),
                        esc(c["reason"].as_str().unwrap_or("")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return "<section class=\"wide\"><h2>Health</h2><p>The first round of checks has not finished yet.</p></section>".into();
    }
    let every = h["interval_secs"].as_u64().unwrap_or(0);
    format!(
        "<section class=\"wide\"><h2>Health</h2><table class=\"health\"><tr><th>Check</th>\
         <th>State</th><th>What is the case</th></tr>{rows}</table>\
         <p><small>Checked every {every} s; <code>pochta health</code> shows the same.</small></p></section>"
    )
}

fn services(d: &Value) -> String {
    let rows: String = d["services"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    let status = s["status"].as_str().unwrap_or("down");
                    // Each address whole on one line (`.addr` does not
                    // wrap), under the service's name: on a phone too.
                    let addrs: String = s["addresses"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|x| {
                                    format!(
                                        " <span class=\"addr\">{}</span>",
                                        esc(x["address"].as_str().unwrap_or(""))
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!(
                        "<tr><td>{}<br><small class=\"addrs\">{addrs}</small></td>\
                         <td><span class=\"state {status}\">{status}</span></td></tr>",
                        esc(s["label"].as_str().unwrap_or("")),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "<section><h2>Services</h2><table class=\"services\"><tr><th>Service and its addresses</th>\
         <th>State</th></tr>{rows}</table></section>"
    )
}

fn today(d: &Value) -> String {
    let t = &d["today"];
    format!(
        "<section><h2>Mail today <small>({} UTC)</small></h2><table>\
         <tr><th>Received</th><td>{}</td></tr>\
         <tr><th>Sent out to other servers</th><td>{}</td></tr>\
         <tr><th>Stored in local mailboxes</th><td>{}</td></tr>\
         <tr><th>Rejected</th><td>{}</td></tr>\
         <tr><th>Bounced</th><td>{}</td></tr>\
         <tr><th>Failed logins</th><td>{}</td></tr>\
         </table><p><a href=\"/log?date={0}\">Today's mail log</a></p></section>",
        esc(t["date"].as_str().unwrap_or("")),
        num(&t["received"]),
        num(&t["sent_out"]),
        num(&t["delivered_local"]),
        num(&t["rejected"]),
        num(&t["bounced"]),
        num(&t["failed_logins"]),
    )
}

fn queue_and_storage(d: &Value) -> String {
    let q = &d["queue"];
    let oldest = q["oldest_age_secs"]
        .as_i64()
        .map_or("–".to_owned(), duration);
    let s = &d["storage"];
    let disk = match (s["total_bytes"].as_u64(), s["free_bytes"].as_u64()) {
        (Some(total), Some(free)) => format!(
            "<tr><th>Disk</th><td><meter min=\"0\" max=\"{total}\" value=\"{used}\" \
             high=\"{high}\">{used_pct}%</meter> {used_h} used, {free_h} free ({pct}%)</td></tr>",
            used = total.saturating_sub(free),
            high = total / 10 * 8,
            used_pct = s["used_percent"].as_u64().unwrap_or(0),
            pct = s["free_percent"].as_f64().unwrap_or(0.0),
            used_h = format_size(total.saturating_sub(free)),
            free_h = format_size(free),
        ),
        _ => "<tr><th>Disk</th><td>unknown</td></tr>".into(),
    };
    let cert = match d["tls_certificate"]["seconds_left"].as_i64() {
        Some(left) if left > 0 => format!("expires in {}", duration(left)),
        Some(_) => "expired".into(),
        None => "unknown".into(),
    };
    format!(
        "<section><h2>Queue and storage</h2><table>\
         <tr><th>Queue</th><td><a href=\"/queue\">{} waiting</a>, oldest {oldest}</td></tr>\
         {disk}\
         <tr><th>Mail stored</th><td>{}</td></tr>\
         <tr><th>Database</th><td>{}</td></tr>\
         <tr><th>TLS certificate</th><td>{cert}</td></tr>\
         <tr><th>Banned addresses</th><td><a href=\"/security\">{}</a></td></tr>\
         <tr><th>Domains</th><td><a href=\"/domains\">{}</a></td></tr>\
         <tr><th>Accounts</th><td><a href=\"/accounts\">{}</a></td></tr>\
         </table></section>",
        num(&q["length"]),
        format_size(num(&s["mail_bytes"])),
        format_size(num(&s["database_bytes"])),
        num(&d["banned"]),
        num(&d["domains"]),
        num(&d["accounts"]),
    )
}

/// `GET /` once logged in.
pub(super) fn show(state: &State, s: &Session) -> Reply {
    let reply = crate::dashboard::dashboard(state);
    let Some(d) = reply.json_value() else {
        return page(
            reply.status,
            "Dashboard",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    page(
        200,
        "Dashboard",
        Some(s),
        &format!(
            "{}{}<div class=\"grid\">{}{}{}</div>",
            alerts(&d),
            health(&d),
            services(&d),
            today(&d),
            queue_and_storage(&d)
        ),
    )
}
