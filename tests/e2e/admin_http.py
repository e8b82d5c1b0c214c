"""A small client for the admin page's JSON API (http.client), and RFC 6238
TOTP codes computed here with hmac/hashlib, independent of the server's
totp-rs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import ssl
import struct
import time

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def totp(secret_b32: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 §4 with HMAC-SHA-1 (RFC 4226 §5.3 dynamic truncation)."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 10**digits
    return f"{value:0{digits}d}"


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"{self.status} {self.body[:300]!r}"


class AdminClient:
    """Keeps the session cookie and CSRF token like a browser page would."""

    def __init__(self, addr: tuple[str, int], tls: ssl.SSLContext | None = None):
        """`tls` makes it talk HTTPS with that context."""
        self.addr = addr
        self.tls = tls
        self.last_local_addr: tuple[str, int] | None = None
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.set_cookie: str | None = None

    def request(self, method: str, path: str, body=None, *, csrf: str | None | bool = True,
                content_type: str = "application/json", cookie: bool = True,
                origin: str | None = None) -> Response:
        headers = {}
        if origin is not None:
            headers["Origin"] = origin
        if cookie and self.cookie:
            headers["Cookie"] = self.cookie
        if csrf is True:
            if self.csrf:
                headers["X-CSRF-Token"] = self.csrf
        elif isinstance(csrf, str):
            headers["X-CSRF-Token"] = csrf
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.tls is None:
            conn = http.client.HTTPConnection(*self.addr, timeout=30)
        else:
            conn = http.client.HTTPSConnection(*self.addr, timeout=30, context=self.tls)
        try:
            conn.connect()
            self.last_local_addr = conn.sock.getsockname()[:2]
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            resp = Response(r.status, r.headers, r.read())
        finally:
            conn.close()
        set_cookie = resp.headers.get("Set-Cookie")
        if set_cookie:
            self.set_cookie = set_cookie
            pair = set_cookie.split(";", 1)[0]
            self.cookie = None if pair.endswith("=") else pair
        if resp.headers.get("Content-Type", "").startswith("application/json"):
            token = resp.json.get("csrf_token") if isinstance(resp.json, dict) else None
            if token:
                self.csrf = token
        return resp

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body=None, **kw) -> Response:
        return self.request("POST", path, {} if body is None else body, **kw)


def logged_in(pochta, user: str = "root", password: str = "correct horse battery staple") -> AdminClient:
    """First-boot setup through the API with the setup code, then TOTP
    enrolment: a client with an administrator's session."""
    c = AdminClient(pochta.addr("admin"))
    code = (pochta.data / "setup-code.txt").read_text().strip()
    r = c.post("/api/setup", {"setup_code": code, "user": user, "password": password})
    assert r.status == 201, r
    r = c.post("/api/totp/confirm", {"code": totp(r.json["totp_secret"], time.time())})
    assert r.status == 200, r
    return c
