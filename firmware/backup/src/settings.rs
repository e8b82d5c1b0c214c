//! What the owner chose for backups, kept in the store (one JSON value), so
//! that the CLI, the admin page and the server's schedule see one choice.

use std::path::PathBuf;

use pochta_store::Store;
use serde::{Deserialize, Serialize};

use crate::{BackupError, Destination, Retention};

/// The store's name for the settings.
const KEY: &str = "backup.settings";

/// Where and when backups run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// A folder to back up to (on the appliance, the USB backup disk's).
    pub folder: Option<PathBuf>,
    /// The hour of the day (the box's local time, 0–23) the daily backup
    /// starts: a quiet hour.
    pub hour: u8,
    /// Snapshots kept after each backup.
    pub retention: Retention,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            folder: None,
            hour: 3,
            retention: Retention::default(),
        }
    }
}

impl Settings {
    pub fn load(store: &Store) -> Result<Settings, BackupError> {
        match store.value(KEY)? {
            None => Ok(Settings::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                BackupError::Corrupt(format!("the stored backup settings cannot be read: {e}"))
            }),
        }
    }

    /// The settings of the data folder `data`, read before the store is
    /// opened (see `Store::peek_value`); the defaults when unreadable.
    pub fn peek(data: &std::path::Path) -> Settings {
        Store::peek_value(data, KEY)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Folders the server must be able to write for these settings' backups.
    pub fn writable_folders(&self) -> Vec<PathBuf> {
        self.folder.iter().cloned().collect()
    }

    pub fn save(&self, store: &Store) -> Result<(), BackupError> {
        let text = serde_json::to_string(self)
            .map_err(|e| BackupError::Corrupt(format!("backup settings: {e}")))?;
        Ok(store.set_value(KEY, &text)?)
    }

    /// Every destination set, in a fixed order.
    pub fn destinations(&self) -> Vec<Destination> {
        self.folder
            .iter()
            .cloned()
            .map(Destination::Folder)
            .collect()
    }
}
