//! The data folder as the commands meet it: only `serve` and `init` create
//! one, every other command needs one that exists (a mistyped `--data` must
//! not look like a box whose mail is gone), and one server at a time holds
//! it, proven by a `flock` that the kernel drops when the process ends,
//! however it ends.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use pochta_store::Store;

/// The lock file: held (exclusively) by the one `pochta serve` on the
/// folder, and holding its pid for the others to name.
fn lock_file(data: &Path) -> PathBuf {
    data.join("run").join("serve.lock")
}

/// Opens the store of a data folder that must exist already.
pub fn open_existing(data: &Path) -> Result<Store, String> {
    if !Store::exists(data) {
        let cwd = std::env::current_dir().unwrap_or_default();
        let shown = if data.is_absolute() {
            data.display().to_string()
        } else {
            format!("{} (in {})", data.display(), cwd.display())
        };
        return Err(format!(
            "there is no Pochta data folder at {shown}.\n\
             Point at the one `pochta serve` uses with --data DIR or POCHTA_DATA=DIR \
             (on the appliance it is /data), or make a new one with `pochta init --data DIR`."
        ));
    }
    open(data)
}

/// Opens the store, creating the folder when needed (`serve`, `init`).
pub fn open(data: &Path) -> Result<Store, String> {
    Store::open(data).map_err(|e| format!("cannot open the store in {}: {e}", data.display()))
}

/// The server's hold on a data folder, for as long as it lives.
pub struct ServeLock {
    _file: File,
}

/// Takes the data folder for one server, or says which process has it.
pub fn lock_for_serving(data: &Path) -> Result<ServeLock, String> {
    let path = lock_file(data);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // A `pochta status` holds a shared lock for an instant: try a few times
    // before calling the folder taken.
    let mut attempt = 0;
    let taken = loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if attempt < 10 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other,
        }
    };
    match taken {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = read_pid(&mut file)
                .map(|pid| format!("pid {pid}"))
                .unwrap_or_else(|| "another process".into());
            return Err(format!(
                "the data folder {} is already served by {holder}; stop that server first, \
                 or give this one another --data folder",
                data.display()
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    let pid = format!("{}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(ServeLock { _file: file })
}

/// The pid of the server holding the folder, if one does. A lock file
/// without a holder (a server that was killed) says nothing: the kernel
/// released its lock with the process.
pub fn served_by(data: &Path) -> Option<u32> {
    let mut file = File::open(lock_file(data)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => Some(read_pid(&mut file).unwrap_or(0)),
        Err(TryLockError::Error(_)) => None,
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}
