//! Server-rendered HTML, one module per area of the page. Forms post
//! `application/x-www-form-urlencoded` and carry the session's CSRF token in
//! a hidden field; the work is done by the same handlers as the JSON API.
//! No script and no inline style (the CSP forbids both); nothing is fetched
//! from the internet.
//!
//! Layout: this file holds the frame every page shares (header, menu,
//! escaping, the CSRF field) and sends each path to its area: `login`
//! (setup, login, enrolment), `welcome` (the rest of the first-boot
//! wizard), `dashboard`, `domains`, `accounts`, `clientsetup` (an
//! account's settings), `dnscheck` (records and their live check),
//! `aliases`, `queue`, `maillog` (search and trace), `security`,
//! `backup` (with the recovery sheet of the backup key), `settings`;
//! `local_time` shows times in the box's zone.
//!
//! A refused form comes back with its error as a sentence
//! ([`crate::sentence`]) and with what was typed in it, passwords
//! excepted ([`Refused`]).

mod accounts;
mod aliases;
mod backup;
mod clientsetup;
mod dashboard;
mod dnscheck;
mod domains;
pub(crate) mod local_time;
mod login;
mod maillog;
mod queue;
mod security;
mod settings;
mod welcome;

use std::net::SocketAddr;

use tiny_http::{Method, Request};

use crate::http::{self, escape as esc, Body, Reply};
use crate::session::{Session, COOKIE};
use crate::{login as auth, State};
use local_time::when;

const STYLE: &str = include_str!("../style.css");
const FAVICON: &str = include_str!("../favicon.svg");

/// The menu of a logged-in administrator: (path, label).
const MENU: &[(&str, &str)] = &[
    ("/", "Dashboard"),
    ("/domains", "Domains"),
    ("/accounts", "Accounts"),
    ("/aliases", "Aliases"),
    ("/queue", "Queue"),
    ("/log", "Mail log"),
    ("/security", "Security"),
    ("/backup", "Backup"),
    ("/settings", "Settings"),
];

/// A whole page; `session` adds the menu and the log-out button.
fn page(status: u16, title: &str, session: Option<&Session>, content: &str) -> Reply {
    frame(status, title, session, content, "")
}

/// A page that loads itself again every `secs` seconds (while a backup
/// runs: the page has no script to ask with).
fn reloading_page(status: u16, title: &str, session: &Session, content: &str, secs: u32) -> Reply {
    let refresh = format!("<meta http-equiv=\"refresh\" content=\"{secs}\">");
    frame(status, title, Some(session), content, &refresh)
}

/// [`page`] with more in its `<head>`.
fn frame(status: u16, title: &str, session: Option<&Session>, content: &str, head: &str) -> Reply {
    let (menu, logout) = session.filter(|s| s.totp_enabled).map_or_else(
        || (String::new(), String::new()),
        |s| {
            let links: String = MENU
                .iter()
                .map(|(path, label)| {
                    let current = if *label == title {
                        " aria-current=\"page\""
                    } else {
                        ""
                    };
                    format!("<a href=\"{path}\"{current}>{label}</a>")
                })
                .collect();
            (
                format!("<nav>{links}</nav>"),
                format!(
                    "<form method=\"post\" action=\"/logout\">{}<button>Log out</button></form>",
                    csrf_field(s)
                ),
            )
        },
    );
    Reply::html(
        status,
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Pochta</title><link rel=\"stylesheet\" href=\"/style.css\">\
             <link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\">{head}\
             </head><body><header><h1>Pochta</h1>{logout}</header>{menu}<main>{content}</main>\
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

/// The page shown when the store cannot answer.
fn store_failed(s: &Session) -> Reply {
    page(
        500,
        "Error",
        Some(s),
        "<p class=\"error\">The store could not answer; try again.</p>",
    )
}

/// An error over a page, as a sentence.
fn error_box(error: Option<&str>) -> String {
    error.map_or(String::new(), |e| {
        format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            esc(&crate::sentence::sentence(e))
        )
    })
}

/// A form the page refused: why, and what was typed in it.
#[derive(Clone, Copy)]
struct Refused<'a> {
    error: &'a str,
    form: &'a Body,
}

impl<'a> Refused<'a> {
    fn new(error: &'a str, form: &'a Body) -> Refused<'a> {
        Refused { error, form }
    }
}

/// The error box of a page that may follow a refused form.
fn refusal_box(refused: Option<Refused<'_>>) -> String {
    error_box(refused.map(|r| r.error))
}

/// What a field shows, escaped: what was typed in it when its form was
/// refused, else `stored`. Never used for a password: a refused form
/// shows an empty password field, so a password is not sent back in a
/// page that a proxy or the browser's cache might keep.
fn typed(refused: Option<Refused<'_>>, field: &str, stored: &str) -> String {
    let value = refused
        .and_then(|r| r.form.get(field))
        .and_then(|v| v.as_str())
        .unwrap_or(stored);
    esc(value)
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
            // Browsers ask for an icon with every first visit; a 404 there
            // is noise in their console.
            "/favicon.svg" | "/favicon.ico" => Reply::svg(FAVICON.to_owned()),
            "/" => home(state, session.as_ref()),
            "/setup" => login::setup_page(state, None),
            "/login" => login::login_page(None),
            "/enrol" => match &session {
                Some(s) => login::enrol_page(state, s, None),
                None => Reply::redirect("/login"),
            },
            _ => match session.filter(|s| s.totp_enabled) {
                Some(s) => logged_in_page(state, &s, path, request.url()),
                None if is_known(path) => Reply::redirect("/"),
                None => not_found(None),
            },
        };
    }
    let form = match http::read_form(request) {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    match path {
        "/setup" => {
            let reply = auth::setup(state, &form, peer);
            if reply.is_success() {
                reply.into_redirect("/enrol")
            } else {
                login::setup_page(state, Some(Refused::new(&reply.error_message(), &form)))
            }
        }
        "/login" => {
            let reply = auth::login(state, &form, peer);
            if reply.is_success() {
                reply.into_redirect("/")
            } else {
                login::login_page(Some(Refused::new(&reply.error_message(), &form)))
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
            form_action(state, &s, path, &form, peer)
        }
    }
}

/// Whether a path names a page behind the login (to send a visitor without
/// a session to the login instead of a 404).
fn is_known(path: &str) -> bool {
    MENU.iter().any(|(p, _)| *p == path)
        || path == "/welcome"
        || path.starts_with("/domains/")
        || path.starts_with("/accounts/")
        || path.starts_with("/queue/")
        || path.starts_with("/log/")
}

fn not_found(s: Option<&Session>) -> Reply {
    page(
        404,
        "Not found",
        s,
        "<section><p>No such page.</p></section>",
    )
}

/// A page for an administrator who is logged in and enrolled; `url` has
/// the query string of the search pages.
fn logged_in_page(state: &State, s: &Session, path: &str, url: &str) -> Reply {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["domains"] => domains::list(state, s, 200, None),
        ["domains", name] => domains::dns(state, s, name),
        ["accounts"] => accounts::list(state, s, 200, None),
        ["welcome"] => welcome::next_step(state, s, 200, None),
        ["settings"] => settings::show(state, s, 200, "", None),
        ["accounts", addr, "setup"] => clientsetup::show(state, s, addr),
        ["domains", name, "check"] => dnscheck::checked(state, s, name),
        ["accounts", address] => accounts::detail(state, s, address),
        ["aliases"] => aliases::list(state, s, 200, None),
        ["queue"] => queue::list(state, s, 200, None),
        ["queue", id, "delete"] => queue::confirm_delete(state, s, id),
        ["log"] => maillog::search(state, s, &crate::logsearch::query(url)),
        ["log", "trace"] => maillog::explain(state, s, &crate::logsearch::query(url)),
        ["security"] => security::show(state, s, 200, None),
        ["backup"] => backup::show(state, s, 200, None),
        _ => not_found(Some(s)),
    }
}

fn csrf_ok(session: &Session, form: &Body) -> bool {
    form.get("csrf_token")
        .and_then(|v| v.as_str())
        .is_some_and(|t| http::same(t, &session.csrf))
}

/// A form that changes something, from a session whose CSRF token matched;
/// `peer` for the forms that ask for a password again.
fn form_action(state: &State, s: &Session, path: &str, form: &Body, peer: SocketAddr) -> Reply {
    match path {
        "/logout" => auth::logout(state, s).into_redirect("/login"),
        "/enrol" => {
            let reply = auth::confirm_totp(state, form, s);
            if reply.is_success() {
                let codes: Vec<String> = reply
                    .json_value()
                    .and_then(|v| v["recovery_codes"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect();
                let mut enrolled = s.clone();
                enrolled.totp_enabled = true;
                welcome::recovery_codes(&enrolled, &codes, "/welcome")
            } else {
                login::enrol_page(state, s, Some(&reply.error_message()))
            }
        }
        _ if !s.totp_enabled => Reply::redirect("/enrol"),
        "/domains" => domains::add(state, s, form),
        p if p.starts_with("/domains/") && p.ends_with("/remove") => {
            let name = &p["/domains/".len()..p.len() - "/remove".len()];
            domains::remove(state, s, name, form)
        }
        "/accounts" => accounts::add(state, s, form),
        "/welcome/domain" => welcome::add_domain(state, s, form),
        "/welcome/account" => welcome::add_account(state, s, form),
        "/welcome/key" => welcome::key_written(state, s, form),
        _ if path.starts_with("/settings/") => {
            let action: Vec<&str> = path["/settings/".len()..].split('/').collect();
            settings::act(state, s, &action, form)
        }
        p if p.starts_with("/accounts/") => accounts::action(state, s, p, form),
        "/aliases" => aliases::add(state, s, form),
        "/aliases/remove" => aliases::remove(state, s, form),
        "/security/unban" => security::unban(state, s, form),
        p if p.starts_with("/backup/") => backup::act(state, s, &p["/backup/".len()..], form, peer),
        p if p.starts_with("/queue/") => queue::action(state, s, p),
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
        // The wizard is not finished before there is a domain.
        Some(_) if matches!(state.ctx.store.domains(), Ok(d) if d.is_empty()) => {
            Reply::redirect("/welcome")
        }
        Some(s) => dashboard::show(state, s),
    }
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
