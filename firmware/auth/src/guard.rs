//! Per-address failed-login counting: after `delay_after` failures within
//! the window each attempt waits longer (1 s, 2 s, 4 s, up to 8 s); after
//! `max_failures` the address is banned for `ban_secs`. A success clears
//! the count. State is in memory: a restart forgives everyone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to do with a login attempt from an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// Go ahead after waiting this long.
    Delay(Duration),
    /// Refuse without checking.
    Banned,
}

#[derive(Debug)]
struct Record {
    failures: u32,
    first: Instant,
    /// The latest failure, for callers that refuse instead of sleeping.
    last: Instant,
    banned_until: Option<Instant>,
}

/// Failure counts by address.
pub struct Guard {
    policy: pochta_config::Guard,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// Entries kept at most, so a flood of addresses cannot exhaust memory.
const MAX_RECORDS: usize = 100_000;

impl Guard {
    /// A guard with the given policy.
    pub fn new(policy: pochta_config::Guard) -> Guard {
        Guard {
            policy,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.policy.window_secs)
    }

    /// The verdict for a new attempt from `ip`.
    pub fn check(&self, ip: IpAddr) -> Verdict {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let Some(r) = records.get_mut(&ip) else {
            return Verdict::Allow;
        };
        if let Some(until) = r.banned_until {
            if now < until {
                return Verdict::Banned;
            }
            records.remove(&ip);
            return Verdict::Allow;
        }
        if now.duration_since(r.first) > self.window() {
            records.remove(&ip);
            return Verdict::Allow;
        }
        if r.failures >= self.policy.delay_after {
            let steps = (r.failures - self.policy.delay_after).min(3);
            return Verdict::Delay(Duration::from_secs(1 << steps));
        }
        Verdict::Allow
    }

    /// The verdict for callers that answer "try again later" instead of
    /// sleeping (the admin page, whose worker threads are few): a delay is
    /// what remains of it since the latest failure, and none once it has
    /// passed, so that a person who waits gets their attempt.
    pub fn check_without_waiting(&self, ip: IpAddr) -> Verdict {
        match self.check(ip) {
            Verdict::Delay(d) => {
                let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
                let since = records.get(&ip).map_or(d, |r| r.last.elapsed());
                match d.checked_sub(since) {
                    Some(left) if !left.is_zero() => Verdict::Delay(left),
                    _ => Verdict::Allow,
                }
            }
            other => other,
        }
    }

    /// Counts a failure; true when this one got the address banned.
    pub fn failure(&self, ip: IpAddr) -> bool {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if records.len() >= MAX_RECORDS {
            let window = self.window();
            records.retain(|_, r| {
                r.banned_until.is_some_and(|u| u > now) || now.duration_since(r.first) <= window
            });
        }
        let window = self.window();
        let r = records.entry(ip).or_insert(Record {
            failures: 0,
            first: now,
            last: now,
            banned_until: None,
        });
        if now.duration_since(r.first) > window {
            *r = Record {
                failures: 0,
                first: now,
                last: now,
                banned_until: None,
            };
        }
        r.failures += 1;
        r.last = now;
        if r.failures >= self.policy.max_failures && r.banned_until.is_none() {
            r.banned_until = Some(now + Duration::from_secs(self.policy.ban_secs));
            return true;
        }
        false
    }

    /// Clears the count after a good login.
    pub fn success(&self, ip: IpAddr) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }

    /// The addresses banned now, with their failures and how long the ban
    /// has left, longest first (for the admin page's Security page).
    pub fn banned(&self) -> Vec<Ban> {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut bans: Vec<Ban> = records
            .iter()
            .filter_map(|(ip, r)| {
                let until = r.banned_until.filter(|u| *u > now)?;
                Some(Ban {
                    ip: *ip,
                    failures: r.failures,
                    left: until - now,
                })
            })
            .collect();
        bans.sort_by(|a, b| b.left.cmp(&a.left).then(a.ip.cmp(&b.ip)));
        bans
    }

    /// Lifts a ban and forgets the address's failures (an administrator
    /// who knows the address is a colleague's). False when it was not
    /// banned.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let banned = records
            .get(&ip)
            .and_then(|r| r.banned_until)
            .is_some_and(|u| u > Instant::now());
        if banned {
            records.remove(&ip);
        }
        banned
    }
}

/// An address banned now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The client address.
    pub ip: IpAddr,
    /// Failed logins counted before the ban.
    pub failures: u32,
    /// Time until the ban ends by itself.
    pub left: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_then_bans_then_forgives_on_success() {
        let g = Guard::new(pochta_config::Guard {
            delay_after: 2,
            max_failures: 6,
            window_secs: 600,
            ban_secs: 900,
        });
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(g.check(ip), Verdict::Allow);
        g.failure(ip);
        g.failure(ip);
        assert_eq!(g.check(ip), Verdict::Delay(Duration::from_secs(1)));
        g.failure(ip);
        assert_eq!(g.check(ip), Verdict::Delay(Duration::from_secs(2)));
        g.failure(ip);
        g.failure(ip);
        assert_eq!(g.check(ip), Verdict::Delay(Duration::from_secs(8)));
        assert!(g.failure(ip));
        assert_eq!(g.check(ip), Verdict::Banned);
        let other: IpAddr = "198.51.100.2".parse().unwrap();
        g.failure(other);
        g.failure(other);
        // Right after a failure the wait is nearly all there; a caller that
        // does not sleep is told the rest, and is let through after it.
        assert!(
            matches!(g.check_without_waiting(other), Verdict::Delay(d) if d > Duration::from_millis(500))
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(g.check_without_waiting(other), Verdict::Allow);
        assert_eq!(g.check(other), Verdict::Delay(Duration::from_secs(1)));
        g.failure(other);
        g.success(other);
        assert_eq!(g.check(other), Verdict::Allow);
        let bans = g.banned();
        assert_eq!(bans.len(), 1);
        assert_eq!((bans[0].ip, bans[0].failures), (ip, 6));
        assert!(
            bans[0].left <= Duration::from_secs(900) && bans[0].left > Duration::from_secs(800)
        );
        assert!(!g.unban(other));
        assert!(g.unban(ip));
        assert_eq!(g.check(ip), Verdict::Allow);
        assert!(g.banned().is_empty());
        assert!(!g.unban(ip));
    }
}
