//! `pochta domain add|list|remove|dns`, and the hidden `pochta dkim sign`.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::{confirm, Answer};
use crate::datadir;

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Add a local domain and make its DKIM keys.
    Add { domain: String },
    /// List local domains.
    List,
    /// Remove a domain that has no accounts, with its aliases and DKIM keys.
    Remove {
        domain: String,
        /// Do not ask (scripts): its DKIM keys are gone for good.
        #[arg(long)]
        yes: bool,
    },
    /// Print every DNS record the domain must publish (zone-file form).
    Dns {
        domain: String,
        /// The mail host the records point to; defaults to `hostname` of
        /// --config, else that of the running server, else this machine's.
        #[arg(long)]
        host: Option<String>,
        /// The configuration `pochta serve` uses, for its `hostname`.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum DkimCmd {
    /// Sign the message on standard input as the outbound queue does and
    /// print it with its DKIM-Signature headers (for tests and checks).
    Sign {
        /// The sender's domain, a local domain.
        #[arg(long)]
        domain: String,
    },
}

pub fn domain(data: &Path, cmd: DomainCmd) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
    match cmd {
        DomainCmd::Add { domain } => {
            let (d, selectors) =
                pochta_filter::add_domain(&store, &domain).map_err(|e| e.to_string())?;
            println!("domain {d} added");
            if selectors.is_empty() {
                return Err(format!(
                    "domain {d} added, but its DKIM keys could not be made (see the log above); \
                     `pochta serve` makes them at its next start"
                ));
            }
            println!(
                "DKIM keys made (selectors {}): publish them with the other records \
                 shown by `pochta domain dns {d}`",
                selectors.join(", ")
            );
        }
        DomainCmd::Dns {
            domain,
            host,
            config,
        } => {
            let d = domain.trim().trim_end_matches('.').to_lowercase();
            if !store.domains().map_err(|e| e.to_string())?.contains(&d) {
                return Err(format!(
                    "no such domain {d}: add it first with `pochta domain add {d}`"
                ));
            }
            // Domains from an older Pochta get their keys now.
            pochta_filter::ensure_keys(&store).map_err(|e| e.to_string())?;
            let host = match host {
                Some(h) => h,
                None => mail_host(data, config.as_deref())?,
            };
            if let Some(problem) = pochta_filter::records::host_problem(&host) {
                eprintln!("warning: {problem}, or pass --host NAME for these records");
            }
            let keys = store.dkim_keys(&d).map_err(|e| e.to_string())?;
            print!("{}", pochta_filter::records::zone_text(&d, &host, &keys));
        }
        DomainCmd::List => {
            let domains = store.domains().map_err(|e| e.to_string())?;
            if domains.is_empty() {
                println!("no domains yet: add one with `pochta domain add example.com`");
            }
            for d in domains {
                println!("{d}");
            }
        }
        DomainCmd::Remove { domain, yes } => {
            let d = domain.trim().trim_end_matches('.').to_lowercase();
            if !store.domains().map_err(|e| e.to_string())?.contains(&d) {
                return Err(format!("no such domain {d}"));
            }
            confirm(
                yes,
                &format!(
                    "This removes the domain {d} with its aliases and its DKIM keys; \
                     mail signed with them stops verifying once the domain is added again \
                     with new keys."
                ),
                Answer::Typed(&d),
            )?;
            store.remove_domain(&d).map_err(|e| e.to_string())?;
            println!("domain {d} removed");
        }
    }
    Ok(())
}

/// The host name mail for local domains goes to: the config's `hostname`,
/// else the running server's, else this machine's.
fn mail_host(data: &Path, config: Option<&Path>) -> Result<String, String> {
    if let Some(path) = config {
        let c = pochta_config::Config::load(path, pochta_config::PortSet::Unprivileged)
            .map_err(|e| e.to_string())?;
        if let Some(h) = c.hostname {
            return Ok(h);
        }
    }
    let running = crate::serve::ServeInfo::read(data).and_then(|info| info.hostname);
    Ok(running.unwrap_or_else(crate::serve::system_hostname))
}

pub fn dkim(data: &Path, cmd: DkimCmd) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
    match cmd {
        DkimCmd::Sign { domain } => {
            use std::io::{Read, Write};
            let mut message = Vec::new();
            std::io::stdin()
                .read_to_end(&mut message)
                .map_err(|e| format!("cannot read the message: {e}"))?;
            let sign = pochta_filter::signing_hook(store);
            let headers =
                sign(&domain, &message).ok_or_else(|| format!("no DKIM keys for {domain}"))?;
            let mut out = std::io::stdout().lock();
            out.write_all(&headers)
                .and_then(|()| out.write_all(&message))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
