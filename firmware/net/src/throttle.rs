//! Log lines a client can cause at will (refused connections, failed TLS
//! handshakes) are counted and logged at most once a minute each, so a
//! flood cannot fill the log or the disk under it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one kind of event may reach the log.
const WINDOW: Duration = Duration::from_secs(60);

/// Counts one kind of event and says when the log may hear of it.
pub struct Throttle {
    state: Mutex<State>,
    window: Duration,
}

struct State {
    /// When the current window began; `None` before the first event.
    since: Option<Instant>,
    /// Events in the current window that were not logged.
    unlogged: u64,
    /// Events since the process started.
    total: u64,
}

/// What to do with one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `unlogged` earlier events were counted and not logged.
    Log { unlogged: u64 },
    /// Count it only.
    Quiet,
}

impl Throttle {
    /// One log line a minute.
    pub const fn new() -> Throttle {
        Throttle::every(WINDOW)
    }

    /// One log line per `window`.
    pub const fn every(window: Duration) -> Throttle {
        Throttle {
            state: Mutex::new(State {
                since: None,
                unlogged: 0,
                total: 0,
            }),
            window,
        }
    }

    /// Counts an event happening at `now`.
    pub fn event_at(&self, now: Instant) -> Verdict {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.total += 1;
        match s.since {
            Some(since) if now.duration_since(since) < self.window => {
                s.unlogged += 1;
                Verdict::Quiet
            }
            _ => {
                s.since = Some(now);
                Verdict::Log {
                    unlogged: std::mem::take(&mut s.unlogged),
                }
            }
        }
    }

    /// Counts an event happening now.
    pub fn event(&self) -> Verdict {
        self.event_at(Instant::now())
    }

    /// Events since the process started.
    pub fn total(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
}

/// Failed TLS handshakes on every service, by any client.
pub static TLS_FAILURES: Throttle = Throttle::new();

/// Logs a failed TLS handshake, at most once a minute with the count of
/// those not logged; the rest go to the debug log only.
pub fn tls_failed(service: &str, peer: std::net::SocketAddr, error: &dyn std::fmt::Display) {
    match TLS_FAILURES.event() {
        Verdict::Log { unlogged } => tracing::info!(
            service,
            %peer,
            error = %error,
            unlogged,
            "TLS handshake failed (such failures are logged once a minute; \
             `unlogged` counts those since the last line)"
        ),
        Verdict::Quiet => tracing::debug!(service, %peer, error = %error, "TLS handshake failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window_with_the_count_of_the_rest() {
        let t = Throttle::every(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(t.event_at(start), Verdict::Log { unlogged: 0 });
        for i in 1..=914 {
            assert_eq!(
                t.event_at(start + Duration::from_millis(i * 30)),
                Verdict::Quiet
            );
        }
        assert_eq!(
            t.event_at(start + Duration::from_secs(61)),
            Verdict::Log { unlogged: 914 }
        );
        assert_eq!(t.total(), 916);
    }
}
