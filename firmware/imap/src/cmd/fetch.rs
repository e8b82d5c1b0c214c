//! FETCH and UID FETCH (RFC 9051 §6.4.5): flags, dates, sizes, ENVELOPE,
//! BODYSTRUCTURE and body sections with partial ranges. A non-PEEK body
//! fetch sets `\Seen`.
//!
//! ENVELOPE, BODY and BODYSTRUCTURE come from the store's cache when it has
//! them (the indexer fills it in the background), so that a client's first
//! sync of a large folder does not parse every message file; a message not
//! cached yet is parsed here, with the same functions, to the same bytes.

use std::collections::HashMap;

use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use pochta_store::{BlobId, FlagOp, Message, Structure};

use super::{blocking, flag_list, refresh, store_error};
use crate::mime;
use crate::session::{Flow, Session, State};
use crate::wire;

/// Messages whose cached structures are looked up at once: one store call
/// each, and no more than this many structures held in memory.
const STRUCTURE_BATCH: usize = 512;

/// What a FETCH item needs beyond the message's metadata.
#[derive(PartialEq, Eq)]
enum Needs {
    /// Nothing: flags, UID, dates, size, mod-sequence.
    Metadata,
    /// Its structure: from the store's cache, or else from the file.
    Structure,
    /// The top-level header block only: the file is read up to its end.
    Header,
    /// The message file.
    File,
}

fn needs(item: &MessageDataItemName<'_>) -> Needs {
    match item {
        MessageDataItemName::Uid
        | MessageDataItemName::Flags
        | MessageDataItemName::InternalDate
        | MessageDataItemName::Rfc822Size
        | MessageDataItemName::ModSeq => Needs::Metadata,
        MessageDataItemName::Envelope
        | MessageDataItemName::Body
        | MessageDataItemName::BodyStructure => Needs::Structure,
        MessageDataItemName::Rfc822Header => Needs::Header,
        MessageDataItemName::BodyExt { section, .. } if top_level_header(section) => Needs::Header,
        MessageDataItemName::Rfc822
        | MessageDataItemName::Rfc822Text
        | MessageDataItemName::BodyExt { .. }
        | MessageDataItemName::Binary { .. }
        | MessageDataItemName::BinarySize { .. } => Needs::File,
    }
}

/// `HEADER`, `HEADER.FIELDS (...)` or `HEADER.FIELDS.NOT (...)` of the
/// message itself: what mail clients fetch to list a folder.
fn top_level_header(section: &Option<Section<'_>>) -> bool {
    matches!(
        section,
        Some(
            Section::Header(None)
                | Section::HeaderFields(None, _)
                | Section::HeaderFieldsNot(None, _)
        )
    )
}

/// The start of a message file up to the end of its header block (the
/// first CRLF CRLF), or all of it when there is none: the header sections
/// need no more, and a large attachment is not read to list a folder.
async fn read_header(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let mut out = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    loop {
        let n = file.read(&mut chunk).await?;
        if n == 0 {
            return Ok(out);
        }
        // Look again from just before the new bytes: the blank line may
        // straddle two reads.
        let from = out.len().saturating_sub(3);
        out.extend_from_slice(&chunk[..n]);
        if let Some(i) = out[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            out.truncate(from + i + 4);
            return Ok(out);
        }
    }
}

pub(crate) async fn fetch(
    s: &mut Session,
    tag: &str,
    set: &SequenceSet,
    names: &MacroOrMessageDataItemNames<'_>,
    by_uid: bool,
    modifiers: &[FetchModifier],
) -> Flow {
    let changed_since = modifiers.iter().find_map(|m| match m {
        FetchModifier::ChangedSince(v) => Some(v.get()),
        FetchModifier::Vanished => None,
    });
    let vanished = modifiers.contains(&FetchModifier::Vanished);
    if vanished && (!by_uid || !s.qresync || changed_since.is_none()) {
        // RFC 7162 §3.2.6
        s.bad(
            tag,
            "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC",
        );
        return Flow::Continue;
    }
    // RFC 9051 §7.5.1: no EXPUNGE during FETCH, only during UID FETCH.
    refresh(s, by_uid).await;
    let mut items: Vec<MessageDataItemName<'_>> = match names {
        MacroOrMessageDataItemNames::Macro(m) => {
            let mut v = vec![
                MessageDataItemName::Flags,
                MessageDataItemName::InternalDate,
                MessageDataItemName::Rfc822Size,
            ];
            if matches!(m, Macro::All | Macro::Full) {
                v.push(MessageDataItemName::Envelope);
            }
            if matches!(m, Macro::Full) {
                v.push(MessageDataItemName::Body);
            }
            v
        }
        MacroOrMessageDataItemNames::MessageDataItemNames(list) => list.clone(),
    };
    if by_uid && !items.contains(&MessageDataItemName::Uid) {
        items.insert(0, MessageDataItemName::Uid);
    }
    let flags_with_condstore = s.condstore && items.contains(&MessageDataItemName::Flags);
    if changed_since.is_some()
        || flags_with_condstore
        || items.contains(&MessageDataItemName::ModSeq)
    {
        // RFC 7162 §3.1.4.1: CHANGEDSINCE implies MODSEQ; both enable
        // CONDSTORE; once it is on, FLAGS always come with MODSEQ (§3.1).
        super::enable_condstore(s);
        if !items.contains(&MessageDataItemName::ModSeq) {
            items.push(MessageDataItemName::ModSeq);
        }
    }
    let condstore = s.condstore;
    if let State::Selected(_, selected) = &mut s.state {
        selected.condstore |= condstore;
    }
    let State::Selected(_, selected) = &s.state else {
        unreachable!("dispatch checked the state");
    };
    let pairs = match selected.resolve(set, by_uid) {
        Ok(p) => p,
        Err(_) => {
            s.bad(tag, "Invalid sequence set");
            return Flow::Continue;
        }
    };
    let folder = selected.folder.id;
    let read_only = selected.read_only;
    let sets_seen = !read_only
        && items.iter().any(|i| {
            matches!(
                i,
                MessageDataItemName::BodyExt { peek: false, .. }
                    | MessageDataItemName::Binary { peek: false, .. }
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
            )
        });
    let wanted: Vec<u32> = pairs.iter().map(|(_, u)| *u).collect();
    let set_for_vanished = vanished.then(|| set.clone());
    let loaded = blocking(s, move |store| {
        let mut messages: HashMap<u32, Message> = store
            .folder_messages(folder)?
            .into_iter()
            .filter(|m| wanted.binary_search(&m.uid).is_ok())
            .filter(|m| changed_since.is_none_or(|since| m.modseq > since))
            .map(|m| (m.uid, m))
            .collect();
        // RFC 7162 §3.2.6: expunged UIDs of the set since CHANGEDSINCE.
        let gone: Vec<u32> = match (&set_for_vanished, changed_since) {
            (Some(set), Some(since)) => {
                let changes = store.changes_since(folder, since)?;
                let star = changes.uidnext.saturating_sub(1);
                changes
                    .expunged
                    .into_iter()
                    .filter(|u| super::in_set(set, *u, star))
                    .collect()
            }
            _ => Vec::new(),
        };
        if sets_seen {
            let unseen: Vec<u32> = messages
                .values()
                .filter(|m| !m.has_flag("\\Seen"))
                .map(|m| m.uid)
                .collect();
            let (updated, _) =
                store.set_flags(folder, &unseen, FlagOp::Add, &["\\Seen".to_string()], None)?;
            for m in updated {
                messages.insert(m.uid, m);
            }
        }
        Ok((messages, gone))
    })
    .await;
    let (mut messages, gone) = match loaded {
        Ok(m) => m,
        Err(e) => {
            store_error(s, tag, &e);
            return Flow::Continue;
        }
    };
    if sets_seen && !items.contains(&MessageDataItemName::Flags) {
        items.push(MessageDataItemName::Flags);
    }
    // RFC 7162 §3.1: with CONDSTORE on, FLAGS always come with MODSEQ;
    // §3.2.4: with QRESYNC on, every FETCH response carries UID.
    if s.condstore
        && items.contains(&MessageDataItemName::Flags)
        && !items.contains(&MessageDataItemName::ModSeq)
    {
        items.push(MessageDataItemName::ModSeq);
    }
    if s.qresync && !items.contains(&MessageDataItemName::Uid) {
        items.insert(0, MessageDataItemName::Uid);
    }
    if !gone.is_empty() {
        s.conn.push(&format!(
            "* VANISHED (EARLIER) {}\r\n",
            super::copy::uid_set(&gone)
        ));
    }
    let wants_file = items.iter().any(|i| needs(i) == Needs::File);
    let wants_header = items.iter().any(|i| needs(i) == Needs::Header);
    let wants_structure = items.iter().any(|i| needs(i) == Needs::Structure);
    let mut unknown_cte = false;
    for chunk in pairs.chunks(STRUCTURE_BATCH) {
        // Expunged by another session since the view was refreshed: skip.
        let batch: Vec<(u32, Message)> = chunk
            .iter()
            .filter_map(|(seq, uid)| messages.remove(uid).map(|m| (*seq, m)))
            .collect();
        // The cache is asked when it can spare reading the files.
        let cached = if wants_structure && !wants_file {
            cached_structures(s, batch.iter().map(|(_, m)| m.blob.clone()).collect()).await
        } else {
            HashMap::new()
        };
        for (seq, meta) in batch {
            if let State::Selected(_, selected) = &mut s.state {
                if sets_seen {
                    selected.note_own_change(meta.uid, meta.modseq);
                }
            }
            let structure = cached.get(&meta.blob);
            let whole = wants_file || (wants_structure && structure.is_none());
            let raw = if whole || wants_header {
                let path = s.ctx.store.blob_path(&meta.blob);
                let read = if whole {
                    tokio::fs::read(&path).await
                } else {
                    read_header(&path).await
                };
                match read {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        tracing::error!(session = %s.id, error = %e, path = %path.display(), "message file unreadable");
                        None
                    }
                }
            } else {
                None
            };
            let mut out = format!("* {seq} FETCH (").into_bytes();
            unknown_cte |= write_items(&mut out, &items, &meta, raw.as_deref(), structure);
            out.extend_from_slice(b")\r\n");
            s.send(&out);
            // Large responses go out as they are made, not all at the end.
            if s.conn.pending_output() > 256 * 1024 {
                if let Err(e) = s.conn.flush().await {
                    tracing::debug!(session = %s.id, error = %e, "client gone during FETCH");
                    return Flow::Close;
                }
            }
        }
    }
    if unknown_cte {
        s.no(
            tag,
            Some("UNKNOWN-CTE"),
            "A part has a transfer encoding this server cannot decode",
        );
    } else {
        s.ok(tag, None, "FETCH completed");
    }
    Flow::Continue
}

/// The store's cached structures of these bodies. A failed lookup costs
/// only time: the files are read instead.
async fn cached_structures(s: &Session, blobs: Vec<BlobId>) -> HashMap<BlobId, Structure> {
    let version = mime::STRUCTURE_VERSION;
    match blocking(s, move |store| store.cached_structures(&blobs, version)).await {
        Ok(cached) => cached,
        Err(e) => {
            tracing::warn!(session = %s.id, error = %e, "structure cache lookup failed; reading the files");
            HashMap::new()
        }
    }
}

/// Writes the items of one message, from the file (`raw`, when it was
/// read) and the cached structure (when there is one); true when a BINARY
/// item met an unknown Content-Transfer-Encoding (RFC 3516 §4.3).
fn write_items(
    out: &mut Vec<u8>,
    items: &[MessageDataItemName<'_>],
    meta: &Message,
    raw: Option<&[u8]>,
    cached: Option<&Structure>,
) -> bool {
    let mut unknown_cte = false;
    let empty: &[u8] = &[];
    let raw_bytes = raw.unwrap_or(empty);
    // Parsed only when an item needs the MIME structure: not for flags,
    // cached structures or header fields.
    let parsed = std::cell::LazyCell::new(|| raw.and_then(mime::parse));
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        match item {
            MessageDataItemName::Uid => {
                out.extend_from_slice(format!("UID {}", meta.uid).as_bytes())
            }
            MessageDataItemName::Flags => {
                out.extend_from_slice(format!("FLAGS ({})", flag_list(&meta.flags)).as_bytes())
            }
            MessageDataItemName::InternalDate => out.extend_from_slice(
                format!("INTERNALDATE \"{}\"", internal_date(meta.internaldate)).as_bytes(),
            ),
            MessageDataItemName::Rfc822Size => {
                out.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
            }
            MessageDataItemName::Envelope => {
                out.extend_from_slice(b"ENVELOPE ");
                match cached {
                    Some(c) => out.extend_from_slice(&c.envelope),
                    None => mime::envelope_or_nil(out, parsed.as_ref()),
                }
            }
            MessageDataItemName::Body | MessageDataItemName::BodyStructure => {
                let extended = matches!(item, MessageDataItemName::BodyStructure);
                out.extend_from_slice(if extended {
                    b"BODYSTRUCTURE "
                } else {
                    b"BODY "
                });
                match cached {
                    Some(c) if extended => out.extend_from_slice(&c.body_structure),
                    Some(c) => out.extend_from_slice(&c.body),
                    None => mime::body_structure_or_default(out, parsed.as_ref(), extended),
                }
            }
            MessageDataItemName::Rfc822 => {
                out.extend_from_slice(b"RFC822 ");
                wire::literal(out, raw_bytes);
            }
            MessageDataItemName::Rfc822Header => {
                out.extend_from_slice(b"RFC822.HEADER ");
                wire::literal(
                    out,
                    &section_bytes(raw_bytes, &parsed, &Some(Section::Header(None))),
                );
            }
            MessageDataItemName::Rfc822Text => {
                out.extend_from_slice(b"RFC822.TEXT ");
                wire::literal(
                    out,
                    &section_bytes(raw_bytes, &parsed, &Some(Section::Text(None))),
                );
            }
            MessageDataItemName::BodyExt {
                section, partial, ..
            } => {
                let data = section_bytes(raw_bytes, &parsed, section);
                out.extend_from_slice(b"BODY[");
                section_name(out, section);
                out.push(b']');
                match partial {
                    Some((origin, length)) => {
                        out.extend_from_slice(format!("<{origin}> ").as_bytes());
                        let start = (*origin as usize).min(data.len());
                        let end = start.saturating_add(length.get() as usize).min(data.len());
                        wire::literal(out, &data[start..end]);
                    }
                    None => {
                        out.push(b' ');
                        wire::literal(out, &data);
                    }
                }
            }
            MessageDataItemName::ModSeq => {
                out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
            }
            // Refused before the loop.
            MessageDataItemName::Binary {
                section, partial, ..
            } => {
                let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                // RFC 3516 §7: BINARY[] is the whole message, which has no
                // transfer encoding of its own.
                let decoded = if path.is_empty() {
                    raw.map(|r| Ok(r.to_vec()))
                } else {
                    parsed.as_ref().map(|m| mime::binary(m, &path))
                };
                let nums: Vec<String> = path.iter().map(u32::to_string).collect();
                out.extend_from_slice(format!("BINARY[{}]", nums.join(".")).as_bytes());
                match decoded {
                    Some(Ok(data)) => {
                        let (start, end) = match partial {
                            Some((origin, length)) => {
                                out.extend_from_slice(format!("<{origin}>").as_bytes());
                                let start = (*origin as usize).min(data.len());
                                (
                                    start,
                                    start.saturating_add(length.get() as usize).min(data.len()),
                                )
                            }
                            None => (0, data.len()),
                        };
                        out.push(b' ');
                        // RFC 3516 §4.2: NULs make it a literal8.
                        wire::literal(out, &data[start..end]);
                    }
                    Some(Err(mime::Undecodable::UnknownEncoding)) => {
                        unknown_cte = true;
                        out.extend_from_slice(b" NIL");
                    }
                    _ => out.extend_from_slice(b" NIL"),
                }
            }
            MessageDataItemName::BinarySize { section } => {
                let path: Vec<u32> = section.iter().map(|n| n.get()).collect();
                let nums: Vec<String> = path.iter().map(u32::to_string).collect();
                let decoded = if path.is_empty() {
                    raw.map(|r| Ok(r.to_vec()))
                } else {
                    parsed.as_ref().map(|m| mime::binary(m, &path))
                };
                let size = match decoded {
                    Some(Ok(data)) => data.len(),
                    Some(Err(mime::Undecodable::UnknownEncoding)) => {
                        unknown_cte = true;
                        0
                    }
                    _ => 0,
                };
                out.extend_from_slice(format!("BINARY.SIZE[{}] {size}", nums.join(".")).as_bytes());
            }
        }
    }
    unknown_cte
}

/// The bytes of a body section (RFC 9051 §6.4.5). A section that does not
/// exist is empty. `parsed` is asked for only for sections inside the
/// message (parts, MIME headers, enclosed messages).
fn section_bytes<'r>(
    raw: &[u8],
    parsed: &std::cell::LazyCell<
        Option<mail_parser::Message<'r>>,
        impl FnOnce() -> Option<mail_parser::Message<'r>>,
    >,
    section: &Option<Section<'_>>,
) -> Vec<u8> {
    let Some(section) = section else {
        return raw.to_vec();
    };
    let header_end = header_len(raw);
    let field_names = |names: &[imap_codec::imap_types::core::AString<'_>]| -> Vec<String> {
        names
            .iter()
            .map(|n| String::from_utf8_lossy(n.as_ref()).into_owned())
            .collect()
    };
    // The message's own header and text need no MIME parse.
    match section {
        Section::Header(None) => return raw[..header_end].to_vec(),
        Section::Text(None) => return raw[header_end..].to_vec(),
        Section::HeaderFields(None, names) => {
            return mime::header_fields(&raw[..header_end], &field_names(names.as_ref()), false)
        }
        Section::HeaderFieldsNot(None, names) => {
            return mime::header_fields(&raw[..header_end], &field_names(names.as_ref()), true)
        }
        _ => {}
    }
    let parsed = std::cell::LazyCell::force(parsed).as_ref();
    let Some(m) = parsed else {
        return Vec::new();
    };
    let path = |p: &Option<Part>| -> Vec<u32> {
        p.as_ref()
            .map(|p| p.0.as_ref().iter().map(|n| n.get()).collect())
            .unwrap_or_default()
    };
    match section {
        Section::Header(None)
        | Section::Text(None)
        | Section::HeaderFields(None, _)
        | Section::HeaderFieldsNot(None, _) => unreachable!("answered above"),
        Section::Part(p) => {
            let path: Vec<u32> = p.0.as_ref().iter().map(|n| n.get()).collect();
            match mime::find(m, &path) {
                Some(f) => mime::part_body(&f.message.raw_message, f.part).to_vec(),
                None => Vec::new(),
            }
        }
        Section::Mime(p) => {
            let path: Vec<u32> = p.0.as_ref().iter().map(|n| n.get()).collect();
            match mime::find(m, &path) {
                Some(f) => mime::part_header(&f.message.raw_message, f.part).to_vec(),
                None => Vec::new(),
            }
        }
        // HEADER, TEXT and HEADER.FIELDS of an enclosed message/rfc822 part.
        Section::Header(p)
        | Section::Text(p)
        | Section::HeaderFields(p, _)
        | Section::HeaderFieldsNot(p, _) => {
            let Some(f) = mime::find(m, &path(p)) else {
                return Vec::new();
            };
            let mail_parser::PartType::Message(inner) = &f.part.body else {
                return Vec::new();
            };
            // The enclosed message's own root part: its raw text may be the
            // outer buffer, so offsets, not the start of the buffer, count.
            let Some(root) = inner.parts.first() else {
                return Vec::new();
            };
            let header = mime::part_header(&inner.raw_message, root);
            let text = mime::part_body(&inner.raw_message, root);
            match section {
                Section::Header(_) => header.to_vec(),
                Section::Text(_) => text.to_vec(),
                Section::HeaderFields(_, names) => {
                    mime::header_fields(header, &field_names(names.as_ref()), false)
                }
                Section::HeaderFieldsNot(_, names) => {
                    mime::header_fields(header, &field_names(names.as_ref()), true)
                }
                _ => Vec::new(),
            }
        }
    }
}

/// Length of the header block, blank line included.
fn header_len(raw: &[u8]) -> usize {
    if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        return i + 4;
    }
    if let Some(i) = raw.windows(2).position(|w| w == b"\n\n") {
        return i + 2;
    }
    raw.len()
}

/// The section spec as the client gave it, for the response item name.
fn section_name(out: &mut Vec<u8>, section: &Option<Section<'_>>) {
    let Some(section) = section else { return };
    let prefix = |out: &mut Vec<u8>, p: &Option<Part>| {
        if let Some(p) = p {
            let nums: Vec<String> = p.0.as_ref().iter().map(|n| n.to_string()).collect();
            out.extend_from_slice(nums.join(".").as_bytes());
            out.push(b'.');
        }
    };
    let fields = |out: &mut Vec<u8>, names: &[imap_codec::imap_types::core::AString<'_>]| {
        out.extend_from_slice(b" (");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            wire::astring(out, n.as_ref());
        }
        out.push(b')');
    };
    match section {
        Section::Part(p) => {
            let nums: Vec<String> = p.0.as_ref().iter().map(|n| n.to_string()).collect();
            out.extend_from_slice(nums.join(".").as_bytes());
        }
        Section::Header(p) => {
            prefix(out, p);
            out.extend_from_slice(b"HEADER");
        }
        Section::HeaderFields(p, names) => {
            prefix(out, p);
            out.extend_from_slice(b"HEADER.FIELDS");
            fields(out, names.as_ref());
        }
        Section::HeaderFieldsNot(p, names) => {
            prefix(out, p);
            out.extend_from_slice(b"HEADER.FIELDS.NOT");
            fields(out, names.as_ref());
        }
        Section::Text(p) => {
            prefix(out, p);
            out.extend_from_slice(b"TEXT");
        }
        Section::Mime(p) => {
            prefix(out, &Some(p.clone()));
            out.extend_from_slice(b"MIME");
        }
    }
}

/// RFC 9051 date-time: `27-Nov-2026 18:22:59 +0000`.
pub(crate) fn internal_date(secs: i64) -> String {
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    t.format("%d-%b-%Y %H:%M:%S +0000").to_string()
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
