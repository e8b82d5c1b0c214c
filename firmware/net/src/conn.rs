//! A connection with its buffers: bounded line reads, STARTTLS, pipelining.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::deflate::Deflate;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Bytes read from the socket at most per system call.
const READ_CHUNK: usize = 16 * 1024;

/// Plain or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What a bounded line read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line, LF included.
    Complete(Vec<u8>),
    /// The line was longer than allowed; it has been discarded up to and
    /// including its LF.
    TooLong,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection.
    Closed,
    /// Nothing complete arrived in time.
    Timeout,
    /// The socket failed.
    Io(io::Error),
}

/// A connection with its buffers.
pub struct Conn {
    stream: Option<Stream>,
    /// COMPRESS=DEFLATE, once started (RFC 4978).
    deflate: Option<Box<Deflate>>,
    input: Vec<u8>,
    /// Start of unread bytes in `input`.
    pos: usize,
    output: Vec<u8>,
    pub timeout: Duration,
}

impl Conn {
    pub fn new(stream: Stream, timeout: Duration) -> Conn {
        Conn {
            stream: Some(stream),
            deflate: None,
            input: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            output: Vec::with_capacity(1024),
            timeout,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    /// The TLS protocol version, for the `Received:` header.
    pub fn tls_version(&self) -> Option<String> {
        match &self.stream {
            Some(Stream::Tls(s)) => s.get_ref().1.protocol_version().map(|v| format!("{v:?}")),
            _ => None,
        }
    }

    /// Queues a reply.
    pub fn push(&mut self, text: &str) {
        self.output.extend_from_slice(text.as_bytes());
    }

    /// Queues reply bytes (IMAP literals need not be UTF-8).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Bytes queued and not yet sent.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Sends what is queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let compressed;
        let bytes: &[u8] = match self.deflate.as_mut() {
            Some(d) => {
                compressed = d.deflate(&self.output)?;
                &compressed
            }
            None => &self.output,
        };
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("no stream"))?;
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
        self.output.clear();
        Ok(())
    }

    /// Whether unread input is waiting (the client pipelined).
    pub fn has_buffered_input(&self) -> bool {
        self.pos < self.input.len()
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Reads more bytes into the buffer, flushing pending replies first.
    /// Cancel-safe: dropped while waiting, it leaves the buffer as it was.
    async fn fill(&mut self) -> Result<(), ReadError> {
        self.flush().await.map_err(ReadError::Io)?;
        self.compact();
        let stream = self.stream.as_mut().ok_or(ReadError::Closed)?;
        let Some(deflate) = self.deflate.as_mut() else {
            self.input.reserve(READ_CHUNK);
            return match stream.read_buf(&mut self.input).await {
                Ok(0) => Err(ReadError::Closed),
                Ok(_) => Ok(()),
                Err(e) => Err(ReadError::Io(e)),
            };
        };
        loop {
            if !deflate.raw.is_empty()
                && deflate.inflate(&mut self.input).map_err(ReadError::Io)? > 0
            {
                return Ok(());
            }
            deflate.raw.reserve(READ_CHUNK);
            match stream.read_buf(&mut deflate.raw).await {
                Ok(0) => return Err(ReadError::Closed),
                Ok(_) => {}
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Starts COMPRESS=DEFLATE: replies queued so far go out uncompressed
    /// (the OK of the COMPRESS command), everything after is compressed both
    /// ways. Bytes the client sent after the command are compressed data.
    pub async fn start_deflate(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.compact();
        let pending = std::mem::take(&mut self.input);
        self.pos = 0;
        self.deflate = Some(Box::new(Deflate::new(pending)));
        Ok(())
    }

    /// Whether COMPRESS=DEFLATE is active.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Reads one line of at most `max` bytes; the whole line must arrive
    /// within the timeout, so a client dribbling bytes cannot hold a session.
    pub async fn read_line(&mut self, max: usize) -> Result<Line, ReadError> {
        let deadline = self.deadline();
        let mut discarding = false;
        loop {
            let unread = &self.input[self.pos..];
            if let Some(i) = unread.iter().position(|&b| b == b'\n') {
                let line = unread[..=i].to_vec();
                self.pos += i + 1;
                if discarding || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Complete(line));
            }
            if unread.len() > max {
                // Keep memory flat: drop what we have and look for the end.
                discarding = true;
                self.pos = self.input.len();
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(r) => r?,
                Err(_) => return Err(ReadError::Timeout),
            }
        }
    }

    /// Takes up to `max` buffered bytes, reading by `deadline` if none are
    /// buffered. Used for BDAT chunks.
    pub async fn read_some(&mut self, max: usize, deadline: Instant) -> Result<&[u8], ReadError> {
        if !self.has_buffered_input() {
            self.read_more(deadline).await?;
        }
        let n = (self.input.len() - self.pos).min(max);
        let start = self.pos;
        self.pos += n;
        Ok(&self.input[start..start + n])
    }

    /// A deadline one timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Unread buffered bytes, without consuming them.
    pub fn peek(&self) -> &[u8] {
        &self.input[self.pos..]
    }

    /// Marks `n` peeked bytes as read.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.input.len());
    }

    /// Reads more input into the buffer; fails if nothing comes by
    /// `deadline`. Callers set the deadline per line or per chunk, so a client
    /// dribbling bytes cannot keep a session forever.
    pub async fn read_more(&mut self, deadline: Instant) -> Result<(), ReadError> {
        match tokio::time::timeout_at(deadline, self.fill()).await {
            Ok(r) => r,
            Err(_) => Err(ReadError::Timeout),
        }
    }

    /// Upgrades to TLS (STARTTLS). Anything the client sent after the
    /// command is dropped: it was not protected (RFC 3207 §4.2, CVE-2011-0411).
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        self.pos = 0;
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(io::Error::other("TLS already active"));
        };
        let tls = tokio::time::timeout(self.timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Some(Stream::Tls(Box::new(tls)));
        Ok(())
    }

    /// Sends what is queued and closes.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.shutdown()).await;
        }
    }
}
