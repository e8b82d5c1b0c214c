"""The live DNS check of a domain against a real DNS server (dnsmasq on
loopback, authoritative for the test zones and for fake blocklist zones):
records served right, served wrong and missing are marked so with what to
fix, the mail host's address is looked up on the blocklists, and a DNS
server that does not answer gives `unknown` within a bounded time.

Needs dnsmasq (Debian dnsmasq-base)."""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import time

import pytest

from admin_http import AdminClient, logged_in
from dns import DNSMASQ, DnsServer, answer_count

pytestmark = pytest.mark.skipif(
    not (shutil.which("dnsmasq") or os.path.exists(DNSMASQ)),
    reason="dnsmasq is not installed (apt-get install dnsmasq-base)",
)

DOMAIN = "a.test"
HOST = "mail.a.test"
LISTED = "203.0.113.7"      # on the fake ZEN with 127.0.0.2 (SBL)
REFUSED = "203.0.113.8"     # the fake ZEN answers "public resolver" for it
ZEN = "zen.spamhaus.org"
LISTS = [ZEN, "bl.spamcop.net", "b.barracudacentral.org"]


def txt_value(rdata: str) -> str:
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', rdata)
    return "".join(s.replace('\\"', '"').replace("\\\\", "\\") for s in strings)


def reversed_ip(ip: str) -> str:
    return ".".join(reversed(ip.split(".")))


@pytest.fixture
def dns(tmp_path):
    server = DnsServer(tmp_path / "dns", domains=["test", *LISTS])
    yield server
    server.stop()


def publish(dns: DnsServer, records: list[dict]) -> dict[str, str]:
    """Serves the records: most as asked, some wrong, some left out.
    Returns the status the check must give each (name, type)."""
    expected = {}
    for r in records:
        name, kind, data = r["name"].rstrip("."), r["type"], r["data"]
        key = f"{name} {kind}"
        if kind == "MX":
            dns.mx(name, HOST, 10)
            expected[key] = "ok"
        elif kind == "TXT" and name == DOMAIN:
            # The same SPF with other spacing, beside an unrelated TXT.
            dns.txt(name, "v=spf1   mx    -all")
            dns.txt(name, "site-verification=abc")
            expected[key] = "ok"
        elif kind == "TXT" and name.startswith("pr"):
            # The RSA key: dns.py splits it into 255-octet strings.
            dns.txt(name, txt_value(data))
            expected[key] = "ok"
        elif kind == "TXT" and name.startswith("pe"):
            # Another Ed25519 key than the box's.
            dns.txt(name, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
            expected[key] = "wrong"
        elif kind == "TXT" and name.startswith("_dmarc"):
            expected[key] = "missing"
        elif kind == "TXT":  # _mta-sts
            dns.txt(name, txt_value(data))
            expected[key] = "ok"
        elif kind == "SRV":
            prio, weight, port, target = data.split()
            if name.startswith("_imaps"):
                dns.srv(name, HOST, 143, 0, 1)
                expected[key] = "wrong"
            elif name.startswith("_pop3s"):
                expected[key] = "missing"
            else:
                dns.srv(name, target.rstrip("."), int(port), int(prio), int(weight))
                expected[key] = "ok"
        elif kind == "CNAME":
            if name.startswith("autoconfig"):
                dns.cname(name, HOST)
                expected[key] = "ok"
            elif name.startswith("autodiscover"):
                # An address record with the mail host's address.
                dns.a(name, LISTED)
                expected[key] = "ok"
            else:  # mta-sts, an alias of another host
                dns.cname(name, f"www.{DOMAIN}")
                expected[key] = "wrong"
    dns.a(HOST, LISTED)
    dns.a(HOST, REFUSED)
    dns.a(f"www.{DOMAIN}", "203.0.113.99")
    expected[f"{HOST} A/AAAA"] = "ok"
    dns.a(f"{reversed_ip(LISTED)}.{ZEN}", "127.0.0.2")
    dns.a(f"{reversed_ip(REFUSED)}.{ZEN}", "127.255.255.254")
    return expected


def test_check_marks_each_record_and_the_blocklists(pochta, dns):
    pochta.add_domain(DOMAIN)
    pochta.configure(hostname=HOST, dns={"servers": [dns.server], "timeout_secs": 2})
    pochta.start()
    c = logged_in(pochta)
    records = c.get(f"/api/domains/{DOMAIN}/dns").json["records"]
    expected = publish(dns, records)
    dns.start()
    assert answer_count(dns.host, dns.port, HOST, "A") == 2, "dnsmasq serves one address of two"

    r = c.get(f"/api/domains/{DOMAIN}/check")
    assert r.status == 200, r
    result = r.json
    assert result["domain"] == DOMAIN and result["host"] == HOST
    rows = {f"{row['name'].rstrip('.')} {row['type']}": row for row in result["records"]}
    got = {key: row["status"] for key, row in rows.items()}
    assert got == expected, {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected)
                             if got.get(k) != expected.get(k)}

    assert rows[f"{HOST} A/AAAA"]["found"] == [LISTED, REFUSED] or \
        sorted(rows[f"{HOST} A/AAAA"]["found"]) == sorted([LISTED, REFUSED])
    ed = next(row for key, row in rows.items() if key.startswith("pe"))
    assert ed["fix"].startswith("the key published at pe") and "replace the TXT value" in ed["fix"], ed
    assert "11qYAYKxCrfVS" in ed["found"][0]
    dmarc = rows[f"_dmarc.{DOMAIN} TXT"]
    assert dmarc["fix"] == f"publish TXT at _dmarc.{DOMAIN}. with the value above" and dmarc["found"] == []
    imaps = rows[f"_imaps._tcp.{DOMAIN} SRV"]
    assert imaps["fix"] == f"SRV points to {HOST}:143: change it to {HOST}:993", imaps
    mta_sts = rows[f"mta-sts.{DOMAIN} CNAME"]
    assert mta_sts["fix"] == f"mta-sts.{DOMAIN} is an alias of www.{DOMAIN}: change it to {HOST}", mta_sts
    assert rows[f"autodiscover.{DOMAIN} CNAME"]["note"], "an A record in place of a CNAME is noted"
    spf = rows[f"{DOMAIN} TXT"]
    assert spf["fix"] == "" and "v=spf1   mx    -all" in spf["found"]

    bl = {(x["address"], x["list"]): x for x in result["dnsbl"]["results"]}
    assert sorted(result["dnsbl"]["addresses"]) == sorted([LISTED, REFUSED])
    assert set(bl) == {(ip, zone) for ip in (LISTED, REFUSED) for zone in LISTS}
    listed = bl[(LISTED, ZEN)]
    assert listed["status"] == "listed" and listed["code"] == "127.0.0.2", listed
    assert listed["meaning"].startswith("SBL"), listed
    refused = bl[(REFUSED, ZEN)]
    assert refused["status"] == "unknown" and "public or open resolvers" in refused["meaning"], refused
    for zone in LISTS[1:]:
        for ip in (LISTED, REFUSED):
            assert bl[(ip, zone)]["status"] == "ok", bl[(ip, zone)]

    # The page shows the same, names and values as text to copy (a form
    # field cut them off; the browser test measures that they are whole).
    page = c.get(f"/domains/{DOMAIN}")
    text = page.body.decode()
    assert page.status == 200 and "<script" not in text
    assert f'href="/domains/{DOMAIN}/check"' in text
    assert f'<td class="name"><code class="copy">{DOMAIN}.</code></td><td class="kind">MX</td>' in text
    assert 'readonly rows="8">' in text, "the zone file to copy at once"
    checked = c.get(f"/domains/{DOMAIN}/check")
    assert checked.status == 200, checked
    text = html.unescape(checked.body.decode())
    assert "<script" not in text and " style=" not in text
    for status in ("ok", "wrong", "missing"):
        assert f'<span class="status {status}">{status}</span>' in text, status
    assert imaps["fix"] in text and mta_sts["fix"] in text
    assert '<span class="status listed">listed</span>' in text and listed["meaning"] in text
    assert "public or open resolvers" in text

    # Fixing a record shows at the next check: nothing is cached.
    dns.stop()
    dns.txt(f"_dmarc.{DOMAIN}", f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{DOMAIN}")
    dns.start()
    rows = {f"{row['name'].rstrip('.')} {row['type']}": row
            for row in c.get(f"/api/domains/{DOMAIN}/check").json["records"]}
    assert rows[f"_dmarc.{DOMAIN} TXT"]["status"] == "ok"


def test_check_of_private_address_and_refusals(pochta, dns):
    pochta.add_domain(DOMAIN)
    pochta.configure(hostname=HOST, dns={"servers": [dns.server], "timeout_secs": 2})
    dns.a(HOST, "192.168.1.20")
    dns.start()
    pochta.start()
    anon = AdminClient(pochta.addr("admin"))
    r = anon.get(f"/api/domains/{DOMAIN}/check")
    assert r.status == 401, r
    assert anon.get(f"/domains/{DOMAIN}/check").status == 303
    c = logged_in(pochta)
    assert c.get("/api/domains/other.test/check").status == 404
    result = c.get(f"/api/domains/{DOMAIN}/check").json
    rows = {row["type"] + " " + row["name"]: row for row in result["records"]}
    # Other servers cannot reach a private address: not ok, with the fix.
    host_row = rows[f"A/AAAA {HOST}."]
    assert host_row["status"] == "warning", host_row
    assert host_row["fix"] == (f"{HOST} resolves to 192.168.1.20, a private address other servers "
                               "cannot reach; publish the box's public address"), host_row
    assert rows[f"MX {DOMAIN}."]["status"] == "missing"
    for x in result["dnsbl"]["results"]:
        assert x["status"] == "skipped" and "private address" in x["meaning"], x


def test_loopback_address_of_the_mail_host_is_a_warning(pochta, dns):
    pochta.add_domain(DOMAIN)
    pochta.configure(hostname=HOST, dns={"servers": [dns.server], "timeout_secs": 2})
    # One public address beside the loopback one: the loopback one still
    # cannot work for the servers that pick it.
    dns.a(HOST, "127.0.0.1")
    dns.a(HOST, "203.0.113.5")
    dns.start()
    pochta.start()
    c = logged_in(pochta)
    result = c.get(f"/api/domains/{DOMAIN}/check").json
    host_row = next(r for r in result["records"] if r["type"] == "A/AAAA")
    assert host_row["status"] == "warning", host_row
    assert host_row["fix"] == (f"{HOST} resolves to 127.0.0.1, a loopback address other servers "
                               "cannot reach; publish the box's public address"), host_row
    assert sorted(host_row["found"]) == ["127.0.0.1", "203.0.113.5"]
    page = c.get(f"/domains/{DOMAIN}/check")
    text = html.unescape(page.body.decode())
    assert page.status == 200 and '<span class="status warning">warning</span>' in text
    assert f"{HOST} resolves to 127.0.0.1, a loopback address" in text
    # The resolver is named with the word the sentence needs.
    assert f"Checked just now through the DNS server {dns.server}." in text, text


def test_silent_dns_server_gives_unknown_in_bounded_time(pochta):
    # A UDP socket nobody reads: queries vanish.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        pochta.add_domain(DOMAIN)
        pochta.configure(hostname=HOST, dns={"servers": [f"127.0.0.1:{silent.getsockname()[1]}"],
                                             "timeout_secs": 1})
        pochta.start()
        c = logged_in(pochta)
        started = time.monotonic()
        r = c.get(f"/api/domains/{DOMAIN}/check")
        took = time.monotonic() - started
    assert r.status == 200, r
    assert took < 12, f"the check took {took:.1f}s with a 1 s DNS timeout"
    for row in r.json["records"]:
        assert row["status"] == "unknown", row
        assert row["fix"].startswith("DNS did not answer"), row
    assert r.json["dnsbl"]["addresses"] == []
    assert "did not answer" in r.json["dnsbl"]["note"]
