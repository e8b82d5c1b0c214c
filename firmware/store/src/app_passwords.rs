//! App passwords: one per mail client or device, made by the server, shown
//! once, revocable one by one. An account with TOTP on logs in to IMAP,
//! POP3 and SMTP with these only (login.rs).
//!
//! Stored as SHA-256, not argon2id: a secret of 16 characters drawn by the
//! operating system's CSPRNG from 36 has about 82 bits of entropy, far
//! beyond what any amount of offline guessing reaches, so a slow hash
//! would add nothing but cost at every login. A plain hash also lets a
//! login find the password by its hash in one indexed lookup instead of
//! running argon2 once per app password of the account.

use rand::Rng;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::directory::{normalize_address, AccountId};
use crate::{now, Store, StoreError};

/// The alphabet of generated secrets: lower-case letters and digits, easy
/// to type on a phone.
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Characters in a secret: 16 × log2(36) ≈ 82.7 bits.
const SECRET_LEN: usize = 16;

/// Longest name of an app password.
pub const MAX_NAME_CHARS: usize = 64;

/// An app password as the admin page lists it; never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppPassword {
    /// Row id, to revoke it by.
    pub id: i64,
    /// What it is for (e.g. "Anna's phone").
    pub name: String,
    /// When it was made (seconds since the epoch).
    pub created: i64,
    /// When it last logged in, if ever.
    pub last_used: Option<i64>,
    /// From which address it last logged in.
    pub last_used_from: Option<String>,
}

/// A new secret: four groups of four, e.g. `k3mq-7xvd-p2aa-9hto`.
pub(crate) fn generate_secret() -> String {
    let mut rng = rand::rngs::OsRng;
    let mut out = String::with_capacity(SECRET_LEN + 3);
    for i in 0..SECRET_LEN {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        // gen_range is uniform (rejection sampling), so no letter is
        // likelier than another.
        out.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    out
}

/// The canonical form of something typed as an app password: without the
/// group separators (dashes or spaces), lower case. `None` when it cannot
/// be one, so that ordinary passwords skip the lookup.
pub(crate) fn canonical(typed: &str) -> Option<String> {
    let s: String = typed
        .chars()
        .filter(|c| *c != '-' && *c != ' ')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = s.len() == SECRET_LEN && s.bytes().all(|b| ALPHABET.contains(&b));
    valid.then_some(s)
}

/// The stored form of a canonical secret: SHA-256, hex.
pub(crate) fn digest(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Checks an app password's name: trimmed, 1 to 64 characters, no control
/// characters.
fn check_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(StoreError::Invalid(
            "name the app password after the device or program it is for (e.g. \"Anna's phone\")"
                .into(),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::Invalid(format!(
            "app password name too long: use at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "app password name: no line breaks or control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

impl Store {
    /// The id of an account by address; `NotFound` when there is none.
    pub(crate) fn account_id(&self, address: &str) -> Result<AccountId, StoreError> {
        let a = normalize_address(address).unwrap_or_default();
        self.conn()?
            .query_row("SELECT id FROM accounts WHERE address = ?1", [&a], |r| {
                r.get(0)
            })
            .optional()?
            .map(AccountId)
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))
    }

    /// Makes an app password for an account: the listing entry and the
    /// secret, which is not kept and cannot be shown again.
    pub fn add_app_password(
        &self,
        address: &str,
        name: &str,
    ) -> Result<(AppPassword, String), StoreError> {
        let name = check_name(name)?;
        let account = self.account_id(address)?;
        let secret = generate_secret();
        let hash = digest(&canonical(&secret).unwrap_or_default());
        let created = now();
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO app_passwords(account_id, name, hash, created) VALUES (?1, ?2, ?3, ?4)",
            params![account.0, name, hash, created],
        )?;
        let entry = AppPassword {
            id: conn.last_insert_rowid(),
            name,
            created,
            last_used: None,
            last_used_from: None,
        };
        Ok((entry, secret))
    }

    /// An account's app passwords, oldest first.
    pub fn app_passwords(&self, address: &str) -> Result<Vec<AppPassword>, StoreError> {
        let account = self.account_id(address)?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, name, created, last_used, last_used_from FROM app_passwords
             WHERE account_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([account.0], |r| {
            Ok(AppPassword {
                id: r.get(0)?,
                name: r.get(1)?,
                created: r.get(2)?,
                last_used: r.get(3)?,
                last_used_from: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes (deletes) one app password of an account: the next login
    /// with it fails.
    pub fn revoke_app_password(&self, address: &str, id: i64) -> Result<(), StoreError> {
        let account = self.account_id(address)?;
        let n = self.conn()?.execute(
            "DELETE FROM app_passwords WHERE id = ?1 AND account_id = ?2",
            params![id, account.0],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "app password {id} of {address}"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_typable() {
        let a = generate_secret();
        assert_eq!(a.len(), 19, "{a}");
        assert_eq!(a.matches('-').count(), 3, "{a}");
        assert_ne!(a, generate_secret());
        let c = canonical(&a).unwrap();
        assert_eq!(c.len(), 16);
        assert_eq!(canonical(&a.to_uppercase()).as_deref(), Some(c.as_str()));
        assert_eq!(canonical(&a.replace('-', " ")).as_deref(), Some(c.as_str()));
        for not in [
            "",
            "correct horse",
            "abcd-efgh-ijkl-mno",
            "abcd-efgh-ijkl-mnop-q",
            "abcd-efgh-ijkl-mn!p",
        ] {
            assert_eq!(canonical(not), None, "{not}");
        }
        assert_eq!(digest("abcdefghijklmnop").len(), 64);
    }

    #[test]
    fn names() {
        assert_eq!(check_name("  Anna's phone ").unwrap(), "Anna's phone");
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name(&"ж".repeat(64)).is_ok());
        assert!(check_name("two\nlines").is_err());
    }

    #[test]
    fn add_list_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.add_domain("example.com").unwrap();
        s.add_account("bob@example.com", "correct horse", 0)
            .unwrap();
        s.add_account("amy@example.com", "correct horse", 0)
            .unwrap();
        let (phone, secret) = s.add_app_password("Bob@example.com", "Phone").unwrap();
        let (laptop, _) = s.add_app_password("bob@example.com", "Laptop").unwrap();
        assert_eq!(phone.name, "Phone");
        let stored: String = s
            .conn()
            .unwrap()
            .query_row(
                "SELECT hash FROM app_passwords WHERE id = ?1",
                [phone.id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, digest(&canonical(&secret).unwrap()));
        assert!(!stored.contains(&secret.replace('-', "")));
        let list = s.app_passwords("bob@example.com").unwrap();
        assert_eq!(list, vec![phone.clone(), laptop.clone()]);
        assert!(s.app_passwords("amy@example.com").unwrap().is_empty());
        // Another account cannot revoke it.
        assert!(matches!(
            s.revoke_app_password("amy@example.com", phone.id),
            Err(StoreError::NotFound(_))
        ));
        s.revoke_app_password("bob@example.com", phone.id).unwrap();
        assert_eq!(s.app_passwords("bob@example.com").unwrap(), vec![laptop]);
        assert!(s.revoke_app_password("bob@example.com", phone.id).is_err());
        assert!(matches!(
            s.add_app_password("nobody@example.com", "x"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.add_app_password("bob@example.com", " "),
            Err(StoreError::Invalid(_))
        ));
        // Removing the account removes its app passwords.
        s.remove_account("bob@example.com").unwrap();
        let left: i64 = s
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM app_passwords", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }
}
