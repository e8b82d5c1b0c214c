//! A domain's DKIM keys: one RSA-2048 (RFC 6376 §3.3.3; the most widely
//! verified) and one Ed25519 (RFC 8463; short, and the future), each under a
//! selector dated by year and month (`pr202611`, `pe202611`) so that a later
//! key can be published beside the old one before signing switches over.

use base64::Engine;
use mail_auth::dkim::generate::DkimKeyPair;
use pochta_store::{DkimAlgorithm, DkimKey, Store, StoreError};

use crate::FilterError;

/// Makes a new pair of keys for `domain`, dated `now`.
pub fn generate_keys(domain: &str, now: time::OffsetDateTime) -> Result<Vec<DkimKey>, FilterError> {
    let stamp = format!("{:04}{:02}", now.year(), now.month() as u8);
    let rsa = DkimKeyPair::generate_rsa(2048).map_err(|e| FilterError::Key(e.to_string()))?;
    let ed = DkimKeyPair::generate_ed25519().map_err(|e| FilterError::Key(e.to_string()))?;
    let (rsa_private, rsa_public) = rsa.into_inner();
    let (ed_private, ed_public) = ed.into_inner();
    Ok(vec![
        DkimKey {
            domain: domain.to_owned(),
            selector: format!("pr{stamp}"),
            algorithm: DkimAlgorithm::Rsa,
            private_key: rsa_private,
            // DNS carries SubjectPublicKeyInfo, which every verifier reads
            // (dkimpy reads only that); the pair gives PKCS#1.
            public_key: rsa_spki(&rsa_public),
            created: now.unix_timestamp(),
        },
        DkimKey {
            domain: domain.to_owned(),
            selector: format!("pe{stamp}"),
            algorithm: DkimAlgorithm::Ed25519,
            private_key: ed_private,
            public_key: ed_public,
            created: now.unix_timestamp(),
        },
    ])
}

/// Adds a local domain and makes its keys: what `pochta domain add` and the
/// admin page both do. Keys that cannot be made or stored now are logged
/// and made at the next start ([`ensure_keys`]); the domain itself is
/// there. Returns the domain as stored and the new keys' selectors.
/// Blocking (RSA key generation).
pub fn add_domain(store: &Store, name: &str) -> Result<(String, Vec<String>), StoreError> {
    let domain = store.add_domain(name)?;
    let keys = generate_keys(&domain, time::OffsetDateTime::now_utc()).unwrap_or_else(|e| {
        tracing::error!(domain, error = %e, "cannot make DKIM keys; they are made at the next start");
        Vec::new()
    });
    let mut selectors = Vec::new();
    for key in keys {
        match store.add_dkim_key(&key) {
            Ok(()) => selectors.push(key.selector),
            Err(e) => {
                tracing::error!(domain, error = %e, "cannot store a DKIM key; it is made at the next start")
            }
        }
    }
    Ok((domain, selectors))
}

/// Gives every local domain without keys a fresh pair (domains added by an
/// older Pochta). Returns the domains that got keys. RSA generation takes a
/// moment: call it off the async runtime.
pub fn ensure_keys(store: &Store) -> Result<Vec<String>, FilterError> {
    let mut done = Vec::new();
    for domain in store.domains_without_dkim_keys()? {
        for key in generate_keys(&domain, time::OffsetDateTime::now_utc())? {
            store.add_dkim_key(&key)?;
        }
        done.push(domain);
    }
    Ok(done)
}

/// The `p=` value of a key's DNS record.
pub(crate) fn public_key_base64(key: &DkimKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(&key.public_key)
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo (RFC 5280 §4.1,
/// RFC 3279 §2.3.1): SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING }.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let bit_string = der(0x03, &bits);
    let mut body = ALGORITHM.to_vec();
    body.extend_from_slice(&bit_string);
    der(0x30, &body)
}

/// One DER element with its definite length.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn keys_have_dated_selectors_and_hidden_secrets() {
        let t = time::macros::datetime!(2026-11-27 08:00 UTC);
        let keys = generate_keys("a.test", t).unwrap();
        assert_eq!(keys[0].selector, "pr202611");
        assert_eq!(keys[1].selector, "pe202611");
        assert_eq!(keys[1].public_key.len(), 32);
        // SPKI of a 2048-bit key is 294 bytes.
        assert_eq!(keys[0].public_key.len(), 294);
        let shown = format!("{:?}", keys[0]);
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&format!("{:?}", &keys[0].private_key[..8])));
    }
}
