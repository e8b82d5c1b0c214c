//! DNS answers: the configured resolver (`[dns]`, else `/etc/resolv.conf`)
//! is asked for the box's own host name. Any answer, "no such name"
//! included, means DNS works; a timeout or a server failure means outgoing
//! mail waits and sender checks come out as temporary errors.

use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;

use crate::health::{Finding, Probe};

/// One query's time.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The whole lookup, servers and retries included: inside the round's
/// deadline.
const LIMIT: Duration = Duration::from_secs(3);

pub(crate) struct Dns {
    dns: pochta_config::Dns,
    hostname: String,
}

impl Dns {
    pub(crate) fn new(dns: &pochta_config::Dns, hostname: &str) -> Dns {
        Dns {
            dns: dns.clone(),
            hostname: hostname.to_owned(),
        }
    }

    /// A resolver without a cache worth the name: each round asks afresh.
    fn resolver(&self) -> Result<TokioResolver, String> {
        let mut builder = pochta_net::dns::resolver_builder(&self.dns)?;
        let opts = builder.options_mut();
        opts.timeout = TIMEOUT;
        opts.attempts = 1;
        opts.cache_size = 0;
        builder
            .build()
            .map_err(|e| format!("cannot set up the resolver: {e}"))
    }
}

impl Probe for Dns {
    fn id(&self) -> String {
        "dns".into()
    }
    fn title(&self) -> String {
        "DNS".into()
    }
    fn check(&self) -> Finding {
        let fix =
            "Check the box's network and its DNS servers ([dns] servers, or the router's DHCP)";
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return Finding::warning(format!("Cannot run the DNS check: {e}"), fix),
        };
        let name = format!("{}.", self.hostname.trim_end_matches('.'));
        let result = runtime.block_on(async {
            let resolver = self.resolver()?;
            let started = std::time::Instant::now();
            let answer = tokio::time::timeout(LIMIT, resolver.lookup(name.as_str(), RecordType::A))
                .await
                .map_err(|_| format!("no answer within {} s", LIMIT.as_secs()))?;
            match answer {
                Ok(_) => Ok(started.elapsed()),
                Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(started.elapsed()),
                Err(e) => Err(e.to_string()),
            }
        });
        match result {
            Ok(took) => Finding::ok(format!("Answers ({} ms)", took.as_millis())),
            Err(e) => Finding::warning(
                format!("DNS does not answer ({e}): outgoing mail waits and sender checks cannot finish"),
                fix,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::State;

    #[test]
    fn no_such_name_is_an_answer() {
        // A server that says NXDOMAIN (RFC 1035 §4.1.1: QR, RD, RA, RCODE
        // 3) to whatever it is asked, echoing the question.
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, peer)) = server.recv_from(&mut buf) {
                let mut reply = buf[..n].to_vec();
                reply[2] = 0x81;
                reply[3] = 0x83;
                let _ = server.send_to(&reply, peer);
            }
        });
        let dns = pochta_config::Dns {
            servers: vec![addr],
            timeout_secs: 5,
        };
        let f = Dns::new(&dns, "mx.example.test").check();
        assert_eq!(f.state, State::Ok, "{f:?}");
        assert!(f.reason.starts_with("Answers"), "{}", f.reason);
    }

    #[test]
    fn a_silent_server_is_a_warning_within_the_deadline() {
        // A UDP socket that never answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dns = pochta_config::Dns {
            servers: vec![silent.local_addr().unwrap()],
            timeout_secs: 5,
        };
        let started = std::time::Instant::now();
        let f = Dns::new(&dns, "mx.example.test").check();
        assert_eq!(f.state, State::Warning, "{f:?}");
        assert!(f.reason.starts_with("DNS does not answer"), "{}", f.reason);
        assert!(started.elapsed() < crate::round::PROBE_DEADLINE);
    }
}
