//! Server-rendered HTML: setup, TOTP enrolment, login, the dashboard
//! (domains, accounts) and a domain's DNS records. Forms post
//! `application/x-www-form-urlencoded` and carry the session's CSRF token in
//! a hidden field; the work is done by the same handlers as the JSON API.
//! No script and no inline style (the CSP forbids both); nothing is fetched
//! from the internet.

use std::net::SocketAddr;

use tiny_http::{Method, Request};

use crate::http::{self, Body, Reply};
use crate::session::{Session, COOKIE};
use crate::{directory, login, totp, State};

const STYLE: &str = include_str!("style.css");

/// Escapes text for HTML content and quoted attribute values.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page; `session` adds the log-out button.
fn page(status: u16, title: &str, session: Option<&Session>, content: &str) -> Reply {
    let logout = session.map_or(String::new(), |s| {
        format!(
            "<form method=\"post\" action=\"/logout\">{}<button>Log out</button></form>",
            csrf_field(s)
        )
    });
    Reply::html(
        status,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Pochta</title><link rel=\"stylesheet\" href=\"/style.css\">\
             </head><body><header><h1>Pochta</h1>{logout}</header><main>{content}</main>\
             </body></html>\n",
            title = esc(title),
        ),
    )
}

fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        esc(&session.csrf)
    )
}

fn error_box(error: Option<&str>) -> String {
    error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    })
}

/// Answers a request outside `/api/`.
pub fn handle(state: &State, request: &mut Request, peer: SocketAddr, path: &str) -> Reply {
    let session = http::cookie(request, COOKIE).and_then(|t| state.sessions.find(t));
    let post = match request.method() {
        Method::Get | Method::Head => false,
        Method::Post => true,
        _ => return Reply::error(405, "method not allowed"),
    };
    if !post {
        return match path {
            "/style.css" => Reply::css(STYLE),
            "/" => home(state, session.as_ref()),
            "/setup" => setup_page(state, None),
            "/login" => login_page(None),
            "/enrol" => match &session {
                Some(s) => enrol_page(state, s, None),
                None => Reply::redirect("/login"),
            },
            _ => match (path.strip_prefix("/domains/"), &session) {
                (Some(name), Some(s)) if s.totp_enabled => dns_page(state, s, name),
                (Some(_), _) => Reply::redirect("/"),
                (None, _) => page(
                    404,
                    "Not found",
                    None,
                    "<section><p>No such page.</p></section>",
                ),
            },
        };
    }
    let form = match http::read_form(request) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    match path {
        "/setup" => {
            let reply = login::setup(state, &form, peer);
            if reply.is_success() {
                reply.into_redirect("/enrol")
            } else {
                setup_page(state, Some(&reply.error_message()))
            }
        }
        "/login" => {
            let reply = login::login(state, &form, peer);
            if reply.is_success() {
                reply.into_redirect("/")
            } else {
                login_page(Some(&reply.error_message()))
            }
        }
        _ => {
            let Some(s) = session.filter(|s| csrf_ok(s, &form)) else {
                return page(
                    403,
                    "Refused",
                    None,
                    "<section><p class=\"error\">Your session ended or the form is stale: \
                     <a href=\"/login\">log in</a> again.</p></section>",
                );
            };
            form_action(state, &s, path, &form)
        }
    }
}

fn csrf_ok(session: &Session, form: &Body) -> bool {
    form.get("csrf_token")
        .and_then(|v| v.as_str())
        .is_some_and(|t| http::same(t, &session.csrf))
}

/// A form that changes something, from a session whose CSRF token matched.
fn form_action(state: &State, s: &Session, path: &str, form: &Body) -> Reply {
    match path {
        "/logout" => login::logout(state, s).into_redirect("/login"),
        "/enrol" => {
            let reply = login::confirm_totp(state, form, s);
            if reply.is_success() {
                Reply::redirect("/")
            } else {
                enrol_page(state, s, Some(&reply.error_message()))
            }
        }
        "/domains" | "/accounts" if s.totp_enabled => {
            let reply = if path == "/domains" {
                directory::add_domain(state, form)
            } else {
                directory::add_account(state, form)
            };
            if reply.is_success() {
                Reply::redirect("/")
            } else {
                dashboard(state, s, reply.status, Some(&reply.error_message()))
            }
        }
        _ => Reply::redirect("/"),
    }
}

/// `GET /`: setup, enrolment or login when due, else the dashboard.
fn home(state: &State, session: Option<&Session>) -> Reply {
    match state.ctx.store.has_admin() {
        Ok(false) => return Reply::redirect("/setup"),
        Ok(true) => {}
        Err(_) => {
            return page(
                500,
                "Error",
                None,
                "<p class=\"error\">The store could not answer.</p>",
            )
        }
    }
    match session {
        None => Reply::redirect("/login"),
        Some(s) if !s.totp_enabled => Reply::redirect("/enrol"),
        Some(s) => dashboard(state, s, 200, None),
    }
}

fn setup_page(state: &State, error: Option<&str>) -> Reply {
    if !matches!(state.ctx.store.has_admin(), Ok(false)) {
        return Reply::redirect("/login");
    }
    page(
        if error.is_some() { 400 } else { 200 },
        "Set up",
        None,
        &format!(
            "<section><h2>Set up this Pochta</h2>{}\
             <p>Enter the setup code shown on the console (also in <code>setup-code.txt</code> \
             in the data folder), and choose the administrator's name and password.</p>\
             <form method=\"post\" action=\"/setup\">\
             <label for=\"code\">Setup code</label>\
             <input id=\"code\" name=\"setup_code\" autocomplete=\"off\" required>\
             <label for=\"user\">Administrator name</label>\
             <input id=\"user\" name=\"user\" value=\"admin\" autocomplete=\"username\" required>\
             <label for=\"password\">Password (at least 12 characters)</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button>Create administrator</button></form></section>",
            error_box(error)
        ),
    )
}

fn login_page(error: Option<&str>) -> Reply {
    page(
        if error.is_some() { 401 } else { 200 },
        "Log in",
        None,
        &format!(
            "<section><h2>Log in</h2>{}<form method=\"post\" action=\"/login\">\
             <label for=\"user\">Name</label>\
             <input id=\"user\" name=\"user\" autocomplete=\"username\" required>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <label for=\"totp\">Code from your authenticator app</label>\
             <input id=\"totp\" name=\"totp\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\
             <button>Log in</button></form></section>",
            error_box(error)
        ),
    )
}

fn enrol_page(state: &State, s: &Session, error: Option<&str>) -> Reply {
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

fn dashboard(state: &State, s: &Session, status: u16, error: Option<&str>) -> Reply {
    let store = &state.ctx.store;
    let (Ok(domains), Ok(accounts)) = (store.domains(), store.accounts()) else {
        return page(
            500,
            "Error",
            Some(s),
            "<p class=\"error\">The store could not answer.</p>",
        );
    };
    let domain_rows: String = domains
        .iter()
        .map(|d| {
            format!(
                "<tr><td>{0}</td><td><a href=\"/domains/{0}\">DNS records</a></td></tr>",
                esc(d)
            )
        })
        .collect();
    let account_rows: String = accounts
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
    let csrf = csrf_field(s);
    page(
        status,
        "Dashboard",
        Some(s),
        &format!(
            "{}<section><h2>Domains</h2><table><tr><th>Domain</th><th></th></tr>{domain_rows}</table>\
             <form method=\"post\" action=\"/domains\">{csrf}\
             <label for=\"domain\">Add a domain</label>\
             <input id=\"domain\" name=\"name\" placeholder=\"example.com\" required>\
             <button>Add domain</button></form></section>\
             <section><h2>Accounts</h2><table><tr><th>Address</th><th class=\"optional\">Messages</th>\
             <th class=\"optional\">Bytes</th><th>State</th></tr>{account_rows}</table>\
             <form method=\"post\" action=\"/accounts\">{csrf}\
             <label for=\"address\">Address</label>\
             <input id=\"address\" name=\"address\" placeholder=\"anna@example.com\" required>\
             <label for=\"apw\">Password (at least 12 characters)</label>\
             <input id=\"apw\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required>\
             <button>Add account</button></form></section>",
            error_box(error)
        ),
    )
}

fn dns_page(state: &State, s: &Session, name: &str) -> Reply {
    let reply = directory::dns(state, name);
    let Some(value) = reply.json_value() else {
        return page(
            reply.status,
            "DNS records",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    let rows: String = value["records"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|r| {
                    format!(
                        "<tr><td class=\"data\">{}</td><td>{}</td><td class=\"data\">{}</td></tr>",
                        esc(r["name"].as_str().unwrap_or("")),
                        esc(r["type"].as_str().unwrap_or("")),
                        esc(r["data"].as_str().unwrap_or(""))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    page(
        200,
        "DNS records",
        Some(s),
        &format!(
            "<section><h2>DNS records for {}</h2><p>Publish these at your DNS provider.</p>\
             <table><tr><th>Name</th><th>Type</th><th>Value</th></tr>{rows}</table>\
             <p><a href=\"/\">Back</a></p></section>",
            esc(value["domain"].as_str().unwrap_or(""))
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
