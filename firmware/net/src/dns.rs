//! The resolver `[dns]` describes: its servers, or the system's
//! (`/etc/resolv.conf`) when none are listed. One place builds it; the
//! queue, the inbound checks, the admin page's DNS check and the health
//! check each set their own timeouts and retries on the builder.

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ResolverBuilder, TokioResolver};

/// A resolver builder for `[dns]`, its options left to the caller.
pub fn resolver_builder(
    dns: &pochta_config::Dns,
) -> Result<ResolverBuilder<TokioRuntimeProvider>, String> {
    if dns.servers.is_empty() {
        return TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system resolver configuration: {e}"));
    }
    let servers = dns
        .servers
        .iter()
        .map(|addr| {
            let mut server = NameServerConfig::udp_and_tcp(addr.ip());
            for c in &mut server.connections {
                c.port = addr.port();
            }
            server
        })
        .collect();
    Ok(TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, Vec::new(), servers),
        TokioRuntimeProvider::default(),
    ))
}
