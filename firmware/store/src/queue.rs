//! The outbound queue as the delivery worker sees it: claim due rows under a
//! lease, then record each attempt's outcome.
//!
//! A row leaves the queue only when its recipient is delivered, bounced (the
//! DSN is committed first) or deleted by the operator, so an acknowledged
//! message is never lost. The lease (`lease_until`) keeps a row from being
//! picked twice while an attempt runs; [`Store::release_queue_leases`] at
//! start hands rows that a crash left in flight back to the worker.

use rusqlite::{params, OptionalExtension};

use crate::{now, BlobId, Store, StoreError};

/// A queue row claimed for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Row id.
    pub id: i64,
    /// The message body.
    pub blob: BlobId,
    /// Body size in bytes.
    pub size: u64,
    /// Reverse-path; empty for the null sender.
    pub sender: String,
    /// Forward-path.
    pub recipient: String,
    /// DSN ORCPT (RFC 3461 §4.2).
    pub orcpt: Option<String>,
    /// DSN NOTIFY (RFC 3461 §4.1).
    pub notify: Option<String>,
    /// DSN RET (RFC 3461 §4.3).
    pub ret: Option<String>,
    /// DSN ENVID (RFC 3461 §4.4).
    pub envid: Option<String>,
    /// When it was queued (seconds since the epoch).
    pub created: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// Whether the sender has been told of a delay.
    pub warned: bool,
}

impl Store {
    /// Claims up to `limit` rows that are due and not leased, leasing them
    /// for `lease_secs`. Oldest due first.
    pub fn claim_queue(
        &self,
        limit: usize,
        lease_secs: i64,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        let t = now();
        let mut conn = self.conn()?;
        // A cheap read first: most polls find nothing and need no write lock.
        let due: Option<i64> = conn
            .query_row(
                "SELECT id FROM queue WHERE next_attempt <= ?1 AND lease_until <= ?1 LIMIT 1",
                [t],
                |r| r.get(0),
            )
            .optional()?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let tx = conn.transaction()?;
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT id, blob, size, sender, recipient, orcpt, notify, ret, envid, created,
                        attempts, warned
                 FROM queue WHERE next_attempt <= ?1 AND lease_until <= ?1
                 ORDER BY next_attempt, id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![t, limit as i64], |r| {
                Ok(QueueEntry {
                    id: r.get(0)?,
                    blob: BlobId(r.get(1)?),
                    size: r.get::<_, i64>(2)?.max(0) as u64,
                    sender: r.get(3)?,
                    recipient: r.get(4)?,
                    orcpt: r.get(5)?,
                    notify: r.get(6)?,
                    ret: r.get(7)?,
                    envid: r.get(8)?,
                    created: r.get(9)?,
                    attempts: r.get(10)?,
                    warned: r.get::<_, i64>(11)? != 0,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
            let mut lease = tx.prepare("UPDATE queue SET lease_until = ?2 WHERE id = ?1")?;
            for e in &out {
                lease.execute(params![e.id, t + lease_secs])?;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Ends every lease: at start, nothing is in flight.
    pub fn release_queue_leases(&self) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "UPDATE queue SET lease_until = 0 WHERE lease_until != 0",
            [],
        )?)
    }

    /// A recipient is done with (delivered, or bounced after its DSN was
    /// committed): its row goes. `false` if it was gone already.
    pub fn queue_done(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn()?
            .execute("DELETE FROM queue WHERE id = ?1", [id])?
            == 1)
    }

    /// An attempt failed transiently: count it, keep the reason, and wait
    /// until `next_attempt`.
    pub fn queue_defer(&self, id: i64, next_attempt: i64, error: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE queue SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3,
                              lease_until = 0
             WHERE id = ?1",
            params![id, next_attempt, error],
        )?;
        Ok(())
    }

    /// The sender has been told of the delay (once per row).
    pub fn queue_mark_warned(&self, id: i64) -> Result<(), StoreError> {
        self.conn()?
            .execute("UPDATE queue SET warned = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Makes a row due now (`pochta queue retry`). `false` if there is no such row.
    pub fn queue_retry_now(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.conn()?.execute(
            "UPDATE queue SET next_attempt = ?2 WHERE id = ?1",
            params![id, now()],
        )? == 1)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Delivery, QueuedRecipient, Store};

    fn queue_one(store: &Store, to: &str) -> i64 {
        let mut w = store.blob_writer().unwrap();
        w.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let delivery = Delivery {
            sender: "a@a.test".into(),
            remote: vec![QueuedRecipient {
                address: to.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        store.deliver(w.finish().unwrap(), delivery).unwrap().queued[0].0
    }

    #[test]
    fn claim_lease_defer_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = queue_one(&store, "b@b.test");
        let claimed = store.claim_queue(10, 3600).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, id);
        assert_eq!(claimed[0].recipient, "b@b.test");
        assert!(std::fs::metadata(store.blob_path(&claimed[0].blob)).is_ok());
        // Leased: not claimed again.
        assert!(store.claim_queue(10, 3600).unwrap().is_empty());
        // A restart ends the lease.
        assert_eq!(store.release_queue_leases().unwrap(), 1);
        assert_eq!(store.claim_queue(10, 3600).unwrap().len(), 1);
        store
            .queue_defer(id, crate::now() + 100, "451 later")
            .unwrap();
        assert!(store.claim_queue(10, 3600).unwrap().is_empty());
        let item = &store.queue().unwrap()[0];
        assert_eq!(item.attempts, 1);
        assert_eq!(item.last_error.as_deref(), Some("451 later"));
        assert!(store.queue_retry_now(id).unwrap());
        let again = store.claim_queue(10, 3600).unwrap();
        assert_eq!((again[0].attempts, again[0].warned), (1, false));
        store.queue_mark_warned(id).unwrap();
        assert!(store.queue_done(id).unwrap());
        assert!(!store.queue_done(id).unwrap());
        assert!(!store.queue_retry_now(id).unwrap());
        assert!(store.queue().unwrap().is_empty());
    }
}
