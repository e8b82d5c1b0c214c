//! CAPABILITY, ID, STARTTLS (RFC 9051 §6.2.1), LOGIN (§6.2.3) and
//! AUTHENTICATE PLAIN with SASL-IR (§6.2.2, RFC 4959). No password is
//! accepted before TLS (RFC 8314): LOGINDISABLED is advertised instead.

use imap_codec::imap_types::auth::AuthenticateData;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::AuthenticateDataCodec;
use pochta_auth::Login as Verdict;

use crate::session::{Flow, Login, Session, State, Wait};

/// What this server implements; nothing is advertised that is not.
pub(crate) fn capabilities(s: &Session) -> String {
    let mut caps = vec![
        "IMAP4rev1",
        "IMAP4rev2",
        "LITERAL+",
        "SASL-IR",
        "ID",
        "NAMESPACE",
    ];
    if s.is_tls() {
        if matches!(s.state, State::NotAuthenticated) {
            caps.push("AUTH=PLAIN");
        } else {
            caps.extend([
                "IDLE",
                "UIDPLUS",
                "MOVE",
                "SPECIAL-USE",
                "UNSELECT",
                "CHILDREN",
                "ENABLE",
                "CONDSTORE",
                "QRESYNC",
                "QUOTA",
                "QUOTA=RES-STORAGE",
                "ESEARCH",
                "SEARCHRES",
                "LIST-EXTENDED",
                "LIST-STATUS",
                "COMPRESS=DEFLATE",
                "BINARY",
                "STATUS=SIZE",
                "SORT",
                "SORT=DISPLAY",
                "THREAD=ORDEREDSUBJECT",
                "THREAD=REFERENCES",
            ]);
        }
    } else {
        caps.extend(["STARTTLS", "LOGINDISABLED"]);
    }
    let mut caps: Vec<String> = caps.into_iter().map(String::from).collect();
    if !matches!(s.state, State::NotAuthenticated) {
        // RFC 7889: the largest message APPEND takes.
        caps.push(format!(
            "APPENDLIMIT={}",
            s.ctx.limits.max_message_bytes.min(u64::from(u32::MAX))
        ));
    }
    caps.join(" ")
}

pub(crate) fn capability(s: &mut Session, tag: &str) -> Flow {
    let caps = capabilities(s);
    s.conn.push(&format!("* CAPABILITY {caps}\r\n"));
    s.ok(tag, None, "CAPABILITY completed");
    Flow::Continue
}

/// RFC 2971: the server says who it is; the client's fields are ignored.
pub(crate) fn id(s: &mut Session, tag: &str) -> Flow {
    s.conn.push(&format!(
        "* ID (\"name\" \"Pochta\" \"version\" \"{}\")\r\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.ok(tag, None, "ID completed");
    Flow::Continue
}

/// ENABLE (RFC 5161): CONDSTORE and QRESYNC (RFC 7162 §3.2.3; QRESYNC
/// implies CONDSTORE). Others are ignored, as the RFC requires.
pub(crate) fn enable(s: &mut Session, tag: &str, caps: &[CapabilityEnable<'_>]) -> Flow {
    let mut enabled = Vec::new();
    for cap in caps {
        let name = cap.to_string().to_ascii_uppercase();
        match name.as_str() {
            "CONDSTORE" if !s.condstore => {
                s.condstore = true;
                enabled.push("CONDSTORE");
            }
            // RFC 9051 Appendix A: the client speaks IMAP4rev2 from here on.
            "IMAP4REV2" if !s.rev2 => {
                s.rev2 = true;
                enabled.push("IMAP4rev2");
            }
            "QRESYNC" if !s.qresync => {
                s.qresync = true;
                s.condstore = true;
                enabled.push("QRESYNC");
            }
            _ => {}
        }
    }
    let line = if enabled.is_empty() {
        "* ENABLED\r\n".to_string()
    } else {
        format!("* ENABLED {}\r\n", enabled.join(" "))
    };
    s.conn.push(&line);
    s.ok(tag, None, "ENABLE completed");
    Flow::Continue
}

pub(crate) async fn starttls(s: &mut Session, tag: &str) -> Flow {
    if s.is_tls() {
        s.bad(tag, "TLS is already active");
        return Flow::Continue;
    }
    if !matches!(s.state, State::NotAuthenticated) {
        s.bad(tag, "STARTTLS only before login");
        return Flow::Continue;
    }
    s.ok(tag, None, "Begin TLS negotiation now");
    let acceptor = s.ctx.tls.clone();
    if let Err(e) = s.conn.start_tls(&acceptor).await {
        pochta_net::throttle::tls_failed(s.service.name(), s.peer, &e);
        return Flow::Close;
    }
    // RFC 3207-style injection defence: bytes sent before the handshake are
    // gone from `conn`; drop anything the fragmentizer kept too.
    s.frag = crate::session::new_fragmentizer(&s.ctx.limits);
    Flow::Continue
}

pub(crate) async fn login(s: &mut Session, tag: &str, user: &[u8], password: &[u8]) -> Flow {
    if !s.is_tls() {
        s.no(
            tag,
            Some("PRIVACYREQUIRED"),
            "Use STARTTLS first: no passwords in the clear",
        );
        return Flow::Continue;
    }
    let user = String::from_utf8_lossy(user).into_owned();
    let password = String::from_utf8_lossy(password).into_owned();
    check(s, tag, user, password).await
}

pub(crate) async fn authenticate(
    s: &mut Session,
    tag: &str,
    mechanism: &str,
    initial: Option<Vec<u8>>,
) -> Flow {
    if !mechanism.eq_ignore_ascii_case("PLAIN") {
        s.no(tag, Some("CANNOT"), "Only AUTHENTICATE PLAIN is supported");
        return Flow::Continue;
    }
    if !s.is_tls() {
        s.no(
            tag,
            Some("PRIVACYREQUIRED"),
            "Use STARTTLS first: no passwords in the clear",
        );
        return Flow::Continue;
    }
    let response: Vec<u8> = match initial {
        Some(r) => r,
        None => {
            s.conn.push("+ \r\n");
            match s
                .next_message(std::time::Duration::from_secs(
                    s.ctx.limits.command_timeout_secs,
                ))
                .await
            {
                Wait::Message => {}
                Wait::Closed | Wait::Shutdown => return Flow::Close,
                Wait::Timeout => {
                    s.conn
                        .push("* BYE Timeout waiting for authentication data\r\n");
                    return Flow::Close;
                }
                Wait::TooLong => {
                    s.conn.push(crate::session::TOO_LONG_BEFORE_LOGIN);
                    return Flow::Close;
                }
            }
            match s.frag.decode_message(&AuthenticateDataCodec::default()) {
                Ok(AuthenticateData::Continue(data)) => data.declassify().to_vec(),
                Ok(AuthenticateData::Cancel) => {
                    s.bad(tag, "Authentication cancelled");
                    return Flow::Continue;
                }
                Err(_) => {
                    s.bad(tag, "Cannot decode authentication data");
                    return Flow::Continue;
                }
            }
        }
    };
    // imap-codec has already base64-decoded the response.
    let parts: Vec<&[u8]> = response.split(|&b| b == 0).collect();
    let [authzid, user, password] = parts.as_slice() else {
        s.bad(tag, "Malformed PLAIN response");
        return Flow::Continue;
    };
    let (authzid, user, password) = (
        String::from_utf8_lossy(authzid).into_owned(),
        String::from_utf8_lossy(user).into_owned(),
        String::from_utf8_lossy(password).into_owned(),
    );
    if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&user) {
        s.no(
            tag,
            Some("AUTHORIZATIONFAILED"),
            "Acting as another user is not supported",
        );
        return Flow::Continue;
    }
    check(s, tag, user, password).await
}

async fn check(s: &mut Session, tag: &str, user: String, password: String) -> Flow {
    let verdict = s
        .ctx
        .auth
        .login(s.service.name(), &s.id, s.peer, &user, password)
        .await;
    drop(user);
    match verdict {
        Verdict::Accepted(account) => {
            s.state = State::Authenticated(Login { account });
            let caps = capabilities(s);
            s.ok(tag, Some(&format!("CAPABILITY {caps}")), "Logged in");
            Flow::Continue
        }
        Verdict::Refused => {
            s.no(tag, Some("AUTHENTICATIONFAILED"), "Authentication failed");
            Flow::Continue
        }
        Verdict::Banned => {
            s.conn
                .push("* BYE Too many failed logins from your address, try again later\r\n");
            s.no(tag, Some("AUTHENTICATIONFAILED"), "Too many failed logins");
            Flow::Close
        }
        Verdict::Unavailable => {
            s.no(
                tag,
                Some("UNAVAILABLE"),
                "Temporary failure, try again later",
            );
            Flow::Continue
        }
    }
}
