//! The POP3 command parser: one line of bytes in, a [`Command`] out. No I/O
//! and no store: the session has already bounded the line in length and time.
//!
//! RFC 1939 §3: a keyword of three or four characters, case-insensitive,
//! then arguments separated by spaces; the line ends in CRLF. RFC 2449 adds
//! CAPA, RFC 2595 STLS, RFC 5034 AUTH.

use std::fmt;

/// A message number: 1 for the first message of the maildrop (RFC 1939 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageNumber(u32);

impl MessageNumber {
    /// A message number; `None` for 0, which numbers nothing.
    pub fn new(n: u32) -> Option<MessageNumber> {
        (n > 0).then_some(MessageNumber(n))
    }

    /// The number as the client sees it.
    pub fn get(self) -> u32 {
        self.0
    }

    /// Position in the maildrop's list (0-based).
    pub fn index(self) -> usize {
        // u32 always fits in usize on the 32- and 64-bit targets we build for.
        self.0 as usize - 1
    }
}

impl fmt::Display for MessageNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One POP3 command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 §7).
    User(String),
    /// `PASS password`: the rest of the line, spaces included (RFC 1939 §7).
    Pass(String),
    /// `AUTH [mechanism [initial-response]]` (RFC 5034 §4). Without a
    /// mechanism, the client asks for the list of mechanisms.
    Auth {
        /// Upper-cased mechanism name, e.g. `PLAIN`.
        mechanism: Option<String>,
        /// The initial response, base64 or `=` for an empty one.
        initial: Option<String>,
    },
    /// `CAPA` (RFC 2449 §5).
    Capa,
    /// `STLS` (RFC 2595 §4).
    Stls,
    /// `STAT`
    Stat,
    /// `LIST [msg]`
    List(Option<MessageNumber>),
    /// `UIDL [msg]`
    Uidl(Option<MessageNumber>),
    /// `RETR msg`
    Retr(MessageNumber),
    /// `TOP msg n`: the header and the first `lines` lines of the body.
    Top {
        /// Which message.
        message: MessageNumber,
        /// Body lines wanted; 0 for the header only.
        lines: u32,
    },
    /// `DELE msg`
    Dele(MessageNumber),
    /// `NOOP`
    Noop,
    /// `RSET`
    Rset,
    /// `QUIT`
    Quit,
}

impl Command {
    /// The keyword, for logs (never the arguments: they may be secrets).
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Top { .. } => "TOP",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
        }
    }
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// No line feed yet: the line is not complete.
    #[error("Incomplete command")]
    Incomplete,
    /// Nothing but the line ending.
    #[error("Empty command")]
    Empty,
    /// The bytes are not UTF-8.
    #[error("Command is not valid UTF-8")]
    NotUtf8,
    /// NUL, a bare CR or another control character inside the line.
    #[error("Control character in command")]
    ControlCharacter,
    /// A keyword this server does not know (APOP included: no plaintext
    /// password equivalents are stored for it).
    #[error("Unknown command")]
    UnknownCommand,
    /// A required argument is missing.
    #[error("Missing argument, usage: {0}")]
    MissingArgument(&'static str),
    /// More arguments than the command takes.
    #[error("Too many arguments, usage: {0}")]
    TooManyArguments(&'static str),
    /// An argument that should be a number is not one (or is 0 where a
    /// message number is needed, or is too large).
    #[error("Invalid number, usage: {0}")]
    BadNumber(&'static str),
}

/// Parses one command line, CRLF (or a lone LF) included.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let Some(body) = line.strip_suffix(b"\n") else {
        return Err(ParseError::Incomplete);
    };
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(ParseError::ControlCharacter);
    }
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let (keyword, rest) = match text.split_once(' ') {
        Some((k, r)) => (k, r),
        None => (text, ""),
    };
    let args: Vec<&str> = rest.split_ascii_whitespace().collect();
    let keyword = keyword.to_ascii_uppercase();
    let command = match keyword.as_str() {
        "USER" => Command::User(one_word(&args, "USER name")?.to_string()),
        // RFC 1939 §7: the server may treat spaces as part of the password.
        "PASS" if rest.is_empty() => return Err(ParseError::MissingArgument("PASS password")),
        "PASS" => Command::Pass(rest.to_string()),
        "AUTH" => match args.as_slice() {
            [] => Command::Auth {
                mechanism: None,
                initial: None,
            },
            [mechanism] => Command::Auth {
                mechanism: Some(mechanism.to_ascii_uppercase()),
                initial: None,
            },
            [mechanism, initial] => Command::Auth {
                mechanism: Some(mechanism.to_ascii_uppercase()),
                initial: Some(initial.to_string()),
            },
            _ => {
                return Err(ParseError::TooManyArguments(
                    "AUTH [mechanism [initial-response]]",
                ))
            }
        },
        "CAPA" => no_arguments(&args, Command::Capa, "CAPA")?,
        "STLS" => no_arguments(&args, Command::Stls, "STLS")?,
        "STAT" => no_arguments(&args, Command::Stat, "STAT")?,
        "NOOP" => no_arguments(&args, Command::Noop, "NOOP")?,
        "RSET" => no_arguments(&args, Command::Rset, "RSET")?,
        "QUIT" => no_arguments(&args, Command::Quit, "QUIT")?,
        "LIST" => Command::List(optional_message(&args, "LIST [msg]")?),
        "UIDL" => Command::Uidl(optional_message(&args, "UIDL [msg]")?),
        "RETR" => Command::Retr(message(one_word(&args, "RETR msg")?, "RETR msg")?),
        "DELE" => Command::Dele(message(one_word(&args, "DELE msg")?, "DELE msg")?),
        "TOP" => match args.as_slice() {
            [msg, lines] => Command::Top {
                message: message(msg, "TOP msg n")?,
                lines: number(lines, "TOP msg n")?,
            },
            [] | [_] => return Err(ParseError::MissingArgument("TOP msg n")),
            _ => return Err(ParseError::TooManyArguments("TOP msg n")),
        },
        _ => return Err(ParseError::UnknownCommand),
    };
    Ok(command)
}

fn no_arguments(
    args: &[&str],
    command: Command,
    usage: &'static str,
) -> Result<Command, ParseError> {
    if args.is_empty() {
        Ok(command)
    } else {
        Err(ParseError::TooManyArguments(usage))
    }
}

fn one_word<'a>(args: &[&'a str], usage: &'static str) -> Result<&'a str, ParseError> {
    match args {
        [word] => Ok(word),
        [] => Err(ParseError::MissingArgument(usage)),
        _ => Err(ParseError::TooManyArguments(usage)),
    }
}

fn optional_message(
    args: &[&str],
    usage: &'static str,
) -> Result<Option<MessageNumber>, ParseError> {
    match args {
        [] => Ok(None),
        [msg] => message(msg, usage).map(Some),
        _ => Err(ParseError::TooManyArguments(usage)),
    }
}

/// Decimal digits only: no sign, no spaces, no hex; must fit in 32 bits.
fn number(text: &str, usage: &'static str) -> Result<u32, ParseError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadNumber(usage));
    }
    text.parse().map_err(|_| ParseError::BadNumber(usage))
}

fn message(text: &str, usage: &'static str) -> Result<MessageNumber, ParseError> {
    MessageNumber::new(number(text, usage)?).ok_or(ParseError::BadNumber(usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> MessageNumber {
        MessageNumber::new(n).unwrap()
    }

    /// Lines taken from the examples of RFC 1939, RFC 2449, RFC 2595 and
    /// RFC 5034, and the command they must parse to.
    #[test]
    fn rfc_examples() {
        let table: Vec<(&[u8], Command)> = vec![
            // RFC 1939 §5, §6, §7
            (b"USER frated\r\n", Command::User("frated".into())),
            (b"USER mrose\r\n", Command::User("mrose".into())),
            (b"PASS secret\r\n", Command::Pass("secret".into())),
            (b"STAT\r\n", Command::Stat),
            (b"LIST\r\n", Command::List(None)),
            (b"LIST 2\r\n", Command::List(Some(msg(2)))),
            (b"LIST 3\r\n", Command::List(Some(msg(3)))),
            (b"RETR 1\r\n", Command::Retr(msg(1))),
            (b"DELE 1\r\n", Command::Dele(msg(1))),
            (b"DELE 2\r\n", Command::Dele(msg(2))),
            (b"NOOP\r\n", Command::Noop),
            (b"RSET\r\n", Command::Rset),
            (b"QUIT\r\n", Command::Quit),
            (
                b"TOP 1 10\r\n",
                Command::Top {
                    message: msg(1),
                    lines: 10,
                },
            ),
            (
                b"TOP 100 3\r\n",
                Command::Top {
                    message: msg(100),
                    lines: 3,
                },
            ),
            (b"UIDL\r\n", Command::Uidl(None)),
            (b"UIDL 2\r\n", Command::Uidl(Some(msg(2)))),
            // RFC 2449 §5, RFC 2595 §4
            (b"CAPA\r\n", Command::Capa),
            (b"STLS\r\n", Command::Stls),
            // RFC 5034 §6
            (
                b"AUTH PLAIN\r\n",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: None,
                },
            ),
            (
                b"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("dGVzdAB0ZXN0AHRlc3Q=".into()),
                },
            ),
            (
                b"AUTH PLAIN =\r\n",
                Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("=".into()),
                },
            ),
            (
                b"AUTH\r\n",
                Command::Auth {
                    mechanism: None,
                    initial: None,
                },
            ),
        ];
        for (line, want) in table {
            assert_eq!(parse(line), Ok(want), "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn keywords_are_case_insensitive_and_lenient_framing_is_accepted() {
        assert_eq!(parse(b"stat\r\n"), Ok(Command::Stat));
        assert_eq!(parse(b"StLs\r\n"), Ok(Command::Stls));
        assert_eq!(
            parse(b"auth plain\r\n"),
            Ok(Command::Auth {
                mechanism: Some("PLAIN".into()),
                initial: None
            })
        );
        assert_eq!(parse(b"top 1 0\r\n").unwrap().name(), "TOP");
        // A lone LF ends a line too; extra spaces between arguments are
        // tolerated (RFC 1939 asks for one, clients are not all careful).
        assert_eq!(parse(b"LIST 2\n"), Ok(Command::List(Some(msg(2)))));
        assert_eq!(parse(b"LIST  2 \r\n"), Ok(Command::List(Some(msg(2)))));
        assert_eq!(parse(b"STAT \r\n"), Ok(Command::Stat));
        assert_eq!(parse(b"RETR 007\r\n"), Ok(Command::Retr(msg(7))));
        assert_eq!(
            parse(b"RETR 4294967295\r\n"),
            Ok(Command::Retr(msg(u32::MAX)))
        );
    }

    #[test]
    fn pass_keeps_the_whole_rest_of_the_line() {
        assert_eq!(
            parse(b"PASS two words \r\n"),
            Ok(Command::Pass("two words ".into()))
        );
        assert_eq!(
            parse(b"pass \xc3\xa9t\xc3\xa9\r\n"),
            Ok(Command::Pass("été".into()))
        );
        assert_eq!(
            parse(b"PASS\r\n"),
            Err(ParseError::MissingArgument("PASS password"))
        );
        assert_eq!(
            parse(b"PASS \r\n"),
            Err(ParseError::MissingArgument("PASS password"))
        );
    }

    #[test]
    fn nasty_inputs() {
        use ParseError::*;
        let table: Vec<(&[u8], ParseError)> = vec![
            (b"", Incomplete),
            (b"STAT", Incomplete),
            (b"STAT\r", Incomplete),
            (b"\r\n", Empty),
            (b"   \r\n", Empty),
            (b"\n", Empty),
            (b"STAT\0\r\n", ControlCharacter),
            (b"USER a\0b\r\n", ControlCharacter),
            (b"PASS a\rb\r\n", ControlCharacter),
            (b"STAT\r\r\n", ControlCharacter),
            (b"\x1b[2JSTAT\r\n", ControlCharacter),
            (b"USER \xff\xfe\r\n", NotUtf8),
            (b"\xc3\r\n", NotUtf8),
            (b"STATUS\r\n", UnknownCommand),
            (b"HELO x\r\n", UnknownCommand),
            (b"EHLO x\r\n", UnknownCommand),
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
                UnknownCommand,
            ),
            (b"GET / HTTP/1.1\r\n", UnknownCommand),
            (b" STAT\r\n", UnknownCommand),
            (b"ST AT\r\n", UnknownCommand),
            (b"USER\r\n", MissingArgument("USER name")),
            (b"USER a b\r\n", TooManyArguments("USER name")),
            (b"STAT 1\r\n", TooManyArguments("STAT")),
            (b"QUIT now\r\n", TooManyArguments("QUIT")),
            (b"CAPA x\r\n", TooManyArguments("CAPA")),
            (b"STLS x\r\n", TooManyArguments("STLS")),
            (b"LIST 1 2\r\n", TooManyArguments("LIST [msg]")),
            (b"LIST 0\r\n", BadNumber("LIST [msg]")),
            (b"LIST -1\r\n", BadNumber("LIST [msg]")),
            (b"LIST +1\r\n", BadNumber("LIST [msg]")),
            (b"LIST 0x10\r\n", BadNumber("LIST [msg]")),
            (b"LIST 1.5\r\n", BadNumber("LIST [msg]")),
            (b"LIST 4294967296\r\n", BadNumber("LIST [msg]")),
            (b"LIST 99999999999999999999999\r\n", BadNumber("LIST [msg]")),
            (b"LIST \xd9\xa3\r\n", BadNumber("LIST [msg]")),
            (b"UIDL x\r\n", BadNumber("UIDL [msg]")),
            (b"RETR\r\n", MissingArgument("RETR msg")),
            (b"RETR 0\r\n", BadNumber("RETR msg")),
            (b"RETR 1 2\r\n", TooManyArguments("RETR msg")),
            (b"DELE\r\n", MissingArgument("DELE msg")),
            (b"DELE one\r\n", BadNumber("DELE msg")),
            (b"TOP\r\n", MissingArgument("TOP msg n")),
            (b"TOP 1\r\n", MissingArgument("TOP msg n")),
            (b"TOP 1 2 3\r\n", TooManyArguments("TOP msg n")),
            (b"TOP 0 1\r\n", BadNumber("TOP msg n")),
            (b"TOP 1 -1\r\n", BadNumber("TOP msg n")),
            (b"TOP 1 4294967296\r\n", BadNumber("TOP msg n")),
            (
                b"AUTH PLAIN a b\r\n",
                TooManyArguments("AUTH [mechanism [initial-response]]"),
            ),
        ];
        for (line, want) in table {
            assert_eq!(
                parse(line),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn long_lines_parse_without_trouble() {
        let mut line = b"USER ".to_vec();
        line.extend(std::iter::repeat_n(b'a', 100_000));
        line.extend_from_slice(b"\r\n");
        assert!(matches!(parse(&line), Ok(Command::User(u)) if u.len() == 100_000));
        let mut line = b"LIST ".to_vec();
        line.extend(std::iter::repeat_n(b'9', 100_000));
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse(&line), Err(ParseError::BadNumber("LIST [msg]")));
    }

    #[test]
    fn every_prefix_of_a_command_is_incomplete() {
        let line = b"TOP 12 34\r\n";
        for end in 0..line.len() {
            assert_eq!(parse(&line[..end]), Err(ParseError::Incomplete), "{end}");
        }
    }
}
