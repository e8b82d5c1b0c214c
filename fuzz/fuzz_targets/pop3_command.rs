//! POP3 command lines (pop3::parse) and the RETR/TOP transfer
//! (pop3::transfer) of a stored message: a parsed command's arguments are
//! on the line, and a transfer, read back as a multi-line response (the
//! SMTP DATA decoder reads the same format), ends exactly at its end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pochta_pop3::parse::{parse, Command};
use pochta_pop3::transfer::{Progress, Transfer};
use pochta_smtp::data::{DataError, DataLimits, DotDecoder, Status};

fn transfer(mut t: Transfer, message: &[u8], step: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in message.chunks(step) {
        if t.feed(c, &mut out) == Progress::Done {
            break;
        }
    }
    t.finish(&mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    let (selector, input) = match data {
        [s, rest @ ..] => (*s, rest),
        _ => return,
    };
    for line in input.split_inclusive(|&b| b == b'\n') {
        if let Ok(command) = parse(line) {
            let text = String::from_utf8_lossy(line);
            let upper = text.to_ascii_uppercase();
            assert!(
                upper.starts_with(command.name()),
                "{command:?} from {text:?}"
            );
            match &command {
                Command::User(s) | Command::Pass(s) => {
                    assert!(!s.is_empty() && !s.contains(['\r', '\n', '\0']));
                }
                Command::Retr(n) | Command::Dele(n) | Command::Top { message: n, .. } => {
                    assert!(n.get() >= 1);
                }
                _ => {}
            }
        }
    }
    // The input as a stored message.
    let step = usize::from(selector % 7) + 1;
    let make = || {
        if selector & 0x80 == 0 {
            Transfer::whole()
        } else {
            Transfer::top(u32::from(selector % 5))
        }
    };
    let wire = transfer(make(), input, step);
    assert_eq!(
        wire,
        transfer(make(), input, input.len().max(1)),
        "chunking"
    );
    let mut d = DotDecoder::new(DataLimits {
        max_message_bytes: u64::MAX,
        max_line_bytes: None,
    });
    let mut body = Vec::new();
    let p = d.decode(&wire, &mut body);
    assert_eq!(p.status, Status::End, "the response never ends");
    assert_eq!(p.consumed, wire.len(), "the response ends early");
    assert_ne!(d.error(), Some(DataError::BareLf), "bare LF sent");
});
