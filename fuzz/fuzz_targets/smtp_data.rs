//! The DATA decoder (smtp::data::DotDecoder), differentially: the same
//! result for any chunking; the data ends only at the first CRLF.CRLF; the
//! output is bounded; and the encoder's form of the output decodes back to
//! it, ending exactly at its end (nothing can be smuggled to a next hop).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp::data::{DataLimits, DotDecoder, DotEncoder, Status};

#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    message: Vec<u8>,
    consumed: usize,
    ended: bool,
    error: Option<pochta_smtp::data::DataError>,
}

fn decode(chunks: &[&[u8]], limits: DataLimits) -> Decoded {
    let mut d = DotDecoder::new(limits);
    let mut message = Vec::new();
    let mut consumed = 0;
    for c in chunks {
        let p = d.decode(c, &mut message);
        assert!(p.consumed <= c.len());
        assert!(message.len() <= consumed + p.consumed, "more out than in");
        if p.status == Status::Incomplete {
            assert_eq!(p.consumed, c.len());
        }
        consumed += p.consumed;
        if p.status == Status::End {
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

/// Where the first CRLF.CRLF ends, the start of the data counting as a
/// line start.
fn first_end(input: &[u8]) -> Option<usize> {
    if input.starts_with(b".\r\n") {
        return Some(3);
    }
    input
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|i| i + 5)
}

fuzz_target!(|data: &[u8]| {
    // First byte: the size limit (small, to reach it), second: chunking.
    let (limit, cuts, input) = match data {
        [l, c, rest @ ..] => (u64::from(*l) * 8 + 1, *c, rest),
        _ => return,
    };
    let limits = DataLimits {
        max_message_bytes: limit,
        max_line_bytes: None,
    };
    let whole = decode(&[input], limits);
    match first_end(input) {
        Some(end) => {
            assert!(whole.ended);
            assert_eq!(
                whole.consumed, end,
                "ended somewhere but at the first CRLF.CRLF"
            );
        }
        None => {
            assert!(!whole.ended, "ended without CRLF.CRLF");
            assert_eq!(whole.consumed, input.len());
        }
    }
    assert!(whole.message.len() as u64 <= limit);
    // Chunkings: a fixed step from the second byte, and byte by byte.
    let step = usize::from(cuts % 17) + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    assert_eq!(decode(&chunks, limits), whole, "step {step}");
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode(&bytes, limits), whole, "byte by byte");
    // A clean message sent on: one message, ours, to the byte.
    if whole.ended && whole.error.is_none() {
        let mut wire = Vec::new();
        let mut e = DotEncoder::default();
        e.push(&whole.message, &mut wire);
        e.finish(&mut wire);
        let unlimited = DataLimits {
            max_message_bytes: u64::MAX,
            max_line_bytes: None,
        };
        let back = decode(&[&wire], unlimited);
        assert_eq!(back.consumed, wire.len());
        assert_eq!(back.message, whole.message);
        assert_eq!(back.error, None);
    }
    // Whatever bytes are stored, the encoder sends one message without a
    // bare CR or LF that ends exactly where the encoder ended it.
    let mut wire = Vec::new();
    let mut e = DotEncoder::default();
    for c in input.chunks(step) {
        e.push(c, &mut wire);
    }
    e.finish(&mut wire);
    assert_eq!(
        first_end(&wire),
        Some(wire.len()),
        "a next hop would end early"
    );
    for (i, &b) in wire.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(wire.get(i + 1), Some(&b'\n'), "bare CR sent");
        }
        if b == b'\n' {
            assert!(i > 0 && wire[i - 1] == b'\r', "bare LF sent");
        }
    }
});
