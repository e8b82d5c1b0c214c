//! A small IMAP4rev1 client (RFC 3501) over implicit TLS: one command at a
//! time, responses read line by line with literals (`{n}`, §4.3) skipped or
//! counted. It tracks just what the load needs: the number of messages in
//! the selected mailbox, kept current from `EXISTS` and `EXPUNGE` (§7.3.1,
//! §7.4.1), the numbers of a `SEARCH` reply (§7.2.5) and how many `FETCH`
//! responses a command drew (§7.4.2).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Longest response line accepted (literals not included).
const MAX_LINE: u64 = 1 << 20;
/// Largest literal accepted from a server.
const MAX_LITERAL: u64 = 256 << 20;

/// Why a command did not complete.
#[derive(Debug)]
pub enum ClientError {
    /// The connection failed or was closed.
    Io(io::Error),
    /// No complete reply within the command timeout.
    Timeout(String),
    /// The server said something this client cannot read, or something
    /// RFC 3501 does not allow at that point.
    Protocol(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "connection: {e}"),
            ClientError::Timeout(what) => write!(f, "timeout: {what}"),
            ClientError::Protocol(what) => write!(f, "protocol: {what}"),
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

/// The result word of a tagged reply (RFC 3501 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    No,
    Bad,
}

/// A command's outcome: the tagged status and what came with it.
#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    /// The tagged line after the tag, for messages.
    pub line: String,
    /// Numbers from `* SEARCH` responses.
    pub search: Vec<u32>,
    /// Bytes of literals received (message bodies, envelope strings).
    pub literal_bytes: u64,
    /// Untagged `FETCH` responses received.
    pub fetched: u32,
}

/// One logical server response: its first line, with literals consumed.
struct Response {
    head: String,
    literal_bytes: u64,
}

pub struct Client {
    stream: BufReader<TlsStream<TcpStream>>,
    next_tag: u32,
    timeout: Duration,
    /// Messages in the selected mailbox as this session knows them.
    pub exists: u32,
}

/// `"text"` with `\` and `"` escaped (RFC 3501 §4.3 quoted string).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The length of the literal announced at the end of `line` (`... {n}\r\n`).
fn literal_len(line: &str) -> Option<u64> {
    let body = line.strip_suffix("}\r\n")?;
    let open = body.rfind('{')?;
    body[open + 1..].parse().ok()
}

impl Client {
    /// Connects with implicit TLS (RFC 8314) and reads the greeting.
    pub async fn connect(
        addr: SocketAddr,
        tls: &TlsConnector,
        limit: Duration,
    ) -> Result<Client, ClientError> {
        let setup = async {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from("localhost").expect("a valid DNS name");
            let stream = tls.connect(name, tcp).await?;
            Ok::<_, io::Error>(stream)
        };
        let stream = timeout(limit, setup)
            .await
            .map_err(|_| ClientError::Timeout(format!("connect to {addr}")))??;
        let mut client = Client {
            stream: BufReader::with_capacity(64 * 1024, stream),
            next_tag: 1,
            timeout: limit,
            exists: 0,
        };
        let greeting = timeout(limit, client.read_response())
            .await
            .map_err(|_| ClientError::Timeout("greeting".into()))??;
        if !greeting.head.starts_with("* OK") {
            return Err(ClientError::Protocol(format!(
                "greeting: {}",
                greeting.head.trim_end()
            )));
        }
        Ok(client)
    }

    /// Sends `command` (without tag or CRLF) and reads up to its tagged
    /// reply.
    pub async fn command(&mut self, command: &str) -> Result<Reply, ClientError> {
        let limit = self.timeout;
        timeout(limit, async {
            let tag = self.send_line(command).await?;
            self.read_until_tagged(&tag, false).await
        })
        .await
        .map_err(|_| ClientError::Timeout(first_word(command)))?
    }

    /// APPEND with a synchronizing literal (RFC 3501 §6.3.11): the message
    /// is sent only after the server's `+`.
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: &str,
        message: &[u8],
    ) -> Result<Reply, ClientError> {
        let limit = self.timeout;
        timeout(limit, async {
            let command = format!("APPEND {} ({flags}) {{{}}}", quoted(mailbox), message.len());
            let tag = self.send_line(&command).await?;
            if let Some(refused) = self.read_until_continuation(&tag).await? {
                return Ok(refused);
            }
            let w = self.stream.get_mut();
            w.write_all(message).await?;
            w.write_all(b"\r\n").await?;
            w.flush().await?;
            self.read_until_tagged(&tag, false).await
        })
        .await
        .map_err(|_| ClientError::Timeout("APPEND".into()))?
    }

    /// IDLE (RFC 2177) for `wait`, reading what the server reports
    /// meanwhile; then DONE and the tagged reply. Also says whether anything
    /// was reported during the wait. The wait is fixed, not cut short by
    /// news, so that it costs every server the same.
    pub async fn idle(&mut self, wait: Duration) -> Result<(Reply, bool), ClientError> {
        let limit = self.timeout + wait;
        timeout(limit, async {
            let tag = self.send_line("IDLE").await?;
            if let Some(refused) = self.read_until_continuation(&tag).await? {
                return Ok((refused, false));
            }
            let until = Instant::now() + wait;
            let mut news = false;
            let mut search = Vec::new();
            loop {
                // `fill_buf` keeps what it read if the wait runs out, so
                // nothing is lost; a response that has begun is read whole.
                let Ok(ready) = timeout_at(until, self.stream.fill_buf()).await else {
                    break;
                };
                if ready?.is_empty() {
                    return Err(closed());
                }
                let r = self.read_response().await?;
                if let Some(reply) = self.untagged_or_reply(&tag, r, &mut search, false)? {
                    return Err(ClientError::Protocol(format!(
                        "IDLE ended by the server before DONE: {}",
                        reply.line.trim_end()
                    )));
                }
                news = true;
            }
            let w = self.stream.get_mut();
            w.write_all(b"DONE\r\n").await?;
            w.flush().await?;
            Ok((self.read_until_tagged(&tag, false).await?, news))
        })
        .await
        .map_err(|_| ClientError::Timeout("IDLE".into()))?
    }

    /// LOGOUT; the server's `* BYE` is expected (§6.1.3). Closes TLS.
    pub async fn logout(mut self) -> Result<Reply, ClientError> {
        let limit = self.timeout;
        let reply = timeout(limit, async {
            let tag = self.send_line("LOGOUT").await?;
            self.read_until_tagged(&tag, true).await
        })
        .await
        .map_err(|_| ClientError::Timeout("LOGOUT".into()))??;
        // A clean close_notify if the server is still there; not waited for
        // long, and its failure changes nothing.
        let _ = timeout(Duration::from_secs(1), self.stream.get_mut().shutdown()).await;
        Ok(reply)
    }

    async fn send_line(&mut self, command: &str) -> Result<String, ClientError> {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        let w = self.stream.get_mut();
        w.write_all(format!("{tag} {command}\r\n").as_bytes())
            .await?;
        w.flush().await?;
        Ok(tag)
    }

    /// Reads responses until a continuation request (`None`) or the tagged
    /// reply that refuses the command (`Some`).
    async fn read_until_continuation(&mut self, tag: &str) -> Result<Option<Reply>, ClientError> {
        let mut search = Vec::new();
        loop {
            let r = self.read_response().await?;
            if r.head.starts_with('+') {
                return Ok(None);
            }
            if let Some(reply) = self.untagged_or_reply(tag, r, &mut search, false)? {
                return Ok(Some(reply));
            }
        }
    }

    async fn read_until_tagged(&mut self, tag: &str, logout: bool) -> Result<Reply, ClientError> {
        let mut search = Vec::new();
        let mut literal_bytes = 0;
        let mut fetched = 0;
        loop {
            let r = self.read_response().await?;
            literal_bytes += r.literal_bytes;
            fetched += u32::from(is_fetch(&r.head));
            if r.head.starts_with('+') {
                return Err(ClientError::Protocol(format!(
                    "unexpected continuation: {}",
                    r.head.trim_end()
                )));
            }
            if let Some(mut reply) = self.untagged_or_reply(tag, r, &mut search, logout)? {
                reply.literal_bytes = literal_bytes;
                reply.fetched = fetched;
                return Ok(reply);
            }
        }
    }

    /// Applies an untagged response to the session, or turns our tagged
    /// line into a [`Reply`].
    fn untagged_or_reply(
        &mut self,
        tag: &str,
        r: Response,
        search: &mut Vec<u32>,
        logout: bool,
    ) -> Result<Option<Reply>, ClientError> {
        let line = r.head.trim_end();
        if let Some(rest) = line.strip_prefix(tag).and_then(|l| l.strip_prefix(' ')) {
            let (word, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let status = match word.to_ascii_uppercase().as_str() {
                "OK" => Status::Ok,
                "NO" => Status::No,
                "BAD" => Status::Bad,
                _ => return Err(ClientError::Protocol(format!("bad tagged reply: {line}"))),
            };
            return Ok(Some(Reply {
                status,
                line: text.to_string(),
                search: std::mem::take(search),
                literal_bytes: 0,
                fetched: 0,
            }));
        }
        let Some(data) = line.strip_prefix("* ") else {
            return Err(ClientError::Protocol(format!("unexpected line: {line}")));
        };
        let mut words = data.split(' ');
        let first = words.next().unwrap_or("");
        let second = words.next().unwrap_or("").to_ascii_uppercase();
        if first.eq_ignore_ascii_case("BYE") && !logout {
            return Err(ClientError::Protocol(format!("server said {line}")));
        }
        if first.eq_ignore_ascii_case("SEARCH") {
            for n in data[6..].split_ascii_whitespace() {
                let n = n
                    .parse()
                    .map_err(|_| ClientError::Protocol(format!("bad SEARCH response: {line}")))?;
                search.push(n);
            }
            return Ok(None);
        }
        if let Ok(n) = first.parse::<u32>() {
            match second.as_str() {
                "EXISTS" => self.exists = n,
                "EXPUNGE" => {
                    // RFC 3501 §7.4.1: the number is of a message the client
                    // knows, and the count goes down by one.
                    if n == 0 || n > self.exists {
                        return Err(ClientError::Protocol(format!(
                            "EXPUNGE {n} with {} messages known",
                            self.exists
                        )));
                    }
                    self.exists -= 1;
                }
                "FETCH" if n == 0 || n > self.exists => {
                    return Err(ClientError::Protocol(format!(
                        "FETCH for message {n} with {} messages known",
                        self.exists
                    )));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// One response: a line, and if it announces a literal, the literal and
    /// the rest of the line after it, as many times as needed.
    async fn read_response(&mut self) -> Result<Response, ClientError> {
        let head = self.read_line().await?;
        let mut literal_bytes = 0;
        let mut line = head.clone();
        while let Some(n) = literal_len(&line) {
            if n > MAX_LITERAL {
                return Err(ClientError::Protocol(format!("literal of {n} bytes")));
            }
            let copied =
                tokio::io::copy(&mut (&mut self.stream).take(n), &mut tokio::io::sink()).await?;
            if copied < n {
                return Err(closed());
            }
            literal_bytes += n;
            line = self.read_line().await?;
        }
        Ok(Response {
            head,
            literal_bytes,
        })
    }

    async fn read_line(&mut self) -> Result<String, ClientError> {
        let mut buf = Vec::new();
        (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await?;
        if buf.is_empty() {
            return Err(closed());
        }
        if !buf.ends_with(b"\r\n") {
            return Err(ClientError::Protocol(if buf.len() as u64 >= MAX_LINE {
                "response line too long".into()
            } else {
                format!(
                    "line not ended by CRLF: {}",
                    String::from_utf8_lossy(&buf).trim_end()
                )
            }));
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

fn closed() -> ClientError {
    ClientError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "server closed the connection",
    ))
}

/// `* <n> FETCH ...` (RFC 3501 §7.4.2).
fn is_fetch(head: &str) -> bool {
    let mut words = head.split(' ');
    words.next() == Some("*")
        && words.next().is_some_and(|n| n.parse::<u32>().is_ok())
        && words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("FETCH"))
}

fn first_word(command: &str) -> String {
    command.split(' ').next().unwrap_or(command).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_at_line_end_only() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {42}\r\n"), Some(42));
        assert_eq!(literal_len("* 1 FETCH (ENVELOPE (\"x\" {0}\r\n"), Some(0));
        assert_eq!(literal_len("* OK {3} not a literal\r\n"), None);
        assert_eq!(literal_len("* OK {x}\r\n"), None);
        assert_eq!(literal_len("* OK }\r\n"), None);
    }

    #[test]
    fn fetch_responses_are_told_apart() {
        assert!(is_fetch("* 12 FETCH (UID 12 FLAGS ())\r\n"));
        assert!(is_fetch("* 1 fetch (UID 1)\r\n"));
        assert!(!is_fetch("* 12 EXISTS\r\n"));
        assert!(!is_fetch("* OK FETCH\r\n"));
        assert!(!is_fetch("a1 OK FETCH completed\r\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("INBOX"), "\"INBOX\"");
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
