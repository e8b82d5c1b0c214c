//! Backups of a Pochta box: encrypted, incremental, in restic's repository
//! format (written with `rustic_core`), so that stock `restic` on any
//! computer can list, check and restore them with the box's key.
//!
//! - `key`: the repository password, made once per box and written down by
//!   its owner;
//! - `schedule`: the daily run, the weekly test restore, one run at a time,
//!   and the record of runs;
//! - `probe`: the `backup` health check;
//! - `stage`: a consistent picture of the live box in one folder (database
//!   copy, message bodies, TLS files, configuration, a manifest);
//! - `repo`: where backups go and how the repository is opened;
//! - `s3`: S3-compatible storage as a place for the repository, laid out as
//!   restic's S3 backend lays it out;
//! - `settings`: the owner's choices (destinations, hour, retention), kept
//!   in the store;
//! - this file: backing up, listing, restoring, verifying and pruning.
//!
//! Every operation here is blocking (rustic_core works on its own threads);
//! the server calls it from a thread of its own.

mod key;
mod probe;
mod repo;
mod s3;
mod schedule;
mod settings;
mod stage;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use pochta_store::{DatabaseCopy, Inventory, Store, StoreError};
use rustic_core::repofile::SnapshotFile;
use rustic_core::{
    BackupOptions, CheckOptions, KeepOptions, LocalDestination, LsOptions, ParentOptions, PathList,
    PruneOptions, ReadSubsetOption, RestoreOptions, SnapshotOptions,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use key::Key;
pub use probe::BackupProbe;
pub use repo::{check_s3, Destination, S3Access};
pub use s3::{Addressing, S3Target};
pub use schedule::{
    back_up_everywhere, verify_everywhere, DestinationStatus, Done, Failure, Outcome, RunLock,
    Scheduler, Status, Verified, VerifyOutcome,
};
pub use settings::Settings;
pub use stage::{Manifest, Stage};

/// The path a box's files have inside every snapshot: `restic restore
/// latest --target T` puts the box in `T/pochta/`.
pub const SNAPSHOT_ROOT: &str = "/pochta";
/// The tag on every snapshot Pochta makes.
pub const TAG: &str = "pochta";

/// Why a backup operation failed. Each says what went wrong in words an
/// owner can act on.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("file system: {0}")]
    Io(#[from] io::Error),
    /// The repository refused or failed (wrong key, unreachable, full,
    /// damaged).
    #[error("backup repository: {0}")]
    Repository(String),
    /// There is nothing to restore or verify.
    #[error("{0}")]
    NotFound(String),
    /// What was read back does not match what was written.
    #[error("{0}")]
    Corrupt(String),
    /// Another run holds this data folder's backup lock.
    #[error("{0}")]
    Busy(String),
}

impl From<Box<rustic_core::RusticError>> for BackupError {
    fn from(e: Box<rustic_core::RusticError>) -> Self {
        BackupError::Repository(repo::explain(&e))
    }
}

/// What one backup did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The snapshot's id (restic's short form, 8 hex digits).
    pub snapshot: String,
    /// Whether this backup made the repository.
    pub created_repository: bool,
    pub destination: String,
    pub manifest: Manifest,
    /// Files and bytes the snapshot holds.
    pub files: u64,
    pub bytes: u64,
    /// New files, and the bytes this backup added to the repository
    /// (after deduplication, compression and encryption).
    pub files_new: u64,
    pub bytes_added: u64,
    pub duration_ms: u64,
}

/// One snapshot, as `pochta backup list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    /// RFC 3339, the box's offset.
    pub time: String,
    pub host: String,
    pub tags: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub bytes_added: u64,
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub snapshot: String,
    pub destination: String,
    /// Whether every pack file was read and checked (`--full`), or a part.
    pub full: bool,
    /// Problems the repository check reported (empty when all is well).
    pub repository_problems: Vec<String>,
    /// `ok`, or what SQLite's integrity check said of the restored database.
    pub database: String,
    /// What the backup's manifest says it holds, and what the restored
    /// database holds.
    pub manifest: Inventory,
    pub restored: Inventory,
    /// What the live store holds now (newer mail is expected there).
    pub live: Inventory,
    /// Accounts whose mail was restored and hashed.
    pub accounts_checked: Vec<String>,
    /// Message bodies restored and checked against their SHA-256 names.
    pub bodies_checked: u64,
    pub body_bytes_checked: u64,
    /// Everything that did not match.
    pub problems: Vec<String>,
    pub duration_ms: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.repository_problems.is_empty() && self.problems.is_empty()
    }
}

/// How many snapshots to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Retention {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            daily: 7,
            weekly: 4,
            monthly: 12,
        }
    }
}

/// What pruning did.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub kept: Vec<String>,
    pub forgotten: Vec<String>,
}

/// Backs up `store` to `dest` (making the repository there the first time),
/// then checks the repository's structure. Nothing is reported as done
/// unless every step was.
pub fn backup(store: &Store, dest: &Destination, key: &Key) -> Result<BackupReport, BackupError> {
    let start = Instant::now();
    let stage = Stage::make(store)?;
    let (repo, created_repository) = repo::open_or_init(dest, key, store.dir())?;
    let repo = repo.to_indexed_ids()?;
    let snap = SnapshotOptions::default()
        .host(hostname())
        .add_tags(TAG)?
        .to_snapshot()?;
    let source = PathList::from_string(
        stage
            .dir()
            .to_str()
            .ok_or_else(|| BackupError::NotFound("the data folder's path is not UTF-8".into()))?,
    )?
    .sanitize()
    .map_err(|e| BackupError::Repository(format!("the stage's path: {e}")))?;
    // Bodies are immutable and named by their hash, and the stage links them
    // anew each time (a new ctime): name, size and mtime decide what changed.
    let opts = BackupOptions::default()
        .as_path(PathBuf::from(SNAPSHOT_ROOT))
        .parent_opts(
            ParentOptions::default()
                .ignore_ctime(true)
                .ignore_inode(true),
        );
    let snap = repo.backup(&opts, &source, snap)?;
    let manifest = stage.manifest.clone();
    drop(stage);
    // The check of what was written: every snapshot's trees and every blob
    // they name are in the index, and the index matches the pack files.
    let repo = repo.drop_index();
    let results = repo.check(CheckOptions::default())?;
    let problems = check_problems(&results);
    if !problems.is_empty() {
        return Err(BackupError::Corrupt(format!(
            "the backup was written but the repository check found: {}",
            problems.join("; ")
        )));
    }
    let summary = snap.summary.clone().unwrap_or_default();
    Ok(BackupReport {
        snapshot: short(&snap),
        created_repository,
        destination: dest.describe(),
        manifest,
        files: summary.total_files_processed,
        bytes: summary.total_bytes_processed,
        files_new: summary.files_new,
        bytes_added: summary.data_added_packed,
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

/// The snapshots in `dest`, oldest first.
pub fn list(dest: &Destination, key: &Key, data: &Path) -> Result<Vec<SnapshotInfo>, BackupError> {
    let Some(repo) = repo::open_if_there(dest, key, data)? else {
        return Ok(Vec::new());
    };
    let mut snaps = repo.get_all_snapshots()?;
    snaps.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(snaps.iter().map(info).collect())
}

/// Restores snapshot `snapshot` (an id, a unique prefix, or `latest`) of the
/// whole box into `into`, which must be empty or not exist: `into` then
/// holds a data folder (`pochta.db`, `blobs/`, `tls/`, ...) that `pochta
/// serve --data` can open. Each restored body is checked against its name.
pub fn restore(
    dest: &Destination,
    key: &Key,
    data: &Path,
    snapshot: &str,
    into: &Path,
) -> Result<Manifest, BackupError> {
    if into.exists() && std::fs::read_dir(into)?.next().is_some() {
        return Err(BackupError::NotFound(format!(
            "{} is not empty: restore into a new folder",
            into.display()
        )));
    }
    let repo = repo::open(dest, key, data)?.to_indexed()?;
    let node = repo.node_from_snapshot_path(&format!("{snapshot}:{SNAPSHOT_ROOT}"), |s| {
        s.tags.contains(TAG)
    })?;
    let ls = repo.ls(&node, &LsOptions::default())?;
    std::fs::create_dir_all(into)?;
    let target = format!("{}/", path_str(into)?);
    let destination = LocalDestination::new(&target, true, false)?;
    let opts = RestoreOptions::default().no_ownership(true);
    let plan = repo.prepare_restore(&opts, ls.clone(), &destination, false)?;
    repo.restore(plan, &opts, ls, &destination)?;
    let manifest = read_manifest(&into.join(stage::MANIFEST))?;
    let copy = DatabaseCopy::open(&into.join(stage::DATABASE))?;
    let blob_dir = into.join("blobs");
    for id in copy.referenced_blobs()? {
        let path = id.path_in(&blob_dir);
        match hash_file(&path) {
            Ok(hash) if hash == id.0 => {}
            Ok(_) => {
                return Err(BackupError::Corrupt(format!(
                    "the restored message body {} does not match its hash",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(BackupError::Corrupt(format!(
                    "the restored message body {} cannot be read: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok(manifest)
}

/// What restoring one account put back.
#[derive(Debug, Clone, Serialize)]
pub struct AccountRestore {
    pub account: String,
    pub snapshot: String,
    /// The folder the account's folders were restored under.
    pub folder: String,
    pub folders: u64,
    pub messages: u64,
    pub bytes: u64,
}

/// Restores one account's mail from `snapshot` into the live box, beside
/// what it has now: each of its folders in the backup becomes a folder
/// under `Restored YYYY-MM-DD` (the snapshot's date), with every message,
/// its flags and its date. Nothing the account has now is touched, so a
/// restore can never lose mail; the owner moves back what was missed.
/// Each message file is checked against its hash before it is stored.
pub fn restore_account(
    store: &Store,
    dest: &Destination,
    key: &Key,
    snapshot: &str,
    address: &str,
) -> Result<AccountRestore, BackupError> {
    let data = store.dir();
    let account = store.account(address).map_err(|_| {
        BackupError::NotFound(format!(
            "this box has no account {address}: add it first (the whole box's restore brings \
             every account back, into a new data folder)"
        ))
    })?;
    let repo = repo::open(dest, key, data)?.to_indexed()?;
    let mut snaps = repo.get_all_snapshots()?;
    snaps.retain(|s| s.tags.contains(TAG));
    let snap = pick(snaps, snapshot)?;
    let scratch = data.join("backup").join("restore");
    stage::remove_if_there(&scratch)?;
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        let db = scratch.join(stage::DATABASE);
        {
            let node = repo.node_from_snapshot_and_path(
                &snap,
                &format!("{SNAPSHOT_ROOT}/{}", stage::DATABASE),
            )?;
            let mut file = std::fs::File::create(&db)?;
            repo.dump(&node, &mut file)?;
        }
        let copy = DatabaseCopy::open(&db)?;
        let folders = copy.folders_of_account(&account.address)?.ok_or_else(|| {
            BackupError::NotFound(format!(
                "snapshot {} has no account {}",
                short(&snap),
                account.address
            ))
        })?;
        let top = free_folder_name(store, account.id, &format!("Restored {}", snap.time.date()))?;
        store.create_folder(account.id, &top)?;
        for f in &folders {
            store.create_folder(account.id, &format!("{top}/{f}"))?;
        }
        let (mut messages, mut bytes) = (0u64, 0u64);
        for m in copy.messages_of_account(&account.address)? {
            if !m.blob.is_well_formed() {
                return Err(BackupError::Corrupt(format!(
                    "the backup's database names a message file {:?}",
                    m.blob.0
                )));
            }
            let path = format!(
                "{SNAPSHOT_ROOT}/{}",
                m.blob.path_in(Path::new("blobs")).display()
            );
            let node = repo.node_from_snapshot_and_path(&snap, &path)?;
            let mut writer = StoreWriter(store.blob_writer()?);
            repo.dump(&node, &mut writer)?;
            let staged = writer.0.finish()?;
            if staged.id != m.blob {
                return Err(BackupError::Corrupt(format!(
                    "the restored message file {} does not match its hash",
                    m.blob.0
                )));
            }
            let flags = m.flags.into_iter().filter(|f| f != "\\Recent").collect();
            store
                .append(
                    account.id,
                    &format!("{top}/{}", m.folder),
                    staged,
                    flags,
                    Some(m.internaldate),
                )
                .map_err(|e| BackupError::Corrupt(format!("storing a restored message: {e}")))?;
            messages += 1;
            bytes += m.size;
        }
        Ok(AccountRestore {
            account: account.address.clone(),
            snapshot: short(&snap),
            folder: top,
            folders: folders.len() as u64,
            messages,
            bytes,
        })
    })();
    stage::remove_if_there(&scratch)?;
    result
}

/// `snapshot` among `snaps`: `latest`, or an id or its unique prefix.
fn pick(mut snaps: Vec<SnapshotFile>, snapshot: &str) -> Result<SnapshotFile, BackupError> {
    snaps.sort_by(|a, b| a.time.cmp(&b.time));
    if snapshot == "latest" {
        return snaps
            .pop()
            .ok_or_else(|| BackupError::NotFound("no backup there yet".into()));
    }
    let mut found = snaps
        .into_iter()
        .filter(|s| s.id.to_string().starts_with(snapshot));
    match (found.next(), found.next()) {
        (Some(s), None) => Ok(s),
        (None, _) => Err(BackupError::NotFound(format!("no snapshot {snapshot}"))),
        (Some(_), Some(_)) => Err(BackupError::NotFound(format!(
            "{snapshot} names more than one snapshot: give more of its id"
        ))),
    }
}

/// `base`, or `base (2)`, `base (3)`… : the first name the account has no
/// folder by.
fn free_folder_name(
    store: &Store,
    account: pochta_store::AccountId,
    base: &str,
) -> Result<String, BackupError> {
    let taken: BTreeSet<String> = store
        .folders(account)?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut name = base.to_owned();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base} ({n})");
        n += 1;
    }
    Ok(name)
}

/// The store's body writer as an `io::Write`, for rustic's dump.
struct StoreWriter(pochta_store::BlobWriter);

impl Write for StoreWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Restores the newest snapshot's database and a sample of its mail (three
/// accounts' messages, or everything with `full`) and checks them: the
/// repository's own check (every pack file read with `full`, a tenth
/// otherwise), SQLite's integrity check, the counts against the manifest,
/// and each body against its SHA-256 name. Bodies are hashed as they are
/// read back, so the scratch folder holds only the database.
pub fn verify(
    store: &Store,
    dest: &Destination,
    key: &Key,
    full: bool,
) -> Result<VerifyReport, BackupError> {
    let start = Instant::now();
    let data = store.dir();
    let repo = repo::open(dest, key, data)?;
    let subset = if full {
        ReadSubsetOption::All
    } else {
        ReadSubsetOption::Percentage(10.0)
    };
    let results = repo.check(
        CheckOptions::default()
            .read_data(true)
            .read_data_subset(subset),
    )?;
    let repository_problems = check_problems(&results);
    let repo = repo.to_indexed()?;
    let mut snaps = repo.get_all_snapshots()?;
    snaps.retain(|s| s.tags.contains(TAG));
    snaps.sort_by(|a, b| a.time.cmp(&b.time));
    let snap = snaps
        .pop()
        .ok_or_else(|| BackupError::NotFound(format!("no backup in {} yet", dest.describe())))?;

    let scratch = data.join("backup").join("verify");
    stage::remove_if_there(&scratch)?;
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        let mut problems = Vec::new();
        let dump = |name: &str, to: &Path| -> Result<(), BackupError> {
            let node =
                repo.node_from_snapshot_and_path(&snap, &format!("{SNAPSHOT_ROOT}/{name}"))?;
            let mut file = std::fs::File::create(to)?;
            repo.dump(&node, &mut file)?;
            Ok(file.sync_all()?)
        };
        dump(stage::MANIFEST, &scratch.join(stage::MANIFEST))?;
        dump(stage::DATABASE, &scratch.join(stage::DATABASE))?;
        let manifest = read_manifest(&scratch.join(stage::MANIFEST))?;
        let copy = DatabaseCopy::open(&scratch.join(stage::DATABASE))?;
        let database = copy.integrity_check()?;
        if database != "ok" {
            problems.push(format!("the restored database is damaged: {database}"));
        }
        let restored = copy.inventory()?;
        if restored != manifest.inventory {
            problems.push(format!(
                "the restored database holds {} messages in {} accounts; the backup's manifest says {} in {}",
                restored.messages, restored.accounts, manifest.inventory.messages, manifest.inventory.accounts
            ));
        }
        let accounts: Vec<String> = if full {
            restored.per_account.keys().cloned().collect()
        } else {
            sample(restored.per_account.keys().cloned().collect(), 3)
        };
        let wanted: BTreeSet<String> = if full {
            copy.referenced_blobs()?.into_iter().map(|b| b.0).collect()
        } else {
            let mut set = BTreeSet::new();
            for a in &accounts {
                set.extend(copy.blobs_of_account(a)?.into_iter().map(|b| b.0));
            }
            set
        };
        let blobs_node =
            repo.node_from_snapshot_and_path(&snap, &format!("{SNAPSHOT_ROOT}/blobs"))?;
        let mut seen = BTreeSet::new();
        let (mut bodies, mut bytes) = (0u64, 0u64);
        for item in repo.ls(&blobs_node, &LsOptions::default())? {
            let (path, node) = item?;
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !node.is_file() || !wanted.contains(name) {
                continue;
            }
            let mut hasher = HashWriter::default();
            if let Err(e) = repo.dump(&node, &mut hasher) {
                problems.push(format!("the message body {name} cannot be restored: {e}"));
                seen.insert(name.to_owned());
                continue;
            }
            if hex::encode(hasher.hash.finalize()) != name {
                problems.push(format!(
                    "the restored message body {name} does not match its hash"
                ));
            }
            seen.insert(name.to_owned());
            bodies += 1;
            bytes += hasher.bytes;
        }
        let missing = wanted.difference(&seen).count();
        if missing > 0 {
            problems.push(format!(
                "{missing} message bodies the database refers to are not in the backup"
            ));
        }
        Ok::<_, BackupError>((
            problems, database, manifest, restored, accounts, bodies, bytes,
        ))
    })();
    stage::remove_if_there(&scratch)?;
    let (problems, database, manifest, restored, accounts_checked, bodies, bytes) = result?;
    Ok(VerifyReport {
        snapshot: short(&snap),
        destination: dest.describe(),
        full,
        repository_problems,
        database,
        manifest: manifest.inventory,
        restored,
        live: store.inventory()?,
        accounts_checked,
        bodies_checked: bodies,
        body_bytes_checked: bytes,
        problems,
        duration_ms: start.elapsed().as_millis() as u64,
    })
}

/// Forgets snapshots beyond `keep` and removes the data only they used.
pub fn prune(
    dest: &Destination,
    key: &Key,
    data: &Path,
    keep: Retention,
) -> Result<PruneReport, BackupError> {
    let repo = repo::open(dest, key, data)?;
    let mut snaps = repo.get_all_snapshots()?;
    snaps.retain(|s| s.tags.contains(TAG));
    let keep_opts = KeepOptions::default()
        .keep_daily(Some(keep.daily as i32))
        .keep_weekly(Some(keep.weekly as i32))
        .keep_monthly(Some(keep.monthly as i32));
    let now = rustic_core::jiff::Zoned::now();
    let decided = keep_opts.apply(snaps, &now)?;
    let mut report = PruneReport {
        kept: Vec::new(),
        forgotten: Vec::new(),
    };
    let mut forget = Vec::new();
    for s in decided {
        if s.keep {
            report.kept.push(short(&s.snapshot));
        } else {
            report.forgotten.push(short(&s.snapshot));
            forget.push(s.snapshot.id);
        }
    }
    if !forget.is_empty() {
        repo.delete_snapshots(&forget)?;
        let opts = PruneOptions::default();
        let plan = repo.prune_plan(&opts)?;
        repo.prune(&opts, plan)?;
    }
    Ok(report)
}

/// What a repository check found, when it found an error (its warnings,
/// such as unused data, count only beside one).
fn check_problems(results: &rustic_core::CheckResults) -> Vec<String> {
    if results.is_ok().is_ok() {
        return Vec::new();
    }
    results
        .0
        .iter()
        .map(|(level, e)| format!("{level:?}: {e}"))
        .collect()
}

fn info(s: &SnapshotFile) -> SnapshotInfo {
    let summary = s.summary.clone().unwrap_or_default();
    SnapshotInfo {
        id: short(s),
        time: s.time.timestamp().to_string(),
        host: s.hostname.clone(),
        tags: s.tags.iter().cloned().collect(),
        files: summary.total_files_processed,
        bytes: summary.total_bytes_processed,
        bytes_added: summary.data_added_packed,
    }
}

fn short(s: &SnapshotFile) -> String {
    s.id.to_string().chars().take(8).collect()
}

fn read_manifest(path: &Path) -> Result<Manifest, BackupError> {
    let bytes = std::fs::read(path).map_err(|e| {
        BackupError::Corrupt(format!(
            "the backup's manifest {} cannot be read: {e}",
            path.display()
        ))
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| BackupError::Corrupt(format!("the backup's manifest is damaged: {e}")))
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = HashWriter::default();
    io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.hash.finalize()))
}

/// A writer that only hashes what it is given.
#[derive(Default)]
struct HashWriter {
    hash: Sha256,
    bytes: u64,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hash.update(buf);
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Up to `n` items chosen at random.
fn sample(mut items: Vec<String>, n: usize) -> Vec<String> {
    use rand::seq::SliceRandom;
    items.shuffle(&mut rand::thread_rng());
    items.truncate(n);
    items.sort();
    items
}

fn path_str(path: &Path) -> Result<&str, BackupError> {
    path.to_str()
        .ok_or_else(|| BackupError::NotFound(format!("{} is not a UTF-8 path", path.display())))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pochta".to_owned())
}
