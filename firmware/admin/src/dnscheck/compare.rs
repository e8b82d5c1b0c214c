//! Whether what DNS serves is what a record asks for, compared by meaning:
//! names without case or the final dot, TXT values joined from their
//! strings (RFC 7208 §3.3, RFC 6376 §3.6.2.2) with whitespace that does not
//! matter ignored, SPF and DMARC by their terms. Free of I/O.

use std::net::IpAddr;

/// What one lookup got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Records of the type asked.
    Found(Vec<Rdata>),
    /// The name does not exist (NXDOMAIN) or has no record of that type.
    Nothing,
    /// No answer: timeout, SERVFAIL, refused, unreachable server.
    Failed(String),
}

/// One record's data, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rdata {
    /// MX preference and exchange.
    Mx(u16, String),
    /// A TXT record's strings joined into one value.
    Txt(String),
    /// SRV priority, weight, port, target.
    Srv(u16, u16, u16, String),
    /// A CNAME's target.
    Cname(String),
    /// An A or AAAA address.
    Ip(IpAddr),
}

impl Rdata {
    /// Zone-file-like text for the page.
    pub fn show(&self) -> String {
        match self {
            Rdata::Mx(p, x) => format!("{p} {x}"),
            Rdata::Txt(t) => t.clone(),
            Rdata::Srv(p, w, port, t) => format!("{p} {w} {port} {t}"),
            Rdata::Cname(t) => t.clone(),
            Rdata::Ip(ip) => ip.to_string(),
        }
    }
}

/// How a record compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// DNS serves what is needed.
    Ok,
    /// DNS serves nothing there.
    Missing,
    /// DNS serves something else.
    Wrong,
    /// DNS did not answer.
    Unknown,
    /// DNS serves it, but it cannot work as it is (an address other
    /// servers cannot reach).
    Warning,
}

impl Status {
    /// The word in the JSON and on the page.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Wrong => "wrong",
            Status::Unknown => "unknown",
            Status::Warning => "warning",
        }
    }
}

/// The outcome for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// ok, missing, wrong, unknown.
    pub status: Status,
    /// What to change, in one line; empty when nothing.
    pub fix: String,
    /// A remark on an acceptable difference.
    pub note: String,
}

impl Verdict {
    fn ok() -> Verdict {
        Verdict::new(Status::Ok, "")
    }

    fn ok_but(note: impl Into<String>) -> Verdict {
        Verdict {
            note: note.into(),
            ..Verdict::ok()
        }
    }

    fn new(status: Status, fix: impl Into<String>) -> Verdict {
        Verdict {
            status,
            fix: fix.into(),
            note: String::new(),
        }
    }
}

/// The mail host's own addresses, as DNS serves them (`host` without the
/// final dot): every other record leads here, so an address other servers
/// cannot reach (loopback, private, link-local) is a warning with what to
/// publish instead, even beside a public one (a sender may pick either).
pub fn host_address(host: &str, answer: &Answer) -> Verdict {
    let found = match answer {
        Answer::Found(list) => list,
        Answer::Nothing => {
            let fix = format!(
                "publish an A record (and AAAA for IPv6) at {host}. \
                 with the box's public address"
            );
            return Verdict::new(Status::Missing, fix);
        }
        Answer::Failed(e) => {
            let fix = format!("DNS did not answer ({e}): check again later");
            return Verdict::new(Status::Unknown, fix);
        }
    };
    let ips = found.iter().filter_map(|r| match r {
        Rdata::Ip(ip) => Some(*ip),
        _ => None,
    });
    let unreachable: Vec<(IpAddr, &str)> = ips
        .filter_map(|ip| super::dnsbl::unreachable_kind(ip).map(|kind| (ip, kind)))
        .collect();
    let fix = match unreachable.as_slice() {
        [] => return Verdict::ok(),
        [(ip, kind)] => format!(
            "{host} resolves to {ip}, {kind} other servers cannot reach; \
             publish the box's public address"
        ),
        many => format!(
            "{host} resolves to {}, addresses other servers cannot reach; \
             publish the box's public address",
            many.iter()
                .map(|(ip, kind)| format!("{ip} ({})", kind.trim_start_matches("a ")))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    Verdict::new(Status::Warning, fix)
}

/// A name compared without case and final dot.
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The value of zone-file TXT data: its quoted strings joined, escapes
/// undone (`"v=DKIM1; p=AB" "CD"` is `v=DKIM1; p=ABCD`).
pub fn unquote(data: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = data.chars();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') => quoted = true,
            (true, '"') => quoted = false,
            (true, '\\') => out.extend(chars.next()),
            (true, c) => out.push(c),
            (false, _) => {}
        }
    }
    out
}

/// `tag=value` pairs of a DKIM or DMARC record (RFC 6376 §3.2), tags in
/// lower case, whitespace around them dropped.
fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn no_space(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Compares what DNS served at `name` with the record `kind`/`data` the
/// domain must publish; `host` is the mail host, `host_ips` its addresses
/// as DNS serves them (for names published as A records, not CNAMEs).
pub fn compare(
    name: &str,
    kind: &str,
    data: &str,
    host: &str,
    answer: &Answer,
    host_ips: &[IpAddr],
) -> Verdict {
    let found = match answer {
        Answer::Failed(e) => {
            return Verdict::new(
                Status::Unknown,
                format!("DNS did not answer ({e}): check again later"),
            )
        }
        Answer::Nothing => Vec::new(),
        Answer::Found(f) => f.clone(),
    };
    let publish = format!("publish {kind} at {name} with the value above");
    match kind {
        "MX" => mx(&found, host, &publish),
        "TXT" => txt(&found, &unquote(data), name, &publish),
        "SRV" => srv(&found, data, host, &publish),
        "CNAME" => cname(&found, name, host, host_ips, &publish),
        _ => Verdict::new(Status::Unknown, format!("cannot check {kind} records")),
    }
}

fn mx(found: &[Rdata], host: &str, publish: &str) -> Verdict {
    let exchanges: Vec<&str> = found
        .iter()
        .filter_map(|r| match r {
            Rdata::Mx(_, x) => Some(x.as_str()),
            _ => None,
        })
        .collect();
    if exchanges.is_empty() {
        return Verdict::new(Status::Missing, publish);
    }
    if exchanges.iter().any(|x| same_name(x, host)) {
        if exchanges.len() > 1 {
            return Verdict::ok_but("other MX hosts are listed too; mail may go to them");
        }
        return Verdict::ok();
    }
    Verdict::new(
        Status::Wrong,
        format!(
            "MX points to {}: change it to {}",
            exchanges.join(", ").trim_end_matches('.'),
            host.trim_end_matches('.')
        ),
    )
}

fn txt(found: &[Rdata], expected: &str, name: &str, publish: &str) -> Verdict {
    // Records of the same kind as the expected one: same `v=` tag.
    let version = expected
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    let same_kind: Vec<&str> = found
        .iter()
        .filter_map(|r| match r {
            Rdata::Txt(t) => Some(t.as_str()),
            _ => None,
        })
        .filter(|t| {
            let first = t.trim_start().split([';', ' ']).next().unwrap_or("");
            // RFC 6376 §3.6.1: a DKIM key record's v= is only recommended.
            let key_without_version =
                version.eq_ignore_ascii_case("v=DKIM1") && tag(&tags(t), "p").is_some();
            no_space(first).eq_ignore_ascii_case(&no_space(version)) || key_without_version
        })
        .collect();
    let record = match same_kind.as_slice() {
        [] => return Verdict::new(Status::Missing, publish),
        [one] => *one,
        many => {
            // RFC 7208 §4.5, RFC 7489 §6.6.3, RFC 8461 §3.1: more than one
            // record of the kind counts as none.
            return Verdict::new(
                Status::Wrong,
                format!(
                    "{name} has {} {version} records and must have one: keep only the value above",
                    many.len()
                ),
            );
        }
    };
    if no_space(record).eq_ignore_ascii_case(&no_space(expected)) {
        return Verdict::ok();
    }
    match version.to_ascii_lowercase().as_str() {
        "v=spf1" => spf(record, publish),
        "v=dkim1" => dkim(record, expected, name),
        "v=dmarc1" => dmarc(record),
        "v=stsv1" => Verdict::new(
            Status::Wrong,
            format!("the MTA-STS id does not match this box's policy: change the TXT at {name} to the value above"),
        ),
        _ => Verdict::new(Status::Wrong, format!("change the TXT at {name} to the value above")),
    }
}

/// An SPF record other than the suggested one is fine when it lets the MX
/// hosts send (`mx`, RFC 7208 §5.4) and does not end in `+all`.
fn spf(record: &str, publish: &str) -> Verdict {
    let terms: Vec<String> = record
        .split_whitespace()
        .skip(1)
        .map(|t| t.to_ascii_lowercase())
        .collect();
    if terms.iter().any(|t| t == "+all" || t == "all") {
        return Verdict::new(
            Status::Wrong,
            "the SPF record ends in +all and lets anyone send as the domain: change it to the value above",
        );
    }
    if terms
        .iter()
        .any(|t| t == "mx" || t == "+mx" || t.starts_with("mx:") || t.starts_with("+mx:"))
    {
        return Verdict::ok_but("differs from the suggested value but lets the mail host send");
    }
    Verdict::new(
        Status::Wrong,
        format!("the SPF record does not let the mail host send (no `mx`): {publish}"),
    )
}

fn dkim(record: &str, expected: &str, name: &str) -> Verdict {
    let (got, want) = (tags(record), tags(expected));
    let key = |t: &[(String, String)]| tag(t, "p").map(no_space).unwrap_or_default();
    // RFC 6376 §3.6.1: k= defaults to rsa.
    let algorithm = |t: &[(String, String)]| tag(t, "k").unwrap_or("rsa").to_ascii_lowercase();
    if key(&got) == key(&want) && algorithm(&got) == algorithm(&want) {
        return Verdict::ok();
    }
    Verdict::new(
        Status::Wrong,
        format!("the key published at {name} is not this box's key: replace the TXT value with the value above"),
    )
}

/// Any valid DMARC policy is the domain owner's choice (RFC 7489 §6.3).
fn dmarc(record: &str) -> Verdict {
    let t = tags(record);
    match tag(&t, "p").map(str::to_ascii_lowercase).as_deref() {
        Some("none") => Verdict::ok_but(
            "p=none only reports: forged mail is still delivered; p=quarantine is suggested",
        ),
        Some("quarantine" | "reject") => {
            Verdict::ok_but("differs from the suggested value but is a valid policy")
        }
        _ => Verdict::new(
            Status::Wrong,
            "the DMARC record has no valid p= policy: change it to the value above",
        ),
    }
}

fn srv(found: &[Rdata], data: &str, host: &str, publish: &str) -> Verdict {
    let port: u16 = data
        .split_whitespace()
        .nth(2)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let targets: Vec<(u16, &str)> = found
        .iter()
        .filter_map(|r| match r {
            Rdata::Srv(_, _, p, t) => Some((*p, t.as_str())),
            _ => None,
        })
        .collect();
    if targets.is_empty() {
        return Verdict::new(Status::Missing, publish);
    }
    if targets
        .iter()
        .any(|(p, t)| *p == port && same_name(t, host))
    {
        return Verdict::ok();
    }
    let (p, t) = targets[0];
    Verdict::new(
        Status::Wrong,
        format!(
            "SRV points to {}:{p}: change it to {}:{port}",
            t.trim_end_matches('.'),
            host.trim_end_matches('.')
        ),
    )
}

/// A CNAME to the mail host, or A/AAAA records with the mail host's
/// addresses (what some DNS providers offer instead).
fn cname(found: &[Rdata], name: &str, host: &str, host_ips: &[IpAddr], publish: &str) -> Verdict {
    let mut targets = Vec::new();
    let mut ips = Vec::new();
    for r in found {
        match r {
            Rdata::Cname(t) => targets.push(t.as_str()),
            Rdata::Ip(ip) => ips.push(*ip),
            _ => {}
        }
    }
    if let Some(t) = targets.first() {
        if same_name(t, host) {
            return Verdict::ok();
        }
        return Verdict::new(
            Status::Wrong,
            format!(
                "{} is an alias of {}: change it to {}",
                name.trim_end_matches('.'),
                t.trim_end_matches('.'),
                host.trim_end_matches('.')
            ),
        );
    }
    if ips.is_empty() {
        return Verdict::new(Status::Missing, publish);
    }
    if !host_ips.is_empty() && ips.iter().all(|ip| host_ips.contains(ip)) {
        return Verdict::ok_but(
            "an address record instead of a CNAME: it must follow the mail host's address by hand",
        );
    }
    let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
    Verdict::new(
        Status::Wrong,
        format!(
            "{} has the address {}, not the mail host's: make it a CNAME to {}",
            name.trim_end_matches('.'),
            shown.join(", "),
            host.trim_end_matches('.')
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "mail.a.test";

    fn txt(values: &[&str]) -> Answer {
        Answer::Found(values.iter().map(|v| Rdata::Txt(v.to_string())).collect())
    }

    fn check(name: &str, kind: &str, data: &str, answer: Answer) -> Verdict {
        compare(
            name,
            kind,
            data,
            HOST,
            &answer,
            &["192.0.2.1".parse().unwrap()],
        )
    }

    #[test]
    fn host_addresses_other_servers_cannot_reach() {
        let ip = |s: &str| Rdata::Ip(s.parse().unwrap());
        let v = |list: Vec<Rdata>| host_address(HOST, &Answer::Found(list));
        assert_eq!(v(vec![ip("192.0.2.1"), ip("2001:db8::1")]), Verdict::ok());
        let loopback = v(vec![ip("127.0.0.1")]);
        assert_eq!(loopback.status, Status::Warning);
        assert_eq!(
            loopback.fix,
            "mail.a.test resolves to 127.0.0.1, a loopback address other servers cannot reach; \
             publish the box's public address"
        );
        let mixed = v(vec![ip("192.0.2.1"), ip("10.1.2.3"), ip("fe80::1")]);
        assert_eq!(mixed.status, Status::Warning);
        assert_eq!(
            mixed.fix,
            "mail.a.test resolves to 10.1.2.3 (private address) and fe80::1 (link-local address), \
             addresses other servers cannot reach; publish the box's public address"
        );
        assert_eq!(host_address(HOST, &Answer::Nothing).status, Status::Missing);
        assert_eq!(
            host_address(HOST, &Answer::Failed("timed out".into())).status,
            Status::Unknown
        );
    }

    #[test]
    fn unquoting() {
        assert_eq!(unquote("\"v=DKIM1; p=AB\" \"CD\""), "v=DKIM1; p=ABCD");
        assert_eq!(unquote("\"a\\\"b\\\\c\""), "a\"b\\c");
        assert_eq!(unquote("\"\""), "");
    }

    #[test]
    fn mx_records() {
        let data = "10 mail.a.test.";
        let ok = check(
            "a.test.",
            "MX",
            data,
            Answer::Found(vec![Rdata::Mx(5, "MAIL.A.TEST".into())]),
        );
        assert_eq!(ok.status, Status::Ok);
        let wrong = check(
            "a.test.",
            "MX",
            data,
            Answer::Found(vec![Rdata::Mx(10, "other.host.".into())]),
        );
        assert_eq!(wrong.status, Status::Wrong);
        assert_eq!(
            wrong.fix,
            "MX points to other.host: change it to mail.a.test"
        );
        let missing = check("a.test.", "MX", data, Answer::Nothing);
        assert_eq!(missing.status, Status::Missing);
        assert_eq!(missing.fix, "publish MX at a.test. with the value above");
        let unknown = check("a.test.", "MX", data, Answer::Failed("timed out".into()));
        assert_eq!(unknown.status, Status::Unknown);
        assert!(unknown.fix.starts_with("DNS did not answer"));
    }

    #[test]
    fn txt_records_by_meaning() {
        let spf = "\"v=spf1 mx -all\"";
        let s = |a| check("a.test.", "TXT", spf, a).status;
        assert_eq!(s(txt(&["v=spf1  mx   -all"])), Status::Ok);
        assert_eq!(
            s(txt(&["V=SPF1 MX -ALL", "google-site-verification=x"])),
            Status::Ok
        );
        assert_eq!(
            s(txt(&["v=spf1 mx include:_spf.example.net ~all"])),
            Status::Ok
        );
        assert_eq!(s(txt(&["v=spf1 ip4:192.0.2.9 -all"])), Status::Wrong);
        assert_eq!(s(txt(&["v=spf1 mx +all"])), Status::Wrong);
        assert_eq!(s(txt(&["v=spf1 mx -all", "v=spf1 a -all"])), Status::Wrong);
        assert_eq!(s(txt(&["something else"])), Status::Missing);

        let dkim = "\"v=DKIM1; k=ed25519; p=ABCDEF\"";
        let name = "pe202611._domainkey.a.test.";
        let d = |a| check(name, "TXT", dkim, a);
        assert_eq!(
            d(txt(&["v=DKIM1;k=ed25519;  p=ABC DEF"])).status,
            Status::Ok
        );
        assert_eq!(
            d(txt(&["v=DKIM1; k=ed25519; p=ABCDEG"])).status,
            Status::Wrong
        );
        assert_eq!(
            d(txt(&["v=DKIM1; p=ABCDEF"])).status,
            Status::Wrong,
            "k=rsa by default"
        );
        assert_eq!(
            d(txt(&["k=ed25519; p=ABCDEF"])).status,
            Status::Ok,
            "v= is optional"
        );
        let missing = d(Answer::Nothing);
        assert_eq!(
            missing.fix,
            "publish TXT at pe202611._domainkey.a.test. with the value above"
        );

        let dmarc = "\"v=DMARC1; p=quarantine; rua=mailto:postmaster@a.test\"";
        let m = |a| check("_dmarc.a.test.", "TXT", dmarc, a);
        assert_eq!(
            m(txt(&["v=DMARC1;p=quarantine;rua=mailto:postmaster@a.test"])).note,
            ""
        );
        assert_eq!(m(txt(&["v=DMARC1; p=reject"])).status, Status::Ok);
        assert!(m(txt(&["v=DMARC1; p=none"])).note.contains("p=none"));
        assert_eq!(
            m(txt(&["v=DMARC1; rua=mailto:x@a.test"])).status,
            Status::Wrong
        );

        let sts = "\"v=STSv1; id=0123\"";
        let t = |a| check("_mta-sts.a.test.", "TXT", sts, a).status;
        assert_eq!(t(txt(&["v=STSv1;id=0123"])), Status::Ok);
        assert_eq!(t(txt(&["v=STSv1; id=9999"])), Status::Wrong);
    }

    #[test]
    fn srv_and_cname() {
        let data = "0 1 993 mail.a.test.";
        let s = |a| check("_imaps._tcp.a.test.", "SRV", data, a);
        assert_eq!(
            s(Answer::Found(vec![Rdata::Srv(
                5,
                0,
                993,
                "mail.a.test".into()
            )]))
            .status,
            Status::Ok
        );
        let wrong = s(Answer::Found(vec![Rdata::Srv(
            0,
            1,
            143,
            "mail.a.test.".into(),
        )]));
        assert_eq!(
            wrong.fix,
            "SRV points to mail.a.test:143: change it to mail.a.test:993"
        );

        let c = |a| check("autoconfig.a.test.", "CNAME", "mail.a.test.", a);
        assert_eq!(
            c(Answer::Found(vec![Rdata::Cname("mail.a.test.".into())])).status,
            Status::Ok
        );
        assert_eq!(
            c(Answer::Found(vec![Rdata::Cname("x.test.".into())])).status,
            Status::Wrong
        );
        let by_address = c(Answer::Found(vec![Rdata::Ip("192.0.2.1".parse().unwrap())]));
        assert_eq!(by_address.status, Status::Ok);
        assert!(!by_address.note.is_empty());
        assert_eq!(
            c(Answer::Found(vec![Rdata::Ip("192.0.2.7".parse().unwrap())])).status,
            Status::Wrong
        );
        assert_eq!(c(Answer::Nothing).status, Status::Missing);
    }
}
