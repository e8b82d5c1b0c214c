//! What went wrong with S3 storage, from rust-s3's error or the service's
//! XML error answer, in one line that says what to do.

use std::fmt;

use rustic_core::{ErrorKind, RusticError};
use s3::error::S3Error;

use super::{S3Target, REQUEST_TIMEOUT, RETRY_DELAYS};

/// What went wrong with the storage, in words the owner can act on. It
/// travels inside rustic's error as its source, so that the CLI can print
/// this one line instead of rustic's wrapping (see `repo::explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The kinds of storage failure the owner must tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Nothing answers at the endpoint (refused, no such host, no route).
    Unreachable,
    /// The endpoint took too long, to connect or to answer.
    Timeout,
    /// The endpoint's TLS certificate is not trusted (or not for its name).
    Certificate,
    /// 403 SignatureDoesNotMatch: the secret key is wrong.
    WrongSecret,
    /// 403 InvalidAccessKeyId: the service does not know the access key.
    UnknownAccessKey,
    /// 403 otherwise: the keys are known but may not do this.
    Denied,
    /// 404 NoSuchBucket.
    NoBucket,
    /// 404 for an object the repository names.
    NoObject,
    /// A 5xx answer (after the retries).
    Server,
    /// Anything else the service refused, or a broken answer.
    Other,
}

impl FailureKind {
    /// Worth another try: the service may answer next time.
    pub(super) fn transient(self) -> bool {
        matches!(self, FailureKind::Timeout | FailureKind::Server)
    }
}

/// The `<Code>` and `<Message>` of an S3 error answer's XML body (either may
/// be missing: HEAD answers have no body, some services answer in HTML).
pub(super) fn error_code(body: &str) -> (Option<&str>, Option<&str>) {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let len = body[start..].find("</")?;
        Some(body[start..start + len].trim())
    };
    (element("Code"), element("Message"))
}

/// Classifies an answer with a non-2xx status, `doing` being what was asked
/// ("listing backups/index/", "reading data/ab/ab12...").
pub(super) fn classify_status(target: &S3Target, status: u16, body: &str, doing: &str) -> Failure {
    let (code, message) = error_code(body);
    let at = &target.endpoint;
    let (kind, message) = match (status, code) {
        (403, Some("SignatureDoesNotMatch")) => (
            FailureKind::WrongSecret,
            format!(
                "the S3 service at {at} refused the secret key of access key {} \
                 (SignatureDoesNotMatch): set the right one with `pochta backup to-s3 ... \
                 --secret-key-stdin`",
                target.access_key_id
            ),
        ),
        (403, Some("InvalidAccessKeyId")) => (
            FailureKind::UnknownAccessKey,
            format!(
                "the S3 service at {at} does not know the access key id {} \
                 (InvalidAccessKeyId): check it, and that it is for this service, and set it \
                 again with `pochta backup to-s3`",
                target.access_key_id
            ),
        ),
        (403, code) => (
            FailureKind::Denied,
            format!(
                "the S3 service at {at} denied {doing} in bucket {} to access key {} ({}): \
                 give the key the rights to list, read, write and delete objects in it",
                target.bucket,
                target.access_key_id,
                code.unwrap_or("403 Forbidden")
            ),
        ),
        (404, Some("NoSuchBucket")) => (
            FailureKind::NoBucket,
            format!(
                "the bucket {} does not exist at {at} (NoSuchBucket): make it in the \
                 service's console, or let Pochta make it with `pochta backup to-s3 ... \
                 --create-bucket`",
                target.bucket
            ),
        ),
        (404, _) => (
            FailureKind::NoObject,
            format!(
                "{doing}: the object is missing from bucket {} at {at}; the repository is \
                 damaged (`pochta backup verify --full` tells what is lost)",
                target.bucket
            ),
        ),
        (500..=599, code) => (
            FailureKind::Server,
            format!(
                "the S3 service at {at} failed {doing} with HTTP {status}{} after {} tries: \
                 try again later, and look at the service's state if it goes on",
                code.map(|c| format!(" ({c})")).unwrap_or_default(),
                RETRY_DELAYS.len() + 1
            ),
        ),
        (status, code) => (
            FailureKind::Other,
            format!(
                "the S3 service at {at} refused {doing} with HTTP {status}{}{}",
                code.map(|c| format!(" ({c})")).unwrap_or_default(),
                message.map(|m| format!(": {m}")).unwrap_or_default()
            ),
        ),
    };
    Failure { kind, message }
}

/// Classifies what rust-s3 returned.
pub(super) fn classify(target: &S3Target, e: &S3Error, doing: &str) -> Failure {
    match e {
        S3Error::HttpFailWithBody(status, body) => classify_status(target, *status, body, doing),
        S3Error::Reqwest(e) if e.is_timeout() => Failure {
            kind: FailureKind::Timeout,
            message: format!(
                "the S3 service at {} did not finish {doing} within {} s, {} times: check \
                 the network and the service, then try again",
                target.endpoint,
                REQUEST_TIMEOUT.as_secs(),
                RETRY_DELAYS.len() + 1
            ),
        },
        S3Error::Reqwest(e) if e.is_connect() => {
            let why = root_cause(e);
            // rustls's refusal reaches us inside an io::Error, whose
            // source() skips it: its words are what is left to tell by.
            if why.contains("certificate") {
                Failure {
                    kind: FailureKind::Certificate,
                    message: format!(
                        "the S3 service at {} showed a TLS certificate this box does not \
                         trust ({why}): use the endpoint's name as its certificate gives it, \
                         or add the certificate authority to the box's (SSL_CERT_FILE)",
                        target.endpoint
                    ),
                }
            } else {
                unreachable(target, &why)
            }
        }
        S3Error::Reqwest(e) => Failure {
            kind: FailureKind::Other,
            message: format!(
                "the connection to the S3 service at {} broke while {doing}: {}",
                target.endpoint,
                root_cause(e)
            ),
        },
        other => Failure {
            kind: FailureKind::Other,
            message: format!("S3 ({}) while {doing}: {other}", target.endpoint),
        },
    }
}

pub(super) fn unreachable(target: &S3Target, why: &str) -> Failure {
    Failure {
        kind: FailureKind::Unreachable,
        message: format!(
            "cannot reach the S3 service at {} ({why}): check the endpoint URL, that the \
             service is running, and the network",
            target.endpoint
        ),
    }
}

/// The innermost error's words (`Connection refused (os error 111)`), not
/// reqwest's `error sending request for url (...)`.
pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// rustic's error carrying a failure as its source.
pub(super) fn rustic_error(f: Failure) -> Box<RusticError> {
    let guidance = f.message.clone();
    RusticError::with_source(ErrorKind::Backend, guidance, f)
}
