"""The admin page's JSON API against a real `pochta serve`: first-boot setup
with the code from the data folder, TOTP enrolment and login, sessions,
CSRF, the LAN-only policy, input validation and security headers."""

from __future__ import annotations

import html
import re
import stat
import time

import pytest

from admin_http import SECURITY_HEADERS, AdminClient, totp
from harness import ALICE, ALICE_PW, parse_addr

ADMIN = "root"
ADMIN_PW = "correct horse battery staple"
CROCKFORD = re.compile(r"^[0-9A-HJKMNP-TV-Z]{10}$")


def client(pochta) -> AdminClient:
    return AdminClient(pochta.addr("admin"))


def setup_code(pochta) -> str:
    return (pochta.data / "setup-code.txt").read_text().strip()


def do_setup(pochta) -> tuple[AdminClient, str]:
    """Runs setup; returns the logged-in client and the TOTP secret."""
    c = client(pochta)
    r = c.post("/api/setup", {"setup_code": setup_code(pochta), "user": ADMIN, "password": ADMIN_PW})
    assert r.status == 201, r
    return c, r.json["totp_secret"]


def enrolled(pochta) -> tuple[AdminClient, str, float]:
    """Setup and TOTP enrolment; returns the client, the secret and the time
    whose step the confirmation used up."""
    c, secret = do_setup(pochta)
    now = time.time()
    r = c.post("/api/totp/confirm", {"code": totp(secret, now)})
    assert r.status == 200, r
    return c, secret, now


def assert_security_headers(r) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, f"{name}: {r.headers.get(name)!r} in {r.status} reply"


def test_totp_helper_matches_rfc_6238():
    # RFC 6238 Appendix B, SHA-1 seed "12345678901234567890"; 6-digit tail.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp(secret, 59) == "287082"
    assert totp(secret, 1111111109) == "081804"


def test_setup_code_works_once(pochta):
    pochta.start()
    path = pochta.data / "setup-code.txt"
    code = setup_code(pochta)
    assert CROCKFORD.match(code), code
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert code in pochta.log_tail(200), "the setup code is not in the log"
    c = client(pochta)
    assert c.get("/api/setup").json == {"needed": True}

    r = c.post("/api/setup", {"setup_code": "0000000000", "user": ADMIN, "password": ADMIN_PW})
    assert r.status == 403 and "setup code" in r.json["error"], r
    r = c.post("/api/setup", {"setup_code": code, "user": ADMIN, "password": "short"})
    assert r.status == 400 and "too short" in r.json["error"], r
    r = c.post("/api/setup", {"setup_code": code, "user": "a b", "password": ADMIN_PW})
    assert r.status == 400 and "user name" in r.json["error"], r
    r = c.post("/api/setup", {"setup_code": code, "user": ADMIN})
    assert r.status == 400 and "`password` is missing" in r.json["error"], r

    # Lower case and a hyphen are read as the same code (Crockford).
    typed = (code[:5] + "-" + code[5:]).lower()
    r = c.post("/api/setup", {"setup_code": typed, "user": ADMIN, "password": ADMIN_PW})
    assert r.status == 201, r
    body = r.json
    assert body["admin"] == ADMIN and body["totp_enabled"] is False
    assert re.fullmatch(r"[A-Z2-7]{32}", body["totp_secret"]), body
    assert body["otpauth_uri"].startswith("otpauth://totp/Pochta:root?"), body
    assert f"secret={body['totp_secret']}" in body["otpauth_uri"]
    flags = [f.strip() for f in c.set_cookie.split(";")]
    assert flags[0].startswith("pochta_session=") and len(flags[0]) > 40, flags
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(flags), flags
    assert "Secure" not in flags, "Secure on a plain HTTP cookie: the browser would drop it"
    assert not path.exists(), "setup-code.txt still there after setup"

    # The code is used up, also after a restart.
    again = client(pochta)
    r = again.post("/api/setup", {"setup_code": code, "user": "other", "password": ADMIN_PW})
    assert r.status == 410, r
    assert again.get("/api/setup").json == {"needed": False}
    pochta.restart()
    assert not path.exists(), "a new setup code was made although an administrator exists"
    r = client(pochta).post("/api/setup", {"setup_code": code, "user": "other", "password": ADMIN_PW})
    assert r.status == 410, r


def test_setup_code_copy_for_the_boot_partition(pochta):
    boot = pochta.root / "boot"
    boot.mkdir()
    pochta.configure(admin={"setup_code_copy": str(boot / "SETUP.TXT")})
    pochta.start()
    code = setup_code(pochta)
    text = (boot / "SETUP.TXT").read_bytes().decode()
    assert f"Pochta setup code: {code}\r\n" in text, text
    r = client(pochta).post("/api/setup", {"setup_code": code, "user": ADMIN, "password": ADMIN_PW})
    assert r.status == 201, r
    assert not (boot / "SETUP.TXT").exists(), "SETUP.TXT still there after setup"
    # A copy that cannot be written (read-only boot partition) is no reason
    # not to start.
    pochta.stop()
    (pochta.data / "pochta.db").unlink()
    for extra in pochta.data.glob("pochta.db-*"):
        extra.unlink()
    pochta.configure(admin={"setup_code_copy": str(pochta.root / "no-such-dir" / "SETUP.TXT")})
    pochta.start()
    assert CROCKFORD.match(setup_code(pochta))
    assert "cannot write the setup code's copy" in pochta.log_tail(200)


def test_totp_enrolment_and_login(pochta):
    pochta.start()
    c, secret = do_setup(pochta)
    # Until TOTP is confirmed the session can only finish enrolment.
    r = c.get("/api/domains")
    assert r.status == 403 and "TOTP" in r.json["error"], r
    assert c.get("/api/session").json["totp_enabled"] is False
    qr = c.get("/api/totp/qr.svg")
    assert qr.status == 200 and qr.headers["Content-Type"] == "image/svg+xml", qr
    assert b"<svg" in qr.body and b"<script" not in qr.body
    assert_security_headers(qr)
    r = c.post("/api/totp/confirm", {"code": "000000"}, csrf=False)
    assert r.status == 403 and "CSRF" in r.json["error"], r
    wrong = "000000" if totp(secret) != "000000" else "111111"
    r = c.post("/api/totp/confirm", {"code": wrong})
    assert r.status == 400 and "wrong TOTP code" in r.json["error"], r
    confirmed_at = time.time()
    r = c.post("/api/totp/confirm", {"code": totp(secret, confirmed_at)})
    assert r.status == 200, r
    assert c.get("/api/domains").status == 200
    assert c.get("/api/totp/qr.svg").status == 409, "the secret shown again after enrolment"

    r = c.post("/api/logout")
    assert r.status == 200, r
    assert "Max-Age=0" in c.set_cookie
    assert c.get("/api/domains").status == 401

    fresh = client(pochta)
    r = fresh.post("/api/login", {"user": ADMIN, "password": "wrong password here"})
    assert r.status == 401 and "wrong user name or password" in r.json["error"], r
    r = fresh.post("/api/login", {"user": ADMIN, "password": ADMIN_PW})
    assert r.status == 401 and r.json.get("totp_required") is True, r
    assert fresh.cookie is None, "a session without the TOTP code"
    r = fresh.post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": wrong})
    assert r.status == 401 and r.json.get("totp_required") is True, r
    # The confirmation used its step up: the next step's code (within the
    # one step of skew) logs in, once.
    code = totp(secret, confirmed_at + 30)
    r = fresh.post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": code})
    assert r.status == 200, r
    assert r.json["totp_enabled"] is True and "totp_secret" not in r.json, r
    assert fresh.get("/api/domains").status == 200
    r = client(pochta).post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": code})
    assert r.status == 401 and "already used" in r.json["error"], r
    log = pochta.mail_log_text()
    assert "auth_failed" in log and "service=admin" in log, log[-2000:]
    assert ADMIN_PW not in log and ADMIN_PW not in pochta.log_tail(500)


ENDPOINTS = [
    ("GET", "/api/session", None),
    ("POST", "/api/logout", {}),
    ("POST", "/api/totp/confirm", {"code": "123456"}),
    ("GET", "/api/totp/qr.svg", None),
    ("GET", "/api/domains", None),
    ("POST", "/api/domains", {"name": "refused.test"}),
    ("GET", "/api/domains/refused.test/dns", None),
    ("POST", "/api/domains/refused.test/remove", {"confirm": "refused.test"}),
    ("GET", "/api/domains/refused.test/check", None),
    ("GET", "/api/accounts", None),
    ("POST", "/api/accounts", {"address": "x@refused.test", "password": ADMIN_PW}),
    ("GET", "/api/accounts/x@refused.test", None),
    ("POST", "/api/accounts/x@refused.test/password", {"password": ADMIN_PW}),
    ("POST", "/api/accounts/x@refused.test/quota", {"quota_mb": 5}),
    ("POST", "/api/accounts/x@refused.test/disable", {}),
    ("POST", "/api/accounts/x@refused.test/enable", {}),
    ("POST", "/api/accounts/x@refused.test/remove", {"confirm": "x@refused.test"}),
    ("POST", "/api/accounts/x@refused.test/app-passwords", {"name": "Phone"}),
    ("POST", "/api/accounts/x@refused.test/app-passwords/1/revoke", {}),
    ("POST", "/api/accounts/x@refused.test/totp", {}),
    ("GET", "/api/accounts/x@refused.test/totp/qr.svg", None),
    ("POST", "/api/accounts/x@refused.test/totp/confirm", {"code": "123456"}),
    ("POST", "/api/accounts/x@refused.test/totp/disable", {}),
    ("GET", "/api/accounts/x@refused.test/setup", None),
    ("GET", "/api/accounts/x@refused.test/mobileconfig", None),
    ("GET", "/api/recovery-codes", None),
    ("POST", "/api/recovery-codes", {}),
    ("GET", "/api/tokens", None),
    ("POST", "/api/tokens", {"name": "x"}),
    ("POST", "/api/tokens/1/revoke", {}),
    ("GET", "/api/dashboard", None),
    ("GET", "/api/queue", None),
    ("POST", "/api/queue/1/retry", {}),
    ("POST", "/api/queue/1/delete", {}),
    ("GET", "/api/log?q=x", None),
    ("GET", "/api/log/trace?q=x", None),
    ("GET", "/api/security", None),
    ("POST", "/api/security/unban", {"address": "192.0.2.1"}),
    ("GET", "/api/aliases", None),
    ("POST", "/api/aliases", {"address": "a@refused.test", "targets": ["b@refused.test"]}),
    ("POST", "/api/aliases/remove", {"address": "a@refused.test"}),
    ("GET", "/api/backup", None),
    ("POST", "/api/backup/settings", {"folder": "/refused"}),
    ("POST", "/api/backup/run", {}),
    ("POST", "/api/backup/verify", {}),
    ("POST", "/api/backup/key", {"password": ADMIN_PW, "totp": "123456"}),
]


def test_every_endpoint_needs_a_session_and_csrf_token(pochta):
    pochta.start()
    anonymous = client(pochta)
    for method, path, body in ENDPOINTS:
        r = anonymous.request(method, path, body)
        assert r.status == 401 and r.json["error"] == "log in first", (method, path, r)
        assert_security_headers(r)
    c, _, _ = enrolled(pochta)
    forged = AdminClient(c.addr)
    forged.cookie = "pochta_session=" + "0" * 64
    assert forged.get("/api/domains").status == 401
    for method, path, body in ENDPOINTS:
        if method != "POST":
            continue
        r = c.request(method, path, body, csrf=False)
        assert r.status == 403 and "CSRF" in r.json["error"], (path, r)
        r = c.request(method, path, body, csrf="f" * 64)
        assert r.status == 403 and "CSRF" in r.json["error"], (path, r)
    # Nothing was changed by the refused requests.
    assert c.get("/api/domains").json == {"domains": []}
    assert c.get("/api/accounts").json == {"accounts": []}
    # A form post from another site cannot send JSON.
    r = c.request("POST", "/api/domains", b"name=x.test", content_type="application/x-www-form-urlencoded")
    assert r.status == 415, r


def test_domains_dns_and_accounts(pochta):
    pochta.start()
    c, _, _ = enrolled(pochta)
    for bad in ["not a domain", "nodot", "-x.test", "a..test"]:
        r = c.post("/api/domains", {"name": bad})
        assert r.status == 400 and "not a domain name" in r.json["error"], (bad, r)
    r = c.post("/api/domains", {"name": 42})
    assert r.status == 400 and "`name` must be a string" in r.json["error"], r
    r = c.post("/api/domains", {"name": "Example.TEST"})
    assert r.status == 201, r
    assert r.json["name"] == "example.test" and len(r.json["dkim_selectors"]) == 2, r
    r = c.post("/api/domains", {"name": "example.test"})
    assert r.status == 409 and "exists already" in r.json["error"], r
    assert c.get("/api/domains").json == {"domains": ["example.test"]}

    r = c.get("/api/domains/example.test/dns")
    assert r.status == 200, r
    records = r.json["records"]
    kinds = {(x["type"], x["name"]) for x in records}
    assert ("MX", "example.test.") in kinds, kinds
    assert any(x["type"] == "TXT" and x["data"].startswith('"v=spf1') for x in records), records
    cli_zone = pochta.cli("domain dns", "example.test", "--host", "mx.test.local").stdout
    assert r.json["zone"] == cli_zone, "the page and `pochta domain dns` disagree"
    assert "._domainkey.example.test." in r.json["zone"]
    assert c.get("/api/domains/unknown.test/dns").status == 404

    new = {"address": "anna@example.test", "password": "a long office passphrase 7"}
    r = c.post("/api/accounts", dict(new, password="short"))
    assert r.status == 400 and "too short" in r.json["error"], r
    r = c.post("/api/accounts", dict(new, password="Xanna-Secret-pw-1"))
    assert r.status == 400 and "user name" in r.json["error"], r
    r = c.post("/api/accounts", dict(new, address="not-an-address"))
    assert r.status == 400 and "not an address" in r.json["error"], r
    r = c.post("/api/accounts", dict(new, address="anna@elsewhere.test"))
    assert r.status == 400 and "no such domain elsewhere.test" in r.json["error"], r
    r = c.post("/api/accounts", dict(new, quota_bytes=-1))
    assert r.status == 400 and "quota_bytes" in r.json["error"], r
    r = c.post("/api/accounts", new)
    assert r.status == 201, r
    r = c.post("/api/accounts", dict(new, address="ANNA@example.test"))
    assert r.status == 409 and "account anna@example.test exists already" in r.json["error"], r
    accounts = c.get("/api/accounts").json["accounts"]
    assert [a["address"] for a in accounts] == ["anna@example.test"], accounts
    # The account is real: it logs in over POP3.
    pochta.pop3_login("anna@example.test", new["password"]).quit()


def test_non_lan_source_refused(pochta):
    # On one machine every client is loopback: without loopback in the
    # policy, 127.0.0.1 stands for an address outside the LAN.
    pochta.configure(admin={"allow_loopback": False})
    pochta.start()
    c = client(pochta)
    every = [("GET", "/"), ("GET", "/login"), ("GET", "/style.css"), ("GET", "/api/setup"),
             ("POST", "/api/setup"), ("POST", "/api/login")] + [(m, p) for m, p, _ in ENDPOINTS]
    for method, path in every:
        r = c.request(method, path, {} if method == "POST" else None)
        assert r.status == 403 and "local network" in r.json["error"], (path, r)
        assert_security_headers(r)
        assert c.cookie is None
    assert "admin_refused" in pochta.mail_log_text()
    assert (pochta.data / "setup-code.txt").exists()
    # An allow-list entry lets it in again.
    pochta.stop()
    pochta.configure(admin={"allow_loopback": False, "allow": ["127.0.0.0/8"]})
    pochta.start()
    assert client(pochta).get("/api/setup").status == 200


def test_security_headers_everywhere(pochta):
    pochta.start()
    c = client(pochta)
    home = c.get("/")
    assert home.status == 303 and home.headers["Location"] == "/setup", home
    for r in [home, c.get("/setup"), c.get("/style.css"), c.get("/api/setup"), c.get("/api/nothing"), c.request("PUT", "/api/domains"),
              c.get("/api/domains"), c.post("/api/login", {"user": "x", "password": "y"})]:
        assert_security_headers(r)
        assert r.headers.get("Cache-Control") == "no-store", r
    assert c.request("PUT", "/api/domains").headers["Allow"] == "GET, POST"


def test_guard_is_shared_with_the_mail_protocols(pochta):
    pochta.configure(guard={"max_failures": 3, "delay_after": 10})
    pochta.setup_basic()
    pochta.start()
    c = client(pochta)
    for _ in range(3):
        r = c.post("/api/login", {"user": ADMIN, "password": "not the password"})
        assert r.status == 401, r
    r = c.post("/api/login", {"user": ADMIN, "password": "not the password"})
    assert r.status == 429, r
    # Banned on the mail protocols too, even with the right password.
    with pochta.raw("submission") as s:
        s.greeting()
        s.ehlo()
        s.starttls()
        s.ehlo()
        assert s.auth_plain(ALICE, ALICE_PW).code != 235
    # serve.json lists the page like the other services.
    host, port = parse_addr(pochta.info["admin"][0])
    assert host == "127.0.0.1" and port > 0


def test_remove_domain(pochta):
    pochta.start()
    c, _, _ = enrolled(pochta)
    assert c.post("/api/domains", {"name": "gone.test"}).status == 201
    assert c.post("/api/accounts", {"address": "x@gone.test", "password": "a long passphrase 99"}).status == 201
    r = c.post("/api/domains/gone.test/remove", {"confirm": "other.test"})
    assert r.status == 400 and "to confirm" in r.json["error"], r
    r = c.post("/api/domains/gone.test/remove", {})
    assert r.status == 400 and "`confirm` is missing" in r.json["error"], r
    r = c.post("/api/domains/gone.test/remove", {"confirm": "gone.test"})
    assert r.status == 400 and "still has 1 account" in r.json["error"], r
    assert c.post("/api/domains/gone.test/remove", {"confirm": "gone.test"}, csrf=False).status == 403
    assert client(pochta).post("/api/domains/gone.test/remove", {"confirm": "gone.test"}).status == 401
    pochta.cli("account", "remove", "x@gone.test", "--yes")
    r = c.post("/api/domains/gone.test/remove", {"confirm": "GONE.test."})
    assert r.status == 200 and r.json == {"removed": "gone.test"}, r
    assert "gone.test" not in c.get("/api/domains").json["domains"]
    r = c.post("/api/domains/gone.test/remove", {"confirm": "gone.test"})
    assert r.status == 404, r


def test_dns_records_warn_when_the_mail_host_is_not_a_full_name(pochta):
    # "vm" is what a newcomer's machine is often called: no MX can point at it.
    # DNS goes to a closed loopback port: the check page answers at once.
    pochta.configure(hostname="vm", dns={"servers": ["127.0.0.1:9"], "timeout_secs": 1})
    pochta.start()
    c, _, _ = enrolled(pochta)
    assert c.post("/api/domains", {"name": "example.test"}).status == 201
    r = c.get("/api/domains/example.test/dns")
    assert r.status == 200, r
    problem = r.json["host_problem"]
    assert problem and 'The mail host "vm" is not a full domain name' in problem, problem
    assert "hostname" in problem and "`" not in problem and "--host" not in problem, problem
    page = c.get("/domains/example.test")
    text = html.unescape(page.body.decode())
    assert page.status == 200
    found = re.search(r'<p id="host-problem" class="error" role="alert">(.*?)</p>', text, re.S)
    assert found and found.group(1) == problem, text[:3000]
    # The check page shows it too.
    assert problem in html.unescape(c.get("/domains/example.test/check").body.decode())


def test_dns_records_of_a_full_mail_host_have_no_warning(pochta):
    pochta.configure(hostname="mail.example.test")
    pochta.start()
    c, _, _ = enrolled(pochta)
    assert c.post("/api/domains", {"name": "example.test"}).status == 201
    r = c.get("/api/domains/example.test/dns")
    assert r.status == 200 and "host_problem" in r.json and r.json["host_problem"] is None, r
    assert 'id="host-problem"' not in c.get("/domains/example.test").body.decode()
