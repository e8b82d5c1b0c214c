//! The unprivileged `pochta` user: found, given the data folder, and become.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid};

use crate::caps::{self, Privileges};

/// The user the server runs as once its ports are bound.
pub const SERVING_USER: &str = "pochta";

/// The command that makes [`SERVING_USER`] on a Debian-like system.
pub const MAKE_USER: &str = "useradd --system --no-create-home --shell /usr/sbin/nologin pochta";

/// A user to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// The `pochta` user, or what to do when it is missing.
pub fn serving_user() -> Result<User, String> {
    match nix::unistd::User::from_name(SERVING_USER) {
        Ok(Some(u)) if !u.uid.is_root() => Ok(User {
            name: u.name,
            uid: u.uid,
            gid: u.gid,
        }),
        Ok(Some(_)) => Err(format!(
            "the user `{SERVING_USER}` has uid 0; it must be an unprivileged user"
        )),
        Ok(None) => Err(format!(
            "pochta started as root drops to the user `{SERVING_USER}`, and there is none; \
             make it with `{MAKE_USER}` and start again (pochta does not serve as root)"
        )),
        Err(e) => Err(format!("cannot look up the user `{SERVING_USER}`: {e}")),
    }
}

/// Makes `user` the owner of everything in the data folder (without
/// following symbolic links), and the folder private to it: no group or
/// other permissions on anything in it (keys, the database, mail).
pub fn hand_over(data: &Path, user: &User) -> Result<(), String> {
    hand_over_entry(data, user)?;
    let mut folders = vec![data.to_owned()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| format!("cannot read {}: {e}", folder.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", folder.display()))?;
            let path = entry.path();
            if hand_over_entry(&path, user)? {
                folders.push(path);
            }
        }
    }
    Ok(())
}

/// One entry; true when it is a folder to descend into.
fn hand_over_entry(path: &Path, user: &User) -> Result<bool, String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    let kind = meta.file_type();
    if meta.uid() != user.uid.as_raw() || meta.gid() != user.gid.as_raw() {
        std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            .map_err(|e| format!("cannot give {} to {}: {e}", path.display(), user.name))?;
    }
    if kind.is_symlink() {
        return Ok(false);
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
            .map_err(|e| format!("cannot make {} private: {e}", path.display()))?;
    }
    Ok(kind.is_dir())
}

/// Becomes `user` for good: no supplementary groups, its group, its user
/// id (real, effective and saved), an empty bounding set. The kernel clears
/// the permitted and effective capabilities when the last user id leaves 0;
/// this checks that it did.
pub fn become_user(user: &User) -> Result<(), String> {
    caps::limit_bounding_set(&[])?;
    nix::unistd::setgroups(&[]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
    nix::unistd::setresgid(user.gid, user.gid, user.gid)
        .map_err(|e| format!("cannot switch to the group of {}: {e}", user.name))?;
    nix::unistd::setresuid(user.uid, user.uid, user.uid)
        .map_err(|e| format!("cannot switch to the user {}: {e}", user.name))?;
    let now = Privileges::current()?;
    if now.uids.contains(&0) || now.gids.contains(&0) || now.cap_eff != 0 || now.cap_prm != 0 {
        return Err(format!(
            "still privileged after switching to {}: {now:?}",
            user.name
        ));
    }
    Ok(())
}

/// For a command run as root on a data folder owned by another user (the
/// server's): become that user first, so that the files the command makes
/// (SQLite's `-wal` and `-shm`) are the server's to open. Nothing happens
/// when not root, or when the folder is root's or missing.
pub fn become_owner_of(data: &Path) -> Result<(), String> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let Ok(meta) = std::fs::metadata(data) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    let uid = Uid::from_raw(meta.uid());
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    become_user(&User {
        name,
        uid,
        gid: Gid::from_raw(meta.gid()),
    })
}
