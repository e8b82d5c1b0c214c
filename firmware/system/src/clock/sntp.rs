//! One SNTP query to one configured server (RFC 4330 §5, the client side
//! of RFC 5905), bounded in time: the name is resolved on a helper thread
//! given [`QUERY_TIMEOUT`], and the answer is awaited as long again.
//!
//! The packet is the `rsntp` crate's (no default features: no
//! dependencies). It checks what RFC 5905 asks of a client: the reply's
//! originate timestamp must equal our transmit timestamp (§8, the "bogus
//! packet" test), stratum 0 is a kiss-o'-death (§7.4), LI = 3 or stratum
//! 16 and up is a server that is not synchronised itself (§7.3), and it
//! maps 64-bit timestamps across the 2036 era boundary (§6). The tests
//! below hold it to each of these.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::Duration;

/// How long one query may take to resolve, and again to be answered.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The NTP port (RFC 5905 §7.2).
pub const NTP_PORT: u16 = 123;

/// What one good answer measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Server time minus ours, in seconds: θ = ((T2 − T1) + (T3 − T4)) / 2
    /// (RFC 5905 §8, RFC 4330 §5).
    pub offset_secs: f64,
    /// Round trip: δ = (T4 − T1) − (T3 − T2).
    pub delay_secs: f64,
}

/// Why a query gave no usable time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The name did not resolve, or not in time.
    #[error("cannot find the time server {server}: {why}")]
    Resolve {
        /// As configured.
        server: String,
        /// The resolver's words, or that it took too long.
        why: String,
    },
    /// Nothing came back within the timeout.
    #[error("no answer from the time server {server} within {} s", .timeout.as_secs_f32())]
    NoAnswer {
        /// As configured.
        server: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The server asked us to stop asking: a kiss-o'-death (RFC 5905 §7.4).
    #[error("the time server {server} refused to answer (kiss-o'-death: {why})")]
    Kissed {
        /// As configured.
        server: String,
        /// The kiss code (`RATE`, `DENY`, `RSTR`, …) in words.
        why: String,
    },
    /// The server's own clock is not set (LI = 3, or stratum 16 and up).
    #[error("the time server {server} is not synchronised itself")]
    ServerUnsynchronised {
        /// As configured.
        server: String,
    },
    /// The answer was not a valid reply to our request.
    #[error("the time server {server} sent a bad answer: {why}")]
    BadReply {
        /// As configured.
        server: String,
        /// What was wrong with it.
        why: String,
    },
    /// A socket error, such as "Connection refused" (nothing listens).
    #[error("cannot ask the time server {server}: {why}")]
    Io {
        /// As configured.
        server: String,
        /// The system's words.
        why: std::io::Error,
    },
}

impl QueryError {
    /// A kiss-o'-death: the server is not asked again for a while.
    pub fn is_kiss(&self) -> bool {
        matches!(self, QueryError::Kissed { .. })
    }
}

/// `host`, `host:port`, `1.2.3.4`, `[::1]:123`, `::1` as host and port.
pub fn host_and_port(server: &str) -> Option<(String, u16)> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Some((ip.to_string(), NTP_PORT));
    }
    let (host, port) = match server.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().ok()?),
        None => (server, NTP_PORT),
    };
    (!host.is_empty() && !host.contains(':')).then(|| (host.to_owned(), port))
}

/// Asks `server` (as configured) for the time, within about twice
/// `timeout`.
pub fn query(server: &str, timeout: Duration) -> Result<Measured, QueryError> {
    let addr = resolve(server, timeout)?;
    let bind: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // rsntp reads the clock with `duration_since(UNIX_EPOCH).unwrap()`: a
    // clock set before 1970 would panic this thread.
    if std::time::SystemTime::now() < std::time::UNIX_EPOCH {
        return Err(QueryError::BadReply {
            server: server.to_owned(),
            why: "the box's clock is before 1970".into(),
        });
    }
    let client = rsntp::SntpClient::with_config(
        rsntp::Config::default()
            .bind_address(bind)
            .timeout(timeout)
            .connect_ip(true),
    );
    let result = client.synchronize(addr).map_err(|e| {
        let server = server.to_owned();
        match e {
            rsntp::SynchronizationError::IOError(why)
                if matches!(
                    why.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                QueryError::NoAnswer { server, timeout }
            }
            rsntp::SynchronizationError::IOError(why) => QueryError::Io { server, why },
            rsntp::SynchronizationError::ProtocolError(p) => match p {
                rsntp::ProtocolError::KissODeath(code) => QueryError::Kissed {
                    server,
                    why: code.to_string(),
                },
                rsntp::ProtocolError::ServerNotSynchronized => {
                    QueryError::ServerUnsynchronised { server }
                }
                other => QueryError::BadReply {
                    server,
                    why: other.to_string(),
                },
            },
        }
    })?;
    Ok(Measured {
        offset_secs: result.clock_offset().as_secs_f64(),
        delay_secs: result.round_trip_delay().as_secs_f64(),
    })
}

/// The first address of `server`, looked up on a helper thread so that a
/// stuck resolver costs at most `timeout` (the helper ends when the
/// resolver gives up by itself).
fn resolve(server: &str, timeout: Duration) -> Result<SocketAddr, QueryError> {
    let fail = |why: String| QueryError::Resolve {
        server: server.to_owned(),
        why,
    };
    let (host, port) =
        host_and_port(server).ok_or_else(|| fail("not a host or host:port".into()))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ntp-resolve".into())
        .spawn(move || {
            let _ = tx.send(
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|mut a| a.next()),
            );
        })
        .map_err(|e| fail(e.to_string()))?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(addr))) => Ok(addr),
        Ok(Ok(None)) => Err(fail("the name has no address".into())),
        Ok(Err(e)) => Err(fail(e.to_string())),
        Err(_) => Err(fail(format!(
            "no answer from the resolver within {} s",
            timeout.as_secs_f32()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// Seconds between the NTP era 0 epoch (1900) and the Unix epoch
    /// (RFC 5905 §6, Figure 4: 2,208,988,800).
    const NTP_UNIX: f64 = 2_208_988_800.0;

    /// A 64-bit NTP timestamp (32.32 fixed point) of a Unix time, modulo
    /// the era: 2036-02-07T06:28:16Z is 0 again (RFC 5905 §6).
    fn ntp_timestamp(unix: f64) -> u64 {
        let ntp = unix + NTP_UNIX;
        let secs = (ntp.floor() as u64) & 0xffff_ffff;
        let frac = ((ntp - ntp.floor()) * 4_294_967_296.0) as u64;
        (secs << 32) | frac
    }

    fn unix_now() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    /// What the fake server puts in its reply.
    #[derive(Clone, Copy)]
    struct Reply {
        li: u8,
        stratum: u8,
        refid: [u8; 4],
        /// Added to the server's clock.
        skew: f64,
        /// Echo our transmit timestamp as the originate (RFC 5905 §8).
        echo_origin: bool,
        len: usize,
    }

    const GOOD: Reply = Reply {
        li: 0,
        stratum: 2,
        refid: [127, 0, 0, 1],
        skew: 0.0,
        echo_origin: true,
        len: 48,
    };

    /// A server on loopback that answers one request as `reply` says
    /// (RFC 5905 §7.3, Figure 8: the 48-byte header).
    fn serve_once(reply: Reply) -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut req = [0u8; 48];
            let Ok((_, peer)) = socket.recv_from(&mut req) else {
                return;
            };
            // Mode 3 (client), version 4 or 3.
            assert_eq!(req[0] & 0x07, 3);
            let now = unix_now() + reply.skew;
            let mut p = [0u8; 48];
            p[0] = (reply.li << 6) | (4 << 3) | 4; // LI, VN 4, mode 4 (server)
            p[1] = reply.stratum;
            p[2] = 6;
            p[3] = 0xec;
            p[12..16].copy_from_slice(&reply.refid);
            p[16..24].copy_from_slice(&ntp_timestamp(now - 10.0).to_be_bytes());
            if reply.echo_origin {
                p[24..32].copy_from_slice(&req[40..48]);
            } else {
                p[24..32].copy_from_slice(&ntp_timestamp(now - 1.0).to_be_bytes());
            }
            p[32..40].copy_from_slice(&ntp_timestamp(now).to_be_bytes());
            let sent = unix_now() + reply.skew;
            p[40..48].copy_from_slice(&ntp_timestamp(sent).to_be_bytes());
            let _ = socket.send_to(&p[..reply.len], peer);
        });
        addr.to_string()
    }

    #[test]
    fn offset_of_a_server_an_hour_ahead() {
        let server = serve_once(Reply {
            skew: 3600.0,
            ..GOOD
        });
        let m = query(&server, QUERY_TIMEOUT).unwrap();
        assert!((m.offset_secs - 3600.0).abs() < 0.5, "{m:?}");
        assert!(m.delay_secs >= 0.0 && m.delay_secs < 0.5, "{m:?}");
        let server = serve_once(Reply { skew: -2.5, ..GOOD });
        let m = query(&server, QUERY_TIMEOUT).unwrap();
        assert!((m.offset_secs + 2.5).abs() < 0.5, "{m:?}");
    }

    #[test]
    fn a_server_past_the_2036_era_boundary() {
        // Eleven years ahead of 2026 is past 2036-02-07: the server's
        // timestamps wrap to era 1 (small seconds, top bit clear).
        let skew = 11.0 * 365.25 * 86_400.0;
        assert!(ntp_timestamp(unix_now() + skew) >> 63 == 0);
        let server = serve_once(Reply { skew, ..GOOD });
        let m = query(&server, QUERY_TIMEOUT).unwrap();
        assert!((m.offset_secs - skew).abs() < 0.5, "{m:?}");
    }

    #[test]
    fn kiss_o_death_is_a_refusal_with_its_code() {
        // RFC 5905 §7.4: stratum 0, the kiss code in the reference id.
        let server = serve_once(Reply {
            stratum: 0,
            refid: *b"RATE",
            ..GOOD
        });
        let e = query(&server, QUERY_TIMEOUT).unwrap_err();
        assert!(e.is_kiss(), "{e}");
        assert!(
            e.to_string().contains("kiss-o'-death: Rate exceeded"),
            "{e}"
        );
        let server = serve_once(Reply {
            stratum: 0,
            refid: *b"DENY",
            ..GOOD
        });
        assert!(query(&server, QUERY_TIMEOUT).unwrap_err().is_kiss());
    }

    #[test]
    fn an_unsynchronised_server_is_not_believed() {
        // LI = 3: "unknown (clock unsynchronized)" (RFC 5905 §7.3).
        let server = serve_once(Reply { li: 3, ..GOOD });
        let e = query(&server, QUERY_TIMEOUT).unwrap_err();
        assert!(matches!(e, QueryError::ServerUnsynchronised { .. }), "{e}");
        // Stratum 16: unsynchronised.
        let server = serve_once(Reply {
            stratum: 16,
            ..GOOD
        });
        let e = query(&server, QUERY_TIMEOUT).unwrap_err();
        assert!(matches!(e, QueryError::ServerUnsynchronised { .. }), "{e}");
    }

    #[test]
    fn a_reply_to_another_request_is_refused() {
        // RFC 5905 §8: originate must equal our transmit timestamp, or the
        // packet is bogus (a replay, or an answer meant for someone else).
        let server = serve_once(Reply {
            echo_origin: false,
            ..GOOD
        });
        let e = query(&server, QUERY_TIMEOUT).unwrap_err();
        assert!(matches!(e, QueryError::BadReply { .. }), "{e}");
        assert!(e.to_string().contains("originate"), "{e}");
    }

    #[test]
    fn a_short_packet_is_refused() {
        let server = serve_once(Reply { len: 40, ..GOOD });
        let e = query(&server, QUERY_TIMEOUT).unwrap_err();
        assert!(matches!(e, QueryError::BadReply { .. }), "{e}");
    }

    #[test]
    fn silence_is_bounded() {
        let mute = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = mute.local_addr().unwrap().to_string();
        let started = std::time::Instant::now();
        let e = query(&server, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, QueryError::NoAnswer { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(mute);
    }

    #[test]
    fn names_and_ports() {
        let hp = |s: &str| host_and_port(s);
        assert_eq!(hp("pool.ntp.org"), Some(("pool.ntp.org".into(), 123)));
        assert_eq!(hp("ntp.test:1123"), Some(("ntp.test".into(), 1123)));
        assert_eq!(hp("10.0.2.2"), Some(("10.0.2.2".into(), 123)));
        assert_eq!(hp("127.0.0.1:9"), Some(("127.0.0.1".into(), 9)));
        assert_eq!(hp("::1"), Some(("::1".into(), 123)));
        assert_eq!(hp("[::1]:1123"), Some(("::1".into(), 1123)));
        assert_eq!(hp("ntp.test:port"), None);
        assert_eq!(hp(":123"), None);
        assert!(matches!(
            resolve("ntp.test:x", QUERY_TIMEOUT),
            Err(QueryError::Resolve { .. })
        ));
    }
}
