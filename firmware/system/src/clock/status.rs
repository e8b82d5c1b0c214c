//! What the clock part knows, and what it decides from that, without I/O:
//! whether the clock can be trusted, what the health page says, when to
//! ask again, whether to step, and whether a saved time moves the clock
//! at boot. The shell (`super`) measures and acts.

use std::time::Duration;

use serde::Serialize;

use crate::health::Finding;

/// Larger offsets are corrected by stepping the clock (when allowed).
/// Smaller ones are left: the next poll measures them again, and a Pi's
/// crystal drifts by well under this between polls.
pub const STEP_THRESHOLD_SECS: f64 = 0.5;
/// Larger offsets make the clock untrusted: TOTP codes (30 s steps) and
/// certificate dates start to be affected long after, but a second is
/// already more than any working time server would leave.
pub const TRUST_THRESHOLD_SECS: f64 = 1.0;
/// A sync older than this no longer vouches for the clock.
pub const STALE_SECS: i64 = 3 * 3600;
/// Poll interval once synchronised: 2^10 s, NTP's usual maximum poll
/// (RFC 5905 §7.3, MAXPOLL 17 is the ceiling; 10 is the common default).
pub const SYNCED_POLL: Duration = Duration::from_secs(1024);
/// Poll intervals while unsynchronised: soon after the first try, then
/// every 64 s (RFC 5905 MINPOLL 6). Never below 15 s (RFC 4330 §10).
pub const UNSYNCED_POLLS: [Duration; 3] = [
    Duration::from_secs(16),
    Duration::from_secs(32),
    Duration::from_secs(64),
];

/// One good answer from a time server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sync {
    /// The server as configured (`0.pool.ntp.org`, `127.0.0.1:1123`).
    pub server: String,
    /// Server time minus ours, in seconds, as measured (RFC 5905 §8:
    /// θ = ((T2 − T1) + (T3 − T4)) / 2), and left after any step.
    pub offset_secs: f64,
    /// Round-trip delay, in seconds (δ = (T4 − T1) − (T3 − T2)).
    pub delay_secs: f64,
    /// When it was measured (seconds since the epoch, after any step).
    pub at: i64,
}

/// The clock as the health page and the dashboard see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClockStatus {
    /// Any time servers configured (`[system] ntp`)?
    pub servers: bool,
    /// May pochta set the clock (`[system] set_clock`)?
    pub set_clock: bool,
    /// The latest good answer.
    pub last_sync: Option<Sync>,
    /// Why the latest poll got no good answer; `None` when it did.
    pub last_failure: Option<String>,
    /// Why the latest step of the clock was refused; `None` when it was
    /// not refused (or none was needed).
    pub step_refused: Option<String>,
}

impl ClockStatus {
    /// Can times on this box be believed (TOTP codes, certificate
    /// dates)? With no servers configured the box does not judge: the
    /// clock is someone else's job (a development machine's own NTP).
    pub fn trusted(&self, now: i64) -> bool {
        if !self.servers {
            return true;
        }
        match &self.last_sync {
            Some(s) => now - s.at < STALE_SECS && s.offset_secs.abs() <= TRUST_THRESHOLD_SECS,
            None => false,
        }
    }

    /// The health page's line about the clock.
    pub fn finding(&self, now: i64) -> Finding {
        if !self.servers {
            return Finding::ok("Not checked: no time servers configured");
        }
        let Some(sync) = &self.last_sync else {
            let why = match &self.last_failure {
                Some(why) => format!(" ({why})"),
                None => String::new(),
            };
            return Finding::warning(
                format!("The clock has not been set from a time server yet (offset unknown){why}"),
                "Check that the box reaches the internet (UDP port 123) or set [system] ntp to a time server on your network",
            );
        };
        let offset = format_offset(sync.offset_secs);
        if sync.offset_secs.abs() > TRUST_THRESHOLD_SECS {
            return match (&self.step_refused, self.set_clock) {
                (Some(why), _) => Finding::warning(
                    format!(
                        "The clock is off by {offset} from {} and could not be set: {why}",
                        sync.server
                    ),
                    "Run pochta as root or with CAP_SYS_TIME (the appliance does), or set the time by hand",
                ),
                (None, false) => Finding::warning(
                    format!(
                        "The clock is off by {offset} from {}; pochta may not set it (set_clock is off)",
                        sync.server
                    ),
                    "Set this machine's time, or turn on [system] set_clock",
                ),
                (None, true) => Finding::warning(
                    format!("The clock is off by {offset} from {}", sync.server),
                    "Wait for the next check; if it stays, look at the log",
                ),
            };
        }
        let age = now - sync.at;
        if age >= STALE_SECS {
            let why = match &self.last_failure {
                Some(why) => format!(": {why}"),
                None => String::new(),
            };
            return Finding::warning(
                format!(
                    "Last synchronised with {} {} ago; no time server has answered since{why}",
                    sync.server,
                    pochta_config::format_duration(age)
                ),
                "Check that the box reaches the internet (UDP port 123) or set [system] ntp to a time server on your network",
            );
        }
        Finding::ok(format!(
            "Synchronised with {}, offset {offset}",
            sync.server
        ))
    }
}

/// `+0.012 s`, `-3600.0 s`: the sign always shown.
pub fn format_offset(secs: f64) -> String {
    if secs.abs() < 10.0 {
        format!("{secs:+.3} s")
    } else {
        format!("{secs:+.1} s")
    }
}

/// Is an offset worth stepping the clock for?
pub fn needs_step(offset_secs: f64) -> bool {
    offset_secs.abs() > STEP_THRESHOLD_SECS
}

/// How long to wait before the next poll: `failures` polls in a row have
/// found no good answer (0 after a good one).
pub fn next_poll(synced: bool, failures: usize) -> Duration {
    if synced {
        return SYNCED_POLL;
    }
    let i = failures.saturating_sub(1).min(UNSYNCED_POLLS.len() - 1);
    UNSYNCED_POLLS[i]
}

/// At boot: the time to set the clock to, when the saved last good time
/// is later than the clock (a box without a battery-backed clock wakes up
/// at its image's build date or at 1970). Never backwards.
pub fn restore_target(now: i64, saved: i64) -> Option<i64> {
    (saved > now).then_some(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;

    fn synced(offset_secs: f64, at: i64) -> ClockStatus {
        ClockStatus {
            servers: true,
            set_clock: true,
            last_sync: Some(Sync {
                server: "ntp.test".into(),
                offset_secs,
                delay_secs: 0.001,
                at,
            }),
            last_failure: None,
            step_refused: None,
        }
    }

    #[test]
    fn no_servers_is_ok_and_trusted() {
        let s = ClockStatus::default();
        assert!(s.trusted(0));
        let f = s.finding(0);
        assert_eq!(f.state, State::Ok);
        assert_eq!(f.reason, "Not checked: no time servers configured");
    }

    #[test]
    fn unsynchronised_is_a_warning_with_the_cause() {
        let s = ClockStatus {
            servers: true,
            last_failure: Some("no answer from 127.0.0.1:9 within 2 s".into()),
            ..ClockStatus::default()
        };
        assert!(!s.trusted(100));
        let f = s.finding(100);
        assert_eq!(f.state, State::Warning);
        assert!(
            f.reason.starts_with(
                "The clock has not been set from a time server yet (offset unknown) (no answer"
            ),
            "{}",
            f.reason
        );
        assert!(!f.fix.is_empty());
    }

    #[test]
    fn synchronised_says_with_whom_and_the_offset() {
        let s = synced(0.012, 1000);
        assert!(s.trusted(1000));
        let f = s.finding(1000);
        assert_eq!(f.state, State::Ok);
        assert_eq!(f.reason, "Synchronised with ntp.test, offset +0.012 s");
    }

    #[test]
    fn an_old_sync_is_a_warning_and_untrusted() {
        let s = synced(0.0, 1000);
        let later = 1000 + STALE_SECS;
        assert!(!s.trusted(later));
        let f = s.finding(later);
        assert_eq!(f.state, State::Warning);
        assert!(
            f.reason.starts_with("Last synchronised with ntp.test 3"),
            "{}",
            f.reason
        );
    }

    #[test]
    fn a_skew_that_may_not_be_corrected_is_a_warning_with_the_skew() {
        let mut s = synced(3600.25, 1000);
        s.set_clock = false;
        assert!(!s.trusted(1000));
        let f = s.finding(1000);
        assert_eq!(f.state, State::Warning);
        assert_eq!(
            f.reason,
            "The clock is off by +3600.2 s from ntp.test; pochta may not set it (set_clock is off)"
        );
        s.set_clock = true;
        s.step_refused = Some("Operation not permitted".into());
        assert!(s
            .finding(1000)
            .reason
            .ends_with("could not be set: Operation not permitted"));
        assert!(s.finding(1000).fix.contains("CAP_SYS_TIME"));
    }

    #[test]
    fn offsets_read_with_a_sign() {
        assert_eq!(format_offset(0.0123), "+0.012 s");
        assert_eq!(format_offset(-0.5), "-0.500 s");
        assert_eq!(format_offset(-3600.04), "-3600.0 s");
    }

    #[test]
    fn steps_only_past_half_a_second() {
        assert!(!needs_step(0.5));
        assert!(!needs_step(-0.2));
        assert!(needs_step(0.51));
        assert!(needs_step(-3600.0));
    }

    #[test]
    fn polls_back_off_to_64_s_and_rest_once_synced() {
        let polls: Vec<u64> = (1..=5).map(|n| next_poll(false, n).as_secs()).collect();
        assert_eq!(polls, [16, 32, 64, 64, 64]);
        assert!(
            polls.iter().all(|&p| p >= 15),
            "RFC 4330 §10: at least 15 s"
        );
        assert_eq!(next_poll(true, 0), SYNCED_POLL);
    }

    #[test]
    fn restore_only_moves_the_clock_forward() {
        assert_eq!(restore_target(1_000, 2_000), Some(2_000));
        assert_eq!(restore_target(2_000, 1_000), None);
        assert_eq!(restore_target(2_000, 2_000), None);
    }
}
