//! Thunderbird autoconfig: `config-v1.1.xml`, the format Thunderbird (and
//! K-9/Thunderbird for Android, Evolution, KMail) reads from
//! `https://autoconfig.DOMAIN/mail/config-v1.1.xml?emailaddress=...` and
//! `https://DOMAIN/.well-known/autoconfig/mail/config-v1.1.xml`
//! (<https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat>).

use tiny_http::Request;

use super::{query_param, served_domain, xml_escape, Endpoint, Security, Servers};
use crate::http::{self, Reply};
use crate::State;

/// Answers a request for `config-v1.1.xml`. The domain comes from
/// `emailaddress`, or else from an `autoconfig.DOMAIN` host name.
pub fn reply(state: &State, request: &Request) -> Reply {
    let asked = query_param(request, "emailaddress").or_else(|| {
        http::header(request, "Host")
            .map(|h| h.rsplit_once(':').map_or(h, |(name, _)| name))
            .and_then(|h| {
                h.to_ascii_lowercase()
                    .strip_prefix("autoconfig.")
                    .map(str::to_owned)
            })
    });
    let Some(asked) = asked else {
        return Reply::error(
            400,
            "say which address to configure: ?emailaddress=anna@example.com",
        );
    };
    let domain = match served_domain(state, &asked) {
        Ok(d) => d,
        Err(r) => return r,
    };
    Reply::typed(
        200,
        "application/xml; charset=utf-8",
        document(&domain, &Servers::of(state)).into_bytes(),
    )
}

/// The `clientConfig` document. Thunderbird takes the first server of each
/// kind as the one to use: IMAP before POP3, implicit TLS before STARTTLS.
pub fn document(domain: &str, servers: &Servers) -> String {
    let d = xml_escape(domain);
    let host = xml_escape(&servers.host);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <clientConfig version=\"1.1\">\n\
         \x20 <emailProvider id=\"{d}\">\n\
         \x20   <domain>{d}</domain>\n\
         \x20   <displayName>Mail for {d}</displayName>\n\
         \x20   <displayShortName>{d}</displayShortName>\n"
    );
    let kinds = [
        ("incomingServer", "imap", &servers.imap),
        ("incomingServer", "pop3", &servers.pop3),
        ("outgoingServer", "smtp", &servers.smtp),
    ];
    for (element, kind, endpoints) in kinds {
        for e in endpoints.iter() {
            out.push_str(&server(element, kind, &host, e));
        }
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

fn server(element: &str, kind: &str, host: &str, e: &Endpoint) -> String {
    let socket_type = match e.security {
        Security::Tls => "SSL",
        Security::StartTls => "STARTTLS",
    };
    // `password-cleartext` is the plain password inside TLS; the servers
    // refuse it before TLS is up.
    format!(
        "    <{element} type=\"{kind}\">\n\
         \x20     <hostname>{host}</hostname>\n\
         \x20     <port>{port}</port>\n\
         \x20     <socketType>{socket_type}</socketType>\n\
         \x20     <authentication>password-cleartext</authentication>\n\
         \x20     <username>%EMAILADDRESS%</username>\n\
         \x20   </{element}>\n",
        port = e.port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_each_port() {
        let servers = Servers {
            host: "mail.a.test".into(),
            imap: vec![
                Endpoint {
                    port: 993,
                    security: Security::Tls,
                },
                Endpoint {
                    port: 143,
                    security: Security::StartTls,
                },
            ],
            pop3: vec![],
            smtp: vec![Endpoint {
                port: 587,
                security: Security::StartTls,
            }],
        };
        let xml = document("a.test", &servers);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<clientConfig"));
        assert_eq!(xml.matches("<incomingServer type=\"imap\">").count(), 2);
        assert!(!xml.contains("pop3"));
        assert!(xml.contains("<outgoingServer type=\"smtp\">\n      <hostname>mail.a.test</hostname>\n      <port>587</port>\n      <socketType>STARTTLS</socketType>"));
        let first = xml.find("<port>993</port>").unwrap();
        assert!(first < xml.find("<port>143</port>").unwrap());
        assert_eq!(xml.matches("%EMAILADDRESS%").count(), 3);
    }
}
