//! The parsers that read client bytes and stored mail, as plain functions
//! for the fuzz targets (`fuzz/`): one complete command message through the
//! pre-parsers and the codec as the session runs them, modified UTF-7, and
//! what FETCH makes of a message (ENVELOPE, BODYSTRUCTURE, BINARY, header
//! fields). Nothing here keeps state or does I/O.

use imap_codec::decode::Decoder;
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;

use crate::{extended, mime, nesting, searchres, utf7};

pub use crate::mime::Undecodable;

/// What one complete command message becomes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Parsed {
    /// A command the codec parsed (after any rewriting).
    Command(Box<Command<'static>>),
    /// A form the codec does not know that `extended` took (extended LIST).
    Extended,
    /// Refused: the session answers BAD with this text.
    Bad(&'static str),
}

/// Parses one complete command message (as the fragmentizer hands it over,
/// CRLF included) the way a session in the Selected state does: deep search
/// criteria rebalanced, `$` replaced, the forms the codec lacks recognised,
/// then the codec. `rewritten` gets the bytes the codec saw when a
/// pre-parser rewrote them.
pub fn command(message: &[u8], rewritten: &mut Option<Vec<u8>>) -> Parsed {
    *rewritten = nesting::rebalance(message);
    let bytes = rewritten.as_deref().unwrap_or(message);
    match searchres::rewrite(bytes) {
        Ok(Some(r)) => *rewritten = Some(r),
        Ok(None) => {}
        Err(searchres::Ambiguous) => return Parsed::Bad("Unsupported sequence set with $"),
    }
    let bytes = rewritten.as_deref().unwrap_or(message).to_vec();
    let codec_bytes = match extended::recognise(&bytes) {
        Some(extended::Extended::Bad(_, why)) => return Parsed::Bad(why),
        Some(extended::Extended::List(_)) => return Parsed::Extended,
        Some(extended::Extended::Search(_, rest)) => rest,
        Some(extended::Extended::StatusAppendLimit { rest, .. }) => rest,
        None => bytes,
    };
    match CommandCodec::default().decode(&codec_bytes) {
        Ok((_, c)) => Parsed::Command(Box::new(c.into_static())),
        Err(_) => Parsed::Bad("Syntax error in command"),
    }
}

/// Deep search criteria made shallow enough for the codec (see `nesting`);
/// `None` when nothing needed it or nothing could be done.
pub fn rebalance(message: &[u8]) -> Option<Vec<u8>> {
    nesting::rebalance(message)
}

/// A mailbox name in modified UTF-7 (RFC 3501 §5.1.3).
pub fn utf7_encode(name: &str) -> String {
    utf7::encode(name)
}

/// A mailbox name from modified UTF-7; `None` if not valid.
pub fn utf7_decode(wire: &[u8]) -> Option<String> {
    utf7::decode(wire)
}

/// ENVELOPE and BODYSTRUCTURE (`extended`) or BODY as FETCH sends them for
/// a stored message.
pub fn fetch_structure(raw: &[u8], extended: bool) -> (Vec<u8>, Vec<u8>) {
    let parsed = mime::parse(raw);
    let mut envelope = Vec::new();
    mime::envelope_or_nil(&mut envelope, parsed.as_ref());
    let mut body = Vec::new();
    mime::body_structure_or_default(&mut body, parsed.as_ref(), extended);
    (envelope, body)
}

/// The parts of a message: how many MIME parts the parser found (0 when
/// it cannot parse the message).
pub fn part_count(raw: &[u8]) -> usize {
    mime::parse(raw).map_or(0, |m| m.parts.len())
}

/// FETCH BINARY[path] (RFC 3516): the part with its transfer encoding
/// removed.
pub fn binary(raw: &[u8], path: &[u32]) -> Result<Vec<u8>, Undecodable> {
    match mime::parse(raw) {
        Some(m) => mime::binary(&m, path),
        None => Err(Undecodable::NoPart),
    }
}

/// BODY[path.HEADER] and BODY[path.TEXT] before any conversion: the raw
/// header block and body of a section; `None` if there is no such part.
pub fn section(raw: &[u8], path: &[u32]) -> Option<(Vec<u8>, Vec<u8>)> {
    let m = mime::parse(raw)?;
    let found = mime::find(&m, path)?;
    let message = &found.message.raw_message;
    Some((
        mime::part_header(message, found.part).to_vec(),
        mime::part_body(message, found.part).to_vec(),
    ))
}

/// BODY[HEADER.FIELDS (names)] and HEADER.FIELDS.NOT (`not`) of a header
/// block.
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    mime::header_fields(header, names, not)
}
