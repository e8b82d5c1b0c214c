//! `GET /api/log?q=&date=&limit=`: lines of the mail log that mention an
//! address, a message id, a queue item or anything else, newest first.
//!
//! The file is read from its end in chunks ([`pochta_maillog::Backwards`])
//! and at most [`SCAN_BUDGET`] bytes of it, so a search never holds a large
//! log in memory nor takes long; the reply says when older lines were left
//! unread. A date skips newer lines and stops at the first older one (the
//! log is written in time order).

use std::path::Path;

use pochta_maillog::{Backwards, Entry};
use serde_json::{json, Map, Value};

use crate::http::{self, Body, Reply};
use crate::State;

/// Bytes of the log read for one search (about 600,000 lines).
pub const SCAN_BUDGET: u64 = 64 * 1024 * 1024;
/// Lines returned when no limit is asked for, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// Longest search text.
const MAX_QUERY: usize = 256;

/// The query string of a request's URL as fields (the same encoding as a
/// form).
pub fn query(url: &str) -> Body {
    http::parse_form(url.split_once('?').map_or("", |(_, q)| q).as_bytes())
}

/// A string parameter, trimmed; empty when absent.
pub fn param<'a>(params: &'a Body, name: &str) -> &'a str {
    params
        .get(name)
        .and_then(Value::as_str)
        .map_or("", str::trim)
}

/// A parsed line as JSON: its time, event, fields and the line itself.
pub fn entry_json(e: &Entry, line: &str) -> Value {
    let fields: Map<String, Value> = e
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({ "time": e.time, "event": e.event, "fields": fields, "line": line })
}

/// Opens the log from its end; `Ok(None)` when there is none yet.
pub fn open(state: &State) -> Result<Option<Backwards>, Reply> {
    let Some(path) = state.ctx.maillog.path() else {
        return Ok(None);
    };
    open_path(path)
}

fn open_path(path: &Path) -> Result<Option<Backwards>, Reply> {
    Backwards::open(path, SCAN_BUDGET).map_err(|e| {
        tracing::error!(error = %e, "cannot read the mail log");
        Reply::error(500, "the mail log cannot be read; see the system log")
    })
}

/// Whether `date` is `YYYY-MM-DD`.
fn is_date(date: &str) -> bool {
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// `GET /api/log`.
pub fn search(state: &State, params: &Body) -> Reply {
    let q = param(params, "q");
    let date = param(params, "date");
    if q.len() > MAX_QUERY {
        return Reply::error(
            400,
            format!("the search text is longer than {MAX_QUERY} characters"),
        );
    }
    if !date.is_empty() && !is_date(date) {
        return Reply::error(400, format!("{date:?} is not a date (expected YYYY-MM-DD)"));
    }
    let limit = match param(params, "limit") {
        "" => DEFAULT_LIMIT,
        l => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Reply::error(
                    400,
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}"),
                )
            }
        },
    };
    let mut lines = match open(state) {
        Ok(Some(l)) => l,
        Ok(None) => return Reply::json(200, &json!({ "lines": [], "complete": true })),
        Err(r) => return r,
    };
    let needle = q.to_lowercase();
    let mut found = Vec::new();
    let mut ended_by_date = false;
    for line in lines.by_ref() {
        if !date.is_empty() {
            match line.get(..10) {
                Some(d) if d > date => continue,
                Some(d) if d < date && is_date(d) => {
                    ended_by_date = true;
                    break;
                }
                _ => {}
            }
        }
        if !needle.is_empty() && !line.to_lowercase().contains(&needle) {
            continue;
        }
        let Some(entry) = Entry::parse(&line) else {
            continue;
        };
        if !date.is_empty() && entry.date() != date {
            continue;
        }
        found.push(entry_json(&entry, &line));
        if found.len() >= limit {
            break;
        }
    }
    let complete = ended_by_date || found.len() < limit && !lines.stopped_early();
    Reply::json(
        200,
        &json!({
            "query": q,
            "date": date,
            "limit": limit,
            "lines": found,
            "complete": complete,
            "scanned_bytes": lines.bytes_read(),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_dates() {
        let q = query("/api/log?q=a%40b.test&date=2026-01-02&limit=5");
        assert_eq!(param(&q, "q"), "a@b.test");
        assert_eq!(param(&q, "date"), "2026-01-02");
        assert_eq!(param(&q, "nothing"), "");
        assert!(query("/api/log").is_empty());
        assert!(is_date("2026-01-02"));
        assert!(!is_date("2026-1-02") && !is_date("yesterday"));
    }
}
