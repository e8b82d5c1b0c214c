//! Where mail for a domain goes: MX records, then the addresses of each
//! host in preference order (RFC 5321 §5.1), the implicit MX (the domain's
//! own A/AAAA) when there is no MX, and the null MX (RFC 7505) refused.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::TokioResolver;
use pochta_config::Dns;

use super::Failure;

/// Builds the resolver `[dns]` describes: its servers, or the system's
/// (`/etc/resolv.conf`) when none are listed. Answers are cached for their
/// TTL. Shared by the queue and mail authentication.
pub fn resolver(dns: &Dns) -> Result<TokioResolver, String> {
    let mut builder = pochta_net::dns::resolver_builder(dns)?;
    let opts = builder.options_mut();
    opts.timeout = std::time::Duration::from_secs(dns.timeout_secs);
    opts.attempts = 2;
    opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
    builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

/// One host to try, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// Host name, without the trailing dot (also the TLS server name).
    pub name: String,
    /// Its addresses.
    pub addrs: Vec<IpAddr>,
}

fn fqdn(name: &str) -> Result<Name, Failure> {
    let mut n = Name::from_str(name)
        .map_err(|e| Failure::permanent("5.1.2", format!("bad domain {name}: {e}")))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The hosts that take mail for `domain`, best first. Hosts whose
/// addresses cannot be found are left out.
pub async fn mx_hosts(resolver: &TokioResolver, domain: &str) -> Result<Vec<MxHost>, Failure> {
    let name = fqdn(domain)?;
    let mut exchanges: Vec<(u16, Name)> = match resolver.mx_lookup(name.clone()).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                _ => None,
            })
            .collect(),
        Err(e) if e.is_nx_domain() => {
            return Err(Failure::permanent(
                "5.1.2",
                format!("domain {domain} does not exist"),
            ))
        }
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => {
            return Err(Failure::transient(
                "4.4.3",
                format!("MX lookup for {domain} failed: {e}"),
            ))
        }
    };
    // RFC 7505 §3: a single MX of "." says the domain takes no mail.
    if exchanges.iter().any(|(_, x)| x.is_root()) {
        return Err(Failure::permanent(
            "5.1.10",
            format!("{domain} accepts no mail (null MX, RFC 7505)"),
        ));
    }
    if exchanges.is_empty() {
        // RFC 5321 §5.1: no MX, so the domain itself is the implicit MX.
        exchanges.push((0, name));
    }
    exchanges.sort_by_key(|(pref, _)| *pref);
    let mut hosts = Vec::new();
    let mut last_error = None;
    for (_, exchange) in exchanges {
        let host = exchange.to_utf8().trim_end_matches('.').to_owned();
        match resolver.lookup_ip(exchange).await {
            Ok(ips) => {
                let addrs: Vec<IpAddr> = ips.iter().collect();
                if !addrs.is_empty() {
                    hosts.push(MxHost { name: host, addrs });
                }
            }
            Err(e) => last_error = Some(format!("{host}: {e}")),
        }
    }
    if hosts.is_empty() {
        return Err(Failure::transient(
            "4.4.4",
            format!(
                "no address for any mail host of {domain}{}",
                last_error.map(|e| format!(" ({e})")).unwrap_or_default()
            ),
        ));
    }
    Ok(hosts)
}
