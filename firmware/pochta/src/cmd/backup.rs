//! `pochta backup`: encrypted, incremental backups in restic's format to a
//! folder (on the appliance, the USB backup disk), and their restore and
//! verification. See `pochta-backup`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use pochta_backup::{Destination, Key, Settings};
use pochta_config::{format_duration, format_size};

use pochta_store::Store;

use crate::datadir;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Back up to FOLDER from now on (a mounted USB disk's folder, say);
    /// the first backup makes the repository there.
    To { folder: PathBuf },
    /// Back up now: a consistent copy of the whole box, then a check of
    /// what was written.
    Now {
        /// Machine-readable output, sizes in bytes.
        #[arg(long)]
        json: bool,
    },
    /// When backups run (the daily hour, the box's local time) and how many
    /// snapshots are kept.
    Schedule {
        /// Hour of the day, 0-23.
        #[arg(long)]
        hour: Option<u8>,
        /// Daily snapshots kept.
        #[arg(long)]
        daily: Option<u32>,
        /// Weekly snapshots kept.
        #[arg(long)]
        weekly: Option<u32>,
        /// Monthly snapshots kept.
        #[arg(long)]
        monthly: Option<u32>,
    },
    /// Where backups go, when they run, and how the last ones went.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The snapshots in the backup, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Restore a snapshot (an id, or `latest`): the whole box into a new
    /// folder, which `pochta serve --data` can then use; or with --account
    /// one account's mail into this box, under a folder `Restored DATE`
    /// (nothing it has now is touched). Every message file is checked
    /// against its hash.
    Restore {
        snapshot: String,
        /// The new data folder (must not exist, or be empty).
        #[arg(long, required_unless_present = "account", conflicts_with = "account")]
        into: Option<PathBuf>,
        /// Restore this account's mail into this box.
        #[arg(long)]
        account: Option<String>,
        /// Restore from this backup folder instead of this box's.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Read the backup key from standard input (a key from a recovery
        /// sheet) instead of using this box's.
        #[arg(long)]
        key_stdin: bool,
    },
    /// Test-restore the newest backup: the database and three accounts'
    /// mail (everything with --full), checked against their hashes, the
    /// database's integrity check and the backup's counts. Exits 1 on any
    /// problem.
    Verify {
        /// Read every pack file and restore every message.
        #[arg(long)]
        full: bool,
        #[arg(long)]
        json: bool,
    },
    /// Forget snapshots beyond 7 daily, 4 weekly and 12 monthly, and remove
    /// the data only they used.
    Prune {
        #[arg(long)]
        json: bool,
    },
    /// Print the backup key. Without it no backup can be read: write it down
    /// and keep it away from the box.
    Key,
}

/// Runs a backup command; `Ok(true)` when a verification found problems.
pub fn backup(data: &Path, cmd: BackupCmd) -> Result<bool, String> {
    if let BackupCmd::Restore {
        snapshot,
        into: Some(into),
        from,
        key_stdin,
        ..
    } = cmd
    {
        return restore(data, &snapshot, &into, from, key_stdin).map(|()| false);
    }
    let store = datadir::open_existing(data)?;
    let data = store.dir().to_owned();
    match cmd {
        BackupCmd::To { folder } => {
            if !folder.is_dir() {
                return Err(format!(
                    "{} is not a folder: mount the backup disk and make the folder first",
                    folder.display()
                ));
            }
            let folder = std::fs::canonicalize(&folder).map_err(|e| e.to_string())?;
            if folder.to_str().is_none() {
                return Err(format!("{} is not a UTF-8 path", folder.display()));
            }
            let mut settings = Settings::load(&store).map_err(|e| e.to_string())?;
            settings.folder = Some(folder.clone());
            settings.save(&store).map_err(|e| e.to_string())?;
            Key::load_or_create(&data).map_err(|e| format!("cannot make the backup key: {e}"))?;
            println!(
                "backups go to {} from now on; run `pochta backup now` for the first, and \
                 `pochta backup key` to write the key down",
                folder.display()
            );
            Ok(false)
        }
        BackupCmd::Now { json } => {
            let maillog = mail_log(&data)?;
            let outcomes = pochta_backup::back_up_everywhere(&store, &maillog, None)
                .map_err(|e| e.to_string())?;
            let failed: Vec<&str> = outcomes
                .iter()
                .filter(|o| !o.ok)
                .map(|o| o.destination.as_str())
                .collect();
            if json {
                print_json(&serde_json::json!({ "destinations": outcomes }))?;
            } else {
                for o in &outcomes {
                    match (&o.report, &o.error) {
                        (Some(report), _) => {
                            println!(
                                "backed up to {}: snapshot {}, {} messages in {} accounts, {} in {} files; \
                                 {} new files, {} added; checked; took {}",
                                report.destination,
                                report.snapshot,
                                report.manifest.inventory.messages,
                                report.manifest.inventory.accounts,
                                format_size(report.bytes),
                                report.files,
                                report.files_new,
                                format_size(report.bytes_added),
                                millis(report.duration_ms)
                            );
                            if let Some(e) = &o.prune_error {
                                println!("but forgetting old snapshots failed: {e}");
                            }
                        }
                        (None, e) => println!(
                            "the backup to {} failed: {}",
                            o.destination,
                            e.as_deref().unwrap_or("unknown error")
                        ),
                    }
                }
            }
            if failed.is_empty() {
                Ok(false)
            } else {
                Err(format!(
                    "the backup to {} did not complete",
                    failed.join(" and ")
                ))
            }
        }
        BackupCmd::Schedule {
            hour,
            daily,
            weekly,
            monthly,
        } => {
            let mut settings = Settings::load(&store).map_err(|e| e.to_string())?;
            if let Some(h) = hour {
                if h > 23 {
                    return Err("--hour must be 0 to 23".into());
                }
                settings.hour = h;
            }
            for (value, slot) in [
                (daily, &mut settings.retention.daily),
                (weekly, &mut settings.retention.weekly),
                (monthly, &mut settings.retention.monthly),
            ] {
                if let Some(v) = value {
                    *slot = v;
                }
            }
            let r = settings.retention;
            if r.daily + r.weekly + r.monthly == 0 {
                return Err("keep at least one snapshot (--daily, --weekly or --monthly)".into());
            }
            settings.save(&store).map_err(|e| e.to_string())?;
            println!(
                "backups run daily at {:02}:00 (this box's time); kept: {} daily, {} weekly, {} monthly",
                settings.hour, r.daily, r.weekly, r.monthly
            );
            Ok(false)
        }
        BackupCmd::Status { json } => {
            let settings = Settings::load(&store).map_err(|e| e.to_string())?;
            let status = pochta_backup::Status::load(&store).map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::json!({ "settings": settings, "status": status }))?;
                return Ok(false);
            }
            let destinations = settings.destinations();
            if destinations.is_empty() {
                println!("no backup destination is set: `pochta backup to FOLDER` sets one");
                return Ok(false);
            }
            let r = settings.retention;
            println!(
                "backups run daily at {:02}:00; kept: {} daily, {} weekly, {} monthly",
                settings.hour, r.daily, r.weekly, r.monthly
            );
            let now = super::now();
            for dest in destinations {
                let empty = pochta_backup::DestinationStatus::default();
                let s = status.destinations.get(dest.id()).unwrap_or(&empty);
                println!("{}:", dest.describe());
                match &s.last_ok {
                    Some(ok) => println!(
                        "  last backup {} ago: snapshot {}, {} messages, {} ({} added), took {}",
                        format_duration(now - ok.at),
                        ok.snapshot,
                        ok.messages,
                        format_size(ok.bytes),
                        format_size(ok.added),
                        millis(ok.duration_ms)
                    ),
                    None => println!("  no backup yet"),
                }
                if let Some(f) = &s.last_failure {
                    println!(
                        "  last failure {} ago: {}",
                        format_duration(now - f.at),
                        f.error
                    );
                }
                match &s.last_verify {
                    Some(v) => println!(
                        "  last test restore {} ago: {}",
                        format_duration(now - v.at),
                        if v.ok {
                            format!("ok, {} message files checked", v.bodies)
                        } else {
                            format!("FAILED: {}", v.problems.join("; "))
                        }
                    ),
                    None => println!("  no test restore yet"),
                }
            }
            Ok(false)
        }
        BackupCmd::List { json } => {
            let dest = destination(&store)?;
            let key = box_key(&data)?;
            let snaps = pochta_backup::list(&dest, &key, &data).map_err(|e| e.to_string())?;
            if json {
                print_json(&snaps)?;
            } else if snaps.is_empty() {
                println!("no backups in {} yet", dest.describe());
            } else {
                for s in snaps {
                    println!(
                        "{}  {}  {}  {} in {} files, {} added",
                        s.id,
                        s.time,
                        s.host,
                        format_size(s.bytes),
                        s.files,
                        format_size(s.bytes_added)
                    );
                }
            }
            Ok(false)
        }
        BackupCmd::Verify { full, json } => {
            let maillog = mail_log(&data)?;
            let outcomes = pochta_backup::verify_everywhere(&store, &maillog, full)
                .map_err(|e| e.to_string())?;
            if outcomes.iter().all(|o| o.nothing_yet) {
                let why: Vec<&str> = outcomes.iter().filter_map(|o| o.error.as_deref()).collect();
                return Err(format!("nothing to verify: {}", why.join("; ")));
            }
            let all_ok = outcomes.iter().all(|o| o.ok || o.nothing_yet);
            if json {
                print_json(&serde_json::json!({ "destinations": outcomes }))?;
                return Ok(!all_ok);
            }
            for o in &outcomes {
                let Some(report) = &o.report else {
                    println!(
                        "{}: {}",
                        o.destination,
                        o.error.as_deref().unwrap_or("the test restore failed")
                    );
                    continue;
                };
                println!(
                    "snapshot {} in {}: {} message files restored and checked ({}) from {}; \
                     database {}; backup holds {} messages in {} accounts, the live box {} in {}; took {}",
                    report.snapshot,
                    report.destination,
                    report.bodies_checked,
                    format_size(report.body_bytes_checked),
                    if report.full {
                        "every account".to_owned()
                    } else {
                        report.accounts_checked.join(", ")
                    },
                    report.database,
                    report.restored.messages,
                    report.restored.accounts,
                    report.live.messages,
                    report.live.accounts,
                    millis(report.duration_ms)
                );
                for p in report.repository_problems.iter().chain(&report.problems) {
                    println!("problem: {p}");
                }
            }
            println!(
                "{}",
                if all_ok {
                    "verified: ok"
                } else {
                    "verification FAILED"
                }
            );
            Ok(!all_ok)
        }
        BackupCmd::Prune { json } => {
            let dest = destination(&store)?;
            let key = box_key(&data)?;
            let retention = Settings::load(&store).map_err(|e| e.to_string())?.retention;
            let report =
                pochta_backup::prune(&dest, &key, &data, retention).map_err(|e| e.to_string())?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "kept {} snapshots, forgot {}{}",
                    report.kept.len(),
                    report.forgotten.len(),
                    if report.forgotten.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", report.forgotten.join(", "))
                    }
                );
            }
            Ok(false)
        }
        BackupCmd::Key => {
            let key = Key::load_or_create(&data)
                .map_err(|e| format!("cannot read the backup key: {e}"))?;
            println!("{}", key.as_str());
            eprintln!(
                "Without this key no backup of this box can be read, by Pochta or by restic. \
                 Write it down and keep it away from the box."
            );
            Ok(false)
        }
        BackupCmd::Restore {
            snapshot,
            account: Some(account),
            from,
            key_stdin,
            ..
        } => {
            let dest = match from {
                Some(folder) => Destination::Folder(folder),
                None => destination(&store)?,
            };
            let key = if key_stdin {
                read_key()?
            } else {
                box_key(&data)?
            };
            let _lock = pochta_backup::RunLock::take(&data).map_err(|e| e.to_string())?;
            let r = pochta_backup::restore_account(&store, &dest, &key, &snapshot, &account)
                .map_err(|e| e.to_string())?;
            println!(
                "restored {} messages ({}) in {} folders of {} from snapshot {}, under the folder \
                 \"{}\"; every message file matches its hash",
                r.messages,
                format_size(r.bytes),
                r.folders,
                r.account,
                r.snapshot,
                r.folder
            );
            Ok(false)
        }
        BackupCmd::Restore { .. } => unreachable!("clap asks for --into or --account"),
    }
}

fn restore(
    data: &Path,
    snapshot: &str,
    into: &Path,
    from: Option<PathBuf>,
    key_stdin: bool,
) -> Result<(), String> {
    let dest = match from {
        Some(folder) => Destination::Folder(folder),
        None => destination(&datadir::open_existing(data)?)?,
    };
    let key = if key_stdin {
        read_key()?
    } else {
        box_key(data)?
    };
    let manifest =
        pochta_backup::restore(&dest, &key, data, snapshot, into).map_err(|e| e.to_string())?;
    key.save(into)
        .map_err(|e| format!("restored, but the key could not be saved with it: {e}"))?;
    println!(
        "restored {} messages in {} accounts ({} message files, {}) into {}; \
         every message file matches its hash. Serve it with `pochta serve --data {}`",
        manifest.inventory.messages,
        manifest.inventory.accounts,
        manifest.bodies,
        format_size(manifest.body_bytes),
        into.display(),
        into.display()
    );
    Ok(())
}

/// The destination a command works on: the one set (the first, when more
/// are).
fn destination(store: &Store) -> Result<Destination, String> {
    let settings = Settings::load(store).map_err(|e| e.to_string())?;
    settings
        .destinations()
        .into_iter()
        .next()
        .ok_or_else(|| "no backup destination is set: `pochta backup to FOLDER` sets one".into())
}

/// A key typed on standard input (from a recovery sheet).
fn read_key() -> Result<Key, String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the key: {e}"))?;
    Key::from_typed(text.trim()).ok_or_else(|| "no key on standard input".to_owned())
}

fn box_key(data: &Path) -> Result<Key, String> {
    Key::load(data)
        .map_err(|e| format!("cannot read the backup key: {e}"))?
        .ok_or_else(|| "this box has no backup key yet: `pochta backup to FOLDER` makes one".into())
}

/// The data folder's mail log, where backups are recorded beside mail.
fn mail_log(data: &Path) -> Result<pochta_maillog::MailLog, String> {
    pochta_maillog::MailLog::open(&data.join("log").join("mail.log"))
        .map_err(|e| format!("cannot open the mail log: {e}"))
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string(value).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn millis(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format_duration((ms / 1000) as i64)
    }
}
