//! POP3 status lines: `+OK text` and `-ERR [CODE] text` (RFC 1939 §3), with
//! the extended response codes of RFC 2449 §8 and RFC 3206.

use std::borrow::Cow;
use std::fmt;

/// An extended response code, sent in brackets after `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// RFC 3206 §4: the credentials were wrong or the login is refused.
    Auth,
    /// RFC 3206 §3: a temporary system problem; try again later.
    SysTemp,
    /// RFC 3206 §3: a permanent system problem.
    SysPerm,
    /// RFC 2449 §8.1.1: the maildrop is locked by another session.
    InUse,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::Auth => "AUTH",
            Code::SysTemp => "SYS/TEMP",
            Code::SysPerm => "SYS/PERM",
            Code::InUse => "IN-USE",
        }
    }
}

/// One status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    ok: bool,
    code: Option<Code>,
    text: Cow<'static, str>,
}

impl Reply {
    /// `+OK text`
    pub fn ok(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: true,
            code: None,
            text: text.into(),
        }
    }

    /// `-ERR text`
    pub fn err(text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: false,
            code: None,
            text: text.into(),
        }
    }

    /// `-ERR [CODE] text`
    pub fn err_code(code: Code, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            ok: false,
            code: Some(code),
            text: text.into(),
        }
    }

    /// `+OK`
    pub fn is_ok(&self) -> bool {
        self.ok
    }

    /// The bytes on the wire, CRLF included.
    pub fn to_wire(&self) -> String {
        format!("{self}\r\n")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Texts may quote client input: a CR or LF would end the line early.
        let text = self.text.replace(['\r', '\n'], " ");
        let status = if self.ok { "+OK" } else { "-ERR" };
        match (self.code, text.is_empty()) {
            (Some(code), _) => write!(f, "{status} [{}] {text}", code.as_str()),
            (None, true) => write!(f, "{status}"),
            (None, false) => write!(f, "{status} {text}"),
        }
    }
}

/// Replies used in more than one place.
pub mod common {
    use super::{Code, Reply};

    pub fn not_in_transaction() -> Reply {
        Reply::err("Not logged in: use USER and PASS, or AUTH, first")
    }
    pub fn not_in_authorization() -> Reply {
        Reply::err("Already logged in")
    }
    pub fn line_too_long() -> Reply {
        Reply::err("Line too long")
    }
    pub fn timeout() -> Reply {
        Reply::err("Timeout waiting for a command, closing connection")
    }
    pub fn shutting_down() -> Reply {
        Reply::err_code(Code::SysTemp, "Server shutting down, try again later")
    }
    pub fn plaintext_login() -> Reply {
        Reply::err_code(
            Code::Auth,
            "Login refused on an unencrypted connection: use STLS first",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        assert_eq!(Reply::ok("2 320").to_wire(), "+OK 2 320\r\n");
        assert_eq!(Reply::ok("").to_wire(), "+OK\r\n");
        assert_eq!(
            Reply::err("no such message").to_wire(),
            "-ERR no such message\r\n"
        );
        assert_eq!(
            Reply::err_code(Code::InUse, "locked").to_wire(),
            "-ERR [IN-USE] locked\r\n"
        );
        assert_eq!(
            Reply::err_code(Code::SysTemp, "later").to_wire(),
            "-ERR [SYS/TEMP] later\r\n"
        );
        assert_eq!(Reply::err("a\r\n.\r\nb").to_wire(), "-ERR a  .  b\r\n");
    }
}
