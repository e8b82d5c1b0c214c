//! The box's own addresses and which of them are on the LAN: one rule for
//! the admin page's access check, its links and certificate, and mDNS.

use std::net::IpAddr;

/// Private and link-local ranges: RFC 1918, RFC 3927 (169.254/16), RFC 4193
/// (fc00::/7) and RFC 4291 §2.5.6 (fe80::/10).
pub fn is_lan(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The machine's own addresses on its networks (interfaces that are up,
/// not loopback), IPv4 first and LAN addresses before others: what a
/// person on the LAN types, and what the self-signed certificate names.
pub fn addresses() -> Vec<IpAddr> {
    use nix::net::if_::InterfaceFlags;
    let Ok(ifaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = ifaces
        .filter(|i| {
            i.flags.contains(InterfaceFlags::IFF_UP)
                && !i.flags.contains(InterfaceFlags::IFF_LOOPBACK)
        })
        .filter_map(|i| {
            let a = i.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    out.sort_by_key(|ip| (ip.is_ipv6(), !is_lan(*ip)));
    out.dedup();
    out
}
