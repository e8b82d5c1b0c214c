"""Secrets at rest (issue 13): the admin page's sessions survive a restart
without the card holding anything that could be replayed as a cookie, and
no password, session token or API token reaches the mail log or the
server's log.
"""

import hashlib
import imaplib
import http.client

from admin_http import logged_in
from harness import ALICE, ALICE_PW, tls_context

ADMIN_PW = "correct horse battery staple"


def data_files(pochta) -> bytes:
    """Every byte of the database (with its WAL) and the logs."""
    blob = b""
    for path in sorted(pochta.data.rglob("*")):
        if path.is_file() and "blobs" not in path.parts:
            blob += path.read_bytes()
    return blob


def test_an_admin_session_survives_a_restart_and_is_stored_as_a_hash(pochta):
    pochta.setup_basic()
    pochta.start()
    c = logged_in(pochta)
    token = c.cookie.split("=", 1)[1]
    csrf = c.csrf
    assert c.get("/api/session").status == 200

    pochta.restart()
    c.addr = pochta.addr("admin")
    r = c.get("/api/session")
    assert r.status == 200 and r.json["admin"] == "root", f"the session ended with the restart: {r}"
    r = c.post("/api/domains", {"name": "after-restart.test"})
    assert r.status == 201, f"the CSRF token the page holds stopped working: {r}"
    assert c.csrf == csrf

    pochta.stop()
    stored = data_files(pochta)
    assert token.encode() not in stored, "the session token itself is on the card"
    assert csrf.encode() not in stored, "the CSRF token is on the card"
    assert hashlib.sha256(token.encode()).hexdigest().encode() in stored, (
        "the session is not in the store (as its SHA-256)"
    )

    # A logout ends it for good, restart or not.
    pochta.start()
    c.addr = pochta.addr("admin")
    assert c.post("/api/logout").status == 200
    pochta.restart()
    c.addr = pochta.addr("admin")
    assert c.get("/api/session").status == 401


def test_no_password_or_token_in_the_logs(pochta):
    pochta.setup_basic()
    pochta.start()
    c = logged_in(pochta)
    session = c.cookie.split("=", 1)[1]
    r = c.post("/api/tokens", {"name": "export"})
    assert r.status == 201, r
    api_token = r.json["token"]
    conn = http.client.HTTPConnection(*pochta.addr("admin"), timeout=30)
    conn.request("GET", "/api/domains", headers={"Authorization": f"Bearer {api_token}"})
    assert conn.getresponse().status == 200
    conn.close()
    # Logins that work and logins that fail, over every protocol.
    with pochta.submit_client(ALICE, ALICE_PW) as s:
        s.noop()
    imap = imaplib.IMAP4_SSL(*pochta.addr("imaps"), ssl_context=tls_context(), timeout=15)
    imap.login(ALICE, ALICE_PW)
    imap.logout()
    wrong = "Wrong-password-for-the-log-1"
    imap = imaplib.IMAP4_SSL(*pochta.addr("imaps"), ssl_context=tls_context(), timeout=15)
    try:
        imap.login(ALICE, wrong)
    except imaplib.IMAP4.error:
        pass
    imap.shutdown()
    r = c.post("/api/login", {"user": "root", "password": wrong, "totp": "000000"})
    assert r.status in (400, 401, 403, 429), r
    # Nor in any page the administrator sees.
    pages = ["/", "/domains", "/domains/example.test", "/accounts", f"/accounts/{ALICE}",
             "/aliases", "/queue", "/log", "/security", "/settings"]
    for path in pages:
        r = c.get(path)
        assert r.status == 200, (path, r)
        html = r.body.decode()
        for name, secret in [("alice's password", ALICE_PW), ("the admin's password", ADMIN_PW),
                             ("the session token", session), ("the API token", api_token)]:
            assert secret not in html, f"{name} is in the HTML of {path}"
    pochta.stop()
    logs = pochta.mail_log_text() + "".join(p.read_text(errors="replace") for p in pochta.logs)
    assert "(API token)" in logs or "login" in logs.lower(), "the logs recorded none of it"
    for name, secret in [("alice's password", ALICE_PW), ("the admin's password", ADMIN_PW),
                         ("a wrong password", wrong), ("the session token", session),
                         ("the API token", api_token)]:
        assert secret not in logs, f"{name} is in the logs"
    # The API token is stored as a hash only, like app passwords.
    assert api_token.encode() not in data_files(pochta)
