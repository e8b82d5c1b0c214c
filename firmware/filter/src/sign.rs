//! DKIM signing of outbound mail from local domains (RFC 6376 §5) with both
//! of the domain's keys: RSA-SHA256 and Ed25519-SHA256 (RFC 8463 §3), so
//! that verifiers that know only RSA still pass, relaxed/relaxed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use pochta_store::{DkimAlgorithm, DkimKey, Store};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer};

use crate::FilterError;

/// Headers signed, after RFC 6376 §5.4.1's recommendations: the ones that
/// carry meaning for the reader, and the MIME headers that decide how the
/// body is shown. Headers absent from a message are signed as absent, so
/// they cannot be added later; `From` is listed twice so that a second
/// `From` cannot be added either (§8.15).
pub const SIGNED_HEADERS: [&str; 13] = [
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "From",
];

/// What the outbound queue calls for each message: sender domain and the
/// whole message in, `DKIM-Signature` header lines to prepend out (`None`
/// when the domain has no keys, i.e. is not local, or signing failed).
pub type SigningHook = Arc<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// The signer of one domain.
pub struct Signer {
    rsa: Option<DkimSigner<RsaKey<Sha256>, Done>>,
    ed25519: Option<DkimSigner<Ed25519Key, Done>>,
}

impl Signer {
    /// A signer with the newest key of each algorithm among `keys`.
    pub fn from_keys(keys: &[DkimKey]) -> Result<Signer, FilterError> {
        let newest = |a: DkimAlgorithm| {
            keys.iter()
                .filter(|k| k.algorithm == a)
                .max_by_key(|k| k.created)
        };
        // The library's message does not quote key bytes; say which key.
        fn bad(k: &DkimKey) -> impl Fn(mail_auth::Error) -> FilterError + '_ {
            move |e| FilterError::Key(format!("selector {} of {}: {e}", k.selector, k.domain))
        }
        let rsa = match newest(DkimAlgorithm::Rsa) {
            Some(k) => {
                let der = PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(k.private_key.as_slice()));
                let key = RsaKey::<Sha256>::from_key_der(der).map_err(bad(k))?;
                Some(
                    DkimSigner::from_key(key)
                        .domain(k.domain.clone())
                        .selector(k.selector.clone())
                        .headers(SIGNED_HEADERS)
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed),
                )
            }
            None => None,
        };
        let ed25519 = match newest(DkimAlgorithm::Ed25519) {
            Some(k) => {
                let key = Ed25519Key::from_pkcs8_der(&k.private_key).map_err(bad(k))?;
                Some(
                    DkimSigner::from_key(key)
                        .domain(k.domain.clone())
                        .selector(k.selector.clone())
                        .headers(SIGNED_HEADERS)
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed),
                )
            }
            None => None,
        };
        if rsa.is_none() && ed25519.is_none() {
            return Err(FilterError::Key("no keys".into()));
        }
        Ok(Signer { rsa, ed25519 })
    }

    /// The domain's keys from the store.
    pub fn load(store: &Store, domain: &str) -> Result<Signer, FilterError> {
        Signer::from_keys(&store.dkim_keys(domain)?)
    }

    /// `DKIM-Signature` header lines (CRLF-terminated) for `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::new();
        let fail = |e: mail_auth::Error| FilterError::Key(format!("signing failed: {e}"));
        if let Some(s) = &self.rsa {
            s.sign(message).map_err(fail)?.write_header(&mut out);
        }
        if let Some(s) = &self.ed25519 {
            s.sign(message).map_err(fail)?.write_header(&mut out);
        }
        Ok(out)
    }
}

/// How long a domain's loaded keys are reused before the store is asked again.
const RELOAD_AFTER: Duration = Duration::from_secs(300);
/// Most domains remembered (local and not); the map is cleared beyond this.
const MAX_DOMAINS: usize = 1024;

/// The hook the outbound queue calls to sign a message from `domain`.
/// Keys are read from the store and kept for a few minutes. It blocks (SQLite,
/// RSA): call it off the async runtime.
pub fn signing_hook(store: Store) -> SigningHook {
    type Loaded = HashMap<String, (Instant, Option<Arc<Signer>>)>;
    let loaded: Mutex<Loaded> = Mutex::new(HashMap::new());
    Arc::new(move |domain: &str, message: &[u8]| {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let signer = {
            let mut map = loaded.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&domain) {
                Some((at, s)) if at.elapsed() < RELOAD_AFTER => s.clone(),
                _ => {
                    let s = match store.dkim_keys(&domain) {
                        Ok(keys) if keys.is_empty() => None,
                        Ok(keys) => match Signer::from_keys(&keys) {
                            Ok(s) => Some(Arc::new(s)),
                            Err(e) => {
                                tracing::error!(%domain, error = %e, "cannot load DKIM keys");
                                None
                            }
                        },
                        Err(e) => {
                            // Not remembered: the next message tries again.
                            tracing::error!(%domain, error = %e, "cannot read DKIM keys");
                            return None;
                        }
                    };
                    if map.len() >= MAX_DOMAINS {
                        map.clear();
                    }
                    map.insert(domain.clone(), (Instant::now(), s.clone()));
                    s
                }
            }
        };
        match signer?.sign(message) {
            Ok(headers) => Some(headers),
            Err(e) => {
                tracing::error!(%domain, error = %e, "DKIM signing failed");
                None
            }
        }
    })
}
