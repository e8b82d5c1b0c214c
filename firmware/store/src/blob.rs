//! Message bodies as immutable files named by their SHA-256, written with the
//! durability rule: write to a temporary name, fsync, rename into place,
//! fsync the folder (chasquid `safeio`).
//!
//! Bodies live in `blobs/XY/<hash>` where `XY` are the hash's first two hex
//! digits; the 256 folders are created once at open so that committing a blob
//! only needs the one folder's fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A temporary body untouched for this long belongs to no live transfer: a
/// writer flushes every 64 KiB and a transfer times out long before.
/// Younger ones may be another process's message in flight (the CLI opens
/// the store while `pochta serve` receives mail).
const STALE_TMP: Duration = Duration::from_secs(24 * 60 * 60);

/// Content hash of a message body, lower-case hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobId(pub String);

/// Streams a message body to a temporary file while hashing it. Nothing is
/// visible in the store until the writer is finished and committed.
pub struct BlobWriter {
    file: io::BufWriter<File>,
    tmp_path: PathBuf,
    hasher: Sha256,
    size: u64,
    done: bool,
}

/// A body that is fully written and fsynced under its temporary name.
#[derive(Debug)]
pub struct StagedBlob {
    pub(crate) tmp_path: PathBuf,
    /// Its content hash.
    pub id: BlobId,
    /// Its length in bytes.
    pub size: u64,
}

impl StagedBlob {
    /// Where it can be read back before it is committed (e.g. to verify
    /// its signatures).
    pub fn path(&self) -> &Path {
        &self.tmp_path
    }
}

impl BlobWriter {
    pub(crate) fn create(tmp_dir: &Path) -> io::Result<Self> {
        let mut name = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut name);
        let tmp_path = tmp_dir.join(format!("{}.tmp", hex::encode(name)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp_path)?;
        Ok(BlobWriter {
            file: io::BufWriter::with_capacity(64 * 1024, file),
            tmp_path,
            hasher: Sha256::new(),
            size: 0,
            done: false,
        })
    }

    /// Appends bytes. Buffered: a write system call every 64 KiB.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes)
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and fsyncs the file. Blocking: call it off the async runtime.
    pub fn finish(mut self) -> io::Result<StagedBlob> {
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        self.done = true;
        let id = BlobId(hex::encode(self.hasher.clone().finalize()));
        Ok(StagedBlob {
            tmp_path: self.tmp_path.clone(),
            id,
            size: self.size,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            // An abandoned transfer (client gone, size exceeded): no trace left.
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

impl Drop for StagedBlob {
    fn drop(&mut self) {
        // After a successful commit the temporary name no longer exists.
        let _ = fs::remove_file(&self.tmp_path);
    }
}

impl BlobId {
    /// Whether this is a SHA-256 in lower-case hex, as every stored body's
    /// name is (a name read from a restored copy is checked before use).
    pub fn is_well_formed(&self) -> bool {
        self.0.len() == 64
            && self
                .0
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }

    /// Where this body lives under a folder of bodies (`blobs/` of a data
    /// folder, or of a backup's copy of one).
    pub fn path_in(&self, blob_dir: &Path) -> PathBuf {
        blob_dir.join(&self.0[..2]).join(&self.0)
    }
}

/// Where a blob lives.
pub(crate) fn blob_path(blob_dir: &Path, id: &BlobId) -> PathBuf {
    id.path_in(blob_dir)
}

/// Moves a staged blob to its final name. Returns the folder that must be
/// fsynced before the blob may be referenced. An identical body already in
/// place is kept and the new copy dropped.
pub(crate) fn place(blob_dir: &Path, staged: &StagedBlob) -> io::Result<PathBuf> {
    let dest = blob_path(blob_dir, &staged.id);
    if dest.exists() {
        fs::remove_file(&staged.tmp_path)?;
    } else {
        fs::rename(&staged.tmp_path, &dest)?;
    }
    Ok(dest
        .parent()
        .expect("blob paths always have a folder")
        .to_owned())
}

/// fsync of a folder, so that a rename or create in it survives a power cut.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates the blob folders (once) and empties the temporary folder of
/// transfers that a crash interrupted: those untouched for [`STALE_TMP`],
/// never one that a running server is still writing or about to commit.
pub(crate) fn prepare(blob_dir: &Path, tmp_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(blob_dir)?;
    fs::create_dir_all(tmp_dir)?;
    let mut created = false;
    for i in 0..=255u8 {
        let d = blob_dir.join(format!("{i:02x}"));
        if !d.exists() {
            fs::create_dir(&d)?;
            created = true;
        }
    }
    if created {
        sync_dir(blob_dir)?;
    }
    let now = SystemTime::now();
    for entry in fs::read_dir(tmp_dir)? {
        let entry = entry?;
        if !entry.file_name().to_string_lossy().ends_with(".tmp") {
            continue;
        }
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue; // gone already (committed or dropped meanwhile)
        };
        if now.duration_since(modified).unwrap_or_default() >= STALE_TMP {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_removes_only_stale_temporary_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, tmp) = (dir.path().join("blobs"), dir.path().join("tmp"));
        prepare(&blobs, &tmp).unwrap();
        let mut live = BlobWriter::create(&tmp).unwrap();
        live.write(b"in flight").unwrap();
        let stale = tmp.join("0123.tmp");
        File::create(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - STALE_TMP - Duration::from_secs(60))
            .unwrap();
        // Another process opening the store meanwhile.
        prepare(&blobs, &tmp).unwrap();
        assert!(!stale.exists(), "a crash's leftover is kept");
        let staged = live.finish().unwrap();
        assert!(
            staged.path().exists(),
            "a body still being written was removed"
        );
        place(&blobs, &staged).unwrap();
    }
}
