"""The admin page's HTML, driven like a browser without script: forms posted
as application/x-www-form-urlencoded with the hidden CSRF field, redirects
followed by hand. Setup, TOTP enrolment, dashboard, a domain's DNS records,
an account, logout and login with TOTP."""

from __future__ import annotations

import html
import re
import time
import urllib.parse
from html.parser import HTMLParser

from admin_http import SECURITY_HEADERS, AdminClient, totp
from harness import ALICE, DOMAIN
from test_admin_api import enrolled

ADMIN_PW = "correct horse battery staple"
FORM = "application/x-www-form-urlencoded"


def post_form(c: AdminClient, path: str, fields: dict):
    return c.request("POST", path, urllib.parse.urlencode(fields).encode(), content_type=FORM, csrf=False)


def csrf_of(page) -> str:
    m = re.search(rb'name="csrf_token" value="([0-9a-f]+)"', page.body)
    assert m, page.body[:2000]
    return m.group(1).decode()


def check_page(r) -> str:
    """Common rules for every HTML page; returns its text."""
    assert r.headers["Content-Type"] == "text/html; charset=utf-8", r
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, name
    text = r.body.decode()
    assert "<script" not in text and " style=" not in text and "<style" not in text, "inline script or style"
    assert 'name="viewport" content="width=device-width' in text
    assert re.search(r'(src|href)="https?:', text) is None, "a resource from outside the box"
    return text


def test_setup_enrol_dashboard_logout_login(pochta):
    pochta.start()
    c = AdminClient(pochta.addr("admin"))
    r = c.get("/")
    assert r.status == 303 and r.headers["Location"] == "/setup"
    css = c.get("/style.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "@media" in css.body.decode(), "no rule for phone widths"
    check_page(c.get("/setup"))

    code = (pochta.data / "setup-code.txt").read_text().strip()
    r = post_form(c, "/setup", {"setup_code": code, "user": "admin", "password": "short"})
    assert r.status == 400 and "too short" in check_page(r)
    # A form on another site cannot post here, not even the setup or login.
    host, port = c.addr
    fields = urllib.parse.urlencode({"setup_code": code, "user": "admin", "password": ADMIN_PW}).encode()
    r = c.request("POST", "/setup", fields, content_type=FORM, csrf=False, origin="http://evil.example")
    assert r.status == 403 and "cross-site" in r.json["error"], r
    r = c.request("POST", "/login", fields, content_type=FORM, csrf=False, origin="http://evil.example")
    assert r.status == 403, r
    # The browser's own origin is fine.
    r = c.request("POST", "/setup", fields, content_type=FORM, csrf=False, origin=f"http://{host}:{port}")
    assert r.status == 303 and r.headers["Location"] == "/enrol", r
    assert c.cookie, "no session cookie after setup"
    assert c.get("/").headers["Location"] == "/enrol"

    enrol = c.get("/enrol")
    text = check_page(enrol)
    assert "<svg" in text, "no QR code"
    secret = re.search(r'<code id="secret">([A-Z2-7]+)</code>', text).group(1)
    csrf = csrf_of(enrol)
    r = post_form(c, "/enrol", {"code": totp(secret)})
    assert r.status == 403, "enrolment without the CSRF field"
    confirmed_at = time.time()
    r = post_form(c, "/enrol", {"code": totp(secret, confirmed_at), "csrf_token": csrf})
    assert r.status == 200, r
    codes = re.findall(r"<li><code>([0-9A-Z]{5}-[0-9A-Z]{5})</code></li>", check_page(r))
    assert len(codes) == 10, r.body[:2000]
    assert 'href="/welcome"' in r.body.decode()

    # The wizard: until there is a domain, the dashboard sends you on.
    assert c.get("/").headers["Location"] == "/welcome"
    step = c.get("/welcome")
    assert "Step 1 of 3" in check_page(step)
    csrf = csrf_of(step)
    r = post_form(c, "/welcome/domain", {"name": "bad name", "csrf_token": csrf})
    assert r.status == 400 and "not a domain name" in html.unescape(check_page(r))
    r = post_form(c, "/welcome/domain", {"name": "example.test"})
    assert r.status == 403, "a domain added without the CSRF field"
    r = post_form(c, "/welcome/domain", {"name": "example.test", "csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/welcome", r
    step = check_page(c.get("/welcome"))
    assert "Step 2 of 3" in step and "anna@example.test" in step
    r = post_form(c, "/welcome/account", {"address": "boss@example.test", "password": "a long office passphrase 8",
                                          "csrf_token": csrf})
    # Step 3: the backup key, shown once; on only once it is written down.
    key_step = check_page(r)
    assert r.status == 200 and "Step 3 of 3" in key_step, r
    key = re.search(r'id="backup-key">(.*?)</code>', key_step).group(1).replace("<wbr>", "")
    assert key == pochta.cli("backup key").stdout.strip()
    r = post_form(c, "/welcome/key", {"domain": "example.test", "csrf_token": csrf})
    assert r.status == 400 and "Tick the box" in check_page(r), r
    r = post_form(c, "/welcome/key", {"domain": "example.test", "written": "yes", "csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/domains/example.test", r
    # Done: the wizard hands over to the DNS records, the dashboard is home.
    assert c.get("/welcome").headers["Location"] == "/domains/example.test"
    dash = c.get("/")
    assert dash.status == 200
    check_page(dash)

    r = post_form(c, "/domains", {"name": "bad name", "csrf_token": csrf})
    assert r.status == 400 and "not a domain name" in html.unescape(check_page(r))
    r = post_form(c, "/domains", {"name": "second.test", "csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/domains", r
    domains = check_page(c.get("/domains"))
    assert 'href="/domains/example.test"' in domains
    assert 'href="/domains/second.test"' in domains
    assert '<a href="/domains" aria-current="page">' in domains, "the menu marks the page"
    dns = check_page(c.get("/domains/example.test"))
    assert "MX" in dns and "_domainkey.example.test." in dns and "v=spf1" in html.unescape(dns)

    r = post_form(c, "/accounts", {"address": "anna@example.test", "password": "weak", "csrf_token": csrf})
    assert r.status == 400 and "too short" in check_page(r)
    fields = {"address": "anna@example.test", "password": "a long office passphrase 7", "csrf_token": csrf}
    assert post_form(c, "/accounts", fields).status == 303
    r = post_form(c, "/accounts", fields)
    assert r.status == 409 and "exists already" in check_page(r)
    assert "anna@example.test" in check_page(c.get("/accounts"))
    assert ">2</a>" in check_page(c.get("/")), "the dashboard counts the accounts"
    # A domain is removed from the foot of its DNS page, its name typed again.
    assert 'action="/domains/second.test/remove"' in check_page(c.get("/domains/second.test"))
    r = post_form(c, "/domains/second.test/remove", {"confirm": "wrong.test", "csrf_token": csrf})
    assert r.status == 400 and "to confirm" in check_page(r)
    r = post_form(c, "/domains/second.test/remove", {"confirm": "second.test", "csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/domains", r
    assert "second.test" not in check_page(c.get("/domains"))
    # Markup typed into a field comes back escaped.
    r = post_form(c, "/domains", {"name": "<b>x</b>.test", "csrf_token": csrf})
    assert "<b>" not in r.body.decode() and "&lt;b&gt;" in r.body.decode()

    r = post_form(c, "/logout", {"csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/login"
    assert c.get("/").headers["Location"] == "/login"
    check_page(c.get("/login"))
    r = post_form(c, "/login", {"user": "admin", "password": ADMIN_PW})
    assert r.status == 401 and "authenticator" in check_page(r)
    r = post_form(c, "/login", {"user": "admin", "password": ADMIN_PW, "totp": totp(secret, confirmed_at + 30)})
    assert r.status == 303 and r.headers["Location"] == "/", r
    assert c.get("/").status == 200


class _Fields(HTMLParser):
    """The text fields of a page by id: an input's value, a textarea's text."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self.textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("id"):
            self.values[a["id"]] = a.get("value") or ""
        elif tag == "textarea" and a.get("id"):
            self.textarea = a["id"]
            self.values[self.textarea] = ""

    def handle_data(self, data):
        if self.textarea:
            self.values[self.textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self.textarea = None


def fields_of(text: str) -> dict[str, str]:
    parser = _Fields()
    parser.feed(text)
    return parser.values


def error_of(r, status: int) -> tuple[str, dict[str, str]]:
    """A refused form's page: its one error as a sentence for a person (a
    capital, a full stop, no command line, no backticks), and its fields."""
    assert r.status == status, r
    text = check_page(r)
    errors = re.findall(r'<p class="error" role="alert">(.*?)</p>', text, re.S)
    assert len(errors) == 1, errors
    message = html.unescape(errors[0])
    assert message[:1].isupper() and message.endswith("."), message
    assert "`" not in message and "pochta " not in message.lower(), message
    return message, fields_of(text)


def test_page_errors_are_sentences_and_forms_keep_what_was_typed(pochta):
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    csrf = csrf_of(c.get("/accounts"))
    typed_pw = "a long office passphrase 7"

    # Accounts: a domain that does not exist, then a weak password; the
    # address stays, the password never comes back.
    r = post_form(c, "/accounts", {"address": "anna@elsewhere.test", "password": typed_pw, "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert "elsewhere.test" in message, message
    assert fields["address"] == "anna@elsewhere.test" and fields["apw"] == "", fields
    assert typed_pw not in r.body.decode()
    r = post_form(c, "/accounts", {"address": f"anna@{DOMAIN}", "password": "short", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert "too short" in message and fields["address"] == f"anna@{DOMAIN}" and fields["apw"] == "", fields
    r = post_form(c, "/accounts", {"address": ALICE, "password": typed_pw, "csrf_token": csrf})
    message, fields = error_of(r, 409)
    assert message.startswith(f"Account {ALICE}") and "exists already" in message, message
    assert fields["address"] == ALICE

    # Aliases: a target that is not an address.
    r = post_form(c, "/aliases", {"address": f"info@{DOMAIN}", "targets": f"{ALICE}, nobody", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert fields["address"] == f"info@{DOMAIN}" and fields["targets"] == f"{ALICE}, nobody", fields

    # Domains: a bad name, and the removal's confirmation typed wrong.
    r = post_form(c, "/domains", {"name": "bad name", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert "not a domain name" in message and fields["domain"] == "bad name", (message, fields)
    r = post_form(c, "/domains", {"name": DOMAIN, "csrf_token": csrf})
    message, fields = error_of(r, 409)
    assert fields["domain"] == DOMAIN
    r = post_form(c, f"/domains/{DOMAIN}/remove", {"confirm": "wrong.test", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert fields["confirm-domain"] == "wrong.test", fields

    # An account's own forms: quota, offboarding, app password name.
    r = post_form(c, f"/accounts/{ALICE}/quota", {"quota_mb": "lots", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert "whole number" in message and "quota_mb" not in message, message
    assert fields["quota"] == "lots", fields
    r = post_form(c, f"/accounts/{ALICE}/disable",
                  {"forward_to": "nobody", "auto_reply": "Gone fishing.", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert fields["forward-to"] == "nobody" and fields["auto-reply"] == "Gone fishing.", fields
    r = post_form(c, f"/accounts/{ALICE}/password", {"password": "short", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert fields["new-password"] == "" and "short" not in fields.values()
    r = post_form(c, f"/accounts/{ALICE}/remove", {"confirm": "someone@else.test", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert fields["confirm"] == "someone@else.test", fields

    # The login keeps the name, never the password.
    anon = AdminClient(pochta.addr("admin"))
    r = post_form(anon, "/login", {"user": "root", "password": "wrong password here", "totp": "123456"})
    message, fields = error_of(r, 401)
    assert fields["user"] == "root" and fields["password"] == "" and fields["totp"] == "", fields
    assert "wrong password here" not in r.body.decode()


def format_size(n: int) -> str:
    """pochta_config::format_size: powers of 1024 named KB, MB, GB, TB, one
    decimal at most and none when it is .0."""
    for name, unit in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= unit:
            tenths = (n * 10 + unit // 2) // unit
            return f"{tenths // 10} {name}" if tenths % 10 == 0 else f"{tenths // 10}.{tenths % 10} {name}"
    return f"{n} B"


def test_sizes_on_the_pages_in_one_convention(pochta):
    pochta.setup_basic()
    pochta.start()
    pochta.deliver_mx(ALICE)
    c, _, _ = enrolled(pochta)
    csrf = csrf_of(c.get("/accounts"))
    assert post_form(c, f"/accounts/{ALICE}/quota", {"quota_mb": "10", "csrf_token": csrf}).status == 303
    alice = next(a for a in c.get("/api/accounts").json["accounts"] if a["address"] == ALICE)
    assert 0 < alice["bytes"] < 1 << 20, alice
    used = format_size(alice["bytes"])
    assert used.endswith(" KB") or used.endswith(" B"), used

    listed = check_page(c.get("/accounts"))
    assert "0.0 MB" not in listed
    assert f"{used} of 10 MB" in listed, listed
    detail = check_page(c.get(f"/accounts/{ALICE}"))
    assert f"{used} of 10 MB" in detail and "0.0 MB" not in detail, detail

    # The dashboard: the store's sizes as the API counts them, in the same
    # convention (the disk's numbers move with everything else on it).
    d = c.get("/api/dashboard").json["storage"]
    page = check_page(c.get("/"))
    assert f"<th>Mail stored</th><td>{format_size(d['mail_bytes'])}</td>" in page, page
    assert f"<th>Database</th><td>{format_size(d['database_bytes'])}</td>" in page, page
    assert re.search(r"\d+(\.\d)? (B|KB|MB|GB|TB) used, \d+(\.\d)? (B|KB|MB|GB|TB) free", page), page
