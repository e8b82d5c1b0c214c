//! The outbound queue worker: takes due rows from the store's queue, groups
//! them by message and recipient domain, delivers each group over one SMTP
//! connection (to the domain's MX hosts or a smarthost), and records a result
//! per recipient: delivered, deferred with back-off, or bounced with a DSN.
//!
//! Layout:
//! - `resolve`: the resolver built from `[dns]`, MX and address lookup;
//! - `tls`: the TLS client (opportunistic: any certificate, verification only
//!   reported);
//! - `client`: one SMTP client connection, a result per recipient;
//! - `reply`: the sans-I/O parser of server replies;
//! - `schedule`: retries, expiry, the delay warning, and recording outcomes;
//! - `dsn`: delivery status notifications (RFC 3464).
//!
//! Crash safety: rows are claimed under a lease and removed only after the
//! remote's `250` (or after the DSN is committed); a crash between the
//! remote's `250` and that removal delivers the message again at the next
//! start, the one duplicate SMTP allows (RFC 5321 §6.1).

mod client;
mod dsn;
mod reply;
mod resolve;
mod schedule;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use pochta_config::{Dns, Queue, Smarthost, SmarthostTls};
use pochta_maillog::MailLog;
use pochta_store::{QueueEntry, Store};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use dsn::{DsnKind, DsnRecipient, Report};
pub use resolve::{mx_hosts, resolver, MxHost};

use crate::mta_sts::{Mode, MtaSts};

/// How often the worker looks for due rows.
const POLL: Duration = Duration::from_millis(200);
/// Most rows claimed at once.
const CLAIM: usize = 256;
/// A lease outlives any attempt; a restart ends all leases anyway.
const LEASE_SECS: i64 = 3 * 3600;

/// The DKIM hook: given the sender's domain (the host name for the null
/// sender) and the whole message, the header lines to put in front of it
/// (CRLF-terminated), or `None` to send it unsigned. It may block; it is
/// called off the runtime. The signer from the mail-authentication work
/// (`pochta_filter::signing_hook`, the same type) plugs in here: `pochta
/// serve` passes it to [`Outbound::new`].
pub type DkimSigner = Arc<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// Whether a failure may go away by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Retry later (4xx, network, DNS trouble).
    Transient,
    /// Give up and tell the sender (5xx, no such domain, null MX).
    Permanent,
}

/// Why a recipient was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Retry or not.
    pub severity: Severity,
    /// Enhanced status code (RFC 3463), e.g. `5.1.1`.
    pub status: String,
    /// The remote's reply or our own explanation.
    pub text: String,
    /// `text` is the remote server's reply.
    pub remote: bool,
    /// The server that answered, if one did.
    pub remote_host: Option<String>,
}

impl Failure {
    fn new(severity: Severity, status: &str, text: String, remote: bool) -> Failure {
        Failure {
            severity,
            status: status.into(),
            text,
            remote,
            remote_host: None,
        }
    }

    /// A permanent failure found here (DNS, policy).
    pub fn permanent(status: &str, text: String) -> Failure {
        Failure::new(Severity::Permanent, status, text, false)
    }

    /// A transient failure found here.
    pub fn transient(status: &str, text: String) -> Failure {
        Failure::new(Severity::Transient, status, text, false)
    }

    /// A 5xx reply.
    pub fn remote_permanent(reply: String) -> Failure {
        let status = enhanced(&reply).unwrap_or("5.0.0").to_owned();
        Failure::new(Severity::Permanent, &status, reply, true)
    }

    /// A 4xx reply.
    pub fn remote_transient(reply: String) -> Failure {
        let status = enhanced(&reply).unwrap_or("4.0.0").to_owned();
        Failure::new(Severity::Transient, &status, reply, true)
    }

    /// The connection failed (refused, timed out, closed, TLS).
    pub fn network(text: String) -> Failure {
        Failure::transient("4.4.1", text)
    }

    /// The TLS handshake failed (RFC 3463 X.7.5, cryptographic failure).
    pub fn tls(text: String) -> Failure {
        Failure::transient("4.7.5", text)
    }

    /// Whether the TLS handshake is what failed.
    pub fn is_tls(&self) -> bool {
        self.status == "4.7.5" && !self.remote
    }

    /// Trouble on this box (reading the queued body).
    pub fn local(text: String) -> Failure {
        Failure::transient("4.3.0", text)
    }

    /// Names the server that answered.
    pub fn at(mut self, host: &str) -> Failure {
        self.remote_host = Some(host.to_owned());
        self
    }

    /// The enhanced status code for the DSN.
    pub fn status(&self) -> &str {
        &self.status
    }
}

/// The enhanced status code after the reply code (RFC 3463), e.g.
/// `550 5.1.1 ...` gives `5.1.1`.
fn enhanced(reply: &str) -> Option<&str> {
    let mut words = reply.split_whitespace();
    let code = words.next()?;
    let status = words.next()?;
    let parts: Vec<&str> = status.split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && code.get(..1) == status.get(..1);
    ok.then_some(status)
}

/// Rows of one message to one recipient domain: one connection.
struct Batch {
    domain: String,
    entries: Vec<QueueEntry>,
}

/// Groups claimed rows by message (body, sender, arrival) and domain.
fn batches(entries: Vec<QueueEntry>) -> Vec<Batch> {
    let mut groups: BTreeMap<(String, String, i64, String), Vec<QueueEntry>> = BTreeMap::new();
    for e in entries {
        let domain = e
            .recipient
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        groups
            .entry((e.blob.0.clone(), e.sender.clone(), e.created, domain))
            .or_default()
            .push(e);
    }
    groups
        .into_iter()
        .map(|((_, _, _, domain), entries)| Batch { domain, entries })
        .collect()
}

/// The queue worker. One per data folder.
pub struct Outbound {
    store: Store,
    maillog: Arc<MailLog>,
    queue: Queue,
    hostname: String,
    resolver: TokioResolver,
    tls: tls::ClientTls,
    dkim: Option<DkimSigner>,
    /// Recipient domains' MTA-STS policies; `None` with `[queue] mta_sts =
    /// false`.
    mta_sts: Option<MtaSts>,
    data_dir: PathBuf,
}

impl Outbound {
    /// A worker for `store` with the `[queue]` and `[dns]` settings. `dkim`
    /// signs outbound mail when given.
    pub fn new(
        store: Store,
        maillog: Arc<MailLog>,
        queue: Queue,
        dns: &Dns,
        hostname: String,
        dkim: Option<DkimSigner>,
    ) -> Result<Outbound, String> {
        let resolver = resolver(dns)?;
        let mta_sts = if queue.mta_sts {
            Some(MtaSts::new(
                resolver.clone(),
                Arc::new(crate::mta_sts::system_roots()),
                queue.mta_sts_port,
                Duration::from_secs(queue.command_timeout_secs.min(60)),
            )?)
        } else {
            None
        };
        Ok(Outbound {
            data_dir: store.dir().to_owned(),
            store,
            maillog,
            queue,
            hostname,
            resolver,
            tls: tls::ClientTls::new()?,
            dkim,
            mta_sts,
        })
    }

    /// Delivers until `shutdown` turns true, then lets running attempts
    /// finish for up to `grace` (an attempt cut short is retried later).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let store = self.store.clone();
        match blocking(move || store.release_queue_leases()).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(rows = n, "queue: taking over rows left in flight")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "queue: cannot release leases"),
            _ => {}
        }
        if self.queue.hold {
            tracing::info!("queue: on hold ([queue] hold = true): nothing is delivered");
        }
        let parallel = Arc::new(Semaphore::new(self.queue.max_parallel));
        let in_flight: Arc<std::sync::Mutex<HashSet<i64>>> = Arc::default();
        let mut tasks = JoinSet::new();
        while !*shutdown.borrow() {
            while tasks.try_join_next().is_some() {}
            let mut full = false;
            if !self.queue.hold && tasks.len() < self.queue.max_parallel * 4 {
                let store = self.store.clone();
                match blocking(move || store.claim_queue(CLAIM, LEASE_SECS)).await {
                    Ok(Ok(rows)) => {
                        full = rows.len() == CLAIM;
                        // A lease that ran out while its attempt still runs
                        // (a very slow server) must not start a second one.
                        let rows: Vec<QueueEntry> = {
                            let mut busy = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                            rows.into_iter().filter(|r| busy.insert(r.id)).collect()
                        };
                        for batch in batches(rows) {
                            let (me, permits) = (self.clone(), parallel.clone());
                            let in_flight = in_flight.clone();
                            tasks.spawn(async move {
                                let ids: Vec<i64> = batch.entries.iter().map(|e| e.id).collect();
                                if let Ok(_permit) = permits.acquire_owned().await {
                                    me.attempt(batch).await;
                                }
                                let mut busy = in_flight.lock().unwrap_or_else(|e| e.into_inner());
                                for id in ids {
                                    busy.remove(&id);
                                }
                            });
                        }
                    }
                    Ok(Err(e)) => tracing::error!(error = %e, "queue: cannot read the queue"),
                    Err(e) => tracing::error!(error = %e, "queue: claim task failed"),
                }
            }
            if full {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                r = shutdown.changed() => if r.is_err() { break },
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!("queue: attempts still running at shutdown; they will be retried");
        }
        tasks.abort_all();
        let store = self.store.clone();
        let _ = blocking(move || store.release_queue_leases()).await;
        tracing::info!("queue worker stopped");
    }

    fn smarthost(&self, domain: &str) -> Option<&Smarthost> {
        self.queue
            .domain_smarthosts
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
            .map(|(_, s)| s)
            .or(self.queue.smarthost.as_ref())
    }

    fn timeouts(&self) -> client::Timeouts {
        client::Timeouts {
            connect: Duration::from_secs(self.queue.connect_timeout_secs),
            command: Duration::from_secs(self.queue.command_timeout_secs),
            data: Duration::from_secs(self.queue.data_timeout_secs),
        }
    }

    /// One connection attempt for a batch, then its outcomes recorded.
    async fn attempt(self: Arc<Self>, batch: Batch) {
        let Some(first) = batch.entries.first() else {
            return;
        };
        let body = self.store.blob_path(&first.blob);
        let prefix = match &self.dkim {
            Some(sign) => {
                let domain = first
                    .sender
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or_else(|| self.hostname.clone());
                let (sign, path) = (sign.clone(), body.clone());
                // The signer may block (key lookup, RSA): off the runtime.
                // A body that cannot be read is reported by the attempt.
                blocking(move || {
                    std::fs::read(&path)
                        .ok()
                        .and_then(|message| sign(&domain, &message))
                        .unwrap_or_default()
                })
                .await
                .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let recipients: Vec<String> = batch.entries.iter().map(|e| e.recipient.clone()).collect();
        let rcpt_dsn: Vec<client::RcptDsn> = batch
            .entries
            .iter()
            .map(|e| client::RcptDsn {
                notify: e.notify.clone(),
                orcpt: e.orcpt.clone(),
            })
            .collect();
        let msg = client::Outgoing {
            sender: &first.sender,
            recipients: &recipients,
            rcpt_dsn: &rcpt_dsn,
            ret: first.ret.as_deref(),
            envid: first.envid.as_deref(),
            body: &body,
            size: first.size,
            prefix: &prefix,
        };
        let outcome = match self.smarthost(&batch.domain) {
            Some(relay) => self.via_smarthost(relay, &msg).await,
            None => self.via_mx(&batch.domain, &msg).await,
        };
        let results: Vec<Result<String, Failure>> = match &outcome {
            Ok((_, attempt)) => attempt.results.clone(),
            Err(f) => vec![Err(f.clone()); batch.entries.len()],
        };
        let via = outcome.ok().map(|(host, a)| (host, a.tls));
        let me = self.clone();
        let _ = blocking(move || me.record(batch.entries, results, via)).await;
    }

    /// Tries each MX host and address in turn until one takes the
    /// transaction (RFC 5321 §5.1).
    async fn via_mx(
        &self,
        domain: &str,
        msg: &client::Outgoing<'_>,
    ) -> Result<(String, client::Attempt), Failure> {
        let mut hosts = mx_hosts(&self.resolver, domain).await?;
        // RFC 8461 §5: a policy in enforce mode allows only the MX hosts it
        // names, and only over TLS with a certificate that verifies.
        let policy = match &self.mta_sts {
            Some(m) => m.policy(domain).await,
            None => None,
        };
        let enforce = policy.as_ref().filter(|p| p.mode == Mode::Enforce);
        if let Some(p) = enforce {
            hosts.retain(|h| p.allows_mx(&h.name));
            if hosts.is_empty() {
                return Err(Failure::transient(
                    "4.7.5",
                    format!(
                        "MTA-STS: no MX host of {domain} matches its policy (mx: {})",
                        p.mx.join(", ")
                    ),
                ));
            }
        }
        let tls_mode = if enforce.is_some() {
            client::TlsMode::RequireStarttls {
                accept_invalid: false,
            }
        } else {
            client::TlsMode::Opportunistic
        };
        let mut last = None;
        for host in &hosts {
            for ip in &host.addrs {
                let peer = client::Peer {
                    addr: SocketAddr::new(*ip, self.queue.remote_port),
                    name: &host.name,
                    tls: tls_mode,
                    credentials: None,
                    source: self.queue.bind_address,
                };
                let mut result =
                    client::deliver(&self.tls, &self.hostname, &peer, self.timeouts(), msg).await;
                if enforce.is_none() && matches!(&result, Err(f) if f.is_tls()) {
                    // RFC 7435 §4: a failed opportunistic handshake falls
                    // back to plain text (an MTA-STS policy forbids it).
                    tracing::info!(host = %host.name, %ip, "TLS handshake failed; sending in plain text");
                    let plain = client::Peer {
                        tls: client::TlsMode::Plain,
                        ..peer
                    };
                    result =
                        client::deliver(&self.tls, &self.hostname, &plain, self.timeouts(), msg)
                            .await;
                }
                match result {
                    Ok(a) => {
                        if let Some(p) = policy.as_ref().filter(|p| p.mode == Mode::Testing) {
                            let verified = a.tls.is_some_and(|t| t.verified);
                            if !verified || !p.allows_mx(&host.name) {
                                // RFC 8461 §5: testing mode delivers and reports.
                                self.maillog.mta_sts_testing_failure(
                                    domain,
                                    &host.name,
                                    if p.allows_mx(&host.name) {
                                        "certificate not verified or no TLS"
                                    } else {
                                        "MX host not in the policy"
                                    },
                                );
                            }
                        }
                        return Ok((host.name.clone(), a));
                    }
                    Err(f) if f.severity == Severity::Permanent => return Err(f.at(&host.name)),
                    Err(f) => {
                        tracing::debug!(host = %host.name, %ip, error = %f.text, "MX attempt failed");
                        last = Some(f.at(&host.name));
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Failure::network(format!("no mail host for {domain}"))))
    }

    async fn via_smarthost(
        &self,
        relay: &Smarthost,
        msg: &client::Outgoing<'_>,
    ) -> Result<(String, client::Attempt), Failure> {
        let credentials = match (&relay.username, &relay.password, &relay.password_file) {
            (Some(user), Some(pw), _) => Some(client::Credentials {
                username: user.clone(),
                password: pw.clone(),
            }),
            (Some(user), None, Some(file)) => {
                let path = self.data_dir.join(file);
                let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
                    Failure::local(format!("smarthost password file {}: {e}", path.display()))
                })?;
                Some(client::Credentials {
                    username: user.clone(),
                    password: text.lines().next().unwrap_or("").to_owned(),
                })
            }
            _ => None,
        };
        let addrs: Vec<IpAddr> = match relay.host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self
                .resolver
                .lookup_ip(format!("{}.", relay.host.trim_end_matches('.')))
                .await
                .map_err(|e| Failure::transient("4.4.3", format!("smarthost {}: {e}", relay.host)))?
                .iter()
                .collect(),
        };
        let accept_invalid = relay.accept_invalid_cert_dangerous;
        let tls = match relay.tls {
            SmarthostTls::Starttls => client::TlsMode::RequireStarttls { accept_invalid },
            SmarthostTls::Implicit => client::TlsMode::Implicit { accept_invalid },
            SmarthostTls::NoneLoopbackOnly => client::TlsMode::Plain,
        };
        let mut last = None;
        for ip in addrs {
            let peer = client::Peer {
                addr: SocketAddr::new(ip, relay.port()),
                name: &relay.host,
                tls,
                credentials: credentials.as_ref(),
                source: self.queue.bind_address,
            };
            match client::deliver(&self.tls, &self.hostname, &peer, self.timeouts(), msg).await {
                Ok(a) => return Ok((relay.host.clone(), a)),
                Err(f) if f.severity == Severity::Permanent => return Err(f.at(&relay.host)),
                Err(f) => last = Some(f.at(&relay.host)),
            }
        }
        Err(last.unwrap_or_else(|| Failure::network(format!("no address for {}", relay.host))))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes() {
        assert_eq!(enhanced("550 5.1.1 no such user"), Some("5.1.1"));
        assert_eq!(enhanced("451 4.7.1 greylisted"), Some("4.7.1"));
        assert_eq!(enhanced("550 no such user"), None);
        assert_eq!(enhanced("550 4.1.1 mismatch"), None);
        assert_eq!(
            Failure::remote_permanent("554 go away".into()).status(),
            "5.0.0"
        );
    }
}
