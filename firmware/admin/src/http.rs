//! Replies and the small pieces of HTTP the page needs on top of tiny-http:
//! security headers on every response, cookies, JSON bodies with a size
//! limit.

use std::io::Read;

use tiny_http::{Header, Request, Response};

/// Largest request body read (the front refuses larger ones before they
/// reach a handler).
pub(crate) const MAX_BODY: u64 = 64 * 1024;

/// Over HTTPS: browsers that trust the certificate keep to HTTPS for a
/// year (RFC 6797). A browser ignores it while the certificate is the box's
/// own self-signed one (RFC 6797 §8.1), so it never locks anyone out. Not
/// `includeSubDomains`: the box's name may sit under the company's domain.
const HSTS: (&str, &str) = ("Strict-Transport-Security", "max-age=31536000");

/// Headers on every response: no framing, no inline script, no sniffing,
/// no referrer to other sites, no caching of what an administrator sees.
/// `same-origin` rather than `no-referrer`: under `no-referrer` a browser
/// sends `Origin: null` with a form's POST, and the same-origin check
/// (routes.rs) must then refuse every form.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; frame-ancestors 'none'",
    ),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
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

    /// The style sheet.
    pub fn css(body: &'static str) -> Reply {
        Reply {
            status: 200,
            content_type: "text/css; charset=utf-8",
            body: body.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }

    /// 303 See Other to a path of this site.
    pub fn redirect(location: &str) -> Reply {
        Reply::html(303, String::new()).with_header("Location", location.to_owned())
    }

    /// This reply turned into a redirect, keeping its headers (a new
    /// session's cookie).
    pub fn into_redirect(self, location: &str) -> Reply {
        let mut r = Reply::redirect(location);
        r.headers.extend(self.headers);
        r
    }

    /// The body as JSON, when the reply succeeded.
    pub fn json_value(&self) -> Option<serde_json::Value> {
        if !self.is_success() {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `error` of a JSON error reply, for a page to show.
    pub fn error_message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("the request failed ({})", self.status))
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    /// A body of any other type (the client setup files).
    pub fn typed(status: u16, content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    /// Sends the reply with the security headers. Over HTTPS, cookies get
    /// `Secure` (a browser then never sends them over plain HTTP).
    pub fn send(self, request: Request, https: bool) {
        let mut response = Response::from_data(self.body).with_status_code(self.status);
        let fixed = SECURITY_HEADERS
            .iter()
            .chain(https.then_some(&HSTS))
            .map(|(n, v)| (*n, v.to_string()));
        let all = std::iter::once(("Content-Type", self.content_type.to_string()))
            .chain(fixed)
            .chain(self.headers);
        for (name, mut value) in all {
            if https && name == "Set-Cookie" {
                value.push_str("; Secure");
            }
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

/// Escapes text for HTML and XML content and quoted attribute values
/// (`&#39;` is valid in both).
pub fn escape(text: &str) -> String {
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
    let headers = request
        .headers()
        .iter()
        .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case("Cookie"))
        .map(|h| h.value.as_str());
    cookie_in(headers, name)
}

/// The value of cookie `name` in the values of `Cookie` headers.
pub fn cookie_in<'r>(headers: impl Iterator<Item = &'r str>, name: &str) -> Option<&'r str> {
    headers
        .flat_map(|value| value.split(';'))
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
    parse_json(&body)
}

/// A JSON body's fields; the body must be one object.
pub fn parse_json(body: &[u8]) -> Result<Body, Reply> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Reply::error(400, "the body must be a JSON object")),
        Err(e) => Err(Reply::error(
            400,
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// Reads an HTML form (`application/x-www-form-urlencoded`) as string
/// fields.
pub fn read_form(request: &mut Request) -> Result<Body, Reply> {
    let form = header(request, "Content-Type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| {
            ct.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(Reply::error(
            415,
            "send the form as application/x-www-form-urlencoded",
        ));
    }
    let mut body = Vec::new();
    if let Err(e) = request
        .as_reader()
        .take(MAX_BODY + 1)
        .read_to_end(&mut body)
    {
        return Err(Reply::error(
            400,
            format!("cannot read the request body: {e}"),
        ));
    }
    if body.len() as u64 > MAX_BODY {
        return Err(Reply::error(413, "request body too large"));
    }
    Ok(parse_form(&body))
}

/// Form fields (WHATWG URL "application/x-www-form-urlencoded parsing"):
/// `+` is a space, `%XX` a byte, invalid UTF-8 replaced; the first of a
/// repeated name wins.
pub fn parse_form(body: &[u8]) -> Body {
    let mut fields = Body::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, |&b| b == b'=');
        let name = decode(parts.next().unwrap_or_default());
        let value = decode(parts.next().unwrap_or_default());
        fields
            .entry(name)
            .or_insert(serde_json::Value::String(value));
    }
    fields
}

fn decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let f = parse_form(b"user=root&password=a+b%20c%26d&empty=&x=%zz&user=second&%E2%9C%93=1");
        assert_eq!(f["user"], "root");
        assert_eq!(f["password"], "a b c&d");
        assert_eq!(f["empty"], "");
        assert_eq!(f["x"], "%zz");
        assert_eq!(f["\u{2713}"], "1");
        assert!(parse_form(b"").is_empty());
        assert_eq!(parse_form(b"a=%")["a"], "%");
        assert_eq!(parse_form(b"a=%4")["a"], "%4");
    }
}
