//! The pages before the dashboard: first-boot setup with the one-time
//! code, login, and TOTP enrolment.

use crate::http::Reply;
use crate::session::Session;
use crate::{totp, State};

use super::{csrf_field, error_box, esc, page, refusal_box, typed, Refused};

pub(super) fn setup_page(state: &State, refused: Option<Refused<'_>>) -> Reply {
    if !matches!(state.ctx.store.has_admin(), Ok(false)) {
        return Reply::redirect("/login");
    }
    page(
        if refused.is_some() { 400 } else { 200 },
        "Set up",
        None,
        &format!(
            "<section><h2>Set up this Pochta</h2>{}\
             <p>Enter the setup code shown on the console (also in <code>setup-code.txt</code> \
             in the data folder), and choose the administrator's name and password.</p>\
             <form method=\"post\" action=\"/setup\">\
             <label for=\"code\">Setup code</label>\
             <input id=\"code\" name=\"setup_code\" autocomplete=\"off\" value=\"{}\" required>\
             <label for=\"user\">Administrator name</label>\
             <input id=\"user\" name=\"user\" value=\"{}\" autocomplete=\"username\" required>\
             <label for=\"password\">Password (at least 12 characters)</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button>Create administrator</button></form></section>",
            refusal_box(refused),
            typed(refused, "setup_code", ""),
            typed(refused, "user", "admin"),
        ),
    )
}

pub(super) fn login_page(refused: Option<Refused<'_>>) -> Reply {
    page(
        if refused.is_some() { 401 } else { 200 },
        "Log in",
        None,
        &format!(
            "<section><h2>Log in</h2>{}<form method=\"post\" action=\"/login\">\
             <label for=\"user\">Name</label>\
             <input id=\"user\" name=\"user\" autocomplete=\"username\" value=\"{}\" required>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <label for=\"totp\">Code from your authenticator app</label>\
             <input id=\"totp\" name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\
             <button>Log in</button></form></section>",
            refusal_box(refused),
            typed(refused, "user", "")
        ),
    )
}

pub(super) fn enrol_page(state: &State, s: &Session, error: Option<&str>) -> Reply {
    let admin = match state.ctx.store.admin(&s.admin) {
        Ok(a) if !a.totp_enabled => a,
        Ok(_) => return Reply::redirect("/"),
        Err(_) => {
            return page(
                500,
                "Error",
                None,
                "<p class=\"error\">The store could not answer.</p>",
            )
        }
    };
    // The SVG is made here from a fixed template: no text of the visitor's in it.
    let qr = totp::qr_svg(&admin.totp_secret, &admin.name)
        .map(|svg| {
            svg.trim_start_matches(r#"<?xml version="1.0" standalone="yes"?>"#)
                .to_owned()
        })
        .unwrap_or_default();
    page(
        if error.is_some() { 400 } else { 200 },
        "Two-factor login",
        Some(s),
        &format!(
            "<section><h2>Two-factor login</h2>{}\
             <p>Scan this code with an authenticator app (or type the key), then enter the \
             six-digit code it shows. Every later login asks for a code.</p>\
             <div class=\"qr\">{qr}</div><p>Key: <code id=\"secret\">{}</code></p>\
             <form method=\"post\" action=\"/enrol\">{}\
             <label for=\"code\">Code</label>\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required>\
             <button>Confirm</button></form></section>",
            error_box(error),
            esc(&admin.totp_secret),
            csrf_field(s)
        ),
    )
}
