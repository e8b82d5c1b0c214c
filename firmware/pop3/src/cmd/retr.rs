//! RETR and TOP (RFC 1939 §7): the stored file, read in chunks and turned
//! into a dot-stuffed multi-line response by `Transfer`; never held whole.

use tokio::fs::File;
use tokio::io::AsyncReadExt;

use crate::parse::MessageNumber;
use crate::reply::{Code, Reply};
use crate::session::{Flow, Transaction};
use crate::transfer::{Progress, Transfer};

/// Bytes read from the file at a time; the reply is flushed after each.
const CHUNK: usize = 64 * 1024;

/// RETR when `top` is `None`, else TOP with that many body lines.
pub(crate) async fn retr(t: Transaction<'_>, n: MessageNumber, top: Option<u32>) -> Flow {
    let (path, size) = match t.maildrop.message(n) {
        Ok(m) => (t.ctx.store.blob_path(&m.blob), m.size),
        Err(reply) => {
            t.conn.push(&reply.to_wire());
            return Flow::Continue;
        }
    };
    let mut file = match File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(session = t.id, path = %path.display(), error = %e, "cannot open message");
            let reply = Reply::err_code(
                Code::SysTemp,
                format!("Cannot read message {n}, try again later"),
            );
            t.conn.push(&reply.to_wire());
            return Flow::Continue;
        }
    };
    let (head, mut transfer) = match top {
        None => (Reply::ok(format!("{size} octets")), Transfer::whole()),
        Some(lines) => (Reply::ok("Top of message follows"), Transfer::top(lines)),
    };
    t.conn.push(&head.to_wire());
    let mut buf = vec![0u8; CHUNK];
    let mut out = Vec::with_capacity(CHUNK + CHUNK / 8);
    loop {
        let read = match file.read(&mut buf).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) => {
                // Half a message is on the wire: ending it with "." would
                // pass it off as whole. Closing tells the client it is not.
                tracing::error!(session = t.id, path = %path.display(), error = %e, "message read failed");
                return Flow::Close;
            }
        };
        out.clear();
        let progress = transfer.feed(&buf[..read], &mut out);
        t.conn.push_bytes(&out);
        if let Err(e) = t.conn.flush().await {
            tracing::debug!(session = t.id, error = %e, "connection failed during RETR");
            return Flow::Close;
        }
        if progress == Progress::Done {
            break;
        }
    }
    out.clear();
    transfer.finish(&mut out);
    t.conn.push_bytes(&out);
    Flow::Continue
}
