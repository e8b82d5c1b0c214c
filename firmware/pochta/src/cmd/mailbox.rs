//! `pochta mailbox show`: the mail in one folder of an account, as a person
//! looks for it (when, from whom, about what), with the files in `--json`.

use std::io::Read;
use std::path::Path;

use clap::Subcommand;
use pochta_config::format_size;
use pochta_store::{MessageInfo, StoreError};
use serde::Serialize;

use super::clip;
use crate::datadir;

/// How much of a message is read for its From and Subject: headers longer
/// than this are rare, and the listing must not read whole attachments.
const HEADER_BYTES: u64 = 64 * 1024;

#[derive(Subcommand)]
pub enum MailboxCmd {
    /// List the messages of a folder: arrival time, sender, subject, size.
    Show {
        address: String,
        #[arg(long, default_value = "INBOX")]
        folder: String,
        /// Machine-readable output with each message's file, sizes in bytes.
        #[arg(long)]
        json: bool,
    },
}

/// One listed message: the store's record and what its header says.
#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    info: MessageInfo,
    /// The From header's first address (with its display name).
    from: Option<String>,
    /// The Subject header, decoded.
    subject: Option<String>,
}

fn listed(info: MessageInfo) -> Listed {
    let mut head = Vec::new();
    let read =
        std::fs::File::open(&info.path).and_then(|f| f.take(HEADER_BYTES).read_to_end(&mut head));
    let parsed = read
        .ok()
        .and_then(|_| mail_parser::MessageParser::default().parse_headers(&head[..]));
    let (from, subject) = match &parsed {
        Some(m) => (
            m.from()
                .and_then(|a| a.first())
                .map(|a| match (a.name(), a.address()) {
                    (Some(name), Some(addr)) => format!("{name} <{addr}>"),
                    (None, Some(addr)) => addr.to_string(),
                    (Some(name), None) => name.to_string(),
                    (None, None) => String::new(),
                }),
            m.subject().map(str::to_string),
        ),
        None => (None, None),
    };
    Listed {
        info,
        from,
        subject,
    }
}

pub fn mailbox(data: &Path, cmd: MailboxCmd) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
    match cmd {
        MailboxCmd::Show {
            address,
            folder,
            json,
        } => {
            let msgs = store.messages(&address, &folder).map_err(|e| match e {
                StoreError::NotFound(what) if what.starts_with("account ") => format!(
                    "no such account {}: `pochta account list` shows the accounts",
                    address.trim()
                ),
                e => e.to_string(),
            })?;
            let msgs: Vec<Listed> = msgs.into_iter().map(listed).collect();
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&msgs).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            let who = address.trim().to_lowercase();
            if msgs.is_empty() {
                println!("no messages in {folder} of {who}");
                return Ok(());
            }
            println!(
                "{} in {folder} of {who}:",
                super::count(msgs.len() as u64, "message", "messages")
            );
            println!(
                "{:>6}  {:<26}  {:<30}  {:<40} {:>8}",
                "uid", "arrived", "from", "subject", "size"
            );
            for m in msgs {
                println!(
                    "{:>6}  {:<26}  {:<30}  {:<40} {:>8}",
                    m.info.uid,
                    pochta_admin::local_time(Some(m.info.internaldate)),
                    clip(m.from.as_deref().unwrap_or("(no sender)"), 30),
                    clip(m.subject.as_deref().unwrap_or("(no subject)"), 40),
                    format_size(m.info.size)
                );
            }
        }
    }
    Ok(())
}
