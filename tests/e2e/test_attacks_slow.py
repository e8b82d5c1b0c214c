"""Slow clients on IMAP and POP3 (the SMTP ones are in test_bad_input.py,
`test_slowloris_*` and `test_idle_client_times_out`): every read has a
deadline, so one byte a second, or nothing at all, cannot hold a session
and its connection slot. With command_timeout_secs = 2:

- IMAP: silent before login; a command line dribbled before login; a
  literal dribbled before login (LOGIN) and after it (APPEND); the line that
  ends IDLE dribbled. After login the RFC 9051 §5.4 autologout (at least 30
  minutes) applies instead, and IDLE has its own 30-minute limit: both
  outlive the command timeout.
- POP3: silent before login; a command dribbled; the AUTH PLAIN response
  after `+ ` dribbled. (Silent after login: test_pop3.py
  `test_timeout_closes_idle_session`.)
"""

from __future__ import annotations

import select
import socket
import time

import pytest

from harness import ALICE, ALICE_PW, ConnectionClosed
from test_attacks_tls import LineConn, plain_token

TIMEOUT = 2
# A closed session must be gone well within this (slack for a loaded CI box).
LIMIT = 12


@pytest.fixture
def impatient(pochta):
    pochta.configure(limits={"command_timeout_secs": TIMEOUT})
    pochta.setup_basic()
    pochta.start()
    return pochta


def dribble(c: LineConn, payload: bytes, limit: float = LIMIT) -> tuple[bytes, float]:
    """Sends one byte a second until the server says something or closes;
    returns (what it said, seconds since the first byte)."""
    started = time.monotonic()
    for b in payload:
        try:
            c.send(bytes([b]))
        except OSError:
            break
        ready, _, _ = select.select([c.sock], [], [], 1.0)
        if ready:
            break
        assert time.monotonic() - started < limit, (
            f"no reply after {limit}s of one byte per second with command_timeout_secs={TIMEOUT}: "
            "the timeout does not bound input that arrives slowly"
        )
    else:
        raise AssertionError(f"the server waited through all {len(payload)} dribbled bytes")
    said = c.extra(2.0)
    return said, time.monotonic() - started


def assert_closed(c: LineConn, what: str, within: float = 5) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            c._fill(deadline - time.monotonic())
            c.buf.clear()
        except ConnectionClosed:
            return
        except (socket.timeout, TimeoutError):
            break
    raise AssertionError(f"{what}: connection still open {within}s after the timeout")


def silent_until_closed(c: LineConn, limit: float = LIMIT) -> tuple[bytes, float]:
    """Says nothing; returns (what the server sent, seconds) once it closes."""
    started = time.monotonic()
    said = b""
    while True:
        left = limit - (time.monotonic() - started)
        assert left > 0, (
            f"a silent client is still connected after {limit}s with command_timeout_secs={TIMEOUT}; "
            f"the server sent {said!r}"
        )
        try:
            c._fill(left)
        except ConnectionClosed:
            return said + bytes(c.buf), time.monotonic() - started
        except (socket.timeout, TimeoutError):
            continue
        said += bytes(c.buf)
        c.buf.clear()


# ---------------------------------------------------------------------------
# IMAP


def imap_plain(server) -> LineConn:
    c = LineConn(server.addr("imap"), timeout=LIMIT)
    assert c.line().startswith(b"* OK"), "greeting"
    return c


def imap_logged_in(server) -> LineConn:
    c = imap_plain(server)
    c.send(b"a0 STARTTLS\r\n")
    assert c.line().startswith(b"a0 OK"), "STARTTLS"
    c.starttls()
    c.send(f'a1 LOGIN "{ALICE}" "{ALICE_PW}"\r\n'.encode())
    r = c.lines_until(b"a1 ")
    assert r[-1].startswith(b"a1 OK"), r
    return c


def test_imap_silent_before_login_times_out(impatient):
    """Before login no autologout of 30 minutes applies (RFC 9051 §5.4 asks
    for it only after authentication): a silent client is let go after the
    command timeout, or anyone could hold every connection slot for free."""
    with imap_plain(impatient) as c:
        said, elapsed = silent_until_closed(c)
    assert elapsed >= TIMEOUT - 0.5, f"closed after {elapsed:.1f}s, before the {TIMEOUT}s timeout"
    assert b"BYE" in said, f"closed without a BYE: {said!r}"


def test_imap_dribbled_command_before_login(impatient):
    with imap_plain(impatient) as c:
        said, elapsed = dribble(c, f'a1 LOGIN "{ALICE}" "{ALICE_PW}"\r\n'.encode())
        assert b"BYE" in said and b"a1 OK" not in said, said
        assert_closed(c, "dribbled IMAP command")
    assert elapsed <= LIMIT


def test_imap_dribbled_literal_before_login(impatient):
    with imap_plain(impatient) as c:
        c.send(b"a1 STARTTLS\r\n")
        assert c.line().startswith(b"a1 OK")
        c.starttls()
        c.send(b"a2 LOGIN {18}\r\n")
        assert c.line().startswith(b"+"), "literal accepted"
        said, elapsed = dribble(c, ALICE.encode())
        assert b"BYE" in said, said
        assert_closed(c, "dribbled LOGIN literal")


def test_imap_dribbled_literal_after_login(impatient):
    msg = b"Subject: slow\r\n\r\n" + b"x" * 200 + b"\r\n"
    with imap_logged_in(impatient) as c:
        c.send(b"a2 APPEND INBOX {%d}\r\n" % len(msg))
        assert c.line().startswith(b"+"), "literal accepted"
        said, elapsed = dribble(c, msg)
        assert b"BYE" in said and b"a2 OK" not in said, said
        assert_closed(c, "dribbled APPEND literal")
    assert impatient.messages(ALICE) == [], "the half-sent APPEND was stored"


def test_imap_logged_in_outlives_command_timeout(impatient):
    """After login the autologout is at least 30 minutes (RFC 9051 §5.4),
    and IDLE (RFC 2177) waits as long: neither ends at the command timeout."""
    with imap_logged_in(impatient) as c:
        time.sleep(TIMEOUT * 2 + 1)
        c.send(b"a2 NOOP\r\n")
        r = c.lines_until(b"a2 ")
        assert r[-1].startswith(b"a2 OK"), f"NOOP after {TIMEOUT * 2 + 1}s of silence: {r!r}"
        c.send(b"a3 IDLE\r\n")
        assert c.line().startswith(b"+"), "IDLE"
        time.sleep(TIMEOUT * 2 + 1)
        c.send(b"DONE\r\n")
        r = c.lines_until(b"a3 ")
        assert r[-1].startswith(b"a3 OK"), f"IDLE after {TIMEOUT * 2 + 1}s: {r!r}"


def test_imap_dribbled_done_after_idle(impatient):
    """Once the client starts the line that ends IDLE, it has the command
    timeout to finish it, not IDLE's 30 minutes."""
    with imap_logged_in(impatient) as c:
        c.send(b"a3 IDLE\r\n")
        assert c.line().startswith(b"+"), "IDLE"
        said, elapsed = dribble(c, b"DONE" + b" " * 40 + b"\r\n")
        assert b"BYE" in said, said
        assert_closed(c, "dribbled DONE")


# ---------------------------------------------------------------------------
# POP3


def pop3_plain(server) -> LineConn:
    c = LineConn(server.addr("pop3"), timeout=LIMIT)
    assert c.line().startswith(b"+OK"), "greeting"
    return c


def test_pop3_silent_before_login_times_out(impatient):
    with pop3_plain(impatient) as c:
        said, elapsed = silent_until_closed(c)
    assert elapsed >= TIMEOUT - 0.5, f"closed after {elapsed:.1f}s, before the {TIMEOUT}s timeout"
    assert said.startswith(b"-ERR"), f"closed without an -ERR: {said!r}"


def test_pop3_dribbled_command(impatient):
    with pop3_plain(impatient) as c:
        said, elapsed = dribble(c, b"CAPA" + b" " * 40 + b"\r\n")
        assert said.startswith(b"-ERR"), said
        assert_closed(c, "dribbled POP3 command")


def test_pop3_dribbled_auth_response(impatient):
    with pop3_plain(impatient) as c:
        c.send(b"STLS\r\n")
        assert c.line().startswith(b"+OK")
        c.starttls()
        c.send(b"AUTH PLAIN\r\n")
        assert c.line().startswith(b"+"), "AUTH PLAIN challenge"
        said, elapsed = dribble(c, plain_token(ALICE, ALICE_PW).encode() + b"\r\n")
        assert said.startswith(b"-ERR"), said
        assert_closed(c, "dribbled AUTH PLAIN response")
