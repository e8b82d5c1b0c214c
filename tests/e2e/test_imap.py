"""IMAP with Python's imaplib against a real `pochta serve`: login over
STARTTLS and implicit TLS, list, select, fetch, flags, copy, move, expunge,
search, append, idle, and two sessions seeing each other's changes.
"""

from __future__ import annotations

import imaplib
import re
import socket
import time

from harness import ALICE, ALICE_PW, BOB, make_message, tls_context


def imap(server, *, implicit_tls: bool = True) -> imaplib.IMAP4:
    if implicit_tls:
        host, port = server.addr("imaps")
        return imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(), timeout=15)
    host, port = server.addr("imap")
    c = imaplib.IMAP4(host, port, timeout=15)
    c.starttls(ssl_context=tls_context())
    return c


def login(server, user=ALICE, password=ALICE_PW, **kw) -> imaplib.IMAP4:
    c = imap(server, **kw)
    typ, _ = c.login(user, password)
    assert typ == "OK"
    return c


def deliver(server, n: int, to=ALICE, prefix="msg") -> list[bytes]:
    sent = []
    for i in range(n):
        msg = make_message(to=to, subject=f"{prefix} {i}", body=f"body number {i}\r\n")
        server.deliver_mx(to, msg)
        sent.append(msg)
    return sent


def stored_bytes(server, user, uid):
    for m in server.mailbox(user):
        if m["uid"] == uid:
            return open(m["path"], "rb").read()
    raise AssertionError(f"uid {uid} not stored")


def test_login_needs_tls_and_right_password(server):
    host, port = server.addr("imap")
    c = imaplib.IMAP4(host, port, timeout=15)
    assert "LOGINDISABLED" in c.capabilities and "STARTTLS" in c.capabilities
    try:
        c.login(ALICE, ALICE_PW)
        raise AssertionError("LOGIN before TLS was accepted")
    except imaplib.IMAP4.error as e:
        assert "PRIVACYREQUIRED" in str(e)
    c.starttls(ssl_context=tls_context())
    try:
        c.login(ALICE, "wrong password")
        raise AssertionError("wrong password accepted")
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e)
    assert c.login(ALICE, ALICE_PW)[0] == "OK"
    c.logout()
    assert "auth_failed" in server.mail_log_text()
    assert "wrong password" not in server.mail_log_text()


def test_authenticate_plain_over_implicit_tls(server):
    c = imap(server)
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{ALICE_PW}".encode())
    assert typ == "OK"
    assert c.select("INBOX")[0] == "OK"
    c.logout()


def test_list_shows_special_use_folders(server):
    c = login(server)
    typ, lines = c.list('""', "*")
    assert typ == "OK"
    text = b"\n".join(lines).decode()
    for folder, attr in [("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Junk", "\\Junk"),
                         ("Trash", "\\Trash"), ("Archive", "\\Archive")]:
        assert re.search(rf"\(.*{re.escape(attr)}.*\) \"/\" {folder}$", text, re.M), text
    assert re.search(r'"/" INBOX$', text, re.M)
    c.logout()


def test_fetch_returns_the_stored_bytes_and_envelope(server):
    sent = deliver(server, 3)
    c = login(server)
    typ, data = c.select("INBOX")
    assert (typ, data) == ("OK", [b"3"])
    typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE FLAGS ENVELOPE)")
    assert typ == "OK" and len(data) == 3
    assert b'"msg 1"' in data[1] and b"RFC822.SIZE" in data[1]
    typ, data = c.fetch("2", "(BODY.PEEK[])")
    assert data[0][1] == stored_bytes(server, ALICE, 2)
    assert data[0][1].endswith(sent[1])
    # PEEK did not set \Seen; a plain BODY[] does.
    typ, data = c.fetch("2", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = c.fetch("2", "(BODY[TEXT])")
    assert data[0][1] == b"body number 1\r\n"
    typ, data = c.fetch("2", "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODYSTRUCTURE)")
    assert data[0][1] == b"Subject: msg 0\r\n\r\n"
    assert b'BODYSTRUCTURE ("TEXT" "PLAIN"' in data[1]
    c.logout()


def test_flags_search_copy_move_expunge(server):
    deliver(server, 5)
    c = login(server)
    c.select("INBOX")
    assert c.store("1:2", "+FLAGS", "(\\Flagged $Work)")[0] == "OK"
    typ, data = c.search(None, "FLAGGED")
    assert data == [b"1 2"]
    typ, data = c.search(None, "KEYWORD", "$Work", "NOT", "UID", "1")
    assert data == [b"2"]
    typ, data = c.search(None, "SUBJECT", '"msg 3"')
    assert data == [b"4"]
    typ, data = c.search(None, "BODY", '"number 4"')
    assert data == [b"5"]
    # imaplib's uid() keeps only untagged data; the tagged text has COPYUID.
    typ, data = c._simple_command("UID", "COPY", "1:2", "Archive")
    assert typ == "OK" and data[0].startswith(b"[COPYUID "), data
    typ, data = c.uid("MOVE", "3", "Trash")
    assert typ == "OK"
    assert c.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    typ, data = c.expunge()
    # MOVE expunged message 3, EXPUNGE then message 1.
    assert data == [b"3", b"1"], data
    typ, data = c.status("Archive", "(MESSAGES UIDNEXT)")
    assert data == [b"Archive (MESSAGES 2 UIDNEXT 3)"]
    c.select("Trash")
    typ, data = c.fetch("1", "(FLAGS)")
    assert typ == "OK" and data[0] is not None
    uids = [m["uid"] for m in server.mailbox(ALICE)]
    assert uids == [2, 4, 5]
    c.logout()


def test_create_rename_delete_and_append(server):
    c = login(server)
    assert c.create("Projects/2026")[0] == "OK"
    typ, lines = c.list('""', "Projects*")
    assert any(b"Projects/2026" in l for l in lines)
    assert c.rename("Projects", "Work")[0] == "OK"
    typ, lines = c.list('""', "*")
    assert any(b'"/" Work/2026' in l for l in lines) and not any(b"Projects" in l for l in lines)
    msg = make_message(subject="draft")
    typ, data = c.append("Drafts", "(\\Draft \\Seen)", None, msg)
    assert typ == "OK" and b"APPENDUID" in data[0]
    c.select("Drafts")
    typ, data = c.fetch("1", "(FLAGS BODY.PEEK[])")
    assert b"\\Draft" in data[0][0] and data[0][1] == msg
    assert c.delete("Work/2026")[0] == "OK"
    typ, data = c.delete("INBOX")
    assert typ == "NO"
    c.logout()


def test_bad_mailbox_names_and_sequence_sets(server):
    deliver(server, 1)
    c = login(server)
    for name in ['"a/../b"', '"bad\tname"', '"x%"', '"y*"', '"a//b"']:
        typ, data = c._simple_command("CREATE", name)
        assert typ in ("NO", "BAD"), (name, typ, data)
    c.select("INBOX")
    for seqset in ["0", "5", "1:9", "a"]:
        try:
            typ, data = c.fetch(seqset, "(FLAGS)")
        except imaplib.IMAP4.error:
            typ = "BAD"
        assert typ in ("NO", "BAD"), seqset
    # UID sets past the end are fine and empty.
    typ, data = c.uid("FETCH", "100:200", "(FLAGS)")
    assert typ == "OK"
    assert c.noop()[0] == "OK"
    c.logout()


def test_idle_hears_new_mail_within_a_second(server):
    c = login(server)
    c.select("INBOX")
    tag = c._new_tag()
    c.send(tag + b" IDLE\r\n")
    assert c.readline().startswith(b"+")
    started = time.monotonic()
    deliver(server, 1)
    c.sock.settimeout(5)
    line = c.readline()
    elapsed = time.monotonic() - started
    assert line == b"* 1 EXISTS\r\n", line
    assert elapsed < 1.5, elapsed
    c.send(b"DONE\r\n")
    assert c.readline().startswith(tag + b" OK")
    c.logout()


def test_two_sessions_see_each_others_changes(server):
    deliver(server, 3)
    a = login(server)
    b = login(server)
    a.select("INBOX")
    b.select("INBOX")
    assert a.store("2", "+FLAGS", "(\\Deleted)")[0] == "OK"
    a.expunge()
    deliver(server, 1, prefix="late")
    typ, data = b.noop()
    untagged = b.untagged_responses
    assert untagged.get("EXPUNGE") == [b"2"], untagged
    assert untagged.get("EXISTS")[-1] == b"3", untagged
    typ, data = b.fetch("1:*", "(UID)")
    uids = [int(re.search(rb"UID (\d+)", d).group(1)) for d in data]
    assert uids == [1, 3, 4]
    a.logout()
    b.logout()


def test_oversize_literal_is_refused_and_session_survives(server):
    host, port = server.addr("imaps")
    s = tls_context().wrap_socket(socket.create_connection((host, port), timeout=10))
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(f"a LOGIN {ALICE} {ALICE_PW}\r\n".encode())
    assert f.readline().startswith(b"a OK")
    s.sendall(b"b APPEND INBOX {99999999}\r\n")
    line = f.readline()
    assert line.startswith(b"b NO [TOOBIG]"), line
    s.sendall(b"c NOOP\r\n")
    line = f.readline()
    while not line.startswith(b"c "):
        line = f.readline()
    assert line.startswith(b"c OK"), line
    s.sendall(b"d FETCH (\r\n")
    line = f.readline()
    assert line.startswith(b"d BAD") or line.startswith(b"* BAD"), line
    s.close()
