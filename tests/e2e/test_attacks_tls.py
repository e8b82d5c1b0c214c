"""Attacks on the plaintext part of a session, over raw sockets:

- STARTTLS command injection (RFC 3207 §4.2, RFC 9051 §6.2.1, RFC 2595 §3.1;
  CVE-2011-0411): whatever a client pipelines after STARTTLS/STLS in
  plaintext is thrown away, so a man in the middle cannot append a command
  that then runs inside the TLS session. The SMTP case is
  `test_bad_input.py::test_starttls_command_injection`.
- No password in the clear (RFC 8314 §3, DESIGN.md "Security posture"):
  AUTH, LOGIN, AUTHENTICATE, USER/PASS are neither offered nor accepted
  before TLS, and the refusal comes before any challenge that would invite
  the client to send a secret. What was already covered elsewhere:
  `test_submission.py::test_auth_before_tls_refused` (AUTH PLAIN on 587),
  `test_bad_input.py` case `auth-on-mx-port`, `test_imap.py::
  test_login_needs_tls_and_right_password` (LOGIN, LOGINDISABLED),
  `test_pop3.py::test_logins_refused_before_tls` (USER, PASS, AUTH PLAIN
  with an initial response).
"""

from __future__ import annotations

import base64
import socket
import ssl
import time

import pytest

from harness import ALICE, ALICE_PW, ConnectionClosed, check_reply, tls_context

CRLF = b"\r\n"


class LineConn:
    """A raw line client for IMAP and POP3: exact bytes out, lines in, every
    read bounded."""

    def __init__(self, addr: tuple[str, int], timeout: float = 10.0):
        self.timeout = timeout
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.buf = bytearray()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float) -> None:
        self.sock.settimeout(max(0.01, timeout))
        try:
            chunk = self.sock.recv(65536)
        except (ssl.SSLError, ConnectionResetError) as e:
            raise ConnectionClosed(f"connection broken: {e}") from e
        if not chunk:
            raise ConnectionClosed("server closed the connection")
        self.buf += chunk

    def line(self, timeout: float | None = None) -> bytes:
        """One line, CRLF removed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line.rstrip(b"\r\n")
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for a line")
            self._fill(left)

    def lines_until(self, prefix: bytes, timeout: float | None = None) -> list[bytes]:
        """Lines up to and including the first that starts with `prefix`."""
        out = []
        while True:
            out.append(self.line(timeout))
            if out[-1].startswith(prefix):
                return out

    def extra(self, wait: float = 1.0) -> bytes:
        """Whatever the server sends within `wait` seconds (b"" if nothing)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                self._fill(deadline - time.monotonic())
            except (socket.timeout, TimeoutError, ConnectionClosed):
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def starttls(self) -> None:
        assert not self.buf, f"data after the STARTTLS reply: {bytes(self.buf)!r}"
        self.sock = tls_context().wrap_socket(self.sock)


def plain_token(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# ---------------------------------------------------------------------------
# STARTTLS command injection


def test_imap_starttls_command_injection(server):
    """`x2 CAPABILITY` pipelined after STARTTLS in the same packet must not be
    answered inside TLS."""
    with LineConn(server.addr("imap")) as c:
        assert c.line().startswith(b"* OK"), "greeting"
        c.send(b"a1 STARTTLS\r\nx2 CAPABILITY\r\n")
        assert c.line().startswith(b"a1 OK"), "STARTTLS"
        c.starttls()
        c.send(b"a3 NOOP\r\n")
        got = c.lines_until(b"a3 ")
        tagged = got[-1]
        got += [line for line in c.extra(1.0).split(CRLF) if line]
        injected = [line for line in got if line.startswith(b"x2 ")]
        assert not injected, (
            "the command pipelined after STARTTLS in plaintext was answered inside TLS: "
            f"{injected!r} (all lines: {got!r})"
        )
        assert tagged.startswith(b"a3 OK"), got


def test_imap_starttls_injected_login_does_not_log_in(server):
    """The classic use of the injection: a plaintext LOGIN as the attacker,
    so that the victim's session inside TLS runs as the attacker's account."""
    with LineConn(server.addr("imap")) as c:
        assert c.line().startswith(b"* OK"), "greeting"
        c.send(f'a1 STARTTLS\r\nx2 LOGIN "{ALICE}" "{ALICE_PW}"\r\n'.encode())
        assert c.line().startswith(b"a1 OK"), "STARTTLS"
        c.starttls()
        c.send(b"a3 SELECT INBOX\r\n")
        got = c.lines_until(b"a3 ")
        assert not any(line.startswith(b"x2 ") for line in got), (
            f"the LOGIN pipelined after STARTTLS was answered inside TLS: {got!r}"
        )
        assert got[-1].startswith((b"a3 BAD", b"a3 NO")), (
            f"SELECT inside TLS without a login of its own succeeded: {got!r}"
        )


def test_pop3_stls_command_injection(server):
    """`XINJECTED` pipelined after STLS must not be answered inside TLS: the
    first reply there is the one to CAPA."""
    with LineConn(server.addr("pop3")) as c:
        assert c.line().startswith(b"+OK"), "greeting"
        c.send(b"STLS\r\nXINJECTED\r\n")
        assert c.line().startswith(b"+OK"), "STLS"
        c.starttls()
        c.send(b"CAPA\r\n")
        first = c.line()
        assert first.startswith(b"+OK"), (
            f"first reply inside TLS is {first!r}, expected the +OK of CAPA "
            "(an -ERR means the plaintext command pipelined after STLS ran inside TLS)"
        )
        caps = c.lines_until(b".")
        assert b"USER" in caps, caps
        assert c.extra(1.0) == b"", "more replies inside TLS than commands sent"


def test_pop3_stls_injected_user_is_forgotten(server):
    """USER pipelined after STLS must not carry over: PASS inside TLS without
    a USER of its own is refused."""
    with LineConn(server.addr("pop3")) as c:
        assert c.line().startswith(b"+OK"), "greeting"
        c.send(f"STLS\r\nUSER {ALICE}\r\n".encode())
        assert c.line().startswith(b"+OK"), "STLS"
        c.starttls()
        c.send(f"PASS {ALICE_PW}\r\n".encode())
        first = c.line()
        assert first.startswith(b"-ERR"), (
            f"PASS inside TLS after a USER pipelined in plaintext got {first!r}: "
            "the injected USER was kept"
        )


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_smtp_starttls_injection_both_ports(server, service):
    """The SMTP case on both STARTTLS ports: a pipelined `MAIL FROM` does not
    run inside TLS (RSET-free attacker transaction), so the first reply to
    EHLO inside TLS is EHLO's and MAIL is still needed."""
    with server.raw(service) as c:
        c.greeting()
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<attacker@elsewhere.invalid>\r\n")
        check_reply(c.reply(), 220, what="STARTTLS")
        assert not c.buf, f"server replied to the injected line before TLS: {bytes(c.buf)!r}"
        c.sock = tls_context().wrap_socket(c.sock)
        first = c.cmd("EHLO client.e2e.test")
        check_reply(first, 250, what="first reply inside TLS (a 503 or a 'Sender OK' means the "
                                     "MAIL pipelined after STARTTLS ran inside TLS)")
        check_reply(c.cmd(f"RCPT TO:<{ALICE}>"), 503, what="RCPT inside TLS without a MAIL of its own")


# ---------------------------------------------------------------------------
# No password before TLS


@pytest.mark.parametrize("service", ["smtp", "submission"])
def test_smtp_auth_not_offered_before_tls(server, service):
    with server.raw(service) as c:
        c.greeting()
        r = c.ehlo()
        assert not any(line.upper().startswith("AUTH") for line in r.lines), (
            f"EHLO on {service} before STARTTLS offers AUTH: {r.lines}"
        )
        assert any(line.upper() == "STARTTLS" for line in r.lines), r.lines


@pytest.mark.parametrize("service", ["smtp", "submission"])
@pytest.mark.parametrize("command", ["AUTH LOGIN", "AUTH PLAIN", "AUTH LOGIN YWxpY2VAZXhhbXBsZS50ZXN0"])
def test_smtp_auth_refused_before_tls_without_challenge(server, service, command):
    """AUTH without an initial response must be refused at once, not answered
    with a 334 that asks for the user name or password in the clear."""
    with server.raw(service) as c:
        c.greeting()
        c.ehlo()
        r = c.cmd(command)
        assert r.code != 334, (
            f"{command} on {service} before STARTTLS got 334 {r.lines}: "
            "the server asks for credentials in the clear"
        )
        check_reply(r, "5xx", what=f"{command} on {service} before STARTTLS")
        check_reply(c.cmd(f"MAIL FROM:<{ALICE}>"), (250, "5xx"), what="MAIL after the refusal")


def test_imap_authenticate_refused_before_tls(server):
    with LineConn(server.addr("imap")) as c:
        greeting = c.line()
        assert b"LOGINDISABLED" in greeting and b"STARTTLS" in greeting, greeting
        assert b"AUTH=" not in greeting, f"a SASL mechanism offered before TLS: {greeting!r}"
        c.send(f"a1 AUTHENTICATE PLAIN {plain_token(ALICE, ALICE_PW)}\r\n".encode())
        r = c.lines_until(b"a1 ")
        assert r[-1].startswith(b"a1 NO"), f"AUTHENTICATE PLAIN (SASL-IR) before STARTTLS: {r!r}"
        # Without an initial response: no "+" inviting the secret in the clear.
        c.send(b"a2 AUTHENTICATE PLAIN\r\n")
        r = c.line()
        assert not r.startswith(b"+"), (
            f"AUTHENTICATE PLAIN before STARTTLS got a continuation {r!r}: "
            "the server asks for the password in the clear"
        )
        assert r.startswith((b"a2 NO", b"a2 BAD")), r
        c.send(f'a3 LOGIN "{ALICE}" "{ALICE_PW}"\r\n'.encode())
        r = c.lines_until(b"a3 ")
        assert r[-1].startswith(b"a3 NO"), f"LOGIN before STARTTLS: {r!r}"
        # None of that logged in.
        c.send(b"a4 SELECT INBOX\r\n")
        r = c.lines_until(b"a4 ")
        assert r[-1].startswith((b"a4 BAD", b"a4 NO")), f"SELECT after refused logins: {r!r}"
    assert ALICE_PW not in server.mail_log_text()


def test_pop3_auth_refused_before_tls_without_challenge(server):
    with LineConn(server.addr("pop3")) as c:
        assert c.line().startswith(b"+OK"), "greeting"
        c.send(b"AUTH PLAIN\r\n")
        r = c.line()
        assert not r.startswith(b"+"), (
            f"AUTH PLAIN before STLS got {r!r}: the server asks for the password in the clear"
        )
        assert r.startswith(b"-ERR"), r
        c.send(b"AUTH\r\n")
        r = c.line()
        assert r.startswith(b"-ERR"), f"AUTH (list mechanisms) before STLS offered them: {r!r}"
        c.send(f"USER {ALICE}\r\nPASS {ALICE_PW}\r\nSTAT\r\n".encode())
        replies = [c.line() for _ in range(3)]
        assert all(x.startswith(b"-ERR") for x in replies), (
            f"USER/PASS/STAT before STLS: {replies!r}"
        )
