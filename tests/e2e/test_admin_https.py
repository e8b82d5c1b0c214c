"""The admin page over HTTPS: rustls terminates TLS with the box's
certificate in front of the same handlers. Cookies get `Secure`, the
LAN-only policy sees the real client (not the loopback hop behind the TLS
front), and the hop itself cannot be used to get around it."""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import time

from admin_http import SECURITY_HEADERS, AdminClient, totp
from test_admin_api import ADMIN, ADMIN_PW, setup_code


def box_tls(pochta) -> ssl.SSLContext:
    """Trusts exactly the box's (self-signed) certificate."""
    ctx = ssl.create_default_context(cafile=str(pochta.data / "tls" / "cert.pem"))
    # The certificate names the host name and localhost, not 127.0.0.1.
    ctx.check_hostname = False
    return ctx


def time_step_later() -> float:
    """A time in the next TOTP step (a code is good once)."""
    return time.time() + 30


def https_client(pochta) -> AdminClient:
    return AdminClient(pochta.addr("admin_tls"), tls=box_tls(pochta))


def test_setup_and_login_over_https(pochta):
    pochta.start()
    c = https_client(pochta)
    r = c.get("/api/setup")
    assert r.status == 200 and r.json["needed"] is True, r
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, name
    r = c.post("/api/setup", {"setup_code": setup_code(pochta), "user": ADMIN, "password": ADMIN_PW})
    assert r.status == 201, r
    assert "; Secure" in c.set_cookie and "HttpOnly" in c.set_cookie, c.set_cookie
    secret = r.json["totp_secret"]
    assert c.post("/api/totp/confirm", {"code": totp(secret)}).status == 200
    assert c.get("/api/session").json["admin"] == ADMIN
    # The HTML pages too; the browser's Origin is the https one.
    host, port = c.addr
    r = c.request("POST", "/api/logout", {}, origin=f"https://{host}:{port}")
    assert r.status == 200, r
    # Plain HTTP still works on its own port, without Secure.
    plain = AdminClient(pochta.addr("admin"))
    r = plain.post("/api/login", {"user": ADMIN, "password": ADMIN_PW, "totp": totp(secret, time_step_later())})
    assert r.status == 200, r
    assert "Secure" not in plain.set_cookie


def test_tls_and_alpn(pochta):
    pochta.start()
    host, port = pochta.addr("admin_tls")
    ctx = box_tls(pochta)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as tls:
            assert tls.version() in ("TLSv1.3", "TLSv1.2")
            assert tls.selected_alpn_protocol() == "http/1.1"
    # Plain HTTP sent to the HTTPS port gets no page, and the page keeps going.
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw.settimeout(15)
        data = raw.recv(4096)
        assert b"HTTP/1.1 200" not in data
    assert https_client(pochta).get("/api/setup").status == 200


def test_policy_sees_the_real_client(pochta):
    pochta.configure(admin={"allow_loopback": False})
    pochta.start()
    c = https_client(pochta)
    r = c.get("/api/setup")
    assert r.status == 403 and "local network" in r.json["error"], r
    # The refusal names the client's own source port, not the TLS front's
    # loopback connection to the backend.
    client_port = c.last_local_addr[1]
    log = pochta.mail_log_text()
    assert re.search(rf"admin_refused .*peer=127\.0\.0\.1:{client_port}\b", log), log[-2000:]


def test_backend_refuses_anyone_but_the_front(pochta):
    pochta.start()
    announced = {pochta.addr("admin")[1], pochta.addr("admin_tls")[1]}
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=10, check=True).stdout
    mine = [line for line in out.splitlines() if f"pid={pochta.pid}," in line]
    ports = set()
    for line in mine:
        m = re.search(r"127\.0\.0\.1:(\d+)\s", line)
        if m:
            ports.add(int(m.group(1)))
    # Every loopback port of this process that a mail service or the admin
    # page does not announce: the HTTPS front's backend must be among them.
    info_ports = {int(a.rsplit(":", 1)[1]) for v in pochta.info.values() if isinstance(v, list) for a in v}
    hidden = ports - announced - info_ports
    assert hidden, (out, pochta.info)
    for port in hidden:
        r = AdminClient(("127.0.0.1", port)).get("/api/setup")
        assert r.status == 403, (port, r)
