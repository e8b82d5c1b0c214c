//! SORT and THREAD (RFC 5256) and their UID forms. The messages are found
//! with SEARCH's matcher, then their headers are read for the sort keys.

use std::cmp::Ordering;

use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::search::SearchKey;
use mail_parser::{Address, HeaderValue};
use pochta_store::{Message, Store};

use super::search::{matching, IntoStaticKey, SetResolver};
use super::{blocking, refresh, store_error};
use crate::session::{Flow, Session, State};
use crate::thread::{self, Facts};

/// What the sort keys compare, per message.
struct Keys {
    seq: u32,
    number: u32,
    arrival: i64,
    date: i64,
    size: u64,
    subject: String,
    is_reply: bool,
    from: String,
    to: String,
    cc: String,
    display_from: String,
    display_to: String,
    message_id: Option<String>,
    references: Vec<String>,
}

/// `addr-mailbox` of the first address (RFC 5256 §3), and the display name
/// or address for DISPLAY (RFC 5957), lower-cased for i;ascii-casemap.
fn first_address(a: Option<&Address<'_>>) -> (String, String) {
    let first = a.and_then(|a| a.first());
    let mailbox = first
        .and_then(|f| f.address.as_deref())
        .map(|addr| {
            addr.rsplit_once('@')
                .map_or(addr, |(m, _)| m)
                .to_lowercase()
        })
        .unwrap_or_default();
    let display = first
        .and_then(|f| f.name.as_deref().or(f.address.as_deref()))
        .unwrap_or_default()
        .to_lowercase();
    (mailbox, display)
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn keys_of(store: &Store, seq: u32, number: u32, meta: &Message) -> Keys {
    let raw = std::fs::read(store.blob_path(&meta.blob)).unwrap_or_default();
    let parsed = crate::mime::parse(&raw);
    let mut k = Keys {
        seq,
        number,
        arrival: meta.internaldate,
        date: meta.internaldate,
        size: meta.size,
        subject: String::new(),
        is_reply: false,
        from: String::new(),
        to: String::new(),
        cc: String::new(),
        display_from: String::new(),
        display_to: String::new(),
        message_id: None,
        references: Vec::new(),
    };
    if let Some(m) = parsed {
        if let Some(d) = m.date() {
            k.date = d.to_timestamp();
        }
        let subject = m.subject().unwrap_or("");
        k.subject = thread::base_subject(subject);
        k.is_reply = thread::is_reply(subject);
        (k.from, k.display_from) = first_address(m.from());
        (k.to, k.display_to) = first_address(m.to());
        k.cc = first_address(m.cc()).0;
        k.message_id = m.message_id().map(String::from);
        k.references = ids(m.references());
        if k.references.is_empty() {
            k.references = ids(m.in_reply_to()).into_iter().take(1).collect();
        }
    }
    k
}

fn compare(a: &Keys, b: &Keys, criteria: &[SortCriterion]) -> Ordering {
    for c in criteria {
        let o = match c.key {
            SortKey::Arrival => a.arrival.cmp(&b.arrival),
            SortKey::Cc => a.cc.cmp(&b.cc),
            SortKey::Date => a.date.cmp(&b.date),
            SortKey::From => a.from.cmp(&b.from),
            SortKey::Size => a.size.cmp(&b.size),
            SortKey::Subject => a.subject.cmp(&b.subject),
            SortKey::To => a.to.cmp(&b.to),
            SortKey::DisplayFrom => a.display_from.cmp(&b.display_from),
            SortKey::DisplayTo => a.display_to.cmp(&b.display_to),
        };
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    // §3: ties go by sequence number.
    a.seq.cmp(&b.seq)
}

/// What to do with the matched messages.
pub(crate) enum Order {
    Sort(Vec<SortCriterion>),
    Thread(ThreadingAlgorithm<'static>),
}

pub(crate) async fn sort(
    s: &mut Session,
    tag: &str,
    order: Order,
    criteria: &[SearchKey<'_>],
    by_uid: bool,
) -> Flow {
    if let Order::Thread(ThreadingAlgorithm::Other(_)) = order {
        s.bad(
            tag,
            "Unknown threading algorithm (REFERENCES, ORDEREDSUBJECT)",
        );
        return Flow::Continue;
    }
    refresh(s, by_uid).await;
    let State::Selected(_, selected) = &s.state else {
        unreachable!("dispatch checked the state");
    };
    let folder = selected.folder.id;
    let view = selected.uids.clone();
    let sets = SetResolver::new(selected);
    let criteria: Vec<SearchKey<'static>> = criteria
        .iter()
        .map(|k| k.clone().into_static_key())
        .collect();
    let result = blocking(s, move |store| {
        let hits = matching(store, folder, &view, &criteria, &sets)?;
        let metas: std::collections::HashMap<u32, Message> = store
            .folder_messages(folder)?
            .into_iter()
            .map(|m| (m.uid, m))
            .collect();
        let keys: Vec<Keys> = hits
            .iter()
            .filter_map(|(seq, uid, _)| {
                let meta = metas.get(uid)?;
                Some(keys_of(store, *seq, if by_uid { *uid } else { *seq }, meta))
            })
            .collect();
        Ok(match order {
            Order::Sort(by) => {
                let mut keys = keys;
                keys.sort_by(|a, b| compare(a, b, &by));
                let numbers: Vec<String> = keys.iter().map(|k| k.number.to_string()).collect();
                if numbers.is_empty() {
                    "* SORT\r\n".to_string()
                } else {
                    format!("* SORT {}\r\n", numbers.join(" "))
                }
            }
            Order::Thread(algorithm) => {
                let facts: Vec<Facts> = keys
                    .into_iter()
                    .map(|k| Facts {
                        number: k.number,
                        date: k.date,
                        subject: k.subject,
                        is_reply: k.is_reply,
                        message_id: k.message_id,
                        references: k.references,
                    })
                    .collect();
                let threads = match algorithm {
                    ThreadingAlgorithm::OrderedSubject => thread::ordered_subject(facts),
                    _ => thread::references(facts),
                };
                let body = thread::format(&threads);
                if body.is_empty() {
                    "* THREAD\r\n".to_string()
                } else {
                    format!("* THREAD {body}\r\n")
                }
            }
        })
    })
    .await;
    match result {
        Ok(line) => {
            s.conn.push(&line);
            s.ok(tag, None, "Completed");
        }
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}
