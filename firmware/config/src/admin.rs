//! `[admin]`: where the web admin page listens and who may reach it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::PortSet;

/// The LAN web admin page.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Listening addresses (HTTP). An empty list turns the page off.
    pub listen: Vec<SocketAddr>,
    /// Listening addresses for HTTPS, with the box's certificate
    /// (`[tls]`). An empty list turns HTTPS off.
    pub listen_tls: Vec<SocketAddr>,
    /// Networks allowed besides the built-in LAN ranges.
    pub allow: Vec<Network>,
    /// Answer loopback clients (127.0.0.0/8, ::1). On by default; tests turn
    /// it off to see a refused source on one machine.
    pub allow_loopback: bool,
    /// Answer private (RFC 1918, RFC 4193) and link-local clients. On by
    /// default; off leaves only loopback and `allow`.
    pub allow_lan: bool,
    /// Idle minutes after which a login session ends.
    pub session_idle_minutes: u64,
    /// A second place to write the setup code while no administrator
    /// exists; the appliance uses `SETUP.TXT` on the boot partition, which
    /// a person can read by putting the SD card in a laptop.
    pub setup_code_copy: Option<std::path::PathBuf>,
}

impl Admin {
    /// The defaults for a port set: ports 80 and 443 on all interfaces as
    /// root, 127.0.0.1:2080 and 127.0.0.1:2443 otherwise.
    pub fn for_ports(ports: PortSet) -> Admin {
        let (listen, listen_tls) = match ports {
            PortSet::Standard => ("0.0.0.0:80", "0.0.0.0:443"),
            PortSet::Unprivileged => ("127.0.0.1:2080", "127.0.0.1:2443"),
        };
        Admin {
            listen: vec![listen.parse().expect("literal address")],
            listen_tls: vec![listen_tls.parse().expect("literal address")],
            allow: Vec::new(),
            allow_loopback: true,
            allow_lan: true,
            session_idle_minutes: 30,
            setup_code_copy: None,
        }
    }

    pub(crate) fn from_file(file: AdminFile, ports: PortSet) -> Admin {
        let defaults = Admin::for_ports(ports);
        Admin {
            listen: file.listen.unwrap_or(defaults.listen),
            listen_tls: file.listen_tls.unwrap_or(defaults.listen_tls),
            allow: file.allow.unwrap_or(defaults.allow),
            allow_loopback: file.allow_loopback.unwrap_or(defaults.allow_loopback),
            allow_lan: file.allow_lan.unwrap_or(defaults.allow_lan),
            session_idle_minutes: file
                .session_idle_minutes
                .unwrap_or(defaults.session_idle_minutes),
            setup_code_copy: file.setup_code_copy,
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin::for_ports(PortSet::Unprivileged)
    }
}

/// `[admin]` as written in the file; keys it omits take the defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminFile {
    listen: Option<Vec<SocketAddr>>,
    listen_tls: Option<Vec<SocketAddr>>,
    allow: Option<Vec<Network>>,
    allow_loopback: Option<bool>,
    allow_lan: Option<bool>,
    session_idle_minutes: Option<u64>,
    setup_code_copy: Option<std::path::PathBuf>,
}

/// An IP network: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// The network of `addr` with `prefix` leading bits; `None` when the
    /// prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Network> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Whether `ip` is in this network. IPv4-mapped IPv6 addresses count as
    /// their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (net[full] & mask) == (ip[full] & mask)
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let bad = || format!("{text:?} is not a network (expected e.g. 192.0.2.0/24 or fd00::/8)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| bad())?,
                Some(p.parse::<u8>().map_err(|_| bad())?),
            ),
            None => (text.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let prefix = prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 });
        Network::new(addr, prefix).ok_or_else(bad)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Network, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let cases = [
            ("10.0.0.0/8", "10.200.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("172.16.0.0/12", "172.31.255.255", true),
            ("172.16.0.0/12", "172.32.0.0", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("fd00::/8", "fd12::1", true),
            ("fc00::/7", "fdff::1", true),
            ("fc00::/7", "fe00::1", false),
            ("127.0.0.0/8", "::ffff:127.0.0.1", true),
            ("127.0.0.0/8", "::1", false),
        ];
        for (net, ip, expected) in cases {
            let n: Network = net.parse().unwrap();
            assert_eq!(n.contains(ip.parse().unwrap()), expected, "{net} ∋ {ip}");
        }
        for bad in ["10.0.0.0/33", "::/129", "lan", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
        assert_eq!(
            "10.0.0.0/8".parse::<Network>().unwrap().to_string(),
            "10.0.0.0/8"
        );
    }
}
