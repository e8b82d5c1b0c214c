//! The SMTP client for one connection: greeting, EHLO, STARTTLS, AUTH,
//! then one message to several recipients with a result for each.
//!
//! Written here rather than with `mail-send`: mail-send 0.7 fails the whole
//! message when one RCPT is refused, and the queue needs a per-recipient
//! result (RFC 5321 §3.3). Reply lines are read with bounded length and
//! count, and every step has a deadline (RFC 5321 §4.5.3.2).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::reply::{self, Reply, ReplyError};
use super::tls::{ClientTls, TlsInfo};
use super::Failure;
use crate::data::DotEncoder;

/// The connection, plain until STARTTLS or implicit TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between taking the plain stream and the end of the handshake.
    Gone,
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Gone => Ok(0),
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Stream::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// How TLS is used on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when offered, any certificate (MX delivery).
    Opportunistic,
    /// STARTTLS must work.
    RequireStarttls {
        /// Go on when the certificate does not verify.
        accept_invalid: bool,
    },
    /// TLS from the first byte (RFC 8314).
    Implicit {
        /// Go on when the certificate does not verify.
        accept_invalid: bool,
    },
    /// Plain text (loopback smarthosts in tests).
    Plain,
}

/// Deadlines for each step.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Greeting and each command reply.
    pub command: Duration,
    /// Reply to the final dot.
    pub data: Duration,
}

/// AUTH credentials (smarthosts). Never logged.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The server to talk to and how.
pub struct Peer<'a> {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Its host name, for TLS and logs.
    pub name: &'a str,
    /// TLS policy.
    pub tls: TlsMode,
    /// AUTH, if any.
    pub credentials: Option<&'a Credentials>,
    /// Local address to connect from (`[queue] bind_address`).
    pub source: Option<IpAddr>,
}

/// DSN parameters of one recipient (RFC 3461 §4.1, §4.2), as stored.
#[derive(Debug, Clone, Default)]
pub struct RcptDsn {
    /// NOTIFY, e.g. `SUCCESS,FAILURE` or `NEVER`.
    pub notify: Option<String>,
    /// ORCPT address (type rfc822), decoded.
    pub orcpt: Option<String>,
}

/// One message and its envelope.
pub struct Outgoing<'a> {
    /// Reverse-path; empty for `<>`.
    pub sender: &'a str,
    /// Forward-paths.
    pub recipients: &'a [String],
    /// Their DSN parameters, in the same order; passed on when the server
    /// offers DSN (RFC 3461 §6.2).
    pub rcpt_dsn: &'a [RcptDsn],
    /// DSN RET (`FULL` or `HDRS`).
    pub ret: Option<&'a str>,
    /// DSN ENVID, decoded.
    pub envid: Option<&'a str>,
    /// The stored body.
    pub body: &'a Path,
    /// Its size.
    pub size: u64,
    /// Header lines to put in front (a DKIM signature), CRLF-terminated.
    pub prefix: &'a [u8],
}

/// What a connection achieved.
#[derive(Debug)]
pub struct Attempt {
    /// `Some` when the session ran over TLS.
    pub tls: Option<TlsInfo>,
    /// Per recipient, in the order given: the final reply or the failure.
    pub results: Vec<Result<String, Failure>>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }

    fn failure(&self, step: &str) -> Failure {
        let text = format!("{} (after {step})", self.text());
        if self.code >= 500 {
            Failure::remote_permanent(text)
        } else {
            Failure::remote_transient(text)
        }
    }

    fn positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

struct Client {
    io: Stream,
    buf: Vec<u8>,
    timeouts: Timeouts,
    host: String,
}

/// Delivers `msg` to `peer`: Err when the whole connection failed (try
/// the next host or retry), Ok with a result per recipient otherwise.
pub async fn deliver(
    tls: &ClientTls,
    helo: &str,
    peer: &Peer<'_>,
    timeouts: Timeouts,
    msg: &Outgoing<'_>,
) -> Result<Attempt, Failure> {
    let host = format!("{}[{}]", peer.name, peer.addr.ip());
    let tcp = tokio::time::timeout(timeouts.connect, connect(peer.addr, peer.source))
        .await
        .map_err(|_| Failure::network(format!("connect to {host}: timed out")))?
        .map_err(|e| Failure::network(format!("connect to {host}: {e}")))?;
    let mut tls_info = None;
    let io = match peer.tls {
        TlsMode::Implicit { accept_invalid } => {
            let (s, info) = handshake(tls, peer.name, tcp, accept_invalid, &host, timeouts).await?;
            tls_info = Some(info);
            Stream::Tls(Box::new(s))
        }
        _ => Stream::Plain(tcp),
    };
    let mut c = Client {
        io,
        buf: Vec::new(),
        timeouts,
        host: host.clone(),
    };
    let greeting = c.reply(timeouts.command).await?;
    if greeting.code != 220 {
        return Err(greeting.failure("greeting"));
    }
    let mut ext = c.ehlo(helo).await?;
    let want_starttls = match peer.tls {
        TlsMode::Opportunistic => ext.has("STARTTLS"),
        TlsMode::RequireStarttls { .. } => {
            if !ext.has("STARTTLS") {
                return Err(Failure::network(format!("{host} does not offer STARTTLS")));
            }
            true
        }
        _ => false,
    };
    if want_starttls {
        let r = c.command("STARTTLS\r\n", timeouts.command).await?;
        if r.code != 220 {
            return Err(r.failure("STARTTLS"));
        }
        if !c.buf.is_empty() {
            // RFC 3207 §5: nothing may be read ahead of the TLS handshake.
            return Err(Failure::network(format!("{host} sent data before TLS")));
        }
        let accept_invalid = match peer.tls {
            TlsMode::RequireStarttls { accept_invalid } => accept_invalid,
            _ => true,
        };
        let Stream::Plain(tcp) = std::mem::replace(&mut c.io, Stream::Gone) else {
            return Err(Failure::network(format!("{host}: STARTTLS twice")));
        };
        let (s, info) = handshake(tls, peer.name, tcp, accept_invalid, &host, timeouts).await?;
        c.io = Stream::Tls(Box::new(s));
        tls_info = Some(info);
        ext = c.ehlo(helo).await?;
    }
    if let Some(creds) = peer.credentials {
        if tls_info.is_none() {
            return Err(Failure::network(format!("AUTH to {host} needs TLS")));
        }
        c.auth(&ext, creds).await?;
    }
    let results = c.transaction(&ext, msg).await?;
    // QUIT is a courtesy: the results stand whatever it answers.
    let _ = c.command("QUIT\r\n", Duration::from_secs(5)).await;
    Ok(Attempt {
        tls: tls_info,
        results,
    })
}

/// A TCP connection to `addr`, from `source` when it is of the same family.
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source.filter(|s| s.is_ipv4() == addr.is_ipv4()) else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

async fn handshake(
    tls: &ClientTls,
    name: &str,
    tcp: TcpStream,
    accept_invalid: bool,
    host: &str,
    timeouts: Timeouts,
) -> Result<(TlsStream<TcpStream>, TlsInfo), Failure> {
    let (stream, info) = tokio::time::timeout(timeouts.command, tls.connect(name, tcp))
        .await
        .map_err(|_| Failure::tls(format!("TLS with {host}: timed out")))?
        .map_err(|e| Failure::tls(format!("TLS with {host}: {e}")))?;
    if !info.verified && !accept_invalid {
        return Err(Failure::tls(format!(
            "TLS with {host}: the certificate does not verify for {name}"
        )));
    }
    Ok((stream, info))
}

/// EHLO keywords (RFC 5321 §4.1.1.1).
struct Extensions(Vec<String>);

impl Extensions {
    fn has(&self, keyword: &str) -> bool {
        self.param(keyword).is_some()
    }

    /// The parameters after a keyword, `Some("")` when it has none.
    fn param(&self, keyword: &str) -> Option<&str> {
        self.0.iter().find_map(|l| {
            let (k, rest) = l.split_once(' ').unwrap_or((l.as_str(), ""));
            k.eq_ignore_ascii_case(keyword).then_some(rest.trim())
        })
    }
}

impl Client {
    async fn ehlo(&mut self, helo: &str) -> Result<Extensions, Failure> {
        let r = self
            .command(&format!("EHLO {helo}\r\n"), self.timeouts.command)
            .await?;
        if r.code == 250 {
            return Ok(Extensions(r.lines.into_iter().skip(1).collect()));
        }
        // RFC 5321 §3.2: an old server may only know HELO.
        let r = self
            .command(&format!("HELO {helo}\r\n"), self.timeouts.command)
            .await?;
        if r.code != 250 {
            return Err(r.failure("HELO"));
        }
        Ok(Extensions(Vec::new()))
    }

    async fn auth(&mut self, ext: &Extensions, creds: &Credentials) -> Result<(), Failure> {
        let mechs = ext.param("AUTH").unwrap_or("").to_ascii_uppercase();
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let t = self.timeouts.command;
        let r = if mechs.split_whitespace().any(|m| m == "PLAIN") {
            // RFC 4616: authzid NUL authcid NUL password.
            let token = b64(format!("\0{}\0{}", creds.username, creds.password).as_bytes());
            self.command(&format!("AUTH PLAIN {token}\r\n"), t).await?
        } else if mechs.split_whitespace().any(|m| m == "LOGIN") {
            let r = self.command("AUTH LOGIN\r\n", t).await?;
            if r.code != 334 {
                return Err(r.failure("AUTH LOGIN"));
            }
            let r = self
                .command(&format!("{}\r\n", b64(creds.username.as_bytes())), t)
                .await?;
            if r.code != 334 {
                return Err(r.failure("AUTH LOGIN user"));
            }
            self.command(&format!("{}\r\n", b64(creds.password.as_bytes())), t)
                .await?
        } else {
            return Err(Failure::network(format!(
                "{} offers neither AUTH PLAIN nor LOGIN",
                self.host
            )));
        };
        if r.code != 235 {
            return Err(r.failure("AUTH"));
        }
        Ok(())
    }

    /// MAIL, RCPT for each recipient, DATA; pipelined when offered (RFC 2920).
    async fn transaction(
        &mut self,
        ext: &Extensions,
        msg: &Outgoing<'_>,
    ) -> Result<Vec<Result<String, Failure>>, Failure> {
        let total = msg.size + msg.prefix.len() as u64;
        if let Some(Ok(max)) = ext.param("SIZE").map(str::parse::<u64>) {
            if max > 0 && total > max {
                return Err(Failure::permanent(
                    "5.3.4",
                    format!(
                        "{} takes at most {max} bytes; message has {total}",
                        self.host
                    ),
                ));
            }
        }
        let utf8 = !msg.sender.is_ascii() || msg.recipients.iter().any(|r| !r.is_ascii());
        if utf8 && !ext.has("SMTPUTF8") {
            // RFC 6531 §3.2: no downgrade of addresses.
            return Err(Failure::permanent(
                "5.6.7",
                format!("{} does not support SMTPUTF8 addresses", self.host),
            ));
        }
        let mut mail = format!("MAIL FROM:<{}>", msg.sender);
        if ext.has("SIZE") {
            mail.push_str(&format!(" SIZE={total}"));
        }
        if ext.has("8BITMIME") {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        let dsn = ext.has("DSN");
        if dsn {
            if let Some(ret) = msg.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = msg.envid {
                mail.push_str(&format!(" ENVID={}", xtext(envid)));
            }
        }
        mail.push_str("\r\n");
        let rcpts: Vec<String> = msg
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut line = format!("RCPT TO:<{r}>");
                if let (true, Some(d)) = (dsn, msg.rcpt_dsn.get(i)) {
                    if let Some(notify) = &d.notify {
                        line.push_str(&format!(" NOTIFY={notify}"));
                    }
                    if let Some(orcpt) = &d.orcpt {
                        line.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
                    }
                }
                line.push_str("\r\n");
                line
            })
            .collect();
        let t = self.timeouts.command;
        let mut results = Vec::with_capacity(rcpts.len());
        let data_reply;
        if ext.has("PIPELINING") {
            let mut batch = mail.clone();
            for r in &rcpts {
                batch.push_str(r);
            }
            batch.push_str("DATA\r\n");
            self.send(batch.as_bytes()).await?;
            let m = self.reply(t).await?;
            for _ in &rcpts {
                let r = self.reply(t).await?;
                results.push(r);
            }
            data_reply = self.reply(t).await?;
            if m.code != 250 {
                return Err(m.failure("MAIL FROM"));
            }
        } else {
            let m = self.command(&mail, t).await?;
            if m.code != 250 {
                return Err(m.failure("MAIL FROM"));
            }
            for r in &rcpts {
                results.push(self.command(r, t).await?);
            }
            if !results.iter().any(|r| r.positive()) {
                let out = results.iter().map(|r| Err(r.failure("RCPT TO"))).collect();
                let _ = self.command("RSET\r\n", t).await;
                return Ok(out);
            }
            data_reply = self.command("DATA\r\n", t).await?;
        }
        let accepted = results.iter().filter(|r| r.positive()).count();
        if accepted == 0 {
            // The server answers the pipelined DATA with an error: nothing to send.
            return Ok(results.iter().map(|r| Err(r.failure("RCPT TO"))).collect());
        }
        if data_reply.code != 354 {
            return Err(data_reply.failure("DATA"));
        }
        self.send_body(msg).await?;
        let end = self.reply(self.timeouts.data).await?;
        Ok(results
            .iter()
            .map(|r| {
                if !r.positive() {
                    Err(r.failure("RCPT TO"))
                } else if end.code == 250 {
                    Ok(end.text())
                } else {
                    Err(end.failure("end of DATA"))
                }
            })
            .collect())
    }

    /// The body, dot-stuffed (RFC 5321 §4.5.2) with every line ending made
    /// CRLF (a stored bare CR or LF never reaches the next hop), streamed
    /// from its file.
    async fn send_body(&mut self, msg: &Outgoing<'_>) -> Result<(), Failure> {
        let io_err = |e: std::io::Error| Failure::local(format!("reading the queued message: {e}"));
        let mut file = tokio::fs::File::open(msg.body).await.map_err(io_err)?;
        let mut stuffer = DotEncoder::default();
        let mut out = Vec::with_capacity(70 * 1024);
        stuffer.push(msg.prefix, &mut out);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut chunk).await.map_err(io_err)?;
            if n == 0 {
                break;
            }
            stuffer.push(&chunk[..n], &mut out);
            self.send(&out).await?;
            out.clear();
        }
        stuffer.finish(&mut out);
        self.send(&out).await
    }

    async fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, Failure> {
        self.send(line.as_bytes()).await?;
        self.reply(timeout).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        tokio::time::timeout(self.timeouts.command, self.io.write_all(bytes))
            .await
            .map_err(|_| Failure::network(format!("sending to {}: timed out", self.host)))?
            .map_err(|e| Failure::network(format!("sending to {}: {e}", self.host)))
    }

    async fn reply(&mut self, timeout: Duration) -> Result<Reply, Failure> {
        let host = self.host.clone();
        tokio::time::timeout(timeout, self.read_reply())
            .await
            .map_err(|_| Failure::network(format!("{host} did not answer in {timeout:?}")))?
    }

    async fn read_reply(&mut self) -> Result<Reply, Failure> {
        loop {
            match reply::parse(&self.buf) {
                Ok(Some((r, used))) => {
                    self.buf.drain(..used);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => {
                    let what = match e {
                        ReplyError::Malformed => "a malformed reply",
                        ReplyError::MixedCodes => "a reply with mixed codes",
                        ReplyError::TooLong => "a reply too long",
                    };
                    return Err(Failure::network(format!("{} sent {what}", self.host)));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .io
                .read(&mut chunk)
                .await
                .map_err(|e| Failure::network(format!("reading from {}: {e}", self.host)))?;
            if n == 0 {
                return Err(Failure::network(format!(
                    "{} closed the connection",
                    self.host
                )));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// xtext (RFC 3461 §4): `+`, `=`, controls, space and non-ASCII as `+XX`.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("bob@b.test"), "bob@b.test");
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext("é"), "+C3+A9");
    }

    #[test]
    fn extensions() {
        let e = Extensions(vec![
            "PIPELINING".into(),
            "SIZE 1000".into(),
            "auth PLAIN LOGIN".into(),
        ]);
        assert!(e.has("pipelining"));
        assert_eq!(e.param("SIZE"), Some("1000"));
        assert_eq!(e.param("AUTH"), Some("PLAIN LOGIN"));
        assert!(!e.has("STARTTLS"));
    }
}
