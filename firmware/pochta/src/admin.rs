//! Administration commands on the data folder. They use the store directly,
//! so they work whether or not `pochta serve` is running (SQLite WAL lets
//! both write safely).

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use clap::Subcommand;
use pochta_store::Store;
use rand::Rng;

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Add a local domain.
    Add { domain: String },
    /// List local domains.
    List,
    /// Remove a domain that has no accounts.
    Remove { domain: String },
    /// Print every DNS record the domain must publish (zone-file form).
    Dns {
        domain: String,
        /// The mail host the records point to; defaults to `hostname` of
        /// --config, else that of the running server, else this machine's.
        #[arg(long)]
        host: Option<String>,
        /// The configuration `pochta serve` uses, for its `hostname`.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
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

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Create an account. Without --password-stdin a strong password is generated and shown once.
    Add {
        address: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Quota such as 500M or 2G; unlimited when omitted.
        #[arg(long)]
        quota: Option<String>,
    },
    /// List accounts with their usage.
    List,
    /// Refuse logins and mail for an account; its mail is kept.
    Disable { address: String },
    /// Undo `disable`.
    Enable { address: String },
    /// Delete an account and its mail.
    Remove { address: String },
    /// Set a new password (generated unless --password-stdin).
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change the quota (0 = unlimited).
    Quota { address: String, quota: String },
    /// Recipients the account may submit in 24 hours; `default` for the
    /// configured default (limits.recipients_per_day).
    Limit { address: String, limit: String },
}

#[derive(Subcommand)]
pub enum AliasCmd {
    /// ADDRESS → TARGET...: one target is an alias, several a group; `@domain` is a catch-all.
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List aliases, groups and catch-alls.
    List,
    /// Remove an alias, group or catch-all.
    Remove { address: String },
}

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Show queued outbound messages.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make a queued recipient due now; a running server tries it within a second.
    Retry { id: i64 },
    /// Drop a queued recipient without delivering it and without a DSN.
    Delete { id: i64 },
}

#[derive(Subcommand)]
pub enum MailboxCmd {
    /// List the messages of a folder.
    Show {
        address: String,
        #[arg(long, default_value = "INBOX")]
        folder: String,
        #[arg(long)]
        json: bool,
    },
}

fn open(data: &Path) -> Result<Store, String> {
    Store::open(data).map_err(|e| format!("cannot open the store in {}: {e}", data.display()))
}

pub fn domain(data: &Path, cmd: DomainCmd) -> Result<(), String> {
    let store = open(data)?;
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
                return Err(format!("no such domain {d}"));
            }
            // Domains from an older Pochta get their keys now.
            pochta_filter::ensure_keys(&store).map_err(|e| e.to_string())?;
            let host = match host {
                Some(h) => h,
                None => mail_host(data, config.as_deref())?,
            };
            let keys = store.dkim_keys(&d).map_err(|e| e.to_string())?;
            print!("{}", pochta_filter::records::zone_text(&d, &host, &keys));
        }
        DomainCmd::List => {
            for d in store.domains().map_err(|e| e.to_string())? {
                println!("{d}");
            }
        }
        DomainCmd::Remove { domain } => {
            store.remove_domain(&domain).map_err(|e| e.to_string())?;
            println!("domain {domain} removed");
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
    let running = std::fs::read_to_string(crate::serve::ready_file(data))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["hostname"].as_str().map(str::to_owned));
    Ok(running.unwrap_or_else(crate::serve::system_hostname))
}

pub fn dkim(data: &Path, cmd: DkimCmd) -> Result<(), String> {
    let store = open(data)?;
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

/// The password from stdin, or a generated one that is printed once.
fn password(from_stdin: bool) -> Result<(String, bool), String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let pw = line.trim_end_matches(['\r', '\n']).to_string();
        if pw.is_empty() {
            return Err("no password on standard input".into());
        }
        return Ok((pw, false));
    }
    // No ambiguous characters: it may be read aloud or typed from paper.
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    let pw = (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    Ok((pw, true))
}

fn quota(text: Option<&str>) -> Result<u64, String> {
    match text {
        None => Ok(0),
        Some(t) => pochta_config::parse_size(t)
            .ok_or_else(|| format!("quota {t:?} is not a size (examples: 500M, 2G, 1048576)")),
    }
}

pub fn account(data: &Path, cmd: AccountCmd) -> Result<(), String> {
    let store = open(data)?;
    let show_generated = |address: &str, pw: &str| {
        println!("password for {address}: {pw}");
        if !std::io::stdout().is_terminal() {
            eprintln!("(generated; it is shown only this once)");
        }
    };
    match cmd {
        AccountCmd::Add {
            address,
            password_stdin,
            quota: q,
        } => {
            let quota = quota(q.as_deref())?;
            let (pw, generated) = password(password_stdin)?;
            store
                .add_account(&address, &pw, quota)
                .map_err(|e| e.to_string())?;
            println!("account {} added", address.to_lowercase());
            if generated {
                show_generated(&address, &pw);
            }
        }
        AccountCmd::List => {
            let accounts = store.accounts().map_err(|e| e.to_string())?;
            println!(
                "{:<40} {:>9} {:>12} {:>10} state",
                "address", "messages", "bytes", "quota"
            );
            for a in accounts {
                let q = if a.quota_bytes == 0 {
                    "-".to_string()
                } else {
                    a.quota_bytes.to_string()
                };
                let state = if a.disabled { "disabled" } else { "active" };
                println!(
                    "{:<40} {:>9} {:>12} {:>10} {state}",
                    a.address, a.messages, a.bytes, q
                );
            }
        }
        AccountCmd::Disable { address } => {
            store
                .set_account_disabled(&address, true)
                .map_err(|e| e.to_string())?;
            println!("account {address} disabled (mail kept)");
        }
        AccountCmd::Enable { address } => {
            store
                .set_account_disabled(&address, false)
                .map_err(|e| e.to_string())?;
            println!("account {address} enabled");
        }
        AccountCmd::Remove { address } => {
            store.remove_account(&address).map_err(|e| e.to_string())?;
            println!("account {address} removed");
        }
        AccountCmd::Passwd {
            address,
            password_stdin,
        } => {
            let (pw, generated) = password(password_stdin)?;
            store
                .set_password(&address, &pw)
                .map_err(|e| e.to_string())?;
            println!("password of {address} changed");
            if generated {
                show_generated(&address, &pw);
            }
        }
        AccountCmd::Limit { address, limit } => {
            let n =
                match limit.as_str() {
                    "default" => None,
                    t => Some(t.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("limit {t:?} is not a positive number or `default`")
                    })?),
                };
            store
                .set_send_limit(&address, n)
                .map_err(|e| e.to_string())?;
            match n {
                Some(n) => println!("{address} may send to {n} recipients in 24 hours"),
                None => println!("{address} has the configured default sending limit"),
            }
        }
        AccountCmd::Quota { address, quota: q } => {
            let quota = quota(Some(&q))?;
            store
                .set_quota(&address, quota)
                .map_err(|e| e.to_string())?;
            println!("quota of {address} set to {quota} bytes");
        }
    }
    Ok(())
}

pub fn alias(data: &Path, cmd: AliasCmd) -> Result<(), String> {
    let store = open(data)?;
    match cmd {
        AliasCmd::Add { address, targets } => {
            store
                .add_alias(&address, &targets)
                .map_err(|e| e.to_string())?;
            let kind = if address.starts_with('@') {
                "catch-all"
            } else if targets.len() > 1 {
                "group"
            } else {
                "alias"
            };
            println!("{kind} {address} -> {}", targets.join(", "));
        }
        AliasCmd::List => {
            for (address, targets) in store.aliases().map_err(|e| e.to_string())? {
                println!("{address} -> {}", targets.join(", "));
            }
        }
        AliasCmd::Remove { address } => {
            store.remove_alias(&address).map_err(|e| e.to_string())?;
            println!("{address} removed");
        }
    }
    Ok(())
}

/// Whether a server runs on this data folder: its ready file and a live pid.
fn server_state(data: &Path) -> serde_json::Value {
    let file = crate::serve::ready_file(data);
    let Ok(text) = std::fs::read_to_string(&file) else {
        return serde_json::json!({"running": false});
    };
    let Ok(mut info) = serde_json::from_str::<serde_json::Value>(&text) else {
        return serde_json::json!({"running": false});
    };
    let alive = info["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .is_some_and(|pid| nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok());
    info["running"] = alive.into();
    info
}

pub fn status(data: &Path, json: bool) -> Result<(), String> {
    let store = open(data)?;
    let st = store.status().map_err(|e| e.to_string())?;
    let server = server_state(data);
    if json {
        let mut out = serde_json::to_value(&st).map_err(|e| e.to_string())?;
        out["server"] = server;
        println!("{out}");
        return Ok(());
    }
    if server["running"].as_bool() == Some(true) {
        println!("server: running (pid {})", server["pid"]);
        for svc in [
            "smtp",
            "submission",
            "submissions",
            "imap",
            "imaps",
            "pop3",
            "pop3s",
        ] {
            let addrs: Vec<String> = server[svc]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "  {svc:<12} {}",
                if addrs.is_empty() {
                    "off".into()
                } else {
                    addrs.join(" ")
                }
            );
        }
    } else {
        println!("server: not running");
    }
    println!(
        "domains: {}",
        if st.domains.is_empty() {
            "(none)".into()
        } else {
            st.domains.join(" ")
        }
    );
    println!("accounts: {}", st.accounts.len());
    for a in &st.accounts {
        let state = if a.disabled { " (disabled)" } else { "" };
        println!(
            "  {:<40} {:>7} messages {:>12} bytes{state}",
            a.address, a.messages, a.bytes
        );
    }
    println!("queue: {} message(s)", st.queue);
    Ok(())
}

pub fn queue(data: &Path, cmd: QueueCmd) -> Result<(), String> {
    let store = open(data)?;
    match cmd {
        QueueCmd::List { json } => {
            let items = store.queue().map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&items).map_err(|e| e.to_string())?
                );
            } else {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                for i in items {
                    println!(
                        "{:>6} <{}> -> <{}> {} bytes, attempts {}, next in {}s{}",
                        i.id,
                        i.sender,
                        i.recipient,
                        i.size,
                        i.attempts,
                        (i.next_attempt - now).max(0),
                        i.last_error
                            .map(|e| format!(", last error: {e}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        QueueCmd::Retry { id } => {
            if !store.queue_retry_now(id).map_err(|e| e.to_string())? {
                return Err(format!("no queue item {id}"));
            }
            println!("queue item {id} is due now");
        }
        QueueCmd::Delete { id } => {
            if !store.queue_done(id).map_err(|e| e.to_string())? {
                return Err(format!("no queue item {id}"));
            }
            println!("queue item {id} deleted");
        }
    }
    Ok(())
}

pub fn mailbox(data: &Path, cmd: MailboxCmd) -> Result<(), String> {
    let store = open(data)?;
    match cmd {
        MailboxCmd::Show {
            address,
            folder,
            json,
        } => {
            let msgs = store
                .messages(&address, &folder)
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&msgs).map_err(|e| e.to_string())?
                );
            } else {
                for m in msgs {
                    println!(
                        "uid {:>6} modseq {:>6} {:>9} bytes {}",
                        m.uid,
                        m.modseq,
                        m.size,
                        m.path.display()
                    );
                }
            }
        }
    }
    Ok(())
}
