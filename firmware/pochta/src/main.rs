//! `pochta`: the mail server appliance in one binary — `pochta serve` runs
//! every service; the other subcommands administer the same data folder,
//! whether or not the server is running.
//!
//! Layout:
//! - `main.rs`: the command line;
//! - `serve`: wiring, listeners, the ready file, graceful shutdown;
//! - `tls`: loading or generating the certificate;
//! - `admin`: domain, account, alias, status, queue and mailbox commands.
//!
//! Protocol and storage logic live in their crates; this one only wires them.

mod admin;
mod serve;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pochta",
    version,
    about = "Pochta: an on-premises mail server appliance"
)]
struct Cli {
    /// Data folder: database, message files, certificate, logs.
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
    /// Run all services (SMTP MX, submission, IMAP, POP3) until SIGTERM or SIGINT.
    Serve {
        /// TOML configuration; without it the embedded defaults apply.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Local mail domains.
    #[command(subcommand)]
    Domain(admin::DomainCmd),
    /// Mail accounts.
    #[command(subcommand)]
    Account(admin::AccountCmd),
    /// Aliases, groups (several targets) and catch-alls (`@domain`).
    #[command(subcommand)]
    Alias(admin::AliasCmd),
    /// Services, domains, accounts with usage, queue length.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// The outbound queue.
    #[command(subcommand)]
    Queue(admin::QueueCmd),
    /// Folders and messages of an account.
    #[command(subcommand)]
    Mailbox(admin::MailboxCmd),
    /// DKIM signing as the outbound queue does it (for tests and checks).
    #[command(subcommand, hide = true)]
    Dkim(admin::DkimCmd),
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

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve::serve(&cli.data, config.as_deref()),
        Command::Domain(cmd) => admin::domain(&cli.data, cmd),
        Command::Account(cmd) => admin::account(&cli.data, cmd),
        Command::Alias(cmd) => admin::alias(&cli.data, cmd),
        Command::Status { json } => admin::status(&cli.data, json),
        Command::Queue(cmd) => admin::queue(&cli.data, cmd),
        Command::Mailbox(cmd) => admin::mailbox(&cli.data, cmd),
        Command::Dkim(cmd) => admin::dkim(&cli.data, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pochta: {message}");
            ExitCode::from(2)
        }
    }
}
