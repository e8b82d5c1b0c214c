//! The byte stream under every protocol session (SMTP, IMAP, POP3): plain
//! TCP that may turn into TLS (STARTTLS, STLS), an input buffer with reads
//! bounded in length and time, and an output buffer flushed only when the
//! client waits for an answer (pipelining).
//!
//! Layout: `conn` ([`Conn`], [`Stream`], [`Line`], [`ReadError`]); `deflate`
//! (COMPRESS=DEFLATE, RFC 4978); `listen` ([`accept_loop`], [`open_stream`]:
//! the accept loop with its connection budget and graceful stop, implicit
//! TLS); `budget` (connections per service and per client address);
//! `throttle` (log lines a client can cause, once a minute with a count);
//! `dns` (the resolver `[dns]` describes, for every part that asks DNS).
//!
//! Knows no protocol; depends only on tokio, tokio-rustls, flate2,
//! hickory-resolver and the config's `[dns]`.

pub mod budget;
mod conn;
mod deflate;
pub mod dns;
mod listen;
pub mod throttle;

pub use budget::{Budget, Budgets};
pub use conn::{Conn, Line, ReadError, Stream};
pub use listen::{accept_loop, open_stream, Listening, SessionIds};
