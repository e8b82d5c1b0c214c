//! The S3 backend's decisions (object names, targets, error answers) and,
//! against a fake service on 127.0.0.1, its listing pages and its retries.

use super::failure::{classify_status, FailureKind};
use super::*;

fn target(prefix: &str) -> S3Target {
    S3Target::new(
        "http://127.0.0.1:9000/",
        "us-east-1",
        "backups",
        prefix,
        "AKIDEXAMPLE",
        "secret",
        Addressing::Path,
    )
    .expect("a valid target")
}

fn id(hex: &str) -> Id {
    hex.parse().expect("a 64-digit hex id")
}

const ID: &str = "a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8";

#[test]
fn objects_are_named_as_restic_names_them() {
    let p = target("/box1/").key_prefix();
    assert_eq!(p, "box1/");
    assert_eq!(
        object_key(&p, FileType::Config, &Id::default()),
        "box1/config"
    );
    assert_eq!(
        object_key(&p, FileType::Key, &id(ID)),
        format!("box1/keys/{ID}")
    );
    assert_eq!(
        object_key(&p, FileType::Snapshot, &id(ID)),
        format!("box1/snapshots/{ID}")
    );
    assert_eq!(
        object_key(&p, FileType::Index, &id(ID)),
        format!("box1/index/{ID}")
    );
    assert_eq!(
        object_key(&p, FileType::Pack, &id(ID)),
        format!("box1/data/a7/{ID}")
    );
    let top = target("").key_prefix();
    assert_eq!(
        object_key(&top, FileType::Pack, &id(ID)),
        format!("data/a7/{ID}")
    );
    assert_eq!(list_prefix(&top, FileType::Pack), "data/");
    assert_eq!(list_prefix(&top, FileType::Config), "config");
    assert_eq!(list_prefix(&p, FileType::Key), "box1/keys/");
}

#[test]
fn restic_names_the_repository_by_endpoint_bucket_and_prefix() {
    assert_eq!(
        target("a/b").restic_repository(),
        "s3:http://127.0.0.1:9000/backups/a/b"
    );
    assert_eq!(
        target("").restic_repository(),
        "s3:http://127.0.0.1:9000/backups"
    );
    assert_eq!(
        target("a").describe(),
        "the S3 bucket backups at http://127.0.0.1:9000 (prefix a)"
    );
}

#[test]
fn bad_targets_are_refused_naming_what_to_fix() {
    let cases: &[(&str, &str, &str, Addressing, &str)] = &[
        (
            "s3.example.net",
            "backups",
            "",
            Addressing::Path,
            "not a URL",
        ),
        (
            "ftp://s3.example.net",
            "backups",
            "",
            Addressing::Path,
            "http:// or https://",
        ),
        (
            "https://s3.example.net/minio",
            "backups",
            "",
            Addressing::Path,
            "has a path",
        ),
        (
            "https://s3.example.net",
            "Backups",
            "",
            Addressing::Path,
            "not a bucket name",
        ),
        (
            "https://s3.example.net",
            "ab",
            "",
            Addressing::Path,
            "not a bucket name",
        ),
        (
            "https://s3.example.net",
            "backups",
            "a//b",
            Addressing::Path,
            "not a usable prefix",
        ),
        (
            "https://s3.example.net",
            "backups",
            "a/../b",
            Addressing::Path,
            "not a usable prefix",
        ),
        (
            "http://10.0.0.2:9000",
            "backups",
            "",
            Addressing::VirtualHost,
            "needs an endpoint with a host name",
        ),
    ];
    for (endpoint, bucket, prefix, addressing, expected) in cases {
        let err = S3Target::new(
            endpoint,
            "us-east-1",
            bucket,
            prefix,
            "AK",
            "SK",
            *addressing,
        )
        .expect_err(endpoint);
        assert!(
            err.to_string().contains(expected),
            "{endpoint} {bucket} {prefix}: {err}"
        );
    }
    assert!(S3Target::new(
        "https://s3.example.net",
        "us-east-1",
        "backups",
        "",
        "",
        "SK",
        Addressing::Path
    )
    .is_err());
    assert!(S3Target::new(
        "https://s3.example.net",
        "",
        "backups",
        "",
        "AK",
        "SK",
        Addressing::Path
    )
    .is_err());
    assert!(S3Target::new(
        "https://s3.example.net",
        "eu",
        "b.ck-ups",
        "x/y",
        "AK",
        "SK",
        Addressing::VirtualHost
    )
    .is_ok());
}

#[test]
fn the_secret_key_stays_out_of_debug_output() {
    let shown = format!("{:?}", target(""));
    assert!(
        shown.contains("AKIDEXAMPLE") && !shown.contains("\"secret\""),
        "{shown}"
    );
}

#[test]
fn error_answers_are_told_apart() {
    let t = target("");
    let body = |code: &str| {
        format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
    };
    let cases: &[(u16, String, FailureKind, &str)] = &[
        (
            403,
            body("SignatureDoesNotMatch"),
            FailureKind::WrongSecret,
            "secret key",
        ),
        (
            403,
            body("InvalidAccessKeyId"),
            FailureKind::UnknownAccessKey,
            "does not know the access key id AKIDEXAMPLE",
        ),
        (403, body("AccessDenied"), FailureKind::Denied, "rights"),
        (403, String::new(), FailureKind::Denied, "403 Forbidden"),
        (
            404,
            body("NoSuchBucket"),
            FailureKind::NoBucket,
            "the bucket backups does not exist",
        ),
        (404, body("NoSuchKey"), FailureKind::NoObject, "missing"),
        (
            503,
            body("SlowDown"),
            FailureKind::Server,
            "HTTP 503 (SlowDown)",
        ),
        (
            500,
            "<html>oops</html>".into(),
            FailureKind::Server,
            "HTTP 500 after",
        ),
        (
            400,
            body("InvalidRequest"),
            FailureKind::Other,
            "HTTP 400 (InvalidRequest): m",
        ),
    ];
    for (status, body, kind, words) in cases {
        let f = classify_status(&t, *status, body, "reading config");
        assert_eq!(f.kind, *kind, "{status} {body}");
        assert!(f.message.contains(words), "{status}: {}", f.message);
        assert!(!f.message.contains('\n'), "one line: {}", f.message);
    }
    assert!(FailureKind::Server.transient() && FailureKind::Timeout.transient());
    for k in [
        FailureKind::WrongSecret,
        FailureKind::NoBucket,
        FailureKind::Unreachable,
        FailureKind::Denied,
        FailureKind::Certificate,
    ] {
        assert!(!k.transient(), "{k:?}");
    }
}

#[test]
fn a_closed_port_is_unreachable_before_any_request() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    let t = S3Target::new(
        &format!("http://127.0.0.1:{port}"),
        "us-east-1",
        "backups",
        "",
        "AK",
        "SK",
        Addressing::Path,
    )
    .expect("a valid target");
    let Err(err) = S3Backend::new(&t, false) else {
        panic!("nothing listens on {port}");
    };
    let text = err.to_string();
    assert!(
        text.contains("cannot reach the S3 service") && text.contains("refused"),
        "{text}"
    );
}

/// A fake S3 service on 127.0.0.1: answers the requests it gets, one by one,
/// with `answers` (status, XML body), and keeps each request's first line.
/// A connection closed before a request (the backend's connect probe) takes
/// no answer.
struct FakeService {
    endpoint: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeService {
    fn start(answers: Vec<(u16, String)>) -> FakeService {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let thread = std::thread::spawn(move || {
            let mut answers = answers.into_iter();
            let mut next = answers.next();
            while let Some((status, body)) = next.take() {
                let (stream, _) = listener.accept().expect("a connection");
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("a timeout");
                let mut reader = BufReader::new(stream);
                let mut first = String::new();
                if reader.read_line(&mut first).unwrap_or(0) == 0 {
                    next = Some((status, body));
                    continue;
                }
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).expect("a header line");
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().expect("a length");
                    }
                }
                let mut content = vec![0; length];
                reader.read_exact(&mut content).expect("the body");
                seen.lock()
                    .expect("not poisoned")
                    .push(first.trim().to_owned());
                let mut stream = reader.into_inner();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream
                    .write_all(head.as_bytes())
                    .expect("the answer's head");
                stream
                    .write_all(body.as_bytes())
                    .expect("the answer's body");
                next = answers.next();
            }
        });
        FakeService {
            endpoint,
            requests,
            thread: Some(thread),
        }
    }

    fn backend(&self) -> S3Backend {
        let t = S3Target::new(
            &self.endpoint,
            "us-east-1",
            "backups",
            "box1",
            "AKIDEXAMPLE",
            "secret",
            Addressing::Path,
        )
        .expect("a valid target");
        S3Backend::new(&t, false).expect("the fake service answers")
    }

    /// The request lines, once every answer was given.
    fn finish(mut self) -> Vec<String> {
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the fake service ran");
        }
        std::mem::take(&mut *self.requests.lock().expect("not poisoned"))
    }
}

fn list_page(keys: std::ops::Range<usize>, next: Option<&str>) -> (u16, String) {
    let contents: String = keys
        .map(|n| {
            format!(
                "<Contents><Key>box1/index/{n:064x}</Key><LastModified>2026-01-01T00:00:00.000Z\
                 </LastModified><ETag>\"x\"</ETag><Size>{n}</Size></Contents>"
            )
        })
        .collect();
    let more = match next {
        Some(token) => format!(
            "<IsTruncated>true</IsTruncated><NextContinuationToken>{token}</NextContinuationToken>"
        ),
        None => "<IsTruncated>false</IsTruncated>".to_owned(),
    };
    (
        200,
        format!("<?xml version=\"1.0\"?><ListBucketResult><Name>backups</Name>{more}{contents}</ListBucketResult>"),
    )
}

#[test]
fn a_listing_follows_every_page() {
    let fake = FakeService::start(vec![
        list_page(0..1000, Some("page-2")),
        list_page(1000..2000, Some("page-3")),
        list_page(2000..2500, None),
    ]);
    let found = fake
        .backend()
        .list_with_size(FileType::Index)
        .expect("three pages");
    assert_eq!(found.len(), 2500);
    assert_eq!(found[2499], (id(&format!("{:064x}", 2499)), 2499));
    let requests = fake.finish();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(
        requests[0].starts_with("GET /backups/?") && requests[0].contains("prefix=box1%2Findex%2F"),
        "{}",
        requests[0]
    );
    assert!(requests[0].contains("max-keys=1000") && !requests[0].contains("continuation-token"));
    assert!(
        requests[1].contains("continuation-token=page-2"),
        "{}",
        requests[1]
    );
    assert!(
        requests[2].contains("continuation-token=page-3"),
        "{}",
        requests[2]
    );
}

#[test]
fn a_5xx_answer_is_tried_again_and_a_403_is_not() {
    let fake = FakeService::start(vec![
        (503, "<Error><Code>SlowDown</Code></Error>".into()),
        list_page(0..2, None),
    ]);
    let found = fake
        .backend()
        .list_with_size(FileType::Index)
        .expect("the second try");
    assert_eq!(found.len(), 2);
    assert_eq!(fake.finish().len(), 2);

    let fake = FakeService::start(vec![(
        403,
        "<Error><Code>SignatureDoesNotMatch</Code></Error>".into(),
    )]);
    let err = fake
        .backend()
        .list_with_size(FileType::Snapshot)
        .expect_err("a wrong secret");
    assert_eq!(fake.finish().len(), 1, "no second try");
    let line = crate::repo::explain(&err);
    assert!(
        line.starts_with("the S3 service at http://127.0.0.1:"),
        "{line}"
    );
    assert!(
        line.contains("refused the secret key of access key AKIDEXAMPLE"),
        "{line}"
    );
}

#[test]
fn a_repository_file_goes_where_restic_looks_for_it() {
    let fake = FakeService::start(vec![(200, String::new()), (200, String::new())]);
    let backend = fake.backend();
    backend
        .write_bytes(
            FileType::Pack,
            &id(ID),
            false,
            BytesList::from(b"pack".to_vec()),
        )
        .expect("written");
    backend
        .write_bytes(
            FileType::Config,
            &Id::default(),
            false,
            BytesList::from(b"c".to_vec()),
        )
        .expect("written");
    let requests = fake.finish();
    assert_eq!(
        requests[0],
        format!("PUT /backups/box1/data/a7/{ID} HTTP/1.1")
    );
    assert_eq!(requests[1], "PUT /backups/box1/config HTTP/1.1");
}
