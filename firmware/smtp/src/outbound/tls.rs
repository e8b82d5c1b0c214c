//! TLS for outbound connections. Opportunistic STARTTLS to MX hosts must
//! take whatever certificate the peer has (RFC 7435: encryption without
//! authentication beats plain text), so the handshake accepts any
//! certificate and the chain is checked afterwards against the system's CA
//! roots only to say in the log whether it verified. Smarthosts require a
//! verified certificate unless configured otherwise.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The client side of TLS, shared by all deliveries.
pub struct ClientTls {
    connector: TlsConnector,
    /// `None` when no CA roots could be loaded: nothing verifies then.
    verifier: Option<Arc<WebPkiServerVerifier>>,
}

/// What a handshake gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsInfo {
    /// The certificate chain verified against the CA roots for the name.
    pub verified: bool,
}

impl ClientTls {
    /// Loads the system's CA roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`).
    pub fn new() -> Result<ClientTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let verifier = if roots.is_empty() {
            tracing::warn!("no CA certificates found: outbound TLS certificates never verify");
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        };
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS client: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            verifier,
        })
    }

    /// Runs the handshake; the certificate is checked after it.
    pub async fn connect(
        &self,
        name: &str,
        tcp: TcpStream,
    ) -> std::io::Result<(TlsStream<TcpStream>, TlsInfo)> {
        let server_name = ServerName::try_from(name.trim_end_matches('.').to_owned())
            .map_err(|e| std::io::Error::other(format!("bad TLS server name {name}: {e}")))?;
        let stream = self.connector.connect(server_name.clone(), tcp).await?;
        let verified = {
            let (_, conn) = stream.get_ref();
            match (conn.peer_certificates(), &self.verifier) {
                (Some([end, rest @ ..]), Some(v)) => v
                    .verify_server_cert(end, rest, &server_name, &[], UnixTime::now())
                    .is_ok(),
                _ => false,
            }
        };
        Ok((stream, TlsInfo { verified }))
    }
}

/// Accepts any certificate but still checks the handshake signatures, so the
/// session is bound to the key the certificate names.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
