//! `pochta status`: is a server running on this folder and where, is the
//! first-boot setup still waiting, and what the store holds.

use std::path::Path;

use pochta_config::format_size;
use serde::Serialize;

use crate::datadir;
use crate::serve::ServeInfo;

/// `pochta status --json`.
#[derive(Serialize)]
struct Status {
    #[serde(flatten)]
    store: pochta_store::StoreStatus,
    server: Server,
    setup: Setup,
}

/// The server holding the data folder, if any.
#[derive(Serialize)]
struct Server {
    running: bool,
    /// Its pid (from the lock, so a stale `serve.json` cannot lie).
    pid: Option<u32>,
    /// Its listeners, from `run/serve.json`.
    #[serde(flatten)]
    info: Option<ServeInfo>,
    /// What to open in a browser for the admin page.
    admin_urls: Vec<String>,
}

/// The first-boot setup of the admin page.
#[derive(Serialize)]
struct Setup {
    /// No administrator exists yet.
    pending: bool,
    /// Where the one-time setup code is, while it is pending.
    code_file: Option<String>,
}

pub fn status(data: &Path, json: bool) -> Result<(), String> {
    let store = datadir::open_existing(data)?;
    let st = store.status().map_err(|e| e.to_string())?;
    let pid = datadir::served_by(data);
    let info = pid
        .and_then(|_| ServeInfo::read(data))
        .filter(|info| Some(info.pid) == pid);
    let admin_urls = info
        .as_ref()
        .map(|i| {
            let http = i.admin.iter().map(|a| pochta_admin::page_url(*a, false));
            let https = i.admin_tls.iter().map(|a| pochta_admin::page_url(*a, true));
            http.chain(https).collect()
        })
        .unwrap_or_default();
    let pending = !store.has_admin().map_err(|e| e.to_string())?;
    let code_file = pochta_admin::setup_code_file(store.dir());
    let setup = Setup {
        pending,
        code_file: (pending && code_file.exists()).then(|| code_file.display().to_string()),
    };
    let status = Status {
        store: st,
        server: Server {
            running: pid.is_some(),
            pid,
            info,
            admin_urls,
        },
        setup,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string(&status).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    print_status(data, &status);
    Ok(())
}

fn print_status(data: &Path, status: &Status) {
    let server = &status.server;
    match (server.pid, &server.info) {
        (Some(pid), Some(info)) => {
            println!(
                "server: running (pid {pid}), host name {}",
                info.hostname.as_deref().unwrap_or("?")
            );
            for (name, addrs) in info.listen.by_service() {
                let shown = if addrs.is_empty() {
                    "off".to_string()
                } else {
                    addrs
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                println!("  {name:<12} {shown}");
            }
            let page = if server.admin_urls.is_empty() {
                "off".to_string()
            } else {
                server.admin_urls.join("  ")
            };
            println!("  {:<12} {page}", "admin page");
        }
        (Some(pid), None) => println!("server: starting (pid {pid})"),
        (None, _) => println!(
            "server: not running (start it with `pochta serve --data {}`)",
            data.display()
        ),
    }
    let setup = &status.setup;
    if setup.pending {
        let open = match server.admin_urls.first() {
            Some(url) => format!("open {url}"),
            None => "open the admin page".into(),
        };
        match &setup.code_file {
            Some(file) => {
                println!("setup: not done yet: {open} and type the setup code; it is in {file}")
            }
            None => println!(
                "setup: not done yet: the server makes a setup code when it starts and \
                 prints it in its log"
            ),
        }
    }
    let st = &status.store;
    println!(
        "domains: {}",
        if st.domains.is_empty() {
            "none yet".into()
        } else {
            st.domains.join(" ")
        }
    );
    println!("accounts: {}", st.accounts.len());
    for a in &st.accounts {
        let state = if a.disabled { " (disabled)" } else { "" };
        println!(
            "  {:<40} {:>14} {:>10}{state}",
            a.address,
            super::count(a.messages, "message", "messages"),
            format_size(a.bytes)
        );
    }
    if st.queue == 0 {
        println!("queue: empty");
    } else {
        println!(
            "queue: {} waiting (`pochta queue list`)",
            super::count(st.queue, "recipient", "recipients")
        );
    }
}
