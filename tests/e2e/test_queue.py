"""The outbound queue: real `pochta serve` processes delivering to each
other over SMTP, with MX records from a real DNS server (dnsmasq) on
loopback, and a scripted remote (smtp_peer.py) for the faults.

Boxes listen on their own loopback addresses (127.0.0.2, .3, ...). The
two-box test uses the real MX port 25 when it runs as root and 127.0.0.3:25
is free; otherwise, and in the fault tests, the MX port is a free port set
with `[queue] remote_port` (tests and LANs only; 25 on the internet).
"""

from __future__ import annotations

import imaplib
import os
import socket
import time

import pytest

from dns import DnsServer, free_port
from harness import SMUGGLE_ENDINGS, Pochta, make_message, tls_context, unique_id, wait_until
from smtp_peer import SmtpPeer

ALICE, ALICE_PW = "alice@a.test", "Lime-tree-41-under"
BOB, BOB_PW = "bob@b.test", "Blue-river-62-over"

FAST_QUEUE = {
    "retry_secs": [1],
    "connect_timeout_secs": 3,
    "command_timeout_secs": 5,
    "data_timeout_secs": 10,
}


def box(root, ip: str, hostname: str, dns: DnsServer, queue: dict, smtp_port: int = 0) -> Pochta:
    p = Pochta(root)
    p.configure(
        hostname=hostname,
        listen={
            "smtp": [f"{ip}:{smtp_port}"],
            "submission": [f"{ip}:0"],
            "submissions": [f"{ip}:0"],
            "imap": [f"{ip}:0"],
            "imaps": [f"{ip}:0"],
            "pop3": [],
            "pop3s": [],
        },
        dns={"servers": [dns.server], "timeout_secs": 2},
        queue=dict(queue, hold=False),
    )
    return p


@pytest.fixture
def world(tmp_path):
    """DNS for a.test and b.test and a list of boxes closed at the end."""
    dns = DnsServer(tmp_path / "dns", domains=["a.test", "b.test"])
    made: list = []
    yield dns, made
    for thing in made:
        if isinstance(thing, Pochta):
            thing.close()
        else:
            thing.stop()
    dns.stop()


def box_a(tmp_path, dns, queue, made) -> Pochta:
    a = box(tmp_path / "a", "127.0.0.2", "mx.a.test", dns, queue)
    made.append(a)
    a.add_domain("a.test")
    a.add_account(ALICE, ALICE_PW)
    return a


def submit(a: Pochta, to: list[str], marker: str, sender: str = ALICE,
           mail_options=(), rcpt_options=()) -> bytes:
    msg = make_message(sender=sender, to=", ".join(to), subject=f"queue test {marker}",
                       body=f"body {marker}\r\n")
    with a.submit_client(ALICE, ALICE_PW) as s:
        s.sendmail(sender, to, msg, mail_options=list(mail_options), rcpt_options=list(rcpt_options))
    return msg


def log_events(p: Pochta, event: str) -> list[str]:
    return [l for l in p.mail_log_text().splitlines() if f" {event} " in l]


def wait_log(p: Pochta, event: str, count: int, timeout: float, needle: str = "") -> list[str]:
    found: list[str] = []

    def enough():
        nonlocal found
        found = [l for l in log_events(p, event) if needle in l]
        return len(found) >= count

    wait_until(enough, timeout, f"{count} {event!r} line(s) with {needle!r} in {p.mail_log}", interval=0.1)
    return found


def port_25_free(host: str) -> bool:
    if os.geteuid() != 0:
        return False
    with socket.socket() as s:
        # As the server binds (SO_REUSEADDR): a TIME-WAIT left by an
        # earlier run does not count as taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, 25))
        except OSError:
            return False
    return True


def test_two_boxes_mx_starttls_imap(tmp_path, world):
    dns, made = world
    port = 25 if port_25_free("127.0.0.3") else free_port("127.0.0.3")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.3")
    dns.start()
    queue = dict(FAST_QUEUE) if port == 25 else dict(FAST_QUEUE, remote_port=port)
    a = box_a(tmp_path, dns, queue, made)
    b = box(tmp_path / "b", "127.0.0.3", "mx.b.test", dns, FAST_QUEUE, smtp_port=port)
    made.append(b)
    b.add_domain("b.test")
    b.add_account(BOB, BOB_PW)
    a.start()
    b.start()
    marker = unique_id("two")
    # DSN parameters are passed on to box B, which offers DSN (RFC 3461 §6.2).
    submit(a, [BOB], marker, mail_options=["RET=HDRS", "ENVID=e2e+2Bid"],
           rcpt_options=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;Bob+20Smith@B.test"])
    line = wait_log(a, "delivered", 1, 20, f"to=<{BOB}>")[0]
    assert "relay=mx.b.test" in line and "tls=yes,unverified" in line, line
    assert "reply=\"250" in line, line
    stored = b.find_message(BOB, marker.encode())
    assert b"Received:" in stored
    assert a.queue() == []
    # bob reads it over IMAP (STARTTLS, then LOGIN).
    host, imap_port = b.addr("imap")
    with imaplib.IMAP4(host, imap_port, timeout=15) as im:
        im.starttls(ssl_context=tls_context())
        im.login(BOB, BOB_PW)
        im.select("INBOX")
        typ, data = im.search(None, "SUBJECT", f'"queue test {marker}"')
        assert typ == "OK" and data[0].split(), data
        typ, fetched = im.fetch(data[0].split()[0], "(BODY[])")
        assert typ == "OK" and marker.encode() in fetched[0][1]
    # Box B's log shows it came in from box A.
    assert any(BOB in l for l in log_events(b, "accepted"))
    # The worker stops with the server.
    assert a.stop() == 0


def test_unreachable_mx_is_retried_then_delivered(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.start()
    marker = unique_id("unreach")
    submit(a, [BOB], marker)
    lines = wait_log(a, "deferred", 3, 20, f"to=<{BOB}>")
    assert "next_attempt_in=1s" in lines[0], lines[0]
    assert "connect to mx.b.test" in lines[0], lines[0]
    (item,) = a.queue()
    assert item["attempts"] >= 3 and "connect" in item["last_error"]
    assert log_events(a, "dsn_sent") == []
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.start()
    (m,) = peer.wait_messages(1, 15)
    assert m["to"] == [BOB] and marker.encode() in m["data"]
    wait_until(lambda: a.queue() == [], 10, "empty queue")


def test_5xx_gives_one_dsn_with_the_remote_reply(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.rcpt_replies["nobody@b.test"] = ["550 5.1.1 <nobody@b.test>: mailbox unavailable here-xyz"]
    peer.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.start()
    marker = unique_id("bounce")
    submit(a, [BOB, "nobody@b.test"], marker)
    (m,) = peer.wait_messages(1, 20)
    assert m["to"] == [BOB]
    (dsn,) = a.wait_messages(ALICE, 1, timeout=20)
    assert b"report-type=delivery-status" in dsn
    assert b"mailbox unavailable here-xyz" in dsn
    assert b"Final-Recipient: rfc822; nobody@b.test" in dsn
    assert b"Action: failed" in dsn and b"Status: 5.1.1" in dsn
    assert f"queue test {marker}".encode() in dsn  # the original header
    assert f"body {marker}".encode() not in dsn  # not the body (no RET=FULL)
    wait_until(lambda: a.queue() == [], 10, "empty queue")
    time.sleep(2)  # several poll rounds: still exactly one DSN
    assert len(a.messages(ALICE)) == 1
    assert len(log_events(a, "bounced")) == 1
    assert len(log_events(a, "dsn_sent")) == 1


def test_failed_starttls_handshake_falls_back_to_plain_text(tmp_path, world):
    """RFC 7435 §4: opportunistic TLS that fails is not a reason to hold
    the mail; the same host is tried again without it."""
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    peer = SmtpPeer("127.0.0.4", port)
    peer.broken_starttls = True
    made.append(peer)
    peer.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.start()
    marker = unique_id("plain")
    submit(a, [BOB], marker)
    (m,) = peer.wait_messages(1, 20)
    assert m["to"] == [BOB] and marker.encode() in m["data"]
    line = wait_log(a, "delivered", 1, 10, f"to=<{BOB}>")[0]
    assert "tls=no" in line, line
    assert peer.connections == 2  # the failed handshake, then plain text


def test_4xx_is_retried(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.rcpt_replies[BOB] = ["451 4.7.1 greylisted, come back", "451 4.7.1 greylisted", "250 2.1.5 ok"]
    peer.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.start()
    marker = unique_id("grey")
    submit(a, [BOB], marker)
    (m,) = peer.wait_messages(1, 20)
    assert marker.encode() in m["data"]
    deferred = log_events(a, "deferred")
    assert len(deferred) == 2 and "greylisted, come back" in deferred[0], deferred
    wait_until(lambda: a.queue() == [], 10, "empty queue")
    assert log_events(a, "dsn_sent") == []
    assert a.messages(ALICE) == []


def test_expiry_sends_delay_warning_then_dsn(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")  # nothing listens there
    dns.start()
    queue = dict(FAST_QUEUE, remote_port=port, lifetime_secs=4, delay_warning_secs=2)
    a = box_a(tmp_path, dns, queue, made)
    a.start()
    marker = unique_id("expire")
    submit(a, [BOB], marker)
    dsns = a.wait_messages(ALICE, 2, timeout=30)
    delayed = [d for d in dsns if b"Action: delayed" in d]
    failed = [d for d in dsns if b"Action: failed" in d]
    assert len(delayed) == 1 and len(failed) == 1, dsns
    assert b"Will-Retry-Until:" in delayed[0]
    assert b"Status: 4.4.7" in failed[0] and b"gave up after" in failed[0]
    assert len(log_events(a, "expired")) == 1
    wait_until(lambda: a.queue() == [], 10, "empty queue")


def test_null_sender_never_gets_a_dsn(tmp_path, world):
    """A forward to a remote address fails; the DSN to the (remote) sender
    fails too; that DSN, from <>, bounces without a DSN of its own."""
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.rcpt_replies["nobody@b.test"] = ["550 5.1.1 no such user"]
    peer.rcpt_replies["sender@b.test"] = ["550 5.1.1 nor this one"]
    peer.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.add_alias("fwd@a.test", "nobody@b.test")
    a.start()
    msg = make_message(sender="sender@b.test", to="fwd@a.test", subject="forwarded", body="x\r\n")
    with a.smtp("smtp") as s:
        s.sendmail("sender@b.test", ["fwd@a.test"], msg)
    bounced = wait_log(a, "bounced", 2, 20)
    assert "to=<nobody@b.test>" in bounced[0] and "to=<sender@b.test>" in bounced[1], bounced
    wait_until(lambda: a.queue() == [], 10, "empty queue")
    time.sleep(1.5)
    assert len(log_events(a, "dsn_sent")) == 1  # the first bounce only
    assert len(log_events(a, "bounced")) == 2
    assert peer.messages == []


def test_sigkill_mid_delivery_loses_nothing(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.stall_before_data_reply = 3
    peer.stall_count = 1
    peer.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.start()
    marker = unique_id("kill")
    submit(a, [BOB], marker)
    assert peer.data_started.wait(20), "box A never sent the message"
    a.kill()  # after the body, before the remote's 250
    assert len(a.queue()) == 1
    a.start()
    msgs = peer.wait_messages(2, 20)
    # Once from the killed attempt (the remote took it), once after the
    # restart: the duplicate RFC 5321 §6.1 allows, never a loss.
    assert all(marker.encode() in m["data"] for m in msgs)
    wait_until(lambda: a.queue() == [], 10, "empty queue")


def test_smarthost_with_auth_through_a_second_pochta(tmp_path, world):
    dns, made = world
    dns.start()  # no MX for b.test at all: the smarthost needs none
    relay = box(tmp_path / "r", "127.0.0.5", "relay.test", dns, FAST_QUEUE)
    made.append(relay)
    relay.add_domain("a.test")
    relay.add_domain("b.test")
    relay.add_account(ALICE, ALICE_PW)
    relay.add_account(BOB, BOB_PW)
    relay.start()
    _, sub_port = relay.addr("submission")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "data").mkdir(exist_ok=True)
    pw = tmp_path / "a" / "data" / "relay.pw"
    pw.write_text(ALICE_PW + "\n")
    queue = dict(
        FAST_QUEUE,
        smarthost={
            "host": "127.0.0.5",
            "port": sub_port,
            "tls": "starttls",
            "username": ALICE,
            "password_file": "relay.pw",
            "accept_invalid_cert_dangerous": True,
        },
    )
    a = box_a(tmp_path, dns, queue, made)
    a.start()
    marker = unique_id("smarthost")
    submit(a, [BOB], marker)
    relay.find_message(BOB, marker.encode(), timeout=20)
    line = wait_log(a, "delivered", 1, 10)[0]
    assert "relay=127.0.0.5" in line and "tls=yes" in line, line
    assert any("auth_ok" in l and ALICE in l for l in relay.mail_log_text().splitlines())
    assert ALICE_PW not in a.mail_log_text() and ALICE_PW not in a.log_tail(500)


def test_implicit_mx_is_the_domains_own_address(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.a("b.test", "127.0.0.4")  # no MX record at all (RFC 5321 §5.1)
    dns.start()
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port), made)
    a.start()
    marker = unique_id("implicit")
    submit(a, [BOB], marker)
    (m,) = peer.wait_messages(1, 20)
    assert marker.encode() in m["data"]
    line = wait_log(a, "delivered", 1, 10)[0]
    assert "relay=b.test" in line and "tls=no" in line, line


def test_null_mx_fails_at_once(tmp_path, world):
    dns, made = world
    dns.mx("b.test", ".", 0)  # RFC 7505: b.test takes no mail
    dns.start()
    a = box_a(tmp_path, dns, FAST_QUEUE, made)
    a.start()
    submit(a, [BOB], unique_id("nullmx"))
    (dsn,) = a.wait_messages(ALICE, 1, timeout=20)
    assert b"Status: 5.1.10" in dsn and b"null MX" in dsn
    assert len(log_events(a, "deferred")) == 0
    wait_until(lambda: a.queue() == [], 10, "empty queue")


def test_queue_cli_retry_and_delete(tmp_path, world):
    dns, made = world
    port = free_port("127.0.0.4")
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.4")
    dns.start()
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, remote_port=port, retry_secs=[3600]), made)
    a.start()
    keep, drop = unique_id("keep"), unique_id("drop")
    submit(a, [BOB], keep)
    submit(a, ["carol@b.test"], drop)
    wait_log(a, "deferred", 2, 20)
    items = {i["recipient"]: i for i in a.queue()}
    assert items[BOB]["next_attempt"] - time.time() > 3000
    res = a.cli("queue delete", str(items["carol@b.test"]["id"]), "--yes")
    assert "deleted" in res.stdout
    assert a.cli("queue delete", "999999", check=False).returncode != 0
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.start()
    a.cli("queue retry", str(items[BOB]["id"]))
    (m,) = peer.wait_messages(1, 10)
    assert keep.encode() in m["data"]
    wait_until(lambda: a.queue() == [], 10, "empty queue")
    time.sleep(0.5)
    assert len(peer.messages) == 1 and log_events(a, "dsn_sent") == []


def test_smarthost_certificate_must_verify_unless_told_otherwise(tmp_path, world):
    dns, made = world
    dns.start()
    relay = box(tmp_path / "r", "127.0.0.5", "relay.test", dns, FAST_QUEUE)
    made.append(relay)
    relay.add_domain("a.test")
    relay.add_domain("b.test")
    relay.add_account(ALICE, ALICE_PW)
    relay.add_account(BOB, BOB_PW)
    relay.start()
    _, sub_port = relay.addr("submission")
    queue = dict(
        FAST_QUEUE,
        smarthost={"host": "127.0.0.5", "port": sub_port, "username": ALICE, "password": ALICE_PW},
    )
    a = box_a(tmp_path, dns, queue, made)
    a.start()
    submit(a, [BOB], unique_id("selfsigned"))
    line = wait_log(a, "deferred", 1, 20)[0]
    assert "does not verify" in line, line
    assert relay.messages(BOB) == []
    assert not any("auth_ok" in l for l in relay.mail_log_text().splitlines())


def test_domain_smarthost_wins_over_mx(tmp_path, world):
    dns, made = world
    dns.mx("b.test", "mx.b.test", 10)
    dns.a("mx.b.test", "127.0.0.9")  # would be unreachable
    dns.start()
    port = free_port("127.0.0.1")
    peer = SmtpPeer("127.0.0.1", port)
    made.append(peer)
    peer.start()
    relay = {"host": "127.0.0.1", "port": port, "tls": "none_loopback_only"}
    a = box_a(tmp_path, dns, dict(FAST_QUEUE, domain_smarthosts={"b.test": relay}), made)
    a.start()
    marker = unique_id("route")
    submit(a, [BOB], marker)
    (m,) = peer.wait_messages(1, 20)
    assert marker.encode() in m["data"]
    line = wait_log(a, "delivered", 1, 10)[0]
    assert "relay=127.0.0.1" in line and "tls=no" in line, line


def bare_line_endings(raw: bytes) -> list[int]:
    """Offsets of each CR not followed by LF and each LF not after a CR."""
    return [i for i, b in enumerate(raw)
            if (b == 13 and raw[i + 1:i + 2] != b"\n") or (b == 10 and (i == 0 or raw[i - 1] != 13))]


@pytest.mark.parametrize("ending", SMUGGLE_ENDINGS.values(), ids=SMUGGLE_ENDINGS.keys())
def test_smuggling_endings_never_reach_the_smarthost(tmp_path, world, ending):
    """A body holding a fake end-of-data and a second transaction: DATA
    refuses it (bare CR or LF), BDAT takes it with the line endings made
    CRLF, and the smarthost gets one message with CRLF line endings only.
    The peer ends DATA at any "." line that ends in LF, as lax servers do,
    so a bare LF or CR sent on would show as smuggled commands."""
    dns, made = world
    dns.start()  # the smarthost needs no MX
    port = free_port("127.0.0.4")
    peer = SmtpPeer("127.0.0.4", port)
    made.append(peer)
    peer.start()
    queue = dict(FAST_QUEUE, smarthost={"host": "127.0.0.4", "port": port, "tls": "none_loopback_only"})
    a = box_a(tmp_path, dns, queue, made)
    a.start()
    marker = unique_id("smuggle")
    smuggled = (b"MAIL FROM:<ceo@b.test>\r\nRCPT TO:<carol@b.test>\r\nDATA\r\n"
                b"Subject: smuggled\r\n\r\nevil\r\n")
    msg = (f"From: <{ALICE}>\r\nTo: <{BOB}>\r\nSubject: {marker}\r\n"
           f"Message-ID: <{marker}@a.test>\r\n\r\nhello").encode() + ending + smuggled
    with a.submit_client(ALICE, ALICE_PW) as s:
        assert s.mail(ALICE)[0] == 250 and s.rcpt(BOB)[0] == 250
        assert s.docmd("DATA")[0] == 354
        s.send(msg + b".\r\n")
        code, text = s.getreply()
        assert code == 550, f"DATA with {ending!r}: {code} {text!r}"
        assert s.mail(ALICE)[0] == 250 and s.rcpt(BOB)[0] == 250
        s.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
        code, text = s.getreply()
        assert code == 250, f"BDAT with {ending!r}: {code} {text!r}"
    wait_log(a, "delivered", 1, 20)
    (m,) = peer.wait_messages(1, 10)
    assert len(peer.messages) == 1, peer.messages
    assert m["from"] == ALICE and m["to"] == [BOB]
    assert bare_line_endings(m["raw"]) == [], f"bare CR/LF sent to the next hop: {m['raw']!r}"
    assert marker.encode() in m["data"] and b"\r\nSubject: smuggled\r\n" in m["data"]
    assert not any(b"ceo@b.test" in c or b"carol@b.test" in c for c in peer.commands), peer.commands
