//! The domains page (list, add) and a domain's DNS records.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{directory, State};

use super::{csrf_field, error_box, esc, page, refusal_box, store_failed, typed, Refused};

/// `GET /domains`, or the page again after a refused form.
pub(super) fn list(state: &State, s: &Session, status: u16, refused: Option<Refused<'_>>) -> Reply {
    let Ok(domains) = state.ctx.store.domains() else {
        return store_failed(s);
    };
    let rows: String = domains
        .iter()
        .map(|d| {
            format!(
                "<tr><td>{0}</td><td><a href=\"/domains/{0}\">DNS records</a></td></tr>",
                esc(d)
            )
        })
        .collect();
    page(
        status,
        "Domains",
        Some(s),
        &format!(
            "{}<section><h2>Domains</h2><table><tr><th>Domain</th><th></th></tr>{rows}</table>\
             <form method=\"post\" action=\"/domains\">{}\
             <label for=\"domain\">Add a domain</label>\
             <input id=\"domain\" name=\"name\" placeholder=\"example.com\" value=\"{}\" required>\
             <button>Add domain</button></form></section>",
            refusal_box(refused),
            csrf_field(s),
            typed(refused, "name", "")
        ),
    )
}

/// `POST /domains`.
pub(super) fn add(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = directory::add_domain(state, form);
    if reply.is_success() {
        Reply::redirect("/domains")
    } else {
        list(
            state,
            s,
            reply.status,
            Some(Refused::new(&reply.error_message(), form)),
        )
    }
}

/// `GET /domains/NAME`: the records to publish.
pub(super) fn dns(state: &State, s: &Session, name: &str) -> Reply {
    let reply = directory::dns(state, name);
    let Some(value) = reply.json_value() else {
        return page(
            reply.status,
            "DNS records",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    let domain = value["domain"].as_str().unwrap_or(name);
    page(
        200,
        "DNS records",
        Some(s),
        &format!(
            "{}{}",
            super::dnscheck::records(&value),
            remove_form(s, domain, None)
        ),
    )
}

/// The form that removes a domain, under its DNS records.
fn remove_form(s: &Session, domain: &str, refused: Option<Refused<'_>>) -> String {
    format!(
        "<section><h2>Remove {0}</h2>{1}<p>Only a domain without accounts can be removed; \
         its aliases go with it.</p>\
         <form method=\"post\" action=\"/domains/{0}/remove\">{2}\
         <label for=\"confirm-domain\">Type the domain's name to confirm</label>\
         <input id=\"confirm-domain\" name=\"confirm\" autocomplete=\"off\" value=\"{3}\" required>\
         <button class=\"danger\">Remove domain</button></form></section>",
        esc(domain),
        refusal_box(refused),
        csrf_field(s),
        typed(refused, "confirm", "")
    )
}

/// `POST /domains/NAME/remove`.
pub(super) fn remove(state: &State, s: &Session, name: &str, form: &Body) -> Reply {
    let reply = directory::remove_domain(state, name, form);
    if reply.is_success() {
        return Reply::redirect("/domains");
    }
    page(
        reply.status,
        "DNS records",
        Some(s),
        &remove_form(s, name, Some(Refused::new(&reply.error_message(), form))),
    )
}
