//! The byte stream under every protocol session (SMTP, IMAP, POP3): plain
//! TCP that may turn into TLS (STARTTLS, STLS), an input buffer with reads
//! bounded in length and time, and an output buffer flushed only when the
//! client waits for an answer (pipelining).
//!
//! Layout: `conn` ([`Conn`], [`Stream`], [`Line`], [`ReadError`]); `deflate`
//! (COMPRESS=DEFLATE, RFC 4978); `listen` ([`accept_loop`], [`open_stream`]:
//! the accept loop with connection limit and graceful stop, implicit TLS);
//! `dns` (the resolver `[dns]` describes, for every part that asks DNS).
//!
//! Knows no protocol; depends only on tokio, tokio-rustls, flate2,
//! hickory-resolver and the config's `[dns]`.

mod conn;
mod deflate;
pub mod dns;
mod listen;

pub use conn::{Conn, Line, ReadError, Stream};
pub use listen::{accept_loop, open_stream, Listening, SessionIds};
