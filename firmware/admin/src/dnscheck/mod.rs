//! The live DNS check of a domain: each record the domain must publish
//! (`pochta_filter::records`) asked of the configured resolver (`[dns]`)
//! and compared with what it should be, and the box's public address
//! looked up on DNS blocklists.
//!
//! Layout: this file asks DNS (all questions at once, each bounded in
//! time, on a small runtime of its own: the admin page runs on plain
//! threads); `compare` judges the answers; `dnsbl` knows the blocklists.
//!
//! Nothing is cached: the person fixing a record wants to see the change
//! at once (their resolver's cache is another matter, and the page says so).

mod compare;
mod dnsbl;

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use serde_json::json;

use crate::http::Reply;
use crate::State;
use compare::{Answer, Rdata};

pub use compare::unquote;

/// A question: a name and what to ask about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Question {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// A and AAAA together.
    Address,
    /// One record type.
    Record(&'static str),
}

/// A record the domain must publish: owner name, type, zone-file data.
type Expected = (String, String, String);

/// `GET /api/domains/NAME/check`.
pub fn check(state: &State, name: &str) -> Reply {
    let reply = crate::directory::dns(state, name);
    let Some(expected) = reply.json_value() else {
        return reply;
    };
    let records: Vec<Expected> = expected["records"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| {
                    let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                    (s("name"), s("type"), s("data"))
                })
                .collect()
        })
        .unwrap_or_default();
    let host = state.ctx.hostname.trim_end_matches('.').to_owned();
    let dns = &state.ctx.dns;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "DNS check: cannot start a runtime");
            return Reply::error(500, "cannot run the DNS check now; try again");
        }
    };
    let resolver = match resolver(dns) {
        Ok(r) => r,
        Err(e) => {
            return Reply::error(
                503,
                format!("cannot set up the DNS resolver ({e}): check [dns] servers"),
            )
        }
    };
    // Each question may take every attempt's timeout; past this it is
    // unknown. Two rounds (records, then blocklists) bound the whole check.
    let limit = Duration::from_secs(dns.timeout_secs.max(1) * 2 + 1);
    let host_question = Question {
        name: format!("{host}."),
        kind: Kind::Address,
    };
    let (answers, blocklists) = runtime.block_on(async {
        let answers = ask_all(&resolver, questions(&host_question, &records), limit).await;
        let host_answer = answer_to(&answers, &host_question);
        let blocklists = blocklists(&resolver, &host, &host_answer, limit).await;
        (answers, blocklists)
    });
    let host_answer = answer_to(&answers, &host_question);
    let host_ips = ips(&host_answer);
    let mut rows = vec![host_row(&host, &host_answer)];
    for (name, kind, data) in &records {
        let asked = |kind| {
            answer_to(
                &answers,
                &Question {
                    name: name.clone(),
                    kind,
                },
            )
        };
        let answer = match static_kind(kind) {
            "CNAME" => merge(asked(Kind::Record("CNAME")), asked(Kind::Address)),
            k => asked(Kind::Record(k)),
        };
        let verdict = compare::compare(name, kind, data, &host, &answer, &host_ips);
        rows.push(row(name, kind, data, &answer, &verdict));
    }
    Reply::json(
        200,
        &json!({
            "domain": expected["domain"],
            "host": host,
            "host_problem": expected["host_problem"],
            "resolver": resolver_name(dns),
            "records": rows,
            "dnsbl": blocklists,
        }),
    )
}

/// What to ask: the mail host's addresses and each record; names that
/// should be CNAMEs are also asked for addresses (some DNS providers only
/// offer A records there).
fn questions(host: &Question, records: &[Expected]) -> Vec<Question> {
    let mut out = vec![host.clone()];
    for (name, kind, _) in records {
        let kind = static_kind(kind);
        out.push(Question {
            name: name.clone(),
            kind: Kind::Record(kind),
        });
        if kind == "CNAME" {
            out.push(Question {
                name: name.clone(),
                kind: Kind::Address,
            });
        }
    }
    out
}

/// The answer to a question; one that got lost (its task failed) is
/// unknown, not missing.
fn answer_to(answers: &HashMap<Question, Answer>, q: &Question) -> Answer {
    answers
        .get(q)
        .cloned()
        .unwrap_or_else(|| Answer::Failed("no answer".into()))
}

fn static_kind(kind: &str) -> &'static str {
    match kind {
        "MX" => "MX",
        "TXT" => "TXT",
        "SRV" => "SRV",
        _ => "CNAME",
    }
}

/// A CNAME answer, or else the name's own addresses.
fn merge(cname: Answer, address: Answer) -> Answer {
    match (cname, address) {
        (a @ (Answer::Found(_) | Answer::Failed(_)), _) => a,
        (Answer::Nothing, a) => a,
    }
}

fn ips(answer: &Answer) -> Vec<IpAddr> {
    match answer {
        Answer::Found(list) => list
            .iter()
            .filter_map(|r| match r {
                Rdata::Ip(ip) => Some(*ip),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn found(answer: &Answer) -> Vec<String> {
    match answer {
        Answer::Found(list) => list.iter().map(Rdata::show).collect(),
        _ => Vec::new(),
    }
}

fn row(
    name: &str,
    kind: &str,
    data: &str,
    answer: &Answer,
    verdict: &compare::Verdict,
) -> serde_json::Value {
    json!({
        "name": name,
        "type": kind,
        "data": data,
        "status": verdict.status.name(),
        "found": found(answer),
        "fix": verdict.fix,
        "note": verdict.note,
    })
}

/// The mail host's own address records: every other record points at it.
fn host_row(host: &str, answer: &Answer) -> serde_json::Value {
    let verdict = compare::host_address(host, answer);
    json!({
        "name": format!("{host}."),
        "type": "A/AAAA",
        "data": "the box's public address",
        "status": verdict.status.name(),
        "found": found(answer),
        "fix": verdict.fix,
        "note": verdict.note,
    })
}

/// The resolver the check asks, for the sentence "Checked just now
/// through …".
fn resolver_name(dns: &pochta_config::Dns) -> String {
    let servers: Vec<String> = dns.servers.iter().map(ToString::to_string).collect();
    match servers.as_slice() {
        [] => "the system's resolver (/etc/resolv.conf)".to_owned(),
        [one] => format!("the DNS server {one}"),
        many => format!("the DNS servers {}", many.join(", ")),
    }
}

/// Each public address of the mail host on each blocklist.
async fn blocklists(
    resolver: &TokioResolver,
    host: &str,
    host_answer: &Answer,
    limit: Duration,
) -> serde_json::Value {
    let addresses = ips(host_answer);
    let mut results = Vec::new();
    let mut questions = Vec::new();
    for ip in &addresses {
        for list in dnsbl::BLOCKLISTS {
            let skip = dnsbl::not_public(*ip).or_else(|| {
                (ip.is_ipv6() && !list.ipv6)
                    .then(|| format!("{} lists IPv4 addresses only", list.zone))
            });
            if skip.is_none() {
                questions.push(Question {
                    name: dnsbl::query_name(*ip, list.zone),
                    kind: Kind::Record("A"),
                });
            }
            results.push((*ip, list.zone, skip));
        }
    }
    let answers = ask_all(resolver, questions, limit).await;
    let rows: Vec<serde_json::Value> = results
        .into_iter()
        .map(|(ip, zone, skip)| {
            let base = |status: &str, code: Option<String>, meaning: String| {
                json!({ "address": ip.to_string(), "list": zone, "status": status,
                        "code": code, "meaning": meaning })
            };
            if let Some(why) = skip {
                return base("skipped", None, why);
            }
            let question = Question {
                name: dnsbl::query_name(ip, zone),
                kind: Kind::Record("A"),
            };
            match answers.get(&question) {
                Some(Answer::Found(list)) => {
                    let code = list.iter().find_map(|r| match r {
                        Rdata::Ip(IpAddr::V4(v4)) => Some(*v4),
                        _ => None,
                    });
                    match code.map(|c| (c, dnsbl::meaning(zone, c))) {
                        Some((c, dnsbl::Meaning::Listed(why))) => {
                            base("listed", Some(c.to_string()), why)
                        }
                        Some((c, dnsbl::Meaning::Unknown(why))) => {
                            base("unknown", Some(c.to_string()), why)
                        }
                        None => base("unknown", None, "an answer without an address".into()),
                    }
                }
                Some(Answer::Nothing) => base("ok", None, "not listed".into()),
                Some(Answer::Failed(e)) => {
                    base("unknown", None, format!("DNS did not answer ({e})"))
                }
                None => base("unknown", None, "DNS did not answer".into()),
            }
        })
        .collect();
    let note = match host_answer {
        Answer::Found(_) => format!("the addresses of {host} as DNS serves them"),
        Answer::Nothing => format!(
            "{host} has no A/AAAA record, so there is no public address to check: publish it first"
        ),
        Answer::Failed(_) => format!("DNS did not answer for {host}: no address to check"),
    };
    json!({
        "addresses": addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "note": note,
        "results": rows,
    })
}

/// Asks every question at once; each is bounded by `limit`.
async fn ask_all(
    resolver: &TokioResolver,
    questions: Vec<Question>,
    limit: Duration,
) -> HashMap<Question, Answer> {
    let mut tasks = tokio::task::JoinSet::new();
    for q in questions {
        let resolver = resolver.clone();
        tasks.spawn(async move {
            let answer = match tokio::time::timeout(limit, ask(&resolver, &q)).await {
                Ok(a) => a,
                Err(_) => Answer::Failed(format!("no answer within {}s", limit.as_secs())),
            };
            (q, answer)
        });
    }
    let mut out = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok((q, a)) = done {
            out.insert(q, a);
        }
    }
    out
}

async fn ask(resolver: &TokioResolver, q: &Question) -> Answer {
    let name = match Name::from_str(&q.name) {
        Ok(n) => n,
        Err(e) => return Answer::Failed(format!("bad name {}: {e}", q.name)),
    };
    let result = match q.kind {
        Kind::Address => resolver
            .lookup_ip(name)
            .await
            .map(|l| l.iter().map(Rdata::Ip).collect::<Vec<_>>()),
        Kind::Record(kind) => {
            let rtype = match kind {
                "MX" => RecordType::MX,
                "TXT" => RecordType::TXT,
                "SRV" => RecordType::SRV,
                "A" => RecordType::A,
                _ => RecordType::CNAME,
            };
            resolver.lookup(name, rtype).await.map(|l| {
                l.answers()
                    .iter()
                    .filter_map(|r| rdata(&r.data, rtype))
                    .collect::<Vec<_>>()
            })
        }
    };
    match result {
        Ok(list) if list.is_empty() => Answer::Nothing,
        Ok(list) => Answer::Found(list),
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Answer::Nothing,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The data of an answer record of the type asked (CNAMEs on the way to a
/// TXT or A record are left out).
fn rdata(data: &RData, asked: RecordType) -> Option<Rdata> {
    let name = |n: &Name| n.to_ascii().to_ascii_lowercase();
    Some(match (data, asked) {
        (RData::MX(mx), RecordType::MX) => Rdata::Mx(mx.preference, name(&mx.exchange)),
        (RData::TXT(txt), RecordType::TXT) => {
            let bytes: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            Rdata::Txt(String::from_utf8_lossy(&bytes).into_owned())
        }
        (RData::SRV(srv), RecordType::SRV) => {
            Rdata::Srv(srv.priority, srv.weight, srv.port, name(&srv.target))
        }
        (RData::CNAME(c), RecordType::CNAME) => Rdata::Cname(name(&c.0)),
        (RData::A(a), RecordType::A) => Rdata::Ip(IpAddr::V4(a.0)),
        _ => return None,
    })
}

/// The resolver `[dns]` describes (as the queue and the inbound checks
/// build theirs), without a cache worth the name: it lives for one check.
fn resolver(dns: &pochta_config::Dns) -> Result<TokioResolver, String> {
    let mut builder = pochta_net::dns::resolver_builder(dns)?;
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(dns.timeout_secs.max(1));
    opts.attempts = 1;
    opts.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv4AndIpv6;
    builder.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvers_are_named_for_a_sentence() {
        let mut dns = pochta_config::Dns::default();
        assert_eq!(
            resolver_name(&dns),
            "the system's resolver (/etc/resolv.conf)"
        );
        dns.servers = vec![([127, 0, 0, 1], 5353).into()];
        assert_eq!(resolver_name(&dns), "the DNS server 127.0.0.1:5353");
        dns.servers.push(([192, 0, 2, 53], 53).into());
        assert_eq!(
            resolver_name(&dns),
            "the DNS servers 127.0.0.1:5353, 192.0.2.53:53"
        );
    }
}
