"""Header injection through the admin page's inputs: CR/LF in anything the
admin API stores that later ends up in a mail header, an outgoing message or
the mail log (domain names, account and alias addresses, alias targets, the
forward and auto-reply of a disabled account, app password and API token
names, the name typed at the login, the address to unban, the account in a
path). Each must be refused with a 4xx and a message, or, for the one free
text (the auto-reply, which is a message body), end up in the body only.
Afterwards no stored or queued message and no mail log line carries an
injected header.
"""

from __future__ import annotations

import re
import urllib.parse

import pytest

from admin_http import AdminClient
from harness import ALICE, BOB, BOB_PW, DOMAIN, check_reply, make_message, unique_id, wait_until
from test_admin_api import enrolled

INJECTIONS = {
    "crlf-bcc": "\r\nBcc: victim@evil.test",
    "lf-header": "\nX-Injected: 1",
}
# A header line an injection would have made.
INJECTED = re.compile(rb"(?im)^(bcc: victim@evil\.test|x-injected: 1)")


@pytest.fixture
def admin(pochta) -> AdminClient:
    pochta.configure(guard={"max_failures": 1000, "delay_after": 1000})
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    return c


def account(address: str, *rest: str) -> str:
    return "/".join([f"/api/accounts/{urllib.parse.quote(address, safe='@')}", *rest])


def attempts(inj: str) -> list[tuple[str, str, dict | None]]:
    """(what, path, body) of every input that could carry `inj` into mail."""
    return [
        ("domain name", "/api/domains", {"name": f"shop.test{inj}"}),
        ("domain name (middle)", "/api/domains", {"name": f"shop{inj}.test"}),
        ("account address", "/api/accounts", {"address": f"carol@{DOMAIN}{inj}", "password": "Pw-long-enough-81"}),
        ("account local part", "/api/accounts", {"address": f"carol{inj}@{DOMAIN}", "password": "Pw-long-enough-81"}),
        ("alias address", "/api/aliases", {"address": f"sales@{DOMAIN}{inj}", "targets": [BOB]}),
        ("alias target (list)", "/api/aliases", {"address": f"sales@{DOMAIN}", "targets": [f"{BOB}{inj}"]}),
        ("alias target (text)", "/api/aliases", {"address": f"sales@{DOMAIN}", "targets": f"{BOB}{inj}"}),
        ("catch-all", "/api/aliases", {"address": f"@{DOMAIN}{inj}", "targets": [BOB]}),
        ("forward_to", account(ALICE, "disable"), {"forward_to": f"{BOB}{inj}"}),
        ("app password name", account(ALICE, "app-passwords"), {"name": f"Phone{inj}"}),
        ("API token name", "/api/tokens", {"name": f"backup script{inj}"}),
        ("unban address", "/api/security/unban", {"address": f"192.0.2.7{inj}"}),
        ("account in the path", account(f"{ALICE}{inj}", "quota"), {"quota_mb": 5}),
    ]


@pytest.mark.parametrize("inj", INJECTIONS.values(), ids=INJECTIONS.keys())
def test_admin_inputs_refuse_header_injection(admin, pochta, inj):
    accepted = []
    for what, path, body in attempts(inj):
        r = admin.post(path, body)
        if not 400 <= r.status < 500:
            accepted.append(f"{what}: {path} {body!r} -> {r}")
            continue
        assert r.json.get("error"), f"{what}: a {r.status} without a message: {r}"
    assert not accepted, "admin inputs with CR/LF were not refused:\n" + "\n".join(accepted)

    # A failed login logs the name typed: the log line stays one line.
    stranger = AdminClient(pochta.addr("admin"))
    r = stranger.post("/api/login", {"user": f"root{inj}", "password": "not the password"})
    assert 400 <= r.status < 500, r

    # Nothing stored carries a line break.
    for path, key in [("/api/domains", "domains"), ("/api/accounts", "accounts"), ("/api/aliases", "aliases")]:
        text = admin.get(path).body
        assert b"\\r" not in text and b"\\n" not in text, f"{path} lists a value with a line break: {text!r}"
        assert b"evil.test" not in text and b"injected" not in text.lower(), f"{path}: {text!r}"

    assert_no_injected_lines(pochta)


def test_auto_reply_text_stays_in_the_body(admin, pochta):
    """The auto-reply is free text: CR/LF in it is allowed, and must stay in
    the body of the answer, never reach its header."""
    text = "Gone fishing." + "".join(INJECTIONS.values()) + "\r\n\r\nX-Injected: 1"
    r = admin.post(account(ALICE, "disable"), {"auto_reply": text})
    assert r.status == 200, r

    # A local sender: the answer lands in bob's INBOX.
    subject = unique_id("offboard")
    s = pochta.submit_client(BOB, BOB_PW)
    try:
        s.sendmail(BOB, [ALICE], make_message(sender=BOB, to=ALICE, subject=subject))
    finally:
        s.quit()
    reply = pochta.find_message(BOB, f"Subject: Auto: {subject}".encode())
    head, _, body = reply.partition(b"\r\n\r\n")
    assert not INJECTED.search(head), f"the auto-reply's header carries the injection:\n{head.decode()}"
    assert b"Gone fishing." in body, body

    # A remote sender: the answer waits in the (held) queue.
    sender = "carol@remote.invalid"
    with pochta.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd(f"MAIL FROM:<{sender}>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT")
        check_reply(c.data(make_message(sender=sender, to=ALICE, subject=unique_id("remote"))), 250,
                    what="DATA")
    queued = wait_until(lambda: [q for q in pochta.queue() if q["sender"] == ""], 10, "the auto-reply queued")
    assert [q["recipient"] for q in queued] == [sender], queued
    assert_no_injected_lines(pochta)


def assert_no_injected_lines(pochta) -> None:
    """No message in any mailbox or in the queue has an injected header, no
    message went to the victim, and every mail log line is a log line."""
    for user in (ALICE, BOB):
        for m in pochta.messages(user):
            head = m.partition(b"\r\n\r\n")[0]
            assert not INJECTED.search(head), f"a message for {user} carries an injected header:\n{head!r}"
    for q in pochta.queue():
        assert "evil.test" not in q["recipient"], f"queued for the victim: {q}"
    # Queued bodies (and every stored one) are files under blobs/.
    for path in (pochta.data / "blobs").rglob("*"):
        if path.is_file():
            head = path.read_bytes().partition(b"\r\n\r\n")[0]
            assert not INJECTED.search(head), f"{path.name} carries an injected header:\n{head!r}"
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
    for line in pochta.mail_log_text().splitlines():
        assert stamp.match(line), f"a mail log line that is not a log line (forged by a line break?): {line!r}"
