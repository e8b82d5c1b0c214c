//! Whether a mail client's login (IMAP, POP3, SMTP AUTH) is good, and if
//! not, why — for the mail log; the client is never told the difference.
//!
//! The rules, in order:
//! 1. an unknown address or a wrong password is refused;
//! 2. a disabled account is refused whatever the credential (its mail is
//!    still received and kept, see directory.rs);
//! 3. an app password of the account works (and its last use is noted);
//! 4. the account password works unless the account has TOTP on: a mail
//!    client cannot ask for a code, so such accounts use app passwords.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordVerifier;
use argon2::Argon2;
use rusqlite::{params, OptionalExtension};

use crate::app_passwords::{canonical, digest};
use crate::directory::{hash_password, normalize_address, AccountId};
use crate::{now, Store, StoreError};

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginCheck {
    /// Good credentials.
    Accepted {
        /// The account.
        account: AccountId,
        /// Which credential it used.
        via: Credential,
    },
    /// Refused, for this reason (for the operator's log only).
    Refused(Refusal),
}

/// The credential a login used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The account's own password.
    AccountPassword,
    /// An app password, by its name.
    AppPassword(String),
}

/// Why a login was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such account, or the password is wrong (not told apart, so that
    /// the log does not list which addresses exist to whoever reads it).
    WrongPassword,
    /// The credentials were right but the account is disabled.
    Disabled,
    /// The account password was right but the account has TOTP on.
    TwoFactor,
}

impl Refusal {
    /// The reason as the mail log says it.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::WrongPassword => "wrong user name or password",
            Refusal::Disabled => "account disabled",
            Refusal::TwoFactor => {
                "account password refused: two-factor account, use an app password"
            }
        }
    }
}

impl Store {
    /// Checks a mail client's login from `from` (the client's address, kept
    /// as an app password's last use). Blocking and deliberately slow
    /// (argon2id) unless an app password matches.
    pub fn authenticate(
        &self,
        address: &str,
        password: &str,
        from: &str,
    ) -> Result<LoginCheck, StoreError> {
        let refused = |why| Ok(LoginCheck::Refused(why));
        let Some(a) = normalize_address(address) else {
            return refused(Refusal::WrongPassword);
        };
        let row: Option<(i64, String, bool, bool)> = self
            .conn()?
            .query_row(
                "SELECT id, password, disabled, totp_enabled FROM accounts WHERE address = ?1",
                [&a],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((id, hash, disabled, totp)) = row else {
            // Spend the same time as a real check so that timing does not
            // reveal which addresses exist.
            let _ = hash_password(password);
            return refused(Refusal::WrongPassword);
        };
        if let Some(app) = self.app_password_login(id, password, from)? {
            if disabled {
                return refused(Refusal::Disabled);
            }
            return Ok(LoginCheck::Accepted {
                account: AccountId(id),
                via: Credential::AppPassword(app),
            });
        }
        // A revoked or mistyped app password falls through to here and
        // costs as much as a wrong password.
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return refused(Refusal::WrongPassword);
        };
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return refused(Refusal::WrongPassword);
        }
        if disabled {
            return refused(Refusal::Disabled);
        }
        if totp {
            return refused(Refusal::TwoFactor);
        }
        Ok(LoginCheck::Accepted {
            account: AccountId(id),
            via: Credential::AccountPassword,
        })
    }

    /// The name of the account's app password that `password` is, noting
    /// its use; `None` when it is none of them.
    fn app_password_login(
        &self,
        account: i64,
        password: &str,
        from: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(key) = canonical(password) else {
            return Ok(None);
        };
        let conn = self.conn()?;
        let found: Option<(i64, String)> = conn
            .query_row(
                "SELECT id, name FROM app_passwords WHERE hash = ?1 AND account_id = ?2",
                params![digest(&key), account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, name)) = found else {
            return Ok(None);
        };
        conn.execute(
            "UPDATE app_passwords SET last_used = ?1, last_used_from = ?2 WHERE id = ?3",
            params![now(), from, id],
        )?;
        Ok(Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "correct horse";

    fn accepted(account: AccountId, via: Credential) -> LoginCheck {
        LoginCheck::Accepted { account, via }
    }

    #[test]
    fn account_password_unknown_and_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.add_domain("example.com").unwrap();
        let bob = s.add_account("bob@example.com", PW, 0).unwrap();
        assert_eq!(
            s.authenticate("Bob@example.com", PW, "192.0.2.1").unwrap(),
            accepted(bob, Credential::AccountPassword)
        );
        for (user, pw) in [
            ("bob@example.com", "wrong horse"),
            ("nobody@example.com", PW),
            ("not an address", PW),
        ] {
            assert_eq!(
                s.authenticate(user, pw, "192.0.2.1").unwrap(),
                LoginCheck::Refused(Refusal::WrongPassword),
                "{user}"
            );
        }
    }

    #[test]
    fn app_passwords_two_factor_and_disabled() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.add_domain("example.com").unwrap();
        let bob = s.add_account("bob@example.com", PW, 0).unwrap();
        s.add_account("amy@example.com", PW, 0).unwrap();
        let (phone, secret) = s.add_app_password("bob@example.com", "Phone").unwrap();
        let app = || accepted(bob, Credential::AppPassword("Phone".into()));
        assert_eq!(
            s.authenticate("bob@example.com", &secret, "192.0.2.7")
                .unwrap(),
            app()
        );
        // Typed without dashes, in capitals, with spaces: the same secret.
        let typed = secret.replace('-', " ").to_uppercase();
        assert_eq!(
            s.authenticate("bob@example.com", &typed, "192.0.2.7")
                .unwrap(),
            app()
        );
        let listed = &s.app_passwords("bob@example.com").unwrap()[0];
        assert!(listed.last_used.is_some());
        assert_eq!(listed.last_used_from.as_deref(), Some("192.0.2.7"));
        // Only for its own account.
        assert_eq!(
            s.authenticate("amy@example.com", &secret, "192.0.2.7")
                .unwrap(),
            LoginCheck::Refused(Refusal::WrongPassword)
        );

        // TOTP on: the account password is refused, the app password works.
        s.start_account_totp("bob@example.com", "JBSWY3DPEHPK3PXP")
            .unwrap();
        assert_eq!(
            s.authenticate("bob@example.com", PW, "192.0.2.7").unwrap(),
            accepted(bob, Credential::AccountPassword),
            "enrolment not confirmed yet"
        );
        s.confirm_account_totp("bob@example.com").unwrap();
        assert_eq!(
            s.authenticate("bob@example.com", PW, "192.0.2.7").unwrap(),
            LoginCheck::Refused(Refusal::TwoFactor)
        );
        assert_eq!(
            s.authenticate("bob@example.com", "wrong horse", "192.0.2.7")
                .unwrap(),
            LoginCheck::Refused(Refusal::WrongPassword)
        );
        assert_eq!(
            s.authenticate("bob@example.com", &secret, "192.0.2.7")
                .unwrap(),
            app()
        );

        // Disabled: nothing works.
        s.set_account_disabled("bob@example.com", true).unwrap();
        assert_eq!(
            s.authenticate("bob@example.com", &secret, "192.0.2.7")
                .unwrap(),
            LoginCheck::Refused(Refusal::Disabled)
        );
        s.disable_account_totp("bob@example.com").unwrap();
        assert_eq!(
            s.authenticate("bob@example.com", PW, "192.0.2.7").unwrap(),
            LoginCheck::Refused(Refusal::Disabled)
        );
        s.set_account_disabled("bob@example.com", false).unwrap();
        assert_eq!(
            s.authenticate("bob@example.com", PW, "192.0.2.7").unwrap(),
            accepted(bob, Credential::AccountPassword)
        );

        // Revoked: refused at once.
        s.revoke_app_password("bob@example.com", phone.id).unwrap();
        assert_eq!(
            s.authenticate("bob@example.com", &secret, "192.0.2.7")
                .unwrap(),
            LoginCheck::Refused(Refusal::WrongPassword)
        );
    }
}
