//! A cache of what FETCH reports about a body's structure (IMAP ENVELOPE,
//! BODY and BODYSTRUCTURE), so that a mail client's first sync of a large
//! folder does not parse every message file again.
//!
//! Bodies are immutable and named by their hash, so a cached row never goes
//! stale while its renderer stays the same; the renderer's version is kept
//! with each row, and rows of another version are neither returned nor kept
//! (the indexer makes them again). The forms are made by the protocol
//! crate's [`Extractor`](crate::Extractor) in the indexer's single parse of
//! each new body; this crate stores them as opaque bytes.

use std::collections::HashMap;
use std::rc::Rc;

use rusqlite::types::Value;
use rusqlite::{params, Transaction};

use crate::{BlobId, Store, StoreError};

/// What FETCH reports about a message's structure, as the protocol crate
/// renders it (for IMAP, the wire forms of RFC 9051 §7.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Structure {
    /// The ENVELOPE.
    pub envelope: Vec<u8>,
    /// BODY, the structure without extension data.
    pub body: Vec<u8>,
    /// BODYSTRUCTURE, the structure with extension data.
    pub body_structure: Vec<u8>,
}

impl Store {
    /// The cached structures of `version` among `blobs`; bodies not cached
    /// yet (or whose file could not be read) are missing from the answer.
    /// One query for the lot.
    pub fn cached_structures(
        &self,
        blobs: &[BlobId],
        version: u32,
    ) -> Result<HashMap<BlobId, Structure>, StoreError> {
        if blobs.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Rc<Vec<Value>> = Rc::new(blobs.iter().map(|b| Value::from(b.0.clone())).collect());
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT blob, envelope, body, bodystructure FROM blob_structure
             WHERE blob IN rarray(?1) AND version = ?2 AND envelope IS NOT NULL",
        )?;
        let rows = stmt.query_map(params![ids, version], |r| {
            Ok((
                BlobId(r.get(0)?),
                Structure {
                    envelope: r.get(1)?,
                    body: r.get(2)?,
                    body_structure: r.get(3)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Records a body's structure as of renderer `version`; `None` when its
/// file could not be read, so that it is not tried again and again.
pub(crate) fn put(
    tx: &Transaction<'_>,
    blob: &str,
    version: u32,
    structure: Option<&Structure>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO blob_structure(blob, version, envelope, body, bodystructure)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            blob,
            version,
            structure.map(|s| &s.envelope),
            structure.map(|s| &s.body),
            structure.map(|s| &s.body_structure),
        ],
    )?;
    Ok(())
}
