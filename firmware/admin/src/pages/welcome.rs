//! The rest of the first-boot wizard, after the administrator and TOTP:
//! the recovery codes, the first domain, the first mailbox, and then the
//! domain's DNS records to publish.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{directory, State};

use super::{csrf_field, esc, page, refusal_box, store_failed, typed, Refused};

/// The recovery codes, shown once right after enrolment.
pub(super) fn recovery_codes(s: &Session, codes: &[String], next: &str) -> Reply {
    let items: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", esc(c)))
        .collect();
    page(
        200,
        "Recovery codes",
        Some(s),
        &format!(
            "<section><h2>Recovery codes</h2>\
             <p>If your phone is lost, type one of these instead of a code from the app. \
             Each works once. Print them or write them down and keep them away from the box: \
             they are not shown again.</p>\
             <ol id=\"recovery-codes\" class=\"codes\">{items}</ol>\
             <p><a class=\"button\" href=\"{}\">Continue</a></p></section>",
            esc(next)
        ),
    )
}

/// `GET /welcome`: the next step that is still to do, or the DNS page.
pub(super) fn next_step(
    state: &State,
    s: &Session,
    status: u16,
    refused: Option<Refused<'_>>,
) -> Reply {
    let store = &state.ctx.store;
    let (Ok(domains), Ok(accounts)) = (store.domains(), store.accounts()) else {
        return store_failed(s);
    };
    let csrf = csrf_field(s);
    let Some(first) = domains.first() else {
        return page(
            status,
            "Your domain",
            Some(s),
            &format!(
                "<section><h2>Step 1 of 2: your mail domain</h2>{}\
                 <p>The part after the @ in your addresses, e.g. <code>example.com</code>. \
                 You will publish DNS records for it at the end.</p>\
                 <form method=\"post\" action=\"/welcome/domain\">{csrf}\
                 <label for=\"domain\">Domain</label>\
                 <input id=\"domain\" name=\"name\" placeholder=\"example.com\" value=\"{}\" required>\
                 <button>Add domain</button></form></section>",
                refusal_box(refused),
                typed(refused, "name", "")
            ),
        );
    };
    if !accounts.is_empty() {
        return Reply::redirect(&format!("/domains/{first}"));
    }
    page(
        status,
        "First mailbox",
        Some(s),
        &format!(
            "<section><h2>Step 2 of 2: the first mailbox</h2>{error}\
             <p>An address for yourself or a colleague; add more later on the Accounts page.</p>\
             <form method=\"post\" action=\"/welcome/account\">{csrf}\
             <label for=\"address\">Address</label>\
             <input id=\"address\" name=\"address\" placeholder=\"anna@{domain}\" value=\"{address}\" required>\
             <label for=\"apw\">Password (at least 12 characters)</label>\
             <input id=\"apw\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button>Create mailbox</button></form>\
             <p><a href=\"/domains/{domain}\">Skip for now</a></p></section>",
            domain = esc(first),
            error = refusal_box(refused),
            address = typed(refused, "address", "")
        ),
    )
}

/// `POST /welcome/domain`.
pub(super) fn add_domain(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = directory::add_domain(state, form);
    if reply.is_success() {
        Reply::redirect("/welcome")
    } else {
        let message = reply.error_message();
        next_step(state, s, reply.status, Some(Refused::new(&message, form)))
    }
}

/// `POST /welcome/account`: then on to the DNS records of its domain.
pub(super) fn add_account(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = directory::add_account(state, form);
    if !reply.is_success() {
        let message = reply.error_message();
        return next_step(state, s, reply.status, Some(Refused::new(&message, form)));
    }
    let domain = form
        .get("address")
        .and_then(|a| a.as_str())
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .unwrap_or_default();
    Reply::redirect(&format!("/domains/{domain}"))
}
