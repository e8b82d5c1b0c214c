//! The admin page's login sessions, kept so that a restart (an update, a
//! watchdog reset, a power cut) logs nobody out. The cookie's token is
//! 256 random bits, stored as its SHA-256 only: whoever copies the card
//! learns which sessions exist, not a cookie that would open one.

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// The administrator it belongs to.
    pub admin: String,
    /// Whether the administrator had finished TOTP enrolment.
    pub totp_enabled: bool,
    /// Unix time of its last recorded use.
    pub last_used: i64,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Records a new session (or its TOTP state and last use, again).
    pub fn save_admin_session(
        &self,
        token: &str,
        admin: &str,
        totp_enabled: bool,
        last_used: i64,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO admin_sessions(hash, admin, totp_enabled, last_used)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(hash) DO UPDATE SET totp_enabled = ?3, last_used = ?4",
            params![digest(token), admin, totp_enabled, last_used],
        )?;
        Ok(())
    }

    /// The session a cookie's token opens, if it is stored.
    pub fn admin_session(&self, token: &str) -> Result<Option<AdminSession>, StoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT admin, totp_enabled, last_used FROM admin_sessions WHERE hash = ?1",
                [digest(token)],
                |r| {
                    Ok(AdminSession {
                        admin: r.get(0)?,
                        totp_enabled: r.get(1)?,
                        last_used: r.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// Ends a session.
    pub fn remove_admin_session(&self, token: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM admin_sessions WHERE hash = ?1",
            [digest(token)],
        )?;
        Ok(())
    }

    /// Forgets sessions last used before `unix_time`; returns how many.
    pub fn prune_admin_sessions(&self, unix_time: i64) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "DELETE FROM admin_sessions WHERE last_used < ?1",
            [unix_time],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[test]
    fn sessions_are_kept_by_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_first_admin("root", "a long passphrase 1", "JBSWY3DPEHPK3PXP")
            .unwrap();
        let token = "a".repeat(64);
        store
            .save_admin_session(&token, "root", false, 1000)
            .unwrap();
        let s = store.admin_session(&token).unwrap().unwrap();
        assert_eq!(
            (s.admin.as_str(), s.totp_enabled, s.last_used),
            ("root", false, 1000)
        );
        store
            .save_admin_session(&token, "root", true, 2000)
            .unwrap();
        assert!(store.admin_session(&token).unwrap().unwrap().totp_enabled);
        let stored: String = store
            .conn()
            .unwrap()
            .query_row("SELECT hash FROM admin_sessions", [], |r| r.get(0))
            .unwrap();
        assert_ne!(stored, token, "the token itself is never stored");
        assert_eq!(store.admin_session(&"b".repeat(64)).unwrap(), None);
        assert_eq!(store.prune_admin_sessions(1500).unwrap(), 0);
        assert_eq!(store.prune_admin_sessions(2001).unwrap(), 1);
        assert_eq!(store.admin_session(&token).unwrap(), None);
        store
            .save_admin_session(&token, "root", true, 3000)
            .unwrap();
        store.remove_admin_session(&token).unwrap();
        assert_eq!(store.admin_session(&token).unwrap(), None);
    }
}
