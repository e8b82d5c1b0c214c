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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config } => serve::serve(&cli.data, config.as_deref()),
        Command::Domain(cmd) => admin::domain(&cli.data, cmd),
        Command::Account(cmd) => admin::account(&cli.data, cmd),
        Command::Alias(cmd) => admin::alias(&cli.data, cmd),
        Command::Status { json } => admin::status(&cli.data, json),
        Command::Queue(cmd) => admin::queue(&cli.data, cmd),
        Command::Mailbox(cmd) => admin::mailbox(&cli.data, cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("pochta: {message}");
            ExitCode::from(2)
        }
    }
}
