//! Durable state of a Pochta box: SQLite metadata and content-addressed
//! message bodies.
//!
//! Layout:
//! - `schema`: numbered migrations;
//! - `blob`: message bodies as immutable files named by SHA-256, written with
//!   fsync-rename-fsync;
//! - `admins`: administrators of the web admin page (argon2id password,
//!   TOTP secret);
//! - `policy`: what an address and a password may be, for every caller;
//! - `directory`: domains, accounts (argon2id passwords), aliases, groups,
//!   catch-alls and recipient resolution; `alias_targets` removes one
//!   member of a group;
//! - `deliver`: the committer thread (group commit) that makes a received
//!   message durable before SMTP answers `250`;
//! - `folder`: folders and message operations (flags, expunge, copy, move,
//!   changes by mod-sequence) for IMAP and POP3;
//! - `index`: the full-text index (FTS5) that narrows SEARCH, filled in the
//!   background;
//! - `structure`: each body's structure as FETCH reports it, cached by the
//!   same background indexer;
//! - `mailbox`: reading folders, messages and the outbound queue;
//! - `dkim`: DKIM signing keys per domain (kept here, made and used by the
//!   filter crate);
//! - `limits`: per-account sending limits and the durable count of
//!   recipients submitted in the last 24 hours;
//! - `queue`: the delivery worker's side of the queue (claim under a lease,
//!   record outcomes);
//! - `login`: mail clients' logins (account password, app passwords, what
//!   TOTP and disabling change);
//! - `app_passwords`: per-device passwords made by the server, kept as
//!   SHA-256;
//! - `account_settings`: one account's details, offboarding (disable with
//!   forward and auto-reply), its TOTP enrolment;
//! - `snapshot`: a consistent copy of the database for backups, and the
//!   inventory a restored copy is checked against;
//! - `system`: the system part's heartbeat, named values, queue age, and
//!   the disk gate that refuses new mail before the disk is full.
//!
//! The data folder holds `pochta.db` (WAL, `synchronous=FULL`), `blobs/`,
//! and `tmp/` for bodies still being received. Protocol crates use the
//! [`Store`] API; nothing SQLite-specific leaks through it, so that another
//! backend can take its place. This crate knows nothing of the network.

mod admin_keys;
mod admin_sessions;
mod admins;
mod alias_targets;
mod blob;
mod deliver;
mod directory;
mod dkim;
mod folder;
mod index;
mod limits;
mod mailbox;
mod policy;
mod queue;
mod schema;
mod snapshot;
mod structure;
mod system;

mod account_settings;
mod app_passwords;
mod login;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use rusqlite::Connection;

pub use admin_keys::ApiToken;
pub use admin_sessions::AdminSession;
pub use admins::AdminUser;
pub use alias_targets::alias_kind;
pub use blob::{BlobId, BlobWriter, StagedBlob};
pub use deliver::{Delivery, DeliveryError, LocalRecipient, QueuedRecipient, Receipt, StoredCopy};
pub use directory::{
    check_address, hash_password, normalize_address, Account, AccountId, CatchAll, Resolution,
};
pub use dkim::{DkimAlgorithm, DkimKey};
pub use folder::{
    check_folder_name, ChangeHook, Changes, Copied, FlagOp, Folder, FolderCounts, FolderId, Message,
};
pub use index::{ExtractFn, Extracted, Extractor, IndexText, TextField};
pub use limits::SEND_WINDOW_SECS;
pub use mailbox::{MessageInfo, QueueItem, StoreStatus};
pub use policy::{
    check_password, parse_address, parse_domain, BadAddress, WeakPassword, MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
};
pub use queue::QueueEntry;
pub use snapshot::{AccountCount, CopiedMessage, DatabaseCopy, Inventory};
pub use structure::Structure;
pub use system::DiskSpace;

pub use account_settings::{
    AccountDetails, AccountTotp, AutoReply, Offboarding, AUTO_REPLY_INTERVAL_SECS,
    MAX_AUTO_REPLY_CHARS,
};
pub use app_passwords::{AppPassword, MAX_NAME_CHARS as MAX_APP_PASSWORD_NAME_CHARS};
pub use login::{Credential, LoginCheck, Refusal};

/// The folders every account gets, with their RFC 6154 special-use flag.
pub const SPECIAL_FOLDERS: [(&str, Option<&str>); 6] = [
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Junk", Some("\\Junk")),
    ("Trash", Some("\\Trash")),
    ("Archive", Some("\\Archive")),
];

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused an operation.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A file operation failed (disk full, permissions, I/O error).
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    /// The database was written by a newer Pochta.
    #[error("database schema version {found} is newer than this program knows ({known}): upgrade pochta")]
    SchemaTooNew {
        /// Version in the file.
        found: usize,
        /// Newest version this build knows.
        known: usize,
    },
    /// Something named does not exist.
    #[error("no such {0}")]
    NotFound(String),
    /// Something to be created exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// An argument is not acceptable; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The account's quota does not allow this (RFC 9208 OVERQUOTA).
    #[error("quota exceeded")]
    OverQuota,
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// The data folder's disk is too full to take new mail (the limit is
    /// `[system] disk_refuse_percent`).
    #[error("the mail server's disk is {used_percent} % full")]
    DiskFull {
        /// Percent in use.
        used_percent: u8,
    },
}

/// A handle on the data folder; cheap to clone, safe to share between threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    blob_dir: PathBuf,
    tmp_dir: PathBuf,
    conn: Mutex<Connection>,
    committer: Mutex<mpsc::Sender<deliver::Job>>,
    hook: Arc<RwLock<Option<ChangeHook>>>,
    /// When the committer last committed (ms since the epoch); the indexer
    /// waits for a quiet moment so it never slows deliveries down.
    last_delivery: Arc<AtomicU64>,
    /// New mail is refused at this percent of the disk in use (`system`).
    disk_limit: std::sync::atomic::AtomicU8,
    /// The last disk reading of the gate: percent used, and when (ms).
    disk_used: std::sync::atomic::AtomicU8,
    disk_checked_ms: AtomicU64,
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Calls the change hook, if one is installed.
pub(crate) fn notify(hook: &RwLock<Option<ChangeHook>>, account: AccountId) {
    if let Some(h) = hook.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        h(account);
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Durability promise: a commit is on disk when it returns.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Several connections write (the committer, the indexer, IMAP flag
    // changes, the CLI). A deferred transaction that reads first and then
    // writes cannot wait for the write lock in WAL mode and fails with
    // "database is locked"; IMMEDIATE takes the lock at BEGIN and waits.
    conn.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    // `rarray(?)`: a list of values as one parameter, for lookups in bulk.
    rusqlite::vtab::array::load_module(&conn)?;
    Ok(conn)
}

impl Store {
    /// Whether `dir` holds a store (its database file), without creating
    /// anything.
    pub fn exists(dir: &Path) -> bool {
        dir.join("pochta.db").is_file()
    }

    /// Opens (creating if needed) the store in `dir`, applies migrations,
    /// and clears bodies left half-received by a crash.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if !dir.exists() {
            // Password hashes and everyone's mail live here: owner only.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        // Absolute, so that paths handed out stay valid whatever the caller's cwd.
        let dir = &std::fs::canonicalize(dir)?;
        let blob_dir = dir.join("blobs");
        let tmp_dir = dir.join("tmp");
        blob::prepare(&blob_dir, &tmp_dir)?;
        let db = dir.join("pochta.db");
        let mut conn = open_connection(&db)?;
        schema::migrate(&mut conn)?;
        let writer = open_connection(&db)?;
        let (tx, rx) = mpsc::channel();
        let committer_blobs = blob_dir.clone();
        let hook: Arc<RwLock<Option<ChangeHook>>> = Arc::default();
        let committer_hook = hook.clone();
        let last_delivery = Arc::new(AtomicU64::new(0));
        let committer_clock = last_delivery.clone();
        std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || {
                deliver::run_committer(writer, committer_blobs, rx, committer_hook, committer_clock)
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                blob_dir,
                tmp_dir,
                conn: Mutex::new(conn),
                committer: Mutex::new(tx),
                hook,
                last_delivery,
                disk_limit: std::sync::atomic::AtomicU8::new(95),
                disk_used: std::sync::atomic::AtomicU8::new(0),
                disk_checked_ms: AtomicU64::new(0),
            }),
        })
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Starts receiving a message body.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        Ok(BlobWriter::create(&self.inner.tmp_dir)?)
    }

    /// Path of a stored body, for reading.
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        blob::blob_path(&self.inner.blob_dir, id)
    }

    /// Runs SQLite's own consistency check; `ok` when all is well.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(self
            .conn()?
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?)
    }

    pub(crate) fn conn(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        // A panic while holding the lock leaves SQLite consistent (it rolls
        // back an open transaction), so a poisoned lock is still usable.
        Ok(self.inner.conn.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn committer(&self) -> mpsc::Sender<deliver::Job> {
        self.inner
            .committer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod folder_tests;
#[cfg(test)]
mod structure_tests;
#[cfg(test)]
mod tests;
