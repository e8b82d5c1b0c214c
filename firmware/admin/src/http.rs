//! Replies and the small pieces of HTTP the page needs on top of tiny-http:
//! security headers on every response, cookies, JSON bodies with a size
//! limit.

use std::io::Read;

use tiny_http::{Header, Request, Response};

/// Largest request body read.
const MAX_BODY: u64 = 64 * 1024;

/// Headers on every response: no framing, no inline script, no sniffing,
/// no referrer, no caching of what an administrator sees.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

/// A response to send.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON body.
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: format!("{value}\n").into_bytes(),
            headers: Vec::new(),
        }
    }

    /// `{"error": message}`: a message for the person using the page.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, &serde_json::json!({ "error": message.into() }))
    }

    /// An HTML page.
    pub fn html(status: u16, body: String) -> Reply {
        Reply {
            status,
            content_type: "text/html; charset=utf-8",
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }

    /// An SVG image.
    pub fn svg(body: String) -> Reply {
        Reply {
            status: 200,
            content_type: "image/svg+xml",
            body: body.into_bytes(),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// Sends the reply with the security headers.
    pub fn send(self, request: Request) {
        let mut response = Response::from_data(self.body).with_status_code(self.status);
        let fixed = SECURITY_HEADERS.iter().map(|(n, v)| (*n, v.to_string()));
        let all = std::iter::once(("Content-Type", self.content_type.to_string()))
            .chain(fixed)
            .chain(self.headers);
        for (name, value) in all {
            // Values are made here from ASCII constants, hex tokens and
            // numbers; a header that still does not parse is left out.
            match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                Ok(h) => response.add_header(h),
                Err(()) => tracing::error!(name, "header value not sendable"),
            }
        }
        if let Err(e) = request.respond(response) {
            tracing::debug!(error = %e, "admin: client went away");
        }
    }
}

/// The value of a request header (the first, when repeated).
pub fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// The value of a cookie sent with the request.
pub fn cookie<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case("Cookie"))
        .flat_map(|h| h.value.as_str().split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A request body's fields (JSON object, or a form's fields as strings).
pub type Body = serde_json::Map<String, serde_json::Value>;

/// Reads a JSON object body. Only `application/json` is taken: a form on
/// another site cannot send that without the browser asking first (CORS),
/// which this server never allows.
pub fn read_json(
    request: &mut Request,
) -> Result<serde_json::Map<String, serde_json::Value>, Reply> {
    let json = header(request, "Content-Type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Reply::error(
            415,
            "send a JSON body (Content-Type: application/json)",
        ));
    }
    let mut body = Vec::new();
    let reader = request.as_reader();
    if let Err(e) = reader.take(MAX_BODY + 1).read_to_end(&mut body) {
        return Err(Reply::error(
            400,
            format!("cannot read the request body: {e}"),
        ));
    }
    if body.len() as u64 > MAX_BODY {
        return Err(Reply::error(413, "request body too large"));
    }
    match serde_json::from_slice(&body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Reply::error(400, "the body must be a JSON object")),
        Err(e) => Err(Reply::error(
            400,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// A string field of a JSON body, or a 400 naming it.
pub fn field<'a>(
    body: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<&'a str, Reply> {
    match body.get(name) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(Reply::error(400, format!("`{name}` must be a string"))),
        None => Err(Reply::error(400, format!("`{name}` is missing"))),
    }
}

/// Equality in time independent of where the two differ.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
