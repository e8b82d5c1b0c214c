//! STAT, LIST, UIDL, DELE, RSET and NOOP (RFC 1939 §5, §7): answers from
//! the snapshot taken at login; DELE only marks (QUIT removes).

use std::fmt::Write as _;

use crate::parse::MessageNumber;
use crate::reply::Reply;
use crate::session::{Flow, Transaction};

fn send(t: Transaction<'_>, reply: Reply) -> Flow {
    t.conn.push(&reply.to_wire());
    Flow::Continue
}

pub(crate) fn stat(t: Transaction<'_>) -> Flow {
    let (count, size) = t.maildrop.totals();
    send(t, Reply::ok(format!("{count} {size}")))
}

pub(crate) fn list(t: Transaction<'_>, n: Option<MessageNumber>) -> Flow {
    match n {
        Some(n) => {
            let reply = match t.maildrop.message(n) {
                Ok(m) => Reply::ok(format!("{n} {}", m.size)),
                Err(reply) => reply,
            };
            send(t, reply)
        }
        None => {
            let (count, size) = t.maildrop.totals();
            let mut text = format!("+OK {count} messages ({size} octets)\r\n");
            for (i, m) in t.maildrop.live() {
                let _ = write!(text, "{i} {}\r\n", m.size);
            }
            text.push_str(".\r\n");
            t.conn.push(&text);
            Flow::Continue
        }
    }
}

pub(crate) fn uidl(t: Transaction<'_>, n: Option<MessageNumber>) -> Flow {
    match n {
        Some(n) => {
            let reply = match t.maildrop.message(n) {
                Ok(m) => Reply::ok(format!("{n} {}", t.maildrop.unique_id(m))),
                Err(reply) => reply,
            };
            send(t, reply)
        }
        None => {
            let mut text = String::from("+OK Unique-ID listing follows\r\n");
            for (i, m) in t.maildrop.live() {
                let _ = write!(text, "{i} {}\r\n", t.maildrop.unique_id(m));
            }
            text.push_str(".\r\n");
            t.conn.push(&text);
            Flow::Continue
        }
    }
}

pub(crate) fn dele(t: Transaction<'_>, n: MessageNumber) -> Flow {
    let reply = match t.maildrop.message(n) {
        Ok(_) => {
            // `message` succeeded, so the index is in range.
            t.maildrop.deleted[n.index()] = true;
            Reply::ok(format!("Message {n} deleted"))
        }
        Err(reply) => reply,
    };
    send(t, reply)
}

pub(crate) fn rset(t: Transaction<'_>) -> Flow {
    t.maildrop.deleted.fill(false);
    let (count, size) = t.maildrop.totals();
    send(
        t,
        Reply::ok(format!("Maildrop has {count} messages ({size} octets)")),
    )
}

pub(crate) fn noop(t: Transaction<'_>) -> Flow {
    send(t, Reply::ok(""))
}
