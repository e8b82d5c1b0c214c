//! Reading what the store holds: folder contents, account usage, the queue.

use std::path::PathBuf;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::directory::normalize_address;
use crate::{Account, BlobId, Store, StoreError};

/// One message in a folder.
#[derive(Debug, Clone, Serialize)]
pub struct MessageInfo {
    /// IMAP UID (RFC 9051 §2.3.1.1).
    pub uid: u32,
    /// CONDSTORE mod-sequence (RFC 7162).
    pub modseq: u64,
    /// Size in bytes.
    pub size: u64,
    /// Where its body is.
    pub path: PathBuf,
    /// Arrival time, seconds since the epoch.
    pub internaldate: i64,
}

/// One outbound queue item.
#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    /// Row id.
    pub id: i64,
    /// Reverse-path.
    pub sender: String,
    /// Forward-path.
    pub recipient: String,
    /// Body size in bytes.
    pub size: u64,
    /// When it was queued (seconds since the epoch).
    pub created: i64,
    /// Next delivery attempt (seconds since the epoch).
    pub next_attempt: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// Last error, if any.
    pub last_error: Option<String>,
}

/// A summary for `pochta status`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// Local domains.
    pub domains: Vec<String>,
    /// Accounts with usage.
    pub accounts: Vec<Account>,
    /// Outbound queue length.
    pub queue: u64,
}

impl Store {
    /// Messages of one folder of an account, by UID.
    pub fn messages(&self, address: &str, folder: &str) -> Result<Vec<MessageInfo>, StoreError> {
        let a = normalize_address(address).unwrap_or_default();
        let conn = self.conn()?;
        let account: Option<i64> = conn
            .query_row("SELECT id FROM accounts WHERE address = ?1", [&a], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(account) = account else {
            return Err(StoreError::NotFound(format!("account {}", address.trim())));
        };
        let mailbox: Option<i64> = conn
            .query_row(
                "SELECT id FROM mailboxes WHERE account_id = ?1 AND name = ?2",
                params![account, folder],
                |r| r.get(0),
            )
            .optional()?;
        let Some(mailbox) = mailbox else {
            return Err(StoreError::NotFound(format!("folder {folder} in {a}")));
        };
        let mut stmt = conn.prepare(
            "SELECT uid, modseq, size, blob, internaldate FROM messages
             WHERE mailbox_id = ?1 ORDER BY uid",
        )?;
        let rows = stmt.query_map([mailbox], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (uid, modseq, size, blob, internaldate) = row?;
            out.push(MessageInfo {
                uid: uid as u32,
                modseq: modseq as u64,
                size: size as u64,
                path: self.blob_path(&BlobId(blob)),
                internaldate,
            });
        }
        Ok(out)
    }

    /// The outbound queue, oldest first.
    pub fn queue(&self) -> Result<Vec<QueueItem>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, sender, recipient, size, created, next_attempt, attempts, last_error
             FROM queue ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(QueueItem {
                id: r.get(0)?,
                sender: r.get(1)?,
                recipient: r.get(2)?,
                size: r.get::<_, i64>(3)? as u64,
                created: r.get(4)?,
                next_attempt: r.get(5)?,
                attempts: r.get(6)?,
                last_error: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Domains, accounts with usage, queue length.
    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        let queue: i64 = self
            .conn()?
            .query_row("SELECT count(*) FROM queue", [], |r| r.get(0))?;
        Ok(StoreStatus {
            domains: self.domains()?,
            accounts: self.accounts()?,
            queue: queue as u64,
        })
    }
}
