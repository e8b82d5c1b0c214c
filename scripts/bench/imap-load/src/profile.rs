//! The load: simulated clients that each run sessions modelled on Dovecot
//! imaptest's default profile, one after another, until the deadline.
//!
//! One session, with imaptest's default probabilities where it has one:
//!
//! | step        | command                                         | chance |
//! |-------------|-------------------------------------------------|--------|
//! | login       | `LOGIN user pass` (over implicit TLS)           | 100 %  |
//! | list        | `LIST "" *`                                     | 50 %   |
//! | status      | `STATUS INBOX (MESSAGES UNSEEN RECENT)`         | 50 %   |
//! | select      | `SELECT INBOX`                                  | 100 %  |
//! | fetch       | `FETCH n:* (UID FLAGS ENVELOPE)`, newest 100    | 100 %  |
//! | fetch2      | `FETCH n (BODY.PEEK[])`, random n, again 30 %   | 100 %  |
//! | store       | `STORE a:b +FLAGS (…)` then `STORE c:d -FLAGS`  | 50 %   |
//! | delete      | `STORE a:b +FLAGS.SILENT (\Deleted)`            | 100 %  |
//! | expunge     | `EXPUNGE`                                       | 100 %  |
//! | append      | `APPEND INBOX`, another one 5 %                 | 100 %  |
//! | idle        | `IDLE`, `DONE` after `idle_ms`                  | 100 %  |
//! | logout      | `LOGOUT`                                        | 100 %  |
//!
//! imaptest's FETCH asks for random fields of a random 100-message range;
//! here it is the fields a client lists a mailbox with, for the newest 100.
//! STORE uses `\Seen \Flagged \Answered \Draft` and keywords `$Label1..5`,
//! as imaptest does. DELETE marks one message, or more when the mailbox has
//! grown past its target size, so appends and expunges keep it about level.
//! imaptest's IDLE has no wait of its own; here a short fixed one
//! (`idle_ms`) stands for a client that looks at the mailbox for a moment.
//! The wait is not cut short when the server reports news, so it costs
//! every server the same; how many IDLEs saw news is counted apart. COPY (33 %
//! in imaptest) is left out. Only IMAP4rev1 and IDLE are used; literals are
//! synchronizing; no command is pipelined.
//!
//! All clients log in as the same user and work on the same INBOX, as
//! imaptest does with one `user`, so sessions see each other's appends,
//! flag changes and expunges.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::client::{quoted, Client, ClientError, Reply, Status};
use crate::message::{self, Rng};
use crate::stats::{Op, Stats};

const FLAGS: &[&str] = &[
    "\\Seen",
    "\\Flagged",
    "\\Answered",
    "\\Draft",
    "$Label1",
    "$Label2",
    "$Label3",
    "$Label4",
    "$Label5",
];

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    /// Bound on each command and on connecting.
    pub timeout: Duration,
}

/// How the load runs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub clients: u32,
    pub duration: Duration,
    pub mailbox: String,
    /// The message count appends and expunges keep the mailbox near.
    pub target_messages: u32,
    pub idle: Duration,
    pub seed: u64,
}

struct Shared {
    target: Target,
    options: LoadOptions,
    tls: TlsConnector,
    deadline: Instant,
    /// Set when a login is refused: stop at once rather than risk the
    /// server's brute-force guard with more wrong passwords.
    abort: AtomicBool,
}

/// Why a session ended early.
enum Stop {
    /// The run is over (deadline reached or aborted).
    Done,
    /// The connection failed; the client starts a new session.
    Failed(Op, ClientError),
}

/// Runs the load; returns merged statistics, and whether a login was refused.
pub async fn run(target: Target, options: LoadOptions, tls: TlsConnector) -> (Stats, bool) {
    let shared = Arc::new(Shared {
        deadline: Instant::now() + options.duration,
        target,
        options,
        tls,
        abort: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for id in 0..shared.options.clients {
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move { client_loop(id, &shared).await }));
    }
    let mut total = Stats::default();
    for t in tasks {
        match t.await {
            Ok(stats) => total.merge(&stats),
            Err(e) => total.error(
                Op::Connect,
                &ClientError::Protocol(format!("client task: {e}")),
            ),
        }
    }
    (total, shared.abort.load(Ordering::Relaxed))
}

async fn client_loop(id: u32, shared: &Shared) -> Stats {
    let mut rng = Rng::new(shared.options.seed ^ (u64::from(id) << 32));
    let mut stats = Stats::default();
    // Messages this client appends: numbered apart from the populated ones
    // and from other clients'.
    let mut next_append = 1_000_000_000 * (u64::from(id) + 1);
    while !shared.over() {
        let mut session = Session {
            shared,
            rng: &mut rng,
            stats: &mut stats,
            next_append: &mut next_append,
        };
        match session.run().await {
            Ok(()) => stats.sessions += 1,
            Err(Stop::Done) => break,
            Err(Stop::Failed(op, e)) => {
                if !shared.over() {
                    stats.error(op, &e);
                    // Do not spin against a server that is gone.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    stats
}

impl Shared {
    fn over(&self) -> bool {
        Instant::now() >= self.deadline || self.abort.load(Ordering::Relaxed)
    }
}

struct Session<'a> {
    shared: &'a Shared,
    rng: &'a mut Rng,
    stats: &'a mut Stats,
    next_append: &'a mut u64,
}

impl Session<'_> {
    async fn run(&mut self) -> Result<(), Stop> {
        let shared = self.shared;
        let t = &shared.target;
        let o = &shared.options;
        let started = Instant::now();
        let mut c = Client::connect(t.addr, &shared.tls, t.timeout)
            .await
            .map_err(|e| Stop::Failed(Op::Connect, e))?;
        self.count(Op::Connect, started, Status::Ok, "", "");

        let login = format!("LOGIN {} {}", quoted(&t.user), quoted(&t.password));
        let reply = self.step(&mut c, Op::Login, &login).await?;
        if reply.status != Status::Ok {
            // Never try again with a password that was refused.
            shared.abort.store(true, Ordering::Relaxed);
            eprintln!("imap-load: LOGIN refused: {}", reply.line.trim_end());
            return Err(Stop::Done);
        }
        let mailbox = quoted(&o.mailbox);
        if self.rng.chance(50) {
            self.step(&mut c, Op::List, "LIST \"\" *").await?;
        }
        if self.rng.chance(50) {
            let status = format!("STATUS {mailbox} (MESSAGES UNSEEN RECENT)");
            self.step(&mut c, Op::Status, &status).await?;
        }
        let reply = self
            .step(&mut c, Op::Select, &format!("SELECT {mailbox}"))
            .await?;
        if reply.status != Status::Ok {
            return Err(Stop::Failed(
                Op::Select,
                ClientError::Protocol(format!("SELECT refused: {}", reply.line.trim_end())),
            ));
        }

        if c.exists > 0 {
            let first = c.exists.saturating_sub(99).max(1);
            let fetch = format!("FETCH {first}:* (UID FLAGS ENVELOPE)");
            self.step(&mut c, Op::Fetch, &fetch).await?;
        }
        loop {
            if c.exists > 0 {
                let n = self.rng.between(1, c.exists);
                let fetch = format!("FETCH {n} (BODY.PEEK[])");
                self.step(&mut c, Op::Fetch2, &fetch).await?;
            }
            if !self.rng.chance(30) {
                break;
            }
        }
        if self.rng.chance(50) {
            for sign in ['+', '-'] {
                if let Some((a, b)) = self.range(c.exists, 5) {
                    let flags = self.flags();
                    let store = format!("STORE {a}:{b} {sign}FLAGS ({flags})");
                    self.step(&mut c, Op::Store, &store).await?;
                }
            }
        }
        // One message, plus up to nine more while the mailbox is over its
        // target size.
        let excess = c.exists.saturating_sub(o.target_messages);
        let count = (1 + excess.min(9)).min(c.exists);
        if count > 0 {
            let a = self.rng.between(1, c.exists - count + 1);
            let b = a + count - 1;
            let store = format!("STORE {a}:{b} +FLAGS.SILENT (\\Deleted)");
            self.step(&mut c, Op::Delete, &store).await?;
        }
        self.step(&mut c, Op::Expunge, "EXPUNGE").await?;
        loop {
            self.append(&mut c).await?;
            if !self.rng.chance(5) {
                break;
            }
        }
        self.checkpoint()?;
        let started = Instant::now();
        let (reply, news) = c
            .idle(o.idle)
            .await
            .map_err(|e| Stop::Failed(Op::Idle, e))?;
        self.count(Op::Idle, started, reply.status, "IDLE", &reply.line);
        if news {
            self.stats.idle_news += 1;
        }

        self.checkpoint()?;
        let started = Instant::now();
        let reply = c.logout().await.map_err(|e| Stop::Failed(Op::Logout, e))?;
        self.count(Op::Logout, started, reply.status, "LOGOUT", &reply.line);
        if Instant::now() > shared.deadline {
            return Err(Stop::Done);
        }
        Ok(())
    }

    /// Stops the session once the run is over. The connection is dropped
    /// without LOGOUT then: nothing after the deadline is measured.
    fn checkpoint(&self) -> Result<(), Stop> {
        if self.shared.over() {
            Err(Stop::Done)
        } else {
            Ok(())
        }
    }

    async fn step(&mut self, c: &mut Client, op: Op, command: &str) -> Result<Reply, Stop> {
        self.checkpoint()?;
        let started = Instant::now();
        let reply = c.command(command).await.map_err(|e| Stop::Failed(op, e))?;
        self.count(op, started, reply.status, command, &reply.line);
        self.stats.literal_bytes += reply.literal_bytes;
        Ok(reply)
    }

    async fn append(&mut self, c: &mut Client) -> Result<(), Stop> {
        self.checkpoint()?;
        let o = &self.shared.options;
        let index = *self.next_append;
        *self.next_append += 1;
        let body = message::generate(o.seed, index, &self.shared.target.user);
        let flags = if self.rng.chance(50) { "\\Seen" } else { "" };
        let started = Instant::now();
        let reply = c
            .append(&o.mailbox, flags, &body)
            .await
            .map_err(|e| Stop::Failed(Op::Append, e))?;
        self.count(Op::Append, started, reply.status, "APPEND", &reply.line);
        Ok(())
    }

    /// Records a reply that came before the deadline; later ones are not
    /// part of the measured window.
    fn count(&mut self, op: Op, started: Instant, status: Status, what: &str, reply: &str) {
        let now = Instant::now();
        if now <= self.shared.deadline {
            self.stats
                .record(op, status, now - started, what, reply.trim_end());
        }
    }

    /// A random range of up to `len` messages within `1..=exists`.
    fn range(&mut self, exists: u32, len: u32) -> Option<(u32, u32)> {
        if exists == 0 || len == 0 {
            return None;
        }
        let a = self.rng.between(1, exists);
        let b = (a + self.rng.between(1, len) - 1).min(exists);
        Some((a, b))
    }

    /// One to three distinct flags from [`FLAGS`].
    fn flags(&mut self) -> String {
        let mut chosen: Vec<&str> = Vec::new();
        for _ in 0..self.rng.between(1, 3) {
            let f = *self.rng.pick(FLAGS);
            if !chosen.contains(&f) {
                chosen.push(f);
            }
        }
        chosen.join(" ")
    }
}
