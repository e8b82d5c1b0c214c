//! The accounts page: list and add.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{directory, State};

use super::{csrf_field, error_box, esc, page, store_failed};

/// `GET /accounts`, or the page again after a refused form.
pub(super) fn list(state: &State, s: &Session, status: u16, error: Option<&str>) -> Reply {
    let Ok(accounts) = state.ctx.store.accounts() else {
        return store_failed(s);
    };
    let rows: String = accounts
        .iter()
        .map(|a| {
            format!(
                "<tr><td>{}</td><td class=\"optional\">{}</td><td class=\"optional\">{}</td><td>{}</td></tr>",
                esc(&a.address),
                a.messages,
                a.bytes,
                if a.disabled { "disabled" } else { "active" }
            )
        })
        .collect();
    page(
        status,
        "Accounts",
        Some(s),
        &format!(
            "{}<section><h2>Accounts</h2><table><tr><th>Address</th><th class=\"optional\">Messages</th>\
             <th class=\"optional\">Bytes</th><th>State</th></tr>{rows}</table>\
             <form method=\"post\" action=\"/accounts\">{}\
             <label for=\"address\">Address</label>\
             <input id=\"address\" name=\"address\" placeholder=\"anna@example.com\" required>\
             <label for=\"apw\">Password (at least 12 characters)</label>\
             <input id=\"apw\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button>Add account</button></form></section>",
            error_box(error),
            csrf_field(s)
        ),
    )
}

/// `POST /accounts`.
pub(super) fn add(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = directory::add_account(state, form);
    if reply.is_success() {
        Reply::redirect("/accounts")
    } else {
        list(state, s, reply.status, Some(&reply.error_message()))
    }
}
