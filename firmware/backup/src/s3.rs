//! S3-compatible object storage as a place for the repository: objects laid
//! out as restic's S3 backend lays them out, so that stock `restic -r
//! s3:ENDPOINT/BUCKET/PREFIX` reads what Pochta writes.
//!
//! - `target`: where (endpoint, region, bucket, prefix, keys, addressing),
//!   as the owner set it, checked when set;
//! - `failure`: an S3 error answer read into one line that says what is
//!   wrong and what to do;
//! - this file: the object layout, and `S3Backend`, rustic's `ReadBackend`
//!   and `WriteBackend` over `rust-s3`.
//!
//! rustic calls a backend synchronously from its own threads (several at
//! once: a packer thread per blob kind, rayon workers when reading). The
//! backend owns a small multi-thread tokio runtime and each call blocks on
//! it; a call made from inside some other runtime runs on a scoped thread of
//! its own instead, so that it never blocks a runtime worker.

mod failure;
mod target;

use std::future::Future;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Url;
use rustic_core::{BytesList, FileType, Id, ReadBackend, RusticResult, WriteBackend};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::{Bucket, BucketConfiguration, Region};

use crate::BackupError;
use failure::{classify, rustic_error, unreachable};
pub(crate) use failure::{Failure, FailureKind};
pub use target::{Addressing, S3Target};

/// How long connecting to the endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, from connecting to the last byte (a pack
/// file is a few MiB; a slow uplink moves that well within this).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Waits before the second, third and fourth try of a request that timed out
/// or got a 5xx answer.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(9),
];
/// Keys asked for per listing page (S3's own maximum).
const PAGE_KEYS: usize = 1000;

/// The object key of a repository file, as restic's S3 backend ("default"
/// layout) names it: `config`, `keys/ID`, `snapshots/ID`, `index/ID`,
/// `data/ID[..2]/ID`, each under the prefix.
fn object_key(key_prefix: &str, tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    match tpe {
        FileType::Config => format!("{key_prefix}config"),
        FileType::Pack => format!("{key_prefix}data/{}/{}", &hex[..2], &*hex),
        _ => format!("{key_prefix}{}/{}", tpe.dirname(), &*hex),
    }
}

/// What to list to find every file of a type: the config's own key, or the
/// type's folder with its slash.
fn list_prefix(key_prefix: &str, tpe: FileType) -> String {
    match tpe {
        FileType::Config => format!("{key_prefix}config"),
        _ => format!("{key_prefix}{}/", tpe.dirname()),
    }
}

/// The repository in an S3 bucket.
pub(crate) struct S3Backend {
    target: S3Target,
    key_prefix: String,
    bucket: Box<Bucket>,
    /// Taken only on drop (`shutdown_background` is allowed anywhere, a
    /// plain drop is not inside another runtime).
    runtime: Option<tokio::runtime::Runtime>,
    /// Whether `create` may make a missing bucket.
    create_bucket: bool,
}

impl S3Backend {
    /// A backend for `target`, once something answers at its endpoint
    /// (within `CONNECT_TIMEOUT`): an unreachable service is reported here,
    /// before rustic starts.
    pub(crate) fn new(target: &S3Target, create_bucket: bool) -> Result<S3Backend, BackupError> {
        target.check()?;
        // rust-s3 keeps its retry count in a process-wide static (default:
        // one retry of any connection error); this backend retries by its
        // own rule (timeouts and 5xx only, with backoff), so rust-s3's is off.
        s3::set_retries(0);
        let region = Region::Custom {
            region: target.region.clone(),
            endpoint: target.endpoint.clone(),
        };
        let credentials = Credentials::new(
            Some(&target.access_key_id),
            Some(&target.secret_key),
            None,
            None,
            None,
        )
        .map_err(|e| BackupError::Repository(format!("S3 credentials: {e}")))?;
        let mut bucket = Bucket::new(&target.bucket, region, credentials)
            .map_err(|e| BackupError::Repository(format!("S3 client: {e}")))?;
        match target.addressing {
            Addressing::Path => bucket.set_path_style(),
            Addressing::VirtualHost => bucket.set_subdomain_style(),
        }
        bucket.set_request_timeout(Some(REQUEST_TIMEOUT));
        let backend = S3Backend {
            target: target.clone(),
            key_prefix: target.key_prefix(),
            runtime: Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("pochta-s3")
                    .enable_all()
                    .build()?,
            ),
            bucket,
            create_bucket,
        };
        backend
            .probe()
            .map_err(|f| BackupError::Repository(f.message))?;
        Ok(backend)
    }

    /// Connects to the endpoint's host (the bucket's, with virtual-host
    /// addressing) within `CONNECT_TIMEOUT`. rust-s3's HTTP client has no
    /// connect timeout of its own, only the request's.
    fn probe(&self) -> Result<(), Failure> {
        let url = Url::parse(&self.bucket.url())
            .map_err(|e| unreachable(&self.target, &e.to_string()))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| unreachable(&self.target, &format!("the host {host}: {e}")))?
            .collect();
        let mut last = format!("the host {host} has no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Failure {
                        kind: FailureKind::Timeout,
                        message: format!(
                            "the S3 service at {} did not answer within {} s: check the \
                             endpoint URL and the network",
                            self.target.endpoint,
                            CONNECT_TIMEOUT.as_secs()
                        ),
                    })
                }
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(unreachable(&self.target, &last))
    }

    /// Runs `make` (one request) to completion, again after a timeout or a
    /// 5xx answer, up to `RETRY_DELAYS.len()` more times. Every request this
    /// backend makes is idempotent: files are named by their content's hash.
    fn call<T, F, Fut>(&self, doing: &str, make: F) -> Result<T, Failure>
    where
        T: Send,
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, S3Error>> + Send,
    {
        let attempts = async {
            let mut delays = RETRY_DELAYS.iter();
            loop {
                let failure = match make().await {
                    Ok(value) => return Ok(value),
                    Err(e) => classify(&self.target, &e, doing),
                };
                match delays.next() {
                    Some(delay) if failure.kind.transient() => {
                        tracing::warn!(target: "backup", "{failure}; trying again in {delay:?}");
                        tokio::time::sleep(*delay).await;
                    }
                    _ => return Err(failure),
                }
            }
        };
        let runtime = self
            .runtime
            .as_ref()
            .expect("the runtime is only taken when the backend is dropped");
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside a runtime (the server's): block a thread of
            // our own, never one of its workers.
            std::thread::scope(|scope| {
                scope
                    .spawn(|| runtime.block_on(attempts))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        } else {
            runtime.block_on(attempts)
        }
    }

    /// Every object under `prefix` with its size, page after page.
    fn list_objects(&self, prefix: &str) -> Result<Vec<(String, u64)>, Failure> {
        let doing = format!("listing {prefix}");
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (page, _) = self.call(&doing, || {
                self.bucket.list_page(
                    prefix.to_owned(),
                    None,
                    token.clone(),
                    None,
                    Some(PAGE_KEYS),
                )
            })?;
            objects.extend(page.contents.into_iter().map(|o| (o.key, o.size)));
            match page.next_continuation_token {
                Some(next) if page.is_truncated => {
                    if token.as_deref() == Some(next.as_str()) {
                        return Err(Failure {
                            kind: FailureKind::Other,
                            message: format!(
                                "the S3 service at {} repeated a listing page while {doing}",
                                self.target.endpoint
                            ),
                        });
                    }
                    token = Some(next);
                }
                _ if page.is_truncated => {
                    return Err(Failure {
                        kind: FailureKind::Other,
                        message: format!(
                            "the S3 service at {} cut a listing short without saying where \
                             to go on, while {doing}",
                            self.target.endpoint
                        ),
                    })
                }
                _ => return Ok(objects),
            }
        }
    }

    /// Whether the bucket is there and these keys may list it (a repository
    /// in it or not): what `pochta backup to-s3` checks before saving.
    pub(crate) fn check_access(&self) -> Result<bool, Failure> {
        let config = list_prefix(&self.key_prefix, FileType::Config);
        let (page, _) = self.call(&format!("listing {config}"), || {
            self.bucket
                .list_page(config.clone(), None, None, None, Some(1))
        })?;
        Ok(page.contents.iter().any(|o| o.key == config))
    }

    /// Makes the bucket (CreateBucket: a PUT of the bucket itself).
    fn make_bucket(&self) -> Result<(), Failure> {
        if self.target.region == "us-east-1" {
            // rust-s3's `Bucket::create` always sends the region as the
            // LocationConstraint, and S3 refuses `us-east-1` there
            // (InvalidLocationConstraint): us-east-1 is the one region named
            // by sending none. An empty PUT of the bucket's own URL (path
            // `/BUCKET/`, or `/` on BUCKET.host) is exactly that request.
            self.call("making the bucket", || self.bucket.put_object("", b""))?;
            return Ok(());
        }
        let credentials = Credentials::new(
            Some(&self.target.access_key_id),
            Some(&self.target.secret_key),
            None,
            None,
            None,
        )
        .map_err(|e| Failure {
            kind: FailureKind::Other,
            message: format!("S3 credentials: {e}"),
        })?;
        let region = self.bucket.region();
        let name = self.target.bucket.as_str();
        self.call("making the bucket", || {
            let (region, credentials) = (region.clone(), credentials.clone());
            async move {
                match self.target.addressing {
                    Addressing::Path => {
                        Bucket::create_with_path_style(
                            name,
                            region,
                            credentials,
                            BucketConfiguration::default(),
                        )
                        .await
                    }
                    Addressing::VirtualHost => {
                        Bucket::create(name, region, credentials, BucketConfiguration::default())
                            .await
                    }
                }
            }
        })?;
        Ok(())
    }
}

impl Drop for S3Backend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ReadBackend for S3Backend {
    fn location(&self) -> String {
        self.target.restic_repository()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        let prefix = list_prefix(&self.key_prefix, tpe);
        let objects = self.list_objects(&prefix).map_err(rustic_error)?;
        let mut found = Vec::new();
        for (key, size) in objects {
            let id = if tpe == FileType::Config {
                if key != prefix {
                    continue;
                }
                Id::default()
            } else {
                let name = key.rsplit('/').next().unwrap_or_default();
                match Id::parse_some(name, tpe) {
                    Some(id) => id,
                    None => continue,
                }
            };
            let size = u32::try_from(size).map_err(|_| {
                rustic_error(Failure {
                    kind: FailureKind::Other,
                    message: format!("{key} is {size} bytes, more than a repository file can be"),
                })
            })?;
            found.push((id, size));
        }
        Ok(found)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let key = object_key(&self.key_prefix, tpe, id);
        let data = self
            .call(&format!("reading {key}"), || self.bucket.get_object(&key))
            .map_err(rustic_error)?;
        Ok(data.into_bytes())
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        if length == 0 {
            return Ok(Bytes::new());
        }
        let key = object_key(&self.key_prefix, tpe, id);
        let (start, end) = (u64::from(offset), u64::from(offset) + u64::from(length) - 1);
        let doing = format!("reading bytes {start}-{end} of {key}");
        let data = self
            .call(&doing, || {
                self.bucket.get_object_range(&key, start, Some(end))
            })
            .map_err(rustic_error)?
            .into_bytes();
        if data.len() != length as usize {
            return Err(rustic_error(Failure {
                kind: FailureKind::Other,
                message: format!(
                    "the S3 service at {} returned {} bytes while {doing}, not {length}",
                    self.target.endpoint,
                    data.len()
                ),
            }));
        }
        Ok(data)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        object_key(&self.key_prefix, tpe, id)
    }
}

impl WriteBackend for S3Backend {
    /// Makes the bucket if it is missing and that was allowed; otherwise
    /// only checks that it is there.
    fn create(&self) -> RusticResult<()> {
        match self.check_access() {
            Ok(_) => Ok(()),
            Err(f) if f.kind == FailureKind::NoBucket && self.create_bucket => {
                self.make_bucket().map_err(rustic_error)
            }
            Err(f) => Err(rustic_error(f)),
        }
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        let key = object_key(&self.key_prefix, tpe, id);
        let parts = content.into_vec();
        let data: Bytes = match parts.len() {
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => parts.concat().into(),
        };
        self.call(&format!("writing {key}"), || {
            self.bucket.put_object(&key, &data)
        })
        .map_err(rustic_error)?;
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let key = object_key(&self.key_prefix, tpe, id);
        self.call(&format!("removing {key}"), || {
            self.bucket.delete_object(&key)
        })
        .map_err(rustic_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
