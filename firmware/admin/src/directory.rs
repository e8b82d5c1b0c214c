//! Domains (with their DKIM keys, made as `pochta domain add` makes them),
//! the DNS records a domain must publish, and accounts.

use pochta_store::StoreError;
use serde_json::json;

use crate::http::{self, Body, Reply};
use crate::State;

/// A store error as a reply: what the person did wrong is a 4xx with the
/// store's message; anything else is logged and a 500.
pub(crate) fn reply_for(e: StoreError) -> Reply {
    match e {
        StoreError::Invalid(m) => Reply::error(400, m),
        StoreError::Exists(_) => Reply::error(409, e.to_string()),
        StoreError::NotFound(_) => Reply::error(404, e.to_string()),
        e => {
            tracing::error!(error = %e, "admin page: store");
            Reply::error(500, "the store could not answer; try again")
        }
    }
}

/// `GET /api/domains`.
pub fn domains(state: &State) -> Reply {
    match state.ctx.store.domains() {
        Ok(list) => Reply::json(200, &json!({ "domains": list })),
        Err(e) => reply_for(e),
    }
}

/// `POST /api/domains` `{name}`: adds the domain and makes its DKIM keys.
pub fn add_domain(state: &State, body: &Body) -> Reply {
    let name = match http::field(body, "name") {
        Ok(n) => n,
        Err(r) => return r,
    };
    let (domain, selectors) = match pochta_filter::add_domain(&state.ctx.store, name) {
        Ok(added) => added,
        Err(e) => return reply_for(e),
    };
    tracing::info!(domain, "domain added on the admin page");
    Reply::json(201, &json!({ "name": domain, "dkim_selectors": selectors }))
}

/// Why other servers cannot reach `host`, as the page says it (the CLI's
/// fix names `--host`; here the reader can only change the config file).
pub(crate) fn host_problem(host: &str) -> Option<String> {
    pochta_filter::records::host_fault(host).map(|fault| {
        format!(
            "{} Set hostname in the configuration file to the box's full public name \
             (such as mail.example.com) and restart Pochta: until then the records \
             below send this domain's mail nowhere.",
            crate::sentence::sentence(&fault)
        )
    })
}

/// `GET /api/domains/NAME/dns`: the records to publish, as
/// `pochta domain dns` prints them, and `host_problem` when the mail host
/// is not a name other servers can reach (`null` when it is).
pub fn dns(state: &State, name: &str) -> Reply {
    let store = &state.ctx.store;
    let d = name.trim().trim_end_matches('.').to_lowercase();
    match store.domains() {
        Ok(list) if list.contains(&d) => {}
        Ok(_) => return Reply::error(404, format!("no such domain {d}")),
        Err(e) => return reply_for(e),
    }
    if let Err(e) = pochta_filter::ensure_keys(store) {
        tracing::error!(error = %e, "cannot make DKIM keys");
    }
    let keys = match store.dkim_keys(&d) {
        Ok(k) => k,
        Err(e) => return reply_for(e),
    };
    let host = &state.ctx.hostname;
    let records: Vec<serde_json::Value> = pochta_filter::records::records(&d, host, &keys)
        .into_iter()
        .map(|r| json!({ "name": r.name, "type": r.kind, "data": r.data }))
        .collect();
    Reply::json(
        200,
        &json!({
            "domain": d,
            "host": host,
            "host_problem": host_problem(host),
            "records": records,
            "zone": pochta_filter::records::zone_text(&d, host, &keys),
        }),
    )
}

/// `POST /api/domains/NAME/remove` `{confirm: NAME}`: removes a domain
/// that has no accounts left, with its aliases. The name typed again keeps
/// a slip of the mouse from removing the wrong one.
pub fn remove_domain(state: &State, name: &str, body: &Body) -> Reply {
    let d = name.trim().trim_end_matches('.').to_lowercase();
    let confirm = match http::field(body, "confirm") {
        Ok(c) => c.trim().trim_end_matches('.').to_lowercase(),
        Err(r) => return r,
    };
    if confirm != d {
        return Reply::error(400, format!("type the domain's name ({d}) to confirm"));
    }
    match state.ctx.store.remove_domain(&d) {
        Ok(()) => {
            tracing::info!(domain = d, "domain removed on the admin page");
            Reply::json(200, &json!({ "removed": d }))
        }
        Err(e) => reply_for(e),
    }
}

/// `GET /api/accounts`.
pub fn accounts(state: &State) -> Reply {
    match state.ctx.store.accounts() {
        Ok(list) => Reply::json(200, &json!({ "accounts": list })),
        Err(e) => reply_for(e),
    }
}

/// `POST /api/accounts` `{address, password, quota_bytes?}`.
pub fn add_account(state: &State, body: &Body) -> Reply {
    let (address, pw) = match (http::field(body, "address"), http::field(body, "password")) {
        (Ok(a), Ok(p)) => (a.trim(), p),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let quota = match body.get("quota_bytes") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(q) => q,
            None => {
                return Reply::error(
                    400,
                    "`quota_bytes` must be a whole number of bytes (0: no limit)",
                )
            }
        },
    };
    let normalized = match pochta_store::check_address(address) {
        Ok(a) => a,
        Err(e) => return reply_for(e),
    };
    if let Err(message) = pochta_store::check_password(pw, &normalized).map_err(|w| w.to_string()) {
        return Reply::error(400, message);
    }
    match state.ctx.store.add_account(&normalized, pw, quota) {
        Ok(_) => {
            tracing::info!(account = normalized, "account added on the admin page");
            Reply::json(201, &json!({ "address": normalized, "quota_bytes": quota }))
        }
        Err(StoreError::NotFound(what)) => Reply::error(400, format!("no such {what}")),
        Err(e) => reply_for(e),
    }
}
