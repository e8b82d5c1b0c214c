//! One account: its details, password, quota, offboarding (disable with an
//! optional forward and auto-reply; enable), removal, app passwords and
//! TOTP enrolment — `/api/accounts/ADDR/...`, and the same handlers for
//! the account's page.
//!
//! Handlers take the state, the address from the path and the body, not
//! the session: who may ask is decided before (routes.rs).

use pochta_store::{Offboarding, StoreError};
use serde_json::{json, Value};

use crate::directory::reply_for;
use crate::http::{self, Body, Reply};
use crate::{totp, State};

/// Largest quota accepted, in MB (16 TiB): beyond any disk of the box, and
/// far from overflowing when turned into bytes.
const MAX_QUOTA_MB: u64 = 16 * 1024 * 1024;

/// What is asked of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'p> {
    /// `GET /api/accounts/ADDR`.
    Show,
    /// `POST .../password {password}`.
    Password,
    /// `POST .../quota {quota_mb}`.
    Quota,
    /// `POST .../disable {forward_to?, auto_reply?}`.
    Disable,
    /// `POST .../enable`.
    Enable,
    /// `POST .../remove {confirm}`.
    Remove,
    /// `POST .../app-passwords {name}`.
    AddAppPassword,
    /// `POST .../app-passwords/ID/revoke`.
    RevokeAppPassword(&'p str),
    /// `POST .../totp`: a new secret, not in force until confirmed.
    StartTotp,
    /// `GET .../totp/qr.svg`.
    TotpQr,
    /// `POST .../totp/confirm {code}`.
    ConfirmTotp,
    /// `POST .../totp/disable`.
    DisableTotp,
}

impl Action<'_> {
    /// Whether the request carries a JSON body to read; the others may be
    /// posted without one.
    pub fn takes_body(&self) -> bool {
        matches!(
            self,
            Action::Password
                | Action::Quota
                | Action::Disable
                | Action::Remove
                | Action::AddAppPassword
                | Action::ConfirmTotp
        )
    }
}

/// The actions of the path after `/api/accounts/ADDR`: (for GET, for
/// POST); `None` when there is no such path.
pub fn route<'p>(rest: &[&'p str]) -> Option<(Option<Action<'p>>, Option<Action<'p>>)> {
    let post = |a| Some((None, Some(a)));
    match rest {
        [] => Some((Some(Action::Show), None)),
        ["password"] => post(Action::Password),
        ["quota"] => post(Action::Quota),
        ["disable"] => post(Action::Disable),
        ["enable"] => post(Action::Enable),
        ["remove"] => post(Action::Remove),
        ["app-passwords"] => post(Action::AddAppPassword),
        ["app-passwords", id, "revoke"] => post(Action::RevokeAppPassword(id)),
        ["totp"] => post(Action::StartTotp),
        ["totp", "qr.svg"] => Some((Some(Action::TotpQr), None)),
        ["totp", "confirm"] => post(Action::ConfirmTotp),
        ["totp", "disable"] => post(Action::DisableTotp),
        _ => None,
    }
}

/// A path segment with `%XX` escapes decoded (a browser or script may
/// send `@` as `%40`); `+` stays a plus, as in any path.
pub fn decode_segment(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The account address of a path, checked: `Err` is the 400.
pub fn address_of(segment: &str) -> Result<String, Reply> {
    let typed = decode_segment(segment);
    pochta_store::check_address(&typed).map_err(crate::directory::reply_for)
}

/// Answers one action on the account named in the path.
pub fn handle(state: &State, segment: &str, action: Action<'_>, body: &Body) -> Reply {
    let address = match address_of(segment) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    let a = address.as_str();
    match action {
        Action::Show => show(state, a),
        Action::Password => set_password(state, a, body),
        Action::Quota => set_quota(state, a, body),
        Action::Disable => disable(state, a, body),
        Action::Enable => done(state.ctx.store.enable_account(a), a, "enabled"),
        Action::Remove => remove(state, a, body),
        Action::AddAppPassword => add_app_password(state, a, body),
        Action::RevokeAppPassword(id) => revoke_app_password(state, a, id),
        Action::StartTotp => start_totp(state, a),
        Action::TotpQr => totp_qr(state, a),
        Action::ConfirmTotp => confirm_totp(state, a, body),
        Action::DisableTotp => done(
            state.ctx.store.disable_account_totp(a),
            a,
            "two-factor login turned off",
        ),
    }
}

/// `{address, done}` after a change, or the store's error.
fn done(result: Result<(), StoreError>, address: &str, what: &str) -> Reply {
    match result {
        Ok(()) => {
            tracing::info!(account = address, "{what} on the admin page");
            Reply::json(200, &json!({ "address": address, "done": what }))
        }
        Err(e) => reply_for(e),
    }
}

/// `GET /api/accounts/ADDR`: usage and settings; never a secret.
fn show(state: &State, address: &str) -> Reply {
    let d = match state.ctx.store.account_details(address) {
        Ok(d) => d,
        Err(e) => return reply_for(e),
    };
    Reply::json(
        200,
        &json!({
            "address": d.account.address,
            "quota_bytes": d.account.quota_bytes,
            "quota_mb": d.account.quota_bytes / (1024 * 1024),
            "used_bytes": d.account.bytes,
            "messages": d.account.messages,
            "disabled": d.account.disabled,
            "forward_to": d.forward_to,
            "auto_reply": d.auto_reply,
            "totp_enabled": d.totp_enabled,
            "totp_pending": d.totp_pending,
            "app_passwords": d.app_passwords,
        }),
    )
}

fn set_password(state: &State, address: &str, body: &Body) -> Reply {
    let pw = match http::field(body, "password") {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(message) = pochta_store::check_password(pw, address).map_err(|w| w.to_string()) {
        return Reply::error(400, message);
    }
    done(
        state.ctx.store.set_password(address, pw),
        address,
        "password changed",
    )
}

/// A whole number from a JSON number or a form's string; `None` when
/// absent, `Err` when it is something else.
pub(crate) fn whole_number(body: &Body, name: &str) -> Result<Option<u64>, ()> {
    match body.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(()),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
        Some(_) => Err(()),
    }
}

fn set_quota(state: &State, address: &str, body: &Body) -> Reply {
    let mb = match whole_number(body, "quota_mb") {
        Ok(Some(mb)) if mb <= MAX_QUOTA_MB => mb,
        Ok(None) => return Reply::error(400, "`quota_mb` is missing"),
        _ => {
            return Reply::error(
                400,
                format!(
                    "`quota_mb` must be a whole number of megabytes from 0 (no limit) to {MAX_QUOTA_MB}"
                ),
            )
        }
    };
    done(
        state.ctx.store.set_quota(address, mb * 1024 * 1024),
        address,
        "quota set",
    )
}

/// An optional string field: absent, null and "" are none.
fn optional_text(body: &Body, name: &str) -> Result<Option<String>, Reply> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reply::error(400, format!("`{name}` must be a string"))),
    }
}

fn disable(state: &State, address: &str, body: &Body) -> Reply {
    let off = match (
        optional_text(body, "forward_to"),
        optional_text(body, "auto_reply"),
    ) {
        (Ok(forward_to), Ok(auto_reply)) => Offboarding {
            forward_to,
            auto_reply,
        },
        (Err(r), _) | (_, Err(r)) => return r,
    };
    done(
        state.ctx.store.disable_account(address, &off),
        address,
        "disabled",
    )
}

fn remove(state: &State, address: &str, body: &Body) -> Reply {
    let confirm = body
        .get("confirm")
        .and_then(Value::as_str)
        .and_then(pochta_store::normalize_address);
    if confirm.as_deref() != Some(address) {
        return Reply::error(
            400,
            format!("to remove {address} and all its mail, type its address in `confirm`"),
        );
    }
    done(state.ctx.store.remove_account(address), address, "removed")
}

fn add_app_password(state: &State, address: &str, body: &Body) -> Reply {
    let name = match http::field(body, "name") {
        Ok(n) => n,
        Err(r) => return r,
    };
    match state.ctx.store.add_app_password(address, name) {
        Ok((entry, secret)) => {
            tracing::info!(account = address, name = entry.name, "app password made");
            Reply::json(
                201,
                &json!({
                    "id": entry.id,
                    "name": entry.name,
                    "created": entry.created,
                    "password": secret,
                }),
            )
        }
        Err(e) => reply_for(e),
    }
}

fn revoke_app_password(state: &State, address: &str, id: &str) -> Reply {
    let Ok(id) = id.parse::<i64>() else {
        return Reply::error(400, format!("{id:?} is not an app password id"));
    };
    done(
        state.ctx.store.revoke_app_password(address, id),
        address,
        "app password revoked",
    )
}

fn start_totp(state: &State, address: &str) -> Reply {
    let secret = totp::new_secret();
    if let Err(e) = state.ctx.store.start_account_totp(address, &secret) {
        return reply_for(e);
    }
    tracing::info!(account = address, "TOTP enrolment started");
    Reply::json(
        200,
        &json!({
            "secret": secret,
            "otpauth_uri": totp::uri(&secret, address).unwrap_or_default(),
            "totp_enabled": false,
        }),
    )
}

/// The secret of an enrolment in progress; `Err` when there is none.
fn pending_secret(state: &State, address: &str) -> Result<String, Reply> {
    let t = state.ctx.store.account_totp(address).map_err(reply_for)?;
    match (t.enabled, t.secret) {
        (true, _) => Err(Reply::error(
            409,
            "two-factor login is on already; its secret is not shown again",
        )),
        (false, None) => Err(Reply::error(
            409,
            "no TOTP enrolment started: POST .../totp first",
        )),
        (false, Some(secret)) => Ok(secret),
    }
}

fn totp_qr(state: &State, address: &str) -> Reply {
    match pending_secret(state, address) {
        Ok(secret) => match totp::qr_svg(&secret, address) {
            Some(svg) => Reply::svg(svg),
            None => Reply::error(500, "cannot draw the QR code"),
        },
        Err(reply) => reply,
    }
}

/// The replay guard's key for an account; admin names cannot contain `:`.
fn replay_key(address: &str) -> String {
    format!("account:{address}")
}

fn confirm_totp(state: &State, address: &str, body: &Body) -> Reply {
    let code = match http::field(body, "code") {
        Ok(c) => c,
        Err(r) => return r,
    };
    let secret = match pending_secret(state, address) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    if !state.replay.check(&replay_key(address), &secret, code) {
        return Reply::error(
            400,
            state.totp_refused(
                "wrong TOTP code: check the time on the phone and enter the current code",
            ),
        );
    }
    match state.ctx.store.confirm_account_totp(address) {
        Ok(()) => {
            tracing::info!(account = address, "TOTP enrolled: app passwords only");
            Reply::json(200, &json!({ "address": address, "totp_enabled": true }))
        }
        Err(e) => reply_for(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_after_the_address() {
        assert_eq!(route(&[]), Some((Some(Action::Show), None)));
        assert_eq!(
            route(&["app-passwords", "7", "revoke"]),
            Some((None, Some(Action::RevokeAppPassword("7"))))
        );
        assert_eq!(
            route(&["totp", "qr.svg"]),
            Some((Some(Action::TotpQr), None))
        );
        assert_eq!(route(&["totp", "nothing"]), None);
        assert_eq!(route(&["app-passwords", "7"]), None);
    }

    #[test]
    fn segments() {
        assert_eq!(decode_segment("anna%40example.com"), "anna@example.com");
        assert_eq!(decode_segment("a+b@x.org"), "a+b@x.org");
        assert_eq!(decode_segment("100%"), "100%");
        assert_eq!(decode_segment("%zz%4"), "%zz%4");
        assert_eq!(address_of("Anna@Example.com").unwrap(), "anna@example.com");
        assert_eq!(address_of("nobody").unwrap_err().status, 400);
    }

    #[test]
    fn numbers_from_json_and_forms() {
        let body: Body =
            serde_json::from_str(r#"{"a": 5, "b": "7", "c": -1, "d": "x", "e": 1.5}"#).unwrap();
        assert_eq!(whole_number(&body, "a"), Ok(Some(5)));
        assert_eq!(whole_number(&body, "b"), Ok(Some(7)));
        assert_eq!(whole_number(&body, "none"), Ok(None));
        for bad in ["c", "d", "e"] {
            assert_eq!(whole_number(&body, bad), Err(()), "{bad}");
        }
    }
}
