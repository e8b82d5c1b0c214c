//! One SMTP connection: its state and the dispatch of each command.

use std::net::SocketAddr;
use std::sync::Arc;

use pochta_store::{AccountId, LocalRecipient, QueuedRecipient};
use smtp_proto::{Error as ParseError, Request};
use tokio::sync::watch;

use crate::cmd;
use crate::reply::{common, Reply};
use crate::{Context, Service};
use pochta_net::{Conn, Line, ReadError};

/// Junk commands tolerated before the connection is dropped.
const MAX_BAD_COMMANDS: u32 = 10;

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// The client's greeting.
pub(crate) struct Helo {
    pub name: String,
    pub extended: bool,
}

/// A logged-in submitter.
pub(crate) struct Login {
    pub account: AccountId,
    pub user: String,
}

/// The mail transaction between MAIL and the end of DATA (RFC 5321 §3.3).
#[derive(Default)]
pub(crate) struct Envelope {
    pub from: String,
    pub smtputf8: bool,
    pub declared_size: u64,
    pub envid: Option<String>,
    pub ret: Option<String>,
    /// Recipients as the client gave them, for the log.
    pub rcpts: Vec<String>,
    pub local: Vec<LocalRecipient>,
    pub remote: Vec<QueuedRecipient>,
    /// A BDAT transfer in progress (RFC 3030).
    pub chunks: Option<cmd::data::Chunks>,
    /// SPF results taken at MAIL FROM (MX service with checks on).
    pub spf: Option<pochta_filter::SpfChecks>,
}

pub(crate) struct Session {
    pub ctx: Arc<Context>,
    pub conn: Conn,
    pub peer: SocketAddr,
    pub service: Service,
    pub id: String,
    shutdown: watch::Receiver<bool>,
    pub helo: Option<Helo>,
    pub login: Option<Login>,
    pub envelope: Option<Envelope>,
    pub auth_failures: u32,
    bad_commands: u32,
}

impl Session {
    pub fn new(
        ctx: Arc<Context>,
        conn: Conn,
        peer: SocketAddr,
        service: Service,
        shutdown: watch::Receiver<bool>,
    ) -> Session {
        let id = ctx.session_id();
        Session {
            ctx,
            conn,
            peer,
            service,
            id,
            shutdown,
            helo: None,
            login: None,
            envelope: None,
            auth_failures: 0,
            bad_commands: 0,
        }
    }

    pub fn reply(&mut self, reply: Reply) {
        self.conn.push(&reply.to_wire());
    }

    /// Logs a refusal in the mail log and sends it.
    pub fn reject(&mut self, stage: &str, subject: &str, reply: Reply) {
        self.ctx
            .maillog
            .rejected(&self.id, self.peer, stage, subject, &reply.to_string());
        self.reply(reply);
    }

    pub async fn run(mut self) {
        tracing::debug!(session = %self.id, peer = %self.peer, service = self.service.name(), "connected");
        let greeting = format!("{} ESMTP Pochta", self.ctx.hostname);
        self.reply(Reply::new(220, "", greeting));
        loop {
            if *self.shutdown.borrow() {
                self.reply(common::shutting_down());
                break;
            }
            let max = self.ctx.limits.max_line_bytes;
            let line = {
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    line = self.conn.read_line(max) => line,
                    _ = shutdown.changed() => continue,
                }
            };
            let flow = match line {
                Ok(Line::Complete(line)) => self.command(&line).await,
                Ok(Line::TooLong) => self.bad_command("line", common::line_too_long()),
                Err(ReadError::Timeout) => {
                    self.reject("command", "timeout", common::timeout());
                    Flow::Close
                }
                Err(ReadError::Closed) => Flow::Close,
                Err(ReadError::Io(e)) => {
                    tracing::debug!(session = %self.id, error = %e, "connection failed");
                    Flow::Close
                }
            };
            if flow == Flow::Close {
                break;
            }
        }
        self.conn.close().await;
        tracing::debug!(session = %self.id, "closed");
    }

    fn bad_command(&mut self, subject: &str, reply: Reply) -> Flow {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.reject(
                "command",
                subject,
                Reply::new(421, "4.7.0", "Too many errors, closing connection"),
            );
            return Flow::Close;
        }
        self.reject("command", subject, reply);
        Flow::Continue
    }

    async fn command(&mut self, line: &[u8]) -> Flow {
        // RFC 5321 §2.3.8: lines end in CRLF. A bare LF is refused rather
        // than guessed at (SMTP smuggling relies on such guesses).
        if !line.ends_with(b"\r\n") {
            return self.bad_command(
                "bare LF",
                Reply::new(500, "5.5.2", "Line must end with CRLF"),
            );
        }
        if line.contains(&0) {
            return self.bad_command("NUL", Reply::new(500, "5.5.2", "NUL character in command"));
        }
        if std::str::from_utf8(line).is_err() {
            return self.bad_command(
                "UTF-8",
                Reply::new(501, "5.5.2", "Command is not valid UTF-8"),
            );
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => return self.parse_error(e),
        };
        tracing::trace!(session = %self.id, command = request.name(), "command");
        match request {
            Request::Ehlo { host } => cmd::ehlo::ehlo(self, host, true),
            Request::Helo { host } => cmd::ehlo::ehlo(self, host, false),
            Request::StartTls => cmd::ehlo::starttls(self).await,
            Request::Auth {
                mechanism,
                initial_response,
            } => cmd::auth::auth(self, mechanism, initial_response).await,
            Request::Mail { from } => cmd::envelope::mail(self, from).await,
            Request::Rcpt { to } => cmd::envelope::rcpt(self, to).await,
            Request::Data => cmd::data::data(self).await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => cmd::data::bdat(self, chunk_size, is_last).await,
            Request::Rset => {
                self.envelope = None;
                self.reply(common::ok());
                Flow::Continue
            }
            Request::Noop { .. } => {
                self.reply(common::ok());
                Flow::Continue
            }
            Request::Quit => {
                self.reply(Reply::new(221, "2.0.0", "Bye"));
                Flow::Close
            }
            // RFC 5321 §3.5.3: do not confirm or deny addresses.
            Request::Vrfy { .. } => {
                self.reply(Reply::new(
                    252,
                    "2.1.5",
                    "Cannot VRFY user, but will accept message",
                ));
                Flow::Continue
            }
            Request::Help { .. } => {
                self.reply(Reply::new(214, "2.0.0", "See RFC 5321"));
                Flow::Continue
            }
            Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. }
            | Request::Lhlo { .. } => self.bad_command(
                "command",
                Reply::new(502, "5.5.1", "Command not implemented"),
            ),
        }
    }

    fn parse_error(&mut self, e: ParseError) -> Flow {
        let reply = match e {
            ParseError::UnknownCommand => Reply::new(500, "5.5.2", "Unknown command"),
            ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Invalid sender address"),
            ParseError::InvalidRecipientAddress => {
                Reply::new(501, "5.1.3", "Invalid recipient address")
            }
            ParseError::SyntaxError { syntax } => common::syntax(format!("Syntax: {syntax}")),
            ParseError::InvalidParameter { param } => {
                common::syntax(format!("Invalid parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => {
                Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
            }
            ParseError::ResponseTooLong => common::line_too_long(),
            ParseError::NeedsMoreData { .. } => common::syntax("Incomplete command"),
            _ => common::syntax("Syntax error"),
        };
        self.bad_command("syntax", reply)
    }
}
