//! Where an S3 repository is, as the owner set it.

use std::fmt;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::BackupError;

/// How the bucket is named in a request's URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    /// `https://ENDPOINT/BUCKET/KEY`: what most self-hosted services
    /// (MinIO, Garage, Ceph) expect, and what restic uses for them.
    #[default]
    Path,
    /// `https://BUCKET.ENDPOINT/KEY`: what some providers require; the
    /// endpoint must be a host name whose subdomains resolve.
    VirtualHost,
}

/// An S3-compatible bucket (and a prefix in it) that holds a repository.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Target {
    /// `https://host[:port]` (or `http://` on a trusted network), no path.
    pub endpoint: String,
    /// The region the keys sign for (`us-east-1` where the service has
    /// none of its own).
    pub region: String,
    pub bucket: String,
    /// Folder-like prefix of every object (`box1` puts the repository's
    /// config at `box1/config`); empty for the bucket's top.
    #[serde(default)]
    pub prefix: String,
    pub access_key_id: String,
    pub secret_key: String,
    #[serde(default)]
    pub addressing: Addressing,
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("secret_key", &"<redacted>")
            .field("addressing", &self.addressing)
            .finish()
    }
}

impl S3Target {
    /// A target from what the owner typed: the endpoint without a trailing
    /// slash and the prefix without slashes at its ends, then checked.
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        prefix: &str,
        access_key_id: &str,
        secret_key: &str,
        addressing: Addressing,
    ) -> Result<S3Target, BackupError> {
        let target = S3Target {
            endpoint: endpoint.trim().trim_end_matches('/').to_owned(),
            region: region.trim().to_owned(),
            bucket: bucket.trim().to_owned(),
            prefix: prefix.trim().trim_matches('/').to_owned(),
            access_key_id: access_key_id.trim().to_owned(),
            secret_key: secret_key.trim().to_owned(),
            addressing,
        };
        target.check()?;
        Ok(target)
    }

    /// Whether the target can be used, in the words of the option to fix.
    pub fn check(&self) -> Result<(), BackupError> {
        let bad = |what: String| Err(BackupError::NotFound(what));
        let url = match Url::parse(&self.endpoint) {
            Ok(url) => url,
            Err(e) => {
                return bad(format!(
                    "the endpoint {} is not a URL ({e}): give one like https://s3.example.net \
                     or http://192.168.1.20:9000",
                    self.endpoint
                ))
            }
        };
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return bad(format!(
                "the endpoint {} is not an http:// or https:// URL with a host",
                self.endpoint
            ));
        }
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return bad(format!(
                "the endpoint {} has a path, a query or a user name: give only \
                 scheme://host[:port] (the bucket and prefix have options of their own)",
                self.endpoint
            ));
        }
        let host = url.host_str().unwrap_or_default();
        if self.addressing == Addressing::VirtualHost
            && (host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok())
        {
            return bad(format!(
                "virtual-host addressing needs an endpoint with a host name, not an address \
                 ({}): leave out --virtual-host",
                self.endpoint
            ));
        }
        if self.region.is_empty() {
            return bad("the region is empty: use the service's, or us-east-1".into());
        }
        let name_ok = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !self.bucket.starts_with(['-', '.'])
            && !self.bucket.ends_with(['-', '.']);
        if !name_ok {
            return bad(format!(
                "{:?} is not a bucket name: 3 to 63 lower-case letters, digits, dots and \
                 hyphens",
                self.bucket
            ));
        }
        if self
            .prefix
            .split('/')
            .any(|part| part == "." || part == ".." || (part.is_empty() && !self.prefix.is_empty()))
            || self.prefix.chars().any(|c| c.is_control() || c == '\\')
        {
            return bad(format!(
                "{:?} is not a usable prefix: folder names separated by single slashes",
                self.prefix
            ));
        }
        if self.access_key_id.is_empty() || self.secret_key.is_empty() {
            return bad("the access key id and the secret key must both be given".into());
        }
        Ok(())
    }

    /// The target in words, for reports.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("the S3 bucket {} at {}", self.bucket, self.endpoint)
        } else {
            format!(
                "the S3 bucket {} at {} (prefix {})",
                self.bucket, self.endpoint, self.prefix
            )
        }
    }

    /// The repository as restic names it: `restic -r` this.
    pub fn restic_repository(&self) -> String {
        let mut url = format!("s3:{}/{}", self.endpoint, self.bucket);
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        url
    }

    /// The key prefix of every object: empty, or the prefix and a slash.
    pub(super) fn key_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }
}
