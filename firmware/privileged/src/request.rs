//! The helper's protocol and its decisions, without I/O: a frame is a
//! 4-byte big-endian length and that many bytes of JSON; a request is one of
//! a fixed set, each checked here before anything is done.

use serde::{Deserialize, Serialize};

/// The largest frame either side accepts. Requests are a few dozen bytes.
pub const MAX_FRAME: usize = 4096;

/// The earliest time the helper sets: this binary's build time (see
/// `build.rs`). A clock before it is wrong by construction.
pub const EARLIEST_CLOCK: i64 = parse_epoch(env!("POCHTA_BUILD_EPOCH"));

/// The latest time the helper sets: 2100-01-01 UTC. Anything later is a bug
/// or an attack on certificate and TOTP checks, not a time.
pub const LATEST_CLOCK: i64 = 4_102_444_800;

const fn parse_epoch(text: &str) -> i64 {
    let bytes = text.as_bytes();
    let mut n: i64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        // build.rs writes decimal digits only.
        n = n * 10 + (bytes[i] - b'0') as i64;
        i += 1;
    }
    n
}

/// Everything the helper may be asked. Nothing else is accepted: a name
/// that is not here does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Set the system clock (`CLOCK_REALTIME`) to this time.
    SetClock {
        /// Seconds since the epoch.
        unix_secs: i64,
        /// Nanoseconds past `unix_secs`.
        nanos: u32,
    },
    /// Write the setup code's copy for people (`admin.setup_code_copy`,
    /// SETUP.TXT on the boot partition) with this text. The file is the one
    /// the helper was started with; the request cannot name another.
    WriteSetupCopy {
        /// The file's text: printable ASCII and line ends, at most
        /// [`MAX_SETUP_TEXT`] bytes.
        text: String,
    },
    /// Remove that copy (setup is done).
    RemoveSetupCopy,
}

/// The longest setup copy text the helper writes.
pub const MAX_SETUP_TEXT: usize = 1024;

/// The helper's answer to one frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// Done as asked.
    Done,
    /// Not done, and why (the helper logs the same reason).
    Refused { reason: String },
    /// Allowed, but the system call failed.
    Failed { error: String },
}

/// What a checked request asks the helper to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `clock_settime(CLOCK_REALTIME)` to this many seconds and nanoseconds.
    SetClock { unix_secs: i64, nanos: u32 },
    /// Write this text to the setup code's copy.
    WriteSetupCopy { text: String },
    /// Remove the setup code's copy.
    RemoveSetupCopy,
}

/// The bounds a request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The earliest clock the helper sets.
    pub earliest_clock: i64,
    /// The latest clock the helper sets.
    pub latest_clock: i64,
    /// Whether a setup copy file was given to the helper at its start.
    pub setup_copy: bool,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            earliest_clock: EARLIEST_CLOCK,
            latest_clock: LATEST_CLOCK,
            setup_copy: false,
        }
    }
}

/// Reads one frame's JSON into a checked action, or the reason it is refused.
pub fn decide(frame: &[u8], bounds: &Bounds) -> Result<Action, String> {
    let request: Request = serde_json::from_slice(frame)
        .map_err(|e| format!("not a request this helper knows: {e}"))?;
    check(&request, bounds)
}

/// Checks a parsed request against the bounds.
pub fn check(request: &Request, bounds: &Bounds) -> Result<Action, String> {
    match *request {
        Request::SetClock { unix_secs, nanos } => {
            if nanos >= 1_000_000_000 {
                return Err(format!("set_clock: nanos {nanos} is not below one second"));
            }
            if unix_secs < bounds.earliest_clock {
                return Err(format!(
                    "set_clock: {unix_secs} is before this build ({}); the clock is never set earlier",
                    bounds.earliest_clock
                ));
            }
            if unix_secs > bounds.latest_clock {
                return Err(format!(
                    "set_clock: {unix_secs} is after {}; not a plausible time",
                    bounds.latest_clock
                ));
            }
            Ok(Action::SetClock { unix_secs, nanos })
        }
        Request::WriteSetupCopy { ref text } => {
            if !bounds.setup_copy {
                return Err("write_setup_copy: no setup copy file was given to the helper".into());
            }
            if text.len() > MAX_SETUP_TEXT {
                return Err(format!(
                    "write_setup_copy: {} bytes is over {MAX_SETUP_TEXT}",
                    text.len()
                ));
            }
            if let Some(c) = text
                .chars()
                .find(|&c| !(c == ' ' || c == '\r' || c == '\n' || c.is_ascii_graphic()))
            {
                return Err(format!(
                    "write_setup_copy: the text holds {c:?}, not printable ASCII"
                ));
            }
            Ok(Action::WriteSetupCopy { text: text.clone() })
        }
        Request::RemoveSetupCopy => {
            if !bounds.setup_copy {
                return Err("remove_setup_copy: no setup copy file was given to the helper".into());
            }
            Ok(Action::RemoveSetupCopy)
        }
    }
}

/// The length prefix of a frame of `len` bytes, or why it cannot be sent.
pub fn frame_header(len: usize) -> Result<[u8; 4], String> {
    if len > MAX_FRAME {
        return Err(format!("a frame of {len} bytes is over {MAX_FRAME}"));
    }
    Ok((len as u32).to_be_bytes())
}

/// The length a received prefix announces, or why the frame is refused.
pub fn frame_len(header: [u8; 4]) -> Result<usize, String> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(format!(
            "a frame of {len} bytes is over {MAX_FRAME}; closing"
        ));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        earliest_clock: 1_700_000_000,
        latest_clock: LATEST_CLOCK,
        setup_copy: false,
    };

    #[test]
    fn the_setup_copy_only_when_given_and_only_plain_text() {
        let given = Bounds {
            setup_copy: true,
            ..BOUNDS
        };
        let write = br#"{"request":"write_setup_copy","text":"Pochta setup code: 7K3M-Q9XD\r\n"}"#;
        assert_eq!(
            decide(write, &given),
            Ok(Action::WriteSetupCopy {
                text: "Pochta setup code: 7K3M-Q9XD\r\n".into()
            })
        );
        assert!(decide(write, &BOUNDS)
            .unwrap_err()
            .contains("no setup copy file"));
        let remove = br#"{"request":"remove_setup_copy"}"#;
        assert_eq!(decide(remove, &given), Ok(Action::RemoveSetupCopy));
        assert!(decide(remove, &BOUNDS).is_err());
        for (frame, why) in [
            (
                br#"{"request":"write_setup_copy","text":"a\u0000b"}"#.to_vec(),
                "not printable ASCII",
            ),
            (
                br#"{"request":"write_setup_copy","text":"caf\u00e9"}"#.to_vec(),
                "not printable ASCII",
            ),
            (
                format!(
                    r#"{{"request":"write_setup_copy","text":"{}"}}"#,
                    "x".repeat(1025)
                )
                .into_bytes(),
                "over 1024",
            ),
            (
                br#"{"request":"write_setup_copy","text":"x","path":"/etc/passwd"}"#.to_vec(),
                "not a request this helper knows",
            ),
        ] {
            let refused = decide(&frame, &given).unwrap_err();
            assert!(refused.contains(why), "{refused}");
        }
    }

    #[test]
    fn a_clock_within_bounds_is_set() {
        let frame = br#"{"request":"set_clock","unix_secs":1800000000,"nanos":5}"#;
        assert_eq!(
            decide(frame, &BOUNDS),
            Ok(Action::SetClock {
                unix_secs: 1_800_000_000,
                nanos: 5
            })
        );
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"request":"set_clock","unix_secs":1000,"nanos":0}"#,
                "before this build",
            ),
            (
                br#"{"request":"set_clock","unix_secs":-5,"nanos":0}"#,
                "before this build",
            ),
            (
                br#"{"request":"set_clock","unix_secs":9999999999,"nanos":0}"#,
                "not a plausible time",
            ),
            (
                br#"{"request":"set_clock","unix_secs":1800000000,"nanos":1000000000}"#,
                "not below one second",
            ),
            (
                br#"{"request":"mount","device":"/dev/sda1","on":"/"}"#,
                "not a request this helper knows",
            ),
            (
                br#"{"request":"set_clock","unix_secs":1800000000,"nanos":0,"also":"rm"}"#,
                "not a request this helper knows",
            ),
            (
                br#"{"request":"set_clock"}"#,
                "not a request this helper knows",
            ),
            (b"set_clock 1800000000", "not a request this helper knows"),
            (b"", "not a request this helper knows"),
            (&[0xff, 0xfe, 0x00], "not a request this helper knows"),
        ];
        for (frame, why) in cases {
            let refused = decide(frame, &BOUNDS).expect_err(&String::from_utf8_lossy(frame));
            assert!(refused.contains(why), "{refused:?} for {frame:?}");
        }
    }

    #[test]
    fn the_build_time_is_a_floor_in_the_past() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(EARLIEST_CLOCK > 1_700_000_000 && EARLIEST_CLOCK <= now);
    }

    #[test]
    fn frames_are_bounded() {
        assert_eq!(frame_header(3), Ok([0, 0, 0, 3]));
        assert!(frame_header(MAX_FRAME + 1).is_err());
        assert_eq!(frame_len([0, 0, 1, 0]), Ok(256));
        assert!(frame_len([0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn answers_read_back() {
        for a in [
            Answer::Done,
            Answer::Refused {
                reason: "no".into(),
            },
            Answer::Failed {
                error: "EPERM".into(),
            },
        ] {
            let text = serde_json::to_vec(&a).unwrap();
            assert_eq!(serde_json::from_slice::<Answer>(&text).unwrap(), a);
        }
    }
}
