//! One IMAP connection: framing, state, and the dispatch of each command
//! (RFC 9051 §3: not authenticated → authenticated → selected → logout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::DecodeMessageError;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;
use pochta_net::{Conn, ReadError};
use pochta_store::AccountId;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cmd;
use crate::extended::{self, Extended};
use crate::selected::Selected;
use crate::{nesting, searchres};
use crate::{Context, Service};

/// Junk commands tolerated before the connection is dropped.
const MAX_BAD_COMMANDS: u32 = 20;
/// How long a client may stay silent between commands (RFC 9051 §5.4:
/// at least 30 minutes).
const AUTOLOGOUT: Duration = Duration::from_secs(30 * 60);
/// Largest literal accepted before login.
const PRE_LOGIN_LITERAL: u64 = 8 * 1024;
/// Largest command (literals included) buffered before login: a user name,
/// a password or an AUTHENTICATE response, with room to spare. Above it the
/// connection is closed, so that nobody unauthenticated holds more than
/// this much memory per connection.
const PRE_LOGIN_MESSAGE: usize = 2 * PRE_LOGIN_LITERAL as usize;
/// Bytes of a command that must arrive within the command timeout.
const PROGRESS_CHUNK: usize = 64 * 1024;

/// Said before closing a connection whose command outgrew
/// `PRE_LOGIN_MESSAGE`.
pub(crate) const TOO_LONG_BEFORE_LOGIN: &str = "* BYE [TOOBIG] Command too long before login\r\n";

/// A framer for commands: a command may carry a message (APPEND) up to
/// the size limit, plus room for the command around it.
pub(crate) fn new_fragmentizer(limits: &pochta_config::Limits) -> Fragmentizer {
    Fragmentizer::new(u32::try_from(limits.max_message_bytes + 64 * 1024).unwrap_or(u32::MAX))
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub account: AccountId,
}

/// Where the session is (RFC 9051 §3).
pub(crate) enum State {
    NotAuthenticated,
    Authenticated(Login),
    Selected(Login, Selected),
    Logout,
}

/// Whether the session goes on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

/// A command a pre-parser rewrote (`extended`, `nesting`, `searchres`),
/// parsed by the codec from the whole rewritten message.
fn decode_rewritten(bytes: &[u8]) -> Option<Command<'static>> {
    CommandCodec::default()
        .decode(bytes)
        .ok()
        .map(|(_, command)| command.into_static())
}

/// Why no command came.
pub(crate) enum Wait {
    Message,
    Closed,
    Timeout,
    Shutdown,
    /// Before login, a command outgrew `PRE_LOGIN_MESSAGE`.
    TooLong,
}

pub(crate) struct Session {
    pub ctx: Arc<Context>,
    pub conn: Conn,
    pub peer: SocketAddr,
    pub service: Service,
    pub id: String,
    pub state: State,
    pub shutdown: watch::Receiver<bool>,
    pub frag: Fragmentizer,
    /// CONDSTORE is on (RFC 7162 §3.1): MODSEQ in every FETCH response.
    pub condstore: bool,
    /// QRESYNC is on (ENABLE QRESYNC, RFC 7162 §3.2.3): VANISHED replaces
    /// EXPUNGE.
    pub qresync: bool,
    /// IMAP4rev2 is on (ENABLE IMAP4rev2, RFC 9051 Appendix A): UTF-8
    /// mailbox names, ESEARCH for every SEARCH, no RECENT.
    pub rev2: bool,
    /// The last `SEARCH RETURN (SAVE)` result, as UIDs, that `$` stands for
    /// (RFC 5182; RFC 9051 §6.4.4.1). Emptied by SELECT, EXAMINE, CLOSE
    /// and UNSELECT.
    pub saved: Vec<u32>,
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
        let frag = new_fragmentizer(&ctx.limits);
        Session {
            ctx,
            conn,
            peer,
            service,
            id,
            state: State::NotAuthenticated,
            shutdown,
            frag,
            condstore: false,
            qresync: false,
            rev2: false,
            saved: Vec::new(),
            bad_commands: 0,
        }
    }

    /// Queues raw response bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.conn.push_bytes(bytes);
    }

    /// `TAG OK [code] text`
    pub fn ok(&mut self, tag: &str, code: Option<&str>, text: &str) {
        self.status(tag, "OK", code, text);
    }

    /// `TAG NO [code] text`
    pub fn no(&mut self, tag: &str, code: Option<&str>, text: &str) {
        self.status(tag, "NO", code, text);
    }

    /// `TAG BAD text`
    pub fn bad(&mut self, tag: &str, text: &str) {
        self.status(tag, "BAD", None, text);
    }

    fn status(&mut self, tag: &str, kind: &str, code: Option<&str>, text: &str) {
        let text = text.replace(['\r', '\n'], " ");
        let line = match code {
            Some(c) => format!("{tag} {kind} [{c}] {text}\r\n"),
            None => format!("{tag} {kind} {text}\r\n"),
        };
        self.conn.push(&line);
    }

    pub fn is_tls(&self) -> bool {
        self.conn.is_tls()
    }

    pub async fn run(mut self) {
        tracing::debug!(session = %self.id, peer = %self.peer, service = self.service.name(), "connected");
        let caps = cmd::auth::capabilities(&self);
        self.conn.push(&format!(
            "* OK [CAPABILITY {caps}] {} Pochta IMAP ready\r\n",
            self.ctx.hostname
        ));
        loop {
            if matches!(self.state, State::Logout) {
                break;
            }
            // RFC 9051 §5.4's 30 minutes are for a logged-in user; before
            // login a silent client is given the command timeout.
            let idle = match self.login() {
                Some(_) => AUTOLOGOUT,
                None => Duration::from_secs(self.ctx.limits.command_timeout_secs),
            };
            match self.next_message(idle).await {
                Wait::Message => {}
                Wait::Closed => break,
                Wait::Timeout => {
                    self.conn.push("* BYE Autologout: idle for too long\r\n");
                    break;
                }
                Wait::Shutdown => {
                    self.conn
                        .push("* BYE [UNAVAILABLE] Server shutting down\r\n");
                    break;
                }
                Wait::TooLong => {
                    self.conn.push(TOO_LONG_BEFORE_LOGIN);
                    break;
                }
            }
            if self.handle_message().await == Flow::Close {
                break;
            }
        }
        self.conn.close().await;
        tracing::debug!(session = %self.id, "closed");
    }

    /// Waits until the fragmentizer holds a complete message, answering
    /// literal announcements on the way. `idle_limit` bounds the wait for the
    /// first byte; once a message has started it must progress by
    /// `PROGRESS_CHUNK` bytes per command timeout.
    pub async fn next_message(&mut self, idle_limit: Duration) -> Wait {
        let mut deadline = Instant::now() + idle_limit;
        let mut progress = 0usize;
        let mut started = false;
        loop {
            match self.frag.progress() {
                Some(info) => {
                    if let FragmentInfo::Line {
                        announcement: Some(LiteralAnnouncement { mode, length }),
                        ..
                    } = info
                    {
                        self.literal_announced(mode, length);
                    }
                    if self.frag.is_message_complete() {
                        return Wait::Message;
                    }
                    continue;
                }
                None => {
                    if self.login().is_none() && self.frag.message_bytes().len() > PRE_LOGIN_MESSAGE
                    {
                        tracing::info!(session = %self.id, peer = %self.peer, "command too long before login; closing");
                        return Wait::TooLong;
                    }
                    let mut shutdown = self.shutdown.clone();
                    if *shutdown.borrow() && !started {
                        return Wait::Shutdown;
                    }
                    let read = tokio::select! {
                        r = self.conn.read_more(deadline) => r,
                        _ = shutdown.changed(), if !started => return Wait::Shutdown,
                    };
                    match read {
                        Ok(()) => {}
                        Err(ReadError::Timeout) => return Wait::Timeout,
                        Err(_) => return Wait::Closed,
                    }
                    let n = self.conn.peek().len();
                    self.frag.enqueue_bytes(self.conn.peek());
                    self.conn.consume(n);
                    if !started {
                        started = true;
                        deadline = self.conn.deadline();
                    }
                    progress += n;
                    if progress >= PROGRESS_CHUNK {
                        progress = 0;
                        deadline = self.conn.deadline();
                    }
                }
            }
        }
    }

    /// RFC 9051 §4.3 / RFC 7888: a sync literal is accepted with `+`, or
    /// refused with a tagged NO when it is too big; a non-sync literal over
    /// the limit is read and thrown away by the fragmentizer.
    fn literal_announced(&mut self, mode: LiteralMode, length: u32) {
        // Before login a client needs no more than a user name and a
        // password: nobody unauthenticated gets to fill memory.
        let limit = if self.login().is_some() {
            self.ctx.limits.max_message_bytes
        } else {
            PRE_LOGIN_LITERAL
        };
        if u64::from(length) > limit {
            match (mode, self.frag.decode_tag().map(|t| t.as_ref().to_string())) {
                (LiteralMode::Sync, Some(tag)) => {
                    self.no(&tag, Some("TOOBIG"), "Literal too big");
                    self.frag.skip_message();
                }
                _ => self.frag.poison_message(),
            }
            return;
        }
        if mode == LiteralMode::Sync {
            self.conn.push("+ Ready for literal data\r\n");
        }
    }

    async fn handle_message(&mut self) -> Flow {
        let intact = !self.frag.is_max_message_size_exceeded() && !self.frag.is_message_poisoned();
        // What the codec cannot take as it is gets rewritten first: search
        // criteria nested too deeply, then `$` (RFC 5182).
        let mut rewritten = None;
        if intact && matches!(self.state, State::Selected(..)) {
            rewritten = nesting::rebalance(self.frag.message_bytes());
            let bytes = rewritten.as_deref().unwrap_or(self.frag.message_bytes());
            match searchres::rewrite(bytes) {
                Ok(Some(r)) => rewritten = Some(r),
                Ok(None) => {}
                Err(searchres::Ambiguous) => {
                    let tag = self.frag.decode_tag().map(|t| t.as_ref().to_string());
                    return self.bad_command(tag.as_deref(), "Unsupported sequence set with $");
                }
            }
        }
        if intact && self.login().is_some() {
            let bytes = rewritten.as_deref().unwrap_or(self.frag.message_bytes());
            if let Some(ext) = extended::recognise(bytes) {
                return self.dispatch_extended(ext).await;
            }
        }
        let decoded = match &rewritten {
            Some(bytes) => decode_rewritten(bytes).ok_or_else(|| {
                let tag = self.frag.decode_tag().map(|t| t.as_ref().to_string());
                (tag, "Syntax error in command")
            }),
            None => self.decode_fragment(),
        };
        match decoded {
            Ok(command) => self.dispatch(command).await,
            Err((tag, why)) => self.bad_command(tag.as_deref(), why),
        }
    }

    /// The command the fragmentizer holds, or the tag (if any) and why not.
    fn decode_fragment(&mut self) -> Result<Command<'static>, (Option<String>, &'static str)> {
        match self.frag.decode_message(&CommandCodec::default()) {
            Ok(command) => Ok(command.into_static()),
            Err(e) => {
                let tag = self.frag.decode_tag().map(|t| t.as_ref().to_string());
                let why = match e {
                    DecodeMessageError::MessageTooLong { .. } => "Command too long",
                    DecodeMessageError::MessagePoisoned { .. } => "Literal too big",
                    _ => "Syntax error in command",
                };
                Err((tag, why))
            }
        }
    }

    /// The command forms imap-codec cannot parse yet (see `extended`).
    async fn dispatch_extended(&mut self, ext: Extended) -> Flow {
        match ext {
            Extended::Bad(tag, why) => self.bad_command(Some(&tag), why),
            Extended::List(list) => cmd::list::list_extended(self, list).await,
            Extended::StatusAppendLimit { rest, only } => match decode_rewritten(&rest) {
                Some(Command {
                    tag,
                    body:
                        CommandBody::Status {
                            mailbox,
                            item_names,
                        },
                }) => {
                    let tag = tag.as_ref().to_string();
                    let extra = cmd::mailbox::AppendLimit { only };
                    let Some(name) = cmd::name(&mailbox, self.rev2) else {
                        return cmd::bad_name(self, &tag);
                    };
                    cmd::mailbox::status(self, &tag, &name, &item_names, Some(extra)).await
                }
                _ => {
                    let tag = self.frag.decode_tag().map(|t| t.as_ref().to_string());
                    self.bad_command(tag.as_deref(), "Syntax error in STATUS")
                }
            },
            Extended::Search(ret, rest) => match decode_rewritten(&rest) {
                Some(Command {
                    tag,
                    body:
                        CommandBody::Search {
                            mut criteria, uid, ..
                        },
                }) => {
                    searchres::resolve_search(&mut criteria, &self.saved);
                    let tag = tag.as_ref().to_string();
                    if !matches!(self.state, State::Selected(..)) {
                        self.bad(&tag, "Select a mailbox first");
                        return Flow::Continue;
                    }
                    cmd::search::search(self, &tag, criteria.as_ref(), uid, Some(ret)).await
                }
                _ => {
                    let tag = self.frag.decode_tag().map(|t| t.as_ref().to_string());
                    self.bad_command(tag.as_deref(), "Syntax error in SEARCH")
                }
            },
        }
    }

    pub fn bad_command(&mut self, tag: Option<&str>, why: &str) -> Flow {
        self.bad_commands += 1;
        match tag {
            Some(tag) => self.bad(tag, why),
            None => self.conn.push(&format!("* BAD {why}\r\n")),
        }
        if self.bad_commands >= MAX_BAD_COMMANDS {
            self.conn.push("* BYE Too many errors\r\n");
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn dispatch(&mut self, mut command: Command<'static>) -> Flow {
        let tag = command.tag.as_ref().to_string();
        let view = match &self.state {
            State::Selected(_, selected) => Some(selected),
            _ => None,
        };
        if searchres::resolve(&mut command.body, &self.saved, view) == searchres::Resolved::Nothing
        {
            // RFC 5182 §2.1: an empty `$` is no error; nothing is done.
            self.ok(&tag, None, "Done (the saved search result is empty)");
            return Flow::Continue;
        }
        let authenticated = !matches!(self.state, State::NotAuthenticated);
        let selected = matches!(self.state, State::Selected(..));
        let utf8 = self.rev2;
        // A mailbox name in the store's UTF-8, or the NO for a bad one.
        macro_rules! name {
            ($mailbox:expr) => {
                match cmd::name(&$mailbox, utf8) {
                    Some(name) => name,
                    None => return cmd::bad_name(self, &tag),
                }
            };
        }
        use CommandBody as C;
        let flow = match command.body {
            // Any state (RFC 9051 §6.1).
            C::Capability => cmd::auth::capability(self, &tag),
            C::Noop => cmd::mailbox::noop(self, &tag).await,
            C::Logout => {
                self.conn.push("* BYE Logging out\r\n");
                self.ok(&tag, None, "LOGOUT completed");
                self.state = State::Logout;
                Flow::Close
            }
            C::Id { .. } => cmd::auth::id(self, &tag),
            // Not authenticated (§6.2).
            C::StartTLS => cmd::auth::starttls(self, &tag).await,
            C::Login { username, password } if !authenticated => {
                cmd::auth::login(
                    self,
                    &tag,
                    username.as_ref(),
                    password.declassify().as_ref(),
                )
                .await
            }
            C::Authenticate {
                mechanism,
                initial_response,
            } if !authenticated => {
                let initial = initial_response.map(|r| r.declassify().to_vec());
                cmd::auth::authenticate(self, &tag, mechanism.as_ref(), initial).await
            }
            C::Login { .. } | C::Authenticate { .. } => {
                self.bad(&tag, "Already authenticated");
                Flow::Continue
            }
            _ if !authenticated => {
                self.bad(&tag, "Log in first");
                Flow::Continue
            }
            // Authenticated (§6.3).
            C::Enable { capabilities } if !selected => {
                cmd::auth::enable(self, &tag, capabilities.as_ref())
            }
            C::Enable { .. } => {
                self.bad(&tag, "ENABLE only before SELECT");
                Flow::Continue
            }
            C::Select {
                mailbox,
                parameters,
            } => cmd::mailbox::select(self, &tag, &name!(mailbox), false, &parameters).await,
            C::Examine {
                mailbox,
                parameters,
            } => cmd::mailbox::select(self, &tag, &name!(mailbox), true, &parameters).await,
            C::Create { mailbox } => cmd::mailbox::create(self, &tag, &name!(mailbox)).await,
            C::Delete { mailbox } => cmd::mailbox::delete(self, &tag, &name!(mailbox)).await,
            C::Rename { from, to } => {
                cmd::mailbox::rename(self, &tag, &name!(from), &name!(to)).await
            }
            C::Subscribe { mailbox } => {
                cmd::mailbox::subscribe(self, &tag, &name!(mailbox), true).await
            }
            C::Unsubscribe { mailbox } => {
                cmd::mailbox::subscribe(self, &tag, &name!(mailbox), false).await
            }
            C::List {
                reference,
                mailbox_wildcard,
            } => {
                cmd::list::list(
                    self,
                    &tag,
                    &name!(reference),
                    &cmd::list::pattern(&mailbox_wildcard),
                    false,
                )
                .await
            }
            C::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                cmd::list::list(
                    self,
                    &tag,
                    &name!(reference),
                    &cmd::list::pattern(&mailbox_wildcard),
                    true,
                )
                .await
            }
            C::Status {
                mailbox,
                item_names,
            } => cmd::mailbox::status(self, &tag, &name!(mailbox), &item_names, None).await,
            C::Namespace => {
                self.conn.push("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                self.ok(&tag, None, "NAMESPACE completed");
                Flow::Continue
            }
            C::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                cmd::append::append(
                    self,
                    &tag,
                    &name!(mailbox),
                    &flags,
                    date.as_ref(),
                    cmd::append::literal_data(&message),
                )
                .await
            }
            C::Idle => cmd::idle::idle(self, &tag).await,
            // RFC 4978: DEFLATE is the only algorithm the codec knows.
            C::Compress { .. } if self.conn.is_compressed() => {
                self.no(&tag, Some("COMPRESSIONACTIVE"), "DEFLATE is already active");
                Flow::Continue
            }
            C::Compress { .. } => {
                self.ok(&tag, None, "DEFLATE active");
                match self.conn.start_deflate().await {
                    Ok(()) => Flow::Continue,
                    Err(e) => {
                        tracing::debug!(session = %self.id, error = %e, "COMPRESS failed");
                        Flow::Close
                    }
                }
            }
            C::GetQuotaRoot { mailbox } => {
                cmd::quota::get_quota_root(self, &tag, &name!(mailbox)).await
            }
            C::GetQuota { root } => cmd::quota::get_quota(self, &tag, root.as_ref()).await,
            C::SetQuota { .. } => {
                self.no(&tag, Some("NOPERM"), "Quotas are set by the administrator");
                Flow::Continue
            }
            _ if !selected => {
                self.bad(&tag, "Select a mailbox first");
                Flow::Continue
            }
            // Selected (§6.4).
            C::Check => cmd::mailbox::noop(self, &tag).await,
            C::Close => cmd::expunge::close(self, &tag, true).await,
            C::Unselect => cmd::expunge::close(self, &tag, false).await,
            C::Expunge => cmd::expunge::expunge(self, &tag, None).await,
            C::ExpungeUid { sequence_set } => {
                cmd::expunge::expunge(self, &tag, Some(&sequence_set)).await
            }
            C::Search {
                charset: Some(charset),
                ..
            } if !cmd::known_charset(charset.as_ref()) => cmd::bad_charset(self, &tag),
            C::Sort { charset, .. } | C::Thread { charset, .. }
                if !cmd::known_charset(charset.as_ref()) =>
            {
                cmd::bad_charset(self, &tag)
            }
            C::Search { criteria, uid, .. } => {
                cmd::search::search(self, &tag, criteria.as_ref(), uid, None).await
            }
            C::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                cmd::fetch::fetch(
                    self,
                    &tag,
                    &sequence_set,
                    &macro_or_item_names,
                    uid,
                    &modifiers,
                )
                .await
            }
            C::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|m| match m {
                        imap_codec::imap_types::command::StoreModifier::UnchangedSince(v) => *v,
                    })
                    .next();
                let request = cmd::store::Request {
                    kind,
                    response,
                    unchanged_since,
                    by_uid: uid,
                };
                cmd::store::store(self, &tag, &sequence_set, &flags, request).await
            }
            C::Sort {
                sort_criteria,
                search_criteria,
                uid,
                ..
            } => {
                let order = cmd::sort::Order::Sort(sort_criteria.as_ref().to_vec());
                cmd::sort::sort(self, &tag, order, search_criteria.as_ref(), uid).await
            }
            C::Thread {
                algorithm,
                search_criteria,
                uid,
                ..
            } => {
                let order = cmd::sort::Order::Thread(algorithm);
                cmd::sort::sort(self, &tag, order, search_criteria.as_ref(), uid).await
            }
            C::Copy {
                sequence_set,
                mailbox,
                uid,
            } => cmd::copy::copy(self, &tag, &sequence_set, &name!(mailbox), uid, false).await,
            C::Move {
                sequence_set,
                mailbox,
                uid,
            } => cmd::copy::copy(self, &tag, &sequence_set, &name!(mailbox), uid, true).await,
        };
        flow
    }

    /// The logged-in user, if any.
    pub fn login(&self) -> Option<&Login> {
        match &self.state {
            State::Authenticated(l) | State::Selected(l, _) => Some(l),
            _ => None,
        }
    }
}
