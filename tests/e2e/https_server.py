"""A small HTTPS server on loopback for tests: serves fixed files (an
MTA-STS policy, RFC 8461 §3.3) with a certificate from the test CA, and
records what was asked for.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path


class HttpsServer:
    def __init__(self, host: str, port: int, cert: Path, key: Path):
        self.files: dict[str, tuple[int, str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []  # (Host header, path)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.headers.get("Host", ""), self.path))
                status, ctype, body = outer.files.get(self.path, (404, "text/plain", b"not found\n"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, path: str, body: str | bytes, status: int = 200, ctype: str = "text/plain") -> None:
        self.files[path] = (status, ctype, body.encode() if isinstance(body, str) else body)

    def start(self) -> "HttpsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
