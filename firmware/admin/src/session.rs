//! Login sessions, kept server-side in memory (a restart logs everyone
//! out): a random token in an `HttpOnly; SameSite=Strict` cookie, a CSRF
//! token that state-changing requests echo in `X-CSRF-Token`, and an idle
//! expiry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;

/// The session cookie's name.
pub const COOKIE: &str = "pochta_session";

/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 1000;

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
        }
    }
}

/// All sessions.
pub struct Sessions {
    idle: Duration,
    by_token: Mutex<HashMap<String, Session>>,
}

/// 256 random bits from the OS, hex.
fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Sessions {
    /// Sessions that end after `idle` without a request.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            by_token: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_token.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session.
    pub fn create(&self, admin: &str, totp_enabled: bool) -> Session {
        let now = Instant::now();
        let session = Session {
            token: token(),
            admin: admin.to_owned(),
            csrf: token(),
            totp_enabled,
            last_used: now,
        };
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
        let s = map.get_mut(token)?;
        if now.duration_since(s.last_used) >= self.idle {
            map.remove(token);
            return None;
        }
        s.last_used = now;
        Some(s.clone())
    }

    /// Records that the session's administrator finished TOTP enrolment.
    pub fn totp_enabled(&self, token: &str) {
        if let Some(s) = self.map().get_mut(token) {
            s.totp_enabled = true;
        }
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        self.map().remove(token);
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

    #[test]
    fn sessions_expire_when_idle() {
        let sessions = Sessions::new(Duration::from_millis(50));
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
        let s = Sessions::new(Duration::from_secs(60)).create("root", true);
        let c = Sessions::cookie(&s);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"));
        assert!(!c.contains("Secure"));
        assert!(Sessions::clear_cookie().contains("Max-Age=0"));
    }
}
