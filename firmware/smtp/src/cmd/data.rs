//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): the body streams into a
//! store blob — never whole in memory — with the size limit enforced while
//! it arrives; the message is committed before `250` is sent.

use pochta_store::{BlobWriter, Delivery, DeliveryError, StagedBlob, StoreError};

use crate::data::{BdatDecoder, DataError, DataLimits, DotDecoder, Status};
use crate::reply::{common, Reply};
use crate::session::{Flow, Session};
use pochta_net::ReadError;

use super::ehlo::clean;

/// Largest slice of body handled at once.
const CHUNK: usize = 64 * 1024;

/// A BDAT transfer between its first and its LAST chunk.
pub(crate) struct Chunks {
    body: Body,
    decoder: BdatDecoder,
    /// Chunk bytes announced so far, for the size check before reading.
    announced: u64,
}

/// A body being received.
struct Body {
    writer: BlobWriter,
    /// Message bytes written (the `Received:` header not counted).
    received: u64,
    /// What the decoder found wrong, once the data has ended.
    problem: Option<DataError>,
    failure: Option<std::io::Error>,
}

impl Body {
    fn start(s: &Session) -> Result<Body, StoreError> {
        // The disk may have filled since MAIL.
        s.ctx.store.disk_room()?;
        let mut writer = s.ctx.store.blob_writer()?;
        writer.write(received_header(s).as_bytes())?;
        Ok(Body {
            writer,
            received: 0,
            problem: None,
            failure: None,
        })
    }

    /// Writes decoded message bytes (the decoders stop giving any once the
    /// message is too big).
    fn write(&mut self, bytes: &[u8]) {
        self.received += bytes.len() as u64;
        if bytes.is_empty() || self.failure.is_some() {
            return;
        }
        if let Err(e) = self.writer.write(bytes) {
            self.failure = Some(e);
        }
    }
}

/// The decoders' limits for this session.
fn limits(s: &Session) -> DataLimits {
    DataLimits {
        max_message_bytes: s.ctx.limits.max_message_bytes,
        // RFC 5321 §4.5.3.1.6's 1000 octets is broken by real senders; the
        // decoders hold no line, so only the message size is bounded.
        max_line_bytes: None,
    }
}

pub(crate) async fn data(s: &mut Session) -> Flow {
    match &s.envelope {
        None => {
            s.reply(common::bad_sequence("Send MAIL first"));
            return Flow::Continue;
        }
        Some(e) if e.chunks.is_some() => {
            s.reply(common::bad_sequence("DATA not allowed after BDAT"));
            return Flow::Continue;
        }
        Some(e) if e.rcpts.is_empty() => {
            s.reply(Reply::new(554, "5.5.1", "No valid recipients"));
            return Flow::Continue;
        }
        Some(_) => {}
    }
    let mut body = match Body::start(s) {
        Ok(b) => b,
        Err(StoreError::DiskFull { used_percent }) => {
            s.reject("data", "disk full", common::disk_full(used_percent));
            return Flow::Continue;
        }
        Err(e) => {
            tracing::error!(session = %s.id, error = %e, "cannot start a message file");
            s.reply(common::local_error());
            return Flow::Continue;
        }
    };
    s.reply(Reply::new(
        354,
        "",
        "Start mail input; end with <CRLF>.<CRLF>",
    ));
    match receive_dot_stuffed(s, &mut body).await {
        Ok(()) => {}
        Err(ReadError::Timeout) => {
            s.reject("data", "timeout", common::timeout());
            return Flow::Close;
        }
        Err(_) => return Flow::Close,
    }
    finish(s, body).await
}

/// Reads DATA up to `CRLF.CRLF` through the decoder ([`DotDecoder`]: only
/// CRLF.CRLF ends the data; bare line endings are reported, SMTP smuggling),
/// writing the message into the body.
///
/// Each line (or each `CHUNK` of a longer one) must arrive within the
/// command timeout.
async fn receive_dot_stuffed(s: &mut Session, body: &mut Body) -> Result<(), ReadError> {
    let mut decoder = DotDecoder::new(limits(s));
    let mut deadline = s.conn.deadline();
    let mut line_bytes = 0usize;
    let mut out = Vec::with_capacity(CHUNK);
    loop {
        let buf = s.conn.peek();
        if buf.is_empty() {
            s.conn.read_more(deadline).await?;
            continue;
        }
        let window = &buf[..buf.len().min(CHUNK)];
        out.clear();
        let progress = decoder.decode(window, &mut out);
        s.conn.consume(progress.consumed);
        body.write(&out);
        if progress.status == Status::End {
            body.problem = decoder.error();
            return Ok(());
        }
        line_bytes += progress.consumed;
        if progress.lines > 0 || line_bytes >= CHUNK {
            deadline = s.conn.deadline();
            line_bytes = 0;
        }
    }
}

pub(crate) async fn bdat(s: &mut Session, size: usize, last: bool) -> Flow {
    let ready = matches!(&s.envelope, Some(e) if !e.rcpts.is_empty());
    let limit = s.ctx.limits.max_message_bytes;
    let so_far = s
        .envelope
        .as_ref()
        .and_then(|e| e.chunks.as_ref())
        .map_or(0, |c| c.announced);
    if size as u64 > limit {
        // Reading gigabytes to stay in step is worse than hanging up.
        s.envelope = None;
        s.reject(
            "bdat",
            "size",
            Reply::new(552, "5.3.4", "Message too big, closing connection"),
        );
        return Flow::Close;
    }
    let too_big = so_far + size as u64 > limit;
    let mut chunks = match s.envelope.as_mut().and_then(|e| e.chunks.take()) {
        Some(c) => Some(c),
        None if ready => match Body::start(s) {
            Ok(body) => Some(Chunks {
                body,
                decoder: BdatDecoder::new(limits(s)),
                announced: 0,
            }),
            Err(e) => {
                tracing::error!(session = %s.id, error = %e, "cannot start a message file");
                None
            }
        },
        None => None,
    };
    // RFC 3030 §2: the chunk is read even when the command is refused.
    // Each CHUNK of it must arrive within the command timeout.
    let mut left = size;
    let mut deadline = s.conn.deadline();
    let mut progress = 0usize;
    let mut out = Vec::new();
    while left > 0 {
        if progress >= CHUNK {
            deadline = s.conn.deadline();
            progress = 0;
        }
        let bytes = match s.conn.read_some(left.min(CHUNK), deadline).await {
            Ok(b) => b,
            Err(ReadError::Timeout) => {
                s.reject("bdat", "timeout", common::timeout());
                return Flow::Close;
            }
            Err(_) => return Flow::Close,
        };
        left -= bytes.len();
        progress += bytes.len();
        if let Some(c) = chunks.as_mut() {
            out.clear();
            c.decoder.decode(bytes, &mut out);
            c.body.write(&out);
        }
    }
    if too_big {
        s.envelope = None;
        s.reject("bdat", "size", common::too_big());
        return Flow::Continue;
    }
    let Some(mut chunks) = chunks else {
        if ready {
            s.envelope = None;
            s.reply(common::local_error());
        } else {
            s.reply(common::bad_sequence("Send MAIL and RCPT first"));
        }
        return Flow::Continue;
    };
    chunks.announced += size as u64;
    if last {
        out.clear();
        chunks.decoder.finish(&mut out);
        chunks.body.write(&out);
        chunks.body.problem = chunks.decoder.error();
        return finish(s, chunks.body).await;
    }
    if let Some(e) = s.envelope.as_mut() {
        e.chunks = Some(chunks);
    }
    s.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
    Flow::Continue
}

/// Ends a transaction: refuse, or make the message durable and say `250`.
async fn finish(s: &mut Session, body: Body) -> Flow {
    let envelope = s
        .envelope
        .take()
        .expect("DATA and BDAT only run inside a transaction");
    let subject = format!("<{}>", envelope.from);
    if let Some(problem) = body.problem {
        s.reject("data", &subject, refusal(problem));
        return Flow::Continue;
    }
    if let Some(e) = body.failure {
        tracing::error!(session = %s.id, error = %e, "writing the message failed");
        s.reject(
            "data",
            &subject,
            Reply::new(452, "4.3.1", "Insufficient system storage"),
        );
        return Flow::Continue;
    }
    let counted_recipients = if s.login.is_some() {
        envelope.rcpts.len() as u32
    } else {
        0
    };
    let writer = body.writer;
    let size = body.received;
    let staged = match super::blocking(s, move |_| writer.finish()).await {
        Some(Ok(staged)) => staged,
        Some(Err(e)) => {
            tracing::error!(session = %s.id, error = %e, "writing the message failed");
            s.reject(
                "data",
                &subject,
                Reply::new(452, "4.3.1", "Insufficient system storage"),
            );
            return Flow::Continue;
        }
        None => {
            s.reject("data", &subject, common::local_error());
            return Flow::Continue;
        }
    };
    let mut local = envelope.local;
    let mut fallback_folder = None;
    let is_junk;
    let staged = match authenticate(s, &envelope.from, envelope.spf.as_ref(), staged).await {
        Checked::Deliver { staged, junk } => {
            is_junk = junk;
            if junk {
                for l in &mut local {
                    l.folder = "Junk".into();
                }
                fallback_folder = Some("INBOX".into());
            }
            staged
        }
        Checked::Refused(reply) => {
            s.reject("data", &subject, reply);
            return Flow::Continue;
        }
    };
    let mailboxes: Vec<_> = local
        .iter()
        .map(|l| (l.account, l.address.clone()))
        .collect();
    let delivery = Delivery {
        sender: envelope.from.clone(),
        local,
        remote: envelope.remote,
        envid: envelope.envid,
        ret: envelope.ret,
        submitted_by: s.login.as_ref().map(|l| l.account),
        counted_recipients,
        fallback_folder,
        ..Delivery::default()
    };
    let committed = super::blocking(s, move |store| {
        let id = staged.id.0[..16].to_string();
        let blob = staged.id.clone();
        let message_id = super::message_id::read(staged.path());
        store
            .deliver(staged, delivery)
            .map(|r| (id, blob, message_id, r))
    })
    .await;
    match committed {
        Some(Ok((id, blob, message_id, receipt))) => {
            let log = &s.ctx.maillog;
            log.accepted(
                &s.id,
                &pochta_maillog::Accepted {
                    peer: s.peer,
                    from: &envelope.from,
                    rcpts: &envelope.rcpts,
                    size,
                    id: &id,
                    message_id: message_id.as_deref(),
                },
            );
            for copy in &receipt.stored {
                log.delivered(&s.id, &copy.address, &copy.folder, copy.uid, &id);
            }
            for (q, rcpt) in &receipt.queued {
                log.queued(&s.id, rcpt, *q, &id);
            }
            s.reply(Reply::new(250, "2.0.0", format!("OK: queued as {id}")));
            // Junk gets no auto-reply: it would be backscatter. The client
            // waits for this 250 (DATA ends a pipelined group, RFC 2920
            // §3.1), so it goes out before the auto-reply's store work; a
            // write error shows again at the session's next flush.
            if !is_junk {
                let _ = s.conn.flush().await;
                let (from, rcpts) = (&envelope.from, &envelope.rcpts);
                crate::autoreply::answer(s, from, rcpts, mailboxes, blob).await;
            }
        }
        Some(Err(DeliveryError::QuotaExceeded(who))) => {
            s.reject(
                "data",
                &subject,
                Reply::new(552, "5.2.2", format!("Mailbox of {who} is full")),
            );
        }
        Some(Err(e)) => {
            tracing::error!(session = %s.id, error = %e, "commit failed");
            s.reject("data", &subject, common::local_error());
        }
        None => s.reject("data", &subject, common::local_error()),
    }
    Flow::Continue
}

/// The reply to a message body the decoder found wrong.
fn refusal(problem: DataError) -> Reply {
    match problem {
        DataError::TooBig { .. } => common::too_big(),
        DataError::LineTooLong { limit } => {
            Reply::new(500, "5.5.6", format!("Line longer than {limit} bytes"))
        }
        // RFC 5321 §2.3.8; SMTP smuggling relies on such line endings.
        DataError::BareLf => Reply::new(
            550,
            "5.5.2",
            "Bare LF line endings are not allowed (RFC 5321 §2.3.8)",
        ),
        DataError::BareCr => Reply::new(
            550,
            "5.5.2",
            "Bare CR line endings are not allowed (RFC 5321 §2.3.8)",
        ),
    }
}

/// What the inbound checks let through.
enum Checked {
    /// Commit this blob (the received one with `Authentication-Results`
    /// first), to Junk when `junk`.
    Deliver { staged: StagedBlob, junk: bool },
    /// Refuse with this reply.
    Refused(Reply),
}

/// DKIM, ARC and DMARC of a message received on the MX service (DESIGN.md,
/// "Authenticate and filter"). The staged file is read back, verified, and
/// rewritten with the `Authentication-Results` header (RFC 8601) first into
/// a new fsynced blob, so that `250` still means the final message is on
/// disk. Other services and disabled checks pass the blob through.
async fn authenticate(
    s: &Session,
    from: &str,
    spf: Option<&pochta_filter::SpfChecks>,
    staged: StagedBlob,
) -> Checked {
    let checks = match (s.service, s.ctx.checks()) {
        (crate::Service::Mx, Some(c)) => c.clone(),
        _ => {
            return Checked::Deliver {
                staged,
                junk: false,
            }
        }
    };
    let helo = s.helo.as_ref().map(|h| h.name.clone()).unwrap_or_default();
    let ip = s.peer.ip();
    let spf = match spf {
        Some(spf) => spf.clone(),
        None => checks.spf(ip, &helo, from).await,
    };
    // Memory bound: mail-auth parses the whole message, so only a few at once.
    let Some(_permit) = checks.permit().await else {
        return Checked::Refused(common::local_error());
    };
    let message = match tokio::fs::read(staged.path()).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(session = %s.id, error = %e, "cannot read the received message back");
            return Checked::Refused(common::local_error());
        }
    };
    let verdict = checks.check(ip, &helo, from, &spf, &message).await;
    let policy = match verdict.dmarc_policy {
        pochta_filter::verdict::DmarcPolicy::None => "none",
        pochta_filter::verdict::DmarcPolicy::Quarantine => "quarantine",
        pochta_filter::verdict::DmarcPolicy::Reject => "reject",
    };
    s.ctx.maillog.authentication(
        &s.id,
        &pochta_maillog::AuthResults {
            from_domain: &verdict.from_domain,
            spf_helo: verdict.spf_helo.name(),
            spf_mail_from: verdict.spf_mail_from.name(),
            dkim: verdict.dkim.name(),
            arc: verdict.arc.name(),
            dmarc: verdict.dmarc.name(),
            policy,
            action: verdict.decision.name(),
        },
    );
    let junk = match verdict.decision {
        pochta_filter::Decision::Reject(text) => {
            return Checked::Refused(Reply::new(550, "5.7.1", text))
        }
        pochta_filter::Decision::Defer(text) => {
            return Checked::Refused(Reply::new(451, "4.4.3", text))
        }
        pochta_filter::Decision::Junk => true,
        pochta_filter::Decision::Inbox => false,
    };
    let header = verdict.header;
    let authserv_id = checks.authserv_id().to_owned();
    let rewritten = super::blocking(s, move |store| {
        let mut writer = store.blob_writer()?;
        writer.write(header.as_bytes())?;
        // RFC 8601 §5: results claiming to be ours that came with the
        // message are forgeries.
        writer.write(&pochta_filter::verdict::strip_own_results(
            &message,
            &authserv_id,
        ))?;
        let rewritten = writer.finish()?;
        // The first copy's temporary file goes with it.
        drop(staged);
        Ok::<_, StoreError>(rewritten)
    })
    .await;
    match rewritten {
        Some(Ok(staged)) => Checked::Deliver { staged, junk },
        Some(Err(e)) => {
            tracing::error!(session = %s.id, error = %e, "cannot write the checked message");
            Checked::Refused(Reply::new(452, "4.3.1", "Insufficient system storage"))
        }
        None => Checked::Refused(common::local_error()),
    }
}

/// `Received:` trace header (RFC 5321 §4.4), with the RFC 3848 protocol name.
fn received_header(s: &Session) -> String {
    let helo = s
        .helo
        .as_ref()
        .map(|h| clean(&h.name))
        .unwrap_or_else(|| "unknown".into());
    let envelope = s.envelope.as_ref();
    let mut proto = String::from(if envelope.is_some_and(|e| e.smtputf8) {
        "UTF8SMTP"
    } else if s.helo.as_ref().is_some_and(|h| h.extended) {
        "ESMTP"
    } else {
        "SMTP"
    });
    if s.conn.is_tls() {
        proto.push('S');
    }
    if s.login.is_some() {
        proto.push('A');
    }
    let tls = s
        .conn
        .tls_version()
        .map(|v| format!(" (TLS {v})"))
        .unwrap_or_default();
    let for_clause = match envelope.map(|e| e.rcpts.as_slice()) {
        Some([one]) => format!("\r\n\tfor <{}>", clean(one)),
        _ => String::new(),
    };
    format!(
        "Received: from {helo} ([{ip}])\r\n\tby {host} (Pochta) with {proto}{tls} id {id}{for_clause};\r\n\t{date}\r\n",
        ip = s.peer.ip(),
        host = s.ctx.hostname,
        id = s.id,
        date = rfc5322_date(time::OffsetDateTime::now_utc()),
    )
}

/// RFC 5322 §3.3 date-time, in UTC.
fn rfc5322_date(t: time::OffsetDateTime) -> String {
    let weekday = &t.weekday().to_string()[..3];
    let month = &t.month().to_string()[..3];
    format!(
        "{weekday}, {:02} {month} {} {:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_format() {
        let t = time::macros::datetime!(2026-11-27 08:05:09 UTC);
        assert_eq!(rfc5322_date(t), "Fri, 27 Nov 2026 08:05:09 +0000");
    }
}
