//! Where backups go, and opening the restic repository there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_backend::LocalBackend;
use rustic_core::{
    ConfigOptions, Credentials, KeyOptions, OpenStatus, Repository, RepositoryBackends,
    RepositoryOptions, RusticError,
};

use crate::{BackupError, Key};

/// A place that holds a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A folder: on the appliance, on the USB backup disk's partition.
    Folder(PathBuf),
}

impl Destination {
    /// A short stable name: the key of its record of runs.
    pub fn id(&self) -> &'static str {
        match self {
            Destination::Folder(_) => "folder",
        }
    }

    /// The destination in words, for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            Destination::Folder(path) => format!("the folder {}", path.display()),
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
        }
    }
}

fn repository(dest: &Destination, _data: &Path) -> Result<Repository<()>, BackupError> {
    // No cache: rustic's would go under the user's home, and the index of a
    // local folder is as quick to read as a cache of it.
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

/// rustic's error in one line, with what to do where that is known.
pub(crate) fn explain(e: &RusticError) -> String {
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
