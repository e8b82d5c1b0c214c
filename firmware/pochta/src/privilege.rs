//! Root at the start, never afterwards: what `pochta serve` does while it
//! may (bind its ports, arm the watchdog, start the privileged helper), and
//! how it then gives root up (the `pochta` user, no capabilities,
//! `no_new_privs`, Landlock). All of it before the first thread starts:
//! `no_new_privs` and Landlock bind only the thread that sets them and the
//! threads it starts afterwards.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pochta_config::Config;
use pochta_privileged::{Confinement, Helper, Policy, User};
use serde::{Deserialize, Serialize};

use crate::serve::Proto;

/// Set to a folder, the server tries to write a file there once confined,
/// and says in `run/serve.json` what happened: the tests' proof that the
/// serving process itself cannot write outside its folders.
const PROBE_ENV: &str = "POCHTA_SANDBOX_PROBE";

/// The name of the file the probe tries to make.
pub const PROBE_FILE: &str = "written-by-pochta";

/// What was done as root, handed to the unprivileged server.
pub struct Privileged {
    /// The mail services' listening sockets.
    pub mail: Vec<(Proto, TcpListener)>,
    /// The admin page's listening sockets.
    pub admin: pochta_admin::Bound,
    /// The hardware watchdog, armed.
    pub watchdog: Option<pochta_system::Armed>,
    /// The helper, when the server started as root.
    pub helper: Option<Arc<Helper>>,
}

/// How the server runs, for `run/serve.json` and the tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    /// The user it runs as.
    pub user: String,
    /// Landlock: `full`, `partial` or `none`.
    pub landlock: String,
    /// Why Landlock does not confine it, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_missing: Option<String>,
    /// Folders it may write.
    pub writable: Vec<PathBuf>,
    /// The privileged helper's pid, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper_pid: Option<u32>,
    /// What the write probe ([`PROBE_ENV`]) met, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// Binds every listener, arms the watchdog and, as root, starts the helper.
pub fn acquire(config: &Config, root: bool) -> Result<Privileged, String> {
    let mail = crate::serve::bind_mail(config)?;
    let admin = pochta_admin::bind(&config.admin, true).map_err(|e| e.to_string())?;
    let watchdog = config
        .system
        .watchdog
        .as_ref()
        .map(|device| pochta_system::Armed::open(device, config.system.watchdog_timeout_secs));
    let helper = if root {
        Some(Arc::new(Helper::start(
            config.admin.setup_code_copy.as_deref(),
        )?))
    } else {
        None
    };
    Ok(Privileged {
        mail,
        admin,
        watchdog,
        helper,
    })
}

/// As root, before anything is armed: the data folder and everything in it
/// become `user`'s, private to it (a walk of every file: done before the
/// watchdog is opened, whatever it takes on a large store).
pub fn hand_over(data: &Path, user: &User) -> Result<(), String> {
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    // A data folder reached through a symbolic link: the folder itself.
    let data = std::fs::canonicalize(data)
        .map_err(|e| format!("cannot resolve {}: {e}", data.display()))?;
    pochta_privileged::hand_over(&data, user)
}

/// Gives up root (when `user` is given, the process becomes it, after
/// [`hand_over`]) and confines the process to writing `data`. Files made
/// from here on are private (umask 077).
pub fn give_up(
    data: &Path,
    user: Option<&User>,
    helper: Option<&Helper>,
) -> Result<Sandbox, String> {
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let data = std::fs::canonicalize(data)
        .map_err(|e| format!("cannot resolve {}: {e}", data.display()))?;
    match user {
        Some(user) => {
            pochta_privileged::become_user(user)?;
            std::fs::read_dir(&data).map_err(|e| {
                format!(
                    "the user {} cannot reach the data folder {}: {e}; a folder above it is \
                     closed to it (let it through with chmod o+x, or use another --data)",
                    user.name,
                    data.display()
                )
            })?;
        }
        // Not root, but perhaps given CAP_NET_BIND_SERVICE (the systemd
        // unit): the ports are bound, so it goes too.
        None => pochta_privileged::caps::keep_only(&[])?,
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // SQLite's temporary files (large sorts) go where the server may write.
    let tmp = data.join("tmp");
    // SAFETY (of set_var): no other thread exists yet to read the
    // environment concurrently.
    std::env::set_var("SQLITE_TMPDIR", &tmp);
    // The data folder, and the backup folder the owner chose (a folder
    // chosen while the server runs is writable after its next start).
    let mut writable = vec![data.clone()];
    for folder in pochta_backup::Settings::peek(&data).writable_folders() {
        match std::fs::canonicalize(&folder) {
            Ok(folder) if !writable.contains(&folder) => writable.push(folder),
            Ok(_) => {}
            Err(e) => tracing::warn!(
                folder = %folder.display(),
                "the backup folder is not there ({e}): backups to it fail until it is and pochta restarts"
            ),
        }
    }
    let confinement = pochta_privileged::confine(&Policy {
        writable: writable.clone(),
        execute: false,
    })?;
    let name = match user {
        Some(u) => u.name.clone(),
        None => nix::unistd::User::from_uid(nix::unistd::Uid::effective())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| nix::unistd::Uid::effective().to_string()),
    };
    let landlock_missing = match &confinement {
        Confinement::None(why) => {
            tracing::warn!(
                "not confined by Landlock: {why}; the server can write wherever {name} may"
            );
            Some(why.clone())
        }
        _ => None,
    };
    tracing::info!(
        user = %name,
        landlock = confinement.name(),
        writable = %writable
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        "running without root: no capabilities, no_new_privs"
    );
    Ok(Sandbox {
        user: name,
        landlock: confinement.name().into(),
        landlock_missing,
        writable,
        helper_pid: helper.map(Helper::pid),
        probe: probe(),
    })
}

/// The write probe: what writing a file into `$POCHTA_SANDBOX_PROBE` met.
fn probe() -> Option<String> {
    let dir = std::env::var_os(PROBE_ENV)?;
    let path = Path::new(&dir).join(PROBE_FILE);
    let met = match std::fs::write(&path, b"written by the serving process\n") {
        Ok(()) => "written".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    tracing::info!(path = %path.display(), "sandbox probe: {met}");
    Some(met)
}
