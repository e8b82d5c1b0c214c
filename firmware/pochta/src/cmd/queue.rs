//! `pochta queue list|retry|delete`: the outbound queue.

use std::path::Path;

use clap::Subcommand;
use pochta_config::format_size;

use pochta_config::format_duration as duration;

use super::{confirm, now, Answer};
use crate::datadir;

#[derive(Subcommand)]
pub enum QueueCmd {
    /// Show queued outbound messages.
    List {
        /// Machine-readable output, sizes in bytes and times in seconds.
        #[arg(long)]
        json: bool,
    },
    /// Make a queued recipient due now; a running server tries it within a second.
    Retry { id: i64 },
    /// Drop a queued recipient without delivering it and without telling the
    /// sender (asks first).
    Delete {
        id: i64,
        /// Do not ask (scripts): the message is not delivered to this recipient.
        #[arg(long)]
        yes: bool,
    },
}

pub fn queue(data: &Path, cmd: QueueCmd) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
    match cmd {
        QueueCmd::List { json } => {
            let items = store.queue().map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&items).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            if items.is_empty() {
                println!("the outbound queue is empty: all mail has been delivered");
                return Ok(());
            }
            let now = now();
            for i in items {
                let next = if i.next_attempt <= now {
                    "due now".to_string()
                } else {
                    format!("next try in {}", duration(i.next_attempt - now))
                };
                println!(
                    "{:>6}  <{}> -> <{}>  {}, queued {} ago, {}, {next}{}",
                    i.id,
                    i.sender,
                    i.recipient,
                    format_size(i.size),
                    duration(now - i.created),
                    super::count(u64::from(i.attempts), "attempt", "attempts"),
                    i.last_error
                        .map(|e| format!("\n        last error: {e}"))
                        .unwrap_or_default()
                );
            }
        }
        QueueCmd::Retry { id } => {
            if !store.queue_retry_now(id).map_err(|e| e.to_string())? {
                return Err(no_item(id));
            }
            println!("queue item {id} is due now");
        }
        QueueCmd::Delete { id, yes } => {
            let item = store
                .queue()
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|i| i.id == id)
                .ok_or_else(|| no_item(id))?;
            confirm(
                yes,
                &format!(
                    "This drops the message from <{}> to <{}> ({}): it will not be delivered \
                     and the sender is not told.",
                    item.sender,
                    item.recipient,
                    format_size(item.size)
                ),
                Answer::Yes,
            )?;
            if !store.queue_done(id).map_err(|e| e.to_string())? {
                return Err(no_item(id));
            }
            println!("queue item {id} deleted");
        }
    }
    Ok(())
}

fn no_item(id: i64) -> String {
    format!("no queue item {id}: `pochta queue list` shows the queue")
}
