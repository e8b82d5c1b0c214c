//! Mail authentication for Pochta: DKIM keys and signing for local domains,
//! and the inbound checks (SPF, DKIM, ARC, DMARC) with their policy and the
//! `Authentication-Results` header (RFC 8601). Built on `mail-auth` 0.13.
//!
//! Layout:
//! - `cache`: bounded, TTL-respecting caches for the resolver's answers;
//! - `keys`: generating a domain's RSA-2048 and Ed25519 keys with dated
//!   selectors, and making sure every domain has them;
//! - [`sign`]: the DKIM signer and the signing hook the outbound queue calls;
//! - [`inbound`]: the checks of mail arriving on the MX service;
//! - [`verdict`]: the policy decision and the header, free of I/O;
//! - [`records`]: every DNS record a domain must publish, as zone-file text.
//!
//! This crate reads keys from the store but knows nothing of SMTP sessions;
//! it never logs or prints a private key.

mod cache;
pub mod inbound;
mod keys;
pub mod records;
pub mod sign;
pub mod verdict;

pub use inbound::{Inbound, SpfChecks};
pub use keys::{add_domain, ensure_keys, generate_keys};
pub use sign::{signing_hook, Signer, SigningHook};
pub use verdict::{Decision, Verdict};

/// What went wrong in mail authentication.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] pochta_store::StoreError),
    /// A key could not be made or loaded (the text never contains key material).
    #[error("DKIM key: {0}")]
    Key(String),
    /// The resolver could not be set up.
    #[error("DNS resolver: {0}")]
    Resolver(String),
}
