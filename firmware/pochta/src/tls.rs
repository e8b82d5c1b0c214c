//! The server certificate: loaded from PEM files, or generated self-signed
//! (rcgen) on first start so that TLS works from the first minute.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Resolves a configured path against the data folder.
pub fn in_data(data: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        data.join(p)
    }
}

/// Loads the certificate and key, generating a self-signed pair for
/// `hostname` when neither file exists.
pub fn acceptor(cert: &Path, key: &Path, hostname: &str) -> Result<TlsAcceptor, String> {
    match (cert.exists(), key.exists()) {
        (false, false) => generate(cert, key, hostname)?,
        (true, true) => {}
        (true, false) => {
            return Err(format!(
                "tls.key_file {} is missing (the certificate exists)",
                key.display()
            ))
        }
        (false, true) => {
            return Err(format!(
                "tls.cert_file {} is missing (the key exists)",
                cert.display()
            ))
        }
    }
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls.cert_file {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate in it",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("tls.key_file {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| format!("tls: certificate and key do not fit together: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn generate(cert: &Path, key: &Path, hostname: &str) -> Result<(), String> {
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let pair = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
    write_private(key, pair.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_private(cert, pair.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for {hostname}");
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
