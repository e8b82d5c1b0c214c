//! A domain's DNS records on the page: each name and value as text that
//! wraps and is selected whole with one click (no script needed; a form
//! field would cut a long value off, and the bottom of each underscore
//! with it), and after "Check DNS now" what DNS serves for each, with what
//! to fix, and the blocklist results.

use serde_json::Value;

use crate::http::Reply;
use crate::session::Session;
use crate::{dnscheck, State};

use super::{error_box, esc, page};

/// `GET /domains/NAME/check`: the records with the live check.
pub(super) fn checked(state: &State, s: &Session, name: &str) -> Reply {
    let reply = dnscheck::check(state, name);
    match reply.json_value() {
        Some(value) => page(200, "DNS records", Some(s), &records(&value)),
        None => page(
            reply.status,
            "DNS records",
            Some(s),
            &error_box(Some(&reply.error_message())),
        ),
    }
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or("")
}

/// A value to copy: all of it shown, selected whole by a click.
fn copy_field(value: &str) -> String {
    format!("<code class=\"copy\">{}</code>", esc(value))
}

/// The DNS records section of a domain: `value` is the answer of
/// `/api/domains/NAME/dns`, or of `/check` (with a status per record and
/// the blocklists).
pub(super) fn records(value: &Value) -> String {
    let domain = str_of(value, "domain");
    let checked = value.get("dnsbl").is_some();
    let rows: String = value["records"]
        .as_array()
        .map(|list| list.iter().map(|r| record_row(r, checked)).collect())
        .unwrap_or_default();
    let status_head = if checked { "<th>In DNS</th>" } else { "" };
    let intro = if checked {
        format!(
            "<p>Checked just now through {}. A record changed at the DNS provider may take \
             as long as its old TTL to show here. <a href=\"/domains/{}/check\">Check again</a></p>",
            esc(str_of(value, "resolver")),
            esc(domain)
        )
    } else {
        format!(
            "<p>Publish these at your DNS provider. A click on a name or value selects all \
             of it to copy (TXT values are plain text here; the zone file below has them \
             quoted and split). \
             <a href=\"/domains/{}/check\">Check DNS now</a></p>",
            esc(domain)
        )
    };
    let zone = value
        .get("zone")
        .and_then(Value::as_str)
        .map(|z| {
            format!(
                "<label for=\"zone\">All records as a zone file</label>\
                 <textarea id=\"zone\" class=\"copy\" readonly rows=\"8\">{}</textarea>",
                esc(z)
            )
        })
        .unwrap_or_default();
    let blocklists = value.get("dnsbl").map(dnsbl_section).unwrap_or_default();
    // Every record below points at the mail host: when it cannot work,
    // that comes first.
    let host_problem = value
        .get("host_problem")
        .and_then(Value::as_str)
        .map(|p| {
            format!(
                "<p id=\"host-problem\" class=\"error\" role=\"alert\">{}</p>",
                esc(p)
            )
        })
        .unwrap_or_default();
    format!(
        "<section><h2>DNS records for {d}</h2>{host_problem}{intro}\
         <table class=\"records\"><tr><th>Name</th><th>Type</th><th>Value</th>{status_head}</tr>{rows}</table>\
         {zone}<p><a href=\"/domains\">All domains</a></p></section>{blocklists}",
        d = esc(domain),
    )
}

fn record_row(r: &Value, checked: bool) -> String {
    let (name, kind, data) = (str_of(r, "name"), str_of(r, "type"), str_of(r, "data"));
    let status_cell = if checked {
        let status = str_of(r, "status");
        let found: Vec<&str> = r["found"]
            .as_array()
            .map(|f| f.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let found = if found.is_empty() || status == "ok" {
            String::new()
        } else {
            format!(
                "<div>DNS has: <code>{}</code></div>",
                esc(&found.join(" | "))
            )
        };
        let fix = [str_of(r, "fix"), str_of(r, "note")]
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| format!("<div>{}</div>", esc(t)))
            .collect::<String>();
        format!(
            "<td><span class=\"status {status}\">{status}</span>{found}{fix}</td>",
            status = esc(status)
        )
    } else {
        String::new()
    };
    // DNS providers' forms take a TXT value as plain text and split it
    // themselves; the zone file below has it quoted and split.
    let value = match kind {
        "A/AAAA" => esc(data),
        "TXT" => copy_field(&dnscheck::unquote(data)),
        _ => copy_field(data),
    };
    format!(
        "<tr><td class=\"name\">{}</td><td class=\"kind\">{}</td><td>{value}</td>{status_cell}</tr>",
        copy_field(name),
        esc(kind)
    )
}

fn dnsbl_section(b: &Value) -> String {
    let rows: String = b["results"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| {
                    let status = str_of(r, "status");
                    format!(
                        "<tr><td class=\"data\">{}</td><td class=\"data\">{}</td>\
                         <td><span class=\"status {s}\">{s}</span> {}</td></tr>",
                        esc(str_of(r, "address")),
                        esc(str_of(r, "list")),
                        esc(str_of(r, "meaning")),
                        s = esc(status)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let table = if rows.is_empty() {
        String::new()
    } else {
        format!("<table><tr><th>Address</th><th>Blocklist</th><th>Result</th></tr>{rows}</table>")
    };
    format!(
        "<section><h2>Blocklists</h2><p>Receivers refuse mail from addresses on these lists. \
         Checked: {}.</p>{table}</section>",
        esc(str_of(b, "note"))
    )
}
