//! A full-text index of message bodies (SQLite FTS5 with the trigram
//! tokenizer), used to narrow IMAP SEARCH on large folders to the few
//! messages that can match. The index only prunes: callers still check the
//! candidates exactly, so its tokenizing can never change a search result.
//!
//! Indexing runs on a background thread after delivery, never on the path
//! to `250`; messages not indexed yet are simply not pruned. Extracting
//! text needs a MIME parser, which this crate does not have: the protocol
//! crate passes an [`Extractor`] in. The same parse also yields the body's
//! [`Structure`] for FETCH, cached here too (structure.rs).

use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{params, Connection};

use crate::folder::FolderId;
use crate::structure::{self, Structure};
use crate::{Inner, Store, StoreError};

/// Text of one message for the index: header text and body text.
pub struct IndexText {
    /// Header fields, decoded where possible.
    pub headers: String,
    /// Text of the text parts (HTML turned into text) and attachment names.
    pub body: String,
}

/// What one parse of a message file yields for the store.
pub struct Extracted {
    /// Text for the search index.
    pub text: IndexText,
    /// The structure FETCH reports.
    pub structure: Structure,
}

/// The parse behind an [`Extractor`]: a message file in, index text and
/// structure out.
pub type ExtractFn = dyn Fn(&[u8]) -> Extracted + Send + Sync;

/// Turns a message file into index text and structure, for the indexer.
#[derive(Clone)]
pub struct Extractor {
    /// Which rendering of [`Structure`] `extract` makes. Cached structures
    /// of another version are ignored and made again, so a new renderer
    /// must come with a new version.
    pub structure_version: u32,
    /// The parse.
    pub extract: Arc<ExtractFn>,
}

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
    pub fn start_indexer(&self, extractor: Extractor) -> Result<(), StoreError> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let conn = crate::open_connection(&self.dir().join("pochta.db"))?;
        std::thread::Builder::new()
            .name("store-index".into())
            .spawn(move || run(weak, conn, extractor))?;
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

/// Which bodies the indexer looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Those without text in the index or without a structure of the
    /// current version: bodies from before the structure cache, or from
    /// another renderer, are found this way. Done from start until a scan
    /// finds nothing.
    All,
    /// Those without text in the index. After `All` has found nothing,
    /// these new bodies are the only ones without a structure either (the
    /// indexer writes both at once), and this query, run every half second
    /// while idle, costs about half as much (10,000 messages: 3-6 ms
    /// instead of 11-13 ms).
    New,
}

fn run(store: Weak<Inner>, mut conn: Connection, extractor: Extractor) {
    let mut scan = Scan::All;
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
        match index_batch(&mut conn, &blob_dir, &extractor, scan) {
            // Rest as long as the batch took: indexing is background work
            // and must leave the CPU to deliveries and sessions.
            Ok(n) if n > 0 => std::thread::sleep(started.elapsed()),
            Ok(_) if scan == Scan::All => scan = Scan::New,
            Ok(_) => std::thread::sleep(Duration::from_millis(500)),
            Err(e) => {
                tracing::warn!(error = %e, "indexing failed; retrying later");
                std::thread::sleep(Duration::from_secs(5));
            }
        }
    }
}

/// A body the indexer has yet to do something for.
struct Todo {
    blob: String,
    /// Not in the full-text index yet.
    text: bool,
    /// No structure of the current version cached yet (a new body, or one
    /// from before the cache or from another renderer).
    structure: bool,
}

/// Indexes up to `BATCH` bodies that `scan` finds; returns how many.
pub(crate) fn index_batch(
    conn: &mut Connection,
    blob_dir: &std::path::Path,
    extractor: &Extractor,
    scan: Scan,
) -> Result<usize, StoreError> {
    let version = extractor.structure_version;
    let todo: Vec<Todo> = match scan {
        Scan::All => {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT m.blob, b.id IS NULL, s.version IS NOT ?2 FROM messages m
                 LEFT JOIN indexed_blobs b ON b.blob = m.blob
                 LEFT JOIN blob_structure s ON s.blob = m.blob
                 WHERE b.id IS NULL OR s.version IS NOT ?2 LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![BATCH as i64, version], |r| {
                Ok(Todo {
                    blob: r.get(0)?,
                    text: r.get(1)?,
                    structure: r.get(2)?,
                })
            })?;
            rows.collect::<Result<_, _>>()?
        }
        Scan::New => {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT m.blob FROM messages m
                 LEFT JOIN indexed_blobs b ON b.blob = m.blob
                 WHERE b.id IS NULL LIMIT ?1",
            )?;
            let rows = stmt.query_map([BATCH as i64], |r| {
                Ok(Todo {
                    blob: r.get(0)?,
                    text: true,
                    structure: true,
                })
            })?;
            rows.collect::<Result<_, _>>()?
        }
    };
    if todo.is_empty() {
        return Ok(0);
    }
    let mut done = Vec::with_capacity(todo.len());
    for t in &todo {
        let path = crate::blob::blob_path(blob_dir, &crate::BlobId(t.blob.clone()));
        // A file that cannot be read is indexed as empty rather than
        // retried forever; SEARCH then checks it the slow way. Its
        // structure is recorded as unknown, and FETCH reads the file.
        let (mut text, structure) = match std::fs::read(&path) {
            Ok(raw) => {
                let e = (extractor.extract)(&raw);
                (e.text, Some(e.structure))
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "message file unreadable; indexed as empty");
                let empty = IndexText {
                    headers: String::new(),
                    body: String::new(),
                };
                (empty, None)
            }
        };
        truncate(&mut text.headers, MAX_TEXT);
        truncate(&mut text.body, MAX_TEXT);
        done.push((text, structure));
    }
    let tx = conn.transaction()?;
    for (t, (text, structure)) in todo.iter().zip(&done) {
        if t.text {
            tx.execute(
                "INSERT OR IGNORE INTO indexed_blobs(blob) VALUES (?1)",
                [&t.blob],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM indexed_blobs WHERE blob = ?1",
                [&t.blob],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO message_text(rowid, headers, body) VALUES (?1, ?2, ?3)",
                params![id, text.headers, text.body],
            )?;
        }
        if t.structure {
            structure::put(&tx, &t.blob, version, structure.as_ref())?;
        }
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
