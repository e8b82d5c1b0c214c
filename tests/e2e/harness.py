"""Helpers for the end-to-end tests: run `pochta`, talk SMTP, read the store.

Everything here is bounded in time: every wait has a deadline, every socket a
timeout. Nothing reaches beyond loopback.
"""

from __future__ import annotations

import json
import os
import poplib
import pwd
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path

# tests/e2e/harness.py -> tests/e2e -> tests -> repository root
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "pochta"

CRLF = b"\r\n"

# Test identities used by most tests.
DOMAIN = "example.test"
ALICE = "alice@example.test"
ALICE_PW = "Lime-tree-41-under"
BOB = "bob@example.test"
BOB_PW = "Blue-river-62-over"
REMOTE_DOMAIN = "remote.invalid"


def password_for(address: str) -> str:
    """A password Pochta's policy accepts (12+ characters, not the user's
    name), the same every time for the same address."""
    return "Pw-" + uuid.uuid5(uuid.NAMESPACE_URL, address).hex[:14]


def pochta_bin() -> Path:
    return Path(os.environ.get("POCHTA_BIN", str(DEFAULT_BIN))).resolve()


# ---------------------------------------------------------------------------
# Small utilities


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # A JSON string with ASCII escapes is a valid TOML basic string.
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. [queue] smarthost = { ... }
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def toml_dump(cfg: dict) -> str:
    out = []
    for key, value in cfg.items():
        if not isinstance(value, dict):
            out.append(f"{key} = {toml_value(value)}")
    for key, value in cfg.items():
        if isinstance(value, dict):
            out.append(f"\n[{key}]")
            for k, v in value.items():
                out.append(f"{k} = {toml_value(v)}")
    return "\n".join(out) + "\n"


def parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def tls_context() -> ssl.SSLContext:
    """A client context that accepts the server's self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def unique_id(prefix: str = "m") -> str:
    return f"{prefix}.{uuid.uuid4().hex}"


def make_message(
    *,
    sender: str = "sender@remote.invalid",
    to: str = ALICE,
    subject: str = "test",
    body: bytes | str = b"Hello.\r\n",
    message_id: str | None = None,
    extra_headers: list[str] = (),
) -> bytes:
    """An RFC 5322 message with CRLF line endings, ending in CRLF."""
    if message_id is None:
        message_id = f"<{unique_id()}@e2e.test>"
    if isinstance(body, str):
        body = body.encode()
    headers = [
        f"From: <{sender}>",
        f"To: <{to}>",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        "Date: Thu, 01 Jan 2026 00:00:00 +0000",
        *extra_headers,
    ]
    msg = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    if not msg.endswith(CRLF):
        msg += CRLF
    return msg


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency; `message` must end in CRLF."""
    assert message.endswith(CRLF)
    return re.sub(rb"(?m)^\.", b"..", message)


MESSAGE_ID_RE = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]*>)")


def message_ids(stored: bytes) -> list[bytes]:
    return MESSAGE_ID_RE.findall(stored)


def check_received_prefix(prefix: bytes) -> None:
    """`prefix` must be exactly one (possibly folded) Received: header."""
    assert prefix, "stored file has nothing before the sent bytes (expected a Received: header)"
    assert prefix.startswith(b"Received:"), (
        f"stored file does not start with 'Received:': {prefix[:80]!r}"
    )
    assert prefix.endswith(CRLF), f"Received header does not end with CRLF: {prefix[-80:]!r}"
    lines = prefix[:-2].split(CRLF)
    for line in lines[1:]:
        assert line[:1] in (b" ", b"\t"), (
            f"text between the Received header and the sent message is not a "
            f"folded continuation line: {line[:120]!r}\nwhole prefix: {prefix!r}"
        )
    assert b"\n" not in prefix[:-2].replace(CRLF, b""), f"bare LF in Received header: {prefix!r}"


def assert_stored_as_sent(stored: bytes, sent: bytes) -> None:
    """The stored file must be a Received header followed by exactly `sent`."""
    if not stored.endswith(sent):
        # Find where the two differ, counting from the end.
        n = 0
        while n < min(len(stored), len(sent)) and stored[-1 - n] == sent[-1 - n]:
            n += 1
        raise AssertionError(
            "stored message does not end with the bytes sent\n"
            f"  sent {len(sent)} bytes, stored {len(stored)} bytes, "
            f"common suffix {n} bytes\n"
            f"  sent near difference:   {sent[max(0, len(sent) - n - 60): len(sent) - n + 20]!r}\n"
            f"  stored near difference: {stored[max(0, len(stored) - n - 60): len(stored) - n + 20]!r}"
        )
    check_received_prefix(stored[: len(stored) - len(sent)])


# ---------------------------------------------------------------------------
# SMTP replies and a raw client


# Ends of DATA that are not CRLF.CRLF: each must never end a message (SMTP
# smuggling), as a receiver or when relaying (test_bad_input, test_queue).
SMUGGLE_ENDINGS = {
    "lf-dot-lf": b"\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "crlf-dot-lf": b"\r\n.\n",
    "cr-dot-cr": b"\r.\r",
    "cr-dot-crlf": b"\r.\r\n",
}


class Reply:
    def __init__(self, code: int, lines: list[str]):
        self.code = code
        self.lines = lines

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        if not self.lines:
            return None
        m = re.match(r"([245]\.\d{1,3}\.\d{1,3})\b", self.lines[0])
        return m.group(1) if m else None

    def __repr__(self) -> str:
        return " | ".join(f"{self.code} {line}" for line in self.lines) or str(self.code)


def check_reply(reply: Reply, code, enhanced: str | None = None, what: str = "") -> Reply:
    """Assert a reply's code.

    `code` is an int (exact), a reply class such as "5xx", or a tuple of those.
    """
    def matches(spec) -> bool:
        if isinstance(spec, str):
            return str(reply.code)[0] == spec[0]
        return reply.code == spec

    ok = any(matches(c) for c in code) if isinstance(code, (tuple, list, set)) else matches(code)
    assert ok, f"{what}: expected {code}, got {reply!r}"
    if enhanced is not None:
        assert reply.enhanced == enhanced, (
            f"{what}: expected enhanced status {enhanced}, got {reply!r}"
        )
    return reply


class ConnectionClosed(Exception):
    pass


class RawSMTP:
    """A deliberately dumb SMTP client: sends what it is told, reads replies."""

    def __init__(self, addr: tuple[str, int], *, tls: bool = False, timeout: float = 15.0):
        self.timeout = timeout
        self.sock = socket.create_connection(addr, timeout=timeout)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = bytearray()
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes | str):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout: float | None) -> None:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            chunk = self.sock.recv(65536)
        except ssl.SSLError as e:  # e.g. an abrupt close inside TLS
            raise ConnectionClosed(f"TLS error while reading: {e}") from e
        except ConnectionResetError as e:
            raise ConnectionClosed(f"connection reset: {e}") from e
        if not chunk:
            self.eof = True
            raise ConnectionClosed("server closed the connection")
        self.buf += chunk

    def read_line(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return line
            if len(self.buf) > 1 << 20:
                raise AssertionError("server sent a line longer than 1 MiB")
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for a reply line")
            self._fill(left)

    def reply(self, timeout: float | None = None) -> Reply:
        lines: list[str] = []
        code = None
        while True:
            raw = self.read_line(timeout)
            assert raw.endswith(CRLF), f"reply line not terminated by CRLF: {raw!r}"
            line = raw[:-2].decode("utf-8", "replace")
            m = re.match(r"^(\d{3})([ -]?)(.*)$", line)
            assert m, f"malformed reply line: {raw!r}"
            this = int(m.group(1))
            assert code is None or this == code, f"code changed inside a multi-line reply: {lines} {line}"
            code = this
            lines.append(m.group(3))
            if m.group(2) != "-":
                return Reply(code, lines)

    def cmd(self, line: bytes | str, timeout: float | None = None) -> Reply:
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.reply(timeout)

    def greeting(self) -> Reply:
        return check_reply(self.reply(), 220, what="greeting")

    def ehlo(self, name: str = "client.e2e.test") -> Reply:
        return check_reply(self.cmd(f"EHLO {name}"), 250, what="EHLO")

    def starttls(self) -> None:
        check_reply(self.cmd("STARTTLS"), 220, what="STARTTLS")
        assert not self.buf, f"server sent data after its STARTTLS reply: {bytes(self.buf)!r}"
        self.sock = tls_context().wrap_socket(self.sock)

    def auth_plain(self, user: str, password: str) -> Reply:
        import base64

        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f"AUTH PLAIN {token}")

    def data(self, message: bytes, timeout: float | None = None) -> Reply:
        """Send DATA, the dot-stuffed message and the final dot; return the last reply."""
        r = self.cmd("DATA")
        check_reply(r, 354, what="DATA")
        self.send(dot_stuff(message) + b".\r\n")
        return self.reply(timeout)

    def wait_closed(self, timeout: float) -> bool:
        """Read (and drop) until EOF; True if the server closed within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._fill(max(0.01, deadline - time.monotonic()))
            except ConnectionClosed:
                return True
            except (socket.timeout, TimeoutError):
                return False
            except OSError:
                return True
        return False


def ehlo_keywords(reply: Reply) -> dict[str, str]:
    """EHLO reply lines (after the greeting line) as {KEYWORD: params}."""
    out = {}
    for line in reply.lines[1:]:
        word, _, params = line.partition(" ")
        out[word.upper()] = params
    return out


# ---------------------------------------------------------------------------
# Watching the server's memory


class RssSampler(threading.Thread):
    """Samples VmRSS of a process every few milliseconds; keeps the maximum in KiB."""

    def __init__(self, pid: int, interval: float = 0.02):
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.max_kib = 0
        self.samples = 0
        self._halt = threading.Event()

    def read(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def run(self):
        while not self._halt.is_set():
            kib = self.read()
            if kib is not None:
                self.max_kib = max(self.max_kib, kib)
                self.samples += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(5)


# ---------------------------------------------------------------------------
# The server under test


def default_config() -> dict:
    return {
        "hostname": "mx.test.local",
        "listen": {
            "smtp": ["127.0.0.1:0"],
            "submission": ["127.0.0.1:0"],
            "submissions": ["127.0.0.1:0"],
            "pop3": ["127.0.0.1:0"],
            "pop3s": ["127.0.0.1:0"],
            "imap": ["127.0.0.1:0"],
            "imaps": ["127.0.0.1:0"],
        },
        "server": {"shutdown_grace_secs": 5},
        "admin": {"listen": ["127.0.0.1:0"], "listen_tls": ["127.0.0.1:0"]},
        # SPF/DKIM/DMARC need a DNS server; tests that check them start
        # dnsmasq and turn them on (test_mail_auth.py). Elsewhere the
        # system resolver, unreachable here, would only add timeouts.
        "auth": {"checks": False},
        # Queued mail stays queued (tests look at it; remote.invalid has no
        # MX); tests of delivery (test_queue.py) set hold = false.
        "queue": {"hold": True},
        # Backups run when a test says so (`pochta backup now`); the daily
        # schedule would start one of its own if a test ran at its hour.
        # test_backup.py's schedule test turns it on.
        "system": {"backup_schedule": False},
    }


def traversable(path: Path) -> None:
    """Lets other users pass through `path` and the folders above it.

    Run as root, pochta serves as the `pochta` user, which must reach its
    data folder; pytest makes its temporary folders (/tmp/pytest-of-root/...)
    private to root. Only the search bit is added: nothing becomes listable.
    """
    if os.geteuid() != 0:
        return
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if mode & 0o011 != 0o011:
            os.chmod(p, (mode & 0o7777) | 0o011)


class Pochta:
    """One pochta installation: a data folder, a config file, a server process."""

    def __init__(self, root: Path):
        self.bin = pochta_bin()
        self.root = root
        self.data = root / "data"
        root.mkdir(parents=True, exist_ok=True)
        traversable(root)
        self.config_path = root / "pochta.toml"
        self.config = default_config()
        self.write_config()
        # Only `serve` and `init` make a data folder; the CLI needs one.
        self.cli("init")
        self.proc: subprocess.Popen | None = None
        self.all_procs: list[subprocess.Popen] = []
        self.info: dict | None = None
        self.starts = 0
        self.logs: list[Path] = []
        # Extra environment for the server process (e.g. SSL_CERT_FILE).
        self.env: dict[str, str] = {}
        # A network namespace to run the server in (test_mdns.py); `ip netns
        # exec` execs, so the process is still the one started.
        self.netns: str | None = None

    # -- configuration ----------------------------------------------------

    def configure(self, **sections) -> None:
        """Merge settings into the config and rewrite the file.

        configure(limits={"max_recipients": 3}, hostname="x"); a value of None
        removes the key.
        """
        for key, value in sections.items():
            if isinstance(value, dict):
                table = self.config.setdefault(key, {})
                for k, v in value.items():
                    if v is None:
                        table.pop(k, None)
                    else:
                        table[k] = v
            elif value is None:
                self.config.pop(key, None)
            else:
                self.config[key] = value
        self.write_config()

    def write_config(self, text: str | None = None) -> None:
        self.config_path.write_text(toml_dump(self.config) if text is None else text)

    @property
    def serve_json(self) -> Path:
        return self.data / "run" / "serve.json"

    @property
    def db_path(self) -> Path:
        return self.data / "pochta.db"

    @property
    def mail_log(self) -> Path:
        return self.data / "log" / "mail.log"

    def mail_log_text(self) -> str:
        try:
            return self.mail_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- admin CLI --------------------------------------------------------

    def cli(self, command: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """Run `pochta <command words> --data DIR <args>`."""
        argv = [str(self.bin), *command.split(), "--data", str(self.data), *args]
        try:
            res = subprocess.run(argv, input=input, capture_output=True, text=True,
                                 timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"{' '.join(argv)} did not finish within {timeout}s") from e
        if check:
            assert res.returncode == 0, (
                f"`{' '.join(argv)}` exited {res.returncode}\n"
                f"stdout: {res.stdout}\nstderr: {res.stderr}"
            )
        return res

    def cli_json(self, command: str, *args: str):
        res = self.cli(command, *args, "--json")
        try:
            return json.loads(res.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"`pochta {command} {' '.join(args)} --json` printed non-JSON: {res.stdout!r}") from e

    def add_domain(self, domain: str) -> None:
        self.cli("domain add", domain)

    def add_account(self, address: str, password: str, quota: str | None = None) -> None:
        extra = ["--quota", quota] if quota else []
        self.cli("account add", address, "--password-stdin", *extra, input=password + "\n")

    def add_alias(self, address: str, *targets: str) -> None:
        self.cli("alias add", address, *targets)

    def setup_basic(self) -> None:
        """example.test with alice and bob."""
        self.add_domain(DOMAIN)
        self.add_account(ALICE, ALICE_PW)
        self.add_account(BOB, BOB_PW)

    def status(self) -> dict:
        return self.cli_json("status")

    def queue(self) -> list[dict]:
        return self.cli_json("queue list")

    def mailbox(self, address: str, folder: str = "INBOX") -> list[dict]:
        entries = self.cli_json("mailbox show", address, "--folder", folder)
        assert isinstance(entries, list), f"mailbox show --json did not print a list: {entries!r}"
        return entries

    def messages(self, address: str, folder: str = "INBOX") -> list[bytes]:
        """The stored files of a folder, in UID order."""
        entries = sorted(self.mailbox(address, folder), key=lambda e: e["uid"])
        out = []
        for e in entries:
            path = Path(e["path"])
            assert path.is_absolute(), f"mailbox show gave a relative path: {e!r}"
            out.append(path.read_bytes())
        return out

    def wait_messages(self, address: str, count: int, timeout: float = 10,
                      folder: str = "INBOX") -> list[bytes]:
        """Wait until a folder holds at least `count` messages; return them all."""
        found: list[bytes] = []

        def enough():
            nonlocal found
            found = self.messages(address, folder)
            return len(found) >= count

        try:
            wait_until(enough, timeout, f"{count} message(s) in {address}/{folder}", interval=0.2)
        except AssertionError:
            raise AssertionError(
                f"expected {count} message(s) in {address}/{folder}, found {len(found)} after {timeout}s"
            )
        return found

    def find_message(self, address: str, marker: bytes, timeout: float = 10) -> bytes:
        """The one stored message in `address` INBOX that contains `marker`."""
        hits: list[bytes] = []

        def present():
            nonlocal hits
            hits = [m for m in self.messages(address) if marker in m]
            return hits

        try:
            wait_until(present, timeout, f"message {marker!r} in {address}", interval=0.2)
        except AssertionError:
            raise AssertionError(f"message containing {marker!r} not found in {address} INBOX after {timeout}s")
        assert len(hits) == 1, f"message {marker!r} stored {len(hits)} times in {address}"
        return hits[0]

    # -- the server process -----------------------------------------------

    def start(self, timeout: float = 20) -> dict:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        # serve.json may be stale after a SIGKILL: remove it and wait for a fresh one.
        self.serve_json.unlink(missing_ok=True)
        # Again: another pytest session starting meanwhile makes
        # /tmp/pytest-of-root private to root once more.
        traversable(self.root)
        self._key_files_to_server()
        self.starts += 1
        log_path = self.root / f"serve-{self.starts}.log"
        self.logs.append(log_path)
        env = dict(os.environ, RUST_BACKTRACE="1", **self.env)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*prefix, str(self.bin), "serve", "--data", str(self.data), "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=env,
            )
        self.all_procs.append(self.proc)
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"pochta serve exited with {rc} before writing serve.json\n{self.log_tail()}"
                )
            info = self._read_serve_json()
            if info is not None:
                assert info.get("pid") == self.proc.pid, (
                    f"serve.json pid {info.get('pid')} is not the started process {self.proc.pid}: {info}"
                )
                for key in ("smtp", "submission", "submissions"):
                    assert isinstance(info.get(key), list), f"serve.json has no list {key!r}: {info}"
                self.info = info
                return info
            if time.monotonic() >= deadline:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(
                    f"serve.json did not appear within {timeout}s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _key_files_to_server(self) -> None:
        """A certificate and key of the owner's own, outside the data folder,
        must be readable by the user the server runs as (README,
        "Privileges"): as an operator would, give them to it."""
        if os.geteuid() != 0:
            return
        try:
            user = pwd.getpwnam("pochta")
        except KeyError:
            return
        for key in ("cert_file", "key_file"):
            name = self.config.get("tls", {}).get(key)
            path = Path(name) if name else None
            if path is not None and path.is_absolute() and path.exists():
                os.chown(path, user.pw_uid, user.pw_gid)

    def _read_serve_json(self) -> dict | None:
        try:
            return json.loads(self.serve_json.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def addr(self, service: str = "smtp") -> tuple[str, int]:
        assert self.info is not None, "server not started"
        addrs = self.info[service]
        assert addrs, f"serve.json lists no {service} address: {self.info}"
        return parse_addr(addrs[0])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float | None = None) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if timeout is None:
            timeout = self.config.get("server", {}).get("shutdown_grace_secs", 10) + 10
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"server did not exit within {timeout}s of SIGTERM\n{self.log_tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def restart(self) -> dict:
        rc = self.stop()
        assert rc == 0, f"graceful stop exited {rc}\n{self.log_tail()}"
        return self.start()

    def log_tail(self, n: int = 60) -> str:
        out = []
        for p in self.logs[-2:]:
            try:
                lines = p.read_text(errors="replace").splitlines()[-n:]
            except FileNotFoundError:
                continue
            out.append(f"--- {p.name} (last {len(lines)} lines) ---")
            out.extend(lines)
        return "\n".join(out)

    def close(self) -> None:
        for proc in self.all_procs:
            if proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass

    # -- clients ----------------------------------------------------------

    def raw(self, service: str = "smtp", *, tls: bool = False, timeout: float = 15) -> RawSMTP:
        return RawSMTP(self.addr(service), tls=tls, timeout=timeout)

    def smtp(self, service: str = "smtp", timeout: float = 15) -> smtplib.SMTP:
        host, port = self.addr(service)
        if service == "submissions":
            return smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context())
        return smtplib.SMTP(host, port, timeout=timeout)

    def submit_client(self, user: str, password: str, *, service: str = "submission",
                      mechanism: str = "PLAIN", initial_response: bool = True) -> smtplib.SMTP:
        """An smtplib client that did STARTTLS (unless implicit TLS) and AUTH."""
        s = self.smtp(service)
        try:
            s.ehlo("client.e2e.test")
            if service == "submission":
                s.starttls(context=tls_context())
                s.ehlo("client.e2e.test")
            s.user, s.password = user, password
            auth_object = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mechanism]
            code, resp = s.auth(mechanism, auth_object, initial_response_ok=initial_response)
            assert code == 235, f"AUTH {mechanism} as {user}: expected 235, got {code} {resp!r}"
        except BaseException:
            s.close()
            raise
        return s

    def pop3(self, *, implicit_tls: bool = False, stls: bool = True,
             timeout: float = 15) -> poplib.POP3:
        """A poplib client: on the POP3 port after STLS (unless stls=False),
        or on the POP3S port with implicit TLS."""
        if implicit_tls:
            host, port = self.addr("pop3s")
            return poplib.POP3_SSL(host, port, timeout=timeout, context=tls_context())
        host, port = self.addr("pop3")
        c = poplib.POP3(host, port, timeout=timeout)
        if stls:
            try:
                c.stls(context=tls_context())
            except BaseException:
                c.close()
                raise
        return c

    def pop3_login(self, user: str, password: str, *, implicit_tls: bool = False) -> poplib.POP3:
        """A poplib client over TLS, logged in with USER and PASS."""
        c = self.pop3(implicit_tls=implicit_tls)
        try:
            c.user(user)
            resp = c.pass_(password)
            assert resp.startswith(b"+OK"), f"PASS as {user}: {resp!r}"
        except BaseException:
            c.close()
            raise
        return c

    def deliver_mx(self, rcpt: str, message: bytes | None = None,
                   sender: str = "sender@remote.invalid") -> bytes:
        """Deliver one message through the MX port with a raw client; return the bytes sent."""
        if message is None:
            message = make_message(sender=sender, to=rcpt, subject="still serving")
        with self.raw("smtp") as c:
            c.greeting()
            c.ehlo()
            check_reply(c.cmd(f"MAIL FROM:<{sender}>"), 250, what="MAIL FROM")
            check_reply(c.cmd(f"RCPT TO:<{rcpt}>"), 250, what=f"RCPT TO:<{rcpt}>")
            check_reply(c.data(message), 250, what="end of DATA")
            c.cmd("QUIT")
        return message

    def assert_still_serves(self, rcpt: str = ALICE) -> None:
        """A fresh, well-behaved client can still deliver a message."""
        assert self.running(), f"server is no longer running\n{self.log_tail()}"
        marker = unique_id("alive")
        msg = make_message(to=rcpt, subject=marker, message_id=f"<{marker}@e2e.test>")
        self.deliver_mx(rcpt, msg)
        stored = self.find_message(rcpt, marker.encode())
        assert_stored_as_sent(stored, msg)
