//! imap-load: the IMAP load generator behind `scripts/bench/imap`. It drives
//! any IMAP4rev1 server over implicit TLS, so Pochta and Dovecot get exactly
//! the same client.
//!
//! Layout:
//! - `client`: a minimal IMAP4rev1 client (tagged commands, literals,
//!   EXISTS/EXPUNGE tracking, APPEND, IDLE);
//! - `profile`: the simulated clients, modelled on imaptest's default
//!   profile;
//! - `message`: deterministic generated messages, with a rare word for
//!   `SEARCH TEXT`;
//! - `maildir`: the same messages written straight into a Maildir;
//! - `stats`: per-command counters and the report;
//! - `tls`: the certificate-ignoring TLS setup (bench use only).
//!
//! Subcommands: `load` (the throughput run), `populate` (APPEND generated
//! messages), `maildir` (write them into a Maildir), `search` (time `SEARCH
//! TEXT`), `fetch` (time a first-sync `UID FETCH 1:*` of envelopes and body
//! structures). Each prints a human report and a last `RESULT key=value ...` line
//! for the driving script. This tool depends on no Pochta crate: it sees the
//! server only through the wire.

mod client;
mod maildir;
mod message;
mod profile;
mod stats;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::client::{quoted, Client, ClientError, Status};
use crate::profile::{LoadOptions, Target};

#[derive(Parser)]
#[command(version, about = "IMAP load generator modelled on Dovecot imaptest")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Server {
    /// The server's implicit-TLS (imaps) address.
    #[arg(long)]
    addr: SocketAddr,
    /// Login name.
    #[arg(long)]
    user: String,
    /// Password; from the environment so that it stays out of `ps`.
    #[arg(long, env = "IMAP_LOAD_PASSWORD", hide_env_values = true)]
    password: String,
    /// Bound on connecting and on each command, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Seed of the generated messages and of the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

impl Server {
    fn target(&self) -> Target {
        Target {
            addr: self.addr,
            user: self.user.clone(),
            password: self.password.clone(),
            timeout: Duration::from_secs(self.timeout),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// N simulated clients for T seconds; prints operations per second.
    Load {
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value_t = 20)]
        clients: u32,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
        /// Message count that appends and expunges keep the mailbox near.
        #[arg(long, default_value_t = 1000)]
        target_messages: u32,
        /// Longest IDLE per session, in milliseconds.
        #[arg(long, default_value_t = 50)]
        idle_ms: u64,
    },
    /// APPENDs generated messages START..START+COUNT over several connections.
    Populate {
        #[command(flatten)]
        server: Server,
        #[arg(long, default_value = "INBOX")]
        mailbox: String,
        /// CREATE the mailbox first (an existing one is fine).
        #[arg(long)]
        create: bool,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long, default_value_t = 4)]
        connections: u64,
    },
    /// SELECTs a mailbox populated with messages 0..POPULATED, then times
    /// `SEARCH TEXT` for the rare word REPEAT times.
    Search {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        mailbox: String,
        #[arg(long)]
        populated: u64,
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
    /// SELECTs a mailbox, then times `UID FETCH 1:* (ITEMS)`, REPEAT
    /// times; every message must come back. The default items are what a
    /// mail client asks on its first sync of a folder (`UID FLAGS ENVELOPE
    /// BODYSTRUCTURE`); `--headers` asks what Thunderbird lists a folder
    /// with (`BODY.PEEK[HEADER.FIELDS (...)]`).
    Fetch {
        #[command(flatten)]
        server: Server,
        #[arg(long)]
        mailbox: String,
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        #[arg(long)]
        headers: bool,
    },
    /// Writes generated messages START..START+COUNT straight into a Maildir
    /// folder (for Dovecot; no server involved).
    Maildir {
        /// The Maildir folder (its cur/, new/ and tmp/ are created).
        #[arg(long)]
        dir: PathBuf,
        /// The To: address written into the messages.
        #[arg(long)]
        user: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Prints generated message INDEX (to look at the data).
    Show {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        index: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => fail(&why),
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("imap-load: {why}");
    ExitCode::FAILURE
}

async fn run(command: Command) -> Result<(), String> {
    let tls = tls::connector_dangerous().map_err(|e| format!("TLS setup: {e}"))?;
    match command {
        Command::Load {
            server,
            clients,
            secs,
            mailbox,
            target_messages,
            idle_ms,
        } => {
            let target = server.target();
            preflight(&target, &tls).await?;
            let options = LoadOptions {
                clients,
                duration: Duration::from_secs(secs),
                mailbox,
                target_messages,
                idle: Duration::from_millis(idle_ms),
                seed: server.seed,
            };
            println!(
                "imap-load: {clients} clients x {secs} s against {} as {} (mailbox target {target_messages}, idle {idle_ms} ms)",
                target.addr, target.user
            );
            let cpu0 = cpu_seconds();
            let (stats, refused) = profile::run(target, options, tls).await;
            let cpu = cpu_seconds() - cpu0;
            print!("{}", stats.report(secs as f64));
            println!("imap-load: load generator CPU {cpu:.1} s (user+sys)");
            println!(
                "RESULT {} gen_cpu_s={cpu:.2}",
                stats.result_fields(secs as f64)
            );
            if refused {
                return Err("a LOGIN was refused; run stopped".into());
            }
            Ok(())
        }
        Command::Populate {
            server,
            mailbox,
            create,
            count,
            start,
            connections,
        } => populate(&server, &tls, &mailbox, create, start, count, connections).await,
        Command::Search {
            server,
            mailbox,
            populated,
            repeat,
        } => search(&server, &tls, &mailbox, populated, repeat).await,
        Command::Fetch {
            server,
            mailbox,
            repeat,
            headers,
        } => fetch(&server, &tls, &mailbox, repeat, headers).await,
        Command::Maildir {
            dir,
            user,
            count,
            start,
            seed,
        } => {
            let began = Instant::now();
            maildir::write(&dir, seed, start, count, &user)
                .map_err(|e| format!("writing {}: {e}", dir.display()))?;
            let secs = began.elapsed().as_secs_f64();
            println!(
                "imap-load: wrote {count} messages into {} in {secs:.1} s",
                dir.display()
            );
            println!("RESULT written={count} secs={secs:.3} retried=0");
            Ok(())
        }
        Command::Show { seed, index } => {
            let m = message::generate(seed, index, "user@bench.test");
            print!("{}", String::from_utf8_lossy(&m));
            Ok(())
        }
    }
}

/// CPU time of this process so far (utime + stime from /proc/self/stat).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the ")" that ends the command name; utime and stime are
    // fields 14 and 15 of the whole line.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// Connects and logs in; a refused login is an error that stops the caller
/// before any other connection tries the same password.
async fn login(target: &Target, tls: &TlsConnector) -> Result<Client, String> {
    let mut c = Client::connect(target.addr, tls, target.timeout)
        .await
        .map_err(|e| format!("{}: {e}", target.addr))?;
    let reply = c
        .command(&format!(
            "LOGIN {} {}",
            quoted(&target.user),
            quoted(&target.password)
        ))
        .await
        .map_err(|e| format!("LOGIN: {e}"))?;
    if reply.status != Status::Ok {
        return Err(format!(
            "LOGIN as {} refused: {}",
            target.user,
            reply.line.trim_end()
        ));
    }
    Ok(c)
}

async fn preflight(target: &Target, tls: &TlsConnector) -> Result<(), String> {
    let c = login(target, tls).await?;
    c.logout().await.map_err(|e| format!("LOGOUT: {e}"))?;
    Ok(())
}

async fn populate(
    server: &Server,
    tls: &TlsConnector,
    mailbox: &str,
    create: bool,
    start: u64,
    count: u64,
    connections: u64,
) -> Result<(), String> {
    let target = server.target();
    let mut c = login(&target, tls).await?;
    if create {
        let reply = c
            .command(&format!("CREATE {}", quoted(mailbox)))
            .await
            .map_err(|e| format!("CREATE: {e}"))?;
        if reply.status == Status::Bad {
            return Err(format!("CREATE {mailbox}: {}", reply.line.trim_end()));
        }
    }
    c.logout().await.map_err(|e| format!("LOGOUT: {e}"))?;

    let began = Instant::now();
    let connections = connections.clamp(1, count.max(1));
    let target = Arc::new(target);
    let retried = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for k in 0..connections {
        let target = target.clone();
        let tls = tls.clone();
        let mailbox = mailbox.to_string();
        let seed = server.seed;
        let retried = retried.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = login(&target, &tls).await?;
            let mut i = start + k;
            while i < start + count {
                let m = message::generate(seed, i, &target.user);
                append_retrying(&mut c, &mailbox, &m, &retried)
                    .await
                    .map_err(|e| format!("APPEND of message {i}: {e}"))?;
                if k == 0 && (i - start) % 10_000 < connections && i > start {
                    eprintln!("imap-load: populate: {} of {count}", i - start);
                }
                i += connections;
            }
            c.logout().await.map_err(|e| format!("LOGOUT: {e}"))?;
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| format!("populate task: {e}"))??;
    }
    let secs = began.elapsed().as_secs_f64();
    println!(
        "imap-load: appended {count} messages to {mailbox} in {secs:.1} s ({:.0}/s, {connections} connections)",
        count as f64 / secs
    );
    let retried = retried.load(Ordering::Relaxed);
    if retried > 0 {
        println!(
            "imap-load: {retried} APPEND(s) refused with a transient server error were retried"
        );
    }
    println!("RESULT appended={count} secs={secs:.3} retried={retried}");
    Ok(())
}

/// Tries an APPEND again when the server refuses it with `[SERVERBUG]` or
/// `[UNAVAILABLE]` (RFC 5530: a server-side fault, "try again later"), up
/// to a few times. Only for populating, which is not measured: a server
/// fault must not leave the two servers with different data. Under load
/// such replies are counted as NO instead.
async fn append_retrying(
    c: &mut Client,
    mailbox: &str,
    message: &[u8],
    retried: &AtomicU64,
) -> Result<(), String> {
    const ATTEMPTS: u64 = 10;
    for attempt in 1..=ATTEMPTS {
        let reply = c
            .append(mailbox, "", message)
            .await
            .map_err(|e: ClientError| e.to_string())?;
        let transient =
            reply.line.starts_with("[SERVERBUG]") || reply.line.starts_with("[UNAVAILABLE]");
        match reply.status {
            Status::Ok => return Ok(()),
            Status::No if transient && attempt < ATTEMPTS => {
                retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            _ => return Err(reply.line.trim_end().to_string()),
        }
    }
    unreachable!("the last attempt returns")
}

async fn search(
    server: &Server,
    tls: &TlsConnector,
    mailbox: &str,
    populated: u64,
    repeat: u32,
) -> Result<(), String> {
    let target = server.target();
    let mut c = login(&target, tls).await?;
    let began = Instant::now();
    let reply = c
        .command(&format!("SELECT {}", quoted(mailbox)))
        .await
        .map_err(|e| format!("SELECT: {e}"))?;
    if reply.status != Status::Ok {
        return Err(format!("SELECT {mailbox}: {}", reply.line.trim_end()));
    }
    let select_secs = began.elapsed().as_secs_f64();
    let expected = message::rare_word_count(populated);
    println!(
        "imap-load: SELECT {mailbox}: {} messages in {select_secs:.2} s; SEARCH TEXT \"{}\" should find {expected}",
        c.exists,
        message::RARE_WORD
    );
    let mut times = Vec::new();
    let mut hits = 0;
    for round in 1..=repeat.max(1) {
        let began = Instant::now();
        let reply = c
            .command(&format!("SEARCH TEXT {}", quoted(message::RARE_WORD)))
            .await
            .map_err(|e| format!("SEARCH: {e}"))?;
        let secs = began.elapsed().as_secs_f64();
        if reply.status != Status::Ok {
            return Err(format!("SEARCH: {}", reply.line.trim_end()));
        }
        hits = reply.search.len();
        println!("imap-load: SEARCH TEXT round {round}: {secs:.3} s, {hits} hits");
        times.push(secs);
    }
    let messages = c.exists;
    c.logout().await.map_err(|e| format!("LOGOUT: {e}"))?;
    let first = times[0];
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    if hits as u64 != expected {
        eprintln!("imap-load: warning: SEARCH found {hits} messages, {expected} expected");
    }
    println!(
        "RESULT messages={messages} select_secs={select_secs:.3} first_secs={first:.4} median_secs={median:.4} hits={hits} expected={expected}"
    );
    Ok(())
}

/// The FETCH a mail client sends to learn a folder it has not seen before.
const FIRST_SYNC_FETCH: &str = "UID FETCH 1:* (UID FLAGS ENVELOPE BODYSTRUCTURE)";

/// The FETCH Thunderbird lists a folder with.
const HEADERS_FETCH: &str = "UID FETCH 1:* (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To Content-Type Reply-To)])";

async fn fetch(
    server: &Server,
    tls: &TlsConnector,
    mailbox: &str,
    repeat: u32,
    headers: bool,
) -> Result<(), String> {
    let command = if headers {
        HEADERS_FETCH
    } else {
        FIRST_SYNC_FETCH
    };
    let target = server.target();
    let mut c = login(&target, tls).await?;
    let reply = c
        .command(&format!("SELECT {}", quoted(mailbox)))
        .await
        .map_err(|e| format!("SELECT: {e}"))?;
    if reply.status != Status::Ok {
        return Err(format!("SELECT {mailbox}: {}", reply.line.trim_end()));
    }
    let messages = c.exists;
    println!("imap-load: SELECT {mailbox}: {messages} messages; timing {command}");
    let mut times = Vec::new();
    let mut literal_bytes = 0;
    for round in 1..=repeat.max(1) {
        let began = Instant::now();
        let reply = c
            .command(command)
            .await
            .map_err(|e| format!("UID FETCH: {e}"))?;
        let secs = began.elapsed().as_secs_f64();
        if reply.status != Status::Ok {
            return Err(format!("UID FETCH: {}", reply.line.trim_end()));
        }
        if reply.fetched != messages {
            return Err(format!(
                "UID FETCH 1:* answered for {} of {messages} messages",
                reply.fetched
            ));
        }
        literal_bytes = reply.literal_bytes;
        println!(
            "imap-load: UID FETCH round {round}: {secs:.3} s for {} messages",
            reply.fetched
        );
        times.push(secs);
    }
    c.logout().await.map_err(|e| format!("LOGOUT: {e}"))?;
    let first = times[0];
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "RESULT messages={messages} first_secs={first:.4} median_secs={median:.4} literal_bytes={literal_bytes}"
    );
    Ok(())
}
