//! Every DNS record a local domain must publish, as zone-file text for
//! `pochta domain dns`: where its mail goes (MX), who may send it (SPF), its
//! DKIM keys, its DMARC policy, where clients find the services (SRV,
//! RFC 6186 and RFC 8314 §5.1; autoconfig names) and its MTA-STS policy
//! (RFC 8461). Free of I/O: the caller gives the keys and the host name.

use pochta_store::{DkimAlgorithm, DkimKey};

use crate::keys::public_key_base64;

/// TTL printed with each record.
const TTL: u32 = 3600;

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, fully qualified with the final dot.
    pub name: String,
    /// Record type: `MX`, `TXT`, `SRV`, `CNAME`.
    pub kind: &'static str,
    /// RDATA in zone-file syntax (TXT values quoted and split).
    pub data: String,
}

impl Record {
    fn new(name: String, kind: &'static str, data: String) -> Record {
        Record { name, kind, data }
    }
}

/// Quotes a TXT value as `"..." "..."`, each string at most 255 octets
/// (RFC 1035 §3.3.14; DKIM keys need several, RFC 6376 §3.6.2.2).
pub fn txt_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| {
            let s = String::from_utf8_lossy(c);
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `v=DKIM1` record text of a key (RFC 6376 §3.6.1, RFC 8463 §4.2).
pub fn dkim_txt(key: &DkimKey) -> String {
    let k = match key.algorithm {
        DkimAlgorithm::Rsa => "rsa",
        DkimAlgorithm::Ed25519 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={}", public_key_base64(key))
}

/// The MTA-STS policy file (RFC 8461 §3.2), in `testing` mode until the
/// operator has seen the TLS reports come in clean.
pub fn mta_sts_policy(host: &str) -> String {
    format!("version: STSv1\r\nmode: testing\r\nmx: {host}\r\nmax_age: 604800\r\n")
}

/// The policy's `id=`: it must change whenever the policy does, so it is a
/// hash of the text (FNV-1a, stable across builds).
fn policy_id(policy: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in policy.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Why `host` cannot be the name other servers send mail to, if it
/// cannot, with what to do about it. The admin page says
/// [`host_fault`] with its own fix.
pub fn host_problem(host: &str) -> Option<String> {
    host_fault(host).map(|fault| {
        format!(
            "{fault}; set `hostname` in the configuration to the box's full public name \
             (such as mail.example.com)"
        )
    })
}

/// What is wrong with `host` as a mail host, if anything: an MX must name
/// a host in the public DNS (RFC 5321 §5.1), so a bare machine name (`vm`),
/// `localhost` or a name under `.local`, `.localdomain`, `.lan`,
/// `.internal`, `.home.arpa` or an address would publish records that send
/// the domain's mail nowhere.
pub fn host_fault(host: &str) -> Option<String> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Some(format!(
            "the mail host {h} is an address, not a name: an MX record needs a host name"
        ));
    }
    if !h.contains('.') {
        return Some(format!(
            "the mail host \"{h}\" is not a full domain name, so no other server can find it"
        ));
    }
    const PRIVATE: [&str; 6] = [
        ".local",
        ".localdomain",
        ".lan",
        ".internal",
        ".home.arpa",
        ".localhost",
    ];
    PRIVATE.iter().find(|s| h.ends_with(*s)).map(|suffix| {
        format!("the mail host {h} is under {suffix}, which exists only inside a local network")
    })
}

/// All records for `domain`, whose mail host is `host`.
pub fn records(domain: &str, host: &str, keys: &[DkimKey]) -> Vec<Record> {
    let d = format!("{domain}.");
    let h = format!("{host}.");
    let mut out = vec![
        Record::new(d.clone(), "MX", format!("10 {h}")),
        Record::new(d.clone(), "TXT", txt_strings("v=spf1 mx -all")),
    ];
    for key in keys {
        out.push(Record::new(
            format!("{}._domainkey.{d}", key.selector),
            "TXT",
            txt_strings(&dkim_txt(key)),
        ));
    }
    out.push(Record::new(
        format!("_dmarc.{d}"),
        "TXT",
        txt_strings(&format!(
            "v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"
        )),
    ));
    for (service, port) in [
        ("_submission._tcp", 587),
        ("_submissions._tcp", 465),
        ("_imaps._tcp", 993),
        ("_pop3s._tcp", 995),
    ] {
        out.push(Record::new(
            format!("{service}.{d}"),
            "SRV",
            format!("0 1 {port} {h}"),
        ));
    }
    for name in ["autoconfig", "autodiscover", "mta-sts"] {
        out.push(Record::new(format!("{name}.{d}"), "CNAME", h.clone()));
    }
    out.push(Record::new(
        format!("_mta-sts.{d}"),
        "TXT",
        txt_strings(&format!("v=STSv1; id={}", policy_id(&mta_sts_policy(host)))),
    ));
    out
}

/// The records as a zone-file fragment with comments, then the MTA-STS
/// policy file and where it must be served.
pub fn zone_text(domain: &str, host: &str, keys: &[DkimKey]) -> String {
    let mut out = format!(
        "; DNS records for {domain}: publish all of them at its DNS provider.\n\
         ; Mail host: {host} (it needs A/AAAA records of its own).\n"
    );
    for r in records(domain, host, keys) {
        out.push_str(&format!("{} {TTL} IN {} {}\n", r.name, r.kind, r.data));
    }
    out.push_str(&format!(
        "\n; MTA-STS (RFC 8461): serve this file as text/plain at\n\
         ; https://mta-sts.{domain}/.well-known/mta-sts.txt\n\
         ; (mta-sts.{domain} needs a certificate valid for that name):\n"
    ));
    for line in mta_sts_policy(host).lines() {
        out.push_str(&format!(";   {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_other_servers_cannot_reach() {
        for (host, needle) in [
            ("vm", "not a full domain name"),
            ("localhost", "not a full domain name"),
            ("pochta.local", "under .local"),
            ("box.home.arpa", "under .home.arpa"),
            ("192.0.2.7", "an address"),
            ("::1", "an address"),
        ] {
            let problem = host_problem(host).unwrap_or_default();
            assert!(problem.contains(needle), "{host}: {problem:?}");
            assert!(
                problem.ends_with("(such as mail.example.com)"),
                "{host}: {problem:?}"
            );
            let fault = host_fault(host).unwrap_or_default();
            assert!(
                fault.contains(needle) && !fault.contains("--host"),
                "{fault}"
            );
        }
        for host in ["mail.example.com", "mx.example.org.", "MAIL.Example.COM"] {
            assert_eq!(host_problem(host), None, "{host}");
            assert_eq!(host_fault(host), None, "{host}");
        }
    }

    fn key(algorithm: DkimAlgorithm, len: usize) -> DkimKey {
        DkimKey {
            domain: "a.test".into(),
            selector: if algorithm == DkimAlgorithm::Rsa {
                "pr202611".into()
            } else {
                "pe202611".into()
            },
            algorithm,
            private_key: vec![1, 2, 3],
            public_key: vec![7; len],
            created: 0,
        }
    }

    #[test]
    fn txt_is_split_at_255_octets() {
        let long = "x".repeat(600);
        let t = txt_strings(&long);
        let parts: Vec<&str> = t.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].len(), 257);
        assert_eq!(parts[2].len(), 90 + 2);
        assert_eq!(txt_strings("a\"b"), "\"a\\\"b\"");
    }

    #[test]
    fn every_record_is_there() {
        let keys = [
            key(DkimAlgorithm::Rsa, 294),
            key(DkimAlgorithm::Ed25519, 32),
        ];
        let text = zone_text("a.test", "mail.a.test", &keys);
        for needle in [
            "a.test. 3600 IN MX 10 mail.a.test.",
            "\"v=spf1 mx -all\"",
            "pr202611._domainkey.a.test.",
            "\"v=DKIM1; k=ed25519; p=",
            "_dmarc.a.test.",
            "\"v=DMARC1; p=quarantine; rua=mailto:postmaster@a.test\"",
            "IN SRV 0 1 587 mail.a.test.",
            "_submissions._tcp.a.test.",
            "_imaps._tcp.a.test.",
            "IN SRV 0 1 995 mail.a.test.",
            "autoconfig.a.test.",
            "autodiscover.a.test.",
            "_mta-sts.a.test.",
            "\"v=STSv1; id=",
            "https://mta-sts.a.test/.well-known/mta-sts.txt",
            "mode: testing",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!text.contains("AQID"), "no private key bytes in the output");
        // The RSA key's record needs two strings.
        let rsa = records("a.test", "mail.a.test", &keys)
            .into_iter()
            .find(|r| r.name.starts_with("pr"))
            .unwrap();
        assert_eq!(rsa.data.matches('"').count(), 4);
    }
}
