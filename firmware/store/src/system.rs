//! What the system part (`pochta-system`) keeps in the store: a heartbeat
//! write that proves the database commits, the queue's oldest entry, small
//! named values (alert state, the last good clock reading), and the disk
//! gate that refuses new mail before the disk is full.

use std::path::Path;
use std::sync::atomic::Ordering;

use rusqlite::{params, OptionalExtension};

use crate::directory::{AccountId, CatchAll, Resolution};
use crate::{Store, StoreError};

/// How long a disk reading answers [`Store::disk_room`].
const DISK_RECHECK_MS: u64 = 1000;

/// Space on the data folder's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Size of the filesystem in bytes.
    pub total: u64,
    /// Free, including what is reserved for root, in bytes.
    pub free: u64,
    /// Free for an unprivileged writer, in bytes.
    pub available: u64,
}

impl DiskSpace {
    /// Whole percent in use as `df` counts it: used over what unprivileged
    /// writers could use (the root reserve left out), rounded up — a 94.2 %
    /// full disk is 95 %, so the gate shuts early rather than late.
    pub fn used_percent(&self) -> u8 {
        let usable = self.usable() as u128;
        if usable == 0 {
            return 100;
        }
        let used = usable - self.available as u128;
        (used * 100).div_ceil(usable).min(100) as u8
    }

    /// What unprivileged writers could ever use: what is used plus what is
    /// available to them (the root reserve left out, as `df` counts).
    pub fn usable(&self) -> u64 {
        self.total.saturating_sub(self.free) + self.available
    }
}

impl Store {
    /// Who gets the box's own mail (alerts, the weekly summary): what
    /// `postmaster@` of the oldest domain leads to (RFC 5321 §4.5.1: every
    /// domain has one), or else the oldest account. `None` on a box
    /// without accounts.
    pub fn postmaster(&self) -> Result<Option<Vec<(AccountId, String)>>, StoreError> {
        let first: Option<String> = self
            .conn()?
            .query_row(
                "SELECT name FROM domains ORDER BY created, name LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(domain) = first {
            if let Resolution::Deliver { accounts, .. } =
                self.resolve(&format!("postmaster@{domain}"), CatchAll::Use)?
            {
                if !accounts.is_empty() {
                    return Ok(Some(accounts));
                }
            }
        }
        let oldest: Option<(i64, String)> = self
            .conn()?
            .query_row(
                "SELECT id, address FROM accounts ORDER BY id LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(oldest.map(|(id, address)| vec![(AccountId(id), address)]))
    }

    /// New mail is refused once the data folder's disk is this full
    /// (percent; 100 turns the gate off but for a full disk).
    pub fn set_disk_limit(&self, refuse_percent: u8) {
        self.inner
            .disk_limit
            .store(refuse_percent.min(100), Ordering::Relaxed);
    }

    /// The data folder's disk space (statvfs(3)).
    pub fn disk_space(&self) -> Result<DiskSpace, StoreError> {
        let st = nix::sys::statvfs::statvfs(self.dir()).map_err(std::io::Error::from)?;
        let unit = st.fragment_size() as u64;
        Ok(DiskSpace {
            total: (st.blocks() as u64).saturating_mul(unit),
            free: (st.blocks_free() as u64).saturating_mul(unit),
            available: (st.blocks_available() as u64).saturating_mul(unit),
        })
    }

    /// `Err(DiskFull)` when new mail must be refused: the disk is at or over
    /// the limit. Mail already accepted is not affected; SMTP answers
    /// `452 4.3.1` and IMAP APPEND `NO [LIMIT]`, and both work again by
    /// themselves once space returns.
    pub fn disk_room(&self) -> Result<(), StoreError> {
        // Every MAIL FROM and APPEND asks: one statvfs per second serves
        // them all, so the question is cheap enough for the async runtime.
        let now = crate::now_ms();
        let checked = self.inner.disk_checked_ms.load(Ordering::Relaxed);
        let used = if now.saturating_sub(checked) < DISK_RECHECK_MS {
            self.inner.disk_used.load(Ordering::Relaxed)
        } else {
            let used = self.disk_space()?.used_percent();
            self.inner.disk_used.store(used, Ordering::Relaxed);
            self.inner.disk_checked_ms.store(now, Ordering::Relaxed);
            used
        };
        if used >= self.inner.disk_limit.load(Ordering::Relaxed) {
            return Err(StoreError::DiskFull { used_percent: used });
        }
        Ok(())
    }

    /// Commits one small write (the time, under `heartbeat`): the probe that
    /// says the database still takes writes.
    pub fn heartbeat(&self, at: i64) -> Result<(), StoreError> {
        self.set_value("heartbeat", &at.to_string())
    }

    /// The creation time of the oldest message waiting in the outbound
    /// queue, and how many entries wait.
    pub fn queue_oldest(&self) -> Result<(Option<i64>, u64), StoreError> {
        let conn = self.conn()?;
        let (oldest, count): (Option<i64>, i64) =
            conn.query_row("SELECT MIN(created), COUNT(*) FROM queue", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((oldest, count.max(0) as u64))
    }

    /// A named value of the system part (`system.` keys in `settings`).
    pub fn value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [format!("system.{key}")],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Reads a named value without opening the store: no thread, no
    /// migration, nothing made when there is no database. For what the
    /// server must know before it confines itself (which folders it may
    /// write), when no thread may exist yet.
    pub fn peek_value(dir: &Path, key: &str) -> Result<Option<String>, StoreError> {
        let db = dir.join("pochta.db");
        if !db.is_file() {
            return Ok(None);
        }
        let conn = rusqlite::Connection::open(&db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let found = conn
            .query_row(
                "SELECT value FROM settings WHERE key = ?1",
                [format!("system.{key}")],
                |r| r.get(0),
            )
            .optional();
        match found {
            Ok(v) => Ok(v),
            // A folder made by an older pochta, before settings existed.
            Err(rusqlite::Error::SqliteFailure(_, Some(m))) if m.contains("no such table") => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sets a named value of the system part; durable when it returns.
    pub fn set_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT OR REPLACE INTO settings(key, value) VALUES (?1, ?2)",
            params![format!("system.{key}"), value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_percent_rounds_up() {
        let d = |total, available| {
            DiskSpace {
                total,
                free: available,
                available,
            }
            .used_percent()
        };
        assert_eq!(d(1000, 1000), 0);
        assert_eq!(d(1000, 58), 95);
        assert_eq!(d(1000, 51), 95);
        assert_eq!(d(1000, 50), 95);
        assert_eq!(d(1000, 49), 96);
        assert_eq!(d(1000, 0), 100);
        assert_eq!(d(0, 0), 100);
        // df's count on a disk with a root reserve (the numbers of a real
        // one: 63 % by df).
        let reserved = DiskSpace {
            total: 66_053_021,
            free: 51_086_255,
            available: 8_854_706,
        };
        assert_eq!(reserved.used_percent(), 63);
    }

    #[test]
    fn the_gate_follows_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let used = store.disk_space().unwrap().used_percent();
        store.set_disk_limit(100);
        if used < 100 {
            store.disk_room().unwrap();
        }
        store.set_disk_limit(used);
        match store.disk_room() {
            Err(StoreError::DiskFull { used_percent }) => assert!(used_percent >= used),
            other => panic!("expected DiskFull, got {other:?}"),
        }
    }

    #[test]
    fn values_heartbeat_and_queue_age() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.value("clock").unwrap(), None);
        store.set_value("clock", "123").unwrap();
        assert_eq!(store.value("clock").unwrap().as_deref(), Some("123"));
        store.heartbeat(99).unwrap();
        assert_eq!(store.value("heartbeat").unwrap().as_deref(), Some("99"));
        assert_eq!(store.queue_oldest().unwrap(), (None, 0));
    }

    #[test]
    fn the_postmaster_is_the_alias_or_else_the_oldest_account() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.postmaster().unwrap(), None);
        store.add_domain("a.test").unwrap();
        store
            .add_account("owner@a.test", "Long-enough-pass-1", 0)
            .unwrap();
        store
            .add_account("boss@a.test", "Long-enough-pass-2", 0)
            .unwrap();
        let who = store.postmaster().unwrap().unwrap();
        assert_eq!(who[0].1, "owner@a.test");
        store
            .add_alias("postmaster@a.test", &["boss@a.test".to_owned()])
            .unwrap();
        let who = store.postmaster().unwrap().unwrap();
        assert_eq!(who.len(), 1);
        assert_eq!(who[0].1, "boss@a.test");
    }
}
