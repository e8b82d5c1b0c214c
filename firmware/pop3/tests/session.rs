//! In-process session tests: a real POP3 server on 127.0.0.1:0 with a fresh
//! data folder, driven over TCP and TLS.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use pochta_auth::Authenticator;
use pochta_config::Limits;
use pochta_maillog::MailLog;
use pochta_pop3::{Context, Server, Service};
use pochta_store::{AccountId, Store};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const PASSWORD: &str = "Correct-horse-7";
const USER: &str = "bob@example.com";

struct Harness {
    _dir: tempfile::TempDir,
    store: Store,
    bob: AccountId,
    pop3: std::net::SocketAddr,
    pop3s: std::net::SocketAddr,
    client_tls: tokio_rustls::TlsConnector,
    _stop: watch::Sender<bool>,
}

async fn start(limits: Limits) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.add_domain("example.com").unwrap();
    let bob = store.add_account(USER, PASSWORD, 0).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(pair.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pair.cert.der().clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pair.cert.der().clone()).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let maillog = Arc::new(MailLog::discard());
    let auth = Arc::new(Authenticator::new(
        store.clone(),
        maillog.clone(),
        Default::default(),
    ));
    let ctx = Arc::new(Context::new(
        "pop.example.com".into(),
        limits,
        store.clone(),
        maillog,
        tokio_rustls::TlsAcceptor::from(Arc::new(server_config)),
        auth,
    ));
    let (stop, shutdown) = watch::channel(false);
    let (alive, _drained) = mpsc::channel(1);
    let server = Arc::new(Server::new(ctx, shutdown, alive));
    let mut addrs = Vec::new();
    for service in [Service::Pop3, Service::Pop3s] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap());
        let server = server.clone();
        tokio::spawn(async move { server.run(listener, service).await });
    }
    Harness {
        _dir: dir,
        store,
        bob,
        pop3: addrs[0],
        pop3s: addrs[1],
        client_tls: tokio_rustls::TlsConnector::from(Arc::new(client_config)),
        _stop: stop,
    }
}

impl Harness {
    fn append(&self, body: &[u8]) {
        let mut w = self.store.blob_writer().unwrap();
        w.write(body).unwrap();
        self.store
            .append(self.bob, "INBOX", w.finish().unwrap(), Vec::new(), None)
            .unwrap();
    }

    fn inbox_uids(&self) -> Vec<u32> {
        let inbox = self.store.folder(self.bob, "INBOX").unwrap().unwrap();
        let messages = self.store.folder_messages(inbox.id).unwrap();
        messages.iter().map(|m| m.uid).collect()
    }

    /// A client on port 110 after STLS.
    async fn tls_client(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut plain = Client::new(TcpStream::connect(self.pop3).await.unwrap()).await;
        assert!(plain.cmd("STLS").await.starts_with("+OK"));
        assert!(plain.reader.buffer().is_empty());
        let tcp = plain.reader.into_inner();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.client_tls.connect(name, tcp).await.unwrap();
        Client {
            reader: BufReader::new(tls),
        }
    }

    /// A client on port 995.
    async fn implicit_tls_client(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.pop3s).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.client_tls.connect(name, tcp).await.unwrap();
        Client::new(tls).await
    }

    async fn logged_in(&self) -> Client<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut c = self.tls_client().await;
        assert!(c.cmd(&format!("USER {USER}")).await.starts_with("+OK"));
        let r = c.cmd(&format!("PASS {PASSWORD}")).await;
        assert!(r.starts_with("+OK"), "{r}");
        c
    }
}

struct Client<S> {
    reader: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn new(stream: S) -> Client<S> {
        let mut c = Client {
            reader: BufReader::new(stream),
        };
        let greeting = c.line().await;
        assert!(greeting.starts_with("+OK "), "{greeting}");
        c
    }

    /// One line, CRLF included; "<closed>" at EOF. Bounded in time.
    async fn line(&mut self) -> String {
        let mut line = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            self.reader.read_until(b'\n', &mut line),
        )
        .await
        .expect("reply in time")
        .unwrap_or(0);
        if n == 0 {
            return "<closed>".into();
        }
        String::from_utf8(line).unwrap()
    }

    /// The lines of a multi-line response up to and including ".\r\n".
    async fn multi(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = self.line().await;
            assert_ne!(
                line, "<closed>",
                "closed inside a multi-line response: {all}"
            );
            all.push_str(&line);
            if line == ".\r\n" {
                return all;
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).await.unwrap();
        self.reader.get_mut().flush().await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.line().await
    }
}

#[tokio::test]
async fn logins_wait_for_tls() {
    let h = start(Limits::default()).await;
    let mut c = Client::new(TcpStream::connect(h.pop3).await.unwrap()).await;
    c.send(b"CAPA\r\n").await;
    let capa = c.multi().await;
    assert!(capa.starts_with("+OK"), "{capa}");
    assert!(capa.contains("\r\nSTLS\r\n"), "{capa}");
    assert!(!capa.contains("USER"), "{capa}");
    assert!(!capa.contains("SASL"), "{capa}");
    assert!(c
        .cmd(&format!("USER {USER}"))
        .await
        .starts_with("-ERR [AUTH] "));
    assert!(c
        .cmd(&format!("PASS {PASSWORD}"))
        .await
        .starts_with("-ERR [AUTH] "));
    assert!(c.cmd("AUTH PLAIN").await.starts_with("-ERR [AUTH] "));
    assert!(c.cmd("STAT").await.starts_with("-ERR "));

    let mut c = h.tls_client().await;
    c.send(b"CAPA\r\n").await;
    let capa = c.multi().await;
    for cap in [
        "TOP",
        "UIDL",
        "USER",
        "SASL PLAIN",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
    ] {
        assert!(capa.contains(&format!("\r\n{cap}\r\n")), "{cap}: {capa}");
    }
    assert!(!capa.contains("STLS"), "{capa}");
    assert!(c.cmd("STLS").await.starts_with("-ERR "));
}

#[tokio::test]
async fn input_pipelined_after_stls_is_dropped() {
    let h = start(Limits::default()).await;
    let tcp = TcpStream::connect(h.pop3).await.unwrap();
    let mut plain = Client::new(tcp).await;
    // The injected QUIT must not run inside TLS (CVE-2011-0411).
    plain.send(b"STLS\r\nQUIT\r\n").await;
    assert!(plain.line().await.starts_with("+OK"));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = h
        .client_tls
        .connect(name, plain.reader.into_inner())
        .await
        .unwrap();
    let mut c = Client {
        reader: BufReader::new(tls),
    };
    assert!(
        c.cmd("NOOP").await.starts_with("-ERR "),
        "still in AUTHORIZATION"
    );
}

#[tokio::test]
async fn retrieve_and_delete() {
    let h = start(Limits::default()).await;
    let first = b"Subject: one\r\n\r\n.starts with a dot\r\nline 2\r\n".to_vec();
    // Big enough to take several chunks, and with dots at chunk edges.
    let mut second = b"Subject: two\r\n\r\n".to_vec();
    for i in 0..20_000 {
        second.extend_from_slice(format!(".{i} line of the body\r\n").as_bytes());
    }
    h.append(&first);
    h.append(&second);
    let uids = h.inbox_uids();
    let mut c = h.logged_in().await;
    let stat = c.cmd("STAT").await;
    assert_eq!(stat, format!("+OK 2 {}\r\n", first.len() + second.len()));
    c.send(b"LIST\r\n").await;
    let list = c.multi().await;
    assert!(
        list.ends_with(&format!("1 {}\r\n2 {}\r\n.\r\n", first.len(), second.len())),
        "{list}"
    );
    assert_eq!(c.cmd("LIST 2").await, format!("+OK 2 {}\r\n", second.len()));
    assert!(c.cmd("LIST 3").await.starts_with("-ERR "));
    let uidl = c.cmd("UIDL 1").await;
    assert!(uidl.starts_with("+OK 1 ") && uidl.trim_end().ends_with(&format!(".{}", uids[0])));

    c.send(b"RETR 2\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    let body = c.multi().await;
    let unstuffed: String = body
        .strip_suffix(".\r\n")
        .unwrap()
        .split_inclusive("\r\n")
        .map(|l| l.strip_prefix('.').unwrap_or(l))
        .collect();
    assert_eq!(unstuffed.as_bytes(), &second[..]);

    c.send(b"TOP 1 0\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(c.multi().await, "Subject: one\r\n\r\n.\r\n");
    c.send(b"TOP 1 1\r\n").await;
    assert!(c.line().await.starts_with("+OK"));
    assert_eq!(
        c.multi().await,
        "Subject: one\r\n\r\n..starts with a dot\r\n.\r\n"
    );

    // Pipelined: DELE, a repeat, STAT, RSET, DELE again.
    c.send(b"DELE 1\r\nDELE 1\r\nSTAT\r\nRETR 1\r\nRSET\r\nDELE 1\r\n")
        .await;
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("-ERR "));
    assert_eq!(c.line().await, format!("+OK 1 {}\r\n", second.len()));
    assert!(c.line().await.starts_with("-ERR "));
    assert!(c.line().await.starts_with("+OK"));
    assert!(c.line().await.starts_with("+OK"));

    // A second session meanwhile: the maildrop is locked.
    let mut other = h.implicit_tls_client().await;
    assert!(other.cmd(&format!("USER {USER}")).await.starts_with("+OK"));
    assert!(other
        .cmd(&format!("PASS {PASSWORD}"))
        .await
        .starts_with("-ERR [IN-USE] "));

    let bye = c.cmd("QUIT").await;
    assert!(
        bye.starts_with("+OK") && bye.contains("1 messages deleted"),
        "{bye}"
    );
    assert_eq!(c.line().await, "<closed>");
    assert_eq!(h.inbox_uids(), vec![uids[1]]);
}

#[tokio::test]
async fn a_dropped_connection_deletes_nothing() {
    let h = start(Limits::default()).await;
    h.append(b"Subject: keep me\r\n\r\nbody\r\n");
    let before = h.inbox_uids();
    let mut c = h.logged_in().await;
    assert!(c.cmd("DELE 1").await.starts_with("+OK"));
    drop(c);
    // The lock goes when the server notices; then a new session sees all.
    let mut c = h.implicit_tls_client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(c.cmd(&format!("USER {USER}")).await.starts_with("+OK"));
        let r = c.cmd(&format!("PASS {PASSWORD}")).await;
        if r.starts_with("+OK") {
            break;
        }
        assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "maildrop still locked"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(c.cmd("STAT").await.starts_with("+OK 1 "));
    assert_eq!(h.inbox_uids(), before);
}

#[tokio::test]
async fn auth_plain_with_and_without_initial_response() {
    let h = start(Limits::default()).await;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASSWORD}"));
    let mut c = h.implicit_tls_client().await;
    assert!(c
        .cmd(&format!("AUTH PLAIN {token}"))
        .await
        .starts_with("+OK"));
    assert!(c.cmd("QUIT").await.starts_with("+OK"));

    let mut c = h.implicit_tls_client().await;
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert!(c.cmd("*").await.starts_with("-ERR "));
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert!(c.cmd("not base64!").await.starts_with("-ERR "));
    assert!(c.cmd("AUTH CRAM-MD5").await.starts_with("-ERR "));
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0nope"));
    assert!(c
        .cmd(&format!("AUTH PLAIN {wrong}"))
        .await
        .starts_with("-ERR [AUTH] "));
    assert_eq!(c.cmd("AUTH PLAIN").await, "+ \r\n");
    assert!(c.cmd(&token).await.starts_with("+OK"));
    assert!(
        c.cmd("AUTH PLAIN").await.starts_with("-ERR "),
        "already logged in"
    );
}

#[tokio::test]
async fn bad_input_gets_err_then_the_door() {
    let limits = Limits {
        max_line_bytes: 1024,
        ..Limits::default()
    };
    let h = start(limits).await;
    let mut c = Client::new(TcpStream::connect(h.pop3).await.unwrap()).await;
    let mut long = vec![b'A'; 100_000];
    long.extend_from_slice(b"\r\n");
    c.send(&long).await;
    assert_eq!(c.line().await, "-ERR Line too long\r\n");
    assert!(c.cmd("CAPA").await.starts_with("+OK"));
    c.multi().await;
    // The long line was the first bad command; the tenth closes.
    for _ in 0..8 {
        assert!(c.cmd("BOGUS").await.starts_with("-ERR "));
    }
    assert!(c
        .cmd("LIST x")
        .await
        .starts_with("-ERR Too many bad commands"));
    assert_eq!(c.line().await, "<closed>");
}

#[tokio::test]
async fn eight_bit_messages_are_sent_as_stored() {
    let h = start(Limits::default()).await;
    // Latin-1, not UTF-8: bytes go out as they are.
    let message = b"Subject: latin-1\r\n\r\ncaf\xe9\r\n.\xff\r\n";
    h.append(message);
    let mut c = h.logged_in().await;
    c.send(b"RETR 1\r\n").await;
    let mut got = Vec::new();
    loop {
        let mut line = Vec::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            c.reader.read_until(b'\n', &mut line),
        )
        .await
        .expect("reply in time")
        .unwrap();
        assert!(!line.is_empty(), "closed");
        if line == b".\r\n" {
            break;
        }
        got.extend_from_slice(&line);
    }
    assert_eq!(
        got,
        b"+OK 30 octets\r\nSubject: latin-1\r\n\r\ncaf\xe9\r\n..\xff\r\n"
    );
    assert!(c.cmd("NOOP").await.starts_with("+OK"));
}
