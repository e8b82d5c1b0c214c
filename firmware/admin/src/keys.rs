//! An administrator's spare keys: recovery codes for a lost phone, and API
//! tokens that let scripts use the JSON API without a browser session.

use rand::RngCore;
use serde_json::json;

use crate::http::{self, Body, Reply};
use crate::session::Session;
use crate::{setup_code, State};

/// Recovery codes made at a time.
const RECOVERY_CODES: usize = 10;
/// Longest name of an API token.
const MAX_TOKEN_NAME: usize = 64;
/// What every API token starts with, so that a leaked one is recognizable
/// (by secret scanners, in logs it should never reach).
const TOKEN_PREFIX: &str = "pochta_";

/// Ten fresh recovery codes, `XXXXX-XXXXX` in Crockford base32 (50 bits
/// each), stored for `admin` in place of any old ones.
pub fn new_recovery_codes(state: &State, admin: &str) -> Result<Vec<String>, Reply> {
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let c = setup_code::generate();
            format!("{}-{}", &c[..5], &c[5..])
        })
        .collect();
    state
        .ctx
        .store
        .set_recovery_codes(admin, &codes)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot store recovery codes");
            Reply::error(500, "the store could not answer; try again")
        })?;
    tracing::info!(admin, "new recovery codes made");
    Ok(codes)
}

/// Whether a login's second factor looks like a recovery code rather than
/// a six-digit TOTP code.
pub fn is_recovery_code(typed: &str) -> bool {
    setup_code::normalize(typed).len() == setup_code::LENGTH
}

/// Uses up a recovery code; `Some(codes left)` when it was good.
pub fn use_recovery_code(state: &State, admin: &str, typed: &str) -> Result<Option<u32>, Reply> {
    let store = &state.ctx.store;
    let used = store
        .use_recovery_code(admin, &setup_code::normalize(typed))
        .and_then(|ok| ok.then(|| store.recovery_codes_left(admin)).transpose());
    match used {
        Ok(left) => Ok(left),
        Err(e) => {
            tracing::error!(error = %e, "cannot check a recovery code");
            Err(Reply::error(500, "the store could not answer; try again"))
        }
    }
}

/// `GET /api/recovery-codes`: how many are left.
pub fn recovery_state(state: &State, session: &Session) -> Reply {
    match state.ctx.store.recovery_codes_left(&session.admin) {
        Ok(n) => Reply::json(200, &json!({ "left": n })),
        Err(e) => {
            tracing::error!(error = %e, "cannot count recovery codes");
            Reply::error(500, "the store could not answer; try again")
        }
    }
}

/// `POST /api/recovery-codes`: new codes; the old ones stop working.
pub fn regenerate_recovery(state: &State, session: &Session) -> Reply {
    match new_recovery_codes(state, &session.admin) {
        Ok(codes) => Reply::json(200, &json!({ "recovery_codes": codes })),
        Err(reply) => reply,
    }
}

/// `GET /api/tokens`.
pub fn tokens(state: &State, session: &Session) -> Reply {
    match state.ctx.store.api_tokens(&session.admin) {
        Ok(list) => {
            let list: Vec<_> = list
                .iter()
                .map(|t| {
                    json!({"id": t.id, "name": t.name, "created": t.created, "last_used": t.last_used})
                })
                .collect();
            Reply::json(200, &json!({ "tokens": list }))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot list API tokens");
            Reply::error(500, "the store could not answer; try again")
        }
    }
}

/// `POST /api/tokens` `{name}`: a new token, shown this once.
pub fn add_token(state: &State, session: &Session, body: &Body) -> Reply {
    let name = match http::field(body, "name") {
        Ok(n) => n.trim(),
        Err(r) => return r,
    };
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME {
        return Reply::error(
            400,
            format!("give the token a name of 1 to {MAX_TOKEN_NAME} characters (what uses it)"),
        );
    }
    if name.chars().any(char::is_control) {
        return Reply::error(400, "the token's name must not contain control characters");
    }
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    match state.ctx.store.add_api_token(&session.admin, name, &token) {
        Ok(id) => {
            tracing::info!(admin = session.admin, id, name, "API token made");
            Reply::json(201, &json!({ "id": id, "name": name, "token": token }))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot store an API token");
            Reply::error(500, "the store could not answer; try again")
        }
    }
}

/// `POST /api/tokens/ID/revoke`: the token stops working at once.
pub fn revoke_token(state: &State, session: &Session, id: &str) -> Reply {
    let Ok(id) = id.parse::<i64>() else {
        return Reply::error(400, "the token number must be a number");
    };
    match state.ctx.store.revoke_api_token(&session.admin, id) {
        Ok(()) => {
            tracing::info!(admin = session.admin, id, "API token revoked");
            Reply::json(200, &json!({ "revoked": id }))
        }
        Err(pochta_store::StoreError::NotFound(_)) => {
            Reply::error(404, format!("there is no API token {id}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot revoke an API token");
            Reply::error(500, "the store could not answer; try again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_factor_kinds() {
        assert!(!is_recovery_code("123456"));
        assert!(is_recovery_code("ABCDE-FGHJK"));
        assert!(is_recovery_code("abcde fghjk"));
        assert!(!is_recovery_code("ABCDE-FGHJK-1"));
    }
}
