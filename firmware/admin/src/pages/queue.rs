//! The queue page: each waiting recipient with its next attempt and last
//! error; retry now; delete after a confirmation page (no script needed).

use serde_json::Value;

use pochta_config::format_size;

use crate::http::Reply;
use crate::session::Session;
use crate::{queue, State};
use pochta_config::format_duration as duration;

use super::{csrf_field, error_box, esc, page};

fn row(s: &Session, q: &Value) -> String {
    let id = q["id"].as_i64().unwrap_or(0);
    let next = q["next_attempt_in_secs"].as_i64().unwrap_or(0);
    format!(
        "<tr><td>{id}</td><td>{}</td><td>{}</td><td class=\"optional\">{}</td>\
         <td class=\"optional\">{}</td><td>{}</td><td>{}</td><td class=\"data\">{}</td>\
         <td><form method=\"post\" action=\"/queue/{id}/retry\" class=\"inline\">{}<button>Retry now</button></form> \
         <a href=\"/queue/{id}/delete\">Delete…</a></td></tr>",
        esc(q["sender"].as_str().unwrap_or("")),
        esc(q["recipient"].as_str().unwrap_or("")),
        format_size(q["size"].as_u64().unwrap_or(0)),
        duration(q["age_secs"].as_i64().unwrap_or(0)),
        q["attempts"].as_u64().unwrap_or(0),
        if next == 0 { "now".to_owned() } else { format!("in {}", duration(next)) },
        esc(q["last_error"].as_str().unwrap_or("–")),
        csrf_field(s),
    )
}

/// `GET /queue`, or the page again after a refused form.
pub(super) fn list(state: &State, s: &Session, status: u16, error: Option<&str>) -> Reply {
    let reply = queue::list(state);
    let Some(v) = reply.json_value() else {
        return page(
            reply.status,
            "Queue",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let body = if items.is_empty() {
        "<p>The queue is empty: all outgoing mail has been delivered.</p>".to_owned()
    } else {
        let rows: String = items.iter().map(|q| row(s, q)).collect();
        format!(
            "<p>{} recipient(s) waiting for delivery to other servers. \
             <a href=\"/log/trace\">Why didn't it arrive?</a></p>\
             <div class=\"scroll\"><table><tr><th>#</th><th>Sender</th><th>Recipient</th>\
             <th class=\"optional\">Size</th><th class=\"optional\">Waiting</th><th>Attempts</th>\
             <th>Next attempt</th><th>Last error</th><th></th></tr>{rows}</table></div>",
            items.len()
        )
    };
    page(
        status,
        "Queue",
        Some(s),
        &format!(
            "{}<section><h2>Queue</h2>{body}</section>",
            error_box(error)
        ),
    )
}

/// `GET /queue/ID/delete`: asks before deleting.
pub(super) fn confirm_delete(state: &State, s: &Session, id: &str) -> Reply {
    let reply = queue::list(state);
    let item = reply.json_value().and_then(|v| {
        v["items"]
            .as_array()?
            .iter()
            .find(|q| q["id"].as_i64().map(|n| n.to_string()).as_deref() == Some(id))
            .cloned()
    });
    let Some(q) = item else {
        return list(
            state,
            s,
            404,
            Some(&format!(
                "no queue item {id} (delivered or deleted already?)"
            )),
        );
    };
    page(
        200,
        "Queue",
        Some(s),
        &format!(
            "<section><h2>Delete queue item {id}?</h2>\
             <p>The message from {} to {} will not be delivered, and its sender will not be told.</p>\
             <form method=\"post\" action=\"/queue/{id}/delete\">{}<button class=\"danger\">Delete</button></form>\
             <p><a href=\"/queue\">Cancel</a></p></section>",
            esc(q["sender"].as_str().unwrap_or("")),
            esc(q["recipient"].as_str().unwrap_or("")),
            csrf_field(s),
        ),
    )
}

/// `POST /queue/ID/retry` and `POST /queue/ID/delete`.
pub(super) fn action(state: &State, s: &Session, path: &str) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reply = match segments.as_slice() {
        ["queue", id, "retry"] => queue::retry(state, id),
        ["queue", id, "delete"] => queue::delete(state, id),
        _ => return list(state, s, 404, Some("no such action")),
    };
    if reply.is_success() {
        Reply::redirect("/queue")
    } else {
        list(state, s, reply.status, Some(&reply.error_message()))
    }
}
