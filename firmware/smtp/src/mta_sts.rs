//! MTA-STS (RFC 8461): a receiving domain's published promise that its
//! mail hosts speak TLS with a valid certificate, which the outbound queue
//! then enforces against downgrade and MX spoofing.
//!
//! Discovery: the TXT record `_mta-sts.DOMAIN` (`v=STSv1; id=...`) says a
//! policy exists; the policy itself comes over HTTPS, with a certificate
//! that must verify, from `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`.
//! Policies are cached for their `max_age` and fetched again when the
//! record's id changes (§5.1); a fetch that fails keeps the cached policy,
//! and with none cached the domain is treated as having no policy (§3.3,
//! §5).
//!
//! Enforcement (§4, §5) is the queue's: with `mode: enforce` only MX hosts
//! the policy names are used, and only over TLS whose certificate verifies
//! for the host name; `mode: testing` delivers anyway and logs what would
//! have failed. TLS reporting (RFC 8460) is not done.
//!
//! The HTTPS client is the few lines one GET needs (rustls, httparse for
//! the response head) rather than a general HTTP client crate: no
//! redirects, no cookies, one small body, all of which RFC 8461 wants.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::TokioResolver;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A policy's mode (RFC 8461 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts over verified TLS.
    Enforce,
    /// Deliver as usual; report (here: log) what enforce would refuse.
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns: `mail.example.com` or `*.example.com`.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached.
    pub max_age: u64,
}

/// Longest `max_age` honoured (RFC 8461 §3.2: 31557600, about a year).
const MAX_AGE_LIMIT: u64 = 31_557_600;
/// Largest policy body read (§3.2: senders may refuse larger ones).
const MAX_BODY: usize = 64 * 1024;
/// Largest response head read.
const MAX_HEAD: usize = 16 * 1024;

impl Policy {
    /// Whether `host` matches one of the policy's MX patterns (§4.1): a
    /// wildcard stands for exactly one leftmost label.
    pub fn allows_mx(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|pattern| {
            let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => host == pattern,
            }
        })
    }
}

/// The id of an `_mta-sts` TXT record (§3.1), or `None` when the text is
/// not an MTA-STS record. Several records, or none valid, mean no policy.
pub fn parse_record(txt: &str) -> Option<String> {
    let mut fields = txt.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next()? != "v=STSv1" {
        return None;
    }
    fields.find_map(|f| {
        let id = f.strip_prefix("id=")?;
        (!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| id.to_string())
    })
}

/// Parses a policy file (§3.2): `key: value` lines, CRLF or LF.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut max_age = None;
    let mut mx = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line without a colon: {line:?}"));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "max_age" => {
                let age: u64 = value
                    .parse()
                    .map_err(|_| format!("max_age is not a number: {value:?}"))?;
                max_age = Some(age.min(MAX_AGE_LIMIT));
            }
            "mx" => mx.push(value.to_string()),
            // §3.2: unknown keys are ignored.
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("version is not STSv1".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mx.is_empty() && mode != Mode::None {
        return Err("no mx patterns".into());
    }
    Ok(Policy { mode, mx, max_age })
}

struct Cached {
    id: String,
    policy: Policy,
    expires: Instant,
}

/// Finds and caches the policies of recipient domains.
pub struct MtaSts {
    resolver: TokioResolver,
    tls: TlsConnector,
    /// HTTPS port of the policy hosts: 443 except in tests.
    port: u16,
    timeout: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Domains whose policies are kept; the oldest go first beyond this.
const CACHE_LIMIT: usize = 10_000;

impl MtaSts {
    /// `roots` are the CA certificates policy hosts must chain to.
    pub fn new(
        resolver: TokioResolver,
        roots: Arc<rustls::RootCertStore>,
        port: u16,
        timeout: Duration,
    ) -> Result<MtaSts, String> {
        Ok(MtaSts {
            resolver,
            tls: verifying_connector(roots)?,
            port,
            timeout,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The policy in force for `domain`, if any (RFC 8461 §5). Never fails:
    /// what cannot be found means "no policy", and the log says why.
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain);
        let id = match self.record_id(&domain).await {
            Ok(Some(id)) => id,
            // No record: a cached policy still holds until it expires
            // (§5: an attacker may strip the record).
            Ok(None) | Err(_) => return cached.map(|(_, p)| p),
        };
        if let Some((cached_id, policy)) = &cached {
            if *cached_id == id {
                return Some(policy.clone());
            }
        }
        match self.fetch(&domain).await {
            Ok(policy) => {
                tracing::info!(domain, id, mode = ?policy.mode, max_age = policy.max_age, "MTA-STS policy fetched");
                self.store(&domain, id, policy.clone());
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "MTA-STS policy could not be fetched");
                cached.map(|(_, p)| p)
            }
        }
    }

    fn cached(&self, domain: &str) -> Option<(String, Policy)> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(domain) {
            Some(c) if c.expires > Instant::now() => Some((c.id.clone(), c.policy.clone())),
            Some(_) => {
                cache.remove(domain);
                None
            }
            None => None,
        }
    }

    fn store(&self, domain: &str, id: String, policy: Policy) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT && !cache.contains_key(domain) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| c.expires)
                .map(|(d, _)| d.clone());
            if let Some(d) = oldest {
                cache.remove(&d);
            }
        }
        let expires = Instant::now() + Duration::from_secs(policy.max_age);
        cache.insert(
            domain.to_string(),
            Cached {
                id,
                policy,
                expires,
            },
        );
    }

    /// The id of the domain's single valid `_mta-sts` record.
    async fn record_id(&self, domain: &str) -> Result<Option<String>, String> {
        let name = Name::from_str(&format!("_mta-sts.{domain}."))
            .map_err(|e| format!("bad domain {domain}: {e}"))?;
        let lookup = match self.resolver.txt_lookup(name).await {
            Ok(l) => l,
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let ids: Vec<String> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(txt) => {
                    let text: Vec<u8> = txt
                        .txt_data
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect();
                    parse_record(&String::from_utf8_lossy(&text))
                }
                _ => None,
            })
            .collect();
        // §3.1: more than one record means none.
        Ok(match ids.as_slice() {
            [id] => Some(id.clone()),
            _ => None,
        })
    }

    /// Fetches and parses `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`.
    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let ips: Vec<IpAddr> = self
            .resolver
            .lookup_ip(format!("{host}."))
            .await
            .map_err(|e| format!("{host}: {e}"))?
            .iter()
            .collect();
        let mut last = format!("{host} has no address");
        for ip in ips {
            match fetch_policy(
                &self.tls,
                &host,
                SocketAddr::new(ip, self.port),
                self.timeout,
            )
            .await
            {
                Ok(p) => return Ok(p),
                Err(e) => last = format!("{host} ({ip}): {e}"),
            }
        }
        Err(last)
    }
}

/// A TLS client that accepts only certificates chaining to `roots`.
pub fn verifying_connector(roots: Arc<rustls::RootCertStore>) -> Result<TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The system's CA roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`).
pub fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// One HTTPS GET of the policy from `addr`, the certificate verified for
/// `host` (§3.3: no redirects, 200 only, `text/plain`).
pub async fn fetch_policy(
    tls: &TlsConnector,
    host: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<Policy, String> {
    let work = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let name =
            ServerName::try_from(host.to_string()).map_err(|e| format!("bad host name: {e}"))?;
        let mut stream = tls
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let request = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Pochta\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(n) => n,
                // Servers that close without close_notify are common.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(format!("receive: {e}")),
            };
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
            if response.len() > MAX_HEAD + MAX_BODY + 1024 {
                return Err("response too large".into());
            }
        }
        let body = response_body(&response)?;
        let text = std::str::from_utf8(&body).map_err(|_| "policy is not UTF-8".to_string())?;
        parse_policy(text)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no policy within {} s", timeout.as_secs()))?
}

/// The body of a complete HTTP/1.1 response, checked as §3.3 wants.
fn response_body(response: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(response) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) => return Err("response head too large".into()),
        Ok(httparse::Status::Partial) => return Err("incomplete response".into()),
        Err(e) => return Err(format!("bad HTTP response: {e}")),
    };
    match parsed.code {
        Some(200) => {}
        Some(code) => return Err(format!("HTTP status {code} (redirects are not followed)")),
        None => return Err("no HTTP status".into()),
    }
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let media = header("content-type").unwrap_or_default();
    if media.split(';').next().map(str::trim) != Some("text/plain") {
        return Err(format!("media type {media:?}, not text/plain"));
    }
    let rest = &response[head_len..];
    let body = if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad Content-Length".to_string())?;
        rest.get(..len)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > MAX_BODY {
        return Err("policy larger than 64 KiB".into());
    }
    Ok(body)
}

/// Decodes a chunked body (RFC 9112 §7.1); trailers are ignored.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err("policy larger than 64 KiB".into());
        }
        let chunk = data.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        // RFC 8461 §3.1 example.
        assert_eq!(
            parse_record("v=STSv1; id=20160831085700Z;").as_deref(),
            Some("20160831085700Z")
        );
        assert_eq!(parse_record("v=STSv1;id=abc").as_deref(), Some("abc"));
        assert_eq!(parse_record("v=spf1 -all"), None);
        assert_eq!(parse_record("v=STSv1;"), None);
        assert_eq!(parse_record("v=STSv1; id=not-alnum"), None);
        assert_eq!(
            parse_record(&format!("v=STSv1; id={}", "a".repeat(33))),
            None
        );
    }

    #[test]
    fn policies() {
        // RFC 8461 §3.2 example.
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert!(p.allows_mx("mail.example.com"));
        assert!(p.allows_mx("MAIL.example.com."));
        assert!(p.allows_mx("mx1.example.net"));
        assert!(!p.allows_mx("example.net"));
        assert!(!p.allows_mx("a.b.example.net"));
        assert!(!p.allows_mx("evil.example.org"));
        let p = parse_policy(
            "version: STSv1\nmode: testing\nmx: a.test\nmax_age: 99999999999\nfuture: x\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Testing);
        assert_eq!(p.max_age, MAX_AGE_LIMIT);
        assert_eq!(
            parse_policy("version: STSv1\nmode: none\nmax_age: 1\n")
                .unwrap()
                .mode,
            Mode::None
        );
        for bad in [
            "mode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            "version: STSv1\nmode: enforce\nmx: a\n",
            "version: STSv1\nmode: enforce\nmx: a\nmax_age: soon\n",
            "<html>not a policy</html>",
        ] {
            assert!(parse_policy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn http_responses() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        assert_eq!(response_body(ok).unwrap(), b"hello");
        let chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(response_body(chunked).unwrap(), b"abcde");
        let to_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        assert_eq!(response_body(to_close).unwrap(), b"all of it");
        for (bad, why) in [
            (&b"HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n"[..], "301"),
            (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nx", "media type"),
            (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nx", "shorter"),
            (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk"),
            (b"garbage", "HTTP"),
            (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n", "64 KiB"),
        ] {
            let err = response_body(bad).unwrap_err();
            assert!(err.contains(why), "{err:?} should say {why:?}");
        }
    }

    /// A real HTTPS server on loopback with a certificate from a test CA.
    async fn serve_once(
        response: &'static [u8],
        host: &str,
    ) -> (SocketAddr, rustls::RootCertStore) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            if let Ok(mut tls) = acceptor.accept(tcp).await {
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls.write_all(response).await;
                let _ = tls.shutdown().await;
            }
        });
        (addr, roots)
    }

    #[tokio::test]
    async fn policy_over_https() {
        let body = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\r\nmode: enforce\r\nmx: mx.b.test\r\nmax_age: 86400\r\n";
        let (addr, roots) = serve_once(body, "mta-sts.b.test").await;
        let tls = verifying_connector(Arc::new(roots)).unwrap();
        let p = fetch_policy(&tls, "mta-sts.b.test", addr, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert!(p.allows_mx("mx.b.test"));
    }

    #[tokio::test]
    async fn certificate_for_another_name_is_refused() {
        let body = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\nmode: enforce\nmx: x\nmax_age: 1\n";
        let (addr, roots) = serve_once(body, "mta-sts.other.test").await;
        let tls = verifying_connector(Arc::new(roots)).unwrap();
        let err = fetch_policy(&tls, "mta-sts.b.test", addr, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.contains("TLS"), "{err}");
    }

    #[tokio::test]
    async fn untrusted_certificate_is_refused() {
        let body = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nversion: STSv1\nmode: enforce\nmx: x\nmax_age: 1\n";
        let (addr, _their_roots) = serve_once(body, "mta-sts.b.test").await;
        let tls =
            verifying_connector(Arc::new(rustls::RootCertStore::empty())).unwrap_or_else(|_| {
                // An empty root store cannot build a verifier: nothing verifies.
                verifying_connector(Arc::new(system_roots())).unwrap()
            });
        assert!(
            fetch_policy(&tls, "mta-sts.b.test", addr, Duration::from_secs(5))
                .await
                .is_err()
        );
    }
}
