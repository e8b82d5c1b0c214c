//! What FETCH needs from a parsed message (mail-parser): ENVELOPE and
//! BODYSTRUCTURE (RFC 9051 §7.5.2), and the byte ranges of body sections
//! (§6.4.5). Offsets from the parser are checked before slicing, so a
//! hostile message yields empty sections, never a panic.
//!
//! The store's background indexer calls [`extract`] once per new body; the
//! [`Structure`] it makes is what FETCH sends from the store's cache, so it
//! must be byte for byte what FETCH would make from the file.

use mail_parser::{Addr, Address, Message, MessagePart, MimeHeaders, PartType};
use pochta_store::{Extracted, Structure};

use crate::wire;

/// Deepest MIME nesting described; deeper parts are cut off (a hostile
/// message must not exhaust the stack).
const MAX_DEPTH: usize = 32;

/// Version of what [`envelope_or_nil`] and [`body_structure_or_default`]
/// write. The store keeps it with every cached [`Structure`] and ignores
/// (and remakes) those of another version: change it whenever their output
/// changes for any message, or clients get the old forms from the cache.
/// The test `structure_output_is_pinned` fails as a reminder.
pub const STRUCTURE_VERSION: u32 = 2;

/// What FETCH sends for a message that mail-parser cannot parse (or whose
/// file cannot be read).
const NIL_ENVELOPE: &[u8] = b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";
const DEFAULT_BODY: &[u8] = b"(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" 0 0)";

/// Parses a stored message.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    mail_parser::MessageParser::default().parse(raw)
}

/// For the store's indexer: one parse of a message file gives both its
/// search text and the structure FETCH reports.
pub fn extract(raw: &[u8]) -> Extracted {
    let parsed = parse(raw);
    Extracted {
        structure: structure_of(parsed.as_ref()),
        text: index_text(raw, parsed.as_ref()),
    }
}

/// ENVELOPE, BODY and BODYSTRUCTURE of a message, `None` if unparseable.
pub fn structure_of(msg: Option<&Message<'_>>) -> Structure {
    let mut envelope = Vec::new();
    envelope_or_nil(&mut envelope, msg);
    let mut body = Vec::new();
    body_structure_or_default(&mut body, msg, false);
    let mut body_structure = Vec::new();
    body_structure_or_default(&mut body_structure, msg, true);
    Structure {
        envelope,
        body,
        body_structure,
    }
}

/// The ENVELOPE FETCH sends: of the message, or all NIL without one.
pub fn envelope_or_nil(out: &mut Vec<u8>, msg: Option<&Message<'_>>) {
    match msg {
        Some(m) => envelope(out, m),
        None => out.extend_from_slice(NIL_ENVELOPE),
    }
}

/// The BODY (`extended` false) or BODYSTRUCTURE FETCH sends: of the
/// message, or an empty text part without one.
pub fn body_structure_or_default(out: &mut Vec<u8>, msg: Option<&Message<'_>>, extended: bool) {
    match msg {
        Some(m) => body_structure(out, m, extended),
        None => out.extend_from_slice(DEFAULT_BODY),
    }
}

fn slice(raw: &[u8], from: u32, to: u32) -> &[u8] {
    raw.get(from as usize..to as usize).unwrap_or(&[])
}

/// The header block of a part, blank line included.
pub fn part_header<'a>(raw: &'a [u8], part: &MessagePart<'_>) -> &'a [u8] {
    slice(raw, part.offset_header, part.offset_body)
}

/// The (still encoded) body of a part.
pub fn part_body<'a>(raw: &'a [u8], part: &MessagePart<'_>) -> &'a [u8] {
    slice(raw, part.offset_body, part.offset_end)
}

/// A part found by its section number (`1.2.3`), with the message it
/// belongs to (nested messages have their own offsets).
pub struct Found<'m, 'x> {
    pub message: &'m Message<'x>,
    pub part: &'m MessagePart<'x>,
}

/// Finds the part for a section path (RFC 9051 §6.4.5): in a multipart,
/// `n` is the n-th child; in a message/rfc822 part, numbering continues in
/// the enclosed message; in a single-part message, part 1 is its body.
pub fn find<'m, 'x>(message: &'m Message<'x>, path: &[u32]) -> Option<Found<'m, 'x>> {
    let mut msg = message;
    let mut part = msg.parts.first()?;
    for &n in path {
        let n = n.checked_sub(1)? as usize;
        if let PartType::Message(inner) = &part.body {
            msg = inner;
            part = msg.parts.first()?;
        }
        match &part.body {
            PartType::Multipart(children) => {
                let id = *children.get(n)? as usize;
                part = msg.parts.get(id)?;
            }
            _ if n == 0 => {}
            _ => return None,
        }
    }
    Some(Found { message: msg, part })
}

/// Appends `(date subject from sender reply-to to cc bcc in-reply-to
/// message-id)`.
pub fn envelope(out: &mut Vec<u8>, msg: &Message<'_>) {
    let raw = |name: &str| msg.header_raw(name).map(|v| unfold(v.trim()));
    out.push(b'(');
    wire::nstring(out, raw("Date").as_deref().map(str::as_bytes));
    out.push(b' ');
    wire::nstring(out, raw("Subject").as_deref().map(str::as_bytes));
    let from = msg.from();
    for list in [
        from,
        msg.sender().or(from),
        msg.reply_to().or(from),
        msg.to(),
        msg.cc(),
        msg.bcc(),
    ] {
        out.push(b' ');
        addresses(out, list);
    }
    out.push(b' ');
    wire::nstring(out, raw("In-Reply-To").as_deref().map(str::as_bytes));
    out.push(b' ');
    wire::nstring(out, raw("Message-ID").as_deref().map(str::as_bytes));
    out.push(b')');
}

fn unfold(v: &str) -> String {
    v.replace("\r\n", "").replace('\n', "")
}

fn addresses(out: &mut Vec<u8>, list: Option<&Address<'_>>) {
    let Some(list) = list else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let mut items = Vec::new();
    match list {
        Address::List(addrs) => {
            for a in addrs {
                address(&mut items, a);
            }
        }
        Address::Group(groups) => {
            for g in groups {
                if let Some(name) = &g.name {
                    // RFC 9051 §7.5.2: group start and end markers.
                    items.extend_from_slice(b"(NIL NIL ");
                    wire::string(&mut items, name.as_bytes());
                    items.extend_from_slice(b" NIL)");
                    for a in &g.addresses {
                        address(&mut items, a);
                    }
                    items.extend_from_slice(b"(NIL NIL NIL NIL)");
                } else {
                    for a in &g.addresses {
                        address(&mut items, a);
                    }
                }
            }
        }
    }
    if items.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        out.extend_from_slice(&items);
        out.push(b')');
    }
}

fn address(out: &mut Vec<u8>, a: &Addr<'_>) {
    let addr = a.address.as_deref().unwrap_or("");
    let (mailbox, host) = match addr.rsplit_once('@') {
        Some((m, h)) => (m, Some(h)),
        None => (addr, None),
    };
    out.push(b'(');
    wire::nstring(out, a.name.as_deref().map(str::as_bytes));
    out.extend_from_slice(b" NIL ");
    wire::nstring(out, Some(mailbox.as_bytes()));
    out.push(b' ');
    wire::nstring(out, host.map(str::as_bytes));
    out.push(b')');
}

/// Appends BODY (`extended` false) or BODYSTRUCTURE (`extended` true).
pub fn body_structure(out: &mut Vec<u8>, msg: &Message<'_>, extended: bool) {
    match msg.parts.first() {
        Some(_) => structure(out, msg, 0, extended, 0),
        None => out.extend_from_slice(DEFAULT_BODY),
    }
}

fn structure(out: &mut Vec<u8>, msg: &Message<'_>, id: usize, extended: bool, depth: usize) {
    let Some(part) = msg.parts.get(id) else {
        out.extend_from_slice(DEFAULT_BODY);
        return;
    };
    let ctype = part.content_type();
    if let PartType::Multipart(children) = &part.body {
        let valid: Vec<usize> = children
            .iter()
            .map(|&c| c as usize)
            .filter(|&c| c > id && c < msg.parts.len())
            .collect();
        if depth < MAX_DEPTH && !valid.is_empty() {
            out.push(b'(');
            for c in valid {
                structure(out, msg, c, extended, depth + 1);
            }
            out.push(b' ');
            let subtype = ctype
                .and_then(|c| c.c_subtype.as_deref())
                .unwrap_or("mixed");
            wire::string(out, subtype.to_ascii_uppercase().as_bytes());
            if extended {
                out.push(b' ');
                params(out, part);
                out.push(b' ');
                disposition(out, part);
                out.extend_from_slice(b" NIL NIL");
            }
            out.push(b')');
            return;
        }
    }
    let raw: &[u8] = &msg.raw_message;
    let body = part_body(raw, part);
    let (mtype, subtype) = match ctype {
        Some(c) => (
            c.c_type.to_ascii_uppercase(),
            c.c_subtype.as_deref().unwrap_or("").to_ascii_uppercase(),
        ),
        None => ("TEXT".into(), "PLAIN".into()),
    };
    let (mtype, subtype) = if matches!(part.body, PartType::Multipart(_)) {
        // A multipart too deep or without parts: described as opaque data.
        ("APPLICATION".to_string(), "OCTET-STREAM".to_string())
    } else {
        (mtype, subtype)
    };
    // RFC 9051 §7.5.2: MESSAGE/RFC822 and MESSAGE/GLOBAL, as described, must
    // be followed by the enclosed message's envelope, body and lines, and
    // nothing else may be (found by fuzz/imap_mime: a message/rfc822 part
    // that mail-parser read as a multipart got them after its opaque type).
    let message_type = mtype == "MESSAGE" && matches!(subtype.as_str(), "RFC822" | "GLOBAL");
    out.push(b'(');
    wire::string(out, mtype.as_bytes());
    out.push(b' ');
    wire::string(
        out,
        if subtype.is_empty() {
            b"PLAIN"
        } else {
            subtype.as_bytes()
        },
    );
    out.push(b' ');
    params(out, part);
    out.push(b' ');
    wire::nstring(out, part.content_id().map(str::as_bytes));
    out.push(b' ');
    wire::nstring(out, part.content_description().map(str::as_bytes));
    out.push(b' ');
    let encoding = part
        .content_transfer_encoding()
        .unwrap_or("7BIT")
        .to_ascii_uppercase();
    wire::string(out, encoding.as_bytes());
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    // A last line without CRLF (the CRLF before a boundary belongs to the
    // boundary, RFC 2046 §5.1.1) still counts as a line.
    let lines = body.iter().filter(|&&b| b == b'\n').count()
        + usize::from(body.last().is_some_and(|&b| b != b'\n'));
    match &part.body {
        PartType::Message(inner) if message_type && depth < MAX_DEPTH => {
            out.push(b' ');
            envelope(out, inner);
            out.push(b' ');
            body_structure_at(out, inner, extended, depth + 1);
            out.extend_from_slice(format!(" {lines}").as_bytes());
        }
        _ if message_type => {
            // An enclosed message too deep, empty, or that the parser gave
            // up on (found by fuzz/imap_mime: the three fields went
            // missing): described like an unparseable message.
            out.push(b' ');
            out.extend_from_slice(NIL_ENVELOPE);
            out.push(b' ');
            out.extend_from_slice(DEFAULT_BODY);
            out.extend_from_slice(format!(" {lines}").as_bytes());
        }
        _ if mtype == "TEXT" => out.extend_from_slice(format!(" {lines}").as_bytes()),
        _ => {}
    }
    if extended {
        out.extend_from_slice(b" NIL ");
        disposition(out, part);
        out.extend_from_slice(b" NIL NIL");
    }
    out.push(b')');
}

fn body_structure_at(out: &mut Vec<u8>, msg: &Message<'_>, extended: bool, depth: usize) {
    if msg.parts.is_empty() {
        out.extend_from_slice(DEFAULT_BODY);
    } else {
        structure(out, msg, 0, extended, depth);
    }
}

fn params(out: &mut Vec<u8>, part: &MessagePart<'_>) {
    let attrs = part.content_type().and_then(|c| c.attributes.as_ref());
    match attrs {
        Some(list) if !list.is_empty() => {
            out.push(b'(');
            for (i, a) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                wire::string(out, a.name.to_ascii_uppercase().as_bytes());
                out.push(b' ');
                wire::string(out, a.value.as_bytes());
            }
            out.push(b')');
        }
        _ if part.content_type().is_none() => out.extend_from_slice(b"(\"CHARSET\" \"US-ASCII\")"),
        _ => out.extend_from_slice(b"NIL"),
    }
}

fn disposition(out: &mut Vec<u8>, part: &MessagePart<'_>) {
    match part.content_disposition() {
        Some(d) => {
            out.push(b'(');
            wire::string(out, d.c_type.to_ascii_uppercase().as_bytes());
            out.push(b' ');
            match d.attributes.as_ref() {
                Some(list) if !list.is_empty() => {
                    out.push(b'(');
                    for (i, a) in list.iter().enumerate() {
                        if i > 0 {
                            out.push(b' ');
                        }
                        wire::string(out, a.name.to_ascii_uppercase().as_bytes());
                        out.push(b' ');
                        wire::string(out, a.value.as_bytes());
                    }
                    out.push(b')');
                }
                _ => out.extend_from_slice(b"NIL"),
            }
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

/// The text the search index keeps of a message: the header block plus
/// decoded subject and addresses; the text of the text parts (HTML as
/// text) and attachment names.
fn index_text(raw: &[u8], parsed: Option<&Message<'_>>) -> pochta_store::IndexText {
    let Some(m) = parsed else {
        return pochta_store::IndexText {
            headers: String::new(),
            body: String::from_utf8_lossy(raw).into_owned(),
        };
    };
    let mut headers =
        String::from_utf8_lossy(m.parts.first().map_or(&[][..], |p| part_header(raw, p)))
            .into_owned();
    if let Some(subject) = m.subject() {
        headers.push('\n');
        headers.push_str(subject);
    }
    for list in [m.from(), m.to(), m.cc(), m.bcc(), m.reply_to()]
        .into_iter()
        .flatten()
    {
        for a in list.iter() {
            for part in [a.name.as_deref(), a.address.as_deref()]
                .into_iter()
                .flatten()
            {
                headers.push('\n');
                headers.push_str(part);
            }
        }
    }
    let mut body = String::new();
    for i in 0..m.text_body.len().max(m.html_body.len()) {
        if let Some(t) = m.body_text(i) {
            body.push_str(&t);
            body.push('\n');
        }
    }
    for a in m.attachments() {
        if let Some(name) = a.attachment_name() {
            body.push_str(name);
            body.push('\n');
        }
    }
    pochta_store::IndexText { headers, body }
}

/// Why a part cannot be delivered decoded (RFC 3516 BINARY).
#[derive(Debug, PartialEq, Eq)]
pub enum Undecodable {
    /// No such part, or a multipart (BINARY needs a leaf).
    NoPart,
    /// A Content-Transfer-Encoding this server does not know (`[UNKNOWN-CTE]`).
    UnknownEncoding,
}

/// The content of a part with its Content-Transfer-Encoding removed (and
/// nothing else: no charset conversion), for FETCH BINARY (RFC 3516 §4.2).
/// An empty path is the whole message's body.
pub fn binary(message: &Message<'_>, path: &[u32]) -> Result<Vec<u8>, Undecodable> {
    let found = if path.is_empty() {
        Found {
            message,
            part: message.parts.first().ok_or(Undecodable::NoPart)?,
        }
    } else {
        find(message, path).ok_or(Undecodable::NoPart)?
    };
    if matches!(found.part.body, PartType::Multipart(_)) {
        return Err(Undecodable::NoPart);
    }
    let body = part_body(&found.message.raw_message, found.part);
    let encoding = found
        .part
        .content_transfer_encoding()
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "7bit" | "8bit" | "binary" => Ok(body.to_vec()),
        "base64" => Ok(decode_base64(body)),
        "quoted-printable" => Ok(decode_quoted_printable(body)),
        _ => Err(Undecodable::UnknownEncoding),
    }
}

/// Lenient base64: whitespace and junk skipped, as RFC 2045 §6.8 asks.
fn decode_base64(body: &[u8]) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in body {
        if c == b'=' {
            break;
        }
        let Some(v) = value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 2045 §6.7: `=XX` escapes and `=` soft line breaks.
fn decode_quoted_printable(body: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'=' {
            match (body.get(i + 1), body.get(i + 2)) {
                (Some(b'\r'), Some(b'\n')) => {
                    i += 3;
                    continue;
                }
                (Some(b'\n'), _) => {
                    i += 2;
                    continue;
                }
                (Some(&a), Some(&b)) => {
                    if let (Some(h), Some(l)) = (hex(a), hex(b)) {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// The header lines of `header` whose names are (or, with `not`, are not)
/// in `names`, with the terminating blank line (§6.4.5 HEADER.FIELDS).
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&b| b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = matches!(line.first(), Some(b' ') | Some(b'\t'));
        if !continuation {
            let name = line.split(|&b| b == b':').next().unwrap_or(&[]);
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            keep = names.iter().any(|n| n.eq_ignore_ascii_case(&name)) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIXED: &[u8] =
        b"From: Amy <amy@example.com>\r\nTo: bob@example.com, \"C, D\" <cd@example.org>\r\n\
Subject: Hello\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\nMessage-ID: <1@x>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi there\r\nline 2\r\n\
--b\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"x.pdf\"\r\n\r\nAAAA\r\n--b--\r\n";

    fn text(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn envelope_of_a_message() {
        let m = parse(MIXED).unwrap();
        let e = text(|o| envelope(o, &m));
        assert_eq!(
            e,
            "(\"Fri, 27 Nov 2026 10:00:00 +0000\" \"Hello\" ((\"Amy\" NIL \"amy\" \"example.com\")) \
((\"Amy\" NIL \"amy\" \"example.com\")) ((\"Amy\" NIL \"amy\" \"example.com\")) \
((NIL NIL \"bob\" \"example.com\")(\"C, D\" NIL \"cd\" \"example.org\")) NIL NIL NIL \"<1@x>\")"
        );
    }

    #[test]
    fn envelope_never_holds_a_literal8() {
        // Found by fuzz/imap_mime: NUL in the Date field (a literal8 in
        // ENVELOPE, which clients cannot parse).
        let raw = b"From: Amy <amy@example.com>\nDate: Fri, 27 Nov 2026 10:0\0\0\0\0\0\0\0\n\
Subject: S\0\n\nbody\n";
        let m = parse(raw).unwrap();
        let e = text(|o| envelope(o, &m));
        assert!(e.starts_with("(\"Fri, 27 Nov 2026 10:0\" \"S\" "), "{e}");
        assert!(!e.contains('~') && !e.contains('\0'), "{e}");
    }

    #[test]
    fn an_enclosed_message_the_parser_gave_up_on_keeps_its_fields() {
        // Found by fuzz/imap_mime: message/rfc822 nested deeper than
        // mail-parser follows; the innermost came out as MESSAGE/RFC822
        // without the envelope, body and lines that must follow its size.
        let raw: &[u8] = b"Fr: Amy <amyouter\n\
Content-Type: message/rfc822\n\n\
From: Carl <carl@example.o\xc4\xc4E\xc4\xc4\xc4\xc4et\n\
Dazxampleata: Thu, 26 Novlain; charset=utf\xc4\xc4\xc4\xc4\xc4\xc4\xc4E\xc4\xc4\xc4\xc4et\n\
Date: Wed,d, 15 A&pr 2026\n\
le.com\n\
Su\x00\x00\x00\x00\x00\x00\x01deport with attachments\n\
Da*e:Kc3RyZWFtCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
FrFtCg==\n\
--outer\n\
ContenZWFtCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
FrFtCg==\n\
--outer\n\
Content-Type: @example.com>\n\
To: bob@example.com\n\
Su\x00\x00\x00\x00\x00\x00\x01deport with attachments\n\
Da*e:Kc3RyZWFtCg==\n\
--uoter\n\
Content-Type: message/rfc822\n\n\
FrFtCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
From: Carl <carl@example.o\xc4\xc4E\xc4\xc4\xc4\xc4et\n\
Dazxampleata: Thu, 26 Novlain; charset=utf\xc4\xc4\xc4\xc4\xc4\xc4\xc4E\xc4\xc4\xc4\xc4et\n\
Date: Wed,d, 15 A&pr 2026\n\
le.com\n\
Su\x00\x00\x00\x00\x00\x00\x01deport with attachments\n\
Da*e:Kc3RyZWFtCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
FrFtCg==\n\
--outer\n\
ContenZWFtCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
FrFtCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
From: Carl <carl@example.o\xc4\xc4E\xc4\xc4\xc4\xc4et\n\
Dazxampleata: Thu, 26 Novlain; charset=u\n";
        let m = parse(raw).unwrap();
        for extended in [false, true] {
            let b = text(|o| body_structure(o, &m, extended));
            for (i, _) in b.match_indices("(\"MESSAGE\" \"RFC822\" ") {
                // type subtype params id description encoding size, then
                // the envelope's parenthesis.
                let after_size = b[i..].split(' ').nth(7).expect("a complete MESSAGE part");
                assert!(after_size.starts_with('('), "{}", &b[i..]);
            }
            assert!(
                b.contains(" (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"TEXT\" "),
                "{b}"
            );
        }
    }

    /// Each part's fields as RFC 9051 §7.5.2 wants them: an envelope (a
    /// parenthesis after the size) for MESSAGE/RFC822, and for nothing else.
    fn fields_follow_the_type(b: &str) {
        for (i, _) in b.match_indices("(\"") {
            let mut tokens = b[i..].split(' ');
            let is_message =
                tokens.next() == Some("(\"MESSAGE\"") && tokens.next() == Some("\"RFC822\"");
            // type subtype params id description encoding size, then:
            let Some(after_size) = b[i..].split(' ').nth(7) else {
                continue;
            };
            if b[i..].split(' ').nth(5).is_some_and(|e| e.starts_with('"'))
                && b[i..]
                    .split(' ')
                    .nth(6)
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            {
                assert_eq!(after_size.starts_with('('), is_message, "{}", &b[i..]);
            }
        }
    }

    #[test]
    fn a_message_part_read_as_a_multipart_has_no_envelope() {
        // Found by fuzz/imap_mime.
        let raw: &[u8] = b"From: Amy <amy@examplexample.com>8\x00IME-Vers\xd9\x07#ion: 0.0\n\
Content-Type: multipart/mixed; boundary=\"outer\"\n\n\
This is a multi-part message in MIME format.\n\
--outer\n\
ContetCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
Fr:uter-rlContetCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
Fr:uter-rl <caanj\x09\x00\x00\x00\x00\x00\x00\x00sage in MIME format.\n\
--outer\n\
ContetCg==\n\
--outer\n\
Content-Type: message/rfc821\n\n\
Fr:uter-rlContetCg==\n\
--outer\n\
Content-Type: message/rfc822\n\n\
Fr:uter-rl <caanj\x09\x00\x00\x00\x00\x00\x00\x00\x00ner\n\
\xdf\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffy@\\exomple.coutf-7\n\n\
P.com>-inner\n\
Content-Type:ltiparouter+t/alterjative; boundampl\xa4.com\n\
S0:00 +000sga0seM\n\
\x9b\x00ner\n\
\xdf\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffy@\\exomple.coutf-7\n\n\
P.com>-inner\n\
Content-Type:ltipar\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xffouter+t/alterjative; boundampl\xa4.com\n\
S0:00 +000sga0seM\n\
\x9b\xd2\xd2\xd5\n\
--outer--\n";
        let m = parse(raw).unwrap();
        for extended in [false, true] {
            fields_follow_the_type(&text(|o| body_structure(o, &m, extended)));
        }
    }

    #[test]
    fn bodystructure_of_multipart() {
        let m = parse(MIXED).unwrap();
        let b = text(|o| body_structure(o, &m, false));
        assert_eq!(
            b,
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 16 2)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"x.pdf\") NIL NIL \"BASE64\" 4) \"MIXED\")"
        );
    }

    #[test]
    fn sections_are_found() {
        let m = parse(MIXED).unwrap();
        let raw: &[u8] = &m.raw_message;
        let p1 = find(&m, &[1]).unwrap();
        assert_eq!(part_body(raw, p1.part), b"hi there\r\nline 2");
        assert!(find(&m, &[3]).is_none());
        assert!(
            find(&m, &[1, 1]).is_some(),
            "a single part's part 1 is itself"
        );
        assert!(find(&m, &[1, 2]).is_none());
        let single = parse(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let p = find(&single, &[1]).unwrap();
        assert_eq!(part_body(&single.raw_message, p.part), b"body\r\n");
    }

    #[test]
    fn binary_decodes_transfer_encodings() {
        let m = parse(MIXED).unwrap();
        assert_eq!(binary(&m, &[1]).unwrap(), b"hi there\r\nline 2");
        assert_eq!(binary(&m, &[2]).unwrap(), vec![0u8, 0, 0]);
        assert_eq!(binary(&m, &[]), Err(Undecodable::NoPart));
        assert_eq!(binary(&m, &[9]), Err(Undecodable::NoPart));
        let qp =
            parse(b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nok=3D\r\n")
                .unwrap();
        assert_eq!(binary(&qp, &[1]).unwrap(), "café ok=\r\n".as_bytes());
        let odd = parse(b"Content-Transfer-Encoding: x-uuencode\r\n\r\nabc\r\n").unwrap();
        assert_eq!(binary(&odd, &[1]), Err(Undecodable::UnknownEncoding));
    }

    #[test]
    fn header_fields_selects_and_keeps_folding() {
        let h = b"Subject: a\r\n b\r\nFrom: x\r\nTo: y\r\n\r\n";
        let names = vec!["subject".to_string(), "TO".to_string()];
        assert_eq!(
            header_fields(h, &names, false),
            b"Subject: a\r\n b\r\nTo: y\r\n\r\n"
        );
        assert_eq!(header_fields(h, &names, true), b"From: x\r\n\r\n");
    }

    #[test]
    fn hostile_nesting_does_not_overflow() {
        let mut msg = String::new();
        for i in 0..200 {
            msg.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        msg.push_str("Content-Type: text/plain\r\n\r\nx\r\n");
        let m = parse(msg.as_bytes()).unwrap();
        let b = text(|o| body_structure(o, &m, true));
        assert!(b.starts_with('('));
    }
}
