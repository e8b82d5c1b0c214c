//! DNS blocklists (RFC 5782): is the box's public address listed? An
//! address is asked as `reversed-address.list`; NXDOMAIN means not listed,
//! an A record in 127.0.0.0/8 means listed, and what it is tells why.

use std::net::{IpAddr, Ipv4Addr};

/// One blocklist.
#[derive(Debug)]
pub struct Blocklist {
    /// The zone queried.
    pub zone: &'static str,
    /// Whether it lists IPv6 addresses.
    pub ipv6: bool,
}

/// The lists checked: the ones receivers use most.
pub const BLOCKLISTS: &[Blocklist] = &[
    Blocklist {
        zone: "zen.spamhaus.org",
        ipv6: true,
    },
    Blocklist {
        zone: "bl.spamcop.net",
        ipv6: false,
    },
    Blocklist {
        zone: "b.barracudacentral.org",
        ipv6: false,
    },
];

/// What a list's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// Listed, and why.
    Listed(String),
    /// The list answered but did not say (refused the query, odd answer).
    Unknown(String),
}

/// The name to query for `ip` on `zone` (RFC 5782 §2.1 for IPv4, §2.4 for
/// IPv6 nibbles).
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            format!("{out}{zone}.")
        }
    }
}

/// What kind of address other servers cannot reach `ip` is, if it is one:
/// `a loopback address`, `a private address` and the like (the box sits
/// behind a router whose public address is what the world sees).
pub fn unreachable_kind(ip: IpAddr) -> Option<&'static str> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if a == 100 && (64..128).contains(&b) {
                // RFC 6598 shared address space.
                Some("a carrier-grade NAT address")
            } else if v4.is_unspecified() || v4.is_broadcast() {
                Some("not a host's address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("a private address")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_unspecified() {
                Some("not a host's address")
            } else {
                None
            }
        }
    }
}

/// Why an address is not worth asking about: private, loopback and the
/// like are unknown to every list.
pub fn not_public(ip: IpAddr) -> Option<String> {
    unreachable_kind(ip).map(|kind| {
        format!(
            "{kind}: blocklists only know public ones; publish the box's public \
             address (your router's) as the mail host's A record"
        )
    })
}

/// The meaning of an answer `code` from `zone`.
pub fn meaning(zone: &str, code: Ipv4Addr) -> Meaning {
    let [a, b, c, _] = code.octets();
    if a != 127 {
        return Meaning::Unknown(format!(
            "unexpected answer {code} (not 127.x): the resolver may be rewriting answers"
        ));
    }
    if zone == "zen.spamhaus.org" {
        return zen(code);
    }
    if (b, c) == (0, 0) {
        return Meaning::Listed(format!("listed ({code}): ask {zone} for delisting"));
    }
    Meaning::Unknown(format!("unexpected answer {code} from {zone}"))
}

/// Spamhaus ZEN return codes ("DNSBL return codes" in Spamhaus's
/// documentation).
fn zen(code: Ipv4Addr) -> Meaning {
    let listed = |why: &str| Meaning::Listed(format!("{why} ({code})"));
    match code.octets() {
        [127, 0, 0, 2] => listed("SBL: a known spam source or spam operation"),
        [127, 0, 0, 3] => listed("SBL CSS: an address sending low-reputation (snowshoe) mail"),
        [127, 0, 0, 4..=7] => listed(
            "XBL: a hijacked or infected machine sends from this address; clean it, then ask Spamhaus",
        ),
        [127, 0, 0, 9] => listed("SBL DROP: a hijacked or criminal network"),
        [127, 0, 0, 10] => listed(
            "PBL (ISP): a dynamic or end-user address that should not send mail directly; \
             send through your provider's relay (smarthost) or get a static address",
        ),
        [127, 0, 0, 11] => listed(
            "PBL (Spamhaus): an end-user address that should not send mail directly; \
             send through a smarthost, or remove it from the PBL on Spamhaus's site",
        ),
        [127, 255, 255, 252] => {
            Meaning::Unknown(format!("Spamhaus says the query was malformed ({code})"))
        }
        [127, 255, 255, 254] => Meaning::Unknown(format!(
            "Spamhaus refuses queries through public or open resolvers ({code}): \
             set [dns] servers to your own or your provider's resolver to check ZEN"
        )),
        [127, 255, 255, 255] => Meaning::Unknown(format!(
            "Spamhaus refused: too many queries from this resolver ({code})"
        )),
        [127, 0, 0, _] => listed("listed by Spamhaus ZEN"),
        _ => Meaning::Unknown(format!("unexpected answer {code} from Spamhaus ZEN")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reversed() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "zen.spamhaus.org"),
            "99.2.0.192.zen.spamhaus.org."
        );
        // RFC 5782 §2.4's example.
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."
        );
    }

    #[test]
    fn private_addresses_are_skipped() {
        for (ip, kind) in [
            ("10.0.0.1", "a private address"),
            ("192.168.1.2", "a private address"),
            ("127.0.0.1", "a loopback address"),
            ("169.254.1.1", "a link-local address"),
            ("100.64.0.1", "a carrier-grade NAT address"),
            ("0.0.0.0", "not a host's address"),
            ("::1", "a loopback address"),
            ("fd00::1", "a private address"),
            ("fe80::1", "a link-local address"),
            ("::ffff:10.1.1.1", "a private address"),
        ] {
            assert_eq!(unreachable_kind(ip.parse().unwrap()), Some(kind), "{ip}");
            assert!(not_public(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["203.0.113.7", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(not_public(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[test]
    fn return_codes() {
        let m = |zone, code: &str| meaning(zone, code.parse().unwrap());
        assert!(
            matches!(m("zen.spamhaus.org", "127.0.0.2"), Meaning::Listed(w) if w.starts_with("SBL:"))
        );
        assert!(
            matches!(m("zen.spamhaus.org", "127.0.0.4"), Meaning::Listed(w) if w.starts_with("XBL"))
        );
        assert!(
            matches!(m("zen.spamhaus.org", "127.0.0.11"), Meaning::Listed(w) if w.contains("PBL"))
        );
        assert!(
            matches!(m("zen.spamhaus.org", "127.255.255.254"), Meaning::Unknown(w) if w.contains("public or open resolvers"))
        );
        assert!(matches!(
            m("zen.spamhaus.org", "127.255.255.255"),
            Meaning::Unknown(_)
        ));
        assert!(matches!(
            m("bl.spamcop.net", "127.0.0.2"),
            Meaning::Listed(_)
        ));
        assert!(matches!(
            m("bl.spamcop.net", "10.0.0.1"),
            Meaning::Unknown(_)
        ));
    }
}
