//! Aliases (one target), distribution groups (several) and catch-alls
//! (`@domain`: every unknown address of the domain), as `pochta alias`
//! manages them: `GET /api/aliases`, `POST /api/aliases {address,
//! targets}` (adding to an existing alias adds members),
//! `POST /api/aliases/remove {address, target?}`.

use pochta_store::{alias_kind, check_address, StoreError};
use serde_json::{json, Value};

use crate::directory::reply_for;
use crate::http::{self, Body, Reply};
use crate::State;

/// Targets in one request at most (a group of the whole office fits).
const MAX_TARGETS: usize = 500;

/// `GET /api/aliases`.
pub fn list(state: &State) -> Reply {
    match state.ctx.store.aliases() {
        Ok(aliases) => {
            let list: Vec<Value> = aliases
                .iter()
                .map(|(address, targets)| {
                    json!({ "address": address, "targets": targets, "kind": alias_kind(address, targets.len()) })
                })
                .collect();
            Reply::json(200, &json!({ "aliases": list }))
        }
        Err(e) => reply_for(e),
    }
}

/// The alias's address, normalised, and its domain: `local@domain`, or
/// `@domain` for a catch-all.
fn source(text: &str) -> Result<(String, String), Reply> {
    let text = text.trim().to_lowercase();
    if let Some(domain) = text.strip_prefix('@') {
        if domain.is_empty() || domain.contains('@') {
            return Err(Reply::error(
                400,
                format!("{text:?} is not a catch-all (expected @example.com)"),
            ));
        }
        return Ok((text.clone(), domain.trim_end_matches('.').to_owned()));
    }
    let address = check_address(&text).map_err(reply_for)?;
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d).to_owned();
    Ok((address, domain))
}

/// `targets` as a list of strings, or one string of addresses separated by
/// commas, spaces or lines (as a form's text field sends them).
fn targets(body: &Body) -> Result<Vec<String>, Reply> {
    let raw: Vec<String> = match body.get("targets") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| Reply::error(400, "`targets` must be a list of addresses"))?,
        Some(Value::String(s)) => s
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(_) => return Err(Reply::error(400, "`targets` must be a list of addresses")),
        None => return Err(Reply::error(400, "`targets` is missing")),
    };
    if raw.is_empty() {
        return Err(Reply::error(400, "give at least one target address"));
    }
    if raw.len() > MAX_TARGETS {
        return Err(Reply::error(
            400,
            format!("at most {MAX_TARGETS} targets at once"),
        ));
    }
    raw.iter()
        .map(|t| check_address(t).map_err(|e| Reply::error(400, format!("target {e}"))))
        .collect()
}

/// `POST /api/aliases {address, targets}`.
pub fn add(state: &State, body: &Body) -> Reply {
    let (address, domain) = match http::field(body, "address").and_then(source) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let targets = match targets(body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let store = &state.ctx.store;
    match store.domains() {
        Ok(domains) if domains.contains(&domain) => {}
        Ok(_) => {
            return Reply::error(
                400,
                format!("{domain} is not a domain of this box (add it on the Domains page first)"),
            )
        }
        Err(e) => return reply_for(e),
    }
    if targets.contains(&address) {
        return Reply::error(400, format!("{address} cannot be its own target"));
    }
    match store.add_alias(&address, &targets) {
        Ok(()) => {
            tracing::info!(alias = address, ?targets, "alias added on the admin page");
            let now = store
                .aliases()
                .ok()
                .and_then(|all| all.into_iter().find(|(a, _)| *a == address))
                .map_or(targets, |(_, t)| t);
            Reply::json(
                201,
                &json!({ "address": address, "targets": now, "kind": alias_kind(&address, now.len()) }),
            )
        }
        // An account of that address would never see the alias's mail.
        Err(StoreError::Exists(message)) => Reply::error(400, message),
        Err(StoreError::Invalid(message)) => Reply::error(400, message),
        Err(e) => reply_for(e),
    }
}

/// `POST /api/aliases/remove {address, target?}`: one target, or with no
/// target the whole alias.
pub fn remove(state: &State, body: &Body) -> Reply {
    let address = match http::field(body, "address") {
        Ok(a) => a.trim().to_lowercase(),
        Err(r) => return r,
    };
    let target = match body.get("target") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if t.trim().is_empty() => None,
        Some(Value::String(t)) => Some(t.trim().to_lowercase()),
        Some(_) => return Reply::error(400, "`target` must be a string"),
    };
    let store = &state.ctx.store;
    let done = match &target {
        Some(t) => store.remove_alias_target(&address, t),
        None => store.remove_alias(&address),
    };
    match done {
        Ok(()) => {
            tracing::info!(alias = address, ?target, "alias removed on the admin page");
            Reply::json(
                200,
                &json!({ "address": address, "removed": target.as_deref().unwrap_or("all") }),
            )
        }
        Err(e) => reply_for(e),
    }
}
