//! The decoders and the encoder against RFC 5321 §4.5.2 and the SMTP
//! smuggling endings, each input also split at every byte boundary.

use super::*;

const LIMITS: DataLimits = DataLimits {
    max_message_bytes: 1 << 20,
    max_line_bytes: None,
};

/// What a whole DATA input decodes to.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    message: Vec<u8>,
    consumed: usize,
    ended: bool,
    error: Option<DataError>,
}

fn decode_chunks(chunks: &[&[u8]], limits: DataLimits) -> Decoded {
    let mut d = DotDecoder::new(limits);
    let mut message = Vec::new();
    let mut consumed = 0;
    for c in chunks {
        let p = d.decode(c, &mut message);
        assert!(p.consumed <= c.len());
        assert_eq!(p.status == Status::End, d.is_ended());
        if p.status == Status::Incomplete {
            assert_eq!(
                p.consumed,
                c.len(),
                "an unfinished decoder takes every byte"
            );
        }
        consumed += p.consumed;
        if d.is_ended() {
            break;
        }
    }
    Decoded {
        message,
        consumed,
        ended: d.is_ended(),
        error: d.error(),
    }
}

/// Decodes `input` whole, then split at every boundary (and every pair of
/// boundaries for short inputs); all must agree.
fn decode(input: &[u8]) -> Decoded {
    decode_with(input, LIMITS)
}

fn decode_with(input: &[u8], limits: DataLimits) -> Decoded {
    let whole = decode_chunks(&[input], limits);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(
            decode_chunks(&[a, b], limits),
            whole,
            "split at {i}: {input:?}"
        );
        if input.len() <= 24 {
            for j in i..=input.len() {
                let chunks = [&input[..i], &input[i..j], &input[j..]];
                assert_eq!(decode_chunks(&chunks, limits), whole, "split at {i}, {j}");
            }
        }
    }
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_chunks(&bytewise, limits), whole, "byte by byte");
    whole
}

fn ended(message: &[u8], consumed: usize) -> Decoded {
    Decoded {
        message: message.to_vec(),
        consumed,
        ended: true,
        error: None,
    }
}

#[test]
fn rfc5321_end_of_data() {
    // §4.1.1.4: the data ends with a line holding only a period.
    assert_eq!(decode(b"Hello\r\n.\r\n"), ended(b"Hello\r\n", 10));
    assert_eq!(decode(b".\r\n"), ended(b"", 3), "an empty message");
    assert_eq!(decode(b"\r\n.\r\n"), ended(b"\r\n", 5));
    // The bytes after the end are the next command, not taken.
    let d = decode(b"a\r\n.\r\nQUIT\r\n");
    assert_eq!(d, ended(b"a\r\n", 6));
}

#[test]
fn rfc5321_transparency() {
    // §4.5.2: a line starting with a period had one added; remove it.
    assert_eq!(decode(b"..\r\n.\r\n"), ended(b".\r\n", 7));
    assert_eq!(decode(b"..hidden\r\n.\r\n"), ended(b".hidden\r\n", 13));
    assert_eq!(decode(b"a\r\n...\r\n.\r\n"), ended(b"a\r\n..\r\n", 11));
    // A client that forgot to double the dot: the dot is dropped as the
    // RFC says, the line is kept.
    assert_eq!(decode(b".x\r\n.\r\n"), ended(b"x\r\n", 7));
    // Dots elsewhere are plain text.
    assert_eq!(decode(b"a.b\r\n a.\r\n.\r\n"), ended(b"a.b\r\n a.\r\n", 13));
}

#[test]
fn only_crlf_dot_crlf_ends_data() {
    // SMTP smuggling: each of these lookalikes, then a second
    // transaction, then the real end.
    let endings: [(&[u8], DataError); 5] = [
        (b"\n.\n", DataError::BareLf),
        (b"\n.\r\n", DataError::BareLf),
        (b"\r\n.\n", DataError::BareLf),
        (b"\r.\r\n", DataError::BareCr),
        (b"\r.\r", DataError::BareCr),
    ];
    for (ending, error) in endings {
        let mut input = b"hello".to_vec();
        input.extend_from_slice(ending);
        input.extend_from_slice(b"MAIL FROM:<x@y>\r\nDATA\r\nevil\r\n.\r\n");
        let d = decode(&input);
        assert!(d.ended, "{ending:?}");
        assert_eq!(d.consumed, input.len(), "{ending:?} ended the data early");
        assert_eq!(d.error, Some(error), "{ending:?}");
        assert!(d.message.ends_with(b"MAIL FROM:<x@y>\r\nDATA\r\nevil\r\n"));
        // And without the real end, the data goes on.
        let open = decode(&input[..5 + ending.len()]);
        assert!(!open.ended, "{ending:?}");
    }
}

#[test]
fn bare_line_endings_are_reported_and_kept() {
    let d = decode(b"a\nb\r\n.\r\n");
    assert_eq!(d.error, Some(DataError::BareLf));
    assert_eq!(d.message, b"a\nb\r\n");
    let d = decode(b"a\rb\r\n.\r\n");
    assert_eq!(d.error, Some(DataError::BareCr));
    assert_eq!(d.message, b"a\rb\r\n");
    // `.CR` then not LF: the stuffed dot goes, the bare CR stays.
    let d = decode(b".\rx\r\n.\r\n");
    assert_eq!(d.error, Some(DataError::BareCr));
    assert_eq!(d.message, b"\rx\r\n");
    // CR CR LF: the first CR is bare.
    let d = decode(b"a\r\r\n.\r\n");
    assert_eq!(
        (d.error, d.message),
        (Some(DataError::BareCr), b"a\r\r\n".to_vec())
    );
    // Both: the bare LF is reported (the session refuses either way).
    let d = decode(b"a\rb\nc\r\n.\r\n");
    assert_eq!(d.error, Some(DataError::BareLf));
}

#[test]
fn too_big_stops_output_and_reads_on() {
    let limits = DataLimits {
        max_message_bytes: 8,
        max_line_bytes: None,
    };
    let d = decode_with(b"12345\r\n\r\n6789\r\n.\r\nNOOP\r\n", limits);
    assert!(d.ended);
    assert_eq!(d.consumed, 18);
    assert_eq!(d.error, Some(DataError::TooBig { limit: 8 }));
    assert_eq!(d.message, b"12345\r\n\r");
    // Exactly at the limit is fine.
    let d = decode_with(b"123456\r\n.\r\n", limits);
    assert_eq!(d, ended(b"123456\r\n", 11));
    // The size outranks a bare LF.
    let d = decode_with(b"1\n234567890\r\n.\r\n", limits);
    assert_eq!(d.error, Some(DataError::TooBig { limit: 8 }));
}

#[test]
fn long_lines() {
    let limits = DataLimits {
        max_message_bytes: 1 << 20,
        max_line_bytes: Some(6),
    };
    // Six bytes on the wire, the stuffed dot and the CRLF counted.
    assert_eq!(decode_with(b"..ab\r\n.\r\n", limits), ended(b".ab\r\n", 9));
    let d = decode_with(b"abcde\r\n.\r\n", limits);
    assert_eq!(d.error, Some(DataError::LineTooLong { limit: 6 }));
    assert!(d.ended);
    assert_eq!(d.message, b"abcde\r\n");
}

#[test]
fn nothing_after_the_end() {
    let mut d = DotDecoder::new(LIMITS);
    let mut out = Vec::new();
    assert_eq!(d.decode(b".\r\n", &mut out).status, Status::End);
    let p = d.decode(b"more", &mut out);
    assert_eq!((p.consumed, p.status), (0, Status::End));
    assert!(out.is_empty());
}

#[test]
fn lines_are_counted() {
    let mut d = DotDecoder::new(LIMITS);
    let mut out = Vec::new();
    assert_eq!(d.decode(b"a\r\nb\r", &mut out).lines, 1);
    assert_eq!(d.decode(b"\n.\r\n", &mut out).lines, 2);
}

/// BDAT chunks decoded in the given pieces, then finished.
fn bdat(chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut d = BdatDecoder::new(LIMITS);
    let mut out = Vec::new();
    for c in chunks {
        d.decode(c, &mut out);
    }
    d.finish(&mut out);
    assert_eq!(d.message_bytes(), out.len() as u64);
    (out, d.normalised())
}

fn bdat_all_splits(input: &[u8]) -> (Vec<u8>, bool) {
    let whole = bdat(&[input]);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(bdat(&[a, b]), whole, "split at {i}");
    }
    whole
}

#[test]
fn bdat_is_verbatim_but_for_bare_line_endings() {
    // RFC 3030: no dot-stuffing, no end marker.
    let msg = b"a\r\n.\r\n..b\r\n.c\r\n";
    assert_eq!(bdat_all_splits(msg), (msg.to_vec(), false));
    assert_eq!(bdat_all_splits(b""), (b"".to_vec(), false));
    // RFC 5321 §2.3.8: bare CR and bare LF become CRLF.
    for (input, want) in [
        (&b"a\nb"[..], &b"a\r\nb"[..]),
        (b"a\rb", b"a\r\nb"),
        (b"a\r", b"a\r\n"),
        (b"\r\r\n", b"\r\n\r\n"),
        (b"\n\r", b"\r\n\r\n"),
        (b"hello\r.\r\nMAIL", b"hello\r\n.\r\nMAIL"),
    ] {
        assert_eq!(bdat_all_splits(input), (want.to_vec(), true), "{input:?}");
    }
}

#[test]
fn bdat_limits() {
    let limits = DataLimits {
        max_message_bytes: 4,
        max_line_bytes: Some(3),
    };
    let mut d = BdatDecoder::new(limits);
    let mut out = Vec::new();
    d.decode(b"ab\n", &mut out);
    // The LF became CRLF: four bytes on a line of three.
    assert_eq!(d.error(), Some(DataError::LineTooLong { limit: 3 }));
    d.decode(b"c", &mut out);
    assert_eq!(d.error(), Some(DataError::TooBig { limit: 4 }));
    assert_eq!(out, b"ab\r\n");
}

fn encode(chunks: &[&[u8]]) -> Vec<u8> {
    let mut e = DotEncoder::default();
    let mut out = Vec::new();
    for c in chunks {
        e.push(c, &mut out);
    }
    e.finish(&mut out);
    out
}

#[test]
fn encoder_stuffs_dots_across_chunks() {
    assert_eq!(encode(&[b"a\r\n.b\r\n"]), b"a\r\n..b\r\n.\r\n");
    assert_eq!(encode(&[b"a\r\n", b".\r\n"]), b"a\r\n..\r\n.\r\n");
    assert_eq!(encode(&[b".x"]), b"..x\r\n.\r\n");
    assert_eq!(encode(&[b"a\nb"]), b"a\r\nb\r\n.\r\n");
    assert_eq!(encode(&[b"a\r", b"\nb\r\n"]), b"a\r\nb\r\n.\r\n");
    assert_eq!(encode(&[]), b".\r\n");
}

#[test]
fn encoder_never_sends_a_bare_line_ending() {
    // The probe's case: `CR.CRLF` in a stored message went out as it was.
    for (input, want) in [
        (
            &b"hello\r.\r\nMAIL"[..],
            &b"hello\r\n..\r\nMAIL\r\n.\r\n"[..],
        ),
        (b"hello\n.\nMAIL", b"hello\r\n..\r\nMAIL\r\n.\r\n"),
        (b"hello\r\n.\nMAIL", b"hello\r\n..\r\nMAIL\r\n.\r\n"),
        (b"hello\n.\r\nMAIL", b"hello\r\n..\r\nMAIL\r\n.\r\n"),
        (b"hello\r.\r", b"hello\r\n..\r\n.\r\n"),
        (b"a\r", b"a\r\n.\r\n"),
    ] {
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(encode(&[a, b]), want, "{input:?} split at {i}");
        }
    }
}

#[test]
fn encoded_messages_decode_to_themselves() {
    // Whatever is stored, the next hop reads one message: ours, with CRLF
    // line endings, ending exactly where the encoder ended it.
    let cases: [&[u8]; 7] = [
        b"",
        b"a",
        b".\r\n",
        b"x\r\n.\r\nMAIL FROM:<a@b>\r\n",
        b"\r.\r\n\n.\n\r\n.\n",
        b"..\r\n...\r\n.",
        b"a\r\r\r\n\n\n.",
    ];
    for message in cases {
        let wire = encode(&[message]);
        let d = decode(&wire);
        assert_eq!(
            (d.ended, d.consumed, d.error),
            (true, wire.len(), None),
            "{message:?}"
        );
        let (mut normalised, _) = bdat(&[message]);
        if !normalised.is_empty() && !normalised.ends_with(b"\r\n") {
            normalised.extend_from_slice(b"\r\n");
        }
        assert_eq!(d.message, normalised, "{message:?}");
    }
}
