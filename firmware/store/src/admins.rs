//! Administrators of the web admin page. The first one is created with the
//! one-time setup code; [`Store::add_first_admin`] refuses once any exists,
//! so two setup attempts racing cannot both win.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordVerifier;
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};

use crate::directory::hash_password;
use crate::{now, Store, StoreError};

/// An administrator, as a login sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUser {
    /// Login name.
    pub name: String,
    /// TOTP secret, base32 (RFC 4648, no padding).
    pub totp_secret: String,
    /// Whether TOTP enrolment was confirmed: logins then need a code.
    pub totp_enabled: bool,
}

// The secret stays out of debug output and logs.
impl std::fmt::Debug for AdminUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminUser")
            .field("name", &self.name)
            .field("totp_enabled", &self.totp_enabled)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Whether any administrator exists.
    pub fn has_admin(&self) -> Result<bool, StoreError> {
        let n: i64 = self
            .conn()?
            .query_row("SELECT count(*) FROM admins", [], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Creates the first administrator; `Exists` when there is one already.
    /// The caller checks the password's strength. Blocking (argon2id).
    pub fn add_first_admin(
        &self,
        name: &str,
        password: &str,
        totp_secret: &str,
    ) -> Result<(), StoreError> {
        let hash = hash_password(password)?;
        let n = self.conn()?.execute(
            "INSERT INTO admins(name, password, totp_secret, created)
             SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM admins)",
            params![name, hash, totp_secret, now()],
        )?;
        if n == 0 {
            return Err(StoreError::Exists("an administrator".into()));
        }
        Ok(())
    }

    /// Checks an administrator's password: the administrator when it is
    /// right, `None` for an unknown name or a wrong password (not told
    /// apart). Blocking and deliberately slow (argon2id).
    pub fn authenticate_admin(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<AdminUser>, StoreError> {
        let row: Option<(String, AdminUser)> = self
            .conn()?
            .query_row(
                "SELECT password, name, totp_secret, totp_enabled FROM admins WHERE name = ?1",
                [name],
                |r| {
                    Ok((
                        r.get(0)?,
                        AdminUser {
                            name: r.get(1)?,
                            totp_secret: r.get(2)?,
                            totp_enabled: r.get(3)?,
                        },
                    ))
                },
            )
            .optional()?;
        let Some((hash, admin)) = row else {
            // The same time as a real check, so timing does not reveal names.
            let _ = hash_password(password);
            return Ok(None);
        };
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return Ok(None);
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok.then_some(admin))
    }

    /// One administrator by name.
    pub fn admin(&self, name: &str) -> Result<AdminUser, StoreError> {
        self.conn()?
            .query_row(
                "SELECT name, totp_secret, totp_enabled FROM admins WHERE name = ?1",
                [name],
                |r| {
                    Ok(AdminUser {
                        name: r.get(0)?,
                        totp_secret: r.get(1)?,
                        totp_enabled: r.get(2)?,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("administrator {name}")))
    }

    /// Marks an administrator's TOTP enrolment as confirmed.
    pub fn enable_admin_totp(&self, name: &str) -> Result<(), StoreError> {
        let n = self
            .conn()?
            .execute("UPDATE admins SET totp_enabled = 1 WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("administrator {name}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_admin_only_once_and_logins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.has_admin().unwrap());
        store
            .add_first_admin("root", "a long passphrase 1", "JBSWY3DPEHPK3PXP")
            .unwrap();
        assert!(store.has_admin().unwrap());
        assert!(matches!(
            store.add_first_admin("other", "another passphrase 2", "JBSWY3DPEHPK3PXP"),
            Err(StoreError::Exists(_))
        ));
        let admin = store
            .authenticate_admin("root", "a long passphrase 1")
            .unwrap()
            .unwrap();
        assert_eq!(admin.name, "root");
        assert!(!admin.totp_enabled);
        assert!(!format!("{admin:?}").contains("JBSW"));
        assert_eq!(store.authenticate_admin("root", "wrong").unwrap(), None);
        assert_eq!(
            store
                .authenticate_admin("other", "another passphrase 2")
                .unwrap(),
            None
        );
        store.enable_admin_totp("root").unwrap();
        assert!(store.admin("root").unwrap().totp_enabled);
        assert!(store.enable_admin_totp("nobody").is_err());
    }
}
