//! The BDAT decoder (smtp::data::BdatDecoder): any chunking gives the same
//! message; the message has CRLF line endings only and is the input with
//! bare CR and LF made CRLF; the size limit bounds what comes out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_smtp::data::{BdatDecoder, DataError, DataLimits};

fn decode(chunks: &[&[u8]], limits: DataLimits) -> (Vec<u8>, Option<DataError>, bool) {
    let mut d = BdatDecoder::new(limits);
    let mut out = Vec::new();
    for c in chunks {
        d.decode(c, &mut out);
    }
    d.finish(&mut out);
    (out, d.error(), d.normalised())
}

fuzz_target!(|data: &[u8]| {
    let (limit, cuts, input) = match data {
        [l, c, rest @ ..] => (u64::from(*l) * 16 + 1, *c, rest),
        _ => return,
    };
    let unlimited = DataLimits {
        max_message_bytes: u64::MAX,
        max_line_bytes: None,
    };
    let (message, error, normalised) = decode(&[input], unlimited);
    assert_eq!(error, None);
    assert!(message.len() <= 2 * input.len());
    for (i, &b) in message.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR kept");
        }
        if b == b'\n' {
            assert!(i > 0 && message[i - 1] == b'\r', "bare LF kept");
        }
    }
    // Verbatim when there was nothing to mend.
    assert_eq!(message == input, !normalised);
    // Text between line endings is the input's, in order.
    let strip = |b: &[u8]| -> Vec<u8> {
        b.iter()
            .copied()
            .filter(|&c| c != b'\r' && c != b'\n')
            .collect()
    };
    assert_eq!(strip(&message), strip(input));
    // Chunk boundaries anywhere: between a CR and its LF too.
    let step = usize::from(cuts % 13) + 1;
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    assert_eq!(
        decode(&chunks, unlimited),
        (message.clone(), None, normalised)
    );
    let limited = DataLimits {
        max_message_bytes: limit,
        max_line_bytes: None,
    };
    let (cut, error, _) = decode(&chunks, limited);
    if message.len() as u64 > limit {
        assert!(matches!(error, Some(DataError::TooBig { .. })));
        assert_eq!(cut, message[..limit as usize]);
    } else {
        assert_eq!(cut, message);
        assert_eq!(error, None);
    }
});
