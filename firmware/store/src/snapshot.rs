//! What a backup needs from the store: a consistent copy of the database
//! taken while mail flows, and an inventory to check a restored copy
//! against (`pochta-backup` counts the same things in the copy it restores).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{BlobId, Store, StoreError};

/// What one copy of the store holds, counted in its database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub domains: u64,
    pub accounts: u64,
    pub aliases: u64,
    pub folders: u64,
    pub messages: u64,
    /// Messages waiting in the outbound queue (one per recipient).
    pub queued: u64,
    /// Each account's message count and bytes, by address.
    pub per_account: BTreeMap<String, AccountCount>,
}

/// One account's mail, as counted from its messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCount {
    pub messages: u64,
    pub bytes: u64,
}

impl Store {
    /// Writes a consistent, compacted copy of the database to `path` (which
    /// must not exist), with SQLite's `VACUUM INTO`: one read transaction,
    /// so deliveries committing meanwhile are either wholly in it or not at
    /// all, and none of them waits for it.
    pub fn copy_database_to(&self, path: &Path) -> Result<(), StoreError> {
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("{} is not UTF-8", path.display())))?;
        // Its own connection: the shared one would hold up the CLI and the
        // admin page for as long as the copy takes.
        let conn = rusqlite::Connection::open_with_flags(
            self.dir().join("pochta.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute("VACUUM INTO ?1", [target])?;
        std::fs::File::open(path)?.sync_all()?;
        Ok(())
    }

    /// Counts what this store holds.
    pub fn inventory(&self) -> Result<Inventory, StoreError> {
        inventory_of(&*self.conn()?)
    }

    /// Every message body the database refers to (stored messages and the
    /// outbound queue), each once, sorted.
    pub fn referenced_blobs(&self) -> Result<Vec<BlobId>, StoreError> {
        blobs_of(&*self.conn()?)
    }

    /// When the oldest account was made (seconds since the epoch): how long
    /// this box has held someone's mail. `None` without accounts.
    pub fn oldest_account_created(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()?
            .query_row("SELECT min(created) FROM accounts", [], |r| r.get(0))?)
    }
}

/// A copy of the database made by [`Store::copy_database_to`] (or restored
/// from a backup), opened read-only: nothing is migrated or written.
pub struct DatabaseCopy {
    conn: rusqlite::Connection,
}

impl DatabaseCopy {
    pub fn open(path: &Path) -> Result<DatabaseCopy, StoreError> {
        if !path.is_file() {
            return Err(StoreError::NotFound(format!("database {}", path.display())));
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        Ok(DatabaseCopy { conn })
    }

    /// SQLite's own consistency check: `ok` when all is well.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub fn inventory(&self) -> Result<Inventory, StoreError> {
        inventory_of(&self.conn)
    }

    pub fn referenced_blobs(&self) -> Result<Vec<BlobId>, StoreError> {
        blobs_of(&self.conn)
    }

    /// The bodies of one account's messages, each once, sorted.
    pub fn blobs_of_account(&self, address: &str) -> Result<Vec<BlobId>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT m.blob FROM messages m
             JOIN mailboxes b ON b.id = m.mailbox_id
             JOIN accounts a ON a.id = b.account_id
             WHERE a.address = ?1 ORDER BY 1",
        )?;
        let rows = stmt.query_map([address], |r| r.get::<_, String>(0))?;
        let mut blobs = Vec::new();
        for row in rows {
            blobs.push(BlobId(row?));
        }
        Ok(blobs)
    }
}

/// One message as a backup's database copy holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedMessage {
    pub folder: String,
    pub uid: u32,
    pub flags: Vec<String>,
    pub internaldate: i64,
    pub blob: BlobId,
    pub size: u64,
}

impl DatabaseCopy {
    /// One account's folders (every one, also the empty ones), in name
    /// order; `None` when the copy has no such account.
    pub fn folders_of_account(&self, address: &str) -> Result<Option<Vec<String>>, StoreError> {
        let exists: i64 = self.conn.query_row(
            "SELECT count(*) FROM accounts WHERE address = ?1",
            [address],
            |r| r.get(0),
        )?;
        if exists == 0 {
            return Ok(None);
        }
        let mut stmt = self.conn.prepare(
            "SELECT b.name FROM mailboxes b JOIN accounts a ON a.id = b.account_id
             WHERE a.address = ?1 ORDER BY b.name",
        )?;
        let rows = stmt.query_map([address], |r| r.get::<_, String>(0))?;
        Ok(Some(rows.collect::<Result<_, _>>()?))
    }

    /// One account's messages, by folder and UID.
    pub fn messages_of_account(&self, address: &str) -> Result<Vec<CopiedMessage>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT b.name, m.uid, m.flags, m.internaldate, m.blob, m.size
             FROM messages m
             JOIN mailboxes b ON b.id = m.mailbox_id
             JOIN accounts a ON a.id = b.account_id
             WHERE a.address = ?1 ORDER BY b.name, m.uid",
        )?;
        let rows = stmt.query_map([address], |r| {
            Ok(CopiedMessage {
                folder: r.get(0)?,
                uid: r.get::<_, i64>(1)? as u32,
                flags: crate::folder::split_flags(&r.get::<_, String>(2)?),
                internaldate: r.get(3)?,
                blob: BlobId(r.get(4)?),
                size: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn inventory_of(conn: &rusqlite::Connection) -> Result<Inventory, StoreError> {
    let count = |sql: &str| -> Result<u64, StoreError> {
        Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
    };
    let mut inventory = Inventory {
        domains: count("SELECT count(*) FROM domains")?,
        accounts: count("SELECT count(*) FROM accounts")?,
        aliases: count("SELECT count(*) FROM aliases")?,
        folders: count("SELECT count(*) FROM mailboxes")?,
        messages: count("SELECT count(*) FROM messages")?,
        queued: count("SELECT count(*) FROM queue")?,
        per_account: BTreeMap::new(),
    };
    let mut stmt = conn.prepare(
        "SELECT a.address, count(m.id), coalesce(sum(m.size), 0)
         FROM accounts a
         LEFT JOIN mailboxes b ON b.account_id = a.id
         LEFT JOIN messages m ON m.mailbox_id = b.id
         GROUP BY a.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
        ))
    })?;
    for row in rows {
        let (address, messages, bytes) = row?;
        inventory
            .per_account
            .insert(address, AccountCount { messages, bytes });
    }
    Ok(inventory)
}

fn blobs_of(conn: &rusqlite::Connection) -> Result<Vec<BlobId>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT blob FROM messages UNION SELECT blob FROM queue ORDER BY 1")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut blobs = Vec::new();
    for row in rows {
        blobs.push(BlobId(row?));
    }
    Ok(blobs)
}
