"""POP3 (RFC 1939, CAPA, STLS, AUTH PLAIN) with Python's poplib and raw sockets.

Messages are delivered over SMTP first; what POP3 sends must be the stored
file byte for byte once dot-unstuffed (poplib unstuffs).
"""

from __future__ import annotations

import base64
import poplib
import re
import socket
import time

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    BOB_PW,
    CRLF,
    make_message,
    tls_context,
    unique_id,
    wait_until,
)

TLS_MODES = ["stls", "pop3s"]


def deliver(server, count: int = 3, to: str = ALICE) -> list[bytes]:
    """Deliver `count` varied messages over SMTP; return the stored files in UID order."""
    before = len(server.messages(to))
    bodies = [
        b"Hello.\r\n",
        # Lines that need dot-stuffing, and a lone dot that would end the response.
        b".starts with a dot\r\n..two dots\r\n.\r\nafter the lone dot\r\n",
        # Several read chunks.
        b"".join(b"line %06d of a long body, with some text to fill it\r\n" % i for i in range(6000)),
    ]
    for i in range(count):
        marker = unique_id("pop")
        server.deliver_mx(to, make_message(to=to, subject=marker, body=bodies[i % len(bodies)]))
    return server.wait_messages(to, before + count)


def login(server, mode: str, user: str = ALICE, password: str = ALICE_PW) -> poplib.POP3:
    return server.pop3_login(user, password, implicit_tls=(mode == "pop3s"))


def retr_bytes(c: poplib.POP3, n: int) -> bytes:
    resp, lines, _octets = c.retr(n)
    assert resp.startswith(b"+OK"), resp
    return b"".join(line + CRLF for line in lines)


def auth_plain_token(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def err_text(e: poplib.error_proto) -> bytes:
    """The server's -ERR line from a poplib.error_proto."""
    value = e.args[0]
    return value if isinstance(value, bytes) else str(value).encode()


def err(excinfo) -> bytes:
    return err_text(excinfo.value)


def test_serve_json_announces_pop3(server):
    for key in ("pop3", "pop3s"):
        assert len(server.info[key]) == 1, server.info


def test_capabilities_before_and_after_tls(server):
    c = server.pop3(stls=False)
    try:
        assert c.getwelcome().startswith(b"+OK ")
        caps = c.capa()
        assert "STLS" in caps, caps
        assert "USER" not in caps and "SASL" not in caps, f"logins offered before TLS: {caps}"
        c.stls(context=tls_context())
        caps = c.capa()
        for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
            assert cap in caps, f"{cap} missing after STLS: {caps}"
        assert caps.get("SASL") == ["PLAIN"], caps
        assert caps.get("IMPLEMENTATION") == ["Pochta"], caps
        assert "STLS" not in caps, caps
    finally:
        c.quit()
    c = server.pop3(implicit_tls=True)
    try:
        caps = c.capa()
        assert "STLS" not in caps and "USER" in caps, caps
    finally:
        c.quit()


def test_logins_refused_before_tls(server):
    c = server.pop3(stls=False)
    try:
        with pytest.raises(poplib.error_proto) as e:
            c.user(ALICE)
        assert err(e).startswith(b"-ERR [AUTH] "), err(e)
        with pytest.raises(poplib.error_proto) as e:
            c.pass_(ALICE_PW)
        assert err(e).startswith(b"-ERR [AUTH] "), err(e)
        with pytest.raises(poplib.error_proto) as e:
            c._shortcmd("AUTH PLAIN " + auth_plain_token(ALICE, ALICE_PW))
        assert err(e).startswith(b"-ERR [AUTH] "), err(e)
        with pytest.raises(poplib.error_proto):
            c.stat()
        # Still usable: STLS, then a login works on the same connection.
        c.stls(context=tls_context())
        c.user(ALICE)
        assert c.pass_(ALICE_PW).startswith(b"+OK")
    finally:
        c.quit()
    log = server.mail_log_text()
    assert re.search(r"rejected session=\S+ peer=\S+ stage=auth subject=plaintext", log), log
    assert ALICE_PW not in log


@pytest.mark.parametrize("mode", TLS_MODES)
def test_stat_list_uidl_top_retr(server, mode):
    stored = deliver(server)
    uids = sorted(e["uid"] for e in server.mailbox(ALICE))
    c = login(server, mode)
    try:
        count, size = c.stat()
        assert count == len(stored) and size == sum(map(len, stored)), (count, size)
        resp, listing, _ = c.list()
        assert resp.startswith(b"+OK")
        assert listing == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(stored)], listing
        for i, m in enumerate(stored):
            assert c.list(i + 1) == b"+OK %d %d" % (i + 1, len(m))
        resp, ids, _ = c.uidl()
        ids = [line.split(b" ", 1) for line in ids]
        assert [int(n) for n, _ in ids] == list(range(1, len(stored) + 1))
        unique = [u for _, u in ids]
        assert len(set(unique)) == len(unique), unique
        assert all(re.fullmatch(rb"[\x21-\x7e]{1,70}", u) for u in unique), unique
        assert [int(u.split(b".")[1]) for u in unique] == uids, (unique, uids)
        assert c.uidl(2) == b"+OK 2 " + unique[1]

        for i, m in enumerate(stored):
            got = retr_bytes(c, i + 1)
            assert got == m, f"RETR {i + 1}: {len(got)} bytes, stored {len(m)}"

        header, _, body = stored[1].partition(b"\r\n\r\n")
        for n in (0, 2):
            resp, lines, _ = c.top(2, n)
            assert resp.startswith(b"+OK")
            want = header + b"\r\n\r\n" + b"".join(line + CRLF for line in body.split(CRLF)[:n])
            assert b"".join(line + CRLF for line in lines) == want, (n, lines[-4:])
        with pytest.raises(poplib.error_proto):
            c.retr(len(stored) + 1)
        with pytest.raises(poplib.error_proto):
            c.list(0)
        assert c.noop().startswith(b"+OK")
    finally:
        c.quit()
    # The same ids in the next session: clients rely on it to skip old mail.
    c = login(server, mode)
    try:
        assert [line.split(b" ", 1)[1] for line in c.uidl()[1]] == unique
    finally:
        c.quit()


def test_eight_bit_message_is_sent_as_stored(server):
    # Latin-1 bytes, not UTF-8, and a NUL-free binary-ish line.
    body = b"caf\xe9 cr\xe8me br\xfbl\xe9e\r\n.\xff\xfe dotted\r\n\x80\x81\r\n"
    server.deliver_mx(ALICE, make_message(to=ALICE, subject=unique_id("8bit"), body=body))
    stored = server.wait_messages(ALICE, 1)
    c = login(server, "pop3s")
    try:
        assert retr_bytes(c, 1) == stored[0]
        resp, lines, _ = c.top(1, 1)
        assert lines[-1] == b"caf\xe9 cr\xe8me br\xfbl\xe9e", lines
    finally:
        c.quit()


@pytest.mark.parametrize("mode", TLS_MODES)
def test_auth_plain(server, mode):
    deliver(server, 1)
    token = auth_plain_token(ALICE, ALICE_PW)
    c = server.pop3(implicit_tls=(mode == "pop3s"))
    try:
        assert c._shortcmd("AUTH PLAIN " + token).startswith(b"+OK")
        assert c.stat()[0] == 1
    finally:
        c.quit()
    # Without an initial response: "+ " continuation; "*" cancels.
    c = server.pop3(implicit_tls=(mode == "pop3s"))
    try:
        c._putcmd("AUTH PLAIN")
        assert c._getresp().startswith(b"+")
        c._putcmd("*")
        with pytest.raises(poplib.error_proto):
            c._getresp()
        c._putcmd("AUTH PLAIN")
        assert c._getresp().startswith(b"+")
        c._putcmd(auth_plain_token(ALICE, "wrong-password"))
        with pytest.raises(poplib.error_proto) as e:
            c._getresp()
        assert err(e).startswith(b"-ERR [AUTH] "), err(e)
        c._putcmd("AUTH PLAIN")
        assert c._getresp().startswith(b"+")
        c._putcmd(token)
        assert c._getresp().startswith(b"+OK")
        assert c.stat()[0] == 1
    finally:
        c.quit()


def test_dele_and_quit_remove_messages(server):
    stored = deliver(server)
    c = login(server, "stls")
    try:
        assert c.dele(1).startswith(b"+OK")
        assert c.dele(3).startswith(b"+OK")
        with pytest.raises(poplib.error_proto):
            c.dele(1)
        with pytest.raises(poplib.error_proto):
            c.retr(1)
        assert c.stat() == (1, len(stored[1]))
        assert c.list()[1] == [b"2 %d" % len(stored[1])]
    finally:
        bye = c.quit()
    assert b"2 messages deleted" in bye, bye
    # Gone for every client: the store, the CLI (and so IMAP) agree.
    assert server.messages(ALICE) == [stored[1]]
    c = login(server, "pop3s")
    try:
        assert c.stat() == (1, len(stored[1]))
        assert retr_bytes(c, 1) == stored[1]
    finally:
        c.quit()


def test_dropped_connection_removes_nothing(server):
    stored = deliver(server)
    c = login(server, "stls")
    for n in range(1, len(stored) + 1):
        assert c.dele(n).startswith(b"+OK")
    c.close()  # no QUIT: RFC 1939 §6, no UPDATE state
    # The maildrop lock goes when the server sees the connection close.
    def relogin():
        try:
            return login(server, "pop3s")
        except poplib.error_proto as e:
            assert err_text(e).startswith(b"-ERR [IN-USE]"), e
            return None

    c = wait_until(relogin, 10, "the maildrop lock to be released")
    try:
        assert c.stat()[0] == len(stored)
    finally:
        c.quit()
    assert server.messages(ALICE) == stored


def test_rset_unmarks(server):
    stored = deliver(server, 2)
    c = login(server, "stls")
    try:
        c.dele(1)
        c.dele(2)
        assert c.stat()[0] == 0
        assert c.rset().startswith(b"+OK")
        assert c.stat() == (2, sum(map(len, stored)))
        assert retr_bytes(c, 1) == stored[0]
    finally:
        bye = c.quit()
    assert b"0 messages deleted" in bye, bye
    assert server.messages(ALICE) == stored


def test_maildrop_is_locked_while_in_use(server):
    deliver(server, 1)
    first = login(server, "stls")
    try:
        second = server.pop3(implicit_tls=True)
        try:
            second.user(ALICE)
            with pytest.raises(poplib.error_proto) as e:
                second.pass_(ALICE_PW)
            assert err(e).startswith(b"-ERR [IN-USE] "), err(e)
        finally:
            second.quit()
        # Another account is not affected.
        other = login(server, "pop3s", BOB, BOB_PW)
        other.quit()
    finally:
        first.quit()
    login(server, "pop3s").quit()


def test_wrong_password_refused_and_logged(server):
    c = server.pop3()
    try:
        c.user(ALICE)
        with pytest.raises(poplib.error_proto) as e:
            c.pass_("not-the-password")
        assert err(e).startswith(b"-ERR [AUTH] "), err(e)
        # PASS must follow a new USER after a failure.
        with pytest.raises(poplib.error_proto):
            c.pass_(ALICE_PW)
        c.user(ALICE)
        assert c.pass_(ALICE_PW).startswith(b"+OK")
    finally:
        c.quit()
    log = server.mail_log_text()
    assert re.search(rf"auth_failed session=\S+ peer=\S+ service=pop3 user={re.escape(ALICE)}", log), log
    assert re.search(rf"auth_ok session=\S+ peer=\S+ service=pop3 user={re.escape(ALICE)}", log), log
    assert "not-the-password" not in log


def test_banned_address_is_refused_and_disconnected(pochta):
    pochta.setup_basic()
    pochta.configure(guard={"delay_after": 100, "max_failures": 3, "window_secs": 600, "ban_secs": 600},
                     limits={"max_auth_failures": 10})
    pochta.start()
    c = pochta.pop3(implicit_tls=True)
    try:
        for _ in range(3):
            c.user(ALICE)
            with pytest.raises(poplib.error_proto):
                c.pass_("wrong")
        c.user(ALICE)
        with pytest.raises(poplib.error_proto) as e:
            c.pass_(ALICE_PW)
        assert err(e).startswith(b"-ERR [AUTH] "), err(e)
        with pytest.raises((poplib.error_proto, OSError, EOFError)):
            c.noop()
    finally:
        c.close()


def raw_line(sock_file) -> bytes:
    line = sock_file.readline(200_000)
    assert line, "connection closed"
    return line


def test_bad_commands_and_long_lines(server):
    host, port = server.addr("pop3")
    with socket.create_connection((host, port), timeout=15) as s:
        f = s.makefile("rb")
        assert raw_line(f).startswith(b"+OK")
        s.sendall(b"A" * 100_000 + b"\r\n")
        assert raw_line(f).startswith(b"-ERR"), "100 KB line"
        for bad in (b"BOGUS", b"LIST x", b"RETR", b"TOP 1", b"\x00\xff", b"USER a b", b"HELO x"):
            s.sendall(bad + b"\r\n")
            assert raw_line(f).startswith(b"-ERR"), bad
        s.sendall(b"CAPA\r\n")
        assert raw_line(f).startswith(b"+OK")
        while raw_line(f) != b".\r\n":
            pass
        # Ten bad commands in all (the long line was the first) close the connection.
        s.sendall(b"X\r\nY\r\n")
        assert raw_line(f).startswith(b"-ERR")
        assert raw_line(f).startswith(b"-ERR Too many bad commands")
        assert f.readline() == b"", "still open after too many bad commands"
    # The server did not die and still serves.
    c = login(server, "stls")
    c.quit()
    server.assert_still_serves()


def test_commands_in_the_wrong_state(server):
    deliver(server, 1)
    c = server.pop3()
    try:
        for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "UIDL", "TOP 1 1", "RSET", "NOOP"):
            with pytest.raises(poplib.error_proto):
                c._shortcmd(cmd)
        c.user(ALICE)
        c.pass_(ALICE_PW)
        for cmd in ("USER x", "PASS y", "STLS", f"AUTH PLAIN {auth_plain_token(ALICE, ALICE_PW)}"):
            with pytest.raises(poplib.error_proto):
                c._shortcmd(cmd)
        assert c.stat()[0] == 1
    finally:
        c.quit()


def test_pipelined_commands(server):
    stored = deliver(server, 2)
    host, port = server.addr("pop3s")
    with socket.create_connection((host, port), timeout=15) as raw:
        s = tls_context().wrap_socket(raw)
        f = s.makefile("rb")
        assert raw_line(f).startswith(b"+OK")
        s.sendall(f"USER {ALICE}\r\nPASS {ALICE_PW}\r\nSTAT\r\nDELE 1\r\nLIST 1\r\nLIST 2\r\nQUIT\r\n".encode())
        replies = [raw_line(f) for _ in range(7)]
    assert [r[:3] for r in replies] == [b"+OK", b"+OK", b"+OK", b"+OK", b"-ER", b"+OK", b"+OK"], replies
    assert replies[5] == b"+OK 2 %d\r\n" % len(stored[1])
    assert server.messages(ALICE) == [stored[1]]


def test_sigterm_closes_sessions_without_update(server):
    stored = deliver(server, 1)
    c = login(server, "stls")
    c.dele(1)
    server.proc.send_signal(15)
    # The idle session is told and closed; the deletion is not applied.
    line = c._getline()[0]
    assert line.startswith(b"-ERR [SYS/TEMP]"), line
    c.close()
    assert server.proc.wait(20) == 0
    assert server.messages(ALICE) == stored


def test_timeout_closes_idle_session(pochta):
    pochta.setup_basic()
    pochta.configure(limits={"command_timeout_secs": 1})
    pochta.start()
    stored = deliver(pochta, 1)
    c = login(pochta, "stls")
    c.dele(1)
    start = time.monotonic()
    line = c._getline()[0]
    assert line.startswith(b"-ERR"), line
    assert time.monotonic() - start < 10
    c.close()
    assert pochta.messages(ALICE) == stored
