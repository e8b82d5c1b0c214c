//! The TLS certificate the services present: days until it expires.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine;

use crate::health::{Finding, Probe};

/// Days before expiry at which a certificate is worth a warning.
const WARNING_DAYS: i64 = 21;

/// The certificate file the services present.
pub(crate) struct Certificate {
    pub(crate) file: PathBuf,
    /// The clock can be believed ([`crate::clock::Clock::trusted_flag`]):
    /// until then, dates are a warning at most.
    pub(crate) clock_trusted: Arc<AtomicBool>,
}

impl Probe for Certificate {
    fn id(&self) -> String {
        "certificate".into()
    }
    fn title(&self) -> String {
        "TLS certificate".into()
    }
    fn check(&self) -> Finding {
        let Some(not_after) = certificate_expiry(&self.file) else {
            return Finding::failing(
                format!("Cannot read the certificate in {}", self.file.display()),
                "Put a PEM certificate there, or remove it and restart to get a new self-signed one",
            );
        };
        let left = not_after - crate::now();
        let days = left.div_euclid(86_400);
        let fix = "Renew the certificate: a self-signed one renews itself at restart; an installed one must be replaced";
        if left < WARNING_DAYS * 86_400 && !self.clock_trusted.load(Ordering::Acquire) {
            let seems = if left <= 0 {
                "seems to have expired".to_owned()
            } else {
                format!("seems to expire in {days} days")
            };
            return Finding::warning(
                format!(
                    "The certificate {seems}, but the box's clock is not set yet, so this may be wrong"
                ),
                "Look at the Clock check first; if the clock is right, renew the certificate",
            );
        }
        if left <= 0 {
            Finding::failing("The certificate has expired: mail clients refuse it", fix)
        } else if days < WARNING_DAYS {
            Finding::warning(format!("The certificate expires in {days} days"), fix)
        } else {
            Finding::ok(format!("Valid for {days} more days"))
        }
    }
}

/// The `notAfter` of the first certificate in a PEM file, as seconds since
/// the epoch; `None` when the file cannot be read or parsed.
pub fn certificate_expiry(pem_file: &Path) -> Option<i64> {
    let text = std::fs::read_to_string(pem_file).ok()?;
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = text.find(begin)? + begin.len();
    let end = start + text[start..].find("-----END CERTIFICATE-----")?;
    let b64: String = text[start..end].split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    not_after(&der)
}

/// One DER element at the start of `input`: its tag, its content and what
/// follows it (X.690 §8.1; definite lengths only, as DER requires).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// `tbsCertificate.validity.notAfter` of an X.509 certificate (RFC 5280
/// §4.1: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
/// OPTIONAL, serialNumber, signature, issuer, validity SEQUENCE { notBefore,
/// notAfter }, … } … }).
fn not_after(der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (0x30, validity, _) = element(rest)? else {
        return None;
    };
    let (_, _, after_not_before) = element(validity)?;
    let (tag, time, _) = element(after_not_before)?;
    asn1_time(tag, std::str::from_utf8(time).ok()?)
}

/// UTCTime `YYMMDDHHMMSSZ` (tag 0x17; years 1950–2049, RFC 5280
/// §4.1.2.5.1) or GeneralizedTime `YYYYMMDDHHMMSSZ` (tag 0x18).
fn asn1_time(tag: u8, text: &str) -> Option<i64> {
    let digits = text.strip_suffix('Z')?;
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let num = |i: usize| -> Option<u8> { rest.get(i..i + 2)?.parse().ok() };
    let month = time::Month::try_from(num(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, num(2)?).ok()?;
    let at = date.with_hms(num(4)?, num(6)?, num(8)?).ok()?.assume_utc();
    Some(at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_expiry_from_pem() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mx.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        // 2031-07-09T00:00:00Z
        assert_eq!(certificate_expiry(&path), Some(1_941_321_600));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert_eq!(certificate_expiry(&path), None);
        assert_eq!(certificate_expiry(&dir.path().join("none.pem")), None);
        assert_eq!(asn1_time(0x17, "491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(0x17, "500101000000Z"), Some(-631_152_000));
        assert_eq!(asn1_time(0x18, "20311301000000Z"), None);
    }

    #[test]
    fn an_expired_certificate_is_only_a_warning_while_the_clock_is_not_set() {
        use crate::health::{Probe, State};
        let dir = tempfile::tempdir().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mx.test".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        let trusted = Arc::new(AtomicBool::new(true));
        let probe = Certificate {
            file: path,
            clock_trusted: trusted.clone(),
        };
        assert_eq!(probe.check().state, State::Failing);
        trusted.store(false, Ordering::Release);
        let finding = probe.check();
        assert_eq!(finding.state, State::Warning);
        assert!(
            finding.reason.contains("clock is not set yet"),
            "{}",
            finding.reason
        );
    }
}
