//! The outbound queue: list, retry now, delete — the store calls that
//! `pochta queue list|retry|delete` make.

use serde_json::json;

use crate::dashboard::now;
use crate::directory::reply_for;
use crate::http::Reply;
use crate::State;

/// `GET /api/queue`: every queued recipient, oldest first.
pub fn list(state: &State) -> Reply {
    let items = match state.ctx.store.queue() {
        Ok(items) => items,
        Err(e) => return reply_for(e),
    };
    let now = now();
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|q| {
            json!({
                "id": q.id,
                "sender": q.sender,
                "recipient": q.recipient,
                "size": q.size,
                "created": q.created,
                "age_secs": now - q.created,
                "next_attempt": q.next_attempt,
                "next_attempt_in_secs": (q.next_attempt - now).max(0),
                "attempts": q.attempts,
                "last_error": q.last_error,
            })
        })
        .collect();
    Reply::json(200, &json!({ "items": items }))
}

/// A queue item's number from the path.
fn id(text: &str) -> Result<i64, Reply> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Reply::error(400, format!("{text:?} is not a queue item number")))
}

/// `POST /api/queue/ID/retry`: due now; a running queue worker picks it up
/// within a second (unless `[queue] hold` keeps everything queued).
pub fn retry(state: &State, text: &str) -> Reply {
    let id = match id(text) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match state.ctx.store.queue_retry_now(id) {
        Ok(true) => {
            tracing::info!(queue_id = id, "queue item retried from the admin page");
            Reply::json(200, &json!({ "id": id, "retry": "now" }))
        }
        Ok(false) => Reply::error(
            404,
            format!("no queue item {id} (delivered or deleted already?)"),
        ),
        Err(e) => reply_for(e),
    }
}

/// `POST /api/queue/ID/delete`: dropped without delivery and without a
/// bounce to the sender.
pub fn delete(state: &State, text: &str) -> Reply {
    let id = match id(text) {
        Ok(id) => id,
        Err(r) => return r,
    };
    match state.ctx.store.queue_done(id) {
        Ok(true) => {
            tracing::info!(queue_id = id, "queue item deleted from the admin page");
            Reply::json(200, &json!({ "id": id, "deleted": true }))
        }
        Ok(false) => Reply::error(
            404,
            format!("no queue item {id} (delivered or deleted already?)"),
        ),
        Err(e) => reply_for(e),
    }
}
