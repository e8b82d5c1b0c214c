//! RETR and TOP (RFC 1939 §7): the stored file, read in chunks and turned
//! into a dot-stuffed multi-line response by `Transfer`; never held whole.

use std::io::SeekFrom;

use pochta_net::Conn;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

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
    let unreadable = || {
        Reply::err_code(
            Code::SysTemp,
            format!("Cannot read message {n}, try again later"),
        )
    };
    let mut file = match File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(session = t.id, path = %path.display(), error = %e, "cannot open message");
            t.conn.push(&unreadable().to_wire());
            return Flow::Continue;
        }
    };
    match is_utf8(&mut file).await {
        Ok(true) => {}
        Ok(false) => {
            t.conn.push(
                &Reply::err_code(
                    Code::SysPerm,
                    format!("Message {n} is not UTF-8 text; this server cannot send it yet"),
                )
                .to_wire(),
            );
            return Flow::Continue;
        }
        Err(e) => {
            tracing::error!(session = t.id, path = %path.display(), error = %e, "cannot read message");
            t.conn.push(&unreadable().to_wire());
            return Flow::Continue;
        }
    }
    let (head, mut transfer) = match top {
        None => (Reply::ok(format!("{size} octets")), Transfer::whole()),
        Some(lines) => (Reply::ok("Top of message follows"), Transfer::top(lines)),
    };
    t.conn.push(&head.to_wire());
    let mut text = TextOut::default();
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
        text.push(t.conn, &out);
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
    text.push(t.conn, &out);
    Flow::Continue
}

/// `Conn` queues only `&str`, so message bytes must be UTF-8 to be sent,
/// and a chunk may end inside a character: its tail waits for the next.
/// The file was checked whole by [`is_utf8`], and `Transfer` only adds
/// ASCII at line boundaries, so nothing is ever left over at the end.
/// (Goes away when `Conn` can queue raw bytes.)
#[derive(Default)]
struct TextOut {
    pending: Vec<u8>,
}

impl TextOut {
    fn push(&mut self, conn: &mut Conn, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                conn.push(text);
                self.pending.clear();
                return;
            }
            Err(e) => e.valid_up_to(),
        };
        if let Ok(text) = std::str::from_utf8(&self.pending[..valid]) {
            conn.push(text);
        }
        self.pending.drain(..valid);
    }
}

/// Whether the whole file is UTF-8 (read in chunks); rewinds it.
async fn is_utf8(file: &mut File) -> std::io::Result<bool> {
    let mut buf = vec![0u8; CHUNK];
    // Bytes of a character cut at the end of the previous chunk (at most 3).
    let mut carry = 0;
    let valid = loop {
        let read = file.read(&mut buf[carry..]).await?;
        if read == 0 {
            break carry == 0;
        }
        let len = carry + read;
        match std::str::from_utf8(&buf[..len]) {
            Ok(_) => carry = 0,
            Err(e) if e.error_len().is_none() => {
                let start = e.valid_up_to();
                buf.copy_within(start..len, 0);
                carry = len - start;
            }
            Err(_) => break false,
        }
    };
    file.seek(SeekFrom::Start(0)).await?;
    Ok(valid)
}
