//! Logins for every protocol (SMTP AUTH, IMAP, POP3): password checks off
//! the async runtime, the mail log, and the brute-force guard that slows,
//! then bans, an address that keeps failing — shared by all services so
//! that an attacker cannot switch protocols to get more guesses.
//!
//! Layout: [`Authenticator`] (the one entry point), [`Guard`] (per-address
//! failure counting), [`decode_plain`] (SASL PLAIN, RFC 4616).
//!
//! Depends on the store and the mail log; knows nothing of any protocol.

mod guard;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use pochta_maillog::MailLog;
use pochta_store::{AccountId, Credential, LoginCheck, Store};

pub use guard::{Ban, Guard, Verdict};

/// What a login attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Good credentials.
    Accepted(AccountId),
    /// Refused: wrong user or password, a disabled account, or the
    /// account password of an account with TOTP on. The mail log says
    /// which; the client is never told apart.
    Refused,
    /// The address is banned for now; the password was not even checked.
    Banned,
    /// The store could not answer; try again later.
    Unavailable,
}

/// Checks logins for all services.
pub struct Authenticator {
    store: Store,
    maillog: Arc<MailLog>,
    guard: Guard,
    /// argon2id takes 19 MiB per check: at most this many run at once, so
    /// a burst of logins queues instead of taking hundreds of MiB (and
    /// leaving them in the allocator's per-thread pools).
    hashing: tokio::sync::Semaphore,
}

impl Authenticator {
    /// An authenticator with the given guard policy.
    pub fn new(store: Store, maillog: Arc<MailLog>, policy: pochta_config::Guard) -> Authenticator {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Authenticator {
            store,
            maillog,
            guard: Guard::new(policy),
            hashing: tokio::sync::Semaphore::new(cores),
        }
    }

    /// Checks a user name and password from `peer` for `service`. Failures
    /// are logged and counted; repeated failures are slowed down, then the
    /// address is banned for a while.
    pub async fn login(
        &self,
        service: &str,
        session: &str,
        peer: SocketAddr,
        user: &str,
        password: String,
    ) -> Login {
        let ip = peer.ip();
        match self.guard.check(ip) {
            Verdict::Banned => {
                self.maillog.auth_failed(
                    session,
                    peer,
                    service,
                    &format!("{user} (address banned)"),
                );
                return Login::Banned;
            }
            Verdict::Delay(d) => tokio::time::sleep(d).await,
            Verdict::Allow => {}
        }
        let store = self.store.clone();
        let name = user.to_string();
        let Ok(_permit) = self.hashing.acquire().await else {
            return Login::Unavailable;
        };
        let from = ip.to_string();
        let checked =
            tokio::task::spawn_blocking(move || store.authenticate(&name, &password, &from)).await;
        match checked {
            Ok(Ok(LoginCheck::Accepted { account, via })) => {
                self.guard.success(ip);
                match via {
                    Credential::AccountPassword => {
                        self.maillog.auth_ok(session, peer, service, user)
                    }
                    Credential::AppPassword(name) => self.maillog.auth_ok_via(
                        session,
                        peer,
                        service,
                        user,
                        &format!("app password {name:?}"),
                    ),
                }
                Login::Accepted(account)
            }
            Ok(Ok(LoginCheck::Refused(why))) => {
                // Every refusal counts, also "right password, but not
                // allowed": the client is not told which, and a guesser
                // must not get unlimited tries at a two-factor account.
                let banned_now = self.guard.failure(ip);
                self.maillog
                    .auth_refused(session, peer, service, user, why.reason());
                if banned_now {
                    tracing::warn!(%ip, "too many failed logins: address banned");
                    self.maillog
                        .auth_failed(session, peer, service, "(address now banned)");
                }
                Login::Refused
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "login lookup failed");
                Login::Unavailable
            }
            Err(e) => {
                tracing::error!(error = %e, "login task failed");
                Login::Unavailable
            }
        }
    }

    /// The brute-force guard, for logins checked elsewhere (the admin page)
    /// to count in the same tally as the mail protocols.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// Whether an address is banned now (to refuse before asking).
    pub fn is_banned(&self, peer: SocketAddr) -> bool {
        matches!(self.guard.check(peer.ip()), Verdict::Banned)
    }
}

/// Decodes a SASL PLAIN response (RFC 4616 §2): `[authzid] NUL authcid NUL
/// passwd`, base64. Returns (user, password). An authorization identity
/// other than the user is refused (`None`): acting for another user is not
/// supported.
pub fn decode_plain(base64_text: &str) -> Option<(String, String)> {
    let text = base64_text.trim();
    let bytes = if text == "=" {
        Vec::new()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?
    };
    let parts: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    let [authzid, authcid, passwd] = parts.as_slice() else {
        return None;
    };
    let authzid = std::str::from_utf8(authzid).ok()?;
    let user = std::str::from_utf8(authcid).ok()?;
    let password = std::str::from_utf8(passwd).ok()?;
    if user.is_empty() || (!authzid.is_empty() && !authzid.eq_ignore_ascii_case(user)) {
        return None;
    }
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn plain_decoding() {
        assert_eq!(
            decode_plain(&b64(b"\0bob@x\0pw")),
            Some(("bob@x".into(), "pw".into()))
        );
        assert_eq!(
            decode_plain(&b64(b"bob@x\0bob@x\0pw")),
            Some(("bob@x".into(), "pw".into()))
        );
        assert_eq!(decode_plain(&b64(b"amy@x\0bob@x\0pw")), None);
        assert_eq!(decode_plain(&b64(b"bob@x\0pw")), None);
        assert_eq!(decode_plain(&b64(b"\0\0pw")), None);
        assert_eq!(decode_plain("not base64!"), None);
        assert_eq!(decode_plain("="), None);
    }

    #[tokio::test]
    async fn failures_lead_to_a_ban_shared_by_services() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.add_domain("example.com").unwrap();
        let bob = store
            .add_account("bob@example.com", "Correct-horse-7", 0)
            .unwrap();
        let policy = pochta_config::Guard {
            delay_after: 100,
            max_failures: 3,
            window_secs: 60,
            ban_secs: 60,
        };
        let auth = Authenticator::new(store, Arc::new(MailLog::discard()), policy);
        let peer: SocketAddr = "192.0.2.7:1234".parse().unwrap();
        let other: SocketAddr = "192.0.2.8:1234".parse().unwrap();
        assert_eq!(
            auth.login(
                "smtp",
                "s",
                peer,
                "bob@example.com",
                "Correct-horse-7".into()
            )
            .await,
            Login::Accepted(bob)
        );
        for service in ["smtp", "imap", "pop3"] {
            assert_eq!(
                auth.login(service, "s", peer, "bob@example.com", "wrong".into())
                    .await,
                Login::Refused
            );
        }
        // Banned now, even with the right password, on any service.
        assert_eq!(
            auth.login(
                "imap",
                "s",
                peer,
                "bob@example.com",
                "Correct-horse-7".into()
            )
            .await,
            Login::Banned
        );
        assert!(auth.is_banned(peer));
        // Other addresses are not affected.
        assert_eq!(
            auth.login(
                "pop3",
                "s",
                other,
                "bob@example.com",
                "Correct-horse-7".into()
            )
            .await,
            Login::Accepted(bob)
        );
    }

    #[tokio::test]
    async fn two_factor_accounts_use_app_passwords_and_the_log_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        store.add_domain("example.com").unwrap();
        let bob = store
            .add_account("bob@example.com", "Correct-horse-7", 0)
            .unwrap();
        let (_, app) = store.add_app_password("bob@example.com", "Phone").unwrap();
        store
            .start_account_totp("bob@example.com", "JBSWY3DPEHPK3PXP")
            .unwrap();
        store.confirm_account_totp("bob@example.com").unwrap();
        let log_path = dir.path().join("mail.log");
        let policy = pochta_config::Guard {
            delay_after: 100,
            max_failures: 2,
            window_secs: 60,
            ban_secs: 60,
        };
        let log = Arc::new(MailLog::open(&log_path).unwrap());
        let auth = Authenticator::new(store, log, policy);
        let peer: SocketAddr = "192.0.2.9:1234".parse().unwrap();
        assert_eq!(
            auth.login("imap", "s1", peer, "bob@example.com", app.clone())
                .await,
            Login::Accepted(bob)
        );
        assert_eq!(
            auth.login(
                "imap",
                "s2",
                peer,
                "bob@example.com",
                "Correct-horse-7".into()
            )
            .await,
            Login::Refused
        );
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert!(
            text.contains("via=\"app password \\\"Phone\\\"\""),
            "{text}"
        );
        assert!(
            text.contains(
                "reason=\"account password refused: two-factor account, use an app password\""
            ),
            "{text}"
        );
        assert!(
            !text.contains("Correct-horse-7") && !text.contains(&app),
            "{text}"
        );
        // The refusal counted: one more failure bans the address.
        assert_eq!(
            auth.login(
                "smtp",
                "s3",
                peer,
                "bob@example.com",
                "Correct-horse-7".into()
            )
            .await,
            Login::Refused
        );
        assert!(auth.is_banned(peer));
    }
}
