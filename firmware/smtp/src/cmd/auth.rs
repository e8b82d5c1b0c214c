//! AUTH PLAIN (RFC 4616) and LOGIN, offered and accepted only on the
//! submission services and only over TLS (RFC 4954, RFC 8314).

use base64::Engine;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use crate::reply::{common, Reply};
use crate::session::{Flow, Login as LoggedIn, Session};
use pochta_auth::Login;
use pochta_net::{Line, ReadError};

/// What the client sent, or why it sent nothing usable.
enum Credentials {
    Given { user: String, password: String },
    Cancelled,
    Malformed,
    Gone(Flow),
}

pub(crate) async fn auth(s: &mut Session, mechanism: u64, initial: String) -> Flow {
    if !s.service.is_submission() {
        s.reply(Reply::new(
            502,
            "5.5.1",
            "AUTH is not available on this port, use submission (587 or 465)",
        ));
        return Flow::Continue;
    }
    if !s.conn.is_tls() {
        s.reject(
            "auth",
            "plaintext",
            Reply::new(538, "5.7.11", "Encryption required: use STARTTLS first"),
        );
        return Flow::Continue;
    }
    if s.helo.is_none() {
        s.reply(common::bad_sequence("Send EHLO first"));
        return Flow::Continue;
    }
    if s.login.is_some() {
        s.reply(common::bad_sequence("Already authenticated"));
        return Flow::Continue;
    }
    if s.envelope.is_some() {
        s.reply(common::bad_sequence(
            "AUTH not allowed during a mail transaction",
        ));
        return Flow::Continue;
    }
    let creds = match mechanism {
        AUTH_PLAIN => plain(s, initial).await,
        AUTH_LOGIN => login(s, initial).await,
        _ => {
            s.reply(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
            return Flow::Continue;
        }
    };
    let (user, password) = match creds {
        Credentials::Given { user, password } => (user, password),
        Credentials::Cancelled => {
            s.reply(Reply::new(501, "5.0.0", "Authentication cancelled"));
            return Flow::Continue;
        }
        Credentials::Malformed => {
            s.reply(Reply::new(501, "5.5.2", "Cannot decode AUTH response"));
            return Flow::Continue;
        }
        Credentials::Gone(flow) => return flow,
    };
    let verdict = s
        .ctx
        .auth
        .login(s.service.name(), &s.id, s.peer, &user, password)
        .await;
    match verdict {
        Login::Accepted(account) => {
            s.login = Some(LoggedIn { account, user });
            s.reply(Reply::new(235, "2.7.0", "Authentication successful"));
            Flow::Continue
        }
        Login::Refused => {
            s.auth_failures += 1;
            if s.auth_failures >= s.ctx.limits.max_auth_failures {
                s.reply(Reply::new(
                    421,
                    "4.7.0",
                    "Too many failed logins, closing connection",
                ));
                return Flow::Close;
            }
            s.reply(Reply::new(
                535,
                "5.7.8",
                "Authentication credentials invalid",
            ));
            Flow::Continue
        }
        Login::Banned => {
            s.reply(Reply::new(
                421,
                "4.7.0",
                "Too many failed logins from your address, try again later",
            ));
            Flow::Close
        }
        Login::Unavailable => {
            s.reply(Reply::new(454, "4.7.0", "Temporary authentication failure"));
            Flow::Continue
        }
    }
}

/// Asks for one more SASL response line (`334 challenge`).
async fn ask(s: &mut Session, challenge: &str) -> Result<String, Credentials> {
    s.conn.push(&format!("334 {challenge}\r\n"));
    let max = s.ctx.limits.max_line_bytes;
    match s.conn.read_line(max).await {
        Ok(Line::Complete(line)) => {
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            if text == "*" {
                Err(Credentials::Cancelled)
            } else {
                Ok(text)
            }
        }
        Ok(Line::TooLong) => Err(Credentials::Malformed),
        Err(ReadError::Timeout) => {
            s.reply(common::timeout());
            Err(Credentials::Gone(Flow::Close))
        }
        Err(_) => Err(Credentials::Gone(Flow::Close)),
    }
}

fn decode(text: &str) -> Option<Vec<u8>> {
    // RFC 4954 §4: "=" is an empty initial response.
    if text == "=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

async fn plain(s: &mut Session, initial: String) -> Credentials {
    let response = if initial.is_empty() {
        match ask(s, "").await {
            Ok(r) => r,
            Err(c) => return c,
        }
    } else {
        initial
    };
    match pochta_auth::decode_plain(&response) {
        Some((user, password)) => Credentials::Given { user, password },
        None => Credentials::Malformed,
    }
}

async fn login(s: &mut Session, initial: String) -> Credentials {
    let user = if initial.is_empty() {
        match ask(s, "VXNlcm5hbWU6").await {
            Ok(r) => r,
            Err(c) => return c,
        }
    } else {
        initial
    };
    let password = match ask(s, "UGFzc3dvcmQ6").await {
        Ok(r) => r,
        Err(c) => return c,
    };
    let (Some(user), Some(password)) = (decode(&user), decode(&password)) else {
        return Credentials::Malformed;
    };
    match (String::from_utf8(user), String::from_utf8(password)) {
        (Ok(user), Ok(password)) => Credentials::Given { user, password },
        _ => Credentials::Malformed,
    }
}
