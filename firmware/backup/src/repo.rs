//! Where backups go, and opening the restic repository there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_backend::LocalBackend;
use rustic_core::{
    ConfigOptions, Credentials, KeyOptions, OpenStatus, Repository, RepositoryBackends,
    RepositoryOptions, RusticError,
};

use crate::s3::{Failure, S3Backend, S3Target};
use crate::{BackupError, Key};

/// A place that holds a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A folder: on the appliance, on the USB backup disk's partition.
    Folder(PathBuf),
    /// An S3-compatible bucket (and a prefix in it), off the box.
    S3(S3Target),
}

impl Destination {
    /// The destination in words, for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Destination::Folder(path) => format!("the folder {}", path.display()),
            Destination::S3(target) => target.describe(),
        }
    }

    /// A short stable name: the destination's kind as `--to` names it, and
    /// the key of its record of runs.
    pub fn id(&self) -> &'static str {
        match self {
            Destination::Folder(_) => "folder",
            Destination::S3(_) => "s3",
        }
    }

    fn backends(&self) -> Result<RepositoryBackends, BackupError> {
        match self {
            Destination::Folder(path) => {
                let path = path.to_str().ok_or_else(|| {
                    BackupError::NotFound(format!("{} is not a UTF-8 path", path.display()))
                })?;
                let backend = LocalBackend::new(path, std::iter::empty())?;
                Ok(RepositoryBackends::new(Arc::new(backend), None))
            }
            // A missing bucket is only reported: `pochta backup to-s3
            // --create-bucket` makes it (see `check_s3`).
            Destination::S3(target) => Ok(RepositoryBackends::new(
                Arc::new(S3Backend::new(target, false)?),
                None,
            )),
        }
    }
}

/// What `check_s3` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Access {
    /// The bucket is there and the keys may list it; no repository yet.
    Empty,
    /// A repository is there already (from this box or another).
    Repository,
    /// The bucket was missing and has been made.
    BucketMade,
}

/// Checks that `target` answers, that its bucket exists and that its keys
/// may list it, making the bucket first when it is missing and
/// `create_bucket` allows.
pub fn check_s3(target: &S3Target, create_bucket: bool) -> Result<S3Access, BackupError> {
    use rustic_core::WriteBackend;
    let backend = S3Backend::new(target, create_bucket)?;
    let failed = |f: Failure| BackupError::Repository(f.message);
    match backend.check_access() {
        Ok(true) => Ok(S3Access::Repository),
        Ok(false) => Ok(S3Access::Empty),
        Err(f) if f.kind == crate::s3::FailureKind::NoBucket && create_bucket => {
            backend
                .create()
                .map_err(|e| BackupError::Repository(explain(&e)))?;
            backend.check_access().map_err(failed)?;
            Ok(S3Access::BucketMade)
        }
        Err(f) => Err(failed(f)),
    }
}

fn repository(dest: &Destination, _data: &Path) -> Result<Repository<()>, BackupError> {
    // No cache: rustic's would go under the user's home. The index of a
    // local folder is as quick to read as a cache of it; from S3 each
    // command reads the index files again (small beside the pack files).
    let opts = RepositoryOptions::default().no_cache(true);
    Ok(Repository::new(&opts, &dest.backends()?)?)
}

/// Opens the repository in `dest` with `key`.
pub fn open(
    dest: &Destination,
    key: &Key,
    data: &Path,
) -> Result<Repository<OpenStatus>, BackupError> {
    open_if_there(dest, key, data)?.ok_or_else(|| {
        BackupError::NotFound(format!(
            "no backup in {} yet (`pochta backup now` makes one)",
            dest.describe()
        ))
    })
}

/// Opens the repository in `dest` with `key`; `None` when there is none.
pub fn open_if_there(
    dest: &Destination,
    key: &Key,
    data: &Path,
) -> Result<Option<Repository<OpenStatus>>, BackupError> {
    let repo = repository(dest, data)?;
    if repo.config_id()?.is_none() {
        return Ok(None);
    }
    Ok(Some(repo.open(&Credentials::password(key.as_str()))?))
}

/// Opens the repository in `dest`, making it the first time; `true` when it
/// was made now.
pub fn open_or_init(
    dest: &Destination,
    key: &Key,
    data: &Path,
) -> Result<(Repository<OpenStatus>, bool), BackupError> {
    let repo = repository(dest, data)?;
    let credentials = Credentials::password(key.as_str());
    if repo.config_id()?.is_some() {
        return Ok((repo.open(&credentials)?, false));
    }
    let repo = repo.init(
        &credentials,
        &KeyOptions::default(),
        &ConfigOptions::default(),
    )?;
    Ok((repo, true))
}

/// rustic's error in one line, with what to do where that is known: a
/// storage failure's own words when one is the cause.
pub(crate) fn explain(e: &RusticError) -> String {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(f) = c.downcast_ref::<Failure>() {
            return f.message.clone();
        }
        cause = c.source();
    }
    if e.is_incorrect_password() {
        return "the backup key does not open this repository: it was made with another key \
                (type the key from the recovery sheet of the box that made it)"
            .to_owned();
    }
    let detail = without_kind(e.display_log().trim_start_matches("Error: "));
    // The operating system's reason, which the owner can act on, first.
    let known = [
        (
            "No space left on device",
            "the backup disk is full: free space on it, or use a bigger one",
        ),
        (
            "Permission denied",
            "pochta may not write to the backup folder (permission denied): give the folder \
             to the pochta user, or choose another",
        ),
        (
            "Read-only file system",
            "the backup disk is read-only (a failing disk turns itself read-only): check it, \
             or use another",
        ),
        (
            "Input/output error",
            "the backup disk reported an input/output error: it may be failing; use another",
        ),
    ];
    for (os, words) in known {
        if detail.contains(os) {
            return format!("{words} ({detail})");
        }
    }
    detail
}

/// rustic's log form without its "(kind: related to …)" classification and
/// its generic advice: the reason and the path stay.
fn without_kind(text: &str) -> String {
    let mut out = text.replace(" Please check the file and try again.", "");
    out = out.replace(" Please check the path and try again.", "");
    while let Some(start) = out.find(" (kind: ") {
        let Some(len) = out[start..].find(')') else {
            break;
        };
        out.replace_range(start..start + len + 1, "");
    }
    out.replace(".: caused by: ", ": ")
        .replace(": caused by: ", ": ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kind_and_the_generic_advice_are_left_out() {
        assert_eq!(
            super::without_kind(
                "Failed to create the directory `/x/keys`. Please check the path and try again. \
                 (kind: related to input/output operations): caused by: Permission denied (os error 13)"
            ),
            "Failed to create the directory `/x/keys`: Permission denied (os error 13)"
        );
    }
}
