//! Who may reach the admin page: loopback, private (RFC 1918, RFC 4193) and
//! link-local source addresses, plus the networks in `[admin] allow`.

use std::net::IpAddr;

use pochta_config::Network;

/// The source addresses the admin page answers.
#[derive(Debug, Clone)]
pub struct Access {
    loopback: bool,
    lan: bool,
    allow: Vec<Network>,
}

impl Access {
    /// The policy of an `[admin]` section.
    pub fn new(config: &pochta_config::Admin) -> Access {
        Access {
            loopback: config.allow_loopback,
            lan: config.allow_lan,
            allow: config.allow.clone(),
        }
    }

    /// Whether a client at `ip` may use the page.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        (self.loopback && ip.is_loopback())
            || (self.lan && is_lan(ip))
            || self.allow.iter().any(|n| n.contains(ip))
    }
}

/// The machine's own addresses on its networks (interfaces that are up,
/// not loopback), IPv4 first: what a person on the LAN types, and what the
/// self-signed certificate names (`pochta_system::lan`).
pub fn lan_addresses() -> Vec<IpAddr> {
    pochta_system::lan::addresses()
}

/// The address a person types to open the page served on `listen`: a LAN
/// address of the box where it listens on all of them (`0.0.0.0:80` is no
/// address a browser can open), without the scheme's default port.
pub fn page_url(listen: std::net::SocketAddr, https: bool) -> String {
    let ip = if listen.ip().is_unspecified() {
        lan_addresses()
            .into_iter()
            .find(|ip| ip.is_ipv4() || listen.is_ipv6())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    } else {
        listen.ip()
    };
    let scheme = if https { "https" } else { "http" };
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    match (listen.port(), https) {
        (80, false) | (443, true) => format!("{scheme}://{host}/"),
        (port, _) => format!("{scheme}://{host}:{port}/"),
    }
}

use pochta_system::lan::is_lan;

#[cfg(test)]
mod tests {
    use super::*;

    fn access(loopback: bool, lan: bool, allow: &[&str]) -> Access {
        Access::new(&pochta_config::Admin {
            allow_loopback: loopback,
            allow_lan: lan,
            allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
            ..pochta_config::Admin::default()
        })
    }

    #[test]
    fn page_urls() {
        assert_eq!(
            page_url("127.0.0.1:2080".parse().unwrap(), false),
            "http://127.0.0.1:2080/"
        );
        assert_eq!(
            page_url("192.168.1.23:80".parse().unwrap(), false),
            "http://192.168.1.23/"
        );
        assert_eq!(
            page_url("192.168.1.23:443".parse().unwrap(), true),
            "https://192.168.1.23/"
        );
        assert_eq!(
            page_url("[::1]:2443".parse().unwrap(), true),
            "https://[::1]:2443/"
        );
        // All interfaces: never 0.0.0.0, which no browser opens.
        let any = page_url("0.0.0.0:80".parse().unwrap(), false);
        assert!(!any.contains("0.0.0.0"), "{any}");
    }

    #[test]
    fn default_policy_is_the_lan() {
        let a = access(true, true, &[]);
        let allowed = [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.1.20",
            "::ffff:192.168.1.20",
            "169.254.10.10",
            "fd12:3456::1",
            "fc00::1",
            "fe80::1",
        ];
        let refused = [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "100.64.0.1",
            "203.0.113.5",
            "::ffff:203.0.113.5",
            "2001:db8::1",
            "fec0::1",
            "0.0.0.0",
        ];
        for ip in allowed {
            assert!(a.allows(ip.parse().unwrap()), "{ip} should be allowed");
        }
        for ip in refused {
            assert!(!a.allows(ip.parse().unwrap()), "{ip} should be refused");
        }
    }

    #[test]
    fn knobs_and_allow_list() {
        let a = access(false, true, &[]);
        assert!(!a.allows("127.0.0.1".parse().unwrap()));
        assert!(!a.allows("::1".parse().unwrap()));
        assert!(a.allows("10.0.0.1".parse().unwrap()));
        let a = access(true, false, &["203.0.113.0/24"]);
        assert!(!a.allows("10.0.0.1".parse().unwrap()));
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("203.0.113.200".parse().unwrap()));
        assert!(!a.allows("203.0.114.1".parse().unwrap()));
        let a = access(false, false, &["127.0.0.0/8"]);
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(!a.allows("::1".parse().unwrap()));
    }
}
