//! EHLO, HELO (RFC 5321 §4.1.1.1) and STARTTLS (RFC 3207).

use std::fmt::Write;

use crate::reply::{common, Reply};
use crate::session::{Flow, Helo, Session};

pub(crate) fn ehlo(s: &mut Session, host: String, extended: bool) -> Flow {
    // RFC 5321 §4.1.4: EHLO resets any transaction in progress.
    s.envelope = None;
    let hostname = s.ctx.hostname.clone();
    if !extended {
        s.reply(Reply::new(250, "", hostname));
    } else {
        let mut text = format!("250-{hostname} Hello {}\r\n", clean(&host));
        let mut caps = vec![
            "PIPELINING".to_string(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            format!("SIZE {}", s.ctx.limits.max_message_bytes),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if !s.conn.is_tls() {
            caps.push("STARTTLS".into());
        }
        // RFC 8314 §3: no mechanism that sends a password before TLS.
        if s.service.is_submission() && s.conn.is_tls() && s.login.is_none() {
            caps.push("AUTH PLAIN LOGIN".into());
        }
        caps.push("CHUNKING".into());
        caps.push("DSN".into());
        let last = caps.len() - 1;
        for (i, cap) in caps.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let _ = write!(text, "250{sep}{cap}\r\n");
        }
        s.conn.push(&text);
    }
    s.helo = Some(Helo {
        name: host,
        extended,
    });
    Flow::Continue
}

pub(crate) async fn starttls(s: &mut Session) -> Flow {
    if s.conn.is_tls() {
        s.reply(common::bad_sequence("TLS already active"));
        return Flow::Continue;
    }
    s.reply(Reply::new(220, "2.0.0", "Ready to start TLS"));
    let acceptor = s.ctx.tls.clone();
    if let Err(e) = s.conn.start_tls(&acceptor).await {
        pochta_net::throttle::tls_failed(s.service.name(), s.peer, &e);
        return Flow::Close;
    }
    // RFC 3207 §4.2: forget everything learnt before TLS.
    s.helo = None;
    s.envelope = None;
    s.login = None;
    Flow::Continue
}

/// A client-supplied name made safe for replies and headers.
pub(crate) fn clean(name: &str) -> String {
    name.chars()
        .take(255)
        .map(|c| {
            if c.is_control() || c.is_whitespace() || matches!(c, '(' | ')' | ';' | '<' | '>') {
                '_'
            } else {
                c
            }
        })
        .collect()
}
