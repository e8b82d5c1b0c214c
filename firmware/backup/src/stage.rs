//! A consistent picture of a live box, laid out in one folder for the
//! backup to read: the database copied in one read transaction, the message
//! bodies it refers to (hard links: bodies are immutable and named by their
//! hash, so a link is a copy that costs nothing), the TLS certificate and
//! key, the configuration kept in the data folder, and a manifest that
//! counts what the copy holds so that a restore can be checked against it.
//! Mail keeps flowing meanwhile: nothing here takes a write lock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pochta_store::{DatabaseCopy, Inventory, Store};
use serde::{Deserialize, Serialize};

use crate::BackupError;

/// The name of the manifest in a backup.
pub const MANIFEST: &str = "manifest.json";
/// The database's file name, in a data folder and in a backup.
pub const DATABASE: &str = "pochta.db";
/// The folders and files of a data folder that a backup holds, besides the
/// database, the bodies and the manifest.
const KEPT: &[&str] = &["tls", "pochta.toml"];

/// What a backup says of itself (`manifest.json` at its top).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// This layout's version.
    pub format: u32,
    /// The `pochta` that wrote it.
    pub pochta_version: String,
    /// When the database was copied (seconds since the Unix epoch).
    pub created: i64,
    /// What the database copy holds.
    pub inventory: Inventory,
    /// Message bodies in the backup, and their bytes.
    pub bodies: u64,
    pub body_bytes: u64,
}

/// The stage folder, removed when dropped.
pub struct Stage {
    dir: PathBuf,
    pub manifest: Manifest,
}

impl Stage {
    /// Where a data folder's stage lives: inside it, so that bodies can be
    /// hard-linked and the confined server may write there.
    pub fn path(data: &Path) -> PathBuf {
        data.join("backup").join("stage")
    }

    /// Lays out the stage for `store` (a leftover of an interrupted backup
    /// is removed first).
    pub fn make(store: &Store) -> Result<Stage, BackupError> {
        let data = store.dir();
        let dir = Stage::path(data);
        remove_if_there(&dir)?;
        fs::create_dir_all(&dir)?;
        let stage = Stage {
            dir,
            manifest: Manifest {
                format: 1,
                pochta_version: env!("CARGO_PKG_VERSION").to_owned(),
                created: now(),
                inventory: Inventory::default(),
                bodies: 0,
                body_bytes: 0,
            },
        };
        stage.fill(store)
    }

    fn fill(mut self, store: &Store) -> Result<Stage, BackupError> {
        let data = store.dir();
        let db = self.dir.join(DATABASE);
        store.copy_database_to(&db)?;
        let copy = DatabaseCopy::open(&db)?;
        self.manifest.inventory = copy.inventory()?;
        let blob_dir = data.join("blobs");
        let staged_blobs = self.dir.join("blobs");
        fs::create_dir(&staged_blobs)?;
        for id in copy.referenced_blobs()? {
            if !id.is_well_formed() {
                return Err(BackupError::Corrupt(format!(
                    "the database names a message body {:?}, which is not a SHA-256",
                    id.0
                )));
            }
            let from = id.path_in(&blob_dir);
            let to = id.path_in(&staged_blobs);
            if let Some(parent) = to.parent() {
                if !parent.exists() {
                    fs::create_dir(parent)?;
                }
            }
            let size = match fs::hard_link(&from, &to) {
                Ok(()) => fs::metadata(&to)?.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(BackupError::Corrupt(format!(
                        "the message body {} is missing from {}: the store refers to mail it does not have",
                        id.0,
                        blob_dir.display()
                    )))
                }
                // A file system without hard links: a real copy.
                Err(_) => fs::copy(&from, &to)?,
            };
            self.manifest.bodies += 1;
            self.manifest.body_bytes += size;
        }
        for name in KEPT {
            copy_tree(&data.join(name), &self.dir.join(name))?;
        }
        let manifest = serde_json::to_vec_pretty(&self.manifest)
            .map_err(|e| BackupError::Corrupt(format!("manifest: {e}")))?;
        fs::write(self.dir.join(MANIFEST), manifest)?;
        Ok(self)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if let Err(e) = remove_if_there(&self.dir) {
            tracing::warn!(stage = %self.dir.display(), error = %e, "backup stage left behind");
        }
    }
}

/// Copies a file, or a folder with what is in it; nothing when `from` does
/// not exist.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(from) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        fs::create_dir(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.is_file() {
        fs::copy(from, to)?;
    }
    Ok(())
}

pub(crate) fn remove_if_there(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
