//! The rest of the first-boot wizard, after the administrator and TOTP:
//! the recovery codes, the first domain, the first mailbox, the backup
//! key's recovery sheet (shown once, here), and then the domain's DNS
//! records to publish.

use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{directory, State};

use super::{csrf_field, error_box, esc, page, refusal_box, store_failed, typed, Refused};

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
                "<section><h2>Step 1 of 3: your mail domain</h2>{}\
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
            "<section><h2>Step 2 of 3: the first mailbox</h2>{error}\
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

/// `POST /welcome/account`: then on to the backup key, and after it the
/// DNS records of its domain.
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
    key_step(state, s, &domain, 200, None)
}

/// Where the wizard goes after the key: the DNS records of the mailbox's
/// domain (a name as the store keeps it, else the wizard's own next step).
fn after_key(domain: &str) -> String {
    let plain = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if plain {
        format!("/domains/{domain}")
    } else {
        "/welcome".to_owned()
    }
}

/// Step 3: the backup key (made now) on its recovery sheet, shown this
/// once; continuing says it was written down.
fn key_step(state: &State, s: &Session, domain: &str, status: u16, error: Option<&str>) -> Reply {
    let key = match pochta_backup::Key::load_or_create(&state.ctx.data) {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(error = %e, "cannot make the backup key");
            return page(
                500,
                "Backup key",
                Some(s),
                &format!(
                    "{}<section><p><a class=\"button\" href=\"{}\">Continue</a></p></section>",
                    error_box(Some(&format!("the backup key cannot be made: {e}"))),
                    esc(&after_key(domain))
                ),
            );
        }
    };
    page(
        status,
        "Backup key",
        Some(s),
        &format!(
            "<section class=\"no-print\"><h2>Step 3 of 3: the backup key</h2>{error}\
             <p>Backups of this box are encrypted with this key, and nothing can read them \
             without it. Print this page or write the key down now and keep it away from \
             the box: it is shown here once (the Backup page shows it again after your \
             password and a code). Choose where backups go on the Backup page.</p></section>\
             {sheet}\
             <section class=\"no-print\"><form method=\"post\" action=\"/welcome/key\">{csrf}\
             <input type=\"hidden\" name=\"domain\" value=\"{domain}\">\
             <label class=\"check\"><input type=\"checkbox\" id=\"key-written\" name=\"written\" \
             value=\"yes\" required> I have written the key down</label>\
             <button>Continue</button></form></section>",
            error = error_box(error),
            sheet = super::backup::sheet(state, key.as_str()),
            csrf = csrf_field(s),
            domain = esc(domain),
        ),
    )
}

/// `POST /welcome/key {domain, written}`: on to the DNS records once the
/// box is ticked.
pub(super) fn key_written(state: &State, s: &Session, form: &Body) -> Reply {
    let domain = form.get("domain").and_then(|d| d.as_str()).unwrap_or("");
    if form.get("written").and_then(|w| w.as_str()) != Some("yes") {
        return key_step(
            state,
            s,
            domain,
            400,
            Some("tick the box once the key is written down"),
        );
    }
    Reply::redirect(&after_key(domain))
}
