"""Hostile and broken IMAP clients and messages against a real `pochta
serve`: malformed commands, unterminated and oversize literals, invalid
sequence sets, deeply nested or broken MIME, bad mailbox names, commands in
the wrong state, 100 KB lines. Each case must get BAD or NO (or a harmless
OK where the RFC allows it), never a crash; the connection goes on where it
should; and after every case a fresh client still logs in and works.
"""

from __future__ import annotations

import re
import time

import pytest

from harness import ALICE, ConnectionClosed, make_message
from imap_wire import ImapConn, append, connect, parse, tagged_status

# A server with a small message limit, so that "too big" is cheap to reach.
SMALL_LIMIT = 4096


@pytest.fixture
def small_server(pochta):
    pochta.configure(limits={"max_message_bytes": SMALL_LIMIT, "command_timeout_secs": 3})
    pochta.setup_basic()
    pochta.start()
    return pochta


def assert_serving(server) -> None:
    """The process runs and a fresh, well-behaved client can log in, select
    and fetch."""
    assert server.running(), f"pochta serve is gone\n{server.log_tail()}"
    c = connect(server)
    try:
        c.ok("SELECT INBOX")
        c.ok("NOOP")
        c.ok("LOGOUT")
    finally:
        c.close()
    assert "panicked" not in server.log_tail(400), f"the server panicked\n{server.log_tail(100)}"


def answer(c: ImapConn, data: bytes, tag: bytes = b"a1", timeout: float = 15) -> list[bytes]:
    """Sends raw bytes and reads up to the tagged response for `tag` (or an
    untagged BAD/BYE when the server could not find a tag)."""
    c.send(data)
    out = []
    while True:
        r = c.response(timeout)
        out.append(r)
        if r.startswith(tag + b" ") or r.startswith((b"* BAD", b"* BYE")):
            return out


def still_talks(c: ImapConn) -> None:
    untagged, tagged = c.command("NOOP")
    assert tagged_status(tagged) == "OK", f"NOOP after the bad input: {tagged!r}"


# ---------------------------------------------------------------------------
# Malformed commands: (id, bytes, accepted final statuses)

MALFORMED = [
    ("empty-line", b"\r\n", ("BAD",)),
    ("tag-only", b"a1\r\n", ("BAD",)),
    ("unknown-command", b"a1 XYZZY\r\n", ("BAD",)),
    ("missing-arguments", b"a1 FETCH\r\n", ("BAD",)),
    ("star-as-tag", b"* NOOP\r\n", ("BAD",)),
    ("plus-as-tag", b"+ NOOP\r\n", ("BAD",)),
    ("extra-argument", b"a1 NOOP extra\r\n", ("BAD",)),
    ("unterminated-quoted", b'a1 LIST "" "abc\r\n', ("BAD",)),
    ("unbalanced-paren", b"a1 STATUS INBOX (MESSAGES\r\n", ("BAD",)),
    ("nul-byte", b"a1 NOOP\x00\r\n", ("BAD",)),
    ("eight-bit-garbage", b"\xff\xfe\xfd NOOP\r\n", ("BAD",)),
    ("bare-lf", b"a1 NOOP\n", ("BAD", "OK")),
    ("bare-cr", b"a1 NOOP\rb1 NOOP\r\n", ("BAD",)),
    ("long-tag", b"a" * 1000 + b" NOOP\r\n", ("BAD", "OK")),
    ("uid-alone", b"a1 UID\r\n", ("BAD",)),
    ("uid-unknown", b"a1 UID XYZZY 1\r\n", ("BAD",)),
    ("append-without-literal", b"a1 APPEND INBOX\r\n", ("BAD",)),
    ("append-empty-literal", b"a1 APPEND INBOX {0+}\r\n\r\n", ("BAD", "NO")),
    ("append-bad-date", b'a1 APPEND INBOX "31-Feb-2026 99:00:00 +9999" {3+}\r\nabc\r\n', ("BAD",)),
    ("append-bad-flag", b"a1 APPEND INBOX (\\Bogus\\) {3+}\r\nabc\r\n", ("BAD",)),
    ("id-odd-list", b'a1 ID ("name")\r\n', ("BAD",)),
    ("enable-nothing", b"a1 ENABLE\r\n", ("BAD",)),
    ("status-bogus-item", b"a1 STATUS INBOX (BOGUS)\r\n", ("BAD",)),
    ("status-empty-list", b"a1 STATUS INBOX ()\r\n", ("BAD", "OK")),
    ("list-no-pattern", b'a1 LIST ""\r\n', ("BAD",)),
    ("select-two-names", b"a1 SELECT INBOX Trash\r\n", ("BAD",)),
    ("literal-size-overflow", b"a1 APPEND INBOX {99999999999999999999}\r\n", ("BAD",)),
    ("literal-size-u32", b"a1 APPEND INBOX {4294967296}\r\n", ("BAD", "NO")),
    ("literal-not-a-number", b"a1 APPEND INBOX {12a}\r\n", ("BAD",)),
    ("search-unbalanced", b"a1 SEARCH (ALL\r\n", ("BAD",)),
    ("search-1000-parens", b"a1 SEARCH " + b"(" * 1000 + b"ALL" + b")" * 1000 + b"\r\n", ("BAD", "OK")),
    ("search-20000-nots", b"a1 SEARCH " + b"NOT " * 20000 + b"ALL\r\n", ("BAD", "OK")),
    ("search-20000-ors", b"a1 SEARCH " + b"OR ALL " * 20000 + b"ALL\r\n", ("BAD", "OK")),
    ("fetch-10000-items", b"a1 FETCH 1 (" + b" ".join([b"FLAGS"] * 10000) + b")\r\n", ("BAD", "OK")),
    ("fetch-bad-section", b"a1 FETCH 1 BODY[HEADER.FIELDS (]\r\n", ("BAD",)),
    ("fetch-bad-partial", b"a1 FETCH 1 BODY[]<5.0>\r\n", ("BAD",)),
    ("store-bad-op", b"a1 STORE 1 *FLAGS (\\Seen)\r\n", ("BAD",)),
    ("authenticate-logged-in", b"a1 AUTHENTICATE PLAIN\r\n", ("BAD", "NO")),
    ("idle-garbage-after", b"a1 IDLE now\r\n", ("BAD",)),
]


@pytest.mark.parametrize("data,statuses", [pytest.param(d, s, id=i) for i, d, s in MALFORMED])
def test_malformed_command(server, data, statuses):
    c = connect(server)
    append(c, "INBOX", make_message(subject="target"))
    c.ok("SELECT INBOX")
    first = data.split(b" ", 1)[0]
    tag = first if re.fullmatch(rb"[A-Za-z0-9.]+", first) else b"a1"
    out = answer(c, data, tag)
    last = out[-1]
    status = last.split(b" ", 2)[1].decode() if b" " in last else ""
    assert status in statuses, f"{data[:80]!r}: expected {statuses}, got {out[-3:]!r}"
    still_talks(c)
    c.close()
    assert_serving(server)


def test_bad_commands_in_a_row_end_the_session_not_the_server(server):
    """Junk after junk: the server may hang up on the client (BYE), and goes on."""
    c = connect(server)
    closed = False
    for i in range(100):
        try:
            c.send(b"x%d XYZZY\r\n" % i)
            r = c.response(5)
            assert r.startswith((b"x%d BAD" % i, b"* BYE", b"* BAD")), r
            if r.startswith(b"* BYE"):
                closed = c.closed_by_server(5)
                break
        except ConnectionClosed:
            closed = True
            break
    assert closed, "100 junk commands and the session is still open"
    assert_serving(server)


# ---------------------------------------------------------------------------
# Literals


def test_unterminated_literal_then_disconnect(server):
    """A client announces {100}, sends 10 bytes and goes away: nothing is
    stored, the server serves on."""
    before = len(server.mailbox(ALICE))
    for announce in (b"{100}", b"{100+}"):
        c = connect(server)
        c.send(b"a1 APPEND INBOX " + announce + b"\r\n")
        if not announce.endswith(b"+}"):
            assert c.response().startswith(b"+"), "no continuation for a synchronizing literal"
        c.send(b"Subject: x")
        c.close()
    time.sleep(0.3)
    assert len(server.mailbox(ALICE)) == before, "a cut-off APPEND stored a message"
    assert_serving(server)


def test_unterminated_literal_times_out(small_server):
    """A client that announces {100} and then sends only 10 bytes is cut off
    after the command timeout (3 s here), not kept forever."""
    c = connect(small_server)
    c.send(b"a1 APPEND INBOX {100}\r\n")
    assert c.response().startswith(b"+")
    c.send(b"Subject: x")
    started = time.monotonic()
    assert c.closed_by_server(15), "the server waits forever for the rest of the literal"
    assert time.monotonic() - started < 12
    assert_serving(small_server)


def test_literal_shorter_than_announced_swallows_the_next_command(server):
    """The bytes after a short literal are literal data, not commands: a
    LOGOUT inside must not log out."""
    c = connect(server)
    c.send(b"a1 APPEND INBOX {40+}\r\nSubject: x\r\n\r\nb9 LOGOUT\r\n")
    assert not c.pending(0.5), "the server answered before the literal was complete"
    c.send(b"123456789012345\r\n")
    out = answer(c, b"")
    assert out[-1].startswith(b"a1 OK"), out
    assert not any(r.startswith(b"* BYE") for r in out), out
    still_talks(c)
    c.close()


def test_oversize_synchronizing_literal_gets_toobig_without_continuation(small_server):
    """RFC 7888 §4 / RFC 4469: a synchronizing literal over the limit is
    refused with NO [TOOBIG] before any + is sent; the session goes on."""
    c = connect(small_server)
    c.send(b"a1 APPEND INBOX {%d}\r\n" % (SMALL_LIMIT + 1))
    r = c.response()
    assert r.startswith(b"a1 NO [TOOBIG]"), r
    still_talks(c)
    c.close()
    assert_serving(small_server)


def test_oversize_nonsynchronizing_literal_is_swallowed(small_server):
    """RFC 7888 §4: a non-synchronizing literal over the limit is read and
    thrown away (commands hidden in it are not run), then refused."""
    c = connect(small_server)
    size = SMALL_LIMIT * 3
    payload = (b"x1 LOGOUT\r\n" * (size // 11 + 1))[:size]
    out = answer(c, b"a1 APPEND INBOX {%d+}\r\n" % size + payload + b"\r\n")
    assert tagged_status(out[-1]) in ("BAD", "NO"), out
    assert not any(r.startswith((b"* BYE", b"x1 ")) for r in out), f"the literal's content was run: {out[:3]}"
    still_talks(c)
    c.close()
    assert_serving(small_server)


def test_literal_at_the_limit_is_accepted(small_server):
    c = connect(small_server)
    msg = make_message(subject="at the limit")
    msg += b"x" * (SMALL_LIMIT - len(msg) - 2) + b"\r\n"
    assert len(msg) == SMALL_LIMIT
    append(c, "INBOX", msg)
    c.close()


def test_literal_before_login_is_bounded(server):
    """An unauthenticated client needs no more than a short user name and
    password: a 1 MiB literal before login is refused without +."""
    c = connect(server, login=False)
    c.send(b"a1 LOGIN {1048576}\r\n")
    r = c.response()
    assert not r.startswith(b"+"), "the server invites a 1 MiB literal before authentication"
    c.close()


# ---------------------------------------------------------------------------
# Sequence sets

BAD_SETS = [b"0", b"1:0", b"-1", b"1,,2", b"4294967296", b"1:4294967296", b"a:b", b"*:*:1", b"1:", b":1",
            b"", b"1 2", b"99", b"3:99"]


@pytest.mark.parametrize("seqset", BAD_SETS, ids=lambda s: s.decode() or "empty")
def test_invalid_sequence_set(server, seqset):
    c = connect(server)
    for i in range(3):
        append(c, "INBOX", make_message(subject=f"seq {i}"))
    c.ok("SELECT INBOX")
    for verb in (b"FETCH %s (FLAGS)", b"STORE %s +FLAGS (\\Seen)", b"COPY %s Trash", b"SEARCH %s"):
        out = answer(c, b"a1 " + (verb % seqset) + b"\r\n")
        status = tagged_status(out[-1])
        assert status in ("BAD", "NO") or (status == "OK" and verb.startswith(b"SEARCH")), (verb % seqset, out)
    still_talks(c)
    c.close()
    assert_serving(server)


def test_uid_sets_past_the_end_are_empty(server):
    """UID ranges may name UIDs that do not exist (RFC 3501 §6.4.8)."""
    c = connect(server)
    append(c, "INBOX", make_message(subject="uid"))
    c.ok("SELECT INBOX")
    for cmd in ("UID FETCH 4294967295 (FLAGS)", "UID FETCH 2:4294967295 (FLAGS)",
                "UID STORE 4294967295 +FLAGS (\\Seen)", "UID SEARCH UID 4294967295"):
        untagged = c.ok(cmd)
        assert all(not r.startswith(b"* ") or r == b"* SEARCH" for r in untagged), (cmd, untagged)
    out = answer(c, b"a1 UID FETCH 0 (FLAGS)\r\n")
    assert tagged_status(out[-1]) == "BAD", out
    c.close()


# ---------------------------------------------------------------------------
# Hostile MIME, delivered over SMTP


def nested_multipart(depth: int) -> bytes:
    head = [b"From: a@example.com", b"To: alice@example.test", b"Subject: nested", b"MIME-Version: 1.0"]
    body = b""
    opening = b""
    for i in range(depth):
        opening += b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n" % (i, i)
    closing = b""
    for i in reversed(range(depth)):
        closing += b"\r\n--b%d--\r\n" % i
    body = opening + b"Content-Type: text/plain\r\n\r\ndeep inside" + closing
    return b"\r\n".join(head) + b"\r\n" + body


def nested_rfc822(depth: int) -> bytes:
    msg = b"Subject: innermost\r\n\r\ncore\r\n"
    for i in range(depth):
        msg = b"Subject: level %d\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n" % i + msg
    return b"From: a@example.com\r\nTo: alice@example.test\r\n" + msg


def many_parts(n: int) -> bytes:
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(n))
    return (b"From: a@example.com\r\nSubject: many\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=p\r\n\r\n" + parts + b"--p--\r\n")


HOSTILE = {
    "multipart-nested-300": nested_multipart(300),
    "rfc822-nested-200": nested_rfc822(200),
    "parts-3000": many_parts(3000),
    "boundary-never-closed": (b"Subject: open\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n"
                              b"--z\r\nContent-Type: text/plain\r\n\r\nno end\r\n--z\r\nContent-Type: multipart/alternative; boundary=y\r\n\r\n--y\r\n"),
    "multipart-without-boundary": (b"Subject: nob\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n--\r\n\r\nx\r\n"),
    "empty-boundary": (b"Subject: empty\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\nx\r\n----\r\n"),
    "boundary-is-prefix": (b"Subject: prefix\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n"
                           b"--a\r\nContent-Type: multipart/mixed; boundary=aa\r\n\r\n--aa\r\n\r\ninner\r\n--a--\r\n--aa--\r\n"),
    "bad-base64-and-cte": (b"Subject: cte\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n"
                           b"--q\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!not base64@@@@\r\n"
                           b"--q\r\nContent-Transfer-Encoding: x-bogus\r\n\r\nzzz\r\n--q--\r\n"),
    "garbage-headers": (b"Subject: =?utf-8?B?####?= =?unknown?Q?x?=\r\nFrom: <<<@@@>>>, \"unterminated\r\n"
                        b"To: a:b:c;;;, group: ;\r\nno colon here\r\n\t continuation\r\nContent-Type: ;;;;\r\n"
                        b"Date: not a date\r\n\r\nbody\r\n"),
    "params-flood": (b"Subject: params\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
                     + b"; ".join(b"p%d*%d*=utf-8''%%FF%%FE" % (i, i) for i in range(2000)) + b"\r\n\r\nx\r\n"),
    "empty-rfc822-part": (b"Subject: empty822\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=e\r\n\r\n"
                          b"--e\r\nContent-Type: message/rfc822\r\n\r\n\r\n--e--\r\n"),
    "headers-only": b"Subject: no body at all\r\n",
    "eight-bit-everywhere": (b"Subject: \xff\xfe\xfd\r\nFrom: \xc3\x28 <\xe2\x82@x>\r\nContent-Type: text/plain; charset=\xff\r\n\r\n\xff\xfe\r\n"),
}

PROBES = [
    b"FETCH 1 (ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE)",
    b"FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[1.2.3] BODY.PEEK[2.1.HEADER] BODY.PEEK[TEXT]<0.100>)",
    b"FETCH 1 (BODY.PEEK[" + b".".join([b"1"] * 60) + b"] BODY.PEEK[" + b".".join([b"1"] * 60) + b".MIME])",
    b"FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[2])",
    b"SEARCH TEXT inside",
    b"SEARCH HEADER Subject level SENTSINCE 1-Jan-2000",
    b"SORT (SUBJECT DATE FROM) UTF-8 ALL",
    b"THREAD REFERENCES UTF-8 ALL",
]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_mime_is_answered(server, name):
    message = HOSTILE[name]
    server.deliver_mx(ALICE, message)
    c = connect(server, timeout=30)
    c.ok("SELECT INBOX")
    for probe in PROBES:
        untagged, tagged = c.command(probe, timeout=30)
        assert tagged_status(tagged) in ("OK", "NO"), f"{probe!r} on {name}: {tagged!r}"
        for r in untagged:
            if r.startswith(b"* 1 FETCH"):
                parse(r[len(b"* 1 FETCH "):])  # well-formed, balanced data
    c.close()
    assert_serving(server)


# ---------------------------------------------------------------------------
# Mailbox names

BAD_NAMES = [
    b'"a/../b"', b'".."', b'"../INBOX"', b'"./x"', b'"x%"', b'"y*"', b'"*"', b'"%"', b'"a//b"', b'"/lead"',
    b'""', b'"/"', b'"tab\tname"', b'"ctl\x01name"', b'"del\x7fname"', b"{9+}\r\nline\r\nbr",
    b'"' + b"n" * 2000 + b'"',
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: repr(n[:20]))
def test_bad_mailbox_names_are_refused(server, name):
    c = connect(server)
    for verb in (b"CREATE %s", b"RENAME Trash %s", b"SELECT %s", b"DELETE %s", b"SUBSCRIBE %s",
                 b"STATUS %s (MESSAGES)", b"APPEND %s {3+}\r\nabc"):
        out = answer(c, b"a1 " + (verb % name) + b"\r\n")
        assert tagged_status(out[-1]) in ("NO", "BAD"), (verb % name, out)
    untagged = c.ok('LIST "" "*"')
    names = sorted(str(n) if not isinstance(n, bytes) else n.decode(errors="replace")
                   for n in (parse(r[len(b"* LIST "):])[2] for r in untagged))
    assert names == ["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"], f"mailboxes now: {names}"
    c.close()
    assert_serving(server)


def test_raw_utf8_mailbox_name(server):
    """IMAP4rev1 names are modified UTF-7; raw UTF-8 is refused or, if
    accepted, listed back as sent."""
    c = connect(server)
    out = answer(c, "a1 CREATE \"Entwürfe\"\r\n".encode())
    if tagged_status(out[-1]) == "OK":
        untagged = c.ok('LIST "" "Entw*"')
        assert len(untagged) == 1 and "Entwürfe".encode() in untagged[0], untagged
    else:
        assert tagged_status(out[-1]) in ("NO", "BAD"), out
    c.close()
    assert_serving(server)


# ---------------------------------------------------------------------------
# Wrong state and long lines


@pytest.mark.parametrize("command", [
    b"a1 FETCH 1:* (BODY[])", b"a1 STORE 1 +FLAGS (\\Deleted)", b"a1 EXPUNGE", b"a1 SELECT INBOX",
    b"a1 APPEND INBOX {5+}\r\nhello", b"a1 IDLE", b"a1 MOVE 1 Trash", b"a1 GETQUOTAROOT INBOX",
    b"a1 ENABLE QRESYNC", b"a1 COMPRESS DEFLATE",
])
def test_commands_before_login(server, command):
    c = connect(server, login=False)
    out = answer(c, command + b"\r\n")
    assert tagged_status(out[-1]) in ("BAD", "NO"), (command, out)
    c.login()
    c.close()
    assert_serving(server)


def test_100kb_line(server):
    """A 100 KB command line: refused or answered, and the session goes on."""
    c = connect(server)
    c.ok("SELECT INBOX")
    out = answer(c, b"a1 NOOP " + b"x" * 100_000 + b"\r\n")
    assert tagged_status(out[-1]) == "BAD", out[-1][:100]
    out = answer(c, b'a1 SEARCH TEXT "' + b"y" * 100_000 + b'"\r\n')
    assert tagged_status(out[-1]) in ("OK", "BAD"), out[-1][:100]
    still_talks(c)
    c.close()
    assert_serving(server)


def test_line_over_the_limit(small_server):
    """With a small limit the 100 KB line is "too long"; the rest of it is
    skipped, not read as commands."""
    c = connect(small_server)
    out = answer(c, b"a1 NOOP " + b"x1 LOGOUT " * 10_000 + b"\r\n")
    assert tagged_status(out[-1]) == "BAD", out[-1][:100]
    time.sleep(0.3)
    still_talks(c)
    c.close()
    assert_serving(small_server)
