//! Typed configuration for Pochta: one struct tree, defaults written once,
//! validated at load with errors that name the key and the file.
//!
//! Layout:
//! - [`Config`] and its sections ([`Listen`], [`Limits`], [`Server`], [`Tls`],
//!   [`Guard`], [`Dns`], [`Auth`], [`Queue`] in `queue`, [`Admin`] in
//!   `admin`, and [`System`] in `system`);
//! - [`Config::load`] reads a TOML file, [`Config::embedded`] is the default
//!   used when `pochta serve` gets no `--config`;
//! - [`ConfigError`] says what is wrong and where.
//!
//! This crate does no I/O beyond reading the one file it is given and must not
//! depend on the store or any protocol crate.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod admin;
mod human;
mod queue;
mod system;
pub use admin::{Admin, Network};
pub use human::{format_duration, format_size, parse_size};
pub use queue::{Queue, Smarthost, SmarthostTls};
pub use system::System;

/// The whole configuration of a `pochta serve` process.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The host name announced in SMTP greetings and `Received:` headers.
    /// Defaults to the system host name.
    pub hostname: Option<String>,
    /// Where the services listen.
    #[serde(skip)]
    pub listen: Listen,
    /// `[listen]` as written in the file; keys it omits take the port set's default.
    #[serde(rename = "listen")]
    listen_file: ListenFile,
    /// Protocol limits that protect the server from greedy or broken clients.
    pub limits: Limits,
    /// Process-wide behaviour.
    pub server: Server,
    /// The brute-force guard shared by all login services.
    pub guard: Guard,
    /// Certificate and key; a self-signed pair is generated when absent.
    pub tls: Tls,
    /// Which DNS servers answer MX, SPF, DKIM and DMARC lookups.
    pub dns: Dns,
    /// Inbound mail authentication (SPF, DKIM, ARC, DMARC) and its policy.
    pub auth: Auth,
    /// The outbound delivery queue.
    pub queue: Queue,
    /// The LAN web admin page.
    #[serde(skip)]
    pub admin: Admin,
    /// `[admin]` as written in the file; keys it omits take the port set's default.
    #[serde(rename = "admin")]
    admin_file: admin::AdminFile,
    /// The box looking after itself: watchdog, clock, disk space, alerts, mDNS.
    pub system: System,
}

/// What to do with a message whose check failed.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Refuse it after DATA with `550 5.7.1`.
    Reject,
    /// Accept it into the recipients' `Junk` folder.
    Quarantine,
    /// Accept it into `INBOX`; the result is only recorded.
    None,
}

/// What to do when a check could not finish because DNS failed (temperror).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TempErrorAction {
    /// Accept, saying `temperror` in `Authentication-Results`: no mail is
    /// lost when DNS is down.
    Accept,
    /// Answer `451 4.4.3` so that the sender tries again later.
    Defer,
}

/// Checks of mail arriving on the MX service (submission is authenticated
/// and not checked). Results go into an `Authentication-Results` header
/// (RFC 8601) and the mail log.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Run SPF, DKIM, ARC and DMARC on mail from the MX service.
    pub checks: bool,
    /// DMARC failed and the sender's domain publishes `p=reject`.
    pub dmarc_reject: Action,
    /// DMARC failed and the sender's domain publishes `p=quarantine`.
    pub dmarc_quarantine: Action,
    /// A DNS failure left a result undecided.
    pub temperror: TempErrorAction,
    /// Messages verified at once; each is read whole into memory.
    pub max_concurrent_checks: usize,
    /// Most DNS answers kept in each resolver cache (entries expire with their TTL).
    pub dns_cache_entries: usize,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            checks: true,
            dmarc_reject: Action::Reject,
            dmarc_quarantine: Action::Quarantine,
            temperror: TempErrorAction::Accept,
            max_concurrent_checks: 4,
            dns_cache_entries: 4096,
        }
    }
}

/// Listening addresses of each service. An empty list disables the service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    /// MX service: mail from the internet for local domains (port 25).
    pub smtp: Vec<SocketAddr>,
    /// Submission with STARTTLS and AUTH (port 587).
    pub submission: Vec<SocketAddr>,
    /// Submission over implicit TLS (port 465).
    pub submissions: Vec<SocketAddr>,
    /// IMAP with STARTTLS (port 143).
    pub imap: Vec<SocketAddr>,
    /// IMAP over implicit TLS (port 993).
    pub imaps: Vec<SocketAddr>,
    /// POP3 with STLS (port 110).
    pub pop3: Vec<SocketAddr>,
    /// POP3 over implicit TLS (port 995).
    pub pop3s: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ListenFile {
    smtp: Option<Vec<SocketAddr>>,
    submission: Option<Vec<SocketAddr>>,
    submissions: Option<Vec<SocketAddr>>,
    imap: Option<Vec<SocketAddr>>,
    imaps: Option<Vec<SocketAddr>>,
    pop3: Option<Vec<SocketAddr>>,
    pop3s: Option<Vec<SocketAddr>>,
}

/// Limits applied to every SMTP session.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message accepted, in bytes, enforced while streaming (SIZE).
    pub max_message_bytes: u64,
    /// Most recipients in one transaction.
    pub max_recipients: usize,
    /// Longest command line, CRLF included.
    pub max_line_bytes: usize,
    /// A command line, or a line of message data, must arrive within this.
    pub command_timeout_secs: u64,
    /// Most simultaneous connections per service (port 25, 587, 465, 143,
    /// 993, 110, 995 each have their own), so that a flood of one service
    /// leaves the others free.
    pub max_connections: usize,
    /// Most simultaneous connections one client address (an IPv4 address,
    /// an IPv6 /64) may hold to one service.
    pub max_connections_per_address: usize,
    /// Failed AUTH attempts allowed in one session before it is closed.
    pub max_auth_failures: u32,
    /// Recipients an account may submit in a rolling 24 hours, unless the
    /// account has its own limit (`pochta account limit`).
    pub recipients_per_day: u32,
}

/// Process-wide settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// How long running sessions may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
}

/// Failed-login policy per client address, over SMTP AUTH, IMAP and POP3.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Guard {
    /// Failures after which every further attempt is slowed (1 s, 2 s, 4 s, 8 s).
    pub delay_after: u32,
    /// Failures within the window that get the address banned.
    pub max_failures: u32,
    /// How long failures are remembered.
    pub window_secs: u64,
    /// How long a ban lasts.
    pub ban_secs: u64,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            delay_after: 3,
            max_failures: 10,
            window_secs: 600,
            ban_secs: 900,
        }
    }
}

/// TLS certificate files (PEM). Relative paths are relative to the data folder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// Certificate chain; defaults to `tls/cert.pem` in the data folder.
    pub cert_file: PathBuf,
    /// Private key; defaults to `tls/key.pem` in the data folder.
    pub key_file: PathBuf,
}

/// The resolver for outbound delivery (MX, A/AAAA) and mail authentication
/// (SPF, DKIM, DMARC, ARC). Answers are cached for their TTL.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Name servers as `ip:port`, asked over UDP with TCP fallback. Empty
    /// means the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// How long one query may take before the next server is tried.
    pub timeout_secs: u64,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            servers: Vec::new(),
            timeout_secs: 5,
        }
    }
}

/// Standard ports on the appliance (running as root) and their unprivileged
/// equivalents for development.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSet {
    /// 25, 587, 465, 143, 993, 110, 995 on all interfaces.
    Standard,
    /// 2525, 2587, 2465, 2143, 2993, 2110, 2995 on loopback.
    Unprivileged,
}

impl Default for Listen {
    fn default() -> Self {
        Listen::for_ports(PortSet::Unprivileged)
    }
}

impl Listen {
    /// Each service by its name (as `[listen]` and `serve.json` name it)
    /// with its addresses, in the order people expect them.
    pub fn by_service(&self) -> [(&'static str, &[SocketAddr]); 7] {
        [
            ("smtp", &self.smtp),
            ("submission", &self.submission),
            ("submissions", &self.submissions),
            ("imap", &self.imap),
            ("imaps", &self.imaps),
            ("pop3", &self.pop3),
            ("pop3s", &self.pop3s),
        ]
    }

    /// The default listeners for a port set.
    pub fn for_ports(ports: PortSet) -> Self {
        // Unprivileged: 2525 for SMTP, otherwise the standard port plus 2000.
        let (host, [smtp, submission, submissions, imap, imaps, pop3, pop3s]) = match ports {
            PortSet::Standard => ("0.0.0.0", [25, 587, 465, 143, 993, 110, 995]),
            PortSet::Unprivileged => ("127.0.0.1", [2525, 2587, 2465, 2143, 2993, 2110, 2995]),
        };
        let addr = |port: u16| vec![SocketAddr::new(host.parse().expect("literal IP"), port)];
        Listen {
            smtp: addr(smtp),
            submission: addr(submission),
            submissions: addr(submissions),
            imap: addr(imap),
            imaps: addr(imaps),
            pop3: addr(pop3),
            pop3s: addr(pop3s),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            max_line_bytes: 4096,
            // RFC 5321 §4.5.3.2 suggests 5 minutes for most commands.
            command_timeout_secs: 300,
            max_connections: 500,
            // Postfix's smtpd_client_connection_count_limit; a mail client
            // opens at most a handful per account.
            max_connections_per_address: 50,
            max_auth_failures: 3,
            recipients_per_day: 500,
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Server {
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls {
            cert_file: PathBuf::from("tls/cert.pem"),
            key_file: PathBuf::from("tls/key.pem"),
        }
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message; it names the key and the line.
        message: String,
    },
    /// A value has the right type but is not acceptable.
    #[error("config file {path}: key `{key}`: {message}")]
    Invalid {
        /// The file, or `<embedded>`.
        path: PathBuf,
        /// Dotted key, e.g. `limits.max_message_bytes`.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
}

impl Config {
    /// The embedded default: what `pochta serve` runs without `--config`.
    /// Root gets the standard ports on all interfaces; anyone else the
    /// unprivileged ones on loopback.
    pub fn embedded(ports: PortSet) -> Self {
        Config {
            listen: Listen::for_ports(ports),
            admin: Admin::for_ports(ports),
            ..Config::default()
        }
    }

    /// Reads and validates a TOML file. Listeners the file does not mention
    /// take their defaults from `ports`.
    pub fn load(path: &Path, ports: PortSet) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path, ports)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, ports: PortSet) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let defaults = Listen::for_ports(ports);
        let file = std::mem::take(&mut config.listen_file);
        config.listen = Listen {
            smtp: file.smtp.unwrap_or(defaults.smtp),
            submission: file.submission.unwrap_or(defaults.submission),
            submissions: file.submissions.unwrap_or(defaults.submissions),
            imap: file.imap.unwrap_or(defaults.imap),
            imaps: file.imaps.unwrap_or(defaults.imaps),
            pop3: file.pop3.unwrap_or(defaults.pop3),
            pop3s: file.pop3s.unwrap_or(defaults.pop3s),
        };
        let admin_file = std::mem::take(&mut config.admin_file);
        config.admin = Admin::from_file(admin_file, ports);
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message: message.to_owned(),
        };
        if let Some(name) = &self.hostname {
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                return Err(invalid(
                    "hostname",
                    "must be a DNS name such as mail.example.com",
                ));
            }
        }
        if !(1..=60).contains(&self.dns.timeout_secs) {
            return Err(invalid("dns.timeout_secs", "must be 1 to 60"));
        }
        if let Err((key, message)) = queue::validate(&self.queue) {
            return Err(invalid(key, &message));
        }
        if let Err((key, message)) = system::validate(&self.system) {
            return Err(invalid(key, &message));
        }
        let l = &self.limits;
        if l.max_message_bytes < 1024 {
            return Err(invalid("limits.max_message_bytes", "must be at least 1024"));
        }
        if l.max_recipients == 0 {
            return Err(invalid("limits.max_recipients", "must be at least 1"));
        }
        if l.max_line_bytes < 512 {
            // RFC 5321 §4.5.3.1.4: a command line may be 512 octets.
            return Err(invalid(
                "limits.max_line_bytes",
                "must be at least 512 (RFC 5321 §4.5.3.1.4)",
            ));
        }
        if l.command_timeout_secs == 0 {
            return Err(invalid("limits.command_timeout_secs", "must be at least 1"));
        }
        if l.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        if l.max_connections_per_address == 0 {
            return Err(invalid(
                "limits.max_connections_per_address",
                "must be at least 1",
            ));
        }
        if l.max_auth_failures == 0 {
            return Err(invalid("limits.max_auth_failures", "must be at least 1"));
        }
        if l.recipients_per_day == 0 {
            return Err(invalid("limits.recipients_per_day", "must be at least 1"));
        }
        let a = &self.auth;
        if !(1..=256).contains(&a.max_concurrent_checks) {
            return Err(invalid("auth.max_concurrent_checks", "must be 1 to 256"));
        }
        if !(16..=1_000_000).contains(&a.dns_cache_entries) {
            return Err(invalid("auth.dns_cache_entries", "must be 16 to 1000000"));
        }
        let g = &self.guard;
        if g.max_failures == 0 {
            return Err(invalid("guard.max_failures", "must be at least 1"));
        }
        if g.window_secs == 0 {
            return Err(invalid("guard.window_secs", "must be at least 1"));
        }
        let l = &self.listen;
        let all = [
            ("listen.smtp", &l.smtp),
            ("listen.submission", &l.submission),
            ("listen.submissions", &l.submissions),
            ("listen.imap", &l.imap),
            ("listen.imaps", &l.imaps),
            ("listen.pop3", &l.pop3),
            ("listen.pop3s", &l.pop3s),
        ];
        for (key, addrs) in all {
            for addr in addrs.iter() {
                let clash = all
                    .iter()
                    .flat_map(|(_, a)| a.iter())
                    .filter(|a| *a == addr && addr.port() != 0)
                    .count();
                if clash > 1 {
                    return Err(invalid(key, &format!("address {addr} is used twice")));
                }
            }
        }
        let admin = [
            ("admin.listen", &self.admin.listen),
            ("admin.listen_tls", &self.admin.listen_tls),
        ];
        for (key, addrs) in admin {
            for addr in addrs.iter().filter(|a| a.port() != 0) {
                if all.iter().flat_map(|(_, a)| a.iter()).any(|a| a == addr) {
                    return Err(invalid(
                        key,
                        &format!("address {addr} is used by a mail service too"),
                    ));
                }
            }
        }
        if let Some(addr) = self
            .admin
            .listen
            .iter()
            .find(|a| a.port() != 0 && self.admin.listen_tls.contains(a))
        {
            return Err(invalid(
                "admin.listen_tls",
                &format!(
                    "address {addr} is in admin.listen too (HTTP and HTTPS need their own ports)"
                ),
            ));
        }
        if !(1..=24 * 60).contains(&self.admin.session_idle_minutes) {
            return Err(invalid("admin.session_idle_minutes", "must be 1 to 1440"));
        }
        if self.tls.cert_file.as_os_str().is_empty() {
            return Err(invalid("tls.cert_file", "must not be empty"));
        }
        if self.tls.key_file.as_os_str().is_empty() {
            return Err(invalid("tls.key_file", "must not be empty"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"), PortSet::Unprivileged)
    }

    #[test]
    fn empty_file_is_the_embedded_default() {
        assert_eq!(parse("").unwrap(), Config::embedded(PortSet::Unprivileged));
    }

    #[test]
    fn root_defaults_use_standard_ports() {
        let c = Config::parse("", Path::new("x"), PortSet::Standard).unwrap();
        assert_eq!(c.listen.smtp[0].port(), 25);
        assert_eq!(c.listen.submission[0].port(), 587);
        assert_eq!(c.listen.submissions[0].port(), 465);
        assert_eq!(c.listen.imaps[0].port(), 993);
        assert_eq!(c.listen.pop3s[0].port(), 995);
        let dev = Config::embedded(PortSet::Unprivileged).listen;
        let ports: Vec<u16> = [
            dev.smtp,
            dev.submission,
            dev.submissions,
            dev.imap,
            dev.imaps,
            dev.pop3,
            dev.pop3s,
        ]
        .iter()
        .map(|a| a[0].port())
        .collect();
        assert_eq!(ports, vec![2525, 2587, 2465, 2143, 2993, 2110, 2995]);
        assert_eq!(c.admin.listen, vec!["0.0.0.0:80".parse().unwrap()]);
        let dev = Config::embedded(PortSet::Unprivileged).admin;
        assert_eq!(dev.listen, vec!["127.0.0.1:2080".parse().unwrap()]);
        assert_eq!(dev.listen_tls, vec!["127.0.0.1:2443".parse().unwrap()]);
        assert!(dev.allow_loopback && dev.allow_lan && dev.allow.is_empty());
    }

    #[test]
    fn admin_section() {
        let c = parse(
            "[admin]\nlisten = [\"127.0.0.1:0\"]\nallow = [\"203.0.113.0/24\", \"2001:db8::1\"]\n\
             allow_loopback = false\n",
        )
        .unwrap();
        assert_eq!(c.admin.listen, vec!["127.0.0.1:0".parse().unwrap()]);
        assert_eq!(c.admin.allow.len(), 2);
        assert!(c.admin.allow[0].contains("203.0.113.77".parse().unwrap()));
        assert!(!c.admin.allow_loopback);
        assert!(c.admin.allow_lan);
        assert_eq!(c.admin.session_idle_minutes, 30);
        // Root, file without [admin]: port 80.
        let c = Config::parse("[admin]\nallow = []\n", Path::new("x"), PortSet::Standard).unwrap();
        assert_eq!(c.admin.listen[0].port(), 80);
        assert_eq!(c.admin.listen_tls[0].port(), 443);
    }

    #[test]
    fn values_are_read() {
        let c = parse(
            "hostname = \"mx.example.com\"\n[listen]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = []\n\
             [limits]\nmax_recipients = 7\n",
        )
        .unwrap();
        assert_eq!(c.hostname.as_deref(), Some("mx.example.com"));
        assert_eq!(c.listen.smtp.len(), 1);
        assert!(c.listen.submission.is_empty());
        // Not mentioned: the default.
        assert_eq!(c.listen.submissions[0].port(), 2465);
        assert_eq!(c.limits.max_recipients, 7);
        assert_eq!(c.limits.max_line_bytes, 4096);
        let c = parse("[dns]\nservers = [\"127.0.0.1:5353\", \"[::1]:53\"]\n").unwrap();
        assert_eq!(c.dns.servers.len(), 2);
        assert_eq!(c.dns.servers[0].port(), 5353);
        assert_eq!(c.dns.timeout_secs, 5);
        let c = parse(
            "[auth]\ndmarc_reject = \"quarantine\"\ntemperror = \"defer\"\n\
             [limits]\nrecipients_per_day = 20\n",
        )
        .unwrap();
        assert_eq!(c.auth.dmarc_reject, Action::Quarantine);
        assert_eq!(c.auth.dmarc_quarantine, Action::Quarantine);
        assert_eq!(c.auth.temperror, TempErrorAction::Defer);
        assert!(c.auth.checks);
        assert_eq!(c.limits.recipients_per_day, 20);
        let c = parse(
            "[queue]\nhold = true\nretry_secs = [1, 2]\nlifetime_secs = 10\ndelay_warning_secs = 3\n\
             remote_port = 2525\n[queue.smarthost]\nhost = \"relay.example\"\n\
             username = \"u\"\npassword_file = \"relay.pw\"\n\
             [queue.domain_smarthosts.\"b.test\"]\nhost = \"127.0.0.1\"\nport = 2525\n\
             tls = \"none_loopback_only\"\n",
        )
        .unwrap();
        assert_eq!(c.queue.retry_secs, vec![1, 2]);
        assert!(c.queue.hold && !Config::default().queue.hold);
        assert_eq!(c.queue.remote_port, 2525);
        let relay = c.queue.smarthost.as_ref().unwrap();
        assert_eq!((relay.port(), relay.tls), (587, SmarthostTls::Starttls));
        let b = &c.queue.domain_smarthosts["b.test"];
        assert_eq!((b.port(), b.tls), (2525, SmarthostTls::NoneLoopbackOnly));
        assert_eq!(Config::default().queue.lifetime_secs, 5 * 24 * 3600);
    }

    /// Each bad config and a piece of the message it must produce.
    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            ("colour = 1", "colour"),
            ("[limits]\nmax_recipients = \"many\"", "max_recipients"),
            (
                "[limits]\nmax_message_bytes = 0",
                "limits.max_message_bytes",
            ),
            ("[limits]\nmax_line_bytes = 100", "limits.max_line_bytes"),
            (
                "[limits]\ncommand_timeout_secs = 0",
                "limits.command_timeout_secs",
            ),
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            (
                "[limits]\nmax_connections_per_address = 0",
                "limits.max_connections_per_address",
            ),
            ("[limits]\nspeed = 3", "speed"),
            ("[listen]\nsmtp = [\"nowhere\"]", "smtp"),
            (
                "[listen]\nsmtp = [\"127.0.0.1:25\"]\nsubmission = [\"127.0.0.1:25\"]",
                "listen.s",
            ),
            ("hostname = \"bad host\"", "hostname"),
            ("[tls]\ncert_file = \"\"", "tls.cert_file"),
            ("[server]\nshutdown_grace_secs = -1", "shutdown_grace_secs"),
            ("[limits", "expected"),
            ("[guard]\nmax_failures = 0", "guard.max_failures"),
            ("[guard]\nban = 1", "ban"),
            ("[dns]\ntimeout_secs = 0", "dns.timeout_secs"),
            (
                "[system]\nwatchdog_timeout_secs = 0",
                "system.watchdog_timeout_secs`: must be 1 to 600",
            ),
            (
                "[system]\ndisk_refuse_percent = 101",
                "system.disk_refuse_percent`: must be 1 to 100",
            ),
            (
                "[system]\ndisk_warning_percent = 96",
                "system.disk_warning_percent`: must be 1 to disk_refuse_percent (95)",
            ),
            (
                "[system]\nhealth_interval_secs = 0",
                "system.health_interval_secs",
            ),
            (
                "[system]\nmdns = \"pochta.local\"",
                "system.mdns`: must be one DNS label",
            ),
            ("[system]\nntp = [\"\"]", "system.ntp"),
            ("[system]\nalert_email = \"nobody\"", "system.alert_email"),
            ("[system]\nwatchdog = 15", "watchdog"),
            ("[system]\nreboot = true", "reboot"),
            ("[queue]\nretry_secs = []", "queue.retry_secs"),
            ("[queue]\nretry_secs = [60, 0]", "queue.retry_secs"),
            ("[queue]\nlifetime_secs = 0", "queue.lifetime_secs"),
            (
                "[queue]\nlifetime_secs = 100\ndelay_warning_secs = 200",
                "queue.delay_warning_secs",
            ),
            (
                "[queue]\nconnect_timeout_secs = 0",
                "queue.connect_timeout_secs",
            ),
            (
                "[queue]\ncommand_timeout_secs = 0",
                "queue.command_timeout_secs",
            ),
            (
                "[queue]\ndata_timeout_secs = 9999",
                "queue.data_timeout_secs",
            ),
            ("[queue]\nmax_parallel = 0", "queue.max_parallel"),
            ("[queue]\nremote_port = 0", "queue.remote_port"),
            ("[queue]\nmta_sts_port = 0", "queue.mta_sts_port"),
            ("[queue]\nmta_sts = \"yes\"", "mta_sts"),
            ("[queue]\nspeed = 1", "speed"),
            ("[queue.smarthost]\nhost = \"\"", "queue.smarthost"),
            (
                "[queue.smarthost]\nhost = \"relay.example\"\ntls = \"none_loopback_only\"",
                "queue.smarthost",
            ),
            (
                "[queue.smarthost]\nhost = \"127.0.0.1\"\ntls = \"none_loopback_only\"\n\
                 username = \"u\"\npassword = \"p\"",
                "queue.smarthost",
            ),
            (
                "[queue.smarthost]\nhost = \"relay.example\"\nusername = \"u\"",
                "queue.smarthost",
            ),
            (
                "[queue.smarthost]\nhost = \"r\"\ntls = \"sometimes\"",
                "tls",
            ),
            (
                "[queue.domain_smarthosts.\"a b\"]\nhost = \"relay.example\"",
                "queue.domain_smarthosts",
            ),
            ("[auth]\ndmarc_reject = \"drop\"", "dmarc_reject"),
            ("[auth]\ntemperror = \"reject\"", "temperror"),
            (
                "[auth]\nmax_concurrent_checks = 0",
                "auth.max_concurrent_checks",
            ),
            ("[auth]\ndns_cache_entries = 1", "auth.dns_cache_entries"),
            ("[auth]\nspf = 1", "spf"),
            (
                "[limits]\nrecipients_per_day = 0",
                "limits.recipients_per_day",
            ),
            ("[dns]\nservers = [\"8.8.8.8\"]", "servers"),
            ("[admin]\nallow = [\"lan\"]", "not a network"),
            ("[admin]\nallow = [\"10.0.0.0/40\"]", "not a network"),
            ("[admin]\nlisten = [\"port 80\"]", "listen"),
            ("[admin]\ncolour = 1", "colour"),
            (
                "[admin]\nlisten = [\"127.0.0.1:2525\"]\n[listen]\nsmtp = [\"127.0.0.1:2525\"]",
                "admin.listen",
            ),
            (
                "[admin]\nlisten = [\"127.0.0.1:2080\"]\nlisten_tls = [\"127.0.0.1:2080\"]",
                "admin.listen_tls",
            ),
            (
                "[admin]\nsession_idle_minutes = 0",
                "admin.session_idle_minutes",
            ),
            (
                "[listen]\nimap = [\"127.0.0.1:143\"]\npop3 = [\"127.0.0.1:143\"]",
                "listen.",
            ),
        ];
        for (text, needle) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(
                err.contains(needle),
                "{text:?}: {err:?} should name {needle:?}"
            );
            assert!(
                err.contains("test.toml"),
                "{text:?}: {err:?} should name the file"
            );
        }
    }
}
