//! DKIM signing keys per domain (RFC 6376 §3.6.1): the store only keeps
//! them; generating and using them is the filter crate's job. Private keys
//! leave this module only inside [`DkimKey`], whose `Debug` hides them.

use rusqlite::params;

use crate::directory::normalize_domain;
use crate::{now, Store, StoreError};

/// A signing algorithm (RFC 6376 §3.3, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// RSA-SHA256; keys are PKCS#1 DER.
    Rsa,
    /// Ed25519-SHA256; the private key is PKCS#8 DER, the public key the raw 32 bytes.
    Ed25519,
}

impl DkimAlgorithm {
    /// Name stored in the database and used in `k=` of the DNS record.
    pub fn name(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }

    fn parse(name: &str) -> Option<DkimAlgorithm> {
        match name {
            "rsa" => Some(DkimAlgorithm::Rsa),
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            _ => None,
        }
    }
}

/// One key of a domain.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`); the DNS record is `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// Its algorithm.
    pub algorithm: DkimAlgorithm,
    /// The private key (DER); never printed or logged.
    pub private_key: Vec<u8>,
    /// The public key as published in `p=` (before base64).
    pub public_key: Vec<u8>,
    /// When it was made (seconds since the epoch).
    pub created: i64,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl Store {
    /// Stores a new key for a local domain. `created` is set to now.
    pub fn add_dkim_key(&self, key: &DkimKey) -> Result<(), StoreError> {
        let d = normalize_domain(&key.domain)?;
        let conn = self.conn()?;
        let n = conn.execute(
            "INSERT OR IGNORE INTO dkim_keys(domain, selector, algorithm, private_key, public_key, created)
             SELECT name, ?2, ?3, ?4, ?5, ?6 FROM domains WHERE name = ?1",
            params![
                d,
                key.selector,
                key.algorithm.name(),
                key.private_key,
                key.public_key,
                now()
            ],
        )?;
        if n == 0 {
            let known: i64 =
                conn.query_row("SELECT count(*) FROM domains WHERE name = ?1", [&d], |r| {
                    r.get(0)
                })?;
            return Err(if known == 0 {
                StoreError::NotFound(format!("domain {d}"))
            } else {
                StoreError::Exists(format!("DKIM selector {} of {d}", key.selector))
            });
        }
        Ok(())
    }

    /// The keys of a domain, newest first (RSA before Ed25519 at equal age).
    pub fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>, StoreError> {
        let d = normalize_domain(domain)?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT domain, selector, algorithm, private_key, public_key, created
             FROM dkim_keys WHERE domain = ?1 ORDER BY created DESC, algorithm DESC, selector",
        )?;
        let rows = stmt.query_map([&d], |r| {
            let algorithm: String = r.get(2)?;
            Ok((
                DkimKey {
                    domain: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: DkimAlgorithm::Rsa,
                    private_key: r.get(3)?,
                    public_key: r.get(4)?,
                    created: r.get(5)?,
                },
                algorithm,
            ))
        })?;
        let mut keys = Vec::new();
        for row in rows {
            let (mut key, algorithm) = row?;
            // A row from a newer Pochta with an algorithm this one does not
            // know is skipped rather than misused.
            if let Some(a) = DkimAlgorithm::parse(&algorithm) {
                key.algorithm = a;
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// Local domains that have no DKIM key yet (added by an older Pochta).
    pub fn domains_without_dkim_keys(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT name FROM domains WHERE name NOT IN (SELECT domain FROM dkim_keys) ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
