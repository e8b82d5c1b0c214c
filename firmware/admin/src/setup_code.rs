//! The one-time setup code that proves the first visitor of the admin page
//! has the box in hand: shown on the console and written to
//! `DATA/setup-code.txt` (mode 0600) while no administrator exists.

use std::path::{Path, PathBuf};

use rand::Rng;

/// Crockford's base32 alphabet: no I, L, O, U, so that the code is easy to
/// read aloud and type.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a code: 50 bits.
pub const LENGTH: usize = 10;

/// A fresh code from the operating system's CSPRNG.
pub fn generate() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..LENGTH)
        .map(|_| char::from(CROCKFORD[rng.gen_range(0..CROCKFORD.len())]))
        .collect()
}

/// The code as typed, in canonical form: Crockford decoding folds case,
/// reads I and L as 1 and O as 0, and ignores hyphens and spaces.
pub fn normalize(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect()
}

/// Compares in time independent of where the two differ.
pub fn matches(expected: &str, typed: &str) -> bool {
    let typed = normalize(typed);
    let (a, b) = (expected.as_bytes(), typed.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where the code is written.
pub fn file(data: &Path) -> PathBuf {
    data.join("setup-code.txt")
}

/// Writes the code to `path`, readable by the owner only (temp name,
/// fsync, rename).
pub fn write(path: &Path, code: &str) -> std::io::Result<()> {
    write_text(path, &format!("{code}\n"))
}

/// Writes the copy for people (`admin.setup_code_copy`, SETUP.TXT on the
/// appliance's boot partition): what the code is for, CRLF line ends for
/// any laptop's text editor.
pub fn write_copy(path: &Path, code: &str) -> std::io::Result<()> {
    write_text(path, &copy_text(code))
}

/// The copy's text.
pub fn copy_text(code: &str) -> String {
    format!(
        "Pochta setup code: {code}\r\n\r\n\
         Open the admin page (http://pochta/ or the address shown on the console)\r\n\
         from a computer on the same network and enter this code.\r\n\
         It works once; this file is removed when setup is done.\r\n"
    )
}

fn write_text(path: &Path, text: &str) -> std::io::Result<()> {
    pochta_privileged::helper::write_file(path, text)
}

/// Removes a file of the code once it is used up.
pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove the used setup code");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn codes_are_crockford_and_differ() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), LENGTH);
        assert!(a.bytes().all(|c| CROCKFORD.contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn typed_forms_match() {
        assert!(matches("0123456789", "0123456789"));
        assert!(matches("01ABCDEFGH", "olabc-defgh"));
        assert!(matches("01ABCDEFGH", "OI ABCDEFGH"));
        assert!(!matches("01ABCDEFGH", "01ABCDEFG"));
        assert!(!matches("01ABCDEFGH", "01ABCDEFGJ"));
        assert!(!matches("01ABCDEFGH", ""));
    }

    #[test]
    fn file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path());
        write(&path, "ABCDEFGHJK").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ABCDEFGHJK\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        remove(&path);
        assert!(!path.exists());
    }
}
