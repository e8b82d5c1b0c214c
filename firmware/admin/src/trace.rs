//! "Why didn't this arrive?": `GET /api/log/trace?q=ADDRESS-or-ID` finds
//! the messages an address, a Message-ID, Pochta's message id or a queue
//! item number appears in, gathers every mail log line of each, and says
//! in words what happened at each step.
//!
//! Lines of one message are tied together by keys the log writes: the SMTP
//! session id (`accepted`, `auth_checked`, `rejected`, local `delivered`
//! and `queued` lines) and the queue item number (`queued`, then the
//! queue's `deferred`, `delivered`, `bounced`, `expired`, `dsn_sent`).
//! Two passes over the end of the log, each bounded like a search:
//! 1. find the lines that name the query and take their keys; a `queued`
//!    line is written right after its message's `accepted` line, so a
//!    short window of recent `queued` lines gives the queue items of a
//!    session found by its message id;
//! 2. take every line with one of those keys (a `queued` line found by its
//!    queue item adds its session: reading backwards, the session's
//!    earlier lines come after it), then group lines that share a key.

use std::collections::{BTreeMap, HashSet, VecDeque};

use pochta_maillog::Entry;
use serde_json::{json, Value};

use crate::http::{Body, Reply};
use crate::logsearch::{self, param};
use crate::State;

/// Messages shown at most (the most recent).
const MAX_MESSAGES: usize = 20;
/// Lines gathered at most.
const MAX_LINES: usize = 2000;
/// `queued` lines remembered while looking for their `accepted` line.
const QUEUED_WINDOW: usize = 1000;

/// Events about logins, not about a message: left out of traces.
fn is_login_event(event: &str) -> bool {
    matches!(event, "auth_ok" | "auth_failed" | "admin_refused")
}

/// A session id that ties a message's lines together (the queue worker's
/// and the admin page's are shared by everything they log).
fn message_session(e: &Entry) -> Option<&str> {
    e.field("session")
        .filter(|s| !matches!(*s, "queue" | "-" | ""))
}

/// The queue item numbers a line names.
fn queue_ids(e: &Entry) -> Vec<String> {
    let mut ids: Vec<String> = e.field("queue_id").map(str::to_owned).into_iter().collect();
    if let Some(list) = e.field("queue_ids") {
        ids.extend(
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        );
    }
    ids
}

/// Whether a field of the line names `q` (lower case, without `<>`):
/// each comma-separated part of each value is compared whole, so
/// `bob@x.test` does not find `jimbob@x.test`.
fn names(e: &Entry, q: &str) -> bool {
    e.fields.iter().any(|(_, v)| {
        v.split(',').any(|part| {
            part.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .eq_ignore_ascii_case(q)
        })
    })
}

#[derive(Default)]
struct Keys {
    sessions: HashSet<String>,
    queue: HashSet<String>,
}

impl Keys {
    fn has(&self, e: &Entry) -> bool {
        message_session(e).is_some_and(|s| self.sessions.contains(s))
            || queue_ids(e).iter().any(|q| self.queue.contains(q))
    }

    fn len(&self) -> usize {
        self.sessions.len() + self.queue.len()
    }
}

/// Pass 1: the keys of the most recent messages that name `q`.
fn find_keys(state: &State, q: &str) -> Result<(Keys, bool), Reply> {
    let mut keys = Keys::default();
    let Some(mut lines) = logsearch::open(state)? else {
        return Ok((keys, true));
    };
    let mut queued: VecDeque<(String, String)> = VecDeque::new();
    let needle = q.to_lowercase();
    for line in lines.by_ref() {
        // Only lines with the text, and `queued` lines, need parsing.
        if !line.contains(" queued ") && !line.to_lowercase().contains(&needle) {
            continue;
        }
        let Some(e) = Entry::parse(&line) else {
            continue;
        };
        if is_login_event(&e.event) {
            continue;
        }
        if e.event == "queued" {
            if let (Some(s), Some(id)) = (message_session(&e), e.field("queue_id")) {
                queued.push_back((s.to_owned(), id.to_owned()));
                if queued.len() > QUEUED_WINDOW {
                    queued.pop_front();
                }
            }
        }
        if !names(&e, q) {
            continue;
        }
        if let Some(s) = message_session(&e) {
            if keys.sessions.insert(s.to_owned()) {
                for (_, id) in queued.iter().filter(|(qs, _)| qs == s) {
                    keys.queue.insert(id.clone());
                }
            }
        }
        keys.queue.extend(queue_ids(&e));
        if keys.len() >= MAX_MESSAGES * 4 {
            break;
        }
    }
    Ok((keys, !lines.stopped_early()))
}

/// Pass 2: every line with one of the keys, in file order.
fn gather(state: &State, keys: &mut Keys) -> Result<Vec<(Entry, String)>, Reply> {
    let Some(lines) = logsearch::open(state)? else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for line in lines {
        // A cheap look at the keys first; most lines have none of them.
        let session = Entry::quick_field(&line, "session").unwrap_or("");
        let queue = Entry::quick_field(&line, "queue_id").unwrap_or("");
        let maybe = keys.sessions.contains(session)
            || keys.queue.contains(queue)
            || line.contains(" queue_ids=");
        if !maybe {
            continue;
        }
        let Some(e) = Entry::parse(&line) else {
            continue;
        };
        if is_login_event(&e.event) || !keys.has(&e) {
            continue;
        }
        if e.event == "queued" {
            if let Some(s) = message_session(&e) {
                keys.sessions.insert(s.to_owned());
            }
        }
        found.push((e, line));
        if found.len() >= MAX_LINES {
            break;
        }
    }
    found.reverse();
    Ok(found)
}

/// The keys that tie a line to its message, given the lines before it (in
/// file order). One SMTP session can carry several messages: its lines up
/// to an `accepted` line (or a refused DATA) are one transaction, and the
/// next line starts another; a message's `delivered` and `queued` lines
/// come after its `accepted` line and name its id.
fn line_keys(e: &Entry, transactions: &mut BTreeMap<String, u32>) -> Vec<String> {
    let mut keys: Vec<String> = queue_ids(e).into_iter().map(|q| format!("q:{q}")).collect();
    let Some(session) = message_session(e) else {
        return keys;
    };
    let id = e.field("id").filter(|i| !i.is_empty());
    if matches!(e.event.as_str(), "delivered" | "queued") {
        if let Some(id) = id {
            keys.push(format!("i:{session}:{id}"));
            return keys;
        }
    }
    let n = transactions.entry(session.to_owned()).or_insert(0);
    keys.push(format!("s:{session}:{n}"));
    let ends = match e.event.as_str() {
        "accepted" => {
            if let Some(id) = id {
                keys.push(format!("i:{session}:{id}"));
            }
            true
        }
        "rejected" => matches!(e.field("stage"), Some("data" | "bdat")),
        _ => false,
    };
    if ends {
        *n += 1;
    }
    keys
}

/// Groups lines of the same message (union-find over [`line_keys`]), in
/// order of each group's first line.
fn group(lines: Vec<(Entry, String)>) -> Vec<Vec<(Entry, String)>> {
    let mut parent: Vec<usize> = (0..lines.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut transactions = BTreeMap::new();
    for (i, (e, _)) in lines.iter().enumerate() {
        for key in line_keys(e, &mut transactions) {
            match owner.get(&key) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(key, i);
                }
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<(Entry, String)>> = BTreeMap::new();
    for (i, line) in lines.into_iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(line);
    }
    groups.into_values().collect()
}

/// What a line means, for a person.
pub fn explain(e: &Entry) -> String {
    let f = |name: &str| e.field(name).unwrap_or("?").to_owned();
    match e.event.as_str() {
        "accepted" => format!(
            "Received from {} (sender {}) for {}: {} bytes, accepted as {}{}.",
            f("peer"),
            f("from"),
            f("to"),
            f("size"),
            f("id"),
            e.field("msgid").map_or(String::new(), |m| format!(", Message-ID {m}"))
        ),
        "auth_checked" => format!(
            "Checked who really sent it (for {}): SPF {}, DKIM {}, DMARC {} (the domain's policy: {}); result: {}.",
            f("from_domain"),
            f("spf"),
            f("dkim"),
            f("dmarc"),
            f("policy"),
            match e.field("action") {
                Some("inbox") => "delivered to the inbox".to_owned(),
                Some("junk") => "put in the Junk folder".to_owned(),
                Some("reject") => "refused".to_owned(),
                Some("defer") => "sender told to try again later".to_owned(),
                Some(other) => other.to_owned(),
                None => "?".to_owned(),
            }
        ),
        "rejected" => {
            let what = match e.field("stage") {
                Some("rcpt") => format!("The recipient {} was refused", f("subject")),
                Some("mail") => format!("The sender {} was refused", f("subject")),
                Some("data") | Some("bdat") => format!("The message from {} was refused", f("subject")),
                Some(stage) => format!("Refused at {stage} ({})", f("subject")),
                None => "Refused".to_owned(),
            };
            format!("{what} (client {}); Pochta answered: {}", f("peer"), f("reply"))
        }
        "delivered" if e.field("relay").is_some() => format!(
            "Delivered to {} by the server {} (TLS: {}); it answered: {}",
            f("to"),
            f("relay"),
            f("tls"),
            f("reply")
        ),
        "delivered" => format!(
            "Stored in the mailbox of {} (folder {}).",
            f("to"),
            f("folder")
        ),
        "queued" => format!(
            "Queued for delivery to {} on another server (queue item {}).",
            f("to"),
            f("queue_id")
        ),
        "deferred" => format!(
            "Delivery to {} failed for now: {}. Next attempt in {}.",
            f("to"),
            f("reason"),
            f("next_attempt_in")
        ),
        "bounced" => format!(
            "Delivery to {} failed for good: {}. The sender gets a bounce message.",
            f("to"),
            f("reason")
        ),
        "expired" => format!(
            "Gave up on {} after trying for the whole queue lifetime; last error: {}.",
            f("to"),
            f("last_error")
        ),
        "dsn_sent" => format!(
            "A delivery status notice ({}) was sent to {}.",
            f("action"),
            f("to")
        ),
        "ALERT send_limit_reached" => format!(
            "{} reached its sending limit of {} recipients.",
            f("account"),
            f("limit")
        ),
        "mta_sts_testing_failure" => format!(
            "The domain {}'s MTA-STS policy (testing mode) would have refused the server {}: {}.",
            f("domain"),
            f("relay"),
            f("why")
        ),
        _ => format!("{} {}", e.event, e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
    }
}

/// The outcome of a message from its lines: the last decisive event.
fn outcome(lines: &[(Entry, String)]) -> &'static str {
    let mut out = "unknown";
    for (e, _) in lines {
        out = match e.event.as_str() {
            "accepted" => "accepted",
            "delivered" => "delivered",
            "queued" if out != "delivered" => "queued",
            "deferred" => "deferred",
            "bounced" | "expired" => "bounced",
            "rejected" if out == "unknown" => "rejected",
            _ => out,
        };
    }
    out
}

/// `GET /api/log/trace?q=`.
pub fn trace(state: &State, params: &Body) -> Reply {
    let q = param(params, "q");
    let q = q.trim_start_matches('<').trim_end_matches('>').trim();
    if q.is_empty() {
        return Reply::error(
            400,
            "`q` is missing: give an address, a Message-ID or a queue item number",
        );
    }
    if q.len() > 256 {
        return Reply::error(400, "`q` is longer than 256 characters");
    }
    let (mut keys, complete) = match find_keys(state, q) {
        Ok(k) => k,
        Err(r) => return r,
    };
    let lines = match gather(state, &mut keys) {
        Ok(l) => l,
        Err(r) => return r,
    };
    // A session's other messages came along with the one asked about.
    let mut groups: Vec<_> = group(lines)
        .into_iter()
        .filter(|g| g.iter().any(|(e, _)| names(e, q)))
        .collect();
    // The most recent messages.
    let skip = groups.len().saturating_sub(MAX_MESSAGES);
    let messages: Vec<Value> = groups
        .drain(skip..)
        .rev()
        .map(|lines| {
            let steps: Vec<Value> = lines
                .iter()
                .map(|(e, line)| json!({ "time": e.time, "event": e.event, "text": explain(e), "line": line }))
                .collect();
            json!({
                "outcome": outcome(&lines),
                "first": lines.first().map(|(e, _)| e.time.clone()),
                "steps": steps,
            })
        })
        .collect();
    Reply::json(
        200,
        &json!({ "query": q, "messages": messages, "complete": complete }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Vec<(Entry, String)> {
        lines
            .iter()
            .map(|l| (Entry::parse(l).unwrap(), l.to_string()))
            .collect()
    }

    #[test]
    fn groups_by_session_and_queue_item() {
        let lines = parse(&[
            "2026-01-01T00:00:00Z accepted session=s1 peer=1.2.3.4:5 from=<a@x> to=<b@y>,<c@ex> size=5 id=i1",
            "2026-01-01T00:00:00Z delivered session=s1 to=<c@ex> folder=INBOX uid=1 id=i1",
            "2026-01-01T00:00:00Z queued session=s1 to=<b@y> queue_id=7 id=i1",
            "2026-01-01T00:00:01Z rejected session=s2 peer=1.2.3.4:6 stage=rcpt subject=<z@ex> reply=\"550 no\"",
            "2026-01-01T00:00:02Z deferred session=queue queue_id=7 to=<b@y> reason=\"421 busy\" next_attempt_in=60s",
            "2026-01-01T00:01:02Z delivered session=queue queue_id=7 to=<b@y> relay=mx.y tls=verified reply=\"250 ok\"",
            "2026-01-01T00:02:00Z rejected session=s1 peer=1.2.3.4:5 stage=rcpt subject=<q@ex> reply=\"550 no\"",
            "2026-01-01T00:02:00Z accepted session=s1 peer=1.2.3.4:5 from=<a@x> to=<c@ex> size=5 id=i2",
            "2026-01-01T00:02:00Z delivered session=s1 to=<c@ex> folder=INBOX uid=2 id=i2",
        ]);
        let groups = group(lines);
        assert_eq!(
            groups.len(),
            3,
            "{:#?}",
            groups.iter().map(|g| g.len()).collect::<Vec<_>>()
        );
        assert_eq!(groups[2].len(), 3);
        assert_eq!(outcome(&groups[2]), "delivered");
        assert_eq!(groups[0].len(), 5);
        assert_eq!(outcome(&groups[0]), "delivered");
        assert_eq!(outcome(&groups[1]), "rejected");
        assert!(explain(&groups[1][0].0).starts_with("The recipient <z@ex> was refused"));
        assert!(explain(&groups[0][3].0).contains("Next attempt in 60s"));
        let e = &groups[0][0].0;
        assert!(names(e, "c@ex") && names(e, "i1") && !names(e, "ex"));
    }
}
