"""Submission and MX paths driven by Python's smtplib (a real third-party client)."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    BOB_PW,
    DOMAIN,
    REMOTE_DOMAIN,
    assert_stored_as_sent,
    check_reply,
    ehlo_keywords,
    make_message,
    tls_context,
    unique_id,
)


def send_and_check(server, client: smtplib.SMTP, sender: str, rcpt: str, body: bytes = b"Hello.\r\n",
                   mail_options=()) -> bytes:
    marker = unique_id("sub")
    msg = make_message(sender=sender, to=rcpt, subject=marker, body=body,
                       message_id=f"<{marker}@e2e.test>")
    refused = client.sendmail(sender, [rcpt], msg, mail_options=list(mail_options))
    assert refused == {}, f"recipients refused: {refused}"
    stored = server.find_message(rcpt, marker.encode())
    assert_stored_as_sent(stored, msg)
    return msg


def test_ehlo_extensions(server):
    """Submission before TLS: STARTTLS but no AUTH; after TLS: AUTH PLAIN LOGIN, no STARTTLS."""
    with server.raw("submission") as c:
        c.greeting()
        before = ehlo_keywords(c.ehlo())
        for kw in ("PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE", "ENHANCEDSTATUSCODES",
                   "STARTTLS", "CHUNKING", "DSN"):
            assert kw in before, f"EHLO on submission before TLS lacks {kw}: {before}"
        assert "AUTH" not in before, f"AUTH offered before TLS: {before}"
        size = before["SIZE"]
        assert size.isdigit() and int(size) > 0, f"SIZE has no positive limit: {size!r}"
        c.starttls()
        after = ehlo_keywords(c.ehlo())
        assert "STARTTLS" not in after, f"STARTTLS offered again after TLS: {after}"
        mechs = after.get("AUTH", "").upper().split()
        assert "PLAIN" in mechs and "LOGIN" in mechs, f"AUTH after TLS is {after.get('AUTH')!r}"

    with server.raw("smtp") as c:
        c.greeting()
        mx = ehlo_keywords(c.ehlo())
        assert "STARTTLS" in mx, f"MX port does not offer STARTTLS: {mx}"
        assert "AUTH" not in mx, f"MX port offers AUTH: {mx}"
        c.starttls()
        mx_tls = ehlo_keywords(c.ehlo())
        assert "AUTH" not in mx_tls, f"MX port offers AUTH after TLS: {mx_tls}"

    with server.raw("submissions", tls=True) as c:
        c.greeting()
        kws = ehlo_keywords(c.ehlo())
        assert "STARTTLS" not in kws, f"implicit-TLS port offers STARTTLS: {kws}"
        assert "PLAIN" in kws.get("AUTH", "").upper().split(), f"implicit-TLS port AUTH: {kws}"


@pytest.mark.parametrize(
    "mechanism,initial_response",
    [("PLAIN", True), ("PLAIN", False), ("LOGIN", False)],
    ids=["plain-initial-response", "plain-challenge", "login"],
)
def test_starttls_auth_delivers_to_local_account(server, mechanism, initial_response):
    client = server.submit_client(ALICE, ALICE_PW, mechanism=mechanism,
                                  initial_response=initial_response)
    try:
        send_and_check(server, client, ALICE, BOB)
    finally:
        client.quit()
    log = server.mail_log_text()
    assert ALICE_PW not in log, "password appears in mail.log"


def test_message_bytes_preserved(server):
    """Leading dots, 8-bit text, long lines, trailing whitespace and an empty
    last line all come out of the store exactly as sent."""
    body = (
        ".a line starting with a dot\r\n"
        "..two dots\r\n"
        ".\r\n"
        "trailing spaces   \r\n"
        "\tleading tab\r\n"
        "Grüße, здравствуйте, 日本語\r\n"
        + "x" * 900 + "\r\n"
        "\r\n"
    ).encode()
    client = server.submit_client(ALICE, ALICE_PW)
    try:
        send_and_check(server, client, ALICE, BOB, body=body, mail_options=["BODY=8BITMIME"])
    finally:
        client.quit()


def test_implicit_tls_submissions(server):
    client = server.submit_client(BOB, BOB_PW, service="submissions")
    try:
        assert isinstance(client.sock, ssl.SSLSocket)
        send_and_check(server, client, BOB, ALICE)
    finally:
        client.quit()


def test_wrong_password_refused_and_logged_without_password(server):
    s = server.smtp("submission")
    try:
        s.ehlo()
        s.starttls(context=tls_context())
        s.ehlo()
        bad = "Wrong-Password-xyzzy"
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.user, s.password = ALICE, bad
            s.auth("PLAIN", s.auth_plain)
        assert e.value.smtp_code == 535, f"wrong password: expected 535, got {e.value.smtp_code}"
    finally:
        s.close()
    log = server.mail_log_text()
    assert bad not in log, "a password attempt appears in mail.log"
    assert ALICE_PW not in log


def test_auth_before_tls_refused(server):
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        r = c.auth_plain(ALICE, ALICE_PW)
        check_reply(r, "5xx", what="AUTH PLAIN before STARTTLS")
        # And the session is still not authenticated.
        check_reply(c.cmd(f"MAIL FROM:<{ALICE}>"), "5xx", what="MAIL after refused AUTH")


def test_mail_without_auth_on_submission_refused(server):
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd(f"MAIL FROM:<{ALICE}>"), "5xx", what="MAIL on submission before TLS and AUTH")
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        check_reply(c.cmd(f"MAIL FROM:<{ALICE}>"), 530, "5.7.0", what="MAIL on submission after TLS without AUTH")
    with server.raw("submissions", tls=True) as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd(f"MAIL FROM:<{ALICE}>"), 530, "5.7.0", what="MAIL on submissions without AUTH")


def test_sending_as_someone_else_refused(server):
    s = server.submit_client(ALICE, ALICE_PW)
    try:
        code, resp = s.mail(BOB)
        assert code == 550, f"alice sending as MAIL FROM:<{BOB}>: expected 550 5.7.1, got {code} {resp!r}"
        assert resp.startswith(b"5.7.1"), f"expected enhanced code 5.7.1, got {resp!r}"
        s.rset()
        code, resp = s.mail(ALICE)
        assert code == 250, f"alice sending as herself after a refusal: got {code} {resp!r}"
    finally:
        s.close()


def test_relay_from_unauthenticated_mx_client_refused(server):
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<spammer@elsewhere.invalid>"), 250, what="MAIL on MX")
        check_reply(c.cmd(f"RCPT TO:<victim@{REMOTE_DOMAIN}>"), 550, "5.7.1",
                    what="RCPT to a non-local domain on the MX port (relay attempt)")
    # Even after STARTTLS the MX port does not relay.
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        r = c.cmd(f"MAIL FROM:<{ALICE}>")
        # Refusing a local sender on the MX port is also acceptable; if it is
        # accepted, the relay must still be refused at RCPT.
        if r.code == 250:
            check_reply(c.cmd(f"RCPT TO:<victim@{REMOTE_DOMAIN}>"), 550, "5.7.1",
                        what="relay attempt on MX after STARTTLS with a local sender address")
        else:
            check_reply(r, "5xx", what="MAIL FROM a local address on the MX port")
    assert server.queue() == [], "a relay attempt reached the outbound queue"


def test_unknown_local_recipient(server):
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<someone@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<nobody@{DOMAIN}>"), 550, "5.1.1", what="RCPT to unknown local user")
        # A valid recipient in the same transaction still works.
        check_reply(c.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT to alice after a refused one")
        msg = make_message(to=ALICE, subject="after unknown")
        check_reply(c.data(msg), 250, what="DATA")
    assert len(server.messages(ALICE)) == 1


def test_local_recipients_case_insensitive_domain(server):
    """RFC 5321 §2.4: domain names are case-insensitive."""
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<someone@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd("RCPT TO:<alice@EXAMPLE.Test>"), 250, what="RCPT with an upper-case domain")


def test_remote_message_queued_and_survives_restart(server):
    rcpt = f"carol@{REMOTE_DOMAIN}"
    client = server.submit_client(ALICE, ALICE_PW)
    try:
        msg = make_message(sender=ALICE, to=rcpt, subject="outbound")
        refused = client.sendmail(ALICE, [rcpt], msg)
        assert refused == {}
    finally:
        client.quit()

    def queued():
        q = server.queue()
        return [e for e in q if e.get("recipient") == rcpt]

    entries = queued()
    assert len(entries) == 1, f"queue after submission: {server.queue()}"
    e = entries[0]
    assert e["sender"] == ALICE, f"queue entry sender: {e}"
    assert e["size"] >= len(msg), f"queue entry size {e['size']} smaller than the message {len(msg)}"
    assert server.status()["queue"] >= 1

    rc = server.stop()
    assert rc == 0, f"SIGTERM exit code {rc}"
    assert not server.serve_json.exists(), "serve.json left behind after a clean exit"
    after_stop = queued()
    assert [x["id"] for x in after_stop] == [e["id"]], f"queue while stopped: {server.queue()}"

    server.start()
    after_restart = queued()
    assert [x["id"] for x in after_restart] == [e["id"]], f"queue after restart: {server.queue()}"
    # Remote mail is not delivered locally.
    assert server.messages(ALICE) == []


def test_local_and_remote_recipients_in_one_submission(server):
    marker = unique_id("mixed")
    remote = f"dave@{REMOTE_DOMAIN}"
    msg = make_message(sender=ALICE, to=BOB, subject=marker, message_id=f"<{marker}@e2e.test>")
    client = server.submit_client(ALICE, ALICE_PW)
    try:
        refused = client.sendmail(ALICE, [BOB, remote], msg)
        assert refused == {}, refused
    finally:
        client.quit()
    assert_stored_as_sent(server.find_message(BOB, marker.encode()), msg)
    q = server.queue()
    assert [e["recipient"] for e in q] == [remote], f"queue: {q}"


def test_null_sender_and_dsn_parameters_accepted(server):
    """Bounces (MAIL FROM:<>) must be accepted (RFC 5321 §4.5.5), and DSN
    parameters are accepted since DSN is advertised (RFC 3461)."""
    marker = unique_id("dsn")
    msg = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>")
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<> RET=HDRS ENVID=QQ314159"), 250, what="MAIL FROM:<> with RET and ENVID")
        check_reply(c.cmd(f"RCPT TO:<{ALICE}> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{ALICE}"), 250,
                    what="RCPT with NOTIFY and ORCPT")
        check_reply(c.data(msg), 250, what="DATA")
    assert_stored_as_sent(server.find_message(ALICE, marker.encode()), msg)


def test_smtputf8_sender_accepted(server):
    marker = unique_id("utf8")
    msg = make_message(sender="пользователь@почта.invalid", to=ALICE, subject=marker,
                       message_id=f"<{marker}@e2e.test>")
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<пользователь@почта.invalid> SMTPUTF8 BODY=8BITMIME".encode()), 250,
                    what="MAIL with a UTF-8 address and SMTPUTF8")
        check_reply(c.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT")
        check_reply(c.cmd("RCPT TO:<несуществующий@example.test>".encode()), 550, "5.1.1",
                    what="RCPT to an unknown UTF-8 local part")
        check_reply(c.data(msg), 250, what="DATA")
    assert_stored_as_sent(server.find_message(ALICE, marker.encode()), msg)


def test_pipelined_transaction_and_lowercase_commands(server):
    """RFC 2920: MAIL, RCPT and DATA in one write; RFC 5321 §2.4: verbs are case-insensitive."""
    marker = unique_id("pipe")
    msg = make_message(to=BOB, subject=marker, message_id=f"<{marker}@e2e.test>")
    with server.raw("smtp") as c:
        c.greeting()
        assert "PIPELINING" in ehlo_keywords(c.ehlo())
        c.send(b"mail from:<someone@elsewhere.invalid>\r\n"
               + f"rcpt to:<nobody@{DOMAIN}>\r\n".encode()
               + f"rcpt to:<{BOB}>\r\n".encode()
               + b"data\r\n")
        check_reply(c.reply(), 250, what="pipelined mail")
        check_reply(c.reply(), 550, what="pipelined rcpt to an unknown user")
        check_reply(c.reply(), 250, what="pipelined rcpt")
        check_reply(c.reply(), 354, what="pipelined data")
        c.send(msg + b".\r\nnoop\r\nquit\r\n")
        check_reply(c.reply(), 250, what="end of data")
        check_reply(c.reply(), 250, what="pipelined noop")
        check_reply(c.reply(), 221, what="pipelined quit")
    assert_stored_as_sent(server.find_message(BOB, marker.encode()), msg)
