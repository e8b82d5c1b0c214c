//! `pochta`: the mail server appliance in one binary — `pochta serve` runs
//! every service; the other subcommands administer the same data folder,
//! whether or not the server is running.
//!
//! Layout:
//! - `main.rs`: the command line;
//! - `serve`: wiring, listeners, the ready file, graceful shutdown;
//! - `privilege`: what `serve` does as root, and root given up;
//! - `supervise`: listener tasks restarted on their sockets;
//! - `tls`: loading, generating and renewing the certificate;
//! - `datadir`: which commands may create a data folder, and the lock that
//!   keeps it to one server;
//! - `cmd`: domain, account, alias, status, queue, mailbox and backup
//!   commands;
//! - `docs`: shell completions and the manual page, from this definition.
//!
//! Protocol and storage logic live in their crates; this one only wires them.

mod cmd;
mod datadir;
mod docs;
mod privilege;
mod serve;
mod supervise;
mod tls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pochta",
    version,
    about = "Pochta: an on-premises mail server appliance",
    after_help = "Start with `pochta serve` (it makes ./pochta-data on first start), then open \
                  the admin page it names, or use the commands above on the same --data folder."
)]
pub struct Cli {
    /// Data folder: database, message files, certificate, logs. Only `serve`
    /// and `init` create it.
    #[arg(
        long,
        global = true,
        env = "POCHTA_DATA",
        default_value = "pochta-data"
    )]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run all services (SMTP MX, submission, IMAP, POP3, admin page) until
    /// SIGTERM or SIGINT; makes the data folder on first start.
    Serve {
        /// TOML configuration; without it the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make a new, empty data folder (what `serve` does on first start).
    Init,
    /// Local mail domains.
    #[command(subcommand)]
    Domain(cmd::domain::DomainCmd),
    /// Mail accounts.
    #[command(subcommand)]
    Account(cmd::account::AccountCmd),
    /// Aliases, groups (several targets) and catch-alls (`@domain`).
    #[command(subcommand)]
    Alias(cmd::alias::AliasCmd),
    /// The server, the admin page and its setup, domains, accounts with usage, queue.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The health checks of the running server: each ok, warning or
    /// failing, with what to do. Exits 1 when something is failing.
    Health {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The outbound queue.
    #[command(subcommand)]
    Queue(cmd::queue::QueueCmd),
    /// Encrypted backups (restic's format) to a folder and to S3-compatible
    /// storage, their restore and verification.
    #[command(subcommand)]
    Backup(cmd::backup::BackupCmd),
    /// The mail in an account's folders.
    #[command(subcommand)]
    Mailbox(cmd::mailbox::MailboxCmd),
    /// Print the shell completion script (bash: `pochta completions bash >
    /// /etc/bash_completion.d/pochta`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (pochta.1 and one per command) into DIR, or
    /// print pochta.1 without it (`pochta man | man -l -`).
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// DKIM signing as the outbound queue does it (for tests and checks).
    #[command(subcommand, hide = true)]
    Dkim(cmd::domain::DkimCmd),
    /// The privileged helper `serve` starts as root, with a socket as its
    /// standard input (never run by hand).
    #[command(name = "privileged-helper", hide = true)]
    PrivilegedHelper {
        /// The one file it may write for the server: the setup code's copy.
        #[arg(long)]
        setup_copy: Option<PathBuf>,
    },
}

/// glibc raises its mmap threshold after a large block is freed, so the
/// 19 MiB argon2id buffers of later logins come from per-thread heaps and
/// stay there: 20 IMAP clients logging in left 1.6 GiB resident. A fixed
/// threshold keeps large blocks in mmap, returned on free. (musl, used for
/// the appliance, always maps large blocks.)
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called before any
    // other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// A command whose reader went away (`pochta status | head -3`) ends
/// quietly, as other command-line tools do, instead of panicking in
/// `println!`. Not for `serve`: a client closing its socket must stay an
/// error on that socket, not a signal that ends the server.
fn die_quietly_on_closed_pipe() {
    // SAFETY: restoring the default disposition of SIGPIPE installs no
    // handler; it runs before any other thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        die_quietly_on_closed_pipe();
    }
    let data = cli.data.as_path();
    // Run as root on the server's folder, a command acts as the folder's
    // owner: what it makes (SQLite's -wal and -shm) stays the server's.
    if !matches!(
        cli.command,
        Command::Serve { .. }
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::PrivilegedHelper { .. }
    ) {
        if let Err(message) = pochta_privileged::become_owner_of(data) {
            eprintln!("pochta: {message}");
            return ExitCode::from(2);
        }
    }
    let result = match cli.command {
        Command::Serve { config } => serve::serve(data, config.as_deref()),
        Command::Init => init(data),
        Command::Domain(c) => cmd::domain::domain(data, c),
        Command::Account(c) => cmd::account::account(data, c),
        Command::Alias(c) => cmd::alias::alias(data, c),
        Command::Status { json } => cmd::status::status(data, json),
        Command::Health { json } => match cmd::health::health(data, json) {
            Ok(true) => return ExitCode::from(1),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Queue(c) => cmd::queue::queue(data, c),
        Command::Backup(c) => match cmd::backup::backup(data, c) {
            Ok(true) => return ExitCode::from(1),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        },
        Command::Mailbox(c) => cmd::mailbox::mailbox(data, c),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
        Command::Dkim(c) => cmd::domain::dkim(data, c),
        Command::PrivilegedHelper { setup_copy } => {
            serve::init_tracing();
            return ExitCode::from(pochta_privileged::helper::run(setup_copy) as u8);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pochta: {message}");
            ExitCode::from(2)
        }
    }
}

/// `pochta init`: a new data folder, or a word that there is one already.
fn init(data: &Path) -> Result<(), String> {
    if pochta_store::Store::exists(data) {
        println!(
            "{} is a Pochta data folder already; nothing changed",
            data.display()
        );
        return Ok(());
    }
    let store = datadir::open(data)?;
    println!(
        "made a new data folder in {}\nnext: `pochta serve --data {}`, then open the admin page it names, \
         or `pochta domain add example.com --data {}`",
        store.dir().display(),
        data.display(),
        data.display()
    );
    Ok(())
}
