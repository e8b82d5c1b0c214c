//! A mail service answers: for each of its addresses, connect, (for the
//! implicit-TLS services) shake hands, and read the greeting: `220` for
//! SMTP (RFC 5321 §4.2), `* OK` for IMAP (RFC 9051 §7.1.1), `+OK` for POP3
//! (RFC 1939 §4). Then leave without a word: the service logs a client
//! that went away.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::health::{Finding, Probe};

/// How long one address may take to connect and greet.
const TIMEOUT: Duration = Duration::from_secs(3);

pub(crate) struct Service {
    name: &'static str,
    addrs: Vec<SocketAddr>,
}

impl Service {
    pub(crate) fn new(name: &'static str, addrs: Vec<SocketAddr>) -> Service {
        Service { name, addrs }
    }

    /// The greeting's first bytes, and whether the service speaks TLS at once.
    fn greeting(&self) -> (&'static str, bool) {
        match self.name {
            "smtp" | "submission" => ("220", false),
            "submissions" => ("220", true),
            "imap" => ("* OK", false),
            "imaps" => ("* OK", true),
            "pop3" => ("+OK", false),
            "pop3s" => ("+OK", true),
            _ => ("", false),
        }
    }
}

impl Probe for Service {
    fn id(&self) -> String {
        format!("service.{}", self.name)
    }
    fn title(&self) -> String {
        let ports: Vec<String> = self.addrs.iter().map(|a| a.port().to_string()).collect();
        format!("{} (port {})", label(self.name), ports.join(", "))
    }
    fn check(&self) -> Finding {
        let (expect, tls) = self.greeting();
        let failures: Vec<String> = std::thread::scope(|scope| {
            let checks: Vec<_> = self
                .addrs
                .iter()
                .map(|&addr| scope.spawn(move || (addr, greets(addr, expect, tls))))
                .collect();
            checks
                .into_iter()
                .filter_map(|c| match c.join() {
                    Ok((_, Ok(()))) => None,
                    Ok((addr, Err(e))) => Some(format!("{addr}: {e}")),
                    Err(_) => Some("the check itself failed".into()),
                })
                .collect()
        });
        if failures.is_empty() {
            Finding::ok("Answers its greeting")
        } else {
            Finding::failing(
                format!("Does not answer: {}", failures.join("; ")),
                "Pochta restarts a service that stops answering; if this stays, restart the box",
            )
        }
    }
}

/// What people call a service.
fn label(name: &str) -> &'static str {
    match name {
        "smtp" => "Incoming mail (SMTP)",
        "submission" => "Sending mail (submission)",
        "submissions" => "Sending mail (submission over TLS)",
        "imap" => "Reading mail (IMAP)",
        "imaps" => "Reading mail (IMAP over TLS)",
        "pop3" => "Reading mail (POP3)",
        "pop3s" => "Reading mail (POP3 over TLS)",
        _ => "Service",
    }
}

/// Where to connect to reach a listener bound at `addr`: a wildcard
/// address through loopback.
pub fn dial_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// Connects to `addr` (see [`dial_address`]) and reads the first line.
fn greets(addr: SocketAddr, expect: &str, tls: bool) -> Result<(), String> {
    let target = dial_address(addr);
    let tcp = TcpStream::connect_timeout(&target, TIMEOUT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    let line = if tls {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
        let name = rustls::pki_types::ServerName::IpAddress(target.ip().into());
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        first_line(rustls::StreamOwned::new(conn, tcp))?
    } else {
        first_line(tcp)?
    };
    if line.starts_with(expect) {
        Ok(())
    } else {
        Err(format!("unexpected greeting {:?}", line.trim_end()))
    }
}

fn first_line(stream: impl Read + Write) -> Result<String, String> {
    let mut line = String::new();
    BufReader::new(stream.take(1024))
        .read_line(&mut line)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("no greeting within {} s", TIMEOUT.as_secs())
            }
            _ => e.to_string(),
        })?;
    if line.is_empty() {
        return Err("closed the connection without a greeting".into());
    }
    Ok(line)
}

/// The probe checks that our own service answers, not who it is: any
/// certificate will do. Used for nothing else.
#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;

    fn greeter(greeting: &'static [u8]) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut c in listener.incoming().flatten() {
                let _ = c.write_all(greeting);
            }
        });
        addr
    }

    #[test]
    fn greeting_decides() {
        let smtp = greeter(b"220 mx.test ESMTP\r\n");
        let imap = greeter(b"* OK ready\r\n");
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(Service::new("smtp", vec![smtp]).check().state, State::Ok);
        let wrong = Service::new("smtp", vec![imap]).check();
        assert_eq!(wrong.state, State::Failing);
        assert!(
            wrong.reason.contains("unexpected greeting"),
            "{}",
            wrong.reason
        );
        let down = Service::new("imap", vec![imap, closed]).check();
        assert_eq!(down.state, State::Failing);
        assert!(down.reason.contains(&closed.to_string()), "{}", down.reason);
        assert!(!down.reason.contains(&imap.to_string()), "{}", down.reason);
    }

    #[test]
    fn a_silent_service_fails_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let started = std::time::Instant::now();
        let f = Service::new("pop3", vec![addr]).check();
        assert_eq!(f.state, State::Failing);
        assert!(f.reason.contains("no greeting"), "{}", f.reason);
        assert!(started.elapsed() < TIMEOUT + Duration::from_secs(2));
        drop(listener);
    }
}
