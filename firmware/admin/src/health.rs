//! Whether each address of a service answers, for the dashboard's list of
//! services (the health checks of `pochta-system` check each greeting).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a connect to a service of this box may take. Loopback and the
/// LAN answer in well under a millisecond; a port that swallows the SYN is
/// as good as down to a client.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether something listens at `addr`: a TCP connect, closed at once (the
/// service sees a client that went away). A wildcard address is reached
/// through loopback.
pub fn answers(addr: SocketAddr) -> bool {
    let target = pochta_system::dial_address(addr);
    TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).is_ok()
}

/// [`answers`] for many addresses at once, each on its own thread, so the
/// whole check takes one timeout at most.
pub fn answering(addrs: &[SocketAddr]) -> Vec<bool> {
    std::thread::scope(|scope| {
        let checks: Vec<_> = addrs
            .iter()
            .map(|&a| scope.spawn(move || answers(a)))
            .collect();
        // A check thread that panicked counts as a service that did not answer.
        checks
            .into_iter()
            .map(|c| c.join().unwrap_or(false))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn connect_check_tells_listening_from_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let wildcard = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), open.port());
        assert_eq!(
            answering(&[open, closed, wildcard]),
            vec![true, false, true]
        );
    }
}
