"""Mail authentication against a real DNS server (dnsmasq on loopback):
DKIM keys and `pochta domain dns`, DKIM signatures checked by dkimpy and by
Pochta's own verifier, SPF/DKIM/DMARC results in Authentication-Results,
DMARC reject and quarantine, a dead DNS server, and sending limits.

Needs dnsmasq (Debian dnsmasq-base), dkimpy and pynacl (pip).
"""

from __future__ import annotations

import base64
import imaplib
import os
import re
import shutil
import socket
import sqlite3
import subprocess

import pytest

from dns import DNSMASQ, DnsServer, answer_count, query
from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    BOB_PW,
    CRLF,
    check_reply,
    make_message,
    tls_context,
    unique_id,
)

dkim = pytest.importorskip("dkim", reason="pip install dkimpy")
nacl_signing = pytest.importorskip("nacl.signing", reason="pip install pynacl")

pytestmark = pytest.mark.skipif(
    not (shutil.which("dnsmasq") or os.path.exists(DNSMASQ)),
    reason="dnsmasq is not installed (apt-get install dnsmasq-base)",
)

HOST = "mx.test.local"  # the harness's hostname = authserv-id


# ---------------------------------------------------------------------------
# helpers


def zone_records(text: str) -> list[tuple[str, str, str]]:
    """(name, type, rdata) of every record line `pochta domain dns` printed."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        m = re.match(r"^(\S+) (\d+) IN (\S+) (.*)$", line)
        assert m, f"not a zone-file record line: {line!r}"
        out.append((m.group(1), m.group(3), m.group(4)))
    return out


def txt_value(rdata: str) -> str:
    strings = re.findall(r'"((?:[^"\\]|\\.)*)"', rdata)
    assert strings, f"TXT data without strings: {rdata!r}"
    for s in strings:
        assert len(s.encode()) <= 255, f"TXT string over 255 octets: {len(s)}"
    return "".join(s.replace('\\"', '"').replace("\\\\", "\\") for s in strings)


def load_zone(dns: DnsServer, records: list[tuple[str, str, str]]) -> None:
    for name, kind, data in records:
        name = name.rstrip(".")
        if kind == "MX":
            pref, host = data.split()
            dns.mx(name, host.rstrip("."), int(pref))
        elif kind == "TXT":
            dns.txt(name, txt_value(data))
        elif kind == "SRV":
            prio, weight, port, target = data.split()
            dns.srv(name, target.rstrip("."), int(port), int(prio), int(weight))
        elif kind == "CNAME":
            dns.cname(name, data.rstrip("."))
        else:
            raise AssertionError(f"unexpected record type {kind}")


def auth_results(stored: bytes) -> str:
    """The Authentication-Results header that must open a checked message,
    unfolded."""
    assert stored.startswith(b"Authentication-Results: "), (
        f"stored message does not start with Authentication-Results: {stored[:200]!r}"
    )
    end = stored.index(CRLF + b"Received:")
    value = stored[len(b"Authentication-Results: "):end].decode()
    return re.sub(r"\r\n[ \t]+", " ", value)


def method(ar: str, name: str, prop: str | None = None) -> str:
    """The result of one method in an Authentication-Results value."""
    for part in ar.split(";")[1:]:
        part = part.strip()
        m = re.match(rf"{name}=(\w+)", part)
        if m and (prop is None or prop in part):
            return m.group(1)
    raise AssertionError(f"no {name}= {prop or ''} in {ar!r}")


def deliver(server, sender: str, rcpt: str, message: bytes, helo: str = "client.e2e.test",
            expect=250):
    with server.raw("smtp", timeout=30) as c:
        c.greeting()
        c.ehlo(helo)
        check_reply(c.cmd(f"MAIL FROM:<{sender}>"), 250, what="MAIL FROM")
        check_reply(c.cmd(f"RCPT TO:<{rcpt}>"), 250, what="RCPT TO")
        reply = c.data(message, timeout=30)
        c.cmd("QUIT")
    return check_reply(reply, expect, what="end of DATA")


@pytest.fixture
def dns(tmp_path):
    servers = []

    def make(domains):
        # Authoritative for all of .test: DMARC's tree walk (RFC 9989
        # §4.10) also asks _dmarc.test, which must get NXDOMAIN, not REFUSED.
        d = DnsServer(tmp_path / f"dns{len(servers)}", domains=[*domains, "test"])
        servers.append(d)
        return d

    yield make
    for d in servers:
        d.stop()


def start_checked(pochta, dns_server: DnsServer, **auth) -> None:
    pochta.configure(dns={"servers": [dns_server.server], "timeout_secs": 2},
                     auth={"checks": True, **auth})
    pochta.start()


# ---------------------------------------------------------------------------
# DKIM keys and the records to publish


def test_domain_dns_records_resolve_from_a_real_dns_server(pochta, dns):
    pochta.add_domain("a.test")
    text = pochta.cli("domain dns", "a.test", "--host", "mail.a.test").stdout
    records = zone_records(text)
    kinds = [(n, k) for n, k, _ in records]
    for expected in [
        ("a.test.", "MX"),
        ("a.test.", "TXT"),
        ("_dmarc.a.test.", "TXT"),
        ("_submission._tcp.a.test.", "SRV"),
        ("_submissions._tcp.a.test.", "SRV"),
        ("_imaps._tcp.a.test.", "SRV"),
        ("_pop3s._tcp.a.test.", "SRV"),
        ("autoconfig.a.test.", "CNAME"),
        ("autodiscover.a.test.", "CNAME"),
        ("_mta-sts.a.test.", "TXT"),
    ]:
        assert expected in kinds, f"{expected} missing from\n{text}"
    dkim_records = {n: txt_value(d) for n, k, d in records if "._domainkey." in n}
    assert len(dkim_records) == 2, text
    assert any(re.match(r"pr\d{6}\._domainkey", n) and "k=rsa" in v for n, v in dkim_records.items())
    assert any(re.match(r"pe\d{6}\._domainkey", n) and "k=ed25519" in v for n, v in dkim_records.items())
    values = {n: txt_value(d) for n, k, d in records if k == "TXT"}
    assert values["a.test."] == "v=spf1 mx -all"
    assert values["_dmarc.a.test."] == "v=DMARC1; p=quarantine; rua=mailto:postmaster@a.test"
    assert re.fullmatch(r"v=STSv1; id=\w+", values["_mta-sts.a.test."])
    srv = {n: d for n, k, d in records if k == "SRV"}
    assert srv["_submission._tcp.a.test."].split()[2] == "587"
    assert srv["_submissions._tcp.a.test."].split()[2] == "465"
    assert srv["_imaps._tcp.a.test."].split()[2] == "993"
    assert srv["_pop3s._tcp.a.test."].split()[2] == "995"
    assert "https://mta-sts.a.test/.well-known/mta-sts.txt" in text
    assert "mode: testing" in text and "mx: mail.a.test" in text

    # No private key in the output.
    db = sqlite3.connect(pochta.db_path)
    for (private,) in db.execute("SELECT private_key FROM dkim_keys"):
        assert base64.b64encode(private)[:40].decode() not in text
    db.close()
    assert "PRIVATE" not in text

    server = dns(["a.test"])
    load_zone(server, records)
    server.a("mail.a.test", "127.0.0.1")
    server.start()
    for name, kind, _ in records:
        n = answer_count(server.host, server.port, name.rstrip("."), kind)
        assert n >= 1, f"{name} {kind} does not resolve from dnsmasq"
    assert query(server.host, server.port, "nothing.a.test", "TXT") == 3


def test_domains_from_an_older_pochta_get_keys(pochta):
    pochta.add_domain("old.test")
    db = sqlite3.connect(pochta.db_path)
    db.execute("DELETE FROM dkim_keys")
    db.commit()
    db.close()
    text = pochta.cli("domain dns", "old.test", "--host", "mail.old.test").stdout
    assert "._domainkey.old.test." in text
    # And at serve start.
    pochta.add_domain("older.test")
    db = sqlite3.connect(pochta.db_path)
    db.execute("DELETE FROM dkim_keys WHERE domain = 'older.test'")
    db.commit()
    db.close()
    pochta.start()

    def has_keys():
        c = sqlite3.connect(pochta.db_path)
        try:
            return c.execute("SELECT count(*) FROM dkim_keys WHERE domain='older.test'").fetchone()[0] == 2
        finally:
            c.close()

    from harness import wait_until
    wait_until(has_keys, 30, "DKIM keys for older.test after serve started")
    assert "PRIVATE" not in pochta.log_tail(500)


def test_pochta_signature_verifies_with_dkimpy_and_pochta(pochta, dns):
    """Box signs as a.test with both keys; dkimpy verifies each signature
    against the printed records, and the same box, receiving it over MX with
    dnsmasq as its DNS, finds spf, dkim and dmarc pass."""
    pochta.add_domain("a.test")
    pochta.add_account("bob@a.test", "Grey-stone-93-after")
    records = zone_records(pochta.cli("domain dns", "a.test", "--host", "mail.a.test").stdout)
    txt = {n: txt_value(d).encode() for n, k, d in records if k == "TXT"}
    marker = unique_id("signed")
    message = make_message(sender="alice@a.test", to="bob@a.test", subject=marker,
                           extra_headers=["MIME-Version: 1.0", "Content-Type: text/plain"])
    signed = subprocess.run(
        [str(pochta.bin), "dkim", "sign", "--domain", "a.test", "--data", str(pochta.data)],
        input=message, capture_output=True, timeout=30,
    )
    assert signed.returncode == 0, signed.stderr
    signed = signed.stdout
    assert signed.endswith(message)
    assert signed.count(b"DKIM-Signature:") == 2
    assert b"a=rsa-sha256" in signed and b"a=ed25519-sha256" in signed
    assert b"c=relaxed/relaxed" in signed

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        return txt.get(n if n.endswith(".") else n + ".")

    d = dkim.DKIM(signed)
    for i in range(2):
        assert d.verify(idx=i, dnsfunc=dnsfunc), f"dkimpy rejects signature {i}"
    # Oversigned From: a second From makes both signatures fail.
    forged = b"From: <mallory@evil.test>\r\n" + signed
    assert not dkim.DKIM(forged).verify(idx=0, dnsfunc=dnsfunc)

    server = dns(["a.test"])
    load_zone(server, records)
    server.a("mail.a.test", "127.0.0.1")
    server.start()
    start_checked(pochta, server)
    deliver(pochta, "alice@a.test", "bob@a.test", signed, helo="mail.a.test")
    stored = pochta.find_message("bob@a.test", marker.encode())
    ar = auth_results(stored)
    assert ar.startswith(HOST + ";"), ar
    assert method(ar, "spf", "smtp.mailfrom") == "pass", ar
    dkims = re.findall(r"dkim=(\w+)", ar)
    assert dkims == ["pass", "pass"], ar
    assert method(ar, "dmarc") == "pass", ar
    assert stored.endswith(signed)


def dkimpy_ed25519_key():
    key = nacl_signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))
    public = base64.b64encode(bytes(key.verify_key)).decode()
    return private, f"v=DKIM1; k=ed25519; p={public}"


def openssl_rsa_key(tmp_path):
    if not shutil.which("openssl"):
        return None
    pem = tmp_path / "rsa.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(pem), "2048"], check=True,
                   capture_output=True, timeout=60)
    pub = subprocess.run(["openssl", "rsa", "-in", str(pem), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True, timeout=60).stdout
    return pem.read_bytes(), f"v=DKIM1; k=rsa; p={base64.b64encode(pub).decode()}"


def test_message_signed_by_dkimpy_passes_dkim_and_dmarc(server_with_dns, tmp_path):
    pochta, zone = server_with_dns
    ed_private, ed_record = dkimpy_ed25519_key()
    zone.txt("ed1._domainkey.sender.test", ed_record)
    rsa = openssl_rsa_key(tmp_path)
    if rsa:
        zone.txt("rsa1._domainkey.sender.test", rsa[1])
    zone.txt("sender.test", "v=spf1 -all")  # SPF fails: DMARC must pass on DKIM alone
    zone.txt("_dmarc.sender.test", "v=DMARC1; p=reject")
    zone.restart()
    marker = unique_id("dkimpy")
    message = make_message(sender="news@sender.test", to=ALICE, subject=marker)
    signed = message
    sig = dkim.sign(message, b"ed1", b"sender.test", ed_private,
                    signature_algorithm=b"ed25519-sha256",
                    include_headers=[b"From", b"To", b"Subject", b"Date", b"Message-ID"])
    signed = sig + signed
    if rsa:
        sig = dkim.sign(message, b"rsa1", b"sender.test", rsa[0],
                        include_headers=[b"From", b"To", b"Subject", b"Date", b"Message-ID"])
        signed = sig + signed
    deliver(pochta, "news@sender.test", ALICE, signed)
    ar = auth_results(pochta.find_message(ALICE, marker.encode()))
    assert method(ar, "spf", "smtp.mailfrom") == "fail", ar
    assert set(re.findall(r"dkim=(\w+)", ar)) == {"pass"}, ar
    assert len(re.findall(r"dkim=", ar)) == (2 if rsa else 1), ar
    assert method(ar, "dmarc") == "pass", ar


# ---------------------------------------------------------------------------
# SPF, DMARC policy, DNS failure


@pytest.fixture
def server_with_dns(pochta, dns):
    """example.test with alice and bob; dnsmasq serving pass/fail/soft/none
    and a.test; checks on."""
    zone = dns(["pass.test", "fail.test", "soft.test", "none.test", "a.test",
                "sender.test", "e2e.test"])
    zone.txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
    zone.txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")
    zone.txt("soft.test", "v=spf1 ip4:192.0.2.1 ~all")
    zone.a("none.test", "192.0.2.7")
    zone.start()
    pochta.setup_basic()
    start_checked(pochta, zone)
    return pochta, zone


@pytest.mark.parametrize("domain,expected", [
    ("pass.test", "pass"), ("fail.test", "fail"), ("soft.test", "softfail"), ("none.test", "none"),
])
def test_spf_result_is_recorded(server_with_dns, domain, expected):
    pochta, _ = server_with_dns
    marker = unique_id("spf")
    msg = make_message(sender=f"someone@{domain}", to=ALICE, subject=marker)
    deliver(pochta, f"someone@{domain}", ALICE, msg)
    stored = pochta.find_message(ALICE, marker.encode())
    ar = auth_results(stored)
    assert method(ar, "spf", "smtp.mailfrom") == expected, ar
    assert f"smtp.mailfrom=someone@{domain}" in ar or f'smtp.mailfrom="someone@{domain}"' in ar, ar
    assert stored.endswith(msg)
    log = pochta.mail_log_text()
    assert f"auth_checked" in log and f"spf={expected}" in log, log[-2000:]


def forged(zone, policy: str) -> bytes:
    """a.test's SPF allows only 192.0.2.1; we send from 127.0.0.1 unsigned."""
    zone.clear()
    zone.txt("a.test", "v=spf1 ip4:192.0.2.1 -all")
    zone.txt("_dmarc.a.test", f"v=DMARC1; p={policy}")
    zone.restart()
    marker = unique_id(f"forged-{policy}")
    return marker, make_message(sender="ceo@a.test", to=ALICE, subject=marker)


def test_forged_mail_is_refused_when_the_domain_says_reject(server_with_dns):
    pochta, zone = server_with_dns
    marker, msg = forged(zone, "reject")
    reply = deliver(pochta, "ceo@a.test", ALICE, msg, expect=550)
    assert reply.enhanced == "5.7.1", reply
    assert "DMARC" in reply.text and "a.test" in reply.text, reply
    assert not [m for m in pochta.messages(ALICE) if marker.encode() in m]
    assert not [m for m in pochta.messages(ALICE, "Junk") if marker.encode() in m]
    log = pochta.mail_log_text()
    assert "dmarc=fail" in log and "action=reject" in log, log[-2000:]
    assert re.search(r"rejected .*stage=data .*550 5\.7\.1", log), log[-2000:]


def test_forged_mail_goes_to_junk_when_the_domain_says_quarantine(server_with_dns):
    pochta, zone = server_with_dns
    marker, msg = forged(zone, "quarantine")
    deliver(pochta, "ceo@a.test", ALICE, msg)
    host, port = pochta.addr("imaps")
    c = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(), timeout=15)
    try:
        c.login(ALICE, ALICE_PW)
        typ, data = c.select("INBOX", readonly=True)
        typ, found = c.search(None, "SUBJECT", marker)
        assert found == [b""], "the forged message is in INBOX"
        typ, data = c.select("Junk", readonly=True)
        assert typ == "OK"
        typ, found = c.search(None, "SUBJECT", marker)
        assert found[0], "the forged message is not in Junk"
        typ, data = c.fetch(found[0].split()[0], "(BODY.PEEK[])")
        stored = data[0][1]
    finally:
        c.logout()
    ar = auth_results(stored)
    assert method(ar, "dmarc") == "fail" and "policy.dmarc=quarantine" in ar, ar
    assert method(ar, "spf", "smtp.mailfrom") == "fail", ar
    assert "action=junk" in pochta.mail_log_text()


def test_quarantine_policy_can_be_configured_to_reject(pochta, dns):
    zone = dns(["a.test", "e2e.test"])
    zone.start()
    pochta.setup_basic()
    start_checked(pochta, zone, dmarc_quarantine="reject")
    marker, msg = forged(zone, "quarantine")
    reply = deliver(pochta, "ceo@a.test", ALICE, msg, expect=550)
    assert reply.enhanced == "5.7.1"


class BlackHoleDns:
    """A UDP and TCP port on loopback that never answers."""

    def __init__(self):
        # The UDP port the system picks may be taken for TCP by another
        # process (an outgoing connection's port): pick again until both bind.
        for _ in range(50):
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
        else:
            raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")
        self.tcp.listen(16)

    def close(self):
        self.udp.close()
        self.tcp.close()


@pytest.mark.parametrize("temperror", ["accept", "defer"])
def test_dns_that_does_not_answer_loses_no_mail(pochta, temperror):
    hole = BlackHoleDns()
    try:
        pochta.setup_basic()
        pochta.configure(dns={"servers": [f"127.0.0.1:{hole.port}"], "timeout_secs": 1},
                         auth={"checks": True, "temperror": temperror})
        pochta.start()
        marker = unique_id("dnsdown")
        msg = make_message(sender="someone@pass.test", to=ALICE, subject=marker)
        if temperror == "defer":
            reply = deliver(pochta, "someone@pass.test", ALICE, msg, expect=451)
            assert reply.enhanced == "4.4.3", reply
            assert not [m for m in pochta.messages(ALICE) if marker.encode() in m]
            return
        deliver(pochta, "someone@pass.test", ALICE, msg)
        stored = pochta.find_message(ALICE, marker.encode())
        ar = auth_results(stored)
        assert method(ar, "spf", "smtp.mailfrom") == "temperror", ar
        assert method(ar, "dmarc") == "temperror", ar
        assert "DNS failure" in ar, ar
        assert stored.endswith(msg)
    finally:
        hole.close()


def test_submission_is_not_checked(server_with_dns):
    pochta, _ = server_with_dns
    marker = unique_id("sub")
    with pochta.submit_client(ALICE, ALICE_PW) as s:
        s.sendmail(ALICE, [BOB], make_message(sender=ALICE, to=BOB, subject=marker))
    stored = pochta.find_message(BOB, marker.encode())
    assert not stored.startswith(b"Authentication-Results:")


# ---------------------------------------------------------------------------
# Sending limits


def test_the_501st_recipient_in_a_day_is_refused_and_logged(server):
    rcpts = [f"r{i}@remote.invalid" for i in range(501)]
    with server.submit_client(ALICE, ALICE_PW) as s:
        for start in range(0, 500, 100):
            batch = rcpts[start:start + 100]
            refused = s.sendmail(ALICE, batch, make_message(sender=ALICE, to=batch[0]))
            assert not refused, refused
        s.mail(ALICE)
        code, text = s.rcpt(rcpts[500])
        assert code == 451, (code, text)
        assert text.startswith(b"4.7.1") and b"limit" in text, text
        s.rset()
    log = server.mail_log_text()
    assert re.search(r"ALERT send_limit_reached .*account=alice@example\.test .*limit=500/24h", log), log[-1500:]
    # Counted durably: still refused after a restart.
    server.restart()
    with server.submit_client(ALICE, ALICE_PW) as s:
        s.mail(ALICE)
        code, _ = s.rcpt("late@remote.invalid")
        assert code == 451
        s.rset()
    # Another account is not affected.
    with server.submit_client(BOB, BOB_PW) as s:
        assert not s.sendmail(BOB, ["x@remote.invalid"], make_message(sender=BOB, to="x@remote.invalid"))


def test_per_account_and_configured_limits(pochta):
    pochta.setup_basic()
    pochta.configure(limits={"recipients_per_day": 3})
    pochta.cli("account limit", BOB, "5")
    pochta.start()
    with pochta.submit_client(ALICE, ALICE_PW) as s:
        assert not s.sendmail(ALICE, ["a@remote.invalid", "b@remote.invalid", BOB],
                              make_message(sender=ALICE, to=BOB))
        s.mail(ALICE)
        code, _ = s.rcpt("d@remote.invalid")
        assert code == 451
        s.rset()
    with pochta.submit_client(BOB, BOB_PW) as s:
        s.mail(BOB)
        codes = [s.rcpt(f"x{i}@remote.invalid")[0] for i in range(6)]
        assert codes == [250] * 5 + [451], codes
        s.rset()
    res = pochta.cli("account limit", BOB, "lots", check=False)
    assert res.returncode != 0 and "lots" in res.stderr


def test_results_forged_in_our_name_are_removed(server_with_dns):
    """RFC 8601 §5: an Authentication-Results field that claims to be from
    this server and came with the message is removed; others stay."""
    pochta, _ = server_with_dns
    marker = unique_id("forged-ar")
    msg = make_message(sender="someone@fail.test", to=ALICE, subject=marker, extra_headers=[
        f"Authentication-Results: {HOST}; spf=pass smtp.mailfrom=someone@fail.test; dmarc=pass",
        "Authentication-Results: other.test; spf=pass",
    ])
    deliver(pochta, "someone@fail.test", ALICE, msg)
    stored = pochta.find_message(ALICE, marker.encode())
    ar = auth_results(stored)
    assert method(ar, "spf", "smtp.mailfrom") == "fail", ar
    assert stored.count(b"Authentication-Results: " + HOST.encode()) == 1, stored[:800]
    assert b"Authentication-Results: other.test; spf=pass\r\n" in stored


def test_every_accepted_message_carries_results_bdat_and_swaks_too(server_with_dns):
    """DATA, BDAT and a third-party client: each stored MX message starts
    with exactly one Authentication-Results header, then Received, then
    the bytes sent."""
    pochta, _ = server_with_dns
    marker = unique_id("bdat-ar")
    msg = make_message(sender="x@soft.test", to=ALICE, subject=marker)
    with pochta.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@soft.test>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT")
        half = len(msg) // 2
        c.send(f"BDAT {half}\r\n".encode() + msg[:half])
        check_reply(c.reply(), 250, what="BDAT")
        c.send(f"BDAT {len(msg) - half} LAST\r\n".encode() + msg[half:])
        check_reply(c.reply(), 250, what="BDAT LAST")
        c.cmd("QUIT")
    stored = pochta.find_message(ALICE, marker.encode())
    assert method(auth_results(stored), "spf", "smtp.mailfrom") == "softfail"
    assert stored.count(b"\r\nAuthentication-Results:") == 0 and stored.endswith(msg)

    if shutil.which("swaks"):
        host, port = pochta.addr("smtp")
        marker = unique_id("swaks-ar")
        res = subprocess.run(
            ["swaks", "--server", host, "--port", str(port), "--from", "y@pass.test",
             "--to", BOB, "--header", f"Subject: {marker}", "--timeout", "30"],
            capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        stored = pochta.find_message(BOB, marker.encode())
        assert method(auth_results(stored), "spf", "smtp.mailfrom") == "pass"
