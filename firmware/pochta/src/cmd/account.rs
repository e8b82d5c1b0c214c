//! `pochta account add|list|disable|enable|remove|passwd|quota|limit`.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use clap::Subcommand;
use pochta_config::format_size;
use pochta_store::{Store, StoreError};
use rand::Rng;

use super::{confirm, count, Answer};
use crate::datadir;

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
    List {
        /// Machine-readable output, sizes in bytes.
        #[arg(long)]
        json: bool,
    },
    /// Refuse the account's logins (IMAP, POP3, submission); mail to it
    /// still arrives and is kept.
    Disable { address: String },
    /// Undo `disable`.
    Enable { address: String },
    /// Delete an account and all its mail (asks first).
    Remove {
        address: String,
        /// Do not ask (scripts): the mail is gone for good.
        #[arg(long)]
        yes: bool,
    },
    /// Set a new password: generated (asks first), or read with --password-stdin.
    Passwd {
        address: String,
        /// Read the new password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Do not ask before replacing the password with a generated one.
        #[arg(long)]
        yes: bool,
    },
    /// Change the quota such as 500M or 2G (0 = unlimited).
    Quota { address: String, quota: String },
    /// Recipients the account may submit in 24 hours; `default` for the
    /// configured default (limits.recipients_per_day).
    Limit { address: String, limit: String },
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

/// `2 GB` or `no limit`.
fn quota_words(bytes: u64) -> String {
    if bytes == 0 {
        "no limit".into()
    } else {
        format_size(bytes)
    }
}

/// A store error with what to do next, where the CLI knows it.
fn explain(e: StoreError, address: &str) -> String {
    match e {
        StoreError::NotFound(what) if what.starts_with("domain ") => {
            let domain = what.trim_start_matches("domain ");
            format!("no such domain {domain}: add it first with `pochta domain add {domain}`")
        }
        StoreError::NotFound(what) if what.starts_with("account ") => format!(
            "no such account {}: `pochta account list` shows the accounts",
            address.trim()
        ),
        e => e.to_string(),
    }
}

pub fn account(data: &Path, cmd: AccountCmd) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
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
                .map_err(|e| explain(e, &address))?;
            let address = address.trim().to_lowercase();
            println!("account {address} added");
            if generated {
                show_generated(&address, &pw);
            }
        }
        AccountCmd::List { json } => list(&store, json)?,
        AccountCmd::Disable { address } => {
            store
                .set_account_disabled(&address, true)
                .map_err(|e| explain(e, &address))?;
            println!(
                "account {address} disabled: it cannot log in; mail to it still arrives and is kept"
            );
        }
        AccountCmd::Enable { address } => {
            store
                .set_account_disabled(&address, false)
                .map_err(|e| explain(e, &address))?;
            println!("account {address} enabled");
        }
        AccountCmd::Remove { address, yes } => {
            let a = store.account(&address).map_err(|e| explain(e, &address))?;
            confirm(
                yes,
                &format!(
                    "This deletes the account {} and all its mail ({}, {}). It cannot be undone.",
                    a.address,
                    count(a.messages, "message", "messages"),
                    format_size(a.bytes)
                ),
                Answer::Typed(&a.address),
            )?;
            store
                .remove_account(&a.address)
                .map_err(|e| explain(e, &address))?;
            println!("account {} removed with its mail", a.address);
        }
        AccountCmd::Passwd {
            address,
            password_stdin,
            yes,
        } => {
            let a = store.account(&address).map_err(|e| explain(e, &address))?;
            // A password typed in is a decision already made; a generated
            // one replaces the old one in every mail client at once.
            if !password_stdin {
                confirm(
                    yes,
                    &format!(
                        "This replaces the password of {} with a new generated one: mail \
                         clients that use the old one stop working until they get the new one \
                         (app passwords keep working).",
                        a.address
                    ),
                    Answer::Yes,
                )?;
            }
            let (pw, generated) = password(password_stdin)?;
            store
                .set_password(&a.address, &pw)
                .map_err(|e| explain(e, &address))?;
            println!("password of {} changed", a.address);
            if generated {
                show_generated(&a.address, &pw);
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
                .map_err(|e| explain(e, &address))?;
            match n {
                Some(n) => println!("{address} may send to {n} recipients in 24 hours"),
                None => println!("{address} has the configured default sending limit"),
            }
        }
        AccountCmd::Quota { address, quota: q } => {
            let quota = quota(Some(&q))?;
            store
                .set_quota(&address, quota)
                .map_err(|e| explain(e, &address))?;
            println!("quota of {address}: {}", quota_words(quota));
        }
    }
    Ok(())
}

fn list(store: &Store, json: bool) -> Result<(), String> {
    let accounts = store.accounts().map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&accounts).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if accounts.is_empty() {
        println!("no accounts yet: add one with `pochta account add name@example.com`");
        return Ok(());
    }
    println!(
        "{:<40} {:>9} {:>10} {:>10}  state",
        "address", "messages", "size", "quota"
    );
    for a in accounts {
        let state = if a.disabled { "disabled" } else { "active" };
        println!(
            "{:<40} {:>9} {:>10} {:>10}  {state}",
            a.address,
            a.messages,
            format_size(a.bytes),
            quota_words(a.quota_bytes)
        );
    }
    Ok(())
}
