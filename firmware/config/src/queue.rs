//! `[queue]`: the outbound delivery queue: retry schedule, lifetime, the
//! delay warning, network timeouts, MTA-STS and smarthosts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// How the outbound queue delivers and retries.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Keep queued mail where it is: nothing is delivered until this is
    /// false again (maintenance; tests that look at the queue).
    pub hold: bool,
    /// Waits between attempts, in seconds; the last one repeats until the
    /// lifetime is over. Default: 5 min, 15 min, 30 min, 1 h, then hourly.
    pub retry_secs: Vec<u64>,
    /// How long a message is retried before it is returned to its sender.
    pub lifetime_secs: u64,
    /// After this long undelivered, the sender is told once that delivery is
    /// delayed (RFC 3464 `Action: delayed`). 0 = never.
    pub delay_warning_secs: u64,
    /// TCP connect to a remote server.
    pub connect_timeout_secs: u64,
    /// Greeting and each command reply (RFC 5321 §4.5.3.2: 5 minutes).
    pub command_timeout_secs: u64,
    /// Reply to the end of DATA (RFC 5321 §4.5.3.2: 10 minutes).
    pub data_timeout_secs: u64,
    /// Deliveries (connections) at the same time.
    pub max_parallel: usize,
    /// Port of remote MX hosts. Always 25 on the internet: other values are
    /// for tests and LANs only.
    pub remote_port: u16,
    /// Local address outgoing connections come from, when the box has
    /// several (the one its SPF record names); the system's choice when
    /// unset. Connections to the other address family are not bound.
    pub bind_address: Option<IpAddr>,
    /// Look up and obey recipient domains' MTA-STS policies (RFC 8461):
    /// with `mode: enforce`, only the MX hosts the policy names, over TLS
    /// with a certificate that verifies.
    pub mta_sts: bool,
    /// HTTPS port of MTA-STS policy hosts. Always 443 on the internet:
    /// other values are for tests only.
    pub mta_sts_port: u16,
    /// Relay every message through this host instead of looking up MX.
    pub smarthost: Option<Smarthost>,
    /// Per recipient domain smarthosts; they win over `smarthost`.
    pub domain_smarthosts: BTreeMap<String, Smarthost>,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            hold: false,
            retry_secs: vec![300, 900, 1800, 3600],
            lifetime_secs: 5 * 24 * 3600,
            delay_warning_secs: 4 * 3600,
            connect_timeout_secs: 60,
            command_timeout_secs: 300,
            data_timeout_secs: 600,
            max_parallel: 16,
            remote_port: 25,
            bind_address: None,
            mta_sts: true,
            mta_sts_port: 443,
            smarthost: None,
            domain_smarthosts: BTreeMap::new(),
        }
    }
}

/// A relay that takes all outbound mail (for networks where port 25 is
/// blocked, or a provider's relay).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Smarthost {
    /// Host name or IP address.
    pub host: String,
    /// Port; 587 for `starttls`, 465 for `implicit` by default.
    pub port: Option<u16>,
    /// How the connection is protected.
    #[serde(default)]
    pub tls: SmarthostTls,
    /// AUTH PLAIN/LOGIN user name; no AUTH without it.
    pub username: Option<String>,
    /// The password, written here…
    pub password: Option<String>,
    /// …or read from this file (first line); relative to the data folder.
    pub password_file: Option<PathBuf>,
    /// Accept a certificate that does not verify (self-signed relays on a LAN).
    #[serde(default)]
    pub accept_invalid_cert_dangerous: bool,
}

/// TLS on a smarthost connection.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmarthostTls {
    /// STARTTLS is required (RFC 3207).
    #[default]
    Starttls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
    /// No TLS at all: only to a loopback address, and never with AUTH.
    NoneLoopbackOnly,
}

impl Smarthost {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmarthostTls::Implicit => 465,
            _ => 587,
        })
    }
}

/// The problem with a `[queue]` value: (key, message).
pub(crate) fn validate(q: &Queue) -> Result<(), (&'static str, String)> {
    if q.retry_secs.is_empty() || q.retry_secs.contains(&0) {
        return Err((
            "queue.retry_secs",
            "must list at least one wait, each at least 1 second".into(),
        ));
    }
    if q.lifetime_secs == 0 {
        return Err(("queue.lifetime_secs", "must be at least 1".into()));
    }
    if q.delay_warning_secs >= q.lifetime_secs && q.delay_warning_secs != 0 {
        return Err((
            "queue.delay_warning_secs",
            "must be shorter than queue.lifetime_secs (or 0 for no warning)".into(),
        ));
    }
    for (key, v) in [
        ("queue.connect_timeout_secs", q.connect_timeout_secs),
        ("queue.command_timeout_secs", q.command_timeout_secs),
        ("queue.data_timeout_secs", q.data_timeout_secs),
    ] {
        if !(1..=3600).contains(&v) {
            return Err((key, "must be 1 to 3600".into()));
        }
    }
    if q.max_parallel == 0 {
        return Err(("queue.max_parallel", "must be at least 1".into()));
    }
    if q.mta_sts_port == 0 {
        return Err(("queue.mta_sts_port", "must be a port number (443)".into()));
    }
    if q.remote_port == 0 {
        return Err(("queue.remote_port", "must be a port number (25)".into()));
    }
    if let Some(s) = &q.smarthost {
        check_smarthost(s).map_err(|m| ("queue.smarthost", m))?;
    }
    for (domain, s) in &q.domain_smarthosts {
        if domain.is_empty() || domain.contains('@') || domain.contains(char::is_whitespace) {
            return Err((
                "queue.domain_smarthosts",
                format!("{domain:?} is not a domain name"),
            ));
        }
        check_smarthost(s).map_err(|m| ("queue.domain_smarthosts", format!("{domain}: {m}")))?;
    }
    Ok(())
}

fn check_smarthost(s: &Smarthost) -> Result<(), String> {
    if s.host.is_empty() || s.host.contains(char::is_whitespace) {
        return Err("host must be a host name or IP address".into());
    }
    if s.port == Some(0) {
        return Err("port must not be 0".into());
    }
    if s.password.is_some() && s.password_file.is_some() {
        return Err("give password or password_file, not both".into());
    }
    if s.username.is_none() && (s.password.is_some() || s.password_file.is_some()) {
        return Err("a password needs a username".into());
    }
    if s.username.is_some() && s.password.is_none() && s.password_file.is_none() {
        return Err("username needs password or password_file".into());
    }
    if s.tls == SmarthostTls::NoneLoopbackOnly {
        let loopback =
            s.host == "localhost" || s.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err("tls = \"none_loopback_only\" needs a loopback host".into());
        }
        if s.username.is_some() {
            return Err("AUTH is never sent without TLS: remove username or use TLS".into());
        }
    }
    Ok(())
}
