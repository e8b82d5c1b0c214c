//! The mail log page: search by address, message id or date, and "why
//! didn't this arrive?" — a message's path in words. Both are plain GET
//! forms, so a search can be bookmarked or sent to a colleague. Events
//! are named in words ([`EVENTS`]) and times are the box's local time;
//! the JSON API keeps the log's own names and UTC.

use serde_json::Value;

use crate::http::{Body, Reply};
use crate::logsearch::param;
use crate::session::Session;
use crate::{logsearch, trace, State};

use super::{error_box, esc, local_time, page};

/// What each event of the mail log (`pochta_maillog::MailLog`'s functions)
/// is, for a person; an event missing here is shown by its name.
const EVENTS: &[(&str, &str)] = &[
    ("accepted", "Message received"),
    ("rejected", "Refused"),
    ("delivered", "Stored in a mailbox"),
    ("queued", "Queued for another server"),
    ("auth_checked", "Sender checked (SPF, DKIM, DMARC)"),
    (
        "ALERT send_limit_reached",
        "Alert: an account reached its sending limit",
    ),
    (
        "mta_sts_testing_failure",
        "MTA-STS test policy would have refused a delivery",
    ),
    ("deferred", "Delivery postponed, to be tried again"),
    ("bounced", "Delivery failed, sender told"),
    ("expired", "Delivery given up: too long in the queue"),
    ("dsn_sent", "Delivery report sent to the sender"),
    ("auth_failed", "Login failed"),
    ("auth_ok", "Logged in"),
    ("admin_refused", "Admin page refused a visitor"),
    ("auto_reply_skipped", "Automatic answer not sent"),
    ("alert", "Box alert (mailed to the postmaster)"),
    ("watchdog_reset", "Restart forced by the watchdog"),
    ("service_restarted", "Service restarted"),
    ("clock_set", "The box's clock was set"),
    ("backup_done", "Backup written and checked"),
    ("backup_failed", "Backup failed"),
    ("backup_verified", "Backup test-restored"),
];

/// A time with its date and its clock each unbroken: a narrow column
/// breaks it between the two, never at a date's hyphens.
fn whole_parts(time: &str) -> String {
    time.split(' ')
        .map(|part| format!("<span class=\"nowrap\">{}</span>", esc(part)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An event of the log in words. `delivered` with a `relay` field is a
/// delivery to another server, not to a mailbox of this box.
fn event_words(event: &str, relayed: bool) -> &str {
    if event == "delivered" && relayed {
        return "Delivered to another server";
    }
    EVENTS
        .iter()
        .find(|(name, _)| *name == event)
        .map_or(event, |(_, words)| words)
}

fn search_form(q: &str, date: &str) -> String {
    format!(
        "<form method=\"get\" action=\"/log\">\
         <label for=\"q\">Address, Message-ID or any text</label>\
         <input id=\"q\" name=\"q\" value=\"{}\" placeholder=\"anna@example.com\">\
         <label for=\"date\">Day (UTC, as the log is kept)</label>\
         <input id=\"date\" name=\"date\" type=\"date\" value=\"{}\">\
         <button>Search</button></form>",
        esc(q),
        esc(date)
    )
}

fn trace_form(q: &str) -> String {
    format!(
        "<form method=\"get\" action=\"/log/trace\">\
         <label for=\"tq\">Why didn't this arrive? Recipient, sender or Message-ID</label>\
         <input id=\"tq\" name=\"q\" value=\"{}\" placeholder=\"anna@example.com\" required>\
         <button>Explain</button></form>",
        esc(q)
    )
}

/// The fields of a line after its session, as `key=value` text.
fn details(line: &Value) -> String {
    line["fields"]
        .as_object()
        .map(|f| {
            f.iter()
                .filter(|(k, _)| k.as_str() != "session")
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// `GET /log`.
pub(super) fn search(state: &State, s: &Session, params: &Body) -> Reply {
    let (q, date) = (param(params, "q"), param(params, "date"));
    let forms = format!(
        "<section><h2>Mail log</h2>{}</section><section>{}</section>",
        search_form(q, date),
        trace_form("")
    );
    let reply = logsearch::search(state, params);
    let Some(v) = reply.json_value() else {
        return page(
            reply.status,
            "Mail log",
            Some(s),
            &format!("{}{forms}", error_box(Some(&reply.error_message()))),
        );
    };
    let lines = v["lines"].as_array().cloned().unwrap_or_default();
    let rows: String = lines
        .iter()
        .map(|l| {
            let relayed = l["fields"].get("relay").is_some();
            format!(
                "<tr><td class=\"data time\">{}</td><td>{}</td><td class=\"data\">{}</td></tr>",
                whole_parts(&local_time::log_time(l["time"].as_str().unwrap_or(""))),
                esc(event_words(l["event"].as_str().unwrap_or(""), relayed)),
                esc(&details(l))
            )
        })
        .collect();
    let more = if v["complete"].as_bool() == Some(false) {
        "<p>Only the most recent matches are shown: narrow the search, or pick a day.</p>"
    } else {
        ""
    };
    let results = if lines.is_empty() {
        "<p>No line matches.</p>".to_owned()
    } else {
        format!(
            "<p>{} line(s), newest first. {}</p>{more}<div class=\"scroll\"><table><tr><th>Time</th>\
             <th>Event</th><th>Details</th></tr>{rows}</table></div>",
            lines.len(),
            local_time::note()
        )
    };
    page(
        200,
        "Mail log",
        Some(s),
        &format!("{forms}<section><h2>Results</h2>{results}</section>"),
    )
}

/// `GET /log/trace`.
pub(super) fn explain(state: &State, s: &Session, params: &Body) -> Reply {
    let q = param(params, "q");
    let form = format!(
        "<section><h2>Why didn't this arrive?</h2>{}</section>",
        trace_form(q)
    );
    if q.is_empty() {
        return page(200, "Mail log", Some(s), &form);
    }
    let reply = trace::trace(state, params);
    let Some(v) = reply.json_value() else {
        return page(
            reply.status,
            "Mail log",
            Some(s),
            &format!("{}{form}", error_box(Some(&reply.error_message()))),
        );
    };
    let messages = v["messages"].as_array().cloned().unwrap_or_default();
    let body = if messages.is_empty() {
        format!(
            "<section><p>Nothing in the mail log names {}. Check the spelling; mail that never \
             reached this box (a wrong MX record, a sender's server that gave up) leaves no trace \
             here.</p></section>",
            esc(q)
        )
    } else {
        messages
            .iter()
            .map(|m| {
                let steps: String = m["steps"]
                    .as_array()
                    .map(|st| {
                        st.iter()
                            .map(|step| {
                                format!(
                                    "<li><span class=\"data\">{}</span> {}</li>",
                                    esc(&local_time::log_time(step["time"].as_str().unwrap_or(""))),
                                    esc(step["text"].as_str().unwrap_or(""))
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let outcome = m["outcome"].as_str().unwrap_or("unknown");
                format!(
                    "<section><h2>Message of {} <span class=\"state {}\">{}</span></h2>\
                     <ol class=\"steps\">{steps}</ol></section>",
                    esc(&local_time::log_time(m["first"].as_str().unwrap_or(""))),
                    esc(outcome),
                    esc(outcome)
                )
            })
            .collect::<String>()
            + &format!("<p class=\"muted\">{}</p>", local_time::note())
    };
    page(200, "Mail log", Some(s), &format!("{form}{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_in_words() {
        assert_eq!(event_words("auth_failed", false), "Login failed");
        assert_eq!(
            event_words("admin_refused", false),
            "Admin page refused a visitor"
        );
        assert_eq!(event_words("delivered", false), "Stored in a mailbox");
        assert_eq!(
            event_words("delivered", true),
            "Delivered to another server"
        );
        assert_eq!(event_words("something_new", false), "something_new");
        for (name, words) in EVENTS {
            assert!(!words.contains('_'), "{name}: {words}");
        }
    }
}
