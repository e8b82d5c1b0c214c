//! A full-text index of message bodies (SQLite FTS5 with the trigram
//! tokenizer), used to narrow IMAP SEARCH on large folders to the few
//! messages that can match. The index only prunes: callers still check the
//! candidates exactly, so its tokenizing can never change a search result.
//!
//! Indexing runs on a background thread after delivery, never on the path
//! to `250`; messages not indexed yet are simply not pruned. Extracting
//! text needs a MIME parser, which this crate does not have: the protocol
//! crate passes an [`Extractor`] in.

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::folder::FolderId;
use crate::{Inner, Store, StoreError};

/// Text of one message for the index: header text and body text.
pub struct IndexText {
    /// Header fields, decoded where possible.
    pub headers: String,
    /// Text of the text parts (HTML turned into text) and attachment names.
    pub body: String,
}

/// Turns a message file into text for the index.
pub type Extractor = Arc<dyn Fn(&[u8]) -> IndexText + Send + Sync>;

/// Which part of the indexed text a search looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextField {
    /// Header fields.
    Headers,
    /// Body text.
    Body,
    /// Either.
    Any,
}

/// Messages indexed per transaction.
const BATCH: usize = 64;
/// Most body text indexed per message.
const MAX_TEXT: usize = 256 * 1024;
/// How long deliveries must have paused before indexing resumes.
const QUIET_MS: u64 = 300;
/// Trigrams need three characters.
const MIN_NEEDLE: usize = 3;

impl Store {
    /// Starts the background indexer; it stops when the store is dropped.
    pub fn start_indexer(&self, extract: Extractor) -> Result<(), StoreError> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let conn = crate::open_connection(&self.dir().join("pochta.db"))?;
        std::thread::Builder::new()
            .name("store-index".into())
            .spawn(move || run(weak, conn, extract))?;
        Ok(())
    }

    /// UIDs of a folder's messages that are in the index.
    pub fn indexed_uids(&self, folder: FolderId) -> Result<HashSet<u32>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT m.uid FROM messages m JOIN indexed_blobs b ON b.blob = m.blob WHERE m.mailbox_id = ?1",
        )?;
        let rows = stmt.query_map([folder.0], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|u| u as u32))
            .collect::<Result<_, _>>()?)
    }

    /// UIDs of indexed messages whose text may contain `needle`
    /// (case-insensitively). `None` when the index cannot help (a needle of
    /// fewer than three characters).
    pub fn text_candidates(
        &self,
        folder: FolderId,
        field: TextField,
        needle: &str,
    ) -> Result<Option<HashSet<u32>>, StoreError> {
        if needle.chars().count() < MIN_NEEDLE {
            return Ok(None);
        }
        // An FTS5 string: double quotes doubled (FTS5 query syntax §3.1).
        let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
        let query = match field {
            TextField::Headers => format!("headers : {phrase}"),
            TextField::Body => format!("body : {phrase}"),
            TextField::Any => phrase,
        };
        let conn = self.conn()?;
        // Two plain queries joined here: SQLite joins a MATCH subquery
        // badly (it re-ran the full-text query per message: 55 s instead
        // of 2 ms on 20,000 messages).
        let mut stmt =
            conn.prepare_cached("SELECT rowid FROM message_text WHERE message_text MATCH ?1")?;
        let hits: HashSet<i64> = stmt
            .query_map([query], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare_cached(
            "SELECT b.id, m.uid FROM messages m JOIN indexed_blobs b ON b.blob = m.blob WHERE m.mailbox_id = ?1",
        )?;
        let mut uids = HashSet::new();
        for row in stmt.query_map([folder.0], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (id, uid) = row?;
            if hits.contains(&id) {
                uids.insert(uid as u32);
            }
        }
        Ok(Some(uids))
    }
}

fn run(store: Weak<Inner>, mut conn: Connection, extract: Extractor) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let blob_dir = inner.blob_dir.clone();
        let last = inner
            .last_delivery
            .load(std::sync::atomic::Ordering::Relaxed);
        drop(inner);
        // Deliveries first: index only after a quiet moment.
        if crate::now_ms().saturating_sub(last) < QUIET_MS {
            std::thread::sleep(Duration::from_millis(QUIET_MS));
            continue;
        }
        let started = std::time::Instant::now();
        match index_batch(&mut conn, &blob_dir, &extract) {
            // Rest as long as the batch took: indexing is background work
            // and must leave the CPU to deliveries and sessions.
            Ok(n) if n > 0 => std::thread::sleep(started.elapsed()),
            Ok(_) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => {
                tracing::warn!(error = %e, "indexing failed; retrying later");
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

/// Indexes up to `BATCH` messages not indexed yet; returns how many.
fn index_batch(
    conn: &mut Connection,
    blob_dir: &std::path::Path,
    extract: &Extractor,
) -> Result<usize, StoreError> {
    let todo: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT m.blob FROM messages m
             LEFT JOIN indexed_blobs b ON b.blob = m.blob
             WHERE b.id IS NULL LIMIT ?1",
        )?;
        let rows = stmt.query_map([BATCH as i64], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    if todo.is_empty() {
        return Ok(0);
    }
    let mut texts = Vec::with_capacity(todo.len());
    for blob in &todo {
        let path = crate::blob::blob_path(blob_dir, &crate::BlobId(blob.clone()));
        // A file that cannot be read is indexed as empty rather than
        // retried forever; SEARCH then checks it the slow way.
        let raw = std::fs::read(&path).unwrap_or_default();
        let mut text = extract(&raw);
        truncate(&mut text.headers, MAX_TEXT);
        truncate(&mut text.body, MAX_TEXT);
        texts.push(text);
    }
    let tx = conn.transaction()?;
    for (blob, text) in todo.iter().zip(&texts) {
        tx.execute(
            "INSERT OR IGNORE INTO indexed_blobs(blob) VALUES (?1)",
            [blob],
        )?;
        let id: i64 = tx.query_row(
            "SELECT id FROM indexed_blobs WHERE blob = ?1",
            [blob],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO message_text(rowid, headers, body) VALUES (?1, ?2, ?3)",
            params![id, text.headers, text.body],
        )?;
    }
    tx.commit()?;
    Ok(todo.len())
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
