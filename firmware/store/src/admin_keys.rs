//! An administrator's other keys: recovery codes, typed instead of a TOTP
//! code when the phone is lost (each works once), and API tokens for
//! scripts. Both are made by the caller from a CSPRNG with at least 50 bits
//! (recovery codes, behind the login's password and brute-force guard) or
//! 160 bits (tokens), so a plain SHA-256 is enough to keep them unreadable
//! from a copy of the database; argon2id would only slow every API call.

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{now, Store, StoreError};

/// An API token as listed (the token itself is shown only when made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its number, for revoking.
    pub id: i64,
    /// The name the administrator gave it.
    pub name: String,
    /// Unix time it was made.
    pub created: i64,
    /// Unix time of its last use.
    pub last_used: Option<i64>,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A recovery code as typed: case, spaces and dashes do not matter.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Store {
    /// Replaces an administrator's recovery codes with `codes`.
    pub fn set_recovery_codes(&self, admin: &str, codes: &[String]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM admin_recovery_codes WHERE admin = ?1", [admin])?;
        for code in codes {
            tx.execute(
                "INSERT OR IGNORE INTO admin_recovery_codes(admin, hash) VALUES (?1, ?2)",
                params![admin, digest(&normalize_code(code))],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Uses up a recovery code: `true` when it was one of the
    /// administrator's and not used before.
    pub fn use_recovery_code(&self, admin: &str, code: &str) -> Result<bool, StoreError> {
        let normalized = normalize_code(code);
        if normalized.is_empty() {
            return Ok(false);
        }
        let n = self.conn()?.execute(
            "UPDATE admin_recovery_codes SET used = ?3
             WHERE admin = ?1 AND hash = ?2 AND used IS NULL",
            params![admin, digest(&normalized), now()],
        )?;
        Ok(n == 1)
    }

    /// How many unused recovery codes an administrator has.
    pub fn recovery_codes_left(&self, admin: &str) -> Result<u32, StoreError> {
        Ok(self.conn()?.query_row(
            "SELECT count(*) FROM admin_recovery_codes WHERE admin = ?1 AND used IS NULL",
            [admin],
            |r| r.get(0),
        )?)
    }

    /// Records a new API token (made by the caller); returns its number.
    pub fn add_api_token(&self, admin: &str, name: &str, token: &str) -> Result<i64, StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "INSERT INTO api_tokens(admin, name, hash, created) VALUES (?1, ?2, ?3, ?4)",
            params![admin, name, digest(token), now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// The administrator a token belongs to (recording its use), or `None`
    /// for a token that is unknown or revoked.
    pub fn api_token_admin(&self, token: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn()?;
        let hash = digest(token);
        let admin: Option<String> = conn
            .query_row(
                "SELECT admin FROM api_tokens WHERE hash = ?1",
                [&hash],
                |r| r.get(0),
            )
            .optional()?;
        if admin.is_some() {
            conn.execute(
                "UPDATE api_tokens SET last_used = ?2 WHERE hash = ?1",
                params![hash, now()],
            )?;
        }
        Ok(admin)
    }

    /// An administrator's API tokens, oldest first.
    pub fn api_tokens(&self, admin: &str) -> Result<Vec<ApiToken>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT id, name, created, last_used FROM api_tokens WHERE admin = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([admin], |r| {
            Ok(ApiToken {
                id: r.get(0)?,
                name: r.get(1)?,
                created: r.get(2)?,
                last_used: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes an administrator's token; `NotFound` when there is no such
    /// token of theirs.
    pub fn revoke_api_token(&self, admin: &str, id: i64) -> Result<(), StoreError> {
        let n = self.conn()?.execute(
            "DELETE FROM api_tokens WHERE admin = ?1 AND id = ?2",
            params![admin, id],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("API token {id}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_admin() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_first_admin("root", "a long passphrase 1", "JBSWY3DPEHPK3PXP")
            .unwrap();
        (dir, store)
    }

    #[test]
    fn recovery_codes_work_once() {
        let (_dir, store) = store_with_admin();
        let codes = vec!["ABCDE-FGHJK".to_string(), "MNPQR-STVWX".to_string()];
        store.set_recovery_codes("root", &codes).unwrap();
        assert_eq!(store.recovery_codes_left("root").unwrap(), 2);
        assert!(!store.use_recovery_code("root", "ZZZZZ-ZZZZZ").unwrap());
        assert!(!store.use_recovery_code("other", "ABCDE-FGHJK").unwrap());
        assert!(!store.use_recovery_code("root", " - ").unwrap());
        // Typed in lower case without the dash.
        assert!(store.use_recovery_code("root", "abcde fghjk").unwrap());
        assert!(!store.use_recovery_code("root", "ABCDE-FGHJK").unwrap());
        assert_eq!(store.recovery_codes_left("root").unwrap(), 1);
        // New codes replace the old ones, used or not.
        store
            .set_recovery_codes("root", &["00000-11111".to_string()])
            .unwrap();
        assert!(!store.use_recovery_code("root", "MNPQR-STVWX").unwrap());
        assert_eq!(store.recovery_codes_left("root").unwrap(), 1);
    }

    #[test]
    fn api_tokens() {
        let (_dir, store) = store_with_admin();
        let id = store
            .add_api_token("root", "backup script", "pt_secret")
            .unwrap();
        assert_eq!(store.api_token_admin("pt_wrong").unwrap(), None);
        let listed = store.api_tokens("root").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_used, None);
        assert_eq!(
            store.api_token_admin("pt_secret").unwrap().as_deref(),
            Some("root")
        );
        assert!(store.api_tokens("root").unwrap()[0].last_used.is_some());
        assert!(store.revoke_api_token("other", id).is_err());
        store.revoke_api_token("root", id).unwrap();
        assert_eq!(store.api_token_admin("pt_secret").unwrap(), None);
        assert!(store.revoke_api_token("root", id).is_err());
    }
}
