//! Client setup: what a mail client needs to find this box's IMAP, POP3 and
//! SMTP services, in the forms clients ask for it.
//!
//! Layout:
//! - this file: [`Servers`] (host name, ports and security of each service,
//!   from where the services actually listen), the public paths and the
//!   account setup handlers of the API;
//! - `autoconfig`: Thunderbird's `config-v1.1.xml`;
//! - `autodiscover`: Outlook's POX autodiscover (MS-OXDSCLI);
//! - `mobileconfig`: the Apple configuration profile of an account.
//!
//! Autoconfig and autodiscover are fetched by a client before any login,
//! from wherever the person setting it up happens to be (a phone on mobile
//! data, a laptop at home), so they answer every source address, not only
//! the LAN. They say nothing DNS does not already publish (the MX and SRV
//! records name the same host and ports), and autodiscover answers alike
//! for every address of a served domain, so that it cannot be used to find
//! out which accounts exist. Everything else of the admin page stays
//! LAN-only.

mod autoconfig;
pub(crate) mod autodiscover;
mod mobileconfig;

use std::net::SocketAddr;

use serde_json::json;
use tiny_http::{Method, Request};

use crate::http::{self, escape as xml_escape, Reply};
use crate::State;

pub use mobileconfig::mobileconfig;

/// How a connection is secured (RFC 8314).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (RFC 8314 §3: preferred): 993, 995, 465.
    Tls,
    /// Plain text upgraded with STARTTLS/STLS before login: 143, 110, 587.
    StartTls,
}

impl Security {
    /// The word for people and the JSON API.
    pub fn name(self) -> &'static str {
        match self {
            Security::Tls => "TLS",
            Security::StartTls => "STARTTLS",
        }
    }
}

/// One port of a service and how it is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// TCP port.
    pub port: u16,
    /// Implicit TLS or STARTTLS.
    pub security: Security,
}

/// Where clients find the mail services: one host name, and for each
/// protocol its ports, implicit TLS first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers {
    /// The mail host name (what the MX record names; the certificate's name).
    pub host: String,
    /// IMAP ports.
    pub imap: Vec<Endpoint>,
    /// POP3 ports.
    pub pop3: Vec<Endpoint>,
    /// Submission ports (465, 587); the MX port 25 is not for clients.
    pub smtp: Vec<Endpoint>,
}

impl Servers {
    /// The services of a `[listen]` whose ports are the bound ones. A
    /// service listening on several addresses with one port is named once.
    pub fn new(host: &str, listen: &pochta_config::Listen) -> Servers {
        fn endpoints(tls: &[SocketAddr], starttls: &[SocketAddr]) -> Vec<Endpoint> {
            let mut out: Vec<Endpoint> = Vec::new();
            let all = tls
                .iter()
                .map(|a| (a, Security::Tls))
                .chain(starttls.iter().map(|a| (a, Security::StartTls)));
            for (addr, security) in all {
                let e = Endpoint {
                    port: addr.port(),
                    security,
                };
                if !out.contains(&e) {
                    out.push(e);
                }
            }
            out
        }
        Servers {
            host: host.to_owned(),
            imap: endpoints(&listen.imaps, &listen.imap),
            pop3: endpoints(&listen.pop3s, &listen.pop3),
            smtp: endpoints(&listen.submissions, &listen.submission),
        }
    }

    fn of(state: &State) -> Servers {
        Servers::new(&state.ctx.hostname, &state.ctx.listen)
    }
}

/// The domain of an address or a bare domain, lower case without a final
/// dot, when this box serves it.
fn served_domain(state: &State, address_or_domain: &str) -> Result<String, Reply> {
    let text = address_or_domain.trim();
    let domain = text
        .rsplit_once('@')
        .map_or(text, |(_, d)| d)
        .trim_end_matches('.')
        .to_lowercase();
    match state.ctx.store.domains() {
        Ok(list) if !domain.is_empty() && list.contains(&domain) => Ok(domain),
        Ok(_) => Err(Reply::error(
            404,
            format!("this server does not handle mail for {domain:?}"),
        )),
        Err(e) => {
            tracing::error!(error = %e, "client setup: store");
            Err(Reply::error(500, "the store could not answer; try again"))
        }
    }
}

/// The paths any source address may ask, before the LAN-only check: `None`
/// for every other path.
pub fn public(state: &State, request: &mut Request, path: &str) -> Option<Reply> {
    let lower = path.to_ascii_lowercase();
    let reply = match lower.as_str() {
        // Thunderbird's well-known path on the domain itself, and the
        // `autoconfig.<domain>` host (a CNAME to this box) form.
        "/.well-known/autoconfig/mail/config-v1.1.xml" | "/mail/config-v1.1.xml" => {
            match request.method() {
                Method::Get | Method::Head => autoconfig::reply(state, request),
                _ => not_allowed("GET"),
            }
        }
        // Outlook asks https://DOMAIN/autodiscover/autodiscover.xml and
        // https://autodiscover.DOMAIN/... with either capitalisation.
        "/autodiscover/autodiscover.xml" => match request.method() {
            Method::Post => autodiscover::reply(state, request),
            _ => not_allowed("POST"),
        },
        _ => return None,
    };
    Some(reply)
}

fn not_allowed(allow: &str) -> Reply {
    Reply::error(405, "method not allowed").with_header("Allow", allow.to_owned())
}

/// The account an API path names (percent-decoded), when it exists.
fn account(state: &State, raw: &str) -> Result<String, Reply> {
    let address = percent_decode(raw);
    let normalized = pochta_store::check_address(&address).map_err(crate::directory::reply_for)?;
    match state.ctx.store.account(&normalized) {
        Ok(a) => Ok(a.address),
        Err(pochta_store::StoreError::NotFound(_)) => {
            Err(Reply::error(404, format!("no such account {normalized}")))
        }
        Err(e) => {
            tracing::error!(error = %e, "client setup: store");
            Err(Reply::error(500, "the store could not answer; try again"))
        }
    }
}

/// `GET /api/accounts/ADDR/setup`: what to type into a mail client by hand.
pub fn setup(state: &State, raw_address: &str) -> Reply {
    let address = match account(state, raw_address) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let servers = Servers::of(state);
    let list = |endpoints: &[Endpoint]| -> Vec<serde_json::Value> {
        endpoints
            .iter()
            .map(|e| json!({ "port": e.port, "security": e.security.name() }))
            .collect()
    };
    Reply::json(
        200,
        &json!({
            "address": address,
            "username": address,
            "host": servers.host,
            "imap": list(&servers.imap),
            "pop3": list(&servers.pop3),
            "smtp": list(&servers.smtp),
            "authentication": "normal password",
            "mobileconfig": format!("/api/accounts/{}/mobileconfig", percent_encode(&address)),
        }),
    )
}

/// Decodes `%XX` in a path segment (`+` stays a plus: addresses have them).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes an address for a path segment: everything but unreserved
/// characters (RFC 3986 §2.3) and `@` as `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The query parameter `name` of a request URL.
fn query_param(request: &Request, name: &str) -> Option<String> {
    let query = request.url().split_once('?')?.1;
    http::parse_form(query.as_bytes())
        .get(name)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(pairs: &[(&str, &[&str])]) -> pochta_config::Listen {
        let mut l = pochta_config::Listen {
            smtp: vec![],
            submission: vec![],
            submissions: vec![],
            imap: vec![],
            imaps: vec![],
            pop3: vec![],
            pop3s: vec![],
        };
        for (key, addrs) in pairs {
            let v: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
            match *key {
                "smtp" => l.smtp = v,
                "submission" => l.submission = v,
                "submissions" => l.submissions = v,
                "imap" => l.imap = v,
                "imaps" => l.imaps = v,
                "pop3" => l.pop3 = v,
                _ => l.pop3s = v,
            }
        }
        l
    }

    #[test]
    fn servers_from_listeners() {
        let s = Servers::new(
            "mail.a.test",
            &listen(&[
                ("smtp", &["0.0.0.0:25"]),
                ("submission", &["0.0.0.0:587", "[::]:587"]),
                ("submissions", &["0.0.0.0:465"]),
                ("imap", &["0.0.0.0:143"]),
                ("imaps", &["0.0.0.0:993"]),
            ]),
        );
        let e = |port, security| Endpoint { port, security };
        assert_eq!(s.imap, [e(993, Security::Tls), e(143, Security::StartTls)]);
        assert_eq!(s.smtp, [e(465, Security::Tls), e(587, Security::StartTls)]);
        assert!(s.pop3.is_empty(), "no POP3 listener, no POP3 server");
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_decode("anna%40a.test"), "anna@a.test");
        assert_eq!(percent_decode("a+b@a.test"), "a+b@a.test");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_encode("a+b@a.test"), "a%2Bb@a.test");
        assert_eq!(percent_encode("é@x"), "%C3%A9@x");
        assert_eq!(
            percent_decode(&percent_encode("o'b \"x\"@a.test")),
            "o'b \"x\"@a.test"
        );
    }
}
