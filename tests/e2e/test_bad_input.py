"""Hostile and broken clients over raw sockets. After every case a fresh,
well-behaved client must still be able to deliver a message."""

from __future__ import annotations

import random
import select
import socket
import time

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    ConnectionClosed,
    RawSMTP,
    RssSampler,
    SMUGGLE_ENDINGS,
    check_reply,
    make_message,
    password_for,
    tls_context,
    unique_id,
)

MAIL = b"MAIL FROM:<someone@elsewhere.invalid>"
RCPT_ALICE = f"RCPT TO:<{ALICE}>".encode()
EHLO = b"EHLO client.e2e.test"


def step(line: bytes, expect, enhanced=None, may_close=False):
    return (line, expect, enhanced, may_close)


# (id, steps). Each step sends one line (CRLF added) and checks one reply.
COMMAND_CASES = [
    ("unknown-command", [step(EHLO, 250), step(b"XYZZY", (500, 502))]),
    ("empty-line", [step(EHLO, 250), step(b"", "5xx")]),
    ("ehlo-without-domain", [step(b"EHLO", 501)]),
    # RFC 5321 §4.1.4 asks the client for EHLO first; accepting MAIL anyway is lenient, not wrong.
    ("mail-before-ehlo", [step(MAIL, (250, 503))]),
    ("rcpt-before-mail", [step(EHLO, 250), step(RCPT_ALICE, 503)]),
    ("data-before-rcpt", [step(EHLO, 250), step(MAIL, 250), step(b"DATA", (503, 554))]),
    ("nested-mail", [step(EHLO, 250), step(MAIL, 250), step(MAIL, 503)]),
    ("mail-unterminated-path", [step(EHLO, 250), step(b"MAIL FROM:<someone@elsewhere.invalid", 501)]),
    ("mail-to-instead-of-from", [step(EHLO, 250), step(b"MAIL TO:<someone@elsewhere.invalid>", "5xx")]),
    ("mail-unknown-parameter", [step(EHLO, 250), step(MAIL + b" XFOO=BAR", (501, 555))]),
    ("mail-size-not-a-number", [step(EHLO, 250), step(MAIL + b" SIZE=lots", (501, 555))]),
    ("mail-size-over-limit", [step(EHLO, 250), step(MAIL + b" SIZE=999999999999", 552, "5.3.4")]),
    ("rcpt-garbage-address", [step(EHLO, 250), step(MAIL, 250), step(b"RCPT TO:<@@>", (501, 550, 553))]),
    ("auth-on-mx-port", [step(EHLO, 250), step(b"AUTH PLAIN AGFsaWNlAHB3", "5xx")]),
    ("http-request", [step(b"GET / HTTP/1.1", "5xx", may_close=True)]),
    ("high-bit-command", [step(EHLO, 250), step(b"\xff\xfe\xfd\xfc", (500, 501, 502))]),
    # Line length: max_line_bytes (default 4096) counts the CRLF.
    ("line-exactly-at-limit", [step(EHLO, 250), step(b"NOOP " + b"a" * (4096 - 7), 250)]),
    ("line-one-over-limit", [step(EHLO, 250), step(b"NOOP " + b"a" * (4096 - 6), 500, "5.5.6", may_close=True)]),
    ("line-100k", [step(EHLO, 250), step(b"NOOP " + b"a" * 100_000, 500, "5.5.6", may_close=True)]),
    ("mail-100k-address", [step(EHLO, 250),
                           step(b"MAIL FROM:<" + b"a" * 100_000 + b"@elsewhere.invalid>", 500, "5.5.6",
                                may_close=True)]),
    # NUL bytes.
    ("nul-in-ehlo", [step(b"EHLO client\x00.e2e.test", (500, 501))]),
    ("nul-only-line", [step(EHLO, 250), step(b"\x00\x00\x00", (500, 501))]),
    ("nul-in-mail-address", [step(EHLO, 250), step(b"MAIL FROM:<some\x00one@elsewhere.invalid>", (500, 501))]),
    ("nul-in-rcpt-address", [step(EHLO, 250), step(MAIL, 250), step(b"RCPT TO:<ali\x00ce@example.test>", (500, 501))]),
    ("nul-after-command", [step(EHLO, 250), step(b"NOOP\x00", (500, 501))]),
    # Invalid UTF-8 in addresses, with and without SMTPUTF8 (RFC 6531).
    ("utf8-invalid-mail", [step(EHLO, 250), step(b"MAIL FROM:<\xff\xfe@elsewhere.invalid>", (501, 553))]),
    ("utf8-invalid-mail-smtputf8",
     [step(EHLO, 250), step(b"MAIL FROM:<\xff\xfe@elsewhere.invalid> SMTPUTF8", (501, 553))]),
    ("utf8-truncated-rcpt", [step(EHLO, 250), step(MAIL + b" SMTPUTF8", 250),
                             step(b"RCPT TO:<\xc3\x28li\xe2\x82@example.test>", (501, 553))]),
    ("utf8-overlong-rcpt", [step(EHLO, 250), step(MAIL + b" SMTPUTF8", 250),
                            step(b"RCPT TO:<\xc0\xafetc@example.test>", (501, 553))]),
    ("utf8-surrogate-domain", [step(EHLO, 250), step(MAIL + b" SMTPUTF8", 250),
                               step(b"RCPT TO:<alice@\xed\xa0\x80.test>", (501, 553))]),
]


@pytest.mark.parametrize("steps", [c[1] for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES])
def test_bad_command(server, steps):
    with server.raw("smtp") as c:
        c.greeting()
        for i, (line, expect, enhanced, may_close) in enumerate(steps):
            what = f"step {i}: {line[:60]!r}{'...' if len(line) > 60 else ''} ({len(line) + 2} bytes)"
            try:
                c.send(line + b"\r\n")
                r = c.reply()
            except (ConnectionClosed, BrokenPipeError, ConnectionResetError) as e:
                if may_close:
                    break
                raise AssertionError(f"{what}: connection closed instead of a reply ({e})")
            check_reply(r, expect, enhanced, what=what)
    server.assert_still_serves()


# ---------------------------------------------------------------------------
# DATA content


def open_data(server, rcpt=ALICE) -> RawSMTP:
    c = server.raw("smtp")
    c.greeting()
    c.ehlo()
    check_reply(c.cmd(MAIL), 250, what="MAIL")
    check_reply(c.cmd(f"RCPT TO:<{rcpt}>"), 250, what="RCPT")
    check_reply(c.cmd("DATA"), 354, what="DATA")
    return c


def test_bare_lf_in_data_refused(server):
    with open_data(server) as c:
        c.send(b"Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n")
        check_reply(c.reply(), "5xx", what="message with a bare LF line ending, after the final dot")
        check_reply(c.cmd("NOOP"), 250, what="NOOP after the refused message")
    assert server.messages(ALICE) == [], "message with a bare LF was stored"
    server.assert_still_serves()


@pytest.mark.parametrize("ending", SMUGGLE_ENDINGS.values(), ids=SMUGGLE_ENDINGS.keys())
def test_smtp_smuggling(server, ending):
    """Only CRLF.CRLF ends DATA; a lookalike followed by commands must not
    start a second transaction (SMTP smuggling)."""
    smuggled = (
        b"MAIL FROM:<ceo@example.test>\r\n"
        + f"RCPT TO:<{BOB}>\r\n".encode()
        + b"DATA\r\n"
        + b"Subject: smuggled\r\n\r\nevil\r\n"
    )
    with open_data(server, rcpt=ALICE) as c:
        c.send(b"Subject: innocent\r\n\r\nhello" + ending + smuggled + b".\r\n")
        first = c.reply()
        check_reply(first, (250, "5xx"), what="reply to a message containing a fake end-of-data")
        # Exactly one reply: anything more means the smuggled commands ran.
        try:
            extra = c.reply(timeout=1.0)
        except (socket.timeout, TimeoutError):
            extra = None
        assert extra is None, (
            f"server sent more replies after the message ({first!r}, then {extra!r}): "
            f"it ended DATA at {ending!r} and ran the smuggled commands"
        )
        check_reply(c.cmd("NOOP"), 250, what="NOOP right after the message")
    assert server.messages(BOB) == [], "the smuggled message was delivered to bob"
    stored = server.messages(ALICE)
    if first.code == 250:
        assert len(stored) == 1 and b"smuggled" in stored[0], "message split at a fake end-of-data"
    else:
        assert stored == []
    server.assert_still_serves()


def test_too_many_recipients(pochta):
    pochta.configure(limits={"max_recipients": 3})
    pochta.add_domain("example.test")
    users = [f"u{i}@example.test" for i in range(4)]
    for u in users:
        pochta.add_account(u, password_for(u))
    pochta.add_account(ALICE, ALICE_PW)
    pochta.start()
    marker = unique_id("rcpts")
    msg = make_message(to=users[0], subject=marker, message_id=f"<{marker}@e2e.test>")
    with pochta.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd(MAIL), 250, what="MAIL")
        for u in users[:3]:
            check_reply(c.cmd(f"RCPT TO:<{u}>"), 250, what=f"RCPT {u} (within max_recipients=3)")
        check_reply(c.cmd(f"RCPT TO:<{users[3]}>"), 452, "4.5.3", what="4th RCPT with max_recipients=3")
        check_reply(c.data(msg), 250, what="DATA for the first three recipients")
    for u in users[:3]:
        pochta.find_message(u, marker.encode())
    assert pochta.messages(users[3]) == [], "the refused 4th recipient got the message"
    pochta.assert_still_serves()


def test_oversize_message_streamed(pochta):
    """50 MB into a 1 MB limit: refused after the final dot, nothing stored,
    and the server does not buffer the stream in memory."""
    pochta.configure(limits={"max_message_bytes": 1_000_000})
    pochta.setup_basic()
    pochta.start()
    sampler = RssSampler(pochta.pid)
    baseline = sampler.read()
    sampler.start()
    line = b"x" * 98 + b"\r\n"
    block = line * 10_000  # 1 MB
    started = time.monotonic()
    try:
        with open_data(pochta) as c:
            c.sock.settimeout(30)
            c.send(b"Subject: huge\r\n\r\n")
            for i in range(50):
                try:
                    c.send(block)
                except (BrokenPipeError, ConnectionResetError, socket.timeout) as e:
                    raise AssertionError(
                        f"server stopped reading after {i} MB of an oversize message ({e!r}); "
                        "expected it to read to the final dot and then reply 552"
                    )
            c.send(b".\r\n")
            r = c.reply(timeout=60)
            check_reply(r, 552, "5.3.4", what="end of a 50 MB message with max_message_bytes=1000000")
            check_reply(c.cmd("NOOP"), 250, what="NOOP after the refused message")
    finally:
        sampler.stop()
    elapsed = time.monotonic() - started
    assert sampler.samples > 0
    max_mb = sampler.max_kib / 1024
    assert max_mb < 100, (
        f"server RSS reached {max_mb:.0f} MB while streaming 50 MB (baseline {baseline} KiB)"
    )
    assert pochta.messages(ALICE) == []
    print(f"streamed 50 MB in {elapsed:.1f}s, max RSS {max_mb:.1f} MB, baseline {baseline} KiB")
    pochta.assert_still_serves()


# ---------------------------------------------------------------------------
# Timeouts (command_timeout_secs = 2)


@pytest.fixture
def impatient(pochta):
    pochta.configure(limits={"command_timeout_secs": 2})
    pochta.setup_basic()
    pochta.start()
    return pochta


def dribble_until_reply(c: RawSMTP, payload: bytes, limit: float):
    """Send one byte per second; return (reply, seconds) once the server says something."""
    started = time.monotonic()
    for b in payload:
        try:
            c.send(bytes([b]))
        except OSError:
            break  # closed on us; read what it said
        ready, _, _ = select.select([c.sock], [], [], 1.0)
        if ready:
            break
        assert time.monotonic() - started < limit, (
            f"no reply after {limit}s of one byte per second with command_timeout_secs=2: "
            "the timeout does not bound a line that arrives slowly"
        )
    try:
        r = c.reply(timeout=max(1.0, limit - (time.monotonic() - started)))
    except ConnectionClosed:
        r = None
    return r, time.monotonic() - started


def check_timed_out(c: RawSMTP, r, elapsed: float, what: str):
    assert r is not None, f"{what}: connection closed without a 421 reply after {elapsed:.1f}s"
    check_reply(r, 421, "4.4.2", what=what)
    assert 1.5 <= elapsed <= 10, f"{what}: timed out after {elapsed:.1f}s with command_timeout_secs=2"
    assert c.wait_closed(5), f"{what}: connection still open 5s after the 421"


def test_slowloris_command(impatient):
    with impatient.raw("smtp") as c:
        c.greeting()
        r, elapsed = dribble_until_reply(c, b"EHLO slow.loris.client.e2e.test\r\n", limit=15)
        check_timed_out(c, r, elapsed, "one byte per second of an EHLO line")
    impatient.assert_still_serves()


def test_slowloris_data_line(impatient):
    with open_data(impatient) as c:
        c.send(b"Subject: slow\r\n\r\n")
        r, elapsed = dribble_until_reply(c, b"z" * 30, limit=15)
        check_timed_out(c, r, elapsed, "one byte per second of a DATA line")
    assert impatient.messages(ALICE) == []
    impatient.assert_still_serves()


def test_slowloris_auth_response(impatient):
    """The line answering a 334 AUTH challenge is a command line too."""
    with impatient.raw("submission") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        check_reply(c.cmd("AUTH LOGIN"), 334, what="AUTH LOGIN")
        r, elapsed = dribble_until_reply(c, b"YWxpY2VAZXhhbXBsZS50ZXN0\r\n", limit=15)
        check_timed_out(c, r, elapsed, "one byte per second of an AUTH LOGIN response")
    impatient.assert_still_serves()


def test_idle_client_times_out(impatient):
    with impatient.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        started = time.monotonic()
        try:
            r = c.reply(timeout=10)
        except ConnectionClosed:
            r = None
        check_timed_out(c, r, time.monotonic() - started, "idle client after EHLO")
    impatient.assert_still_serves()


# ---------------------------------------------------------------------------
# TLS


def test_starttls_command_injection(server):
    """Commands pipelined after STARTTLS in plaintext must be discarded
    (RFC 3207 §4.2; CVE-2011-0411)."""
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        c.send(b"STARTTLS\r\nXINJECTED\r\n")
        r = c.reply()
        if r.code != 220:
            check_reply(r, "5xx", what="STARTTLS with pipelined plaintext after it")
        else:
            try:
                c.sock = tls_context().wrap_socket(c.sock)
                c.buf.clear()
                r2 = c.cmd("NOOP")
            except (OSError, ConnectionClosed):
                r2 = None  # refusing the handshake is safe
            if r2 is not None:
                check_reply(r2, 250, what="first reply inside TLS (500 would mean the injected "
                                          "plaintext command ran inside TLS)")
    server.assert_still_serves()


def test_starttls_resets_state(server):
    """RFC 3207 §4.2: after STARTTLS the client must start over."""
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd(MAIL), 250, what="MAIL before STARTTLS")
        c.starttls()
        check_reply(c.cmd(RCPT_ALICE), 503, what="RCPT after STARTTLS without EHLO and MAIL")
        c.ehlo()
        check_reply(c.cmd(RCPT_ALICE), 503, what="RCPT after STARTTLS without a new MAIL")
        check_reply(c.cmd("STARTTLS"), "5xx", what="second STARTTLS")
    server.assert_still_serves()


def test_plaintext_on_implicit_tls_port(server):
    s = socket.create_connection(server.addr("submissions"), timeout=10)
    try:
        s.sendall(b"EHLO client.e2e.test\r\n" + b"\x16\x03\x01\x00\x05hello" * 3)
        s.settimeout(10)
        try:
            while s.recv(4096):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        s.close()
    server.assert_still_serves()


def test_random_junk(server):
    junk = random.Random(1234).randbytes(64 * 1024)
    c = server.raw("smtp", timeout=10)
    try:
        c.greeting()
        try:
            c.send(junk)
        except OSError:
            pass
        c.wait_closed(5)
    finally:
        c.close()
    server.assert_still_serves()


def test_max_connections(pochta):
    pochta.configure(limits={"max_connections": 3})
    pochta.setup_basic()
    pochta.start()
    held = []
    try:
        for _ in range(3):
            c = pochta.raw("smtp", timeout=10)
            c.greeting()
            held.append(c)
        extra = socket.create_connection(pochta.addr("smtp"), timeout=10)
        try:
            extra.settimeout(3)
            try:
                data = extra.recv(4096)
            except socket.timeout:
                data = None  # not accepted: also a refusal
            except ConnectionResetError:
                data = b""
            assert not (data and data.startswith(b"220")), (
                f"4th connection with max_connections=3 was greeted: {data!r}"
            )
            if data:
                assert data.startswith(b"421"), f"4th connection got {data!r}, expected 421 or close"
        finally:
            extra.close()
        held.pop().close()
        # A slot is free again: a new client is served (bounded wait).
        deadline = time.monotonic() + 10
        while True:
            try:
                pochta.assert_still_serves()
                break
            except (AssertionError, ConnectionClosed, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        for c in held:
            c.close()


def test_auth_flood_does_not_log_passwords(server):
    """Many failed AUTH attempts are answered (5xx), logged, and never log a password."""
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        secrets = [f"guess-{i}-{unique_id('pw')}" for i in range(5)]
        for pw in secrets:
            try:
                r = c.auth_plain(ALICE, pw)
            except ConnectionClosed:
                break  # disconnecting an attacker is fine
            check_reply(r, (535, 421, "5xx"), what="AUTH with a wrong password")
            if r.code == 421:
                break
    log = server.mail_log_text()
    for pw in secrets:
        assert pw not in log, "a password guess appears in mail.log"
    assert log, "mail.log is empty after failed AUTH attempts"
    server.assert_still_serves()
