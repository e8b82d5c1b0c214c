//! CAPA (RFC 2449 §5) and STLS (RFC 2595 §4).

use crate::reply::Reply;
use crate::session::{Flow, Session, State};
use crate::Service;

pub(crate) fn capa(s: &mut Session) -> Flow {
    let tls = s.conn.is_tls();
    let mut text = String::from("+OK Capability list follows\r\n");
    for line in ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"] {
        text.push_str(line);
        text.push_str("\r\n");
    }
    // No password travels in the clear: logins are offered only with TLS.
    if tls {
        text.push_str("USER\r\nSASL PLAIN\r\n");
    }
    // RFC 2595 §4: STLS only in the AUTHORIZATION state.
    if !tls && s.service == Service::Pop3 && super::in_authorization(s) {
        text.push_str("STLS\r\n");
    }
    text.push_str("IMPLEMENTATION Pochta\r\n.\r\n");
    s.conn.push(&text);
    Flow::Continue
}

pub(crate) async fn stls(s: &mut Session) -> Flow {
    if s.conn.is_tls() {
        s.reply(Reply::err("TLS already active"));
        return Flow::Continue;
    }
    let State::Authorization { user } = &mut s.state else {
        s.reply(Reply::err("STLS only before login"));
        return Flow::Continue;
    };
    // RFC 2595 §4: forget what was learnt before TLS.
    *user = None;
    s.reply(Reply::ok("Begin TLS negotiation"));
    let acceptor = s.ctx.tls.clone();
    // Conn::start_tls drops whatever the client pipelined after STLS: it
    // was sent in the clear (RFC 2595 §4, CVE-2011-0411).
    if let Err(e) = s.conn.start_tls(&acceptor).await {
        pochta_net::throttle::tls_failed(s.service.name(), s.peer, &e);
        return Flow::Close;
    }
    Flow::Continue
}
