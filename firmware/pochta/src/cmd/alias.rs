//! `pochta alias add|list|remove`: aliases, groups and catch-alls.

use std::path::Path;

use clap::Subcommand;
use pochta_store::Store;

use crate::datadir;

#[derive(Subcommand)]
pub enum AliasCmd {
    /// ADDRESS → TARGET...: one target is an alias, several a group; `@domain` is a catch-all.
    /// Targets added to an existing alias join it.
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List aliases, groups and catch-alls.
    List,
    /// Remove an alias, group or catch-all, or only the TARGETs named.
    Remove {
        address: String,
        /// Remove only these targets; the alias goes with its last one.
        targets: Vec<String>,
    },
}

/// The targets of one alias, empty when there is none.
fn targets_of(store: &Store, address: &str) -> Result<Vec<String>, String> {
    let a = address.trim().to_lowercase();
    Ok(store
        .aliases()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(source, _)| *source == a)
        .map(|(_, t)| t)
        .unwrap_or_default())
}

pub fn alias(data: &Path, cmd: AliasCmd) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
    match cmd {
        AliasCmd::Add { address, targets } => {
            let before = targets_of(&store, &address)?;
            store
                .add_alias(&address, &targets)
                .map_err(|e| e.to_string())?;
            let address = address.trim().to_lowercase();
            let after = targets_of(&store, &address)?;
            let added: Vec<&String> = after.iter().filter(|t| !before.contains(t)).collect();
            let kind = pochta_store::alias_kind(&address, after.len());
            if before.is_empty() {
                println!("{kind} {address} -> {}", after.join(", "));
            } else if added.is_empty() {
                println!(
                    "{kind} {address} already leads to {}; nothing changed",
                    after.join(", ")
                );
            } else {
                println!(
                    "{kind} {address} -> {} ({} added to the existing {})",
                    after.join(", "),
                    added
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    super::count(before.len() as u64, "target", "targets")
                );
            }
        }
        AliasCmd::List => {
            let aliases = store.aliases().map_err(|e| e.to_string())?;
            if aliases.is_empty() {
                println!(
                    "no aliases yet: add one with `pochta alias add info@example.com name@example.com`"
                );
            }
            for (address, targets) in aliases {
                println!("{address} -> {}", targets.join(", "));
            }
        }
        AliasCmd::Remove { address, targets } => {
            let address = address.trim().to_lowercase();
            let current = targets_of(&store, &address)?;
            if current.is_empty() {
                return Err(format!(
                    "no such alias {address}: `pochta alias list` shows the aliases"
                ));
            }
            // All or nothing: a typo in the second target keeps the first.
            if let Some(t) = targets
                .iter()
                .find(|t| !current.contains(&t.trim().to_lowercase()))
            {
                return Err(format!(
                    "{} is not a target of {address} (it leads to {})",
                    t.trim(),
                    current.join(", ")
                ));
            }
            if targets.is_empty() {
                store.remove_alias(&address).map_err(|e| e.to_string())?;
                println!("{address} removed");
                return Ok(());
            }
            for t in &targets {
                store
                    .remove_alias_target(&address, t)
                    .map_err(|e| e.to_string())?;
            }
            match targets_of(&store, &address)?.as_slice() {
                [] => println!("{address} removed (its last target went)"),
                left => println!(
                    "{} removed from {address}; it still leads to {}",
                    targets.join(", "),
                    left.join(", ")
                ),
            }
        }
    }
    Ok(())
}
