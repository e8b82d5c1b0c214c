//! The aliases page: aliases, distribution groups and catch-alls; add one
//! (or members to one), remove a member or a whole alias.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{aliases, State};

use super::{csrf_field, error_box, esc, page, refusal_box, typed, Refused};

fn remove_button(s: &Session, address: &str, target: Option<&str>, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/aliases/remove\" class=\"inline\">{}\
         <input type=\"hidden\" name=\"address\" value=\"{}\">{}<button class=\"small\">{label}</button></form>",
        csrf_field(s),
        esc(address),
        target.map_or(String::new(), |t| format!(
            "<input type=\"hidden\" name=\"target\" value=\"{}\">",
            esc(t)
        )),
    )
}

/// `GET /aliases`, or the page again after a refused form.
pub(super) fn list(state: &State, s: &Session, status: u16, refused: Option<Refused<'_>>) -> Reply {
    let reply = aliases::list(state);
    let Some(v) = reply.json_value() else {
        return page(
            reply.status,
            "Aliases",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    let all = v["aliases"].as_array().cloned().unwrap_or_default();
    let rows: String = all
        .iter()
        .map(|a| {
            let address = a["address"].as_str().unwrap_or("");
            let targets: String = a["targets"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.as_str())
                        .map(|t| format!("<li>{} {}</li>", esc(t), remove_button(s, address, Some(t), "Remove")))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "<tr><td>{}</td><td>{}</td><td><ul class=\"targets\">{targets}</ul></td><td>{}</td></tr>",
                esc(address),
                esc(a["kind"].as_str().unwrap_or("")),
                remove_button(s, address, None, "Remove all")
            )
        })
        .collect();
    let table = if all.is_empty() {
        "<p>No aliases yet.</p>".to_owned()
    } else {
        format!("<table><tr><th>Address</th><th>Kind</th><th>Delivers to</th><th></th></tr>{rows}</table>")
    };
    page(
        status,
        "Aliases",
        Some(s),
        &format!(
            "{}<section><h2>Aliases and groups</h2>\
             <p>An alias forwards mail for an address to another; with several targets it is a \
             distribution group; <code>@example.com</code> is a catch-all that gets mail for every \
             address of the domain that has no account or alias.</p>{table}</section>\
             <section><h2>Add an alias, group or catch-all</h2>\
             <form method=\"post\" action=\"/aliases\">{}\
             <label for=\"address\">Address</label>\
             <input id=\"address\" name=\"address\" placeholder=\"info@example.com or @example.com\" value=\"{}\" required>\
             <label for=\"targets\">Delivers to (one or more addresses, separated by commas)</label>\
             <input id=\"targets\" name=\"targets\" placeholder=\"anna@example.com, boris@example.com\" value=\"{}\" required>\
             <button>Add</button></form>\
             <p>Adding to an existing alias adds the new targets to it.</p></section>",
            refusal_box(refused),
            csrf_field(s),
            typed(refused, "address", ""),
            typed(refused, "targets", "")
        ),
    )
}

/// `POST /aliases`.
pub(super) fn add(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = aliases::add(state, form);
    if reply.is_success() {
        Reply::redirect("/aliases")
    } else {
        let message = reply.error_message();
        list(state, s, reply.status, Some(Refused::new(&message, form)))
    }
}

/// `POST /aliases/remove`.
pub(super) fn remove(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = aliases::remove(state, form);
    if reply.is_success() {
        Reply::redirect("/aliases")
    } else {
        // The remove buttons' hidden fields are not the add form's: its
        // fields stay empty.
        let message = reply.error_message();
        list(
            state,
            s,
            reply.status,
            Some(Refused::new(&message, &Body::new())),
        )
    }
}
