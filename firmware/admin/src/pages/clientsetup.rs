//! An account's client setup page: the server names, ports and security
//! to type into any mail client by hand, and the Apple profile download.

use crate::http::Reply;
use crate::session::Session;
use crate::{clientsetup, State};

use super::{error_box, esc, page};

/// `GET /accounts/ADDR/setup`.
pub(super) fn show(state: &State, s: &Session, raw_address: &str) -> Reply {
    let reply = clientsetup::setup(state, raw_address);
    let Some(v) = reply.json_value() else {
        return page(
            reply.status,
            "Client setup",
            Some(s),
            &error_box(Some(&reply.error_message())),
        );
    };
    let text = |key: &str| v[key].as_str().unwrap_or("").to_owned();
    let (address, host) = (text("address"), text("host"));
    let rows = |key: &str, label: &str| -> String {
        v[key]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| {
                        let security = e["security"].as_str().unwrap_or("");
                        let explained = if security == "TLS" {
                            "SSL/TLS"
                        } else {
                            "STARTTLS"
                        };
                        format!(
                            "<tr><td>{label}</td><td class=\"data\">{}</td><td>{}</td><td>{explained}</td></tr>",
                            esc(&host),
                            e["port"]
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let table = format!(
        "{}{}{}",
        rows("imap", "IMAP (incoming)"),
        rows("pop3", "POP3 (incoming)"),
        rows("smtp", "SMTP (outgoing)")
    );
    page(
        200,
        "Client setup",
        Some(s),
        &format!(
            "<section><h2>Client setup for {addr}</h2>\
             <p>Most clients (Thunderbird, Outlook, iOS and macOS Mail with the profile below) \
             find these settings by themselves from the address. To type them by hand:</p>\
             <table><tr><th>Service</th><th>Server</th><th>Port</th><th>Security</th></tr>{table}</table>\
             <label for=\"user\">User name (for every service)</label>\
             <input id=\"user\" class=\"copy\" readonly value=\"{addr}\">\
             <label for=\"server\">Server (incoming and outgoing)</label>\
             <input id=\"server\" class=\"copy\" readonly value=\"{host}\">\
             <p>Password: the account's password, or an app password when the account uses \
             two-factor login. Authentication: normal password (it is sent only inside TLS).</p>\
             <p><a href=\"{profile}\" download>Download the profile for iPhone, iPad and Mac</a> \
             (.mobileconfig; the device asks for the password when it is installed).</p>\
             <p><a href=\"/accounts\">All accounts</a></p></section>",
            addr = esc(&address),
            host = esc(&host),
            profile = esc(&text("mobileconfig")),
        ),
    )
}
