//! The `backup` health check: failing when the last backup or test restore
//! to a destination failed, or no backup completed for two days; a warning
//! when a box with mail has had no backup set up for a day. Its reason is
//! what the dashboard shows: when, how big, how long.

use pochta_config::{format_duration, format_size};
use pochta_store::Store;
use pochta_system::{Finding, Probe};

use crate::schedule::{DestinationStatus, Status};
use crate::stage::now;
use crate::Settings;

/// A box this old without a backup destination gets a warning.
const GRACE_SECS: i64 = 24 * 3600;
/// No completed backup for this long is a failure.
const OVERDUE_SECS: i64 = 2 * 24 * 3600;

pub struct BackupProbe {
    store: Store,
}

impl BackupProbe {
    pub fn new(store: Store) -> BackupProbe {
        BackupProbe { store }
    }

    fn look(&self) -> Result<Finding, String> {
        let settings = Settings::load(&self.store).map_err(|e| e.to_string())?;
        let status = Status::load(&self.store).map_err(|e| e.to_string())?;
        let now = now();
        let destinations = settings.destinations();
        if destinations.is_empty() {
            let oldest = self
                .store
                .oldest_account_created()
                .map_err(|e| e.to_string())?;
            return Ok(match oldest {
                Some(created) if now - created > GRACE_SECS => Finding::warning(
                    "No backup is set up: a failed SD card would lose all mail",
                    "Plug in a USB disk and choose a folder on it on the Backup page (or pochta backup to FOLDER), or a bucket (pochta backup to-s3)",
                ),
                _ => Finding::ok("No backup set up yet"),
            });
        }
        let mut lines = Vec::new();
        for dest in destinations {
            let described = dest.describe();
            let empty = DestinationStatus::default();
            let s = status.destinations.get(dest.id()).unwrap_or(&empty);
            let last_ok_at = s.last_ok.as_ref().map(|o| o.at);
            if let Some(f) = &s.last_failure {
                if last_ok_at.is_none_or(|ok| f.at > ok) {
                    return Ok(Finding::failing(
                        format!(
                            "The backup to {described} failed {} ago: {}",
                            format_duration(now - f.at),
                            f.error
                        ),
                        "Fix what the error names, then back up again: Back up now on the Backup page (or pochta backup now)",
                    ));
                }
            }
            if let Some(v) = &s.last_verify {
                if !v.ok {
                    return Ok(Finding::failing(
                        format!(
                            "The test restore from {described} failed {} ago: {}",
                            format_duration(now - v.at),
                            v.problems.first().cloned().unwrap_or_default()
                        ),
                        "Test-restore everything with pochta backup verify --full; if that fails too, back up to a new disk or bucket",
                    ));
                }
            }
            match &s.last_ok {
                None => lines.push(format!("no backup to {described} yet")),
                Some(ok) if now - ok.at > OVERDUE_SECS => {
                    return Ok(Finding::failing(
                        format!(
                            "No backup to {described} for {}",
                            format_duration(now - ok.at)
                        ),
                        "Check that the backup disk is plugged in (or the bucket reachable), then Back up now on the Backup page",
                    ))
                }
                Some(ok) => lines.push(format!(
                    "last backup to {described} {} ago, {} ({} added) in {}{}",
                    format_duration(now - ok.at),
                    format_size(ok.bytes),
                    format_size(ok.added),
                    format_duration((ok.duration_ms / 1000) as i64),
                    match &s.last_verify {
                        Some(v) => format!(
                            ", test-restored {} ago",
                            format_duration(now - v.at)
                        ),
                        None => String::new(),
                    }
                )),
            }
        }
        let mut text = lines.join("; ");
        if let Some(first) = text.get(..1) {
            text = first.to_uppercase() + &text[1..];
        }
        Ok(Finding::ok(text))
    }
}

impl Probe for BackupProbe {
    fn id(&self) -> String {
        "backup".into()
    }
    fn title(&self) -> String {
        "Backups".into()
    }
    fn check(&self) -> Finding {
        self.look().unwrap_or_else(|e| {
            Finding::failing(
                format!("The backup state cannot be read: {e}"),
                "Look at the server's log",
            )
        })
    }
}
