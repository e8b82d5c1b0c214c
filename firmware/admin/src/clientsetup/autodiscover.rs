//! Outlook's plain-old-XML autodiscover (MS-OXDSCLI): the client POSTs
//! `<Autodiscover><Request><EMailAddress>` to
//! `https://autodiscover.DOMAIN/autodiscover/autodiscover.xml` and gets the
//! IMAP and SMTP settings in the `outlook/responseschema/2006a` schema.

use std::borrow::Cow;
use std::io::Read;

use quick_xml::events::Event;
use quick_xml::Reader;
use tiny_http::Request;

use super::{served_domain, xml_escape, Endpoint, Security, Servers};
use crate::http::Reply;
use crate::State;

/// Largest request read; a real one is a few hundred bytes.
const MAX_REQUEST: u64 = 16 * 1024;

/// MS-OXDSCLI §2.2.4: the response schema Outlook asks for.
const OUTLOOK_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a";
/// MS-OXDSCLI §2.2.4: the outer element's namespace in every response.
const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006";

/// What the client asked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AutodiscoverRequest {
    pub(crate) email: String,
    pub(crate) schema: Option<String>,
}

/// Answers a POSTed autodiscover request.
pub fn reply(state: &State, request: &mut Request) -> Reply {
    let mut body = Vec::new();
    if let Err(e) = request
        .as_reader()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut body)
    {
        return Reply::error(400, format!("cannot read the request body: {e}"));
    }
    if body.len() as u64 > MAX_REQUEST {
        return Reply::error(413, "autodiscover request too large");
    }
    let asked = match parse(&body) {
        Ok(r) => r,
        Err(message) => {
            return Reply::error(400, format!("not an autodiscover request: {message}"))
        }
    };
    if let Some(schema) = asked.schema.as_deref().filter(|s| *s != OUTLOOK_SCHEMA) {
        return Reply::error(
            400,
            format!("only the Outlook response schema {OUTLOOK_SCHEMA} is offered, not {schema}"),
        );
    }
    if let Err(r) = served_domain(state, &asked.email) {
        return r;
    }
    Reply::typed(
        200,
        "application/xml; charset=utf-8",
        document(&asked.email, &Servers::of(state)).into_bytes(),
    )
}

/// Reads `EMailAddress` and `AcceptableResponseSchema` out of a request
/// (MS-OXDSCLI §2.2.3), whatever namespace prefixes it uses. The document
/// must be well-formed and its root `Autodiscover`.
pub(crate) fn parse(body: &[u8]) -> Result<AutodiscoverRequest, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut email: Option<String> = None;
    let mut schema: Option<String> = None;
    let mut seen_root = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("bad XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if path.is_empty() {
                    if seen_root || name != "Autodiscover" {
                        return Err(format!("the root element must be Autodiscover, not {name}"));
                    }
                    seen_root = true;
                }
                path.push(name);
            }
            Event::Empty(e) if path.is_empty() => {
                let name = e.local_name().as_ref().to_owned();
                return Err(format!("the root element {name} is empty"));
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => append(&path, &mut email, &mut schema, &t.xml10_content()),
            Event::CData(t) => append(&path, &mut email, &mut schema, &t.into_inner()),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => predefined(&r)
                        .ok_or_else(|| format!("unknown entity &{};", &*r))?
                        .to_string(),
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                append(&path, &mut email, &mut schema, &Cow::Owned(c));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() || !seen_root {
        return Err("the document ends before its root element is closed".into());
    }
    let email = email
        .map(|e| e.trim().to_owned())
        .filter(|e| e.contains('@'))
        .ok_or("no <EMailAddress> in <Request>")?;
    Ok(AutodiscoverRequest {
        email,
        schema: schema.map(|s| s.trim().to_owned()),
    })
}

/// The five entities XML predefines (XML 1.0 §4.6).
fn predefined(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

/// Adds text to the field the element path names.
fn append(path: &[String], email: &mut Option<String>, schema: &mut Option<String>, text: &str) {
    let target = match path {
        [_, r, f] if r == "Request" && f == "EMailAddress" => email,
        [_, r, f] if r == "Request" && f == "AcceptableResponseSchema" => schema,
        _ => return,
    };
    target.get_or_insert_with(String::new).push_str(text);
}

/// The response: one IMAP and one SMTP `Protocol`, each the preferred port
/// (implicit TLS where it listens). `SSL on` with `Encryption TLS` is
/// STARTTLS (MS-OXDSCLI §2.2.4.1.1.2.2.24 Encryption).
fn document(address: &str, servers: &Servers) -> String {
    let mut protocols = String::new();
    for (kind, endpoints) in [("IMAP", &servers.imap), ("SMTP", &servers.smtp)] {
        if let Some(e) = endpoints.first() {
            protocols.push_str(&protocol(kind, &servers.host, address, e));
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <Autodiscover xmlns=\"{RESPONSE_SCHEMA}\">\n\
         \x20 <Response xmlns=\"{OUTLOOK_SCHEMA}\">\n\
         \x20   <Account>\n\
         \x20     <AccountType>email</AccountType>\n\
         \x20     <Action>settings</Action>\n\
         {protocols}\
         \x20   </Account>\n\
         \x20 </Response>\n\
         </Autodiscover>\n"
    )
}

fn protocol(kind: &str, host: &str, address: &str, e: &Endpoint) -> String {
    let encryption = match e.security {
        Security::Tls => "SSL",
        Security::StartTls => "TLS",
    };
    format!(
        "      <Protocol>\n\
         \x20       <Type>{kind}</Type>\n\
         \x20       <Server>{host}</Server>\n\
         \x20       <Port>{port}</Port>\n\
         \x20       <DomainRequired>off</DomainRequired>\n\
         \x20       <LoginName>{login}</LoginName>\n\
         \x20       <SPA>off</SPA>\n\
         \x20       <SSL>on</SSL>\n\
         \x20       <Encryption>{encryption}</Encryption>\n\
         \x20       <AuthRequired>on</AuthRequired>\n\
         \x20     </Protocol>\n",
        host = xml_escape(host),
        port = e.port,
        login = xml_escape(address),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTLOOK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>anna@a.test</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>"#;

    #[test]
    fn parses_what_outlook_sends() {
        let r = parse(OUTLOOK.as_bytes()).unwrap();
        assert_eq!(r.email, "anna@a.test");
        assert_eq!(r.schema.as_deref(), Some(OUTLOOK_SCHEMA));
        let prefixed = "<a:Autodiscover xmlns:a=\"x\"><a:Request><a:EMailAddress>o&apos;b&#64;a.test</a:EMailAddress></a:Request></a:Autodiscover>";
        let r = parse(prefixed.as_bytes()).unwrap();
        assert_eq!(r.email, "o'b@a.test");
        assert_eq!(r.schema, None);
        let cdata = "<Autodiscover><Request><EMailAddress><![CDATA[x@a.test]]></EMailAddress></Request></Autodiscover>";
        assert_eq!(parse(cdata.as_bytes()).unwrap().email, "x@a.test");
    }

    #[test]
    fn refuses_what_is_not_a_request() {
        let cases = [
            ("", "root element"),
            ("not xml at all", "root element"),
            ("<Autodiscover><Request><EMailAddress>a@b</Request></Autodiscover>", "bad XML"),
            ("<Autodiscover><Request><EMailAddress>a@b</EMailAddress></Request>", "ends before"),
            ("<Other><Request><EMailAddress>a@b</EMailAddress></Request></Other>", "must be Autodiscover"),
            ("<Autodiscover><Request></Request></Autodiscover>", "no <EMailAddress>"),
            ("<Autodiscover><Request><EMailAddress>&foo;</EMailAddress></Request></Autodiscover>", "unknown entity"),
            ("<Autodiscover/>", "empty"),
            ("<Autodiscover></Autodiscover><Autodiscover></Autodiscover>", "must be Autodiscover"),
        ];
        for (body, expected) in cases {
            let e = parse(body.as_bytes()).unwrap_err();
            assert!(e.contains(expected), "{body:?}: {e}");
        }
        assert!(parse(b"\xff\xfe").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn response_names_imap_and_smtp() {
        let servers = Servers {
            host: "mail.a.test".into(),
            imap: vec![Endpoint {
                port: 993,
                security: Security::Tls,
            }],
            pop3: vec![Endpoint {
                port: 995,
                security: Security::Tls,
            }],
            smtp: vec![Endpoint {
                port: 587,
                security: Security::StartTls,
            }],
        };
        let xml = document("anna@a.test", &servers);
        assert!(xml.contains(
            "<Type>IMAP</Type>\n        <Server>mail.a.test</Server>\n        <Port>993</Port>"
        ));
        assert!(xml.contains("<Port>587</Port>"));
        assert!(xml.contains("<Encryption>TLS</Encryption>"));
        assert!(!xml.contains("POP3"));
        assert_eq!(xml.matches("<LoginName>anna@a.test</LoginName>").count(), 2);
    }
}
