"""Accounts on the admin page against a real `pochta serve`: app passwords
over IMAP, POP3 and SMTP submission, an account's two-factor login that
leaves mail clients app passwords only, revocation, offboarding (disabled
account: logins refused, mail kept, a forwarded copy, one RFC 3834
auto-reply per sender), the new endpoints' session/CSRF checks and input
validation, and the account pages."""

from __future__ import annotations

import html
import imaplib
import poplib
import re

from admin_http import AdminClient, totp
from harness import (ALICE, ALICE_PW, BOB, BOB_PW, DOMAIN, check_reply, make_message,
                     tls_context, unique_id, wait_until)
from test_admin_api import assert_security_headers, enrolled
from test_admin_pages import FORM, check_page, csrf_of, post_form

APP_PASSWORD = re.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$")
TWO_FACTOR = "account password refused: two-factor account, use an app password"


def start(pochta) -> AdminClient:
    """example.test with alice and bob; a guard that never slows these
    tests down; the server running and an enrolled admin logged in."""
    pochta.configure(guard={"max_failures": 1000, "delay_after": 1000})
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    return c


def api(address: str, *rest: str) -> str:
    return "/".join([f"/api/accounts/{address}", *rest])


def imap_ok(pochta, user: str, password: str) -> bool:
    host, port = pochta.addr("imaps")
    c = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(), timeout=15)
    try:
        c.login(user, password)
    except imaplib.IMAP4.error as e:
        assert "AUTHENTICATIONFAILED" in str(e), e
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return True


def imap_starttls_ok(pochta, user: str, password: str) -> bool:
    host, port = pochta.addr("imap")
    c = imaplib.IMAP4(host, port, timeout=15)
    try:
        c.starttls(ssl_context=tls_context())
        c.login(user, password)
        c.logout()
        return True
    except imaplib.IMAP4.error:
        return False


def pop3_ok(pochta, user: str, password: str) -> bool:
    c = pochta.pop3()
    try:
        c.user(user)
        c.pass_(password)
        return True
    except poplib.error_proto:
        return False
    finally:
        try:
            c.quit()
        except (poplib.error_proto, OSError):
            c.close()


def smtp_auth(pochta, user: str, password: str) -> int:
    """AUTH PLAIN on submission after STARTTLS; the reply code."""
    with pochta.raw("submission") as s:
        s.greeting()
        s.ehlo()
        s.starttls()
        s.ehlo()
        return s.auth_plain(user, password).code


def submit(pochta, user: str, password: str, to: str, subject: str) -> None:
    """A message sent with smtplib: STARTTLS, AUTH, MAIL, RCPT, DATA."""
    s = pochta.submit_client(user, password)
    try:
        s.sendmail(user, [to], make_message(sender=user, to=to, subject=subject))
    finally:
        s.quit()


def mx_send(pochta, sender: str, rcpt: str, message: bytes) -> None:
    with pochta.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd(f"MAIL FROM:<{sender}>"), 250, what="MAIL FROM")
        check_reply(c.cmd(f"RCPT TO:<{rcpt}>"), 250, what=f"RCPT TO:<{rcpt}>")
        check_reply(c.data(message), 250, what="end of DATA")
        c.cmd("QUIT")


def auto_replies(pochta) -> list[dict]:
    return [q for q in pochta.queue() if q["sender"] == ""]


def test_app_passwords_and_two_factor_on_imap_pop3_smtp(pochta):
    c = start(pochta)
    r = c.post(api(ALICE, "app-passwords"), {"name": "Phone"})
    assert r.status == 201, r
    phone = r.json
    assert phone["name"] == "Phone" and APP_PASSWORD.match(phone["password"]), phone
    r = c.post(api(ALICE, "app-passwords"), {"name": "Laptop"})
    assert r.status == 201, r
    laptop = r.json
    assert laptop["password"] != phone["password"]

    details = c.get(api(ALICE))
    assert details.status == 200, details
    body = details.body.decode()
    assert phone["password"] not in body and laptop["password"] not in body, "a secret shown again"
    listed = details.json["app_passwords"]
    assert [(p["id"], p["name"], p["last_used"]) for p in listed] == [
        (phone["id"], "Phone", None), (laptop["id"], "Laptop", None)], listed
    assert details.json["totp_enabled"] is False

    # Before TOTP: the app password and the account password both work.
    assert imap_ok(pochta, ALICE, phone["password"])
    assert imap_starttls_ok(pochta, ALICE, phone["password"])
    submit(pochta, ALICE, phone["password"], BOB, "sent with an app password")
    assert len(pochta.wait_messages(BOB, 1)) == 1
    assert imap_ok(pochta, ALICE, ALICE_PW)
    assert smtp_auth(pochta, ALICE, ALICE_PW) == 235
    listed = c.get(api(ALICE)).json["app_passwords"]
    assert listed[0]["last_used"] and listed[0]["last_used_from"] == "127.0.0.1", listed

    # Enrolment started: not in force until confirmed.
    r = c.post(api(ALICE, "totp"))
    assert r.status == 200, r
    secret = r.json["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), r.json
    assert r.json["otpauth_uri"].startswith("otpauth://totp/Pochta:alice%40example.test?"), r.json
    qr = c.get(api(ALICE, "totp", "qr.svg"))
    assert qr.status == 200 and qr.headers["Content-Type"] == "image/svg+xml", qr
    assert b"<svg" in qr.body and b"<script" not in qr.body
    assert c.get(api(ALICE)).json["totp_pending"] is True
    assert imap_ok(pochta, ALICE, ALICE_PW), "the account password refused before confirmation"
    wrong = "000000" if totp(secret) != "000000" else "111111"
    r = c.post(api(ALICE, "totp", "confirm"), {"code": wrong})
    assert r.status == 400 and "wrong TOTP code" in r.json["error"], r
    r = c.post(api(ALICE, "totp", "confirm"), {"code": totp(secret)})
    assert r.status == 200 and r.json["totp_enabled"] is True, r
    assert c.get(api(ALICE, "totp", "qr.svg")).status == 409, "the secret shown after enrolment"
    assert c.post(api(ALICE, "totp")).status == 409, "a new enrolment over a confirmed one"

    # TOTP on: the account password is refused everywhere, app passwords work.
    assert not imap_ok(pochta, ALICE, ALICE_PW)
    assert not imap_starttls_ok(pochta, ALICE, ALICE_PW)
    assert not pop3_ok(pochta, ALICE, ALICE_PW)
    assert smtp_auth(pochta, ALICE, ALICE_PW) == 535
    assert imap_ok(pochta, ALICE, phone["password"])
    assert pop3_ok(pochta, ALICE, laptop["password"])
    assert smtp_auth(pochta, ALICE, laptop["password"]) == 235
    submit(pochta, ALICE, laptop["password"], BOB, "sent after TOTP")
    assert len(pochta.wait_messages(BOB, 2)) == 2
    # Typed as a person might: capitals, spaces for dashes.
    assert imap_ok(pochta, ALICE, phone["password"].upper().replace("-", " "))
    # Other accounts are not affected.
    assert imap_ok(pochta, BOB, BOB_PW)

    # Revoked: refused at the very next login; the other one still works.
    r = c.post(api(ALICE, "app-passwords", str(phone["id"]), "revoke"))
    assert r.status == 200, r
    assert not imap_ok(pochta, ALICE, phone["password"])
    assert smtp_auth(pochta, ALICE, phone["password"]) == 535
    assert not pop3_ok(pochta, ALICE, phone["password"])
    assert imap_ok(pochta, ALICE, laptop["password"])
    assert [p["name"] for p in c.get(api(ALICE)).json["app_passwords"]] == ["Laptop"]
    assert c.post(api(ALICE, "app-passwords", str(phone["id"]), "revoke")).status == 404

    # TOTP off: the account password works again.
    assert c.post(api(ALICE, "totp", "disable")).status == 200
    assert imap_ok(pochta, ALICE, ALICE_PW)

    log = pochta.mail_log_text()
    assert TWO_FACTOR in log, log[-3000:]
    assert 'via="app password \\"Laptop\\""' in log, log[-3000:]
    for secret_text in (ALICE_PW, phone["password"], laptop["password"], secret):
        assert secret_text not in log, "a secret in mail.log"
        assert secret_text not in pochta.log_tail(2000), "a secret in the server log"


def test_disabled_account_keeps_mail_forwards_and_answers_once(pochta):
    c = start(pochta)
    answer = "Alice has left the company.\nPlease write to bob@example.test."
    for bad, needle in [({"forward_to": "not an address"}, "not an address"),
                        ({"forward_to": ALICE}, "itself"),
                        ({"forward_to": f"ghost@{DOMAIN}"}, f"no ghost@{DOMAIN}"),
                        ({"forward_to": 7}, "`forward_to` must be a string"),
                        ({"auto_reply": "x" * 4001}, "too long")]:
        r = c.post(api(ALICE, "disable"), bad)
        assert r.status == 400 and needle in r.json["error"], (bad, r)
    assert c.get(api(ALICE)).json["disabled"] is False, "a refused disable changed the account"
    r = c.post(api(ALICE, "disable"), {"forward_to": BOB.upper(), "auto_reply": answer})
    assert r.status == 200, r
    d = c.get(api(ALICE)).json
    assert d["disabled"] is True and d["forward_to"] == BOB and d["auto_reply"] == answer, d

    # No login, with any credential.
    app = c.post(api(ALICE, "app-passwords"), {"name": "Phone"}).json["password"]
    assert not imap_ok(pochta, ALICE, ALICE_PW)
    assert not imap_ok(pochta, ALICE, app)
    assert not pop3_ok(pochta, ALICE, ALICE_PW)
    assert smtp_auth(pochta, ALICE, ALICE_PW) == 535
    assert "reason=\"account disabled\"" in pochta.mail_log_text()

    # Mail is still accepted and kept, a copy goes to Bob, and the sender
    # gets one auto-reply through the queue.
    sender = "carol@remote.invalid"
    marker = unique_id("offboard")
    first = make_message(sender=sender, to=ALICE, subject=marker, message_id=f"<{marker}@remote.invalid>")
    mx_send(pochta, sender, ALICE, first)
    pochta.find_message(ALICE, marker.encode())
    pochta.find_message(BOB, marker.encode())
    replies = wait_until(lambda: auto_replies(pochta), 10, "an auto-reply in the queue")
    assert [(q["sender"], q["recipient"]) for q in replies] == [("", sender)], replies

    # The same sender again: kept and forwarded, but no second auto-reply.
    again = unique_id("again")
    mx_send(pochta, sender, ALICE, make_message(sender=sender, to=ALICE, subject=again))
    pochta.find_message(ALICE, again.encode())
    pochta.find_message(BOB, again.encode())
    # Not to <>, nor to a mailing list's message.
    bounce = unique_id("bounce")
    mx_send(pochta, "", ALICE, make_message(sender="mailer-daemon@remote.invalid", to=ALICE, subject=bounce))
    pochta.find_message(ALICE, bounce.encode())
    listed = unique_id("list")
    mx_send(pochta, "dave@remote.invalid", ALICE,
            make_message(sender="dave@remote.invalid", to=ALICE, subject=listed,
                         extra_headers=["List-Id: Staff <staff.remote.invalid>"]))
    pochta.find_message(ALICE, listed.encode())
    assert len(auto_replies(pochta)) == 1, pochta.queue()
    log = pochta.mail_log_text()
    assert "answered already in the last 7 days" in log and "mailing list" in log, log[-3000:]

    # A local sender gets the answer in its mailbox: RFC 3834 headers.
    subject = unique_id("from-bob")
    submit(pochta, BOB, BOB_PW, ALICE, subject)
    pochta.find_message(ALICE, subject.encode())
    reply = pochta.find_message(BOB, f"Subject: Auto: {subject}".encode())
    head = reply.split(b"\r\n\r\n", 1)[0].decode()
    assert "Auto-Submitted: auto-replied" in head, head
    assert f"From: <{ALICE}>" in head and f"To: <{BOB}>" in head, head
    assert re.search(r"(?m)^In-Reply-To: <", head) and re.search(r"(?m)^References: <", head), head
    assert b"Alice has left the company.\r\nPlease write to" in reply
    assert len(auto_replies(pochta)) == 1, "the answer to a local sender went to the queue"

    # Enabled again: logins work; the forward and the answer end.
    assert c.post(api(ALICE, "enable")).status == 200
    d = c.get(api(ALICE)).json
    assert d["disabled"] is False and d["forward_to"] is None and d["auto_reply"] is None, d
    assert imap_ok(pochta, ALICE, ALICE_PW)
    after = unique_id("after")
    mx_send(pochta, "erin@remote.invalid", ALICE, make_message(sender="erin@remote.invalid", to=ALICE, subject=after))
    pochta.find_message(ALICE, after.encode())
    assert not [m for m in pochta.messages(BOB) if after.encode() in m], "forwarded after enable"
    assert len(auto_replies(pochta)) == 1


ACCOUNT_ENDPOINTS = [
    ("GET", api(ALICE), None),
    ("POST", api(ALICE, "password"), {"password": "another long passphrase 9"}),
    ("POST", api(ALICE, "quota"), {"quota_mb": 5}),
    ("POST", api(ALICE, "disable"), {}),
    ("POST", api(ALICE, "enable"), {}),
    ("POST", api(ALICE, "remove"), {"confirm": ALICE}),
    ("POST", api(ALICE, "app-passwords"), {"name": "Phone"}),
    ("POST", api(ALICE, "app-passwords", "1", "revoke"), {}),
    ("POST", api(ALICE, "totp"), {}),
    ("GET", api(ALICE, "totp", "qr.svg"), None),
    ("POST", api(ALICE, "totp", "confirm"), {"code": "123456"}),
    ("POST", api(ALICE, "totp", "disable"), {}),
]


def test_account_endpoints_need_a_session_and_csrf_token(pochta):
    c = start(pochta)
    anonymous = AdminClient(c.addr)
    for method, path, body in ACCOUNT_ENDPOINTS:
        r = anonymous.request(method, path, body)
        assert r.status == 401 and r.json["error"] == "log in first", (method, path, r)
        assert_security_headers(r)
    for method, path, body in ACCOUNT_ENDPOINTS:
        if method != "POST":
            continue
        r = c.request(method, path, body, csrf=False)
        assert r.status == 403 and "CSRF" in r.json["error"], (path, r)
        r = c.request(method, path, body, csrf="f" * 64)
        assert r.status == 403 and "CSRF" in r.json["error"], (path, r)
    # Nothing changed.
    d = c.get(api(ALICE)).json
    assert d["quota_bytes"] == 0 and d["app_passwords"] == [] and not d["disabled"], d
    assert imap_ok(pochta, ALICE, ALICE_PW)
    assert c.request("PUT", api(ALICE, "quota")).status == 405
    assert c.get(api(ALICE, "quota")).status == 405
    assert c.get(api(ALICE, "nothing")).status == 404
    # A form post from another site cannot send JSON.
    r = c.request("POST", api(ALICE, "quota"), b"quota_mb=1", content_type=FORM)
    assert r.status == 415, r


def test_account_endpoints_validate_input(pochta):
    c = start(pochta)
    cases = [
        ("GET", api("not-an-address"), None, 400, "not an address"),
        ("GET", api(f"nobody@{DOMAIN}"), None, 404, f"no such account nobody@{DOMAIN}"),
        ("POST", api(f"nobody@{DOMAIN}", "quota"), {"quota_mb": 1}, 404, "no such account"),
        ("POST", api(ALICE, "password"), {"password": "short"}, 400, "too short"),
        ("POST", api(ALICE, "password"), {"password": "alice-is-my-name-1"}, 400, "user name"),
        ("POST", api(ALICE, "password"), {}, 400, "`password` is missing"),
        ("POST", api(ALICE, "quota"), {"quota_mb": -1}, 400, "whole number of megabytes"),
        ("POST", api(ALICE, "quota"), {"quota_mb": "lots"}, 400, "whole number of megabytes"),
        ("POST", api(ALICE, "quota"), {"quota_mb": 1.5}, 400, "whole number of megabytes"),
        ("POST", api(ALICE, "quota"), {"quota_mb": 10**12}, 400, "whole number of megabytes"),
        ("POST", api(ALICE, "quota"), {}, 400, "`quota_mb` is missing"),
        ("POST", api(ALICE, "app-passwords"), {"name": "  "}, 400, "name the app password"),
        ("POST", api(ALICE, "app-passwords"), {"name": "x" * 65}, 400, "too long"),
        ("POST", api(ALICE, "app-passwords"), {"name": 3}, 400, "`name` must be a string"),
        ("POST", api(ALICE, "app-passwords", "abc", "revoke"), {}, 400, "not an app password id"),
        ("POST", api(ALICE, "app-passwords", "999", "revoke"), {}, 404, "no such app password"),
        ("POST", api(ALICE, "remove"), {"confirm": BOB}, 400, "type its address"),
        ("POST", api(ALICE, "remove"), {}, 400, "type its address"),
        ("POST", api(ALICE, "totp", "confirm"), {"code": "123456"}, 409, "no TOTP enrolment started"),
        ("GET", api(ALICE, "totp", "qr.svg"), None, 409, "no TOTP enrolment started"),
    ]
    for method, path, body, status, needle in cases:
        r = c.request(method, path, body)
        assert r.status == status and needle in r.json["error"], (method, path, body, r)
    assert imap_ok(pochta, ALICE, ALICE_PW), "a refused request changed the password"

    # The good cases, with the address as a browser may escape it.
    escaped = ALICE.replace("@", "%40")
    r = c.post(f"/api/accounts/{escaped}/quota", {"quota_mb": 1})
    assert r.status == 200, r
    d = c.get(api(ALICE.upper())).json
    assert d["quota_bytes"] == 1024 * 1024 and d["quota_mb"] == 1, d
    assert d["used_bytes"] == 0 and d["messages"] == 0, d
    r = c.post(api(ALICE, "password"), {"password": "another long passphrase 9"})
    assert r.status == 200, r
    assert not imap_ok(pochta, ALICE, ALICE_PW)
    assert imap_ok(pochta, ALICE, "another long passphrase 9")
    pochta.deliver_mx(BOB)
    r = c.post(api(BOB, "remove"), {"confirm": BOB.upper()})
    assert r.status == 200, r
    assert c.get(api(BOB)).status == 404
    assert BOB not in [a["address"] for a in c.get("/api/accounts").json["accounts"]]


def test_account_pages(pochta):
    c = start(pochta)
    pochta.deliver_mx(ALICE)
    page = c.get("/accounts")
    csrf = csrf_of(page)
    text = check_page(page)
    assert f'href="/accounts/{ALICE}"' in text and f'href="/accounts/{BOB}"' in text, text

    # Quota: a usage bar on the list and the account's page.
    r = post_form(c, f"/accounts/{ALICE}/quota", {"quota_mb": "lots", "csrf_token": csrf})
    assert r.status == 400 and "whole number" in check_page(r)
    r = post_form(c, f"/accounts/{ALICE}/quota", {"quota_mb": "10", "csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == f"/accounts/{ALICE}", r
    assert '<meter min="0" max="10485760"' in check_page(c.get("/accounts"))
    detail = check_page(c.get(f"/accounts/{ALICE}"))
    assert "<meter" in detail and "of 10 MB" in detail, detail

    # An app password, shown once on the result page.
    r = post_form(c, f"/accounts/{ALICE}/app-passwords", {"name": "Phone", "csrf_token": csrf})
    assert r.status == 200, r
    text = check_page(r)
    secret = re.search(r'<code id="new-app-password">([a-z0-9-]+)</code>', text).group(1)
    assert APP_PASSWORD.match(secret)
    assert imap_ok(pochta, ALICE, secret)
    detail = check_page(c.get(f"/accounts/{ALICE}"))
    assert secret not in detail and "Phone" in detail and "from 127.0.0.1" in detail, detail
    revoke = re.search(rf'action="(/accounts/{re.escape(ALICE)}/app-passwords/\d+/revoke)"', detail).group(1)
    r = post_form(c, f"/accounts/{ALICE}/app-passwords", {"name": "", "csrf_token": csrf})
    assert r.status == 400 and "Name the app password" in html.unescape(check_page(r))

    # TOTP enrolment with the QR code drawn on the page.
    r = post_form(c, f"/accounts/{ALICE}/totp", {"csrf_token": csrf})
    assert r.status == 303, r
    detail = check_page(c.get(f"/accounts/{ALICE}"))
    assert "<svg" in detail, "no QR code"
    key = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', detail).group(1)
    r = post_form(c, f"/accounts/{ALICE}/totp/confirm", {"code": totp(key), "csrf_token": csrf})
    assert r.status == 303, r
    detail = check_page(c.get(f"/accounts/{ALICE}"))
    assert "<strong>on</strong>" in detail and key not in detail
    assert not imap_ok(pochta, ALICE, ALICE_PW)
    assert imap_ok(pochta, ALICE, secret)
    r = post_form(c, revoke, {"csrf_token": csrf})
    assert r.status == 303, r
    assert not imap_ok(pochta, ALICE, secret)

    # Offboarding and back.
    fields = {"forward_to": BOB, "auto_reply": "Gone fishing.", "csrf_token": csrf}
    r = post_form(c, f"/accounts/{ALICE}/disable", dict(fields, forward_to="nobody"))
    assert r.status == 400 and "not an address" in html.unescape(check_page(r))
    r = post_form(c, f"/accounts/{ALICE}/disable", fields)
    assert r.status == 303, r
    detail = check_page(c.get(f"/accounts/{ALICE}"))
    assert 'id="account-state">disabled' in detail and "Gone fishing." in detail and f'value="{BOB}"' in detail
    assert "disabled" in check_page(c.get("/accounts"))
    r = post_form(c, f"/accounts/{ALICE}/enable", {"csrf_token": csrf})
    assert r.status == 303, r
    assert 'id="account-state">active' in check_page(c.get(f"/accounts/{ALICE}"))

    # Password reset, refused when weak.
    r = post_form(c, f"/accounts/{ALICE}/password", {"password": "weak", "csrf_token": csrf})
    assert r.status == 400 and "too short" in check_page(r)

    # Without the CSRF field nothing happens.
    r = post_form(c, f"/accounts/{ALICE}/remove", {"confirm": ALICE})
    assert r.status == 403, r
    # Remove: the address must be typed.
    r = post_form(c, f"/accounts/{ALICE}/remove", {"confirm": BOB, "csrf_token": csrf})
    assert r.status == 400 and "type its address in the confirmation." in check_page(r)
    r = post_form(c, f"/accounts/{ALICE}/remove", {"confirm": ALICE, "csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/accounts", r
    assert ALICE not in check_page(c.get("/accounts"))
    r = c.get(f"/accounts/{ALICE}")
    assert r.status == 404 and "No account" in check_page(r)

    # Markup in a name comes back escaped.
    r = post_form(c, f"/accounts/{BOB}/app-passwords", {"name": "<b>x</b>", "csrf_token": csrf})
    assert "<b>x" not in r.body.decode() and "&lt;b&gt;x" in r.body.decode()

    # Logged out: the page sends to the login.
    anonymous = AdminClient(c.addr)
    r = anonymous.get(f"/accounts/{BOB}")
    assert r.status == 303 and r.headers["Location"] == "/", r
