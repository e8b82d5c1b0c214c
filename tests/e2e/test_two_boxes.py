"""Two Pochta boxes and a real DNS server (dnsmasq) on loopback: mail from
a.test to b.test goes out of box A's queue, DKIM-signed, over MX and
STARTTLS into box B, which checks SPF, DKIM and DMARC (issue 4, "two
boxes, one test"); an independent verifier (dkimpy) checks box A's
signature. Then MTA-STS (RFC 8461): box B's domain publishes a policy over
HTTPS, and box A obeys it.

Box A is 127.0.0.2 (and sends from there: `[queue] bind_address`, the
address its SPF record names); box B is 127.0.0.3 on a free port box A is
told about (`[queue] remote_port`; test_queue.py covers the real port 25).
"""

from __future__ import annotations

import imaplib
import os
import re

import pytest

from dns import DnsServer, free_port
from harness import Pochta, make_message, tls_context, unique_id
from https_server import HttpsServer
from test_mail_auth import auth_results, load_zone, method, txt_value, zone_records
from test_queue import FAST_QUEUE, box, log_events, wait_log
from testca import TestCA

dkim = pytest.importorskip("dkim", reason="pip install dkimpy")

ALICE, ALICE_PW = "alice@a.test", "Lime-tree-41-under"
BOB, BOB_PW = "bob@b.test", "Blue-river-62-over"


@pytest.fixture
def world(tmp_path):
    """DNS for a.test and b.test (authoritative for all of .test, as the
    DMARC tree walk needs) and the things to stop at the end."""
    dns = DnsServer(tmp_path / "dns", domains=["a.test", "b.test", "test"])
    made: list = []
    yield dns, made
    for thing in reversed(made):
        if isinstance(thing, Pochta):
            thing.close()
        else:
            thing.stop()
    dns.stop()


def two_boxes(tmp_path, world, b_tls=None, a_env=None, queue_extra=None, auth=True):
    """Box A (a.test, alice) and box B (b.test, bob) with DNS for both:
    a.test's records as `pochta domain dns` prints them, b.test's MX.
    Started; returns (a, b)."""
    dns, made = world
    # A free port, not 25: test_queue.py covers the real MX port, and a
    # second test run on the same machine may hold 127.0.0.3:25.
    port = free_port("127.0.0.3")
    queue = dict(FAST_QUEUE, bind_address="127.0.0.2", remote_port=port, **(queue_extra or {}))
    a = box(tmp_path / "a", "127.0.0.2", "mx.a.test", dns, queue)
    made.append(a)
    a.add_domain("a.test")
    a.add_account(ALICE, ALICE_PW)
    a.env.update(a_env or {})
    b = box(tmp_path / "b", "127.0.0.3", "mx.b.test", dns, FAST_QUEUE, smtp_port=port)
    made.append(b)
    b.add_domain("b.test")
    b.add_account(BOB, BOB_PW)
    if auth:
        b.configure(auth={"checks": True})
    if b_tls:
        b.configure(tls={"cert_file": str(b_tls[0]), "key_file": str(b_tls[1])})
    records = zone_records(a.cli("domain dns", "a.test", "--host", "mx.a.test").stdout)
    load_zone(dns, records)
    dns.a("mx.a.test", "127.0.0.2")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.3")
    return a, b, records


def submit(a: Pochta, marker: str) -> bytes:
    msg = make_message(sender=ALICE, to=BOB, subject=f"two boxes {marker}",
                       body=f"body {marker}\r\n",
                       extra_headers=["MIME-Version: 1.0", "Content-Type: text/plain"])
    with a.submit_client(ALICE, ALICE_PW) as s:
        s.sendmail(ALICE, [BOB], msg)
    return msg


def read_over_imap(b: Pochta, marker: str) -> bytes:
    host, port = b.addr("imap")
    with imaplib.IMAP4(host, port, timeout=15) as im:
        im.starttls(ssl_context=tls_context())
        im.login(BOB, BOB_PW)
        im.select("INBOX")
        typ, data = im.search(None, "SUBJECT", f'"two boxes {marker}"')
        assert typ == "OK" and len(data[0].split()) == 1, data
        typ, fetched = im.fetch(data[0].split()[0], "(BODY.PEEK[])")
        assert typ == "OK"
        return fetched[0][1]


def test_signed_mail_passes_spf_dkim_and_dmarc_at_the_other_box(tmp_path, world):
    dns, made = world
    a, b, records = two_boxes(tmp_path, world)
    dns.start()
    a.start()
    b.start()
    marker = unique_id("auth")
    sent = submit(a, marker)
    line = wait_log(a, "delivered", 1, 30, f"to=<{BOB}>")[0]
    assert "relay=mx.b.test" in line and "tls=yes" in line, line
    stored = read_over_imap(b, marker)
    # Box B's verdict: everything passes, and it says so first.
    ar = auth_results(stored)
    assert ar.startswith("mx.b.test;"), ar
    assert method(ar, "spf", "smtp.mailfrom") == "pass", ar
    assert re.findall(r"dkim=(\w+)", ar) == ["pass", "pass"], ar
    assert method(ar, "dmarc") == "pass", ar
    assert any(f"from_domain=a.test" in l and "dmarc=pass" in l for l in log_events(b, "auth_checked"))
    # Box A signed with both keys, as a.test.
    assert stored.count(b"DKIM-Signature:") == 2, stored[:2000]
    assert b"d=a.test" in stored and b"a=ed25519-sha256" in stored and b"a=rsa-sha256" in stored
    # An independent verifier agrees, with the records box A told us to publish.
    txt = {n: txt_value(d).encode() for n, k, d in records if k == "TXT"}

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return txt.get(n if n.endswith(".") else n + ".")

    verifier = dkim.DKIM(stored)
    for i in range(2):
        assert verifier.verify(idx=i, dnsfunc=dnsfunc), f"dkimpy rejects box A's signature {i}"
    # What alice wrote arrives unchanged under the added headers.
    assert stored.endswith(sent.split(b"\r\n\r\n", 1)[1])


# ---------------------------------------------------------------------------
# MTA-STS


def mta_sts(tmp_path, world, mode: str, mx: str, b_cert_from_ca: bool):
    """b.test publishes an MTA-STS policy over HTTPS (127.0.0.4, a
    certificate from the test CA box A trusts); box B's own certificate
    comes from that CA too, or is its self-signed default."""
    dns, made = world
    ca = TestCA(tmp_path / "ca")
    b_tls = ca.leaf("mx.b.test") if b_cert_from_ca else None
    https_port = 443 if os.geteuid() == 0 else free_port("127.0.0.4")
    web = HttpsServer("127.0.0.4", https_port, *ca.leaf("mta-sts.b.test"))
    web.serve("/.well-known/mta-sts.txt",
              f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
    web.start()
    made.append(web)
    a, b, _ = two_boxes(tmp_path, world, b_tls=b_tls, auth=False,
                        a_env={"SSL_CERT_FILE": str(ca.cert)},
                        queue_extra={"mta_sts_port": https_port})
    dns.txt("_mta-sts.b.test", "v=STSv1; id=20261127T1;")
    dns.a("mta-sts.b.test", "127.0.0.4")
    dns.start()
    a.start()
    b.start()
    return a, b, web


def test_mta_sts_enforce_delivers_over_verified_tls(tmp_path, world):
    a, b, web = mta_sts(tmp_path, world, "enforce", "mx.b.test", b_cert_from_ca=True)
    marker = unique_id("sts")
    submit(a, marker)
    line = wait_log(a, "delivered", 1, 30, f"to=<{BOB}>")[0]
    assert "tls=yes,verified" in line, line
    read_over_imap(b, marker)
    assert ("mta-sts.b.test", "/.well-known/mta-sts.txt") in [
        (h.split(":")[0], p) for h, p in web.requests
    ], web.requests


def test_mta_sts_enforce_refuses_a_certificate_that_does_not_verify(tmp_path, world):
    a, b, _ = mta_sts(tmp_path, world, "enforce", "mx.b.test", b_cert_from_ca=False)
    submit(a, unique_id("sts"))
    line = wait_log(a, "deferred", 1, 30, f"to=<{BOB}>")[0]
    assert "does not verify" in line, line
    assert log_events(a, "delivered") == []
    assert len(a.queue()) == 1


def test_mta_sts_enforce_refuses_an_mx_the_policy_does_not_name(tmp_path, world):
    a, b, _ = mta_sts(tmp_path, world, "enforce", "other.b.test", b_cert_from_ca=True)
    submit(a, unique_id("sts"))
    line = wait_log(a, "deferred", 1, 30, f"to=<{BOB}>")[0]
    assert "MTA-STS" in line and "other.b.test" in line, line
    assert log_events(a, "delivered") == []


def test_mta_sts_testing_delivers_and_reports(tmp_path, world):
    a, b, _ = mta_sts(tmp_path, world, "testing", "mx.b.test", b_cert_from_ca=False)
    marker = unique_id("sts")
    submit(a, marker)
    line = wait_log(a, "delivered", 1, 30, f"to=<{BOB}>")[0]
    assert "tls=yes,unverified" in line, line
    report = wait_log(a, "mta_sts_testing_failure", 1, 10, "domain=b.test")[0]
    assert "relay=mx.b.test" in report, report
    read_over_imap(b, marker)
