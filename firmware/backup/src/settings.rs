//! What the owner chose for backups, kept in the store (one JSON value), so
//! that the CLI, the admin page and the server's schedule see one choice.

use std::path::PathBuf;

use pochta_store::Store;
use serde::{Deserialize, Serialize};

use crate::{BackupError, Destination, Retention, S3Target};

/// The store's name for the settings.
const KEY: &str = "backup.settings";

/// Where and when backups run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// A folder to back up to (on the appliance, the USB backup disk's).
    pub folder: Option<PathBuf>,
    /// An S3-compatible bucket to back up to (off the box). Settings stored
    /// before it existed read as none.
    pub s3: Option<S3Target>,
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
            s3: None,
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

    /// Every destination set, in a fixed order: the folder, then S3.
    pub fn destinations(&self) -> Vec<Destination> {
        let folder = self.folder.iter().cloned().map(Destination::Folder);
        let s3 = self.s3.iter().cloned().map(Destination::S3);
        folder.chain(s3).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_stored_before_s3_existed_still_load() {
        let old = r#"{"folder":"/media/usb/backup","hour":4,"retention":{"daily":7,"weekly":4,"monthly":12}}"#;
        let settings: Settings = serde_json::from_str(old).expect("old settings load");
        assert_eq!(settings.s3, None);
        assert_eq!(settings.hour, 4);
        assert_eq!(
            settings.destinations(),
            vec![Destination::Folder("/media/usb/backup".into())]
        );
    }

    #[test]
    fn destinations_are_the_folder_then_s3() {
        let target = S3Target::new(
            "https://s3.example.net",
            "us-east-1",
            "backups",
            "box1",
            "AK",
            "SK",
            crate::Addressing::Path,
        )
        .expect("a valid target");
        let settings = Settings {
            folder: Some("/media/usb/backup".into()),
            s3: Some(target.clone()),
            ..Settings::default()
        };
        let text = serde_json::to_string(&settings).expect("serializes");
        let back: Settings = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, settings);
        assert_eq!(
            back.destinations(),
            vec![
                Destination::Folder("/media/usb/backup".into()),
                Destination::S3(target)
            ]
        );
    }
}
