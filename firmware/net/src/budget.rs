//! Connection budgets: how many connections one service holds at once, and
//! how many of them one client address may hold. Each service (port 25,
//! 587, 993, …) has its own budget, so a flood of one cannot lock the
//! office out of another: idle connections piled on port 25 leave
//! submission and IMAPS free.
//!
//! An address means one IPv4 address or one IPv6 /64 (one host usually has
//! the whole /64, and can pick any address in it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::throttle::Throttle;

/// The budget of one service.
pub struct Budget {
    max: usize,
    per_address: usize,
    held: Mutex<Held>,
    /// Refused connections, for a log line a minute.
    pub refused: Throttle,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The service holds its most connections.
    Service,
    /// This address holds its most connections to the service.
    Address,
}

impl Refusal {
    /// In words, for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Service => "connection limit of the service reached",
            Refusal::Address => "connection limit of the client address reached",
        }
    }
}

/// A connection's place in its budget, given back when dropped.
pub struct Slot {
    budget: Arc<Budget>,
    address: IpAddr,
}

impl Budget {
    /// At most `max` connections, at most `per_address` from one address.
    pub fn new(max: usize, per_address: usize) -> Arc<Budget> {
        Arc::new(Budget {
            max,
            per_address,
            held: Mutex::new(Held::default()),
            refused: Throttle::new(),
        })
    }

    /// A slot for a connection from `ip`, or why there is none.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let address = address_of(ip);
        let mut held = self.lock();
        if held.total >= self.max {
            return Err(Refusal::Service);
        }
        let mine = held.by_address.entry(address).or_insert(0);
        if *mine >= self.per_address {
            return Err(Refusal::Address);
        }
        *mine += 1;
        held.total += 1;
        Ok(Slot {
            budget: self.clone(),
            address,
        })
    }

    /// Connections held now.
    pub fn held(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Counters only: a panic elsewhere cannot leave them half-changed.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.budget.lock();
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                held.by_address.remove(&self.address);
            }
        }
    }
}

/// The address a limit counts: IPv4 as it is (and IPv4-mapped IPv6 as
/// IPv4), IPv6 by its /64.
fn address_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// The budgets of a protocol's services, made once and kept while the
/// process runs, so that a listener restarted by the supervisor counts the
/// connections its predecessor still holds.
#[derive(Default)]
pub struct Budgets(Mutex<HashMap<&'static str, Arc<Budget>>>);

impl Budgets {
    /// The budget of `service`, made with these limits the first time.
    pub fn of(&self, service: &'static str, max: usize, per_address: usize) -> Arc<Budget> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(service)
            .or_insert_with(|| Budget::new(max, per_address))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_cannot_take_the_service() {
        let b = Budget::new(10, 3);
        let flood: Vec<_> = (0..3).map(|_| b.take(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(b.take(ip("192.0.2.1")).err(), Some(Refusal::Address));
        let other = b
            .take(ip("192.0.2.2"))
            .expect("another address still gets in");
        assert_eq!(b.held(), 4);
        drop(flood);
        drop(other);
        assert_eq!(b.held(), 0);
        assert!(
            b.take(ip("192.0.2.1")).is_ok(),
            "slots come back when dropped"
        );
    }

    #[test]
    fn the_service_has_a_ceiling() {
        let b = Budget::new(4, 3);
        let _a: Vec<_> = (0..3).map(|_| b.take(ip("192.0.2.1")).unwrap()).collect();
        let _b = b.take(ip("192.0.2.2")).unwrap();
        assert_eq!(b.take(ip("192.0.2.3")).err(), Some(Refusal::Service));
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let b = Budget::new(10, 2);
        let _x = b.take(ip("2001:db8:1:2::1")).unwrap();
        let _y = b.take(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            b.take(ip("2001:db8:1:2:dead:beef::1")).err(),
            Some(Refusal::Address),
            "a host that rotates addresses in its /64 is one address"
        );
        assert!(b.take(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = b.take(ip("192.0.2.7")).unwrap();
        let _v4b = b.take(ip("192.0.2.7")).unwrap();
        assert_eq!(b.take(ip("::ffff:192.0.2.7")).err(), Some(Refusal::Address));
    }

    #[test]
    fn budgets_are_kept_per_service() {
        let budgets = Budgets::default();
        let smtp = budgets.of("smtp", 1, 1);
        let again = budgets.of("smtp", 99, 99);
        assert!(
            Arc::ptr_eq(&smtp, &again),
            "a restarted listener finds its budget"
        );
        let _held = smtp.take(ip("192.0.2.1")).unwrap();
        let submission = budgets.of("submission", 1, 1);
        assert!(
            submission.take(ip("192.0.2.1")).is_ok(),
            "another service, another budget"
        );
    }
}
