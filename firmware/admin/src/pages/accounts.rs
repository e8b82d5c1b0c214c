//! The accounts page (list with usage, add) and one account's page:
//! password, quota, offboarding, removal, two-factor login and app
//! passwords. Forms post to `/accounts/ADDR/...` and are handled by the
//! same functions as `/api/accounts/ADDR/...`.

use pochta_config::format_size;
use pochta_store::AccountDetails;

use crate::accounts::{self, Action};
use crate::http::{Body, Reply};
use crate::session::Session;
use crate::{directory, totp, State};

use super::{csrf_field, error_box, esc, page, refusal_box, store_failed, typed, when, Refused};

const MB: u64 = 1024 * 1024;

/// An address as a path segment: characters that mean something in a URL
/// are escaped (`@` and `+` may stay).
fn segment(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for b in address.bytes() {
        if b.is_ascii_alphanumeric() || b"@+-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Used space against the quota: a `<meter>` (no inline style needed) and
/// the numbers.
fn usage(used: u64, quota: u64) -> String {
    if quota == 0 {
        return format!(
            "{} <span class=\"muted\">(no limit)</span>",
            format_size(used)
        );
    }
    format!(
        "<meter min=\"0\" max=\"{quota}\" low=\"{low}\" high=\"{high}\" optimum=\"0\" value=\"{v}\">{pct}%</meter> \
         {} of {}",
        format_size(used),
        format_size(quota),
        low = quota / 10 * 7,
        high = quota / 10 * 9,
        v = used.min(quota),
        pct = used.saturating_mul(100) / quota,
    )
}

/// `GET /accounts`, or the page again after a refused form.
pub(super) fn list(state: &State, s: &Session, status: u16, refused: Option<Refused<'_>>) -> Reply {
    let Ok(accounts) = state.ctx.store.accounts() else {
        return store_failed(s);
    };
    let rows: String = accounts
        .iter()
        .map(|a| {
            format!(
                "<tr><td><a href=\"/accounts/{}\">{}</a></td><td class=\"optional\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&segment(&a.address)),
                esc(&a.address),
                a.messages,
                usage(a.bytes, a.quota_bytes),
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
             <th>Used</th><th>State</th></tr>{rows}</table>\
             <form method=\"post\" action=\"/accounts\">{}\
             <label for=\"address\">Address</label>\
             <input id=\"address\" name=\"address\" placeholder=\"anna@example.com\" value=\"{}\" required>\
             <label for=\"apw\">Password (at least 12 characters)</label>\
             <input id=\"apw\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button>Add account</button></form></section>",
            refusal_box(refused),
            csrf_field(s),
            typed(refused, "address", "")
        ),
    )
}

/// `POST /accounts`.
pub(super) fn add(state: &State, s: &Session, form: &Body) -> Reply {
    let reply = directory::add_account(state, form);
    if reply.is_success() {
        Reply::redirect("/accounts")
    } else {
        list(
            state,
            s,
            reply.status,
            Some(Refused::new(&reply.error_message(), form)),
        )
    }
}

/// What an account's page shows besides its settings.
#[derive(Default)]
struct Notice<'a> {
    /// A form refused: its fields show what was typed.
    refused: Option<Refused<'a>>,
    /// A new app password: (name, secret), shown this once.
    new_app_password: Option<(&'a str, &'a str)>,
}

/// `GET /accounts/ADDR`.
pub(super) fn detail(state: &State, s: &Session, address: &str) -> Reply {
    show(state, s, address, 200, &Notice::default())
}

fn show(
    state: &State,
    s: &Session,
    segment_typed: &str,
    status: u16,
    notice: &Notice<'_>,
) -> Reply {
    let address = match accounts::address_of(segment_typed) {
        Ok(a) => a,
        Err(reply) => return failed_page(s, &reply),
    };
    let d = match state.ctx.store.account_details(&address) {
        Ok(d) => d,
        Err(pochta_store::StoreError::NotFound(_)) => {
            return page(
                404,
                "Account",
                Some(s),
                &format!(
                    "<section><p class=\"error\">No account {}.</p><p><a href=\"/accounts\">All accounts</a></p></section>",
                    esc(&address)
                ),
            )
        }
        Err(_) => return store_failed(s),
    };
    let base = format!("/accounts/{}", esc(&segment(&address)));
    let new_password = notice
        .new_app_password
        .map_or(String::new(), |(name, secret)| {
            format!(
                "<section class=\"notice\" role=\"status\"><h2>New app password for {}</h2>\
             <p><code id=\"new-app-password\">{}</code></p>\
             <p>Type it into the mail program as the password for {}. Copy it now: \
             it is not shown again.</p></section>",
                esc(name),
                esc(secret),
                esc(&address)
            )
        });
    let refused = notice.refused;
    let content = [
        refusal_box(refused),
        new_password,
        summary(&d),
        password_form(s, &base),
        quota_form(s, &base, &d, refused),
        offboarding_form(s, &base, &d, refused),
        two_factor(state, s, &base, &d),
        app_passwords(s, &base, &d, refused),
        remove_form(s, &base, &address, refused),
    ]
    .concat();
    page(status, "Account", Some(s), &content)
}

fn failed_page(s: &Session, reply: &Reply) -> Reply {
    page(
        reply.status,
        "Account",
        Some(s),
        &format!(
            "{}<section><p><a href=\"/accounts\">All accounts</a></p></section>",
            error_box(Some(&reply.error_message()))
        ),
    )
}

fn summary(d: &AccountDetails) -> String {
    let a = &d.account;
    let state = if a.disabled {
        "disabled: no logins; mail is still received and kept"
    } else {
        "active"
    };
    format!(
        "<section><h2>{}</h2><p>State: <strong id=\"account-state\">{state}</strong></p>\
         <p>Used: {}</p><p>Messages: {}</p>\
         <p><a href=\"/accounts/{0}/setup\">Settings for mail programs and phones</a> · \
         <a href=\"/accounts\">All accounts</a></p></section>",
        esc(&a.address),
        usage(a.bytes, a.quota_bytes),
        a.messages
    )
}

fn password_form(s: &Session, base: &str) -> String {
    format!(
        "<section><h2>Reset password</h2>\
         <form method=\"post\" action=\"{base}/password\">{}\
         <label for=\"new-password\">New password (at least 12 characters)</label>\
         <input id=\"new-password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
         <button>Set password</button></form></section>",
        csrf_field(s)
    )
}

fn quota_form(s: &Session, base: &str, d: &AccountDetails, refused: Option<Refused<'_>>) -> String {
    format!(
        "<section><h2>Quota</h2>\
         <form method=\"post\" action=\"{base}/quota\">{}\
         <label for=\"quota\">Quota in MB (0: no limit)</label>\
         <input id=\"quota\" name=\"quota_mb\" type=\"number\" min=\"0\" inputmode=\"numeric\" value=\"{}\" required>\
         <button>Set quota</button></form></section>",
        csrf_field(s),
        typed(refused, "quota_mb", &(d.account.quota_bytes / MB).to_string())
    )
}

fn offboarding_form(
    s: &Session,
    base: &str,
    d: &AccountDetails,
    refused: Option<Refused<'_>>,
) -> String {
    let enable = if d.account.disabled {
        format!(
            "<form method=\"post\" action=\"{base}/enable\">{}\
             <p>Enabling lets the account log in again and ends the forward and the auto-reply.</p>\
             <button>Enable account</button></form>",
            csrf_field(s)
        )
    } else {
        String::new()
    };
    format!(
        "<section><h2>Offboarding</h2>\
         <p>A disabled account cannot log in. Its mail is kept and new mail still arrives; \
         a copy can go to a colleague, and senders can get an automatic answer (once a week each).</p>\
         <form method=\"post\" action=\"{base}/disable\">{}\
         <label for=\"forward-to\">Forward a copy to (optional)</label>\
         <input id=\"forward-to\" name=\"forward_to\" type=\"email\" placeholder=\"colleague@example.com\" value=\"{}\">\
         <label for=\"auto-reply\">Automatic answer (optional)</label>\
         <textarea id=\"auto-reply\" name=\"auto_reply\" rows=\"4\">{}</textarea>\
         <button>{}</button></form>{enable}</section>",
        csrf_field(s),
        typed(refused, "forward_to", d.forward_to.as_deref().unwrap_or("")),
        typed(refused, "auto_reply", d.auto_reply.as_deref().unwrap_or("")),
        if d.account.disabled {
            "Save forward and answer"
        } else {
            "Disable account"
        }
    )
}

fn two_factor(state: &State, s: &Session, base: &str, d: &AccountDetails) -> String {
    let csrf = csrf_field(s);
    let body = if d.totp_enabled {
        format!(
            "<p>Two-factor login is <strong>on</strong>: mail programs (IMAP, POP3, SMTP) must use \
             app passwords; the account password is refused there.</p>\
             <form method=\"post\" action=\"{base}/totp/disable\">{csrf}<button>Turn off</button></form>"
        )
    } else if d.totp_pending {
        let address = &d.account.address;
        let secret = state
            .ctx
            .store
            .account_totp(address)
            .ok()
            .and_then(|t| t.secret)
            .unwrap_or_default();
        // The SVG is made here from a fixed template: no text of the visitor's in it.
        let qr = totp::qr_svg(&secret, address)
            .map(|svg| {
                svg.trim_start_matches(r#"<?xml version="1.0" standalone="yes"?>"#)
                    .to_owned()
            })
            .unwrap_or_default();
        format!(
            "<p>Scan this code with the account holder's authenticator app (or type the key), \
             then enter the six-digit code it shows.</p>\
             <div class=\"qr\">{qr}</div><p>Key: <code id=\"totp-secret\">{}</code></p>\
             <form method=\"post\" action=\"{base}/totp/confirm\">{csrf}\
             <label for=\"totp-code\">Code</label>\
             <input id=\"totp-code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
             <button>Confirm</button></form>\
             <form method=\"post\" action=\"{base}/totp/disable\">{csrf}<button>Cancel</button></form>",
            esc(&secret)
        )
    } else {
        format!(
            "<p>Two-factor login is off. Once it is on, mail programs must use app passwords.</p>\
             <form method=\"post\" action=\"{base}/totp\">{csrf}<button>Start enrolment</button></form>"
        )
    };
    format!("<section><h2>Two-factor login</h2>{body}</section>")
}

fn app_passwords(
    s: &Session,
    base: &str,
    d: &AccountDetails,
    refused: Option<Refused<'_>>,
) -> String {
    let csrf = csrf_field(s);
    let rows: String = d
        .app_passwords
        .iter()
        .map(|p| {
            let last = match (p.last_used, &p.last_used_from) {
                (Some(t), Some(from)) => format!("{} from {}", when(Some(t)), esc(from)),
                (Some(t), None) => when(Some(t)),
                _ => "never".into(),
            };
            format!(
                "<tr><td>{}</td><td class=\"optional\">{}</td><td>{last}</td><td>\
                 <form method=\"post\" action=\"{base}/app-passwords/{}/revoke\">{csrf}\
                 <button>Revoke</button></form></td></tr>",
                esc(&p.name),
                when(Some(p.created)),
                p.id
            )
        })
        .collect();
    let table = if rows.is_empty() {
        "<p>No app passwords yet.</p>".to_owned()
    } else {
        format!(
            "<table id=\"app-passwords\"><tr><th>Name</th><th class=\"optional\">Made</th>\
             <th>Last used</th><th></th></tr>{rows}</table>"
        )
    };
    format!(
        "<section><h2>App passwords</h2>\
         <p>One per phone or mail program; each can be revoked alone.</p>{table}\
         <form method=\"post\" action=\"{base}/app-passwords\">{csrf}\
         <label for=\"app-name\">Name (e.g. the device)</label>\
         <input id=\"app-name\" name=\"name\" maxlength=\"64\" placeholder=\"Anna's phone\" value=\"{}\" required>\
         <button>Make app password</button></form></section>",
        typed(refused, "name", "")
    )
}

fn remove_form(s: &Session, base: &str, address: &str, refused: Option<Refused<'_>>) -> String {
    format!(
        "<section><h2>Remove</h2><p>Removes the account and <strong>all its mail</strong>. \
         This cannot be undone.</p>\
         <form method=\"post\" action=\"{base}/remove\">{}\
         <label for=\"confirm\">Type {} to confirm</label>\
         <input id=\"confirm\" name=\"confirm\" autocomplete=\"off\" value=\"{}\" required>\
         <button class=\"danger\">Remove account and mail</button></form></section>",
        csrf_field(s),
        esc(address),
        typed(refused, "confirm", "")
    )
}

/// `POST /accounts/ADDR/...`: the same handler as the API, then the
/// account's page again (with the new app password once), or the list
/// after a removal.
pub(super) fn action(state: &State, s: &Session, path: &str, form: &Body) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (address, action) = match segments.as_slice() {
        ["accounts", address, rest @ ..] => match accounts::route(rest) {
            Some((_, Some(action))) => (*address, action),
            _ => return super::not_found(Some(s)),
        },
        _ => return super::not_found(Some(s)),
    };
    let reply = accounts::handle(state, address, action, form);
    if !reply.is_success() {
        let message = reply.error_message();
        let notice = Notice {
            refused: Some(Refused::new(&message, form)),
            ..Notice::default()
        };
        return show(state, s, address, reply.status, &notice);
    }
    match action {
        Action::Remove => Reply::redirect("/accounts"),
        Action::AddAppPassword => {
            let value = reply.json_value().unwrap_or_default();
            let name = value["name"].as_str().unwrap_or("");
            let secret = value["password"].as_str().unwrap_or("");
            let notice = Notice {
                new_app_password: Some((name, secret)),
                ..Notice::default()
            };
            show(state, s, address, 200, &notice)
        }
        _ => match accounts::address_of(address) {
            Ok(a) => Reply::redirect(&format!("/accounts/{}", segment(&a))),
            Err(_) => Reply::redirect("/accounts"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_numbers() {
        assert_eq!(segment("anna+x@example.com"), "anna+x@example.com");
        assert_eq!(segment("a/b?c#d\"@x.org"), "a%2Fb%3Fc%23d%22@x.org");
        assert_eq!(
            accounts::decode_segment(&segment("a/b?c#d\"@x.org")),
            "a/b?c#d\"@x.org"
        );
        assert!(usage(5, 0).starts_with("5 B "), "{}", usage(5, 0));
        assert!(usage(5, 0).contains("no limit"));
        let u = usage(50 * MB, 100 * MB);
        assert!(
            u.contains("<meter") && u.contains("50%") && u.contains("50 MB of 100 MB"),
            "{u}"
        );
        assert!(usage(200 * MB, 100 * MB).contains("200%"));
        // A small mailbox is not "0.0 MB".
        assert!(usage(1300, 10 * MB).contains("1.3 KB of 10 MB"));
    }
}
