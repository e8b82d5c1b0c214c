//! One account's settings on the admin page: the details it shows,
//! offboarding (disable with an optional forward and auto-reply, enable),
//! the account's TOTP enrolment, and the auto-reply's once-per-sender rule.
//!
//! A disabled account cannot log in (login.rs) but still receives mail,
//! and its forward is followed like an alias target (directory.rs).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::app_passwords::AppPassword;
use crate::directory::{normalize_address, Account, AccountId, CatchAll, Resolution};
use crate::{now, Store, StoreError};

/// An auto-reply goes to one sender at most once in this many seconds
/// (RFC 3834 §2 suggests a period of several days; 7 is common).
pub const AUTO_REPLY_INTERVAL_SECS: i64 = 7 * 24 * 3600;

/// Longest auto-reply text, in characters.
pub const MAX_AUTO_REPLY_CHARS: usize = 4000;

/// Everything the admin page shows of one account; no secret.
#[derive(Debug, Clone, Serialize)]
pub struct AccountDetails {
    /// Address, quota, usage, disabled.
    #[serde(flatten)]
    pub account: Account,
    /// Where a disabled account's mail is also sent.
    pub forward_to: Option<String>,
    /// The text a disabled account answers with.
    pub auto_reply: Option<String>,
    /// TOTP is on: mail clients must use app passwords.
    pub totp_enabled: bool,
    /// A TOTP secret was made but its enrolment not confirmed yet.
    pub totp_pending: bool,
    /// The app passwords, without their secrets.
    pub app_passwords: Vec<AppPassword>,
}

/// What to do with a disabled account's new mail, beyond keeping it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offboarding {
    /// Send a copy to this address (a colleague).
    pub forward_to: Option<String>,
    /// Answer senders with this text (RFC 3834).
    pub auto_reply: Option<String>,
}

/// An account's TOTP secret and state.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountTotp {
    /// Base32 secret, when one was made.
    pub secret: Option<String>,
    /// Whether the enrolment was confirmed.
    pub enabled: bool,
}

// The secret stays out of debug output and logs.
impl std::fmt::Debug for AccountTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountTotp")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A disabled account that answers its mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoReply {
    /// The account.
    pub account: AccountId,
    /// Its address (the reply's `From:`).
    pub address: String,
    /// The text.
    pub text: String,
}

impl Store {
    /// One account with its settings and app passwords.
    pub fn account_details(&self, address: &str) -> Result<AccountDetails, StoreError> {
        let account = self.account(address)?;
        let (forward_to, auto_reply, secret, totp_enabled): (
            Option<String>,
            Option<String>,
            Option<String>,
            bool,
        ) = self.conn()?.query_row(
            "SELECT forward_to, auto_reply, totp_secret, totp_enabled FROM accounts WHERE id = ?1",
            [account.id.0],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let app_passwords = self.app_passwords(&account.address)?;
        Ok(AccountDetails {
            account,
            forward_to,
            auto_reply,
            totp_enabled,
            totp_pending: secret.is_some() && !totp_enabled,
            app_passwords,
        })
    }

    /// Disables an account (no more logins; mail is still received and
    /// kept) with what to do with its new mail. Replaces an earlier
    /// forward and auto-reply; senders may get the new auto-reply.
    pub fn disable_account(&self, address: &str, off: &Offboarding) -> Result<(), StoreError> {
        let account = self.account(address)?;
        let forward_to = match off.forward_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(self.check_forward(&account.address, f)?),
        };
        let auto_reply = match off.auto_reply.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) if t.chars().count() > MAX_AUTO_REPLY_CHARS => {
                return Err(StoreError::Invalid(format!(
                    "auto-reply too long: use at most {MAX_AUTO_REPLY_CHARS} characters"
                )))
            }
            Some(t) => Some(t.to_owned()),
        };
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE accounts SET disabled = 1, forward_to = ?1, auto_reply = ?2 WHERE id = ?3",
            params![forward_to, auto_reply, account.id.0],
        )?;
        tx.execute(
            "DELETE FROM auto_replies WHERE account_id = ?1",
            [account.id.0],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Where a forward may go: an address that is not the account itself
    /// and, in a local domain, one that exists.
    fn check_forward(&self, account: &str, forward: &str) -> Result<String, StoreError> {
        let f = normalize_address(forward).ok_or_else(|| {
            StoreError::Invalid(format!(
                "forward_to: {forward:?} is not an address (expected e.g. colleague@example.com)"
            ))
        })?;
        if f == account {
            return Err(StoreError::Invalid(
                "forward_to: an account cannot forward to itself".into(),
            ));
        }
        if self.resolve(&f, CatchAll::Use)? == Resolution::Unknown {
            return Err(StoreError::Invalid(format!(
                "forward_to: there is no {f} here"
            )));
        }
        Ok(f)
    }

    /// Enables an account again: logins work, the forward and the
    /// auto-reply end.
    pub fn enable_account(&self, address: &str) -> Result<(), StoreError> {
        let account = self.account(address)?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE accounts SET disabled = 0, forward_to = NULL, auto_reply = NULL WHERE id = ?1",
            [account.id.0],
        )?;
        tx.execute(
            "DELETE FROM auto_replies WHERE account_id = ?1",
            [account.id.0],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The account's TOTP secret and whether it is confirmed.
    pub fn account_totp(&self, address: &str) -> Result<AccountTotp, StoreError> {
        let id = self.account_id(address)?;
        Ok(self.conn()?.query_row(
            "SELECT totp_secret, totp_enabled FROM accounts WHERE id = ?1",
            [id.0],
            |r| {
                Ok(AccountTotp {
                    secret: r.get(0)?,
                    enabled: r.get(1)?,
                })
            },
        )?)
    }

    /// Starts a TOTP enrolment with a new secret, not yet in force.
    /// Refused while TOTP is on: turn it off first, so that a new
    /// enrolment never silently lets the account password back in.
    pub fn start_account_totp(&self, address: &str, secret: &str) -> Result<(), StoreError> {
        let id = self.account_id(address)?;
        let n = self.conn()?.execute(
            "UPDATE accounts SET totp_secret = ?1 WHERE id = ?2 AND totp_enabled = 0",
            params![secret, id.0],
        )?;
        if n == 0 {
            return Err(StoreError::Exists(format!(
                "two-factor login of {address} (turn it off first to enrol a new device)"
            )));
        }
        Ok(())
    }

    /// Confirms a started enrolment: from now on mail clients need app
    /// passwords.
    pub fn confirm_account_totp(&self, address: &str) -> Result<(), StoreError> {
        let id = self.account_id(address)?;
        let n = self.conn()?.execute(
            "UPDATE accounts SET totp_enabled = 1 WHERE id = ?1 AND totp_secret IS NOT NULL",
            [id.0],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "TOTP enrolment of {address} (start one first)"
            )));
        }
        Ok(())
    }

    /// Turns TOTP off and forgets the secret: the account password works
    /// for mail clients again.
    pub fn disable_account_totp(&self, address: &str) -> Result<(), StoreError> {
        let id = self.account_id(address)?;
        self.conn()?.execute(
            "UPDATE accounts SET totp_secret = NULL, totp_enabled = 0 WHERE id = ?1",
            [id.0],
        )?;
        Ok(())
    }

    /// Of these accounts, the disabled ones with an auto-reply.
    pub fn auto_replies(&self, accounts: &[AccountId]) -> Result<Vec<AutoReply>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT address, auto_reply FROM accounts
             WHERE id = ?1 AND disabled = 1 AND auto_reply IS NOT NULL",
        )?;
        let mut out = Vec::new();
        for &account in accounts {
            let found: Option<(String, String)> = stmt
                .query_row([account.0], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((address, text)) = found {
                out.push(AutoReply {
                    account,
                    address,
                    text,
                });
            }
        }
        Ok(out)
    }

    /// Whether `account` may auto-reply to `sender` now: true (and noted)
    /// when it has not in the last [`AUTO_REPLY_INTERVAL_SECS`]. One
    /// statement, so that two deliveries at once cannot both say yes.
    pub fn claim_auto_reply(&self, account: AccountId, sender: &str) -> Result<bool, StoreError> {
        let t = now();
        let n = self.conn()?.execute(
            "INSERT INTO auto_replies(account_id, sender, sent) VALUES (?1, ?2, ?3)
             ON CONFLICT(account_id, sender) DO UPDATE SET sent = excluded.sent
             WHERE sent <= ?3 - ?4",
            params![
                account.0,
                sender.trim().to_lowercase(),
                t,
                AUTO_REPLY_INTERVAL_SECS
            ],
        )?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.add_domain("example.com").unwrap();
        s.add_account("bob@example.com", "correct horse", 0)
            .unwrap();
        s.add_account("amy@example.com", "correct horse", 0)
            .unwrap();
        (dir, s)
    }

    #[test]
    fn disable_with_forward_and_auto_reply_then_enable() {
        let (_d, s) = store();
        let d = s.account_details("bob@example.com").unwrap();
        assert!(!d.account.disabled && d.forward_to.is_none() && !d.totp_enabled);
        for (forward, needle) in [
            ("not an address", "not an address"),
            ("bob@example.com", "itself"),
            ("ghost@example.com", "there is no ghost@example.com"),
        ] {
            let off = Offboarding {
                forward_to: Some(forward.into()),
                auto_reply: None,
            };
            match s.disable_account("bob@example.com", &off) {
                Err(StoreError::Invalid(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{forward}: {other:?}"),
            }
        }
        let long = Offboarding {
            forward_to: None,
            auto_reply: Some("x".repeat(MAX_AUTO_REPLY_CHARS + 1)),
        };
        assert!(matches!(
            s.disable_account("bob@example.com", &long),
            Err(StoreError::Invalid(_))
        ));
        assert!(!s.account("bob@example.com").unwrap().disabled);
        let off = Offboarding {
            forward_to: Some(" Amy@Example.com ".into()),
            auto_reply: Some("I have left; write to Amy.\n".into()),
        };
        s.disable_account("bob@example.com", &off).unwrap();
        let d = s.account_details("bob@example.com").unwrap();
        assert!(d.account.disabled);
        assert_eq!(d.forward_to.as_deref(), Some("amy@example.com"));
        assert_eq!(d.auto_reply.as_deref(), Some("I have left; write to Amy."));
        // A remote forward is fine.
        let remote = Offboarding {
            forward_to: Some("bob@home.example.org".into()),
            ..off.clone()
        };
        s.disable_account("bob@example.com", &remote).unwrap();

        let bob = d.account.id;
        let amy = s.account("amy@example.com").unwrap().id;
        let replies = s.auto_replies(&[bob, amy]).unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].address, "bob@example.com");
        assert!(s.claim_auto_reply(bob, "Sender@remote.org").unwrap());
        assert!(!s.claim_auto_reply(bob, "sender@remote.org").unwrap());
        assert!(s.claim_auto_reply(bob, "other@remote.org").unwrap());
        // A week later the same sender is answered again.
        s.conn()
            .unwrap()
            .execute(
                "UPDATE auto_replies SET sent = sent - ?1",
                [AUTO_REPLY_INTERVAL_SECS],
            )
            .unwrap();
        assert!(s.claim_auto_reply(bob, "sender@remote.org").unwrap());

        s.enable_account("bob@example.com").unwrap();
        let d = s.account_details("bob@example.com").unwrap();
        assert!(!d.account.disabled && d.forward_to.is_none() && d.auto_reply.is_none());
        assert!(s.auto_replies(&[bob]).unwrap().is_empty());
        assert!(matches!(
            s.enable_account("nobody@example.com"),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn totp_enrolment() {
        let (_d, s) = store();
        assert_eq!(
            s.account_totp("bob@example.com").unwrap(),
            AccountTotp {
                secret: None,
                enabled: false
            }
        );
        assert!(matches!(
            s.confirm_account_totp("bob@example.com"),
            Err(StoreError::NotFound(_))
        ));
        s.start_account_totp("bob@example.com", "JBSWY3DPEHPK3PXP")
            .unwrap();
        let d = s.account_details("bob@example.com").unwrap();
        assert!(d.totp_pending && !d.totp_enabled);
        assert!(!format!("{d:?}").contains("JBSW"));
        let t = s.account_totp("bob@example.com").unwrap();
        assert_eq!(t.secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
        assert!(!format!("{t:?}").contains("JBSW"));
        s.confirm_account_totp("bob@example.com").unwrap();
        let d = s.account_details("bob@example.com").unwrap();
        assert!(!d.totp_pending && d.totp_enabled);
        assert!(matches!(
            s.start_account_totp("bob@example.com", "ANOTHERSECRET234"),
            Err(StoreError::Exists(_))
        ));
        s.disable_account_totp("bob@example.com").unwrap();
        assert_eq!(
            s.account_totp("bob@example.com").unwrap(),
            AccountTotp {
                secret: None,
                enabled: false
            }
        );
    }
}
