//! One POP3 connection: its state and the dispatch of each command.

use std::net::SocketAddr;
use std::sync::Arc;

use pochta_net::{Conn, Line, ReadError};
use pochta_store::{FolderId, Message};
use tokio::sync::watch;

use crate::cmd;
use crate::parse::{self, Command, MessageNumber, ParseError};
use crate::reply::{common, Reply};
use crate::{Context, MaildropLock, Service};

/// Junk commands tolerated before the connection is dropped.
const MAX_BAD_COMMANDS: u32 = 10;

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// RFC 1939 §3: AUTHORIZATION until a login succeeds, then TRANSACTION;
/// UPDATE is the QUIT that ends a TRANSACTION (see `cmd::quit`).
pub(crate) enum State {
    Authorization {
        /// The name given by USER, waiting for PASS.
        user: Option<String>,
    },
    Transaction(Maildrop),
}

/// The INBOX as it was at login: numbers stay fixed for the session
/// (RFC 1939 §5), deletions are only marks until QUIT.
pub(crate) struct Maildrop {
    pub user: String,
    pub folder: FolderId,
    pub uidvalidity: u32,
    pub messages: Vec<Message>,
    pub deleted: Vec<bool>,
    _lock: MaildropLock,
}

impl Maildrop {
    pub fn new(
        user: String,
        folder: FolderId,
        uidvalidity: u32,
        messages: Vec<Message>,
        lock: MaildropLock,
    ) -> Maildrop {
        Maildrop {
            user,
            folder,
            uidvalidity,
            deleted: vec![false; messages.len()],
            messages,
            _lock: lock,
        }
    }

    /// A message not marked deleted, or the `-ERR` to send.
    pub fn message(&self, n: MessageNumber) -> Result<&Message, Reply> {
        match (self.messages.get(n.index()), self.deleted.get(n.index())) {
            (Some(_), Some(true)) => Err(Reply::err(format!("Message {n} already deleted"))),
            (Some(m), _) => Ok(m),
            (None, _) => Err(Reply::err(format!("No such message: {n}"))),
        }
    }

    /// Messages not marked deleted, with their numbers.
    pub fn live(&self) -> impl Iterator<Item = (usize, &Message)> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .enumerate()
            .filter(|(_, (_, &deleted))| !deleted)
            .map(|(i, (m, _))| (i + 1, m))
    }

    /// Count and octets of the messages not marked deleted (STAT).
    pub fn totals(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(count, size), (_, m)| (count + 1, size + m.size))
    }

    /// UIDL: stable across sessions as long as the folder's UIDVALIDITY is
    /// (RFC 1939 §7 asks for 1 to 70 printable characters).
    pub fn unique_id(&self, m: &Message) -> String {
        format!("{}.{}", self.uidvalidity, m.uid)
    }
}

pub(crate) struct Session {
    pub ctx: Arc<Context>,
    pub conn: Conn,
    pub peer: SocketAddr,
    pub service: Service,
    pub id: String,
    shutdown: watch::Receiver<bool>,
    pub state: State,
    pub auth_failures: u32,
    bad_commands: u32,
}

/// What commands of the TRANSACTION state work on.
pub(crate) struct Transaction<'a> {
    pub conn: &'a mut Conn,
    pub maildrop: &'a mut Maildrop,
    pub ctx: &'a Context,
    pub id: &'a str,
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
            state: State::Authorization { user: None },
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
        let greeting = format!("{} Pochta POP3 server ready", self.ctx.hostname);
        self.reply(Reply::ok(greeting));
        loop {
            if *self.shutdown.borrow() {
                // RFC 1939 §6: no QUIT, no UPDATE: marked messages stay.
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
                Ok(Line::Complete(line)) => match parse::parse(&line) {
                    Ok(command) => self.command(command).await,
                    Err(e) => self.bad_command(e),
                },
                Ok(Line::TooLong) => self.bad_command_reply("line", common::line_too_long()),
                Err(ReadError::Timeout) => {
                    // RFC 1939 §3: the autologout timer; no UPDATE.
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

    fn bad_command(&mut self, e: ParseError) -> Flow {
        let subject = match e {
            ParseError::UnknownCommand => "unknown",
            _ => "syntax",
        };
        self.bad_command_reply(subject, Reply::err(e.to_string()))
    }

    fn bad_command_reply(&mut self, subject: &str, reply: Reply) -> Flow {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.reject(
                "command",
                subject,
                Reply::err("Too many bad commands, closing connection"),
            );
            return Flow::Close;
        }
        self.reply(reply);
        Flow::Continue
    }

    /// The maildrop and what works on it, in the TRANSACTION state only.
    fn transaction(&mut self) -> Option<Transaction<'_>> {
        match &mut self.state {
            State::Transaction(maildrop) => Some(Transaction {
                conn: &mut self.conn,
                maildrop,
                ctx: &self.ctx,
                id: &self.id,
            }),
            State::Authorization { .. } => None,
        }
    }

    fn not_in_transaction(&mut self) -> Flow {
        self.reply(common::not_in_transaction());
        Flow::Continue
    }

    async fn command(&mut self, command: Command) -> Flow {
        tracing::trace!(session = %self.id, command = command.name(), "command");
        match command {
            Command::Capa => cmd::capa::capa(self),
            Command::Stls => cmd::capa::stls(self).await,
            Command::User(user) => cmd::auth::user(self, user),
            Command::Pass(password) => cmd::auth::pass(self, password).await,
            Command::Auth { mechanism, initial } => cmd::auth::auth(self, mechanism, initial).await,
            Command::Quit => cmd::quit::quit(self).await,
            Command::Stat => match self.transaction() {
                Some(t) => cmd::maildrop::stat(t),
                None => self.not_in_transaction(),
            },
            Command::List(n) => match self.transaction() {
                Some(t) => cmd::maildrop::list(t, n),
                None => self.not_in_transaction(),
            },
            Command::Uidl(n) => match self.transaction() {
                Some(t) => cmd::maildrop::uidl(t, n),
                None => self.not_in_transaction(),
            },
            Command::Dele(n) => match self.transaction() {
                Some(t) => cmd::maildrop::dele(t, n),
                None => self.not_in_transaction(),
            },
            Command::Rset => match self.transaction() {
                Some(t) => cmd::maildrop::rset(t),
                None => self.not_in_transaction(),
            },
            Command::Noop => match self.transaction() {
                Some(t) => cmd::maildrop::noop(t),
                None => self.not_in_transaction(),
            },
            Command::Retr(n) => match self.transaction() {
                Some(t) => cmd::retr::retr(t, n, None).await,
                None => self.not_in_transaction(),
            },
            Command::Top { message, lines } => match self.transaction() {
                Some(t) => cmd::retr::retr(t, message, Some(lines)).await,
                None => self.not_in_transaction(),
            },
        }
    }
}
