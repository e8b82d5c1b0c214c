//! APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315). The message is
//! committed through the store like received mail: durable before OK.

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::flag::Flag;

use super::{blocking, flags_from, refresh, store_error};
use crate::session::{Flow, Session, State};

/// The bytes of an APPEND literal (`{n}` or `~{n}`, RFC 3516).
pub(crate) fn literal_data<'a>(
    l: &'a imap_codec::imap_types::extensions::binary::LiteralOrLiteral8<'_>,
) -> &'a [u8] {
    use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
    match l {
        LiteralOrLiteral8::Literal(l) => l.data(),
        LiteralOrLiteral8::Literal8(l) => &l.data,
    }
}

pub(crate) async fn append(
    s: &mut Session,
    tag: &str,
    folder: &str,
    flags: &[Flag<'_>],
    date: Option<&DateTime>,
    message: &[u8],
) -> Flow {
    let account = s.login().expect("authenticated").account;
    if message.is_empty() {
        s.bad(tag, "Empty message");
        return Flow::Continue;
    }
    if message.len() as u64 > s.ctx.limits.max_message_bytes {
        s.no(tag, Some("TOOBIG"), "Message too big");
        return Flow::Continue;
    }
    let flags = flags_from(flags);
    let internaldate = date.map(|d| d.as_ref().timestamp());
    let name = folder.to_string();
    let body = message.to_vec();
    let result = blocking(s, move |store| {
        let Some(f) = store.folder(account, &name)? else {
            return Ok(None);
        };
        let f = f.selectable()?;
        store.disk_room()?;
        if !store.has_room(account, body.len() as u64)? {
            return Err(pochta_store::StoreError::OverQuota);
        }
        let mut writer = store.blob_writer()?;
        writer.write(&body)?;
        let staged = writer.finish()?;
        match store.append(account, &f.name, staged, flags, internaldate) {
            Ok(copy) => Ok(Some(copy)),
            Err(pochta_store::DeliveryError::QuotaExceeded(_)) => {
                Err(pochta_store::StoreError::OverQuota)
            }
            Err(pochta_store::DeliveryError::Store(e)) => Err(e),
            Err(other) => Err(pochta_store::StoreError::Invalid(other.to_string())),
        }
    })
    .await;
    match result {
        Ok(Some(copy)) => {
            if matches!(&s.state, State::Selected(_, sel) if sel.folder.name == copy.folder) {
                refresh(s, false).await;
            }
            let code = format!("APPENDUID {} {}", copy.uidvalidity, copy.uid);
            s.ok(tag, Some(&code), "APPEND completed");
        }
        Ok(None) => s.no(tag, Some("TRYCREATE"), "No such mailbox"),
        Err(e) => store_error(s, tag, &e),
    }
    Flow::Continue
}
