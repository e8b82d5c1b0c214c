//! In-process session tests: a real server on 127.0.0.1:0 with a fresh data
//! folder, driven over TCP byte by byte where framing matters.

use std::sync::Arc;
use std::time::Duration;

use pochta_auth::Authenticator;
use pochta_config::Limits;
use pochta_maillog::MailLog;
use pochta_smtp::{Context, Server, Service};
use pochta_store::Store;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    addr: std::net::SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn start(limits: Limits) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.add_domain("example.com").unwrap();
    store
        .add_account("bob@example.com", "Correct-horse-7", 0)
        .unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(pair.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pair.cert.der().clone()], key)
    .unwrap();
    let maillog = Arc::new(MailLog::discard());
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        maillog.clone(),
        Default::default(),
    ));
    let ctx = Arc::new(Context::new(
        "mx.example.com".into(),
        limits,
        store.clone(),
        maillog,
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        auth,
    ));
    let (stop, shutdown) = watch::channel(false);
    let (alive, _drained) = mpsc::channel(1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(ctx, shutdown, alive);
    tokio::spawn(async move { server.run(listener, Service::Mx).await });
    Harness {
        _dir: dir,
        store,
        addr,
        _stop: stop,
    }
}

struct Client {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        assert!(c.reply().await.starts_with("220 "));
        c
    }

    /// Reads one whole (possibly multi-line) reply; bounded in time.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            if n == 0 {
                return all + "<closed>";
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends bytes one at a time, so every split point is exercised.
    async fn trickle(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.writer.write_all(&[*b]).await.unwrap();
            self.writer.flush().await.unwrap();
        }
    }
}

fn stored(store: &Store) -> Vec<Vec<u8>> {
    store
        .messages("bob@example.com", "INBOX")
        .unwrap()
        .iter()
        .map(|m| std::fs::read(&m.path).unwrap())
        .collect()
}

fn body_after_received(file: &[u8]) -> &[u8] {
    // The Received header ends at the first line that does not start with
    // whitespace after "Received:".
    let text = file;
    let mut i = 0;
    let mut first = true;
    while i < text.len() {
        let end = text[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(text.len(), |p| i + p + 1);
        if !first && !matches!(text[i], b' ' | b'\t') {
            return &text[i..];
        }
        first = false;
        i = end;
    }
    &[]
}

#[tokio::test]
async fn dot_stuffing_survives_every_split_point() {
    let h = start(Limits::default()).await;
    let mut c = Client::connect(h.addr).await;
    assert!(c.cmd("EHLO client.example").await.contains("250 DSN"));
    assert!(c.cmd("MAIL FROM:<a@remote.org>").await.starts_with("250"));
    assert!(c.cmd("RCPT TO:<bob@example.com>").await.starts_with("250"));
    assert!(c.cmd("DATA").await.starts_with("354"));
    // On the wire: a stuffed dot line, a line that is only "..", a line
    // with a dot inside, and the end marker.
    c.trickle(b"Subject: dots\r\n\r\n..leading dot\r\n..\r\nx.y\r\n.\r\n")
        .await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let files = stored(&h.store);
    assert_eq!(files.len(), 1);
    assert_eq!(
        body_after_received(&files[0]),
        b"Subject: dots\r\n\r\n.leading dot\r\n.\r\nx.y\r\n"
    );
}

#[tokio::test]
async fn only_crlf_dot_crlf_ends_data() {
    // SMTP smuggling: each of these lookalike endings followed by a second
    // transaction must stay message data, and the message is refused for
    // its bare LF or bare CR (RFC 5321 §2.3.8): nothing is stored.
    for ending in ["\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r\n", "\r.\r"] {
        let h = start(Limits::default()).await;
        let mut c = Client::connect(h.addr).await;
        c.cmd("EHLO client.example").await;
        c.cmd("MAIL FROM:<a@remote.org>").await;
        c.cmd("RCPT TO:<bob@example.com>").await;
        assert!(c.cmd("DATA").await.starts_with("354"));
        let attack = format!(
            "Subject: x\r\n\r\nhi{ending}MAIL FROM:<evil@remote.org>\r\nRCPT TO:<bob@example.com>\r\n\
             DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n"
        );
        c.send(attack.as_bytes()).await;
        let r = c.reply().await;
        // The session is still in step: the next reply is for NOOP.
        assert!(c.cmd("NOOP").await.starts_with("250"), "{ending:?}");
        assert!(r.starts_with("550 5.5.2"), "{ending:?}: {r}");
        assert!(stored(&h.store).is_empty(), "{ending:?}");
    }
}

#[tokio::test]
async fn pipelined_transaction_and_bdat() {
    let h = start(Limits::default()).await;
    let mut c = Client::connect(h.addr).await;
    c.cmd("EHLO client.example").await;
    // RFC 2920: the whole envelope in one write, replies in order.
    c.send(b"MAIL FROM:<a@remote.org>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nBDAT 12\r\nSubject: 1\r\n").await;
    assert!(c.reply().await.starts_with("250 2.1.0"));
    assert!(c.reply().await.starts_with("550 5.1.1"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with("250 2.0.0 12 octets"));
    c.send(b"BDAT 6 LAST\r\n\r\nbin\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.0.0 OK"), "{r}");
    let files = stored(&h.store);
    // BDAT is taken as it is, but for a bare LF or CR, made CRLF.
    assert_eq!(body_after_received(&files[0]), b"Subject: 1\r\n\r\nbin\r\n");
}

#[tokio::test]
async fn oversize_bdat_closes_and_oversize_data_is_refused_after_the_dot() {
    let limits = Limits {
        max_message_bytes: 2048,
        ..Limits::default()
    };
    let h = start(limits).await;
    let mut c = Client::connect(h.addr).await;
    c.cmd("EHLO client.example").await;
    c.cmd("MAIL FROM:<a@remote.org>").await;
    c.cmd("RCPT TO:<bob@example.com>").await;
    c.cmd("DATA").await;
    let line = [b'a'; 100];
    for _ in 0..100 {
        c.send(&line).await;
        c.send(b"\r\n").await;
    }
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("552 5.3.4"));
    assert!(c.cmd("MAIL FROM:<a@remote.org>").await.starts_with("250"));
    c.cmd("RCPT TO:<bob@example.com>").await;
    let r = c.cmd("BDAT 999999").await;
    assert!(r.starts_with("552 5.3.4"), "{r}");
    assert_eq!(c.reply().await, "<closed>");
    assert!(stored(&h.store).is_empty());
}
