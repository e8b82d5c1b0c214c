"""A scripted SMTP server for queue tests: a remote MX that answers what
the test tells it to (per recipient, per attempt), records each
transaction, and can stall before its final reply so a test can kill the
sender mid-delivery. Plain text, no PIPELINING, loopback only; every
socket has a timeout.

    peer = SmtpPeer("127.0.0.4", port)
    peer.rcpt_replies["bob@b.test"] = ["451 4.3.0 try later", "250 2.1.5 ok"]
    peer.start() ... peer.wait_messages(1, timeout=10) ... peer.stop()
"""

from __future__ import annotations

import socket
import threading
import time


class SmtpPeer:
    def __init__(self, host: str, port: int, name: str = "peer.test"):
        self.host, self.port, self.name = host, port, name
        # recipient -> list of replies, one per attempt (the last repeats).
        self.rcpt_replies: dict[str, list[str]] = {}
        self.mail_reply = "250 2.1.0 ok"
        self.data_end_reply = "250 2.0.0 queued as {n}"
        # Seconds to wait before answering the final dot (first N messages).
        self.stall_before_data_reply = 0.0
        self.stall_count = 0
        self.messages: list[dict] = []  # {"from", "to", "data", "raw"}
        # Every command line received, as sent (DATA content excluded).
        self.commands: list[bytes] = []
        self.data_started = threading.Event()
        # Offer STARTTLS, then answer the handshake with bytes that are not TLS.
        self.broken_starttls = False
        self.connections = 0
        self._attempts: dict[str, int] = {}
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._sock:
            self._sock.close()

    def wait_messages(self, n: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"peer got {len(self.messages)} message(s), wanted {n} within {timeout}s")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _rcpt_reply(self, rcpt: str) -> str:
        replies = self.rcpt_replies.get(rcpt.lower(), ["250 2.1.5 ok"])
        with self._lock:
            n = self._attempts.get(rcpt.lower(), 0)
            self._attempts[rcpt.lower()] = n + 1
        return replies[min(n, len(replies) - 1)]

    def _session(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        f = conn.makefile("rb")

        def send(line: str) -> None:
            conn.sendall(line.encode() + b"\r\n")

        try:
            send(f"220 {self.name} ESMTP scripted")
            sender, rcpts = None, []
            while not self._stop.is_set():
                line = f.readline(4096)
                if not line:
                    return
                with self._lock:
                    self.commands.append(line)
                cmd = line.decode(errors="replace").strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    tls = "250-STARTTLS\r\n" if self.broken_starttls else ""
                    send(f"250-{self.name}\r\n{tls}250-8BITMIME\r\n250 SIZE 10000000")
                elif verb == "STARTTLS" and self.broken_starttls:
                    send("220 2.0.0 ready")
                    conn.recv(4096)  # the client's hello
                    conn.sendall(b"this is not a TLS server hello\r\n")
                    return
                elif verb == "MAIL":
                    sender, rcpts = cmd.split(":", 1)[1].split(">")[0].strip(" <"), []
                    send(self.mail_reply)
                elif verb == "RCPT":
                    rcpt = cmd.split(":", 1)[1].split(">")[0].strip(" <")
                    reply = self._rcpt_reply(rcpt)
                    if reply.startswith("2"):
                        rcpts.append(rcpt)
                    send(reply)
                elif verb == "DATA":
                    if not rcpts:
                        send("554 5.5.1 no valid recipients")
                        continue
                    send("354 go ahead")
                    data, raw = b"", b""
                    while True:
                        l = f.readline(1 << 20)
                        if not l:
                            return
                        raw += l
                        if l == b".\r\n":
                            break
                        data += l[1:] if l.startswith(b"..") else l
                    self.data_started.set()
                    with self._lock:
                        stall = self.stall_count > 0
                        if stall:
                            self.stall_count -= 1
                    if stall:
                        time.sleep(self.stall_before_data_reply)
                    with self._lock:
                        self.messages.append({"from": sender, "to": list(rcpts), "data": data, "raw": raw})
                        n = len(self.messages)
                    send(self.data_end_reply.format(n=n))
                elif verb == "RSET":
                    sender, rcpts = None, []
                    send("250 2.0.0 ok")
                elif verb == "QUIT":
                    send("221 2.0.0 bye")
                    return
                else:
                    send("502 5.5.2 not here")
        except OSError:
            pass
        finally:
            conn.close()
