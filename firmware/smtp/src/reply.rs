//! SMTP replies with their enhanced status codes (RFC 5321 §4.2, RFC 3463).

use std::borrow::Cow;
use std::fmt;

/// One reply line: code, enhanced status code, human text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code.
    pub code: u16,
    /// Enhanced status code (RFC 3463), e.g. `5.7.1`.
    pub status: &'static str,
    /// Text for a human.
    pub text: Cow<'static, str>,
}

impl Reply {
    /// A reply with fixed or formatted text.
    pub fn new(code: u16, status: &'static str, text: impl Into<Cow<'static, str>>) -> Reply {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The bytes on the wire, CRLF included.
    pub fn to_wire(&self) -> String {
        format!("{self}\r\n")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Texts are ours, but may quote client input: never let a CR or LF
        // through, it would end the reply early.
        let text = self.text.replace(['\r', '\n'], " ");
        if self.status.is_empty() {
            write!(f, "{} {}", self.code, text)
        } else {
            write!(f, "{} {} {}", self.code, self.status, text)
        }
    }
}

/// Replies used in more than one place.
pub mod common {
    use super::Reply;

    pub fn ok() -> Reply {
        Reply::new(250, "2.0.0", "OK")
    }
    pub fn bad_sequence(what: &'static str) -> Reply {
        Reply::new(503, "5.5.1", what)
    }
    pub fn syntax(text: impl Into<std::borrow::Cow<'static, str>>) -> Reply {
        Reply::new(501, "5.5.4", text)
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, "5.5.6", "Line too long")
    }
    pub fn timeout() -> Reply {
        Reply::new(
            421,
            "4.4.2",
            "Timeout waiting for input, closing connection",
        )
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, "4.3.2", "Server shutting down, try again later")
    }
    pub fn local_error() -> Reply {
        Reply::new(451, "4.3.0", "Local error in processing, try again later")
    }
    pub fn too_big() -> Reply {
        Reply::new(552, "5.3.4", "Message too big")
    }
    /// RFC 5321 §4.2.2 452 "insufficient system storage"; RFC 3463 4.3.1
    /// "mail system full". Temporary: the sender tries again later, when
    /// the owner has freed space.
    pub fn disk_full(used_percent: u8) -> Reply {
        Reply::new(
            452,
            "4.3.1",
            format!(
                "Insufficient system storage: the mail server's disk is {used_percent} % full; try again later"
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        assert_eq!(
            Reply::new(250, "2.1.0", "Sender OK").to_wire(),
            "250 2.1.0 Sender OK\r\n"
        );
        assert_eq!(Reply::new(220, "", "hi").to_wire(), "220 hi\r\n");
        assert_eq!(
            Reply::new(550, "5.1.1", "no <a\r\nb>").to_wire(),
            "550 5.1.1 no <a  b>\r\n"
        );
    }
}
