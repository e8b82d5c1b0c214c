"""An administrator's spare keys against a real `pochta serve`: recovery
codes (made at TOTP enrolment, each good once, replaceable) and API tokens
for scripts (Bearer, no CSRF, revocable at once, kept away from managing
logins and tokens)."""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.parse

from admin_http import AdminClient, totp
from test_admin_api import ADMIN, ADMIN_PW, client, do_setup
from test_admin_pages import FORM, check_page, csrf_of, post_form


def bearer(pochta, token: str, method: str, path: str, body=None):
    """A script's request: the token and nothing else (no cookie, no CSRF)."""
    conn = http.client.HTTPConnection(*pochta.addr("admin"), timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def login(pochta, second: str):
    """A fresh login; waits out the guard's slow-down after earlier
    failures (bounded: it asks for seconds, not minutes)."""
    for _ in range(5):
        r = client(pochta).post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": second})
        if r.status != 429:
            return r
        time.sleep(int(re.search(r"wait (\d+) s", r.json["error"]).group(1)) + 0.2)
    raise AssertionError(f"still slowed down: {r}")


def enrol(pochta) -> tuple[AdminClient, str, list[str]]:
    c, secret = do_setup(pochta)
    r = c.post("/api/totp/confirm", {"code": totp(secret)})
    assert r.status == 200, r
    codes = r.json["recovery_codes"]
    return c, secret, codes


def test_recovery_codes(pochta):
    pochta.start()
    c, secret, codes = enrol(pochta)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", x) for x in codes), codes
    assert c.get("/api/recovery-codes").json == {"left": 10}
    # Instead of a TOTP code, typed sloppily (lower case, no dash).
    other = client(pochta)
    sloppy = codes[0].replace("-", "").lower()
    r = other.post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": sloppy})
    assert r.status == 200 and r.json["recovery_codes_left"] == 9, r
    assert other.get("/api/domains").status == 200
    r = client(pochta).post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": codes[0]})
    assert r.status == 401 and "recovery code" in r.json["error"], "a recovery code worked twice"
    assert "auth_failed" in pochta.mail_log_text()
    # The right code with the wrong password is still no login.
    r = client(pochta).post("/api/login", {"user": ADMIN, "password": "wrong password!", "totp": codes[1]})
    assert r.status == 401
    # New codes replace the old ones, used or not.
    r = c.post("/api/recovery-codes")
    assert r.status == 200, r
    fresh = r.json["recovery_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(codes)
    r = login(pochta, codes[1])
    assert r.status == 401, "an old recovery code still works"
    r = login(pochta, fresh[0])
    assert r.status == 200, r
    # Refused without a session or the CSRF token.
    assert client(pochta).get("/api/recovery-codes").status == 401
    assert c.post("/api/recovery-codes", csrf=False).status == 403
    assert c.post("/api/recovery-codes", csrf="0" * 64).status == 403


def test_api_tokens(pochta):
    pochta.start()
    c, _, _ = enrol(pochta)
    for bad, why in [({"name": ""}, "name of 1 to 64"), ({"name": "x" * 65}, "name of 1 to 64"),
                     ({}, "missing"), ({"name": 7}, "must be a string"), ({"name": "a\nb"}, "control")]:
        r = c.post("/api/tokens", bad)
        assert r.status == 400 and why in r.json["error"], (bad, r)
    r = c.post("/api/tokens", {"name": "nightly export"})
    assert r.status == 201, r
    token, tid = r.json["token"], r.json["id"]
    assert re.fullmatch(r"pochta_[0-9a-f]{40}", token), token
    listed = c.get("/api/tokens").json["tokens"]
    assert [t["name"] for t in listed] == ["nightly export"] and listed[0]["last_used"] is None
    assert token not in c.get("/api/tokens").body.decode()

    # A script: no cookie, no CSRF token, reads and changes.
    status, body = bearer(pochta, token, "GET", "/api/domains")
    assert status == 200 and body == {"domains": []}, body
    status, body = bearer(pochta, token, "POST", "/api/domains", {"name": "scripted.test"})
    assert status == 201, body
    status, body = bearer(pochta, token, "POST", "/api/accounts",
                          {"address": "eve@scripted.test", "password": "a long scripted pass 1"})
    assert status == 201, body
    assert c.get("/api/tokens").json["tokens"][0]["last_used"] is not None
    # Not for logins and tokens: a leaked token cannot make more of itself.
    for method, path, body in [("GET", "/api/tokens", None), ("POST", "/api/tokens", {"name": "more"}),
                               ("POST", f"/api/tokens/{tid}/revoke", {}), ("POST", "/api/recovery-codes", {}),
                               ("GET", "/api/session", None)]:
        status, reply = bearer(pochta, token, method, path, body)
        assert status == 403 and "log in" in reply["error"], (path, status, reply)
    # Wrong tokens are refused and counted like wrong passwords.
    status, body = bearer(pochta, "pochta_" + "0" * 40, "GET", "/api/domains")
    assert status == 401 and "unknown or revoked" in body["error"]
    assert "(API token)" in pochta.mail_log_text()
    conn = http.client.HTTPConnection(*pochta.addr("admin"), timeout=30)
    conn.request("GET", "/api/domains", headers={"Authorization": "Basic eDp5"})
    r = conn.getresponse()
    assert r.status == 401 and "Bearer" in json.loads(r.read())["error"]
    conn.close()
    # Revoked: the very next request is refused.
    assert c.post(f"/api/tokens/{tid}/revoke", csrf=False).status == 403
    r = c.post(f"/api/tokens/{tid}/revoke")
    assert r.status == 200, r
    status, _ = bearer(pochta, token, "GET", "/api/domains")
    assert status == 401
    assert c.post(f"/api/tokens/{tid}/revoke").status == 404
    assert c.post("/api/tokens/x/revoke").status == 400
    # Without a session.
    anon = client(pochta)
    assert anon.get("/api/tokens").status == 401
    assert anon.post("/api/tokens", {"name": "x"}).status == 401


def test_settings_page(pochta):
    pochta.start()
    c, secret, _ = enrol(pochta)
    page = c.get("/settings")
    text = check_page(page)
    assert "10 unused" in text
    csrf = csrf_of(page)
    r = post_form(c, "/settings/tokens", {"name": "<b>cron</b>", "csrf_token": csrf})
    assert r.status == 201, r
    text = check_page(r)
    token = re.search(r'<code id="new-token">(pochta_[0-9a-f]{40})</code>', text).group(1)
    assert "&lt;b&gt;cron&lt;/b&gt;" in text and "<b>cron" not in text
    assert bearer(pochta, token, "GET", "/api/domains")[0] == 200
    tid = c.get("/api/tokens").json["tokens"][0]["id"]
    assert post_form(c, f"/settings/tokens/{tid}/revoke", {}).status == 403, "revoked without the CSRF field"
    r = post_form(c, f"/settings/tokens/{tid}/revoke", {"csrf_token": csrf})
    assert r.status == 303 and r.headers["Location"] == "/settings", r
    assert bearer(pochta, token, "GET", "/api/domains")[0] == 401
    r = post_form(c, "/settings/recovery-codes", {"csrf_token": csrf})
    codes = re.findall(r"<li><code>([0-9A-Z]{5}-[0-9A-Z]{5})</code></li>", check_page(r))
    assert len(codes) == 10
    assert login(pochta, codes[3]).status == 200
