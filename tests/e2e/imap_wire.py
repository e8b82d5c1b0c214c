"""A deliberately plain IMAP client for the e2e tests: it sends exactly the
bytes it is given and reads responses as the server framed them, literals
included, so that tests can check every line. Plus a small parser for the
parenthesised data in responses (FETCH items, BODYSTRUCTURE, STATUS).

Every read has a deadline; nothing here waits forever.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
import zlib

from harness import ALICE, ALICE_PW, ConnectionClosed, tls_context

CRLF = b"\r\n"
LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")


class ImapConn:
    """One connection: `send` raw bytes, `response` reads one whole response
    (a line plus any literals it announces, CRLF of the last line removed)."""

    def __init__(self, addr: tuple[str, int], *, tls: bool = True, timeout: float = 10.0):
        self.timeout = timeout
        sock = socket.create_connection(addr, timeout=timeout)
        self.sock = tls_context().wrap_socket(sock) if tls else sock
        self.buf = bytearray()
        self.tag_no = 0
        self.deflate = None
        self.inflate = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def starttls(self) -> None:
        assert not self.buf, f"data after the STARTTLS reply: {bytes(self.buf)!r}"
        self.sock = tls_context().wrap_socket(self.sock)

    def start_deflate(self) -> None:
        """COMPRESS=DEFLATE (RFC 4978): raw deflate both ways from now on."""
        assert not self.buf, f"data after the COMPRESS reply: {bytes(self.buf)!r}"
        self.deflate = zlib.compressobj(wbits=-15)
        self.inflate = zlib.decompressobj(wbits=-15)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out waiting for the server")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 16)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as e:
            raise ConnectionClosed(f"connection broken: {e}") from e
        if not chunk:
            raise ConnectionClosed("server closed the connection")
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def _take_line(self, deadline: float) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > 64 << 20:
                raise AssertionError("server sent a line longer than 64 MiB")
            self._fill(deadline)

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def response(self, timeout: float | None = None) -> bytes:
        """One response with its literals, without the final CRLF."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        out = b""
        while True:
            line = self._take_line(deadline)
            assert line.endswith(CRLF), f"response line not ended by CRLF: {out + line!r}"
            out += line
            m = LITERAL_AT_END.search(line)
            if not m:
                return out[:-2]
            out += self._take(int(m.group(1)), deadline)

    def pending(self, wait: float = 0.0) -> bool:
        """Whether the server has sent something not yet read (waits up to `wait`)."""
        if self.buf:
            return True
        try:
            self._fill(time.monotonic() + wait)
        except (socket.timeout, TimeoutError):
            return False
        return True

    def closed_by_server(self, timeout: float) -> bool:
        """Reads and drops data until EOF; True if the server closed in time."""
        deadline = time.monotonic() + timeout
        self.buf.clear()
        while time.monotonic() < deadline:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return True
            except (socket.timeout, TimeoutError):
                return False
            except OSError:
                return True
            self.buf.clear()
        return False

    def next_tag(self) -> str:
        self.tag_no += 1
        return f"t{self.tag_no}"

    def until_tagged(self, tag: str, timeout: float | None = None) -> tuple[list[bytes], bytes]:
        """Reads responses up to the tagged one; returns (untagged, tagged)."""
        untagged = []
        while True:
            r = self.response(timeout)
            if r.startswith(tag.encode() + b" "):
                return untagged, r
            untagged.append(r)

    def command(self, text: bytes | str, timeout: float | None = None) -> tuple[list[bytes], bytes]:
        """Sends `TAG text` (literals must be non-synchronizing) and reads to
        the tagged response."""
        if isinstance(text, str):
            text = text.encode()
        tag = self.next_tag()
        self.send(tag.encode() + b" " + text + CRLF)
        return self.until_tagged(tag, timeout)

    def ok(self, text: bytes | str, timeout: float | None = None) -> list[bytes]:
        """A command that must succeed; returns its untagged responses."""
        untagged, tagged = self.command(text, timeout)
        status = tagged.split(b" ", 2)[1:2]
        assert status == [b"OK"], f"{text!r}: expected OK, got {tagged!r} after {untagged!r}"
        return untagged

    def greeting(self) -> bytes:
        g = self.response()
        assert g.startswith(b"* OK"), f"greeting: {g!r}"
        return g

    def login(self, user: str = ALICE, password: str = ALICE_PW) -> None:
        self.ok(f"LOGIN {quote(user)} {quote(password)}")


def connect(server, *, login: bool = True, user: str = ALICE, password: str = ALICE_PW,
            service: str = "imaps", timeout: float = 10.0) -> ImapConn:
    """A connection over implicit TLS (or plain, for service "imap"), greeted
    and, unless login=False, logged in."""
    c = ImapConn(server.addr(service), tls=service == "imaps", timeout=timeout)
    try:
        c.greeting()
        if login:
            c.login(user, password)
    except BaseException:
        c.close()
        raise
    return c


def quote(s: str | bytes) -> str:
    if isinstance(s, bytes):
        s = s.decode()
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def append(conn: ImapConn, mailbox: str, message: bytes, flags: str = "",
           date: str | None = None) -> int:
    """APPEND with a non-synchronizing literal (LITERAL+); returns the new UID
    from APPENDUID."""
    parts = [b"APPEND", quote(mailbox).encode()]
    if flags:
        parts.append(f"({flags})".encode())
    if date:
        parts.append(quote(date).encode())
    parts.append(b"{%d+}\r\n" % len(message) + message)
    untagged, tagged = conn.command(b" ".join(parts))
    m = re.search(rb"OK \[APPENDUID \d+ (\d+)\]", tagged)
    assert m, f"APPEND to {mailbox}: {tagged!r}"
    return int(m.group(1))


# ---------------------------------------------------------------------------
# Parsing response data


class Atom(str):
    """An atom or number as sent (NIL is None, strings are bytes)."""


def parse(data: bytes, pos: int = 0) -> list:
    """Parses space-separated IMAP data (atoms, numbers, quoted strings,
    literals, NIL, parenthesised lists, `[...]` kept inside atoms such as
    BODY[HEADER.FIELDS (A B)]) into Python values: Atom, bytes, None, list."""
    items, pos = _parse_seq(data, pos, None)
    return items


def _parse_seq(data: bytes, pos: int, close: bytes | None):
    items = []
    n = len(data)
    while True:
        while pos < n and data[pos:pos + 1] == b" ":
            pos += 1
        if pos >= n:
            assert close is None, f"unclosed list in {data!r}"
            return items, pos
        c = data[pos:pos + 1]
        if close is not None and c == close:
            return items, pos + 1
        if c == b"(":
            sub, pos = _parse_seq(data, pos + 1, b")")
            items.append(sub)
        elif c == b'"':
            out = bytearray()
            pos += 1
            while True:
                assert pos < n, f"unterminated quoted string in {data!r}"
                ch = data[pos:pos + 1]
                if ch == b"\\":
                    out += data[pos + 1:pos + 2]
                    pos += 2
                elif ch == b'"':
                    pos += 1
                    break
                else:
                    out += ch
                    pos += 1
            items.append(bytes(out))
        elif c == b"{":
            m = re.compile(rb"\{(\d+)\+?\}\r\n").match(data, pos)
            assert m, f"bad literal at {pos} in {data[:pos + 20]!r}"
            size = int(m.group(1))
            start = m.end()
            items.append(data[start:start + size])
            pos = start + size
        else:
            start = pos
            depth = 0
            while pos < n:
                ch = data[pos:pos + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")"):
                    break
                pos += 1
            # BODY[HEADER.FIELDS (A B)]<0> stays one atom.
            word = data[start:pos].decode("latin-1")
            items.append(None if word.upper() == "NIL" else Atom(word))


def fetch_items(response: bytes) -> tuple[int, dict]:
    """`* 3 FETCH (UID 7 FLAGS (\\Seen))` -> (3, {"UID": "7", "FLAGS": [...]})."""
    m = re.match(rb"\* (\d+) FETCH \(", response)
    assert m, f"not a FETCH response: {response[:200]!r}"
    values = parse(response, m.end() - 1)
    assert len(values) == 1 and isinstance(values[0], list), f"FETCH data: {response[:300]!r}"
    flat = values[0]
    assert len(flat) % 2 == 0, f"FETCH items do not pair up: {flat!r}"
    items = {}
    for name, value in zip(flat[0::2], flat[1::2]):
        items[str(name).upper()] = value
    return int(m.group(1)), items


def tagged_status(tagged: bytes) -> str:
    parts = tagged.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else ""


# ---------------------------------------------------------------------------
# Filling a mailbox


def deliver_many(server, messages: list[bytes], *, rcpt: str = ALICE, connections: int = 4,
                 retries: int = 20, timeout: float = 120) -> int:
    """Delivers `messages` to `rcpt` through the MX port over `connections`
    parallel SMTP sessions, the way an MTA would: a 4xx reply is retried
    (up to `retries` times per message, 0.1 s apart). Returns the number of
    4xx replies met on the way; any 5xx, or a message still refused after
    the retries, fails."""
    import smtplib
    import threading

    chunks = [messages[i::connections] for i in range(connections)]
    temp_failures = [0]
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def worker(chunk):
        try:
            with smtplib.SMTP(*server.addr("smtp"), timeout=30) as c:
                c.ehlo("load.e2e.test")
                for msg in chunk:
                    for attempt in range(retries + 1):
                        if time.monotonic() > deadline:
                            raise AssertionError(f"delivery did not finish within {timeout}s")
                        try:
                            c.sendmail("sender@remote.invalid", [rcpt], msg)
                            break
                        except smtplib.SMTPDataError as e:
                            if not 400 <= e.smtp_code < 500 or attempt == retries:
                                raise
                            with lock:
                                temp_failures[0] += 1
                            c.rset()
                            time.sleep(0.1)
        except Exception as e:  # reported by the caller's assertion
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(chunk,), daemon=True) for chunk in chunks if chunk]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 5))
    assert not any(t.is_alive() for t in threads), f"delivery threads still running after {timeout}s"
    assert not errors, f"delivery failed: {errors[:3]}"
    return temp_failures[0]
