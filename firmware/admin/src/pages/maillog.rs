//! The mail log page: search by address, message id or date, and "why
//! didn't this arrive?" — a message's path in words. Both are plain GET
//! forms, so a search can be bookmarked or sent to a colleague.

use serde_json::Value;

use crate::http::{Body, Reply};
use crate::logsearch::param;
use crate::session::Session;
use crate::{logsearch, trace, State};

use super::{error_box, esc, page};

fn search_form(q: &str, date: &str) -> String {
    format!(
        "<form method=\"get\" action=\"/log\">\
         <label for=\"q\">Address, Message-ID or any text</label>\
         <input id=\"q\" name=\"q\" value=\"{}\" placeholder=\"anna@example.com\">\
         <label for=\"date\">Day (UTC)</label>\
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
            format!(
                "<tr><td class=\"data\">{}</td><td>{}</td><td class=\"data\">{}</td></tr>",
                esc(l["time"].as_str().unwrap_or("")),
                esc(l["event"].as_str().unwrap_or("")),
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
            "<p>{} line(s), newest first.</p>{more}<div class=\"scroll\"><table><tr><th>Time</th>\
             <th>Event</th><th>Details</th></tr>{rows}</table></div>",
            lines.len()
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
    let body: String = if messages.is_empty() {
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
                                    esc(step["time"].as_str().unwrap_or("")),
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
                    esc(m["first"].as_str().unwrap_or("")),
                    esc(outcome),
                    esc(outcome)
                )
            })
            .collect()
    };
    page(200, "Mail log", Some(s), &format!("{form}{body}"))
}
