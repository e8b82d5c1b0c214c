//! Backups on the admin page: `GET /api/backup` (the owner's choices, the
//! record of runs, each destination's snapshots), `POST
//! /api/backup/settings`, `POST /api/backup/run` and `/verify` (on a thread
//! of their own: a backup takes minutes, a request thread must not wait
//! for it), and `POST /api/backup/key` (the repository password, behind the
//! administrator's password and a second factor, like a login).
//!
//! The work is `pochta-backup`'s, as for the schedule and the CLI; this file
//! decides what may be set and who may read the key; `runs` starts the runs
//! and remembers what the page's own runs did.

mod runs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pochta_backup::{BackupError, Destination, Key, Retention, Settings, SnapshotInfo, Status};
use serde::Serialize;
use serde_json::{json, Value};

use crate::http::{self, Body, Reply};
use crate::session::Session;
use crate::{accounts, login, State};

pub(crate) use runs::{Ended, PageRuns, RunKind, Runs};

/// Most snapshots kept per kind (rustic takes an `i32`; ten years of daily
/// snapshots is beyond any backup disk).
const MAX_KEEP: u64 = 3650;
/// What the page and the API say when no destination is set.
pub(crate) const NOT_SET_UP: &str = "No backup is set up: a failed SD card would lose all mail.";

/// Whether the server may write to `dest` now. Confined by Landlock, it may
/// write only the folders chosen when it started (`writable`; `None`: not
/// confined): the check `pochta_backup::back_up_everywhere` makes.
pub(crate) fn writable_now(dest: &Destination, writable: Option<&[PathBuf]>) -> bool {
    match (dest, writable) {
        (Destination::Folder(folder), Some(writable)) => {
            writable.iter().any(|w| folder.starts_with(w))
        }
        _ => true,
    }
}

/// Why a destination needs a restart of the server before backups reach it.
pub(crate) fn restart_message(dest: &Destination) -> String {
    match dest {
        Destination::Folder(folder) => format!(
            "Pochta may write to {} only after a restart: the folder was chosen after it \
             started, and a running server writes only where it could when it started. \
             Restart Pochta (or the box) before the next backup, scheduled or started here \
             with Back up now.",
            folder.display()
        ),
        // A bucket is reached over the network: no restart is ever needed.
        Destination::S3(_) => String::new(),
    }
}

/// One destination as the page shows it.
#[derive(Debug, Serialize)]
pub(crate) struct DestinationView {
    /// The key of its record of runs (`folder`).
    pub id: &'static str,
    /// In words: `the folder /media/usb/backup`.
    pub destination: String,
    /// The folder, for a folder.
    pub folder: Option<PathBuf>,
    /// The server may not write there until it restarts.
    pub restart_needed: bool,
    pub restart_message: Option<String>,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Why the snapshots could not be listed.
    pub snapshots_error: Option<String>,
}

/// `GET /api/backup`.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    /// Whether a destination is set.
    pub set_up: bool,
    /// As `pochta backup status --json` gives them.
    pub settings: Settings,
    pub status: Status,
    pub destinations: Vec<DestinationView>,
    /// The runs started on the page.
    pub runs: Runs,
    /// Whether the box has its backup key (made with the first destination).
    pub key_made: bool,
}

pub(super) fn failed(e: BackupError) -> Reply {
    tracing::error!(error = %e, "admin page: backups");
    Reply::error(500, e.to_string())
}

/// What the page and `GET /api/backup` show.
pub(crate) fn overview(state: &State) -> Result<Overview, Reply> {
    let store = &state.ctx.store;
    let data = &state.ctx.data;
    let settings = Settings::load(store).map_err(failed)?;
    let status = Status::load(store).map_err(failed)?;
    let key = Key::load(data).map_err(|e| failed(e.into()))?;
    let writable = state.ctx.backup_writable.as_deref();
    let destinations = settings
        .destinations()
        .into_iter()
        .map(|dest| {
            let (snapshots, snapshots_error) = match &key {
                Some(key) => match pochta_backup::list(&dest, key, data) {
                    Ok(s) => (s, None),
                    Err(e) => (Vec::new(), Some(e.to_string())),
                },
                None => (Vec::new(), None),
            };
            let restart_needed = !writable_now(&dest, writable);
            DestinationView {
                id: dest.id(),
                destination: dest.describe(),
                folder: match &dest {
                    Destination::Folder(f) => Some(f.clone()),
                    Destination::S3(_) => None,
                },
                restart_needed,
                restart_message: restart_needed.then(|| restart_message(&dest)),
                snapshots,
                snapshots_error,
            }
        })
        .collect::<Vec<_>>();
    Ok(Overview {
        set_up: !destinations.is_empty(),
        settings,
        status,
        destinations,
        runs: state.backups.now(),
        key_made: key.is_some(),
    })
}

/// `GET /api/backup`.
pub fn show(state: &State) -> Reply {
    match overview(state) {
        Ok(o) => Reply::json(200, &serde_json::to_value(&o).unwrap_or(Value::Null)),
        Err(reply) => reply,
    }
}

/// A count from a JSON number or a form's text, at most `max`; `Ok(None)`
/// when the field is absent.
fn count(body: &Body, name: &str, max: u64) -> Result<Option<u64>, Reply> {
    match accounts::whole_number(body, name) {
        Ok(Some(n)) if n <= max => Ok(Some(n)),
        Ok(None) => Ok(None),
        _ => Err(Reply::error(
            400,
            format!("`{name}` must be a whole number from 0 to {max}"),
        )),
    }
}

/// The folder typed, checked: it exists, is a folder (its real path,
/// symbolic links resolved) and is apart from the data folder.
fn folder(typed: &str, data: &Path) -> Result<PathBuf, Reply> {
    let path = Path::new(typed.trim());
    if !path.is_absolute() {
        return Err(Reply::error(
            400,
            format!(
                "the backup folder must be a full path, such as /media/usb/backup, not {typed:?}"
            ),
        ));
    }
    if !path.is_dir() {
        return Err(Reply::error(
            400,
            format!(
                "there is no folder {}: plug in the backup disk and make the folder first",
                path.display()
            ),
        ));
    }
    let real = std::fs::canonicalize(path).map_err(|e| {
        Reply::error(
            400,
            format!("the folder {} cannot be used: {e}", path.display()),
        )
    })?;
    if real.to_str().is_none() {
        return Err(Reply::error(
            400,
            format!("the folder {} has a name that is not UTF-8", real.display()),
        ));
    }
    let data = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_owned());
    if real.starts_with(&data) || data.starts_with(&real) {
        return Err(Reply::error(
            400,
            format!(
                "the folder {} holds or is inside the data folder {}: a backup belongs on \
                 another disk, in a folder of its own",
                real.display(),
                data.display()
            ),
        ));
    }
    Ok(real)
}

/// `POST /api/backup/settings {folder?, hour?, daily?, weekly?, monthly?}`:
/// the fields given change; `folder` empty or null stops backups. The
/// first folder makes the box's backup key.
pub fn save_settings(state: &State, body: &Body) -> Reply {
    let store = &state.ctx.store;
    let mut settings = match Settings::load(store) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    match body.get("folder") {
        None => {}
        Some(Value::Null) => settings.folder = None,
        Some(Value::String(s)) if s.trim().is_empty() => settings.folder = None,
        Some(Value::String(s)) => match folder(s, &state.ctx.data) {
            Ok(f) => settings.folder = Some(f),
            Err(reply) => return reply,
        },
        Some(_) => return Reply::error(400, "`folder` must be a string"),
    }
    let numbers = (
        count(body, "hour", 23),
        count(body, "daily", MAX_KEEP),
        count(body, "weekly", MAX_KEEP),
        count(body, "monthly", MAX_KEEP),
    );
    let (hour, daily, weekly, monthly) = match numbers {
        (Ok(h), Ok(d), Ok(w), Ok(m)) => (h, d, w, m),
        (Err(r), ..) | (_, Err(r), ..) | (_, _, Err(r), _) | (.., Err(r)) => return r,
    };
    if let Some(h) = hour {
        // At most 23: checked above.
        settings.hour = h as u8;
    }
    let old = settings.retention;
    // At most MAX_KEEP each: checked above.
    settings.retention = Retention {
        daily: daily.map_or(old.daily, |n| n as u32),
        weekly: weekly.map_or(old.weekly, |n| n as u32),
        monthly: monthly.map_or(old.monthly, |n| n as u32),
    };
    let r = settings.retention;
    if r.daily + r.weekly + r.monthly == 0 {
        return Reply::error(
            400,
            "keep at least one snapshot: a daily, weekly or monthly one",
        );
    }
    if settings.folder.is_some() {
        if let Err(e) = Key::load_or_create(&state.ctx.data) {
            return Reply::error(500, format!("cannot make the backup key: {e}"));
        }
    }
    if let Err(e) = settings.save(store) {
        return failed(e);
    }
    tracing::info!(
        folder = ?settings.folder,
        hour = settings.hour,
        "backup settings changed on the admin page"
    );
    let restarts: Vec<String> = settings
        .destinations()
        .iter()
        .filter(|d| !writable_now(d, state.ctx.backup_writable.as_deref()))
        .map(restart_message)
        .collect();
    Reply::json(
        200,
        &json!({
            "settings": settings,
            "restart_needed": !restarts.is_empty(),
            "restart_messages": restarts,
        }),
    )
}

/// `POST /api/backup/run`: a backup to every destination, started now.
pub fn run(state: &State) -> Reply {
    runs::start(state, RunKind::Backup, false)
}

/// `POST /api/backup/verify {full?}`: a test restore of the newest backup
/// (a sample of the mail; all of it with `full`).
pub fn verify(state: &State, body: &Body) -> Reply {
    let full = match body.get("full") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "on" | "true" | "yes" | "1"),
        Some(_) => return Reply::error(400, "`full` must be true or false"),
    };
    runs::start(state, RunKind::Verify, full)
}

/// `POST /api/backup/key {password, totp}`: the box's backup key (made now
/// if there is none), for the administrator who is logged in and types
/// their password and a code again. Wrong ones count in the brute-force
/// guard like a failed login. Not for API tokens (routes.rs).
pub fn key(state: &State, s: &Session, body: &Body, peer: SocketAddr) -> Reply {
    if let Err(reply) = login::guard_check(state, peer) {
        return reply;
    }
    let (password, code) = match (http::field(body, "password"), http::field(body, "totp")) {
        (Ok(p), Ok(c)) => (p, c),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let admin = match state.ctx.store.authenticate_admin(&s.admin, password) {
        Ok(Some(admin)) => admin,
        Ok(None) => {
            login::failed(state, peer, &s.admin);
            return Reply::error(403, "wrong password");
        }
        Err(e) => return crate::directory::reply_for(e),
    };
    match login::second_factor(state, &admin, code, peer) {
        Ok(_) => {}
        Err(login::CodeRefused::Wrong(message)) => return Reply::error(403, message),
        Err(login::CodeRefused::Failed(reply)) => return reply,
    }
    state.ctx.auth.guard().success(peer.ip());
    let key = match Key::load_or_create(&state.ctx.data) {
        Ok(k) => k,
        Err(e) => return Reply::error(500, format!("cannot read the backup key: {e}")),
    };
    tracing::warn!(admin = admin.name, %peer, "the backup key was shown on the admin page");
    let destinations: Vec<String> = Settings::load(&state.ctx.store)
        .map(|s| s.destinations().iter().map(Destination::describe).collect())
        .unwrap_or_default();
    Reply::json(
        200,
        &json!({
            "key": key.as_str(),
            "hostname": state.ctx.hostname,
            "destinations": destinations,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_chosen_after_the_start_needs_a_restart() {
        let usb = Destination::Folder(PathBuf::from("/media/usb/backup"));
        assert!(writable_now(&usb, None), "not confined");
        let at_start = [
            PathBuf::from("/var/lib/pochta"),
            PathBuf::from("/media/usb"),
        ];
        assert!(writable_now(&usb, Some(&at_start)));
        let data_only = [PathBuf::from("/var/lib/pochta")];
        assert!(!writable_now(&usb, Some(&data_only)));
        assert!(restart_message(&usb).contains("/media/usb/backup"));
        // A prefix of the name is not a folder above it.
        let sibling = [PathBuf::from("/media/usb/back")];
        assert!(!writable_now(&usb, Some(&sibling)));
    }

    #[test]
    fn counts_and_flags() {
        let body: Body =
            serde_json::from_str(r#"{"hour": 24, "daily": "7", "weekly": -1, "monthly": "x"}"#)
                .unwrap();
        assert_eq!(count(&body, "hour", 23).unwrap_err().status, 400);
        assert_eq!(count(&body, "daily", MAX_KEEP).unwrap(), Some(7));
        assert!(count(&body, "weekly", MAX_KEEP).is_err());
        assert!(count(&body, "monthly", MAX_KEEP).is_err());
        assert_eq!(count(&body, "absent", MAX_KEEP).unwrap(), None);
    }

    #[test]
    fn folders_must_be_there_and_apart_from_the_data() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let usb = root.path().join("usb");
        std::fs::create_dir_all(data.join("inside")).unwrap();
        std::fs::create_dir(&usb).unwrap();
        assert_eq!(
            folder(usb.to_str().unwrap(), &data).unwrap(),
            std::fs::canonicalize(&usb).unwrap()
        );
        for bad in [
            "relative/path".to_owned(),
            root.path().join("missing").display().to_string(),
            data.join("inside").display().to_string(),
            root.path().display().to_string(),
        ] {
            let refused = folder(&bad, &data).unwrap_err();
            assert_eq!(refused.status, 400, "{bad}");
        }
    }
}
