//! The administrator's own settings: recovery codes and API tokens.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{keys, State};

use super::{csrf_field, esc, page, refusal_box, typed, when, Refused};

/// `GET /settings`, or the page again with a result (`notice`) or a
/// refused form on top.
pub(super) fn show(
    state: &State,
    s: &Session,
    status: u16,
    notice: &str,
    refused: Option<Refused<'_>>,
) -> Reply {
    let store = &state.ctx.store;
    let (Ok(left), Ok(tokens)) = (
        store.recovery_codes_left(&s.admin),
        store.api_tokens(&s.admin),
    ) else {
        return super::store_failed(s);
    };
    let csrf = csrf_field(s);
    let rows: String = tokens
        .iter()
        .map(|t| {
            format!(
                "<tr><td>{}</td><td class=\"optional\">{}</td><td>{}</td><td>\
                 <form method=\"post\" action=\"/settings/tokens/{}/revoke\">{csrf}\
                 <button class=\"small\">Revoke</button></form></td></tr>",
                esc(&t.name),
                when(Some(t.created)),
                when(t.last_used),
                t.id
            )
        })
        .collect();
    page(
        status,
        "Settings",
        Some(s),
        &format!(
            "{error}{notice}<section><h2>Recovery codes</h2>\
             <p>{left} unused. New codes replace all the old ones.</p>\
             <form method=\"post\" action=\"/settings/recovery-codes\">{csrf}\
             <button>Make new recovery codes</button></form></section>\
             <section><h2>API tokens</h2>\
             <p>For scripts: send <code>Authorization: Bearer TOKEN</code> to the JSON API \
             under <code>/api/</code>. A token can do what you can on these pages, except \
             manage logins and tokens and read the backup key.</p>\
             <table><tr><th>Name</th><th class=\"optional\">Made</th><th>Last used</th><th></th></tr>\
             {rows}</table>\
             <form method=\"post\" action=\"/settings/tokens\">{csrf}\
             <label for=\"token-name\">New token's name</label>\
             <input id=\"token-name\" name=\"name\" placeholder=\"backup script\" value=\"{name}\" required>\
             <button>Make token</button></form></section>",
            error = refusal_box(refused),
            name = typed(refused, "name", ""),
        ),
    )
}

/// `POST /settings/...`.
pub(super) fn act(state: &State, s: &Session, action: &[&str], form: &Body) -> Reply {
    let reply = match action {
        ["recovery-codes"] => keys::regenerate_recovery(state, s),
        ["tokens"] => keys::add_token(state, s, form),
        ["tokens", id, "revoke"] => keys::revoke_token(state, s, id),
        _ => return Reply::redirect("/settings"),
    };
    if !reply.is_success() {
        let message = reply.error_message();
        return show(
            state,
            s,
            reply.status,
            "",
            Some(Refused::new(&message, form)),
        );
    }
    let value = reply.json_value().unwrap_or_default();
    match action {
        ["recovery-codes"] => {
            let codes: Vec<String> = value["recovery_codes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            super::welcome::recovery_codes(s, &codes, "/settings")
        }
        ["tokens"] => show(
            state,
            s,
            201,
            &format!(
                "<section class=\"notice\"><h2>New API token</h2>\
                 <p>Copy it now: it is not shown again.</p>\
                 <p><code id=\"new-token\">{}</code></p></section>",
                esc(value["token"].as_str().unwrap_or(""))
            ),
            None,
        ),
        _ => Reply::redirect("/settings"),
    }
}
