"""The core paths driven by swaks, plus BDAT/CHUNKING (RFC 3030) over a raw socket
(swaks cannot send BDAT)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    BOB_PW,
    REMOTE_DOMAIN,
    ConnectionClosed,
    assert_stored_as_sent,
    check_reply,
    dot_stuff,
    ehlo_keywords,
    make_message,
    unique_id,
)

SWAKS = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(SWAKS is None, reason="swaks not installed (Debian package: swaks)")


def swaks(server, service: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    host, port = server.addr(service)
    argv = [SWAKS, "--server", host, "--port", str(port), "--helo", "client.e2e.test",
            "--timeout", "20", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"swaks did not finish within {timeout}s: {argv}") from e


def raw_data_file(tmp_path, message: bytes):
    """A DATA section for `swaks --no-data-fixup`: swaks sends it verbatim plus CRLF."""
    path = tmp_path / f"{unique_id('data')}.eml"
    path.write_bytes(dot_stuff(message) + b".")
    return f"@{path}"


def check_swaks(res: subprocess.CompletedProcess, what: str, rc: int = 0):
    assert res.returncode == rc, (
        f"{what}: swaks exited {res.returncode}, expected {rc}\n{res.stdout}\n{res.stderr}"
    )


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth_submission(server, tmp_path, mechanism):
    marker = unique_id("swaks")
    msg = make_message(sender=ALICE, to=BOB, subject=marker, message_id=f"<{marker}@e2e.test>",
                       body=b"Sent by swaks.\r\n.leading dot\r\n")
    res = swaks(server, "submission", "--from", ALICE, "--to", BOB, "--tls",
                "--auth", mechanism, "--auth-user", ALICE, "--auth-password", ALICE_PW,
                "--data", raw_data_file(tmp_path, msg), "--no-data-fixup")
    check_swaks(res, f"swaks STARTTLS + AUTH {mechanism}")
    stored = server.find_message(BOB, marker.encode())
    assert_stored_as_sent(stored, msg)


@needs_swaks
def test_swaks_implicit_tls_submission(server, tmp_path):
    marker = unique_id("swaks-tlsc")
    msg = make_message(sender=BOB, to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>")
    res = swaks(server, "submissions", "--from", BOB, "--to", ALICE, "--tls-on-connect",
                "--auth", "PLAIN", "--auth-user", BOB, "--auth-password", BOB_PW,
                "--data", raw_data_file(tmp_path, msg), "--no-data-fixup")
    check_swaks(res, "swaks --tls-on-connect on the submissions port")
    assert_stored_as_sent(server.find_message(ALICE, marker.encode()), msg)


@needs_swaks
def test_swaks_mx_delivery(server, tmp_path):
    # swaks' own message, pipelined, with a marker header.
    marker = unique_id("swaks-mx")
    res = swaks(server, "smtp", "--from", "someone@elsewhere.invalid", "--to", ALICE,
                "--pipeline", "--header", f"X-E2E-Marker: {marker}")
    check_swaks(res, "swaks MX delivery with --pipeline")
    stored = server.find_message(ALICE, marker.encode())
    assert stored.startswith(b"Received:"), stored[:200]

    # A byte-exact message over STARTTLS on the MX port.
    marker = unique_id("swaks-mx-tls")
    msg = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>")
    res = swaks(server, "smtp", "--from", "someone@elsewhere.invalid", "--to", ALICE, "--tls",
                "--data", raw_data_file(tmp_path, msg), "--no-data-fixup")
    check_swaks(res, "swaks MX delivery with STARTTLS")
    assert_stored_as_sent(server.find_message(ALICE, marker.encode()), msg)


@needs_swaks
def test_swaks_wrong_password(server):
    res = swaks(server, "submission", "--from", ALICE, "--to", BOB, "--tls",
                "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", "not-the-password")
    check_swaks(res, "swaks with a wrong password", rc=28)
    assert " 535" in res.stdout, f"no 535 reply in the transcript:\n{res.stdout}"
    assert server.messages(BOB) == []


@needs_swaks
def test_swaks_relay_refused(server):
    res = swaks(server, "smtp", "--from", "spammer@elsewhere.invalid", "--to", f"victim@{REMOTE_DOMAIN}")
    check_swaks(res, "swaks relay attempt on MX", rc=24)
    assert " 550 5.7.1" in res.stdout, f"no 550 5.7.1 in the transcript:\n{res.stdout}"
    assert server.queue() == []


# ---------------------------------------------------------------------------
# BDAT / CHUNKING over a raw socket


def start_mx_transaction(server, rcpt=ALICE):
    c = server.raw("smtp")
    c.greeting()
    kws = ehlo_keywords(c.ehlo())
    assert "CHUNKING" in kws, f"CHUNKING not advertised: {kws}"
    check_reply(c.cmd("MAIL FROM:<someone@elsewhere.invalid>"), 250, what="MAIL")
    check_reply(c.cmd(f"RCPT TO:<{rcpt}>"), 250, what="RCPT")
    return c


def test_bdat_chunks_stored_verbatim(server):
    marker = unique_id("bdat")
    # BDAT content is not dot-stuffed: a lone dot line and leading dots stay as they are.
    msg = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>",
                       body=b"first line\r\n.\r\n..two dots\r\n.one dot\r\nlast\r\n")
    # Split in the middle of a CRLF and in the middle of a header.
    cuts = [0, 17, msg.index(b"\r\n.\r\n") + 1, len(msg) - 3, len(msg)]
    chunks = [msg[a:b] for a, b in zip(cuts, cuts[1:])]
    with start_mx_transaction(server) as c:
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            c.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
            check_reply(c.reply(), 250, what=f"BDAT chunk {i} ({len(chunk)} bytes{', LAST' if last else ''})")
        check_reply(c.cmd("QUIT"), 221, what="QUIT")
    assert_stored_as_sent(server.find_message(ALICE, marker.encode()), msg)


def test_bdat_zero_last_and_pipelined(server):
    marker = unique_id("bdat0")
    msg = make_message(to=BOB, subject=marker, message_id=f"<{marker}@e2e.test>")
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        # Everything in one write (PIPELINING + CHUNKING), ending with BDAT 0 LAST.
        c.send(b"MAIL FROM:<someone@elsewhere.invalid>\r\n"
               + f"RCPT TO:<{BOB}>\r\n".encode()
               + f"BDAT {len(msg)}\r\n".encode() + msg
               + b"BDAT 0 LAST\r\n")
        for what in ("MAIL", "RCPT", "BDAT", "BDAT 0 LAST"):
            check_reply(c.reply(), 250, what=f"pipelined {what}")
        # A second transaction on the same connection.
        marker2 = unique_id("bdat-second")
        msg2 = make_message(to=BOB, subject=marker2, message_id=f"<{marker2}@e2e.test>")
        check_reply(c.cmd("MAIL FROM:<someone@elsewhere.invalid>"), 250, what="second MAIL")
        check_reply(c.cmd(f"RCPT TO:<{BOB}>"), 250, what="second RCPT")
        c.send(f"BDAT {len(msg2)} LAST\r\n".encode() + msg2)
        check_reply(c.reply(), 250, what="second BDAT LAST")
    assert_stored_as_sent(server.find_message(BOB, marker.encode()), msg)
    assert_stored_as_sent(server.find_message(BOB, marker2.encode()), msg2)


def test_bdat_binary_content_with_bare_lf(server):
    """BDAT carries bytes, not lines: bare LF, bare CR and NUL are not a
    protocol error (RFC 3030 §2). The message is stored as sent but for its
    bare CRs and LFs, which become CRLF (RFC 5321 §2.3.8), so that no stored
    message holds a line ending a next hop could read another way."""
    marker = unique_id("bdat-bin")
    msg = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>",
                       body=b"line with bare LF\nand a CR\r\na bare CR\rNUL \x00 end\r\n")
    with start_mx_transaction(server) as c:
        c.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
        r = c.reply()
    check_reply(r, 250, what="BDAT LAST with a bare LF, a bare CR and NUL")
    crlf = msg.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert_stored_as_sent(server.find_message(ALICE, marker.encode()), crlf)
    server.assert_still_serves()


def test_bdat_over_size_limit(pochta):
    pochta.configure(limits={"max_message_bytes": 100_000})
    pochta.setup_basic()
    pochta.start()
    big = make_message(to=ALICE, subject="too big", body=(b"z" * 78 + b"\r\n") * 2000)  # ~160 KB
    with start_mx_transaction(pochta) as c:
        c.send(b"BDAT 60000\r\n" + big[:60000])
        check_reply(c.reply(), 250, what="first BDAT chunk under the limit")
        rest = big[60000:]
        c.send(f"BDAT {len(rest)} LAST\r\n".encode() + rest)
        check_reply(c.reply(), 552, "5.3.4", what="BDAT LAST taking the message over max_message_bytes")
        # The server may keep the connection (then RSET must work) or close it
        # after the refusal; either way the next transaction must succeed.
        try:
            r = c.cmd("RSET")
        except (ConnectionClosed, OSError):
            r = None
        if r is not None:
            check_reply(r, 250, what="RSET after a refused BDAT")
    marker = unique_id("after-bdat")
    msg = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>")
    with start_mx_transaction(pochta) as c:
        c.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
        check_reply(c.reply(), 250, what="BDAT LAST of a small message after a refused one")
    stored = pochta.messages(ALICE)
    assert len(stored) == 1, f"expected only the small message, found {len(stored)}"
    assert_stored_as_sent(stored[0], msg)


def test_bdat_over_tls_with_auth(server):
    marker = unique_id("bdat-sub")
    msg = make_message(sender=ALICE, to=BOB, subject=marker, message_id=f"<{marker}@e2e.test>")
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        assert "CHUNKING" in ehlo_keywords(c.ehlo())
        check_reply(c.auth_plain(ALICE, ALICE_PW), 235, what="AUTH PLAIN")
        check_reply(c.cmd(f"MAIL FROM:<{ALICE}>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<{BOB}>"), 250, what="RCPT")
        half = len(msg) // 2
        c.send(f"BDAT {half}\r\n".encode() + msg[:half])
        check_reply(c.reply(), 250, what="BDAT first half")
        c.send(f"BDAT {len(msg) - half} LAST\r\n".encode() + msg[half:])
        check_reply(c.reply(), 250, what="BDAT LAST")
    assert_stored_as_sent(server.find_message(BOB, marker.encode()), msg)


def test_data_after_bdat_refused(server):
    """RFC 3030 §4: BDAT and DATA cannot be mixed in one transaction."""
    with start_mx_transaction(server) as c:
        c.send(b"BDAT 10\r\n0123456789")
        check_reply(c.reply(), 250, what="BDAT 10")
        check_reply(c.cmd("DATA"), 503, what="DATA after BDAT in the same transaction")
    assert server.messages(ALICE) == []
