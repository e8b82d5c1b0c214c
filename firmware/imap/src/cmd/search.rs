//! SEARCH and UID SEARCH (RFC 9051 §6.4.4) over flags, sizes, dates,
//! sequence and UID sets, headers and text. Message files are read and
//! parsed only when a key needs their content.
//!
//! Text keys of three characters or more are narrowed down by the store's
//! full-text index (SQLite FTS5, trigrams) and then checked on the message
//! itself; shorter ones scan the messages.
//!
//! An IMAP4rev2 session gets ESEARCH for every SEARCH (RFC 9051 §6.4.4);
//! `RETURN (SAVE)` keeps the result for `$` (RFC 5182).

use std::collections::HashMap;

use chrono::NaiveDate;
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use pochta_store::{Message, Store, TextField};

use super::copy::uid_set;
use super::{blocking, refresh, store_error};
use crate::extended::SearchReturn;
use crate::selected::Selected;
use crate::session::{Flow, Session, State};

pub(crate) async fn search(
    s: &mut Session,
    tag: &str,
    criteria: &[SearchKey<'_>],
    by_uid: bool,
    ret: Option<SearchReturn>,
) -> Flow {
    refresh(s, by_uid).await;
    // RFC 9051 §6.4.4: without RETURN, IMAP4rev2 means RETURN (ALL).
    let ret = ret.or_else(|| {
        s.rev2.then(|| SearchReturn {
            all: true,
            ..SearchReturn::default()
        })
    });
    let uses_modseq = criteria.iter().any(has_modseq);
    if uses_modseq {
        super::enable_condstore(s);
    }
    let State::Selected(_, selected) = &s.state else {
        unreachable!("dispatch checked the state");
    };
    let folder = selected.folder.id;
    let view: Vec<u32> = selected.uids.clone();
    let criteria: Vec<SearchKey<'static>> = criteria
        .iter()
        .map(|k| k.clone().into_static_key())
        .collect();
    let seq_sets = SetResolver::new(selected);
    let result = blocking(s, move |store| {
        matching(store, folder, &view, &criteria, &seq_sets)
    })
    .await;
    match result {
        Ok(hits) => {
            let top_modseq = hits.iter().map(|h| h.2).max().filter(|_| uses_modseq);
            if let Some(ret) = ret.as_ref().filter(|r| r.save) {
                s.saved = saved_result(ret, &hits);
            }
            let line = match ret {
                // RFC 5182 §2.4: SAVE alone returns no ESEARCH.
                Some(SearchReturn {
                    save: true,
                    min: false,
                    max: false,
                    all: false,
                    count: false,
                }) => String::new(),
                Some(ret) => esearch(tag, by_uid, &ret, &hits, top_modseq),
                None => {
                    let numbers: Vec<String> = hits
                        .iter()
                        .map(|(seq, uid, _)| {
                            if by_uid {
                                uid.to_string()
                            } else {
                                seq.to_string()
                            }
                        })
                        .collect();
                    // RFC 7162 §3.1.5: with MODSEQ in the criteria, the
                    // highest mod-sequence of the matches follows.
                    let modseq = top_modseq
                        .map(|m| format!(" (MODSEQ {m})"))
                        .unwrap_or_default();
                    if numbers.is_empty() {
                        "* SEARCH\r\n".to_string()
                    } else {
                        format!("* SEARCH {}{modseq}\r\n", numbers.join(" "))
                    }
                }
            };
            s.conn.push(&line);
            s.ok(tag, None, "SEARCH completed");
        }
        Err(e) => {
            // RFC 5182 §2.1: a failed SAVE leaves `$` empty.
            if ret.is_some_and(|r| r.save) {
                s.saved.clear();
            }
            store_error(s, tag, &e)
        }
    }
    Flow::Continue
}

/// The UIDs `$` stands for after a SEARCH with SAVE: with MIN and/or MAX
/// but neither ALL nor COUNT, just those; else every match (RFC 5182 §2.4).
fn saved_result(ret: &SearchReturn, hits: &[Hit]) -> Vec<u32> {
    let mut uids: Vec<u32> = hits.iter().map(|h| h.1).collect();
    uids.sort_unstable();
    if (ret.min || ret.max) && !(ret.all || ret.count) {
        let (first, last) = (uids.first().copied(), uids.last().copied());
        let mut picked: Vec<u32> = Vec::new();
        picked.extend(first.filter(|_| ret.min));
        picked.extend(last.filter(|_| ret.max));
        picked.dedup();
        return picked;
    }
    uids
}

/// `* ESEARCH (TAG "t") [UID] MIN a MAX b ALL set COUNT n` (RFC 4731 §3.1):
/// MIN, MAX and ALL are left out when nothing matched.
fn esearch(
    tag: &str,
    by_uid: bool,
    ret: &SearchReturn,
    hits: &[(u32, u32, u64)],
    modseq: Option<u64>,
) -> String {
    let numbers: Vec<u32> = hits
        .iter()
        .map(|(seq, uid, _)| if by_uid { *uid } else { *seq })
        .collect();
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if by_uid {
        line.push_str(" UID");
    }
    if let (Some(min), Some(max)) = (numbers.iter().min(), numbers.iter().max()) {
        if ret.min {
            line.push_str(&format!(" MIN {min}"));
        }
        if ret.max {
            line.push_str(&format!(" MAX {max}"));
        }
        if ret.all {
            line.push_str(&format!(" ALL {}", uid_set(&numbers)));
        }
    }
    if ret.count {
        line.push_str(&format!(" COUNT {}", numbers.len()));
    }
    if let Some(m) = modseq {
        line.push_str(&format!(" MODSEQ {m}"));
    }
    line.push_str("\r\n");
    line
}

/// A message that matched: sequence number, UID, mod-sequence, metadata.
pub(crate) type Hit = (u32, u32, u64);

/// The messages of the session's view that match all `criteria`, in
/// sequence order. Blocking: reads message files for content keys.
pub(crate) fn matching(
    store: &Store,
    folder: pochta_store::FolderId,
    view: &[u32],
    criteria: &[SearchKey<'_>],
    seq_sets: &SetResolver,
) -> Result<Vec<Hit>, pochta_store::StoreError> {
    let messages: HashMap<u32, Message> = store
        .folder_messages(folder)?
        .into_iter()
        .map(|m| (m.uid, m))
        .collect();
    let mut index = Prefilter {
        store,
        folder,
        indexed: None,
        cache: HashMap::new(),
    };
    let mut hits = Vec::new();
    for (i, uid) in view.iter().enumerate() {
        let Some(m) = messages.get(uid) else { continue };
        let mut ctx = Candidate {
            seq: i as u32 + 1,
            meta: m,
            store,
            raw: None,
            index: &mut index,
        };
        if criteria.iter().all(|k| ctx.matches(k, seq_sets)) {
            hits.push((i as u32 + 1, *uid, m.modseq));
        }
    }
    Ok(hits)
}

fn has_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::And(keys) => keys.as_ref().iter().any(has_modseq),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::Not(k) => has_modseq(k),
        _ => false,
    }
}

/// Sequence and UID sets resolved against the session's view.
pub(crate) struct SetResolver {
    selected_uids: Vec<u32>,
}

impl SetResolver {
    pub(crate) fn new(selected: &Selected) -> SetResolver {
        SetResolver {
            selected_uids: selected.uids.clone(),
        }
    }

    fn contains(&self, set: &SequenceSet, seq: u32, uid: u32, by_uid: bool) -> bool {
        if by_uid {
            super::in_set(set, uid, self.selected_uids.last().copied().unwrap_or(0))
        } else {
            super::in_set(set, seq, self.selected_uids.len() as u32)
        }
    }
}

/// The full-text index as a filter: a message the index has seen and did
/// not list for a needle cannot contain it, so it is skipped without
/// reading its file. Everything else is checked exactly.
struct Prefilter<'a> {
    store: &'a Store,
    folder: pochta_store::FolderId,
    indexed: Option<std::collections::HashSet<u32>>,
    cache: HashMap<(TextField, String), Option<std::collections::HashSet<u32>>>,
}

impl Prefilter<'_> {
    /// True when the index rules the message out.
    fn rules_out(&mut self, uid: u32, field: TextField, needle: &str) -> bool {
        if needle.is_empty() {
            return false;
        }
        if self.indexed.is_none() {
            self.indexed = Some(self.store.indexed_uids(self.folder).unwrap_or_default());
        }
        if !self.indexed.as_ref().is_some_and(|i| i.contains(&uid)) {
            return false;
        }
        let key = (field, needle.to_string());
        if !self.cache.contains_key(&key) {
            let found = self
                .store
                .text_candidates(self.folder, field, needle)
                .unwrap_or(None);
            self.cache.insert(key.clone(), found);
        }
        matches!(self.cache.get(&key), Some(Some(set)) if !set.contains(&uid))
    }
}

struct Candidate<'a, 'i> {
    seq: u32,
    meta: &'a Message,
    store: &'a Store,
    raw: Option<Vec<u8>>,
    index: &'i mut Prefilter<'a>,
}

pub(crate) trait IntoStaticKey {
    fn into_static_key(self) -> SearchKey<'static>;
}

impl IntoStaticKey for SearchKey<'_> {
    fn into_static_key(self) -> SearchKey<'static> {
        imap_codec::imap_types::IntoStatic::into_static(self)
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn date_of(secs: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .date_naive()
}

impl Candidate<'_, '_> {
    fn raw(&mut self) -> &[u8] {
        if self.raw.is_none() {
            let path = self.store.blob_path(&self.meta.blob);
            self.raw = Some(std::fs::read(path).unwrap_or_default());
        }
        self.raw.as_deref().unwrap_or(&[])
    }

    fn header(&mut self, name: &str) -> Option<String> {
        let raw = self.raw().to_vec();
        let m = crate::mime::parse(&raw)?;
        let values: Vec<String> = m
            .headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| {
                let v = m
                    .raw_message
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .unwrap_or(&[]);
                let raw_value = String::from_utf8_lossy(v).into_owned();
                // Match decoded text too (RFC 2047 words, address names).
                match h.value().as_text() {
                    Some(t) => format!("{raw_value} {t}"),
                    None => raw_value,
                }
            })
            .collect();
        (!values.is_empty()).then(|| values.join(" "))
    }

    fn body_text(&mut self) -> String {
        let raw = self.raw().to_vec();
        let Some(m) = crate::mime::parse(&raw) else {
            return String::from_utf8_lossy(&raw).into_owned();
        };
        let mut text = String::new();
        for i in 0..m.text_body.len().max(m.html_body.len()) {
            if let Some(t) = m.body_text(i) {
                text.push_str(&t);
                text.push('\n');
            }
        }
        text
    }

    fn sent_date(&mut self) -> Option<NaiveDate> {
        let raw = self.raw().to_vec();
        let m = crate::mime::parse(&raw)?;
        let d = m.date()?;
        NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
    }

    fn matches(&mut self, key: &SearchKey<'_>, sets: &SetResolver) -> bool {
        let flag = |f: &str| self.meta.has_flag(f);
        match key {
            SearchKey::All => true,
            SearchKey::And(keys) => keys.as_ref().iter().all(|k| self.matches(k, sets)),
            SearchKey::Or(a, b) => self.matches(a, sets) || self.matches(b, sets),
            SearchKey::Not(k) => !self.matches(k, sets),
            SearchKey::SequenceSet(set) => sets.contains(set, self.seq, self.meta.uid, false),
            SearchKey::Uid(set) => sets.contains(set, self.seq, self.meta.uid, true),
            SearchKey::Answered => flag("\\Answered"),
            SearchKey::Deleted => flag("\\Deleted"),
            SearchKey::Draft => flag("\\Draft"),
            SearchKey::Flagged => flag("\\Flagged"),
            SearchKey::Seen => flag("\\Seen"),
            SearchKey::Unanswered => !flag("\\Answered"),
            SearchKey::Undeleted => !flag("\\Deleted"),
            SearchKey::Undraft => !flag("\\Draft"),
            SearchKey::Unflagged => !flag("\\Flagged"),
            SearchKey::Unseen => !flag("\\Seen"),
            // No session ever sees a message as \Recent here.
            SearchKey::Recent | SearchKey::New => false,
            SearchKey::Old => true,
            SearchKey::Keyword(k) => flag(k.as_ref()),
            SearchKey::Unkeyword(k) => !flag(k.as_ref()),
            SearchKey::Larger(n) => self.meta.size > u64::from(*n),
            SearchKey::Smaller(n) => self.meta.size < u64::from(*n),
            SearchKey::Before(d) => date_of(self.meta.internaldate) < *d.as_ref(),
            SearchKey::On(d) => date_of(self.meta.internaldate) == *d.as_ref(),
            SearchKey::Since(d) => date_of(self.meta.internaldate) >= *d.as_ref(),
            SearchKey::SentBefore(d) => self.sent_date().is_some_and(|s| s < *d.as_ref()),
            SearchKey::SentOn(d) => self.sent_date().is_some_and(|s| s == *d.as_ref()),
            SearchKey::SentSince(d) => self.sent_date().is_some_and(|s| s >= *d.as_ref()),
            SearchKey::Bcc(v) => self.header_has("Bcc", v.as_ref()),
            SearchKey::Cc(v) => self.header_has("Cc", v.as_ref()),
            SearchKey::From(v) => self.header_has("From", v.as_ref()),
            SearchKey::To(v) => self.header_has("To", v.as_ref()),
            SearchKey::Subject(v) => self.header_has("Subject", v.as_ref()),
            SearchKey::Header(name, v) => {
                let name = String::from_utf8_lossy(name.as_ref()).into_owned();
                self.header_has(&name, v.as_ref())
            }
            // RFC 7162 §3.1.5 (entry names are not kept per flag here).
            SearchKey::ModSequence { modseq, .. } => self.meta.modseq >= *modseq,
            SearchKey::Body(v) => {
                let needle = String::from_utf8_lossy(v.as_ref()).into_owned();
                if self
                    .index
                    .rules_out(self.meta.uid, TextField::Body, &needle)
                {
                    return false;
                }
                contains_ci(&self.body_text(), &needle)
            }
            SearchKey::Text(v) => {
                let needle = String::from_utf8_lossy(v.as_ref()).into_owned();
                if self.index.rules_out(self.meta.uid, TextField::Any, &needle) {
                    return false;
                }
                let raw = String::from_utf8_lossy(self.raw()).into_owned();
                contains_ci(&raw, &needle) || contains_ci(&self.body_text(), &needle)
            }
        }
    }

    fn header_has(&mut self, name: &str, needle: &[u8]) -> bool {
        let needle = String::from_utf8_lossy(needle).into_owned();
        if self
            .index
            .rules_out(self.meta.uid, TextField::Headers, &needle)
        {
            return false;
        }
        match self.header(name) {
            Some(v) => needle.is_empty() || contains_ci(&v, &needle),
            None => false,
        }
    }
}
