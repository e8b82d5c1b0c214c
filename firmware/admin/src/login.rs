//! First-boot setup with the one-time code, login with password and TOTP,
//! logout. Every failure counts in the brute-force guard shared with the
//! mail protocols; a slowed or banned address gets 429.

use std::net::SocketAddr;

use pochta_auth::Verdict;
use pochta_store::{AdminUser, StoreError};
use serde_json::json;

use crate::http::{self, Body, Reply};
use crate::session::{Session, Sessions};
use crate::{keys, setup_code, totp, State};

/// The service name in the mail log.
const SERVICE: &str = "admin";

/// 429 while the guard slows or bans the address: the admin page's worker
/// threads are few, so it refuses instead of sleeping.
pub(crate) fn guard_check(state: &State, peer: SocketAddr) -> Result<(), Reply> {
    let wait = match state.ctx.auth.guard().check_without_waiting(peer.ip()) {
        Verdict::Allow => return Ok(()),
        // Rounded up: waiting the whole seconds asked for is always enough.
        Verdict::Delay(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
        Verdict::Banned => {
            state
                .ctx
                .maillog
                .auth_failed("-", peer, SERVICE, "(address banned)");
            return Err(Reply::error(
                429,
                "too many failed attempts from this address: try again later",
            ));
        }
    };
    Err(Reply::error(
        429,
        format!("too many failed attempts: wait {wait} s and try again"),
    )
    .with_header("Retry-After", wait.to_string()))
}

pub(crate) fn failed(state: &State, peer: SocketAddr, user: &str) {
    state.ctx.maillog.auth_failed("-", peer, SERVICE, user);
    if state.ctx.auth.guard().failure(peer.ip()) {
        tracing::warn!(ip = %peer.ip(), "too many failed admin logins: address banned");
        state
            .ctx
            .maillog
            .auth_failed("-", peer, SERVICE, "(address now banned)");
    }
}

fn store_error(e: StoreError) -> Reply {
    tracing::error!(error = %e, "admin page: store");
    Reply::error(500, "the store could not answer; try again")
}

/// A name an administrator logs in with.
fn check_admin_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err("user name: use 1 to 64 letters, digits, '.', '_', '-' or '@'".into())
    }
}

/// The reply that starts a session: cookie, CSRF token and, until TOTP is
/// enrolled, the secret to enrol; after a recovery code, how many are left.
fn logged_in(state: &State, status: u16, admin: &AdminUser, recovery_left: Option<u32>) -> Reply {
    let session = state.sessions.create(&admin.name, admin.totp_enabled);
    let mut body = json!({
        "admin": admin.name,
        "csrf_token": session.csrf,
        "totp_enabled": admin.totp_enabled,
    });
    if !admin.totp_enabled {
        body["totp_secret"] = admin.totp_secret.clone().into();
        body["otpauth_uri"] = totp::uri(&admin.totp_secret, &admin.name)
            .unwrap_or_default()
            .into();
    }
    if let Some(left) = recovery_left {
        body["recovery_codes_left"] = left.into();
    }
    Reply::json(status, &body).with_header("Set-Cookie", Sessions::cookie(&session))
}

/// `GET /api/setup`: whether setup is still to be done.
pub fn setup_state(state: &State) -> Reply {
    match state.ctx.store.has_admin() {
        Ok(done) => Reply::json(200, &json!({ "needed": !done })),
        Err(e) => store_error(e),
    }
}

/// `POST /api/setup` `{setup_code, user, password}`: creates the first
/// administrator and logs them in; the code is used up.
pub fn setup(state: &State, body: &Body, peer: SocketAddr) -> Reply {
    if let Err(reply) = guard_check(state, peer) {
        return reply;
    }
    let (code, user, pw) = match (
        http::field(body, "setup_code"),
        http::field(body, "user"),
        http::field(body, "password"),
    ) {
        (Ok(c), Ok(u), Ok(p)) => (c, u.trim(), p),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
    };
    // Held to the end, so that two setups cannot race past the check.
    let mut current = state.setup_code.lock().unwrap_or_else(|e| e.into_inner());
    let Some(expected) = current.as_deref() else {
        return Reply::error(410, "setup is done: log in instead");
    };
    if !setup_code::matches(expected, code) {
        failed(state, peer, "(setup code)");
        return Reply::error(
            403,
            "wrong setup code (see setup-code.txt in the data folder)",
        );
    }
    if let Err(message) = check_admin_name(user)
        .and_then(|()| pochta_store::check_password(pw, user).map_err(|w| w.to_string()))
    {
        return Reply::error(400, message);
    }
    let secret = totp::new_secret();
    match state.ctx.store.add_first_admin(user, pw, &secret) {
        Ok(()) => {}
        Err(StoreError::Exists(_)) => {
            *current = None;
            return Reply::error(410, "setup is done: log in instead");
        }
        Err(e) => return store_error(e),
    }
    *current = None;
    crate::remove_setup_code(&state.ctx);
    state.ctx.maillog.auth_ok("-", peer, SERVICE, user);
    tracing::info!(
        admin = user,
        "administrator created; the setup code is used up"
    );
    let admin = AdminUser {
        name: user.to_owned(),
        totp_secret: secret,
        totp_enabled: false,
    };
    logged_in(state, 201, &admin, None)
}

/// `POST /api/login` `{user, password, totp}`: `totp` is required once
/// enrolled.
pub fn login(state: &State, body: &Body, peer: SocketAddr) -> Reply {
    if let Err(reply) = guard_check(state, peer) {
        return reply;
    }
    let (user, pw) = match (http::field(body, "user"), http::field(body, "password")) {
        (Ok(u), Ok(p)) => (u.trim(), p),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let admin = match state.ctx.store.authenticate_admin(user, pw) {
        Ok(Some(admin)) => admin,
        Ok(None) => {
            failed(state, peer, user);
            return Reply::error(401, "wrong user name or password");
        }
        Err(e) => return store_error(e),
    };
    let mut recovery_left = None;
    if admin.totp_enabled {
        let code = match body.get("totp") {
            None => {
                return Reply::json(
                    401,
                    &json!({"error": "enter the code from your authenticator app", "totp_required": true}),
                )
            }
            Some(serde_json::Value::String(c)) => c.as_str(),
            Some(_) => return Reply::error(400, "`totp` must be a string"),
        };
        match second_factor(state, &admin, code, peer) {
            Ok(left) => recovery_left = left,
            Err(CodeRefused::Wrong(message)) => {
                return Reply::json(401, &json!({"error": message, "totp_required": true}))
            }
            Err(CodeRefused::Failed(reply)) => return reply,
        }
    }
    state.ctx.auth.guard().success(peer.ip());
    state.ctx.maillog.auth_ok("-", peer, SERVICE, user);
    logged_in(state, 200, &admin, recovery_left)
}

/// Why a second factor was refused.
pub(crate) enum CodeRefused {
    /// A wrong or used code (counted in the guard); the message says which.
    Wrong(String),
    /// The store could not answer: the reply.
    Failed(Reply),
}

/// Checks `code`, a TOTP code or a recovery code (used up), of `admin`;
/// `Ok(Some(left))` after a recovery code. A wrong code counts in the
/// brute-force guard. The login and the backup key ask the same way.
pub(crate) fn second_factor(
    state: &State,
    admin: &AdminUser,
    code: &str,
    peer: SocketAddr,
) -> Result<Option<u32>, CodeRefused> {
    if keys::is_recovery_code(code) {
        return match keys::use_recovery_code(state, &admin.name, code) {
            Ok(Some(left)) => {
                tracing::warn!(admin = admin.name, left, "a recovery code was used");
                Ok(Some(left))
            }
            Ok(None) => {
                failed(state, peer, &admin.name);
                Err(CodeRefused::Wrong(
                    "wrong or already used recovery code".into(),
                ))
            }
            Err(reply) => Err(CodeRefused::Failed(reply)),
        };
    }
    if state.replay.check(&admin.name, &admin.totp_secret, code) {
        Ok(None)
    } else {
        failed(state, peer, &admin.name);
        Err(CodeRefused::Wrong(
            state.totp_refused("wrong or already used TOTP code"),
        ))
    }
}

/// `POST /api/logout`.
pub fn logout(state: &State, session: &Session) -> Reply {
    state.sessions.remove(&session.token);
    Reply::json(200, &json!({ "logged_out": true }))
        .with_header("Set-Cookie", Sessions::clear_cookie())
}

/// `GET /api/session`: who is logged in, and the CSRF token (for pages
/// that lost it).
pub fn session_info(_state: &State, session: &Session) -> Reply {
    Reply::json(
        200,
        &json!({
            "admin": session.admin,
            "csrf_token": session.csrf,
            "totp_enabled": session.totp_enabled,
        }),
    )
}

/// `GET /api/totp/qr.svg`: the enrolment QR code, until enrolment is done
/// (the secret is not shown again after).
pub fn totp_qr(state: &State, session: &Session) -> Reply {
    let admin = match state.ctx.store.admin(&session.admin) {
        Ok(a) => a,
        Err(e) => return store_error(e),
    };
    if admin.totp_enabled {
        return Reply::error(409, "TOTP is enrolled already");
    }
    match totp::qr_svg(&admin.totp_secret, &admin.name) {
        Some(svg) => Reply::svg(svg),
        None => Reply::error(500, "cannot draw the QR code"),
    }
}

/// `POST /api/totp/confirm` `{code}`: a first valid code finishes TOTP
/// enrolment; every later login needs one.
pub fn confirm_totp(state: &State, body: &Body, session: &Session) -> Reply {
    let code = match http::field(body, "code") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let admin = match state.ctx.store.admin(&session.admin) {
        Ok(a) => a,
        Err(e) => return store_error(e),
    };
    if admin.totp_enabled {
        return Reply::error(409, "TOTP is enrolled already");
    }
    if !state.replay.check(&admin.name, &admin.totp_secret, code) {
        return Reply::error(
            400,
            state.totp_refused(
                "wrong TOTP code: check the time on your phone and enter the current code",
            ),
        );
    }
    if let Err(e) = state.ctx.store.enable_admin_totp(&admin.name) {
        return store_error(e);
    }
    state.sessions.totp_enabled(&session.token);
    tracing::info!(admin = admin.name, "TOTP enrolled");
    let codes = match keys::new_recovery_codes(state, &admin.name) {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    Reply::json(
        200,
        &json!({ "totp_enabled": true, "recovery_codes": codes }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_names() {
        for ok in ["root", "anna.k", "it-admin", "boss@example.com"] {
            assert!(check_admin_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "x:y", "<script>", &"a".repeat(65)] {
            assert!(check_admin_name(bad).is_err(), "{bad}");
        }
    }
}
