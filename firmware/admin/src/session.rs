//! Login sessions: a random token in an `HttpOnly; SameSite=Strict`
//! cookie, a CSRF token that state-changing requests echo in
//! `X-CSRF-Token`, and an idle expiry. Kept in memory and in the store,
//! which holds only the token's SHA-256 (see `pochta_store`'s
//! admin_sessions), so a restart logs nobody out and a copy of the card
//! opens no session. The CSRF token is derived from the session's token,
//! so nothing else needs storing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pochta_store::Store;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub const COOKIE: &str = "pochta_session";

/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 1000;
/// A session's last use reaches the store at most this often (each write
/// is a commit; the idle expiry does not need the second).
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// A logged-in administrator.
#[derive(Debug, Clone)]
pub struct Session {
    /// The cookie value.
    pub token: String,
    /// Administrator name.
    pub admin: String,
    /// What state-changing requests must send in `X-CSRF-Token`.
    pub csrf: String,
    /// Whether the administrator has TOTP enrolled; until then the session
    /// may only finish enrolment.
    pub totp_enabled: bool,
    last_used: Instant,
    /// When `last_used` last reached the store.
    stored: Instant,
}

impl Session {
    /// The stand-in session of a request carrying `admin`'s API token (no
    /// cookie, no CSRF token: routes.rs checks the token instead).
    pub fn for_api_token(admin: &str) -> Session {
        Session {
            token: String::new(),
            admin: admin.to_owned(),
            csrf: String::new(),
            totp_enabled: true,
            last_used: Instant::now(),
            stored: Instant::now(),
        }
    }
}

/// All sessions.
pub struct Sessions {
    idle: Duration,
    by_token: Mutex<HashMap<String, Session>>,
    /// Where sessions outlive a restart; none in [`Sessions::in_memory`].
    store: Option<Store>,
}

/// 256 random bits from the OS, hex.
fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The CSRF token of a session: derived from its token, so that it need
/// not be stored and cannot be guessed without the cookie.
fn csrf_of(token: &str) -> String {
    hex::encode(Sha256::digest(format!("pochta csrf\0{token}").as_bytes()))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Sessions {
    /// Sessions that end after `idle` without a request, kept in `store`
    /// too. Sessions idle for longer are forgotten now.
    pub fn new(idle: Duration, store: Store) -> Sessions {
        let cutoff = unix_now() - idle.as_secs() as i64;
        if let Err(e) = store.prune_admin_sessions(cutoff) {
            tracing::warn!(error = %e, "admin page: cannot prune old sessions");
        }
        Sessions {
            idle,
            by_token: Mutex::new(HashMap::new()),
            store: Some(store),
        }
    }

    /// Sessions kept in memory only (the fuzz targets' parsers).
    pub fn in_memory(idle: Duration) -> Sessions {
        Sessions {
            idle,
            by_token: Mutex::new(HashMap::new()),
            store: None,
        }
    }

    /// Writes a session to the store; a failure is logged, and the session
    /// lives on in memory until the next restart.
    fn save(&self, s: &Session) {
        let Some(store) = &self.store else { return };
        if let Err(e) = store.save_admin_session(&s.token, &s.admin, s.totp_enabled, unix_now()) {
            tracing::warn!(error = %e, "admin page: cannot store a session (it ends at the next restart)");
        }
    }

    /// A session of the store (made before a restart), if still live.
    fn load(&self, token: &str) -> Option<Session> {
        let store = self.store.as_ref()?;
        let stored = match store.admin_session(token) {
            Ok(s) => s?,
            Err(e) => {
                tracing::warn!(error = %e, "admin page: cannot read a stored session");
                return None;
            }
        };
        let idle_secs = (unix_now() - stored.last_used).max(0) as u64;
        if idle_secs >= self.idle.as_secs() {
            let _ = store.remove_admin_session(token);
            return None;
        }
        let now = Instant::now();
        let last_used = now
            .checked_sub(Duration::from_secs(idle_secs))
            .unwrap_or(now);
        Some(Session {
            token: token.to_owned(),
            admin: stored.admin,
            csrf: csrf_of(token),
            totp_enabled: stored.totp_enabled,
            last_used,
            stored: last_used,
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_token.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session.
    pub fn create(&self, admin: &str, totp_enabled: bool) -> Session {
        let now = Instant::now();
        let token = token();
        let session = Session {
            csrf: csrf_of(&token),
            token,
            admin: admin.to_owned(),
            totp_enabled,
            last_used: now,
            stored: now,
        };
        self.save(&session);
        let mut map = self.map();
        map.retain(|_, s| now.duration_since(s.last_used) < self.idle);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .values()
                .min_by_key(|s| s.last_used)
                .map(|s| s.token.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(session.token.clone(), session.clone());
        session
    }

    /// The live session of a cookie value, its idle timer restarted.
    pub fn find(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map();
        if !map.contains_key(token) {
            // Made before a restart? (Not while holding the lock: the
            // store may be slow.)
            drop(map);
            let loaded = self.load(token)?;
            map = self.map();
            map.entry(token.to_owned()).or_insert(loaded);
        }
        let s = map.get_mut(token)?;
        if now.duration_since(s.last_used) >= self.idle {
            map.remove(token);
            drop(map);
            self.forget(token);
            return None;
        }
        s.last_used = now;
        let touch = now.duration_since(s.stored) >= TOUCH_EVERY;
        if touch {
            s.stored = now;
        }
        let session = s.clone();
        drop(map);
        if touch {
            self.save(&session);
        }
        Some(session)
    }

    /// Records that the session's administrator finished TOTP enrolment.
    pub fn totp_enabled(&self, token: &str) {
        let updated = self.map().get_mut(token).map(|s| {
            s.totp_enabled = true;
            s.clone()
        });
        if let Some(s) = updated {
            self.save(&s);
        }
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        self.map().remove(token);
        self.forget(token);
    }

    /// Removes a session from the store.
    fn forget(&self, token: &str) {
        if let Some(Err(e)) = self.store.as_ref().map(|s| s.remove_admin_session(token)) {
            tracing::warn!(error = %e, "admin page: cannot remove a stored session");
        }
    }

    /// The `Set-Cookie` value that carries a session.
    /// (`Secure` is added when the reply goes out over HTTPS:
    /// [`crate::http::Reply::send`].)
    pub fn cookie(session: &Session) -> String {
        format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            session.token
        )
    }

    /// The `Set-Cookie` value that clears the session cookie.
    pub fn clear_cookie() -> String {
        format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .add_first_admin("root", "a long passphrase 1", "JBSWY3DPEHPK3PXP")
            .unwrap();
        (dir, store)
    }

    #[test]
    fn sessions_survive_a_restart_and_csrf_comes_from_the_token() {
        let (_dir, store) = store();
        let before = Sessions::new(Duration::from_secs(600), store.clone());
        let s = before.create("root", false);
        before.totp_enabled(&s.token);
        drop(before);
        let after = Sessions::new(Duration::from_secs(600), store.clone());
        let found = after
            .find(&s.token)
            .expect("the session outlives the restart");
        assert_eq!((found.admin.as_str(), found.totp_enabled), ("root", true));
        assert_eq!(
            found.csrf, s.csrf,
            "the CSRF token the page holds still works"
        );
        assert!(after.find(&"0".repeat(64)).is_none());
        after.remove(&s.token);
        let again = Sessions::new(Duration::from_secs(600), store);
        assert!(
            again.find(&s.token).is_none(),
            "a logout outlives the restart too"
        );
    }

    #[test]
    fn sessions_expire_when_idle() {
        let (_dir, store) = store();
        let sessions = Sessions::new(Duration::from_millis(50), store);
        let s = sessions.create("root", false);
        assert_eq!(s.token.len(), 64);
        assert_ne!(s.token, s.csrf);
        assert!(sessions.find(&s.token).is_some());
        assert!(sessions.find("nope").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.find(&s.token).is_none());
        let s = sessions.create("root", false);
        sessions.totp_enabled(&s.token);
        assert!(sessions.find(&s.token).unwrap().totp_enabled);
        sessions.remove(&s.token);
        assert!(sessions.find(&s.token).is_none());
    }

    #[test]
    fn cookie_flags() {
        let (_dir, store) = store();
        let s = Sessions::new(Duration::from_secs(60), store).create("root", true);
        let c = Sessions::cookie(&s);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(Sessions::clear_cookie().contains("Max-Age=0"));
    }
}
