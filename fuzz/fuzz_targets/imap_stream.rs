//! A client's byte stream framed into command messages by imap-codec's
//! fragmentizer, as the session sets it up, then each message parsed as in
//! `imap_command`. The framing must not depend on how the bytes arrived.
#![no_main]

use imap_codec::fragmentizer::Fragmentizer;
use libfuzzer_sys::fuzz_target;
use pochta_imap::parsers;

/// Small, so that the fuzzer reaches the size limit.
const MAX_MESSAGE: u32 = 2048;

/// Complete messages (bytes, too long, poisoned) in the order framed.
fn frame(chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool, bool)> {
    let mut frag = Fragmentizer::new(MAX_MESSAGE);
    let mut messages = Vec::new();
    for c in chunks {
        frag.enqueue_bytes(c);
        while frag.progress().is_some() {
            if frag.is_message_complete() {
                messages.push((
                    frag.message_bytes().to_vec(),
                    frag.is_max_message_size_exceeded(),
                    frag.is_message_poisoned(),
                ));
            }
        }
    }
    messages
}

fuzz_target!(|data: &[u8]| {
    let (step, input) = match data {
        [s, rest @ ..] => (usize::from(*s % 31) + 1, rest),
        _ => return,
    };
    let whole = frame(&[input]);
    let chunks: Vec<&[u8]> = input.chunks(step).collect();
    assert_eq!(
        frame(&chunks),
        whole,
        "framing depends on chunking (step {step})"
    );
    for (message, too_long, poisoned) in &whole {
        if !too_long && !poisoned {
            assert!(message.len() <= MAX_MESSAGE as usize);
            let mut rewritten = None;
            let _ = parsers::command(message, &mut rewritten);
        }
    }
});
