//! The backup key: the password of the restic repository. Generated once
//! per box, kept in the data folder (so that nightly backups run unattended)
//! and shown to the owner to write down: a backup is unreadable without it,
//! and a lost box takes its data folder's copy with it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::Rng;

/// Crockford's base32 (no I, L, O, U): nothing to misread on paper.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Six groups of five: 150 bits.
const GROUPS: usize = 6;
const GROUP_LEN: usize = 5;

/// A repository password, `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`. `restic`
/// takes it as it is printed, dashes included.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(…)")
    }
}

impl Key {
    /// A fresh random key.
    pub fn generate() -> Key {
        let mut rng = rand::thread_rng();
        let groups: Vec<String> = (0..GROUPS)
            .map(|_| {
                (0..GROUP_LEN)
                    .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                    .collect()
            })
            .collect();
        Key(groups.join("-"))
    }

    /// A key as the owner typed it: any non-empty text is a restic password
    /// (a repository made elsewhere may have any), trimmed of the line end.
    pub fn from_typed(text: &str) -> Option<Key> {
        let text = text.trim_end_matches(['\r', '\n']);
        (!text.is_empty()).then(|| Key(text.to_owned()))
    }

    /// The password as restic takes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the box keeps its key.
    pub fn path(data: &Path) -> PathBuf {
        data.join("backup").join("key")
    }

    /// The box's key, if it has one.
    pub fn load(data: &Path) -> io::Result<Option<Key>> {
        match fs::read_to_string(Key::path(data)) {
            Ok(text) => Ok(Key::from_typed(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The box's key, made and saved (owner-only, synced) the first time.
    pub fn load_or_create(data: &Path) -> io::Result<Key> {
        if let Some(key) = Key::load(data)? {
            return Ok(key);
        }
        let key = Key::generate();
        key.save(data)?;
        Ok(key)
    }

    /// Saves this key as the box's key (a restored box keeps its backup's).
    pub fn save(&self, data: &Path) -> io::Result<()> {
        let path = Key::path(data);
        let dir = path.parent().expect("key path has a folder");
        fs::create_dir_all(dir)?;
        let tmp = dir.join("key.tmp");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(file, "{}", self.0)?;
        file.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_six_groups_of_five_unambiguous_characters() {
        let key = Key::generate();
        let groups: Vec<&str> = key.as_str().split('-').collect();
        assert_eq!(groups.len(), 6);
        for g in groups {
            assert_eq!(g.len(), 5);
            assert!(g.bytes().all(|b| ALPHABET.contains(&b)), "{g}");
        }
        assert_ne!(Key::generate(), key);
    }

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Key::load(dir.path()).unwrap(), None);
        let made = Key::load_or_create(dir.path()).unwrap();
        assert_eq!(Key::load_or_create(dir.path()).unwrap(), made);
        let mode = fs::metadata(Key::path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
