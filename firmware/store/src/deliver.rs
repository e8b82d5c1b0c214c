//! Committing received messages: the one writer that turns staged bodies
//! into mailbox entries and queue items, with group commit.
//!
//! Sessions hand a [`Delivery`] with its fsynced [`StagedBlob`] to a single
//! committer thread. The committer takes every job that is waiting, renames
//! their blobs into place, fsyncs each touched blob folder once, and inserts
//! all their rows in one SQLite transaction (WAL, `synchronous=FULL`): many
//! concurrent deliveries share one folder fsync and one WAL fsync. Each job
//! gets its own answer only after that commit, so `250` is never sent for a
//! message that a power cut could lose (DESIGN.md, "Commit").

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, RwLock};

use rusqlite::{params, Connection};

use crate::blob::{self, StagedBlob};
use crate::directory::AccountId;
use crate::folder::{ChangeHook, Message};
use crate::{now, Store, StoreError};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 256;

/// A local mailbox that receives a message.
#[derive(Debug, Clone)]
pub struct LocalRecipient {
    /// The account.
    pub account: AccountId,
    /// Its address, for messages and logs.
    pub address: String,
    /// Folder name, e.g. `INBOX`.
    pub folder: String,
}

/// A remote recipient for the outbound queue, with its DSN parameters
/// (RFC 3461 §4.1, §4.2).
#[derive(Debug, Clone, Default)]
pub struct QueuedRecipient {
    /// Forward-path.
    pub address: String,
    /// ORCPT, as given.
    pub orcpt: Option<String>,
    /// NOTIFY, as given (e.g. `SUCCESS,FAILURE`).
    pub notify: Option<String>,
}

/// Everything the store needs to commit one received message.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// Reverse-path; empty for the null sender.
    pub sender: String,
    /// Local mailboxes, already resolved through aliases.
    pub local: Vec<LocalRecipient>,
    /// Remote recipients for the outbound queue.
    pub remote: Vec<QueuedRecipient>,
    /// DSN `ENVID` (RFC 3461 §4.4).
    pub envid: Option<String>,
    /// DSN `RET` (RFC 3461 §4.3).
    pub ret: Option<String>,
    /// The authenticated submitter, if any.
    pub submitted_by: Option<AccountId>,
    /// Flags for the stored copies (IMAP APPEND); none for received mail.
    pub flags: Vec<String>,
    /// Arrival time to record (IMAP APPEND date-time); now when `None`.
    pub internaldate: Option<i64>,
    /// Recipients that count against `submitted_by`'s sending limit.
    pub counted_recipients: u32,
    /// Where a copy goes when its recipient's folder no longer exists (a
    /// renamed Junk): received mail must not be refused for that.
    pub fallback_folder: Option<String>,
}

/// One stored copy of a committed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCopy {
    /// The recipient's address.
    pub address: String,
    /// Folder name.
    pub folder: String,
    /// UIDVALIDITY of that folder (RFC 4315 APPENDUID).
    pub uidvalidity: u32,
    /// UID of the copy.
    pub uid: u32,
}

/// What a committed delivery became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Each mailbox entry.
    pub stored: Vec<StoredCopy>,
    /// (queue row id, recipient) for each queue item.
    pub queued: Vec<(i64, String)>,
}

/// Why a delivery was not committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The message would take an account over its quota (RFC 3463 5.2.2).
    #[error("mailbox of {0} is full")]
    QuotaExceeded(String),
    /// The store could not commit; the client should try again later.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) struct Job {
    staged: StagedBlob,
    delivery: Delivery,
    reply: mpsc::SyncSender<Result<Receipt, DeliveryError>>,
}

impl Store {
    /// Commits a message: blob into place, rows inserted, all durable when
    /// this returns `Ok`. Blocking: call it off the async runtime.
    pub fn deliver(
        &self,
        staged: StagedBlob,
        delivery: Delivery,
    ) -> Result<Receipt, DeliveryError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            staged,
            delivery,
            reply,
        };
        self.committer().send(job).map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    /// Stores a message in one folder of an account with the given flags
    /// (IMAP APPEND). Durable when it returns, like [`Store::deliver`].
    pub fn append(
        &self,
        account: AccountId,
        folder: &str,
        staged: StagedBlob,
        flags: Vec<String>,
        internaldate: Option<i64>,
    ) -> Result<StoredCopy, DeliveryError> {
        let delivery = Delivery {
            local: vec![LocalRecipient {
                account,
                address: String::new(),
                folder: crate::folder::canonical_name(folder),
            }],
            flags,
            internaldate,
            ..Delivery::default()
        };
        let mut receipt = self.deliver(staged, delivery)?;
        receipt
            .stored
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("folder {folder}")).into())
    }

    /// Bytes used and quota (0 = unlimited) of an account (RFC 9208 STORAGE).
    pub fn usage(&self, account: AccountId) -> Result<(u64, u64), StoreError> {
        let conn = self.conn()?;
        let (used, quota): (i64, i64) = conn.query_row(
            "SELECT used_bytes, quota_bytes FROM accounts WHERE id = ?1",
            [account.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((used.max(0) as u64, quota.max(0) as u64))
    }

    /// Refuses early (at RCPT, with the SIZE the client announced) a message
    /// that could not fit. The committer checks again with the real size.
    pub fn has_room(&self, account: AccountId, size: u64) -> Result<bool, StoreError> {
        let conn = self.conn()?;
        let (quota, used): (i64, i64) = conn.query_row(
            "SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?1",
            [account.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(quota == 0 || used as u64 + size <= quota as u64)
    }
}

/// The committer thread's loop; ends when every [`Store`] handle is gone.
pub(crate) fn run_committer(
    mut conn: Connection,
    blob_dir: PathBuf,
    jobs: mpsc::Receiver<Job>,
    hook: Arc<RwLock<Option<ChangeHook>>>,
    last_delivery: Arc<std::sync::atomic::AtomicU64>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = commit_batch(&mut conn, &blob_dir, &batch);
        last_delivery.store(crate::now_ms(), std::sync::atomic::Ordering::Relaxed);
        let mut touched = HashSet::new();
        for (job, result) in batch.iter().zip(&results) {
            if result.is_ok() {
                touched.extend(job.delivery.local.iter().map(|l| l.account));
            }
        }
        for account in touched {
            crate::notify(&hook, account);
        }
        for (job, result) in batch.into_iter().zip(results) {
            // A session that went away does not mind missing its answer.
            let _ = job.reply.send(result);
        }
    }
}

fn commit_batch(
    conn: &mut Connection,
    blob_dir: &std::path::Path,
    batch: &[Job],
) -> Vec<Result<Receipt, DeliveryError>> {
    let mut results: Vec<Option<Result<Receipt, DeliveryError>>> = Vec::with_capacity(batch.len());
    let mut dirs = BTreeSet::new();
    for job in batch {
        match blob::place(blob_dir, &job.staged) {
            Ok(dir) => {
                dirs.insert(dir);
                results.push(None);
            }
            Err(e) => results.push(Some(Err(StoreError::Io(e).into()))),
        }
    }
    for dir in &dirs {
        if let Err(e) = blob::sync_dir(dir) {
            let msg = format!("fsync {}: {e}", dir.display());
            return batch
                .iter()
                .map(|_| Err(StoreError::Io(std::io::Error::other(msg.clone())).into()))
                .collect();
        }
    }
    let outcome = (|| -> Result<(), StoreError> {
        let mut tx = conn.transaction()?;
        for (job, result) in batch.iter().zip(results.iter_mut()) {
            if result.is_some() {
                continue;
            }
            let sp = tx.savepoint()?;
            let applied = apply(&sp, job);
            if applied.is_ok() {
                sp.commit()?;
            }
            *result = Some(applied);
        }
        tx.commit()?;
        Ok(())
    })();
    match outcome {
        Ok(()) => results
            .into_iter()
            .map(|r| r.expect("every job has a result"))
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "delivery transaction failed");
            let msg = e.to_string();
            batch
                .iter()
                .map(|_| Err(StoreError::Io(std::io::Error::other(msg.clone())).into()))
                .collect()
        }
    }
}

fn apply(tx: &Connection, job: &Job) -> Result<Receipt, DeliveryError> {
    let size = job.staged.size as i64;
    let blob = &job.staged.id.0;
    let date = now();
    let mut receipt = Receipt {
        stored: Vec::new(),
        queued: Vec::new(),
    };
    let mut seen = HashSet::new();
    for rcpt in &job.delivery.local {
        if !seen.insert((rcpt.account, rcpt.folder.as_str())) {
            continue;
        }
        let (quota, used): (i64, i64) = tx
            .query_row(
                "SELECT quota_bytes, used_bytes FROM accounts WHERE id = ?1",
                [rcpt.account.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(StoreError::from)?;
        if quota > 0 && used + size > quota {
            return Err(DeliveryError::QuotaExceeded(rcpt.address.clone()));
        }
        let mut folder = crate::folder::folder_by_name(tx, rcpt.account, &rcpt.folder)?;
        if let (None, Some(fallback)) = (&folder, &job.delivery.fallback_folder) {
            folder = crate::folder::folder_by_name(tx, rcpt.account, fallback)?;
        }
        let folder = folder.ok_or_else(|| {
            StoreError::NotFound(format!("folder {} of {}", rcpt.folder, rcpt.address))
        })?;
        let message = Message {
            uid: 0,
            modseq: 0,
            size: size as u64,
            blob: job.staged.id.clone(),
            internaldate: job.delivery.internaldate.unwrap_or(date),
            flags: job.delivery.flags.clone(),
        };
        let uid = crate::folder::insert_message(tx, &folder, &message)?;
        receipt.stored.push(StoredCopy {
            address: rcpt.address.clone(),
            folder: folder.name.clone(),
            uidvalidity: folder.uidvalidity,
            uid,
        });
    }
    let d = &job.delivery;
    if let (Some(account), n @ 1..) = (d.submitted_by, d.counted_recipients) {
        crate::limits::record(tx, account, n)?;
    }
    for rcpt in &d.remote {
        tx.execute(
            "INSERT INTO queue(blob, size, sender, recipient, orcpt, notify, ret, envid,
                               account_id, created, next_attempt)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            params![
                blob,
                size,
                d.sender,
                rcpt.address,
                rcpt.orcpt,
                rcpt.notify,
                d.ret,
                d.envid,
                d.submitted_by.map(|a| a.0),
                date
            ],
        )
        .map_err(StoreError::from)?;
        receipt
            .queued
            .push((tx.last_insert_rowid(), rcpt.address.clone()));
    }
    Ok(receipt)
}
