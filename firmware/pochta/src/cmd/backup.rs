//! `pochta backup`: encrypted, incremental backups in restic's format to a
//! folder (on the appliance, the USB backup disk) and to S3-compatible
//! storage, and their restore and verification. See `pochta-backup`.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use pochta_backup::{Addressing, BackupError, Destination, Key, S3Access, S3Target, Settings};
use pochta_config::{format_duration, format_size};

use pochta_store::Store;

use crate::datadir;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Back up to FOLDER from now on (a mounted USB disk's folder, say);
    /// the first backup makes the repository there.
    To {
        #[arg(required_unless_present = "off")]
        folder: Option<PathBuf>,
        /// Stop backing up to the folder (the backups in it stay).
        #[arg(long, conflicts_with = "folder")]
        off: bool,
    },
    /// Back up to an S3-compatible bucket from now on (as well as to the
    /// folder, if one is set). The secret key is read from standard input,
    /// and the bucket is checked with the keys before anything is saved.
    ToS3(ToS3),
    /// Back up now, to every destination set: a consistent copy of the
    /// whole box, then a check of what was written. Exits 2 if any failed.
    Now {
        /// Machine-readable output, sizes in bytes: a JSON object per
        /// destination backed up, one a line.
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
        /// Which destination: the folder or S3 (the first set by default).
        #[arg(long, value_enum)]
        to: Option<Which>,
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
        #[arg(long, conflicts_with = "to")]
        from: Option<PathBuf>,
        /// Which of this box's destinations to restore from (the first set
        /// by default).
        #[arg(long, value_enum)]
        to: Option<Which>,
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
        /// Which destination: the folder or S3 (the first set by default).
        #[arg(long, value_enum)]
        to: Option<Which>,
        #[arg(long)]
        json: bool,
    },
    /// Forget snapshots beyond 7 daily, 4 weekly and 12 monthly, and remove
    /// the data only they used.
    Prune {
        /// Which destination: the folder or S3 (the first set by default).
        #[arg(long, value_enum)]
        to: Option<Which>,
        #[arg(long)]
        json: bool,
    },
    /// Print the backup key. Without it no backup can be read: write it down
    /// and keep it away from the box.
    Key,
}

/// `pochta backup to-s3`.
#[derive(Args)]
pub struct ToS3 {
    /// The service's URL, https://host[:port] (http:// only on a network
    /// you trust): no bucket or path in it.
    #[arg(long, required_unless_present = "off")]
    endpoint: Option<String>,
    /// The region the keys sign for: the service's, or us-east-1 where it
    /// has none.
    #[arg(long, required_unless_present = "off")]
    region: Option<String>,
    /// The bucket's name (made beforehand, or with --create-bucket).
    #[arg(long, required_unless_present = "off")]
    bucket: Option<String>,
    /// A folder-like prefix in the bucket (say, this box's name), so that
    /// several boxes can share one; the bucket's top by default.
    #[arg(long, default_value = "")]
    prefix: String,
    /// The access key id.
    #[arg(long, required_unless_present = "off")]
    access_key: Option<String>,
    /// Read the secret key from standard input (it never shows on a
    /// command line).
    #[arg(long, required_unless_present = "off")]
    secret_key_stdin: bool,
    /// Name the bucket in the host name (https://BUCKET.host/) instead of
    /// the path (https://host/BUCKET/): for providers that want it.
    #[arg(long)]
    virtual_host: bool,
    /// Make the bucket if it does not exist yet.
    #[arg(long)]
    create_bucket: bool,
    /// Stop backing up to S3 (the backups in the bucket stay).
    #[arg(long, conflicts_with_all = ["endpoint", "region", "bucket", "access_key", "secret_key_stdin", "virtual_host", "create_bucket"])]
    off: bool,
}

/// A kind of destination, for `--to`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// The folder set with `pochta backup to`.
    Folder,
    /// The bucket set with `pochta backup to-s3`.
    S3,
}

impl Which {
    /// The destination's id (`Destination::id`).
    fn id(self) -> &'static str {
        match self {
            Which::Folder => "folder",
            Which::S3 => "s3",
        }
    }
}

const NO_DESTINATION: &str = "no backup destination is set: `pochta backup to FOLDER` or \
                              `pochta backup to-s3 ...` sets one";

/// Runs a backup command; `Ok(true)` when a verification found problems.
pub fn backup(data: &Path, cmd: BackupCmd) -> Result<bool, String> {
    if let BackupCmd::Restore {
        snapshot,
        into: Some(into),
        from,
        to,
        key_stdin,
        ..
    } = cmd
    {
        return restore(data, &snapshot, &into, from, to, key_stdin).map(|()| false);
    }
    let store = datadir::open_existing(data)?;
    let data = store.dir().to_owned();
    match cmd {
        BackupCmd::To { folder, off } => {
            let mut settings = Settings::load(&store).map_err(|e| e.to_string())?;
            let Some(folder) = folder.filter(|_| !off) else {
                let Some(old) = settings.folder.take() else {
                    println!("no backup folder was set");
                    return Ok(false);
                };
                settings.save(&store).map_err(|e| e.to_string())?;
                println!(
                    "backups no longer go to {}; the backups in it stay",
                    old.display()
                );
                return Ok(false);
            };
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
        BackupCmd::ToS3(args) => to_s3(&store, &data, args).map(|()| false),
        BackupCmd::Now { json } => {
            let maillog = mail_log(&data)?;
            let outcomes = pochta_backup::back_up_everywhere(&store, &maillog, None)
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&serde_json::json!({ "destinations": outcomes }))?;
            }
            let mut failed = Vec::new();
            for o in &outcomes {
                if let Some(report) = &o.report {
                    if !json {
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
                    }
                }
                let problem = match (&o.error, &o.prune_error) {
                    (Some(e), _) => format!("the backup to {} failed: {e}", o.destination),
                    (None, Some(e)) => format!(
                        "the backup to {} was made, but forgetting old snapshots failed: {e}",
                        o.destination
                    ),
                    (None, None) => continue,
                };
                if outcomes.len() > 1 {
                    eprintln!("pochta: {problem}");
                }
                failed.push((o.destination.as_str(), problem));
            }
            match failed.len() {
                0 => Ok(false),
                _ if outcomes.len() == 1 => Err(failed.remove(0).1),
                n => Err(format!(
                    "{n} of {} backups failed (to {}){}",
                    outcomes.len(),
                    failed
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(" and "),
                    if n < outcomes.len() {
                        "; the others were made"
                    } else {
                        ""
                    }
                )),
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
                println!("{NO_DESTINATION}");
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
        BackupCmd::List { to, json } => {
            let dest = destination(&store, to)?;
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
        BackupCmd::Verify { full, to, json } => {
            let maillog = mail_log(&data)?;
            let only = to.map(|w| w.id());
            let outcomes = pochta_backup::verify_everywhere(&store, &maillog, full, only)
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
        BackupCmd::Prune { to, json } => {
            let dest = destination(&store, to)?;
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
            to,
            key_stdin,
            ..
        } => {
            let dest = match from {
                Some(folder) => Destination::Folder(folder),
                None => destination(&store, to)?,
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
    to: Option<Which>,
    key_stdin: bool,
) -> Result<(), String> {
    let dest = match from {
        Some(folder) => Destination::Folder(folder),
        None => destination(&datadir::open_existing(data)?, to)?,
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

/// `pochta backup to-s3`: checks the bucket with the keys, then saves.
fn to_s3(store: &Store, data: &Path, args: ToS3) -> Result<(), String> {
    let mut settings = Settings::load(store).map_err(|e| e.to_string())?;
    if args.off {
        let Some(old) = settings.s3.take() else {
            println!("no S3 destination was set");
            return Ok(());
        };
        settings.save(store).map_err(|e| e.to_string())?;
        println!(
            "backups no longer go to {}; the backups in it stay (`restic -r {}` reads them)",
            old.describe(),
            old.restic_repository()
        );
        return Ok(());
    }
    let mut secret = String::new();
    std::io::stdin()
        .read_to_string(&mut secret)
        .map_err(|e| format!("cannot read the secret key: {e}"))?;
    let secret = secret.lines().next().unwrap_or_default().trim();
    if secret.is_empty() {
        return Err("no secret key on standard input: pipe it in, as in \
                    `pochta backup to-s3 ... --secret-key-stdin < secret-file`"
            .into());
    }
    let target = S3Target::new(
        args.endpoint.as_deref().unwrap_or_default(),
        args.region.as_deref().unwrap_or_default(),
        args.bucket.as_deref().unwrap_or_default(),
        &args.prefix,
        args.access_key.as_deref().unwrap_or_default(),
        secret,
        if args.virtual_host {
            Addressing::VirtualHost
        } else {
            Addressing::Path
        },
    )
    .map_err(|e| e.to_string())?;
    let found = pochta_backup::check_s3(&target, args.create_bucket).map_err(|e| match e {
        BackupError::Repository(why) => format!("{why}; nothing was saved"),
        e => format!("{e}; nothing was saved"),
    })?;
    settings.s3 = Some(target.clone());
    settings.save(store).map_err(|e| e.to_string())?;
    Key::load_or_create(data).map_err(|e| format!("cannot make the backup key: {e}"))?;
    let found = match found {
        S3Access::Empty => "the bucket answers with these keys",
        S3Access::BucketMade => "the bucket was made",
        S3Access::Repository => "a repository is there already: this box's backup key must open it",
    };
    println!(
        "backups go to {} from now on ({found}); run `pochta backup now` for the first, and \
         `pochta backup key` to write the key down. Stock restic reads it as `restic -r {}`",
        target.describe(),
        target.restic_repository()
    );
    Ok(())
}

/// The destination a command works on: the one `to` names, or the first
/// set.
fn destination(store: &Store, to: Option<Which>) -> Result<Destination, String> {
    let settings = Settings::load(store).map_err(|e| e.to_string())?;
    let destinations = settings.destinations();
    match to {
        None => destinations
            .into_iter()
            .next()
            .ok_or_else(|| NO_DESTINATION.into()),
        Some(which) => destinations
            .into_iter()
            .find(|d| d.id() == which.id())
            .ok_or_else(|| match which {
                Which::Folder => {
                    "no backup folder is set: `pochta backup to FOLDER` sets one".into()
                }
                Which::S3 => "no S3 destination is set: `pochta backup to-s3 ...` sets one".into(),
            }),
    }
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
        .ok_or_else(|| {
            "this box has no backup key yet: `pochta backup to FOLDER` or `pochta backup to-s3 \
             ...` makes one"
                .into()
        })
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
