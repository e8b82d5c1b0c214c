//! In-process test of the queue worker: a real store with a queued message,
//! the worker delivering through a smarthost that is a scripted SMTP server
//! on 127.0.0.1:0, and the DKIM hook putting its header in front.

use std::sync::Arc;
use std::time::Duration;

use pochta_config::{Dns, Queue, Smarthost, SmarthostTls};
use pochta_maillog::MailLog;
use pochta_smtp::outbound::{DkimSigner, Outbound};
use pochta_store::{Delivery, QueuedRecipient, Store};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// One SMTP session that accepts one message; sends back what DATA carried
/// and the envelope commands.
async fn scripted_peer(listener: TcpListener, done: oneshot::Sender<(Vec<String>, Vec<u8>)>) {
    let (tcp, _) = listener.accept().await.unwrap();
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 peer.test ESMTP\r\n").await.unwrap();
    let mut commands = Vec::new();
    let mut data = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        commands.push(line.trim_end().to_owned());
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-peer.test\r\n250 PIPELINING\r\n",
            "MAIL" => b"250 2.1.0 ok\r\n",
            "RCPT" => b"250 2.1.5 ok\r\n",
            "DATA" => {
                w.write_all(b"354 go on\r\n").await.unwrap();
                loop {
                    let mut l = Vec::new();
                    r.read_until(b'\n', &mut l).await.unwrap();
                    if l == b".\r\n" || l.is_empty() {
                        break;
                    }
                    data.extend_from_slice(&l);
                }
                b"250 2.0.0 taken\r\n"
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await.unwrap();
                break;
            }
            _ => b"502 no\r\n",
        };
        w.write_all(reply).await.unwrap();
    }
    let _ = done.send((commands, data));
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_delivers_through_smarthost_with_dkim_hook() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write(b"Subject: hook\r\n\r\nbody line\r\n.leading dot\r\n")
        .unwrap();
    let delivery = Delivery {
        sender: "alice@a.test".into(),
        remote: vec![
            QueuedRecipient {
                address: "bob@b.test".into(),
                ..Default::default()
            },
            QueuedRecipient {
                address: "carol@b.test".into(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    store.deliver(w.finish().unwrap(), delivery).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, got) = oneshot::channel();
    tokio::spawn(scripted_peer(listener, done));

    let queue = Queue {
        smarthost: Some(Smarthost {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: SmarthostTls::NoneLoopbackOnly,
            username: None,
            password: None,
            password_file: None,
            accept_invalid_cert_dangerous: false,
        }),
        connect_timeout_secs: 5,
        command_timeout_secs: 5,
        data_timeout_secs: 5,
        ..Queue::default()
    };
    let hook: DkimSigner = Arc::new(|domain: &str, message: &[u8]| {
        assert!(message.starts_with(b"Subject: hook"));
        Some(format!("DKIM-Signature: v=1; d={domain}; b=test\r\n").into_bytes())
    });
    let dns = Dns {
        servers: vec!["127.0.0.1:9".parse().unwrap()],
        timeout_secs: 1,
    };
    let worker = Outbound::new(
        store.clone(),
        Arc::new(MailLog::discard()),
        queue,
        &dns,
        "mx.a.test".into(),
        Some(hook),
    )
    .unwrap();
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(Arc::new(worker).run(shutdown, Duration::from_secs(5)));

    let (commands, data) = tokio::time::timeout(Duration::from_secs(20), got)
        .await
        .expect("the worker delivered within 20 s")
        .unwrap();
    // One connection, both recipients, pipelined.
    assert!(
        commands.iter().any(|c| c == "MAIL FROM:<alice@a.test>"),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c == "RCPT TO:<bob@b.test>"),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c == "RCPT TO:<carol@b.test>"),
        "{commands:?}"
    );
    let text = String::from_utf8(data).unwrap();
    assert!(
        text.starts_with("DKIM-Signature: v=1; d=a.test; b=test\r\nSubject: hook\r\n"),
        "{text:?}"
    );
    assert!(
        text.contains("\r\n..leading dot\r\n"),
        "dot-stuffed: {text:?}"
    );

    let mut empty = false;
    for _ in 0..100 {
        if store.queue().unwrap().is_empty() {
            empty = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(empty, "queue rows removed after the 250");
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker stops")
        .unwrap();
}
