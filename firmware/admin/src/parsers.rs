//! What reads request bytes on the admin page, as plain functions for the
//! fuzz targets (`fuzz/`): form and query strings, cookies, JSON bodies,
//! routes, the `Origin` check, path segments and autodiscover requests. The
//! request handlers call the same code.

use std::time::Duration;

use crate::http;
use crate::session::{Sessions, COOKIE};

/// Fields of a form body or query string, as the handlers see them.
pub type Fields = http::Body;

/// Largest request body read (form or JSON).
pub const MAX_BODY: u64 = http::MAX_BODY;

/// An `application/x-www-form-urlencoded` body's fields.
pub fn form(body: &[u8]) -> Fields {
    http::parse_form(body)
}

/// A request URL's query string's fields.
pub fn query(url: &str) -> Fields {
    crate::logsearch::query(url)
}

/// A JSON body's fields, or the refusal's status and message.
pub fn json(body: &[u8]) -> Result<Fields, (u16, String)> {
    http::parse_json(body).map_err(|r| (r.status, r.error_message()))
}

/// The value of cookie `name` in the values of `Cookie` headers.
pub fn cookie<'r>(headers: &[&'r str], name: &str) -> Option<&'r str> {
    http::cookie_in(headers.iter().copied(), name)
}

/// Logs in once in a fresh session store, then looks a session up by the
/// `Cookie` header values given, with the login's own cookie after them
/// when `with_own`. Returns the login's token and the token of the session
/// found.
pub fn session_from_cookies(headers: &[&str], with_own: bool) -> (String, Option<String>) {
    let sessions = Sessions::in_memory(Duration::from_secs(60));
    let login = sessions.create("admin", true);
    let set_cookie = Sessions::cookie(&login);
    // `name=value` before the attributes.
    let own = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let mut all: Vec<&str> = headers.to_vec();
    if with_own {
        all.push(&own);
    }
    let found = http::cookie_in(all.into_iter(), COOKIE)
        .and_then(|token| sessions.find(token))
        .map(|s| s.token);
    (login.token, found)
}

/// The API route of a method and path: `Ok` when one answers, else the
/// status (404, 405).
pub fn route(method: &str, path: &str) -> Result<(), u16> {
    let method: tiny_http::Method = method.parse().map_err(|_| 405u16)?;
    crate::routes::route(&method, path)
        .map(|_| ())
        .map_err(|r| r.status)
}

/// Whether a POST's `Origin` names the `Host` it went to.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    crate::routes::same_origin(origin, host)
}

/// `%XX` decoded in a path segment.
pub fn percent_decode(text: &str) -> String {
    crate::clientsetup::percent_decode(text)
}

/// An address encoded for a path segment.
pub fn percent_encode(text: &str) -> String {
    crate::clientsetup::percent_encode(text)
}

/// An Outlook autodiscover request's address and response schema, or why
/// it is refused.
pub fn autodiscover(body: &[u8]) -> Result<(String, Option<String>), String> {
    crate::clientsetup::autodiscover::parse(body).map(|r| (r.email, r.schema))
}
