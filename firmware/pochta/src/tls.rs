//! The server certificate: loaded from PEM files, or made by the box itself
//! (self-signed, rcgen) so that TLS works from the first minute.
//!
//! A self-signed certificate Pochta made is named after the box (its host
//! name, `NAME.local`, `localhost` and its addresses, so that a browser on
//! the LAN opening `https://192.168.1.23/` sees a name that matches), is
//! valid for a year, and is made again when it nears its end or when the
//! box's names or addresses change. The files are checked every few minutes:
//! a renewed certificate, or one the owner put in place, is served from the
//! next connection on, without a restart.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// The organisation named in certificates Pochta makes: how it knows its
/// own (and leaves a certificate the owner installed alone).
const SELF_SIGNED_ORG: &str = "Pochta self-signed";
/// What rcgen named the certificates of Pochta before 2026-12.
const OLD_SELF_SIGNED_CN: &str = "rcgen self signed cert";
/// How long a certificate Pochta makes is valid.
const VALIDITY: time::Duration = time::Duration::days(365);
/// A certificate of its own that expires within this is made again.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 86400);
/// How often the files and the box's addresses are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(300);

/// Resolves a configured path against the data folder.
pub fn in_data(data: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        data.join(p)
    }
}

/// The certificate every TLS listener serves, replaceable while they run.
#[derive(Debug)]
pub struct ServerCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    hostname: String,
    /// Whether Pochta may make the files anew: only in the data folder.
    renews: bool,
    current: RwLock<Arc<CertifiedKey>>,
    /// The certificate file's modification time when it was loaded.
    loaded: Mutex<Option<SystemTime>>,
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// Loads the certificate and key, making a self-signed pair for
/// `hostname` when neither file exists or when the one Pochta made before
/// is due (see the module doc). Files outside the data folder `data` are
/// the owner's: read, never written.
pub fn acceptor(
    data: &Path,
    cert_file: &Path,
    key_file: &Path,
    hostname: &str,
) -> Result<(TlsAcceptor, Arc<ServerCert>), String> {
    let names = Names::of_this_box(hostname);
    let inside = |p: &Path| match (std::path::absolute(p), std::path::absolute(data)) {
        (Ok(p), Ok(d)) => p.starts_with(d),
        _ => false,
    };
    let renews = inside(cert_file) && inside(key_file);
    match (cert_file.exists(), key_file.exists()) {
        (false, false) => generate(cert_file, key_file, &names)?,
        (true, true) => {
            if let Some(why) = renews.then(|| renewal_due(cert_file, &names)).flatten() {
                tracing::info!("making a new self-signed certificate: {why}");
                generate(cert_file, key_file, &names)?;
            }
        }
        (true, false) => {
            return Err(format!(
                "tls.key_file {} is missing (the certificate exists)",
                key_file.display()
            ))
        }
        (false, true) => {
            return Err(format!(
                "tls.cert_file {} is missing (the key exists)",
                cert_file.display()
            ))
        }
    }
    let (key, mtime) = load(cert_file, key_file)?;
    let server_cert = Arc::new(ServerCert {
        cert_file: cert_file.to_owned(),
        key_file: key_file.to_owned(),
        hostname: hostname.to_owned(),
        renews,
        current: RwLock::new(Arc::new(key)),
        loaded: Mutex::new(mtime),
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(server_cert.clone());
    // The server's order of suites (ring's: AES-256-GCM, AES-128-GCM,
    // ChaCha20-Poly1305, all with forward secrecy), not the client's.
    config.ignore_client_order = true;
    Ok((TlsAcceptor::from(Arc::new(config)), server_cert))
}

impl ServerCert {
    /// Renews a self-signed certificate that is due, and serves the files
    /// anew when they changed. Errors are logged: the certificate in use
    /// stays until a good one replaces it.
    pub fn refresh(&self) {
        let names = Names::of_this_box(&self.hostname);
        let due = self.renews.then(|| renewal_due(&self.cert_file, &names));
        if let Some(why) = due.flatten() {
            tracing::info!("making a new self-signed certificate: {why}");
            if let Err(e) = generate(&self.cert_file, &self.key_file, &names) {
                tracing::error!(error = %e, "cannot renew the certificate");
                return;
            }
        }
        let mtime = modified(&self.cert_file);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if mtime == *loaded {
            return;
        }
        match load(&self.cert_file, &self.key_file) {
            Ok((key, mtime)) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                *loaded = mtime;
                tracing::info!(cert = %self.cert_file.display(), "serving the new certificate");
            }
            Err(e) => tracing::error!(error = %e, "keeping the certificate in use"),
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The chain and key from the files, checked to fit together.
fn load(cert_file: &Path, key_file: &Path) -> Result<(CertifiedKey, Option<SystemTime>), String> {
    let mtime = modified(cert_file);
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("tls.key_file {}: {e}", key_file.display()))?;
    let key = CertifiedKey::from_der(certs, key_der, &rustls::crypto::ring::default_provider())
        .map_err(|e| format!("tls: certificate and key do not fit together: {e}"))?;
    Ok((key, mtime))
}

/// What a certificate of the box must name.
struct Names {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl Names {
    fn of_this_box(hostname: &str) -> Names {
        let host = hostname.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut dns = vec![host.clone()];
        // `pochta.local` (mDNS) for a box whose name is `pochta` or
        // `pochta.example.com`.
        if let Some(first) = host.split('.').next().filter(|f| !f.is_empty()) {
            dns.push(format!("{first}.local"));
        }
        dns.push("localhost".into());
        dns.dedup();
        let mut ips = vec![
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        ];
        ips.extend(pochta_admin::lan_addresses());
        ips.dedup();
        Names { dns, ips }
    }
}

/// Why a certificate Pochta made must be made again; `None` when it is
/// fine or is not one of Pochta's (those are the owner's to renew).
fn renewal_due(cert_file: &Path, names: &Names) -> Option<String> {
    let der = CertificateDer::pem_file_iter(cert_file)
        .ok()?
        .next()?
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let org = cert
        .subject()
        .iter_organization()
        .next()
        .and_then(|a| a.as_str().ok());
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok());
    if org != Some(SELF_SIGNED_ORG) {
        return (cn == Some(OLD_SELF_SIGNED_CN))
            .then(|| "the old one was not named after the box and was valid until 4096".into());
    }
    let not_after = cert.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if not_after - now < RENEW_BEFORE.as_secs() as i64 {
        return Some("the old one expires within 30 days".into());
    }
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => match b.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?)),
                    16 => ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?)),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    if let Some(missing) = names.dns.iter().find(|d| !dns.contains(d)) {
        return Some(format!("the old one does not name {missing}"));
    }
    if let Some(missing) = names.ips.iter().find(|ip| !ips.contains(ip)) {
        return Some(format!("the old one does not name the address {missing}"));
    }
    None
}

/// Makes a self-signed certificate for the box and writes it with its key.
fn generate(cert_file: &Path, key_file: &Path, names: &Names) -> Result<(), String> {
    let all: Vec<String> = names
        .dns
        .iter()
        .cloned()
        .chain(names.ips.iter().map(|ip| ip.to_string()))
        .collect();
    let mut params = rcgen::CertificateParams::new(all)
        .map_err(|e| format!("cannot make a certificate for {:?}: {e}", names.dns))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, names.dns[0].clone());
    dn.push(rcgen::DnType::OrganizationName, SELF_SIGNED_ORG);
    params.distinguished_name = dn;
    // An hour back: a client whose clock is a little behind still accepts it.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + VALIDITY;
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the certificate: {e}"))?;
    write_private(key_file, key.serialize_pem().as_bytes(), 0o600)?;
    write_private(cert_file, cert.pem().as_bytes(), 0o644)?;
    tracing::info!(
        cert = %cert_file.display(),
        names = %names.dns.join(" "),
        addresses = %names.ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>().join(" "),
        "made a self-signed certificate for {}, valid for a year (clients ask to accept it once)",
        names.dns[0]
    );
    Ok(())
}

/// Writes a file durably with the given mode (temp name, fsync, rename).
fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            dns: vec![
                "mail.example.com".into(),
                "mail.local".into(),
                "localhost".into(),
            ],
            ips: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([192, 168, 1, 23]),
            ],
        }
    }

    #[test]
    fn made_certificate_names_the_box_and_lasts_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        generate(&cert, &key, &names()).unwrap();
        let der = CertificateDer::pem_file_iter(&cert)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn = parsed.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "mail.example.com");
        let days = (parsed.validity().not_after.timestamp()
            - parsed.validity().not_before.timestamp())
            / 86400;
        assert!((365..=366).contains(&days), "{days} days");
        assert_eq!(renewal_due(&cert, &names()), None);
        // A new address on the LAN: the certificate must name it too.
        let mut moved = names();
        moved.ips.push(IpAddr::from([10, 0, 0, 5]));
        let why = renewal_due(&cert, &moved).unwrap();
        assert!(why.contains("10.0.0.5"), "{why}");
        load(&cert, &key).unwrap();
    }

    #[test]
    fn old_rcgen_default_is_replaced_but_the_owners_certificate_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let old = rcgen::generate_simple_self_signed(vec!["x.example".into()]).unwrap();
        std::fs::write(&cert, old.cert.pem()).unwrap();
        assert!(renewal_due(&cert, &names()).is_some());
        // Anyone else's certificate (here: another organisation) is left alone,
        // even when it lacks the box's names.
        let mut params = rcgen::CertificateParams::new(vec!["other.example".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "other.example");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Ltd");
        let key = rcgen::KeyPair::generate().unwrap();
        std::fs::write(&cert, params.self_signed(&key).unwrap().pem()).unwrap();
        assert_eq!(renewal_due(&cert, &names()), None);
    }
}
