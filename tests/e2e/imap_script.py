r"""Scripted IMAP sessions, written like the examples in the RFCs, run against
a real server and checked response by response.

A script file (`imap_scripts/*.imap`) holds scenarios. Each starts with a
line `=== id: title`; `#` lines are comments. Inside a scenario:

    C: a1 SELECT INBOX           client line, sent with CRLF
    C< NAME                      the bytes of fixture message NAME, no CRLF
    S: * 2 EXISTS                the next server response, exactly
    S: * OK [UIDVALIDITY {{v=\d+}}] {{}}    ... with regex parts
    S~ * 0 RECENT                a run of S~ lines matches in any order
    S? * OK [HIGHESTMODSEQ {{\d+}}] {{}}    optional, any order within its run
    ! directive args             see below

`S:` lines are matched against whole responses. A response that carries a
literal continues on the next `S:` lines exactly as it looks on the wire:

    S: * 1 FETCH (BODY[TEXT] {13}
    S: Hello there
    S: )

Inside `S` lines, `{{regex}}` is a regular expression (`{{}}` is any text)
and `{{name=regex}}` also captures the match as `${name}`; `${name}` is
replaced in both `C` and `S` lines (in `S` lines as plain text).
Predefined: `${user}`, `${password}`, `${len:user}`, `${len:password}`,
`${plain}` (base64 of the SASL PLAIN response) and `${size:NAME}` (a
fixture's size). `{{has:\Seen \Deleted}}` inside a parenthesised list
matches any list holding at least those entries.

Where the RFCs fix no order, none is required: flag lists (`FLAGS (...)`,
`PERMANENTFLAGS (...)`) and LIST/LSUB attributes compare as sets, and the
items of FETCH and STATUS responses as maps. A FETCH response may carry a
UID item nobody asked for (servers add it to unsolicited FETCH responses).
Everything else is compared exactly.

After a `C` line or a directive followed by `S` lines, responses are read
up to the tagged response whose tag the last expected line names, or up to
a `+` continuation; with only untagged lines expected, as many responses
as expected. Every response read must be expected; none may be missing.

Directives:

    ! login [USER PASSWORD]      LOGIN outside the transcript (default alice)
    ! append MAILBOX NAME [(FLAGS)] ["DATE"]   from a second connection
    ! deliver NAME               over SMTP to alice (the server adds Received:)
    ! session NAME               switch to another connection (made on first use)
    ! starttls                   start TLS on the current connection
    ! closed                     the server must close the current connection
    ! silent SECONDS             nothing more may arrive within SECONDS
    ! service imap               connect the first session on the plain port
    ! quota SIZE                 set alice's quota with the admin CLI
    ! compress                   deflate both ways from now on (RFC 4978)

Scenarios run each on a fresh server, so UIDs and counts are known.
"""

from __future__ import annotations

import base64
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import ALICE, ALICE_PW, ConnectionClosed
from imap_wire import ImapConn, append, connect, fetch_items, parse

SCRIPT_DIR = Path(__file__).resolve().parent / "imap_scripts"
MESSAGE_DIR = SCRIPT_DIR / "messages"


def fixture(name: str) -> bytes:
    """A message from imap_scripts/messages/NAME.eml. The files are kept with
    LF line ends; the message is their text with CRLF line ends."""
    text = (MESSAGE_DIR / f"{name}.eml").read_bytes()
    assert b"\r" not in text, f"{name}.eml must use LF line ends in the repository"
    return text.replace(b"\n", b"\r\n")


@dataclass
class Line:
    kind: str  # "C:", "C<", "S:", "S~", "S?", "!"
    text: str
    lineno: int


@dataclass
class Scenario:
    id: str
    title: str
    file: str
    lines: list[Line] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"{self.file}::{self.id}"


def load_scenarios(path: Path) -> list[Scenario]:
    scenarios: list[Scenario] = []
    current = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        if raw.startswith("==="):
            m = re.match(r"===\s*([\w.-]+):\s*(.*)$", raw)
            assert m, f"{path.name}:{n}: scenario header must be '=== id: title'"
            current = Scenario(m.group(1), m.group(2), path.name)
            scenarios.append(current)
            continue
        if not raw.strip() or raw.startswith("#"):
            continue
        kind = raw[:2]
        assert kind in ("C:", "C<", "S:", "S~", "S?", "! "), f"{path.name}:{n}: cannot read {raw!r}"
        assert current is not None, f"{path.name}:{n}: line before the first '=== id: title'"
        # One space after the marker belongs to the syntax; the rest is the line.
        text = raw[2:] if kind == "! " else raw[3:]
        current.lines.append(Line(kind.strip(), text, n))
    ids = [s.id for s in scenarios]
    assert len(ids) == len(set(ids)), f"{path.name}: duplicate scenario ids"
    return scenarios


def all_scenarios() -> list[Scenario]:
    out = []
    for path in sorted(SCRIPT_DIR.glob("*.imap")):
        out.extend(load_scenarios(path))
    return out


# ---------------------------------------------------------------------------
# Matching

PLACEHOLDER = re.compile(r"\{\{(?:(\w+)=)?(.*?)\}\}")
VARIABLE = re.compile(r"\$\{([\w:.-]+)\}")
FLAG_LIST = re.compile(r"((?:PERMANENT)?FLAGS \(|^\* (?:LIST|LSUB) \()([^()]*)(\))")


def has_regex(tokens: str) -> str:
    """Regex for a parenthesised list's contents holding at least `tokens`."""
    ahead = "".join(rf"(?=(?:[^)]*\s)?{re.escape(t)}(?=[\s)]|$))" for t in tokens.split())
    return ahead + r"[^)]*"


def sort_flag_lists(text: str) -> str:
    def fix(m):
        if "{{" in m.group(2):
            return m.group(0)
        return m.group(1) + " ".join(sorted(m.group(2).split(), key=str.lower)) + m.group(3)

    return FLAG_LIST.sub(fix, text)


def as_map(response: bytes):
    """A FETCH or STATUS response as comparable data (items as a map, flags
    sorted), or None for other responses."""
    if re.match(rb"\* \d+ FETCH \(", response):
        try:
            seq, items = fetch_items(response)
        except AssertionError:
            return None
        if isinstance(items.get("FLAGS"), list):
            items["FLAGS"] = sorted((str(f).lower() for f in items["FLAGS"]))
        return "FETCH", seq, items
    if response.startswith(b"* STATUS "):
        try:
            values = parse(response[len(b"* STATUS "):])
        except AssertionError:
            return None
        if len(values) != 2 or not isinstance(values[1], list) or len(values[1]) % 2:
            return None
        name = values[0] if isinstance(values[0], bytes) else str(values[0]).encode()
        pairs = values[1]
        return "STATUS", name, {str(k).upper(): v for k, v in zip(pairs[0::2], pairs[1::2])}
    return None


def same_data(expected: bytes, actual: bytes) -> bool:
    e, a = as_map(expected), as_map(actual)
    if e is None or a is None or e[:2] != a[:2]:
        return False
    if e[0] == "FETCH" and "UID" in a[2] and "UID" not in e[2]:
        a = (a[0], a[1], {k: v for k, v in a[2].items() if k != "UID"})
    return e == a


class Pattern:
    def __init__(self, text: str, kind: str, lineno: int):
        self.text = text  # variables already substituted
        self.kind = kind
        self.lineno = lineno
        self.has_regex = PLACEHOLDER.search(text) is not None

    @property
    def required(self) -> bool:
        return self.kind != "S?"

    def match(self, response: bytes, env: dict) -> bool:
        actual = sort_flag_lists(response.decode("utf-8", "surrogateescape"))
        expected = sort_flag_lists(self.text)
        if not self.has_regex:
            if actual == expected:
                return True
            return same_data(expected.encode("utf-8", "surrogateescape"), response)
        regex, names = [], []
        pos = 0
        for m in PLACEHOLDER.finditer(expected):
            regex.append(re.escape(expected[pos:m.start()]))
            body = m.group(2) or ".*"
            if body.startswith("has:"):
                body = has_regex(body[4:])
            if m.group(1):
                regex.append(f"(?P<{m.group(1)}>{body})")
                names.append(m.group(1))
            else:
                regex.append(f"(?:{body})")
            pos = m.end()
        regex.append(re.escape(expected[pos:]))
        found = re.fullmatch("".join(regex), actual, re.S)
        if not found and actual.startswith("* ") and " FETCH (" in actual and "UID" not in expected:
            # A UID item nobody asked for is allowed (see the module doc).
            without_uid = re.sub(r"(?<=FETCH \()UID \d+ | UID \d+(?=[ )])", "", actual, count=1)
            found = re.fullmatch("".join(regex), without_uid, re.S)
        if not found:
            return False
        for name in names:
            env[name] = found.group(name)
        return True

    def tag(self) -> str | None:
        word = self.text.split(" ", 1)[0]
        if word in ("*", "+") or "{{" in word or not word:
            return None
        return word


def group_expected(lines: list[Line], env: dict) -> list[Pattern]:
    """Joins S lines that carry a literal into one pattern per response."""
    out: list[Pattern] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        text = substitute(line.text, env, escape=True)
        parts = [text]
        need = literal_size(text)
        while need is not None:
            i += 1
            assert i < len(lines) and lines[i].kind == line.kind, (
                f"line {line.lineno}: literal of {need} bytes runs past the expected lines")
            nxt = substitute(lines[i].text, env, escape=True)
            parts.append(nxt)
            size = len(nxt.encode("utf-8", "surrogateescape")) + 2
            if need == size:
                # The literal ends with this line's CRLF: one more line follows.
                i += 1
                assert i < len(lines), f"line {line.lineno}: nothing after the literal"
                rest = substitute(lines[i].text, env, escape=True)
                parts.append(rest)
                need = literal_size(rest)
            elif need < size - 2:
                need = literal_size(nxt.encode("utf-8", "surrogateescape")[need:].decode(
                    "utf-8", "surrogateescape"))
            elif need > size:
                need -= size
            else:
                raise AssertionError(f"line {lines[i].lineno}: a literal cannot end inside CRLF")
        out.append(Pattern("\r\n".join(parts), line.kind, line.lineno))
        i += 1
    return out


def literal_size(text: str) -> int | None:
    m = re.search(r"\{(\d+)\+?\}$", text)
    return int(m.group(1)) if m else None


def substitute(text: str, env: dict, *, escape: bool) -> str:
    """Replaces ${name}; in S lines the value is literal text, not regex."""

    def value(m):
        name = m.group(1)
        assert name in env, f"${{{name}}} is not defined (have {sorted(env)})"
        return str(env[name])

    return VARIABLE.sub(value, text)


# ---------------------------------------------------------------------------
# Running


class Runner:
    def __init__(self, server, scenario: Scenario, env: dict | None = None):
        self.server = server
        self.scenario = scenario
        self.env = {"user": ALICE, "password": ALICE_PW}
        self.env.update(env or {})
        self.sessions: dict[str, ImapConn] = {}
        self.current = "main"
        self.transcript: list[str] = []
        self.service = "imaps"

    # -- connections ---------------------------------------------------

    @property
    def conn(self) -> ImapConn:
        if self.current not in self.sessions:
            c = ImapConn(self.server.addr(self.service), tls=self.service == "imaps", timeout=20)
            self.sessions[self.current] = c
            greeting = c.response()
            self.log(f"S: {greeting.decode(errors='replace')}")
            self.greeting = greeting
        return self.sessions[self.current]

    def close(self) -> None:
        for c in self.sessions.values():
            c.close()

    def log(self, text: str) -> None:
        prefix = "" if self.current == "main" else f"[{self.current}] "
        self.transcript.append(prefix + text)

    def fail(self, why: str) -> None:
        tail = "\n".join(self.transcript[-60:])
        raise AssertionError(f"{self.scenario!r} ({self.scenario.title}): {why}\n--- transcript ---\n{tail}")

    # -- the script ----------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.close()

    def _run(self) -> None:
        lines = self.scenario.lines
        i = 0
        # S lines before the first C line are checked against the greeting.
        if lines and lines[0].kind.startswith("S"):
            j = i
            while j < len(lines) and lines[j].kind.startswith("S"):
                j += 1
            pats = group_expected(lines[i:j], self.env)
            self.conn  # connect, read the greeting
            self.check([self.greeting], pats, "greeting")
            i = j
        while i < len(lines):
            line = lines[i]
            if line.kind == "!":
                self.directive(line)
            elif line.kind in ("C:", "C<"):
                self.send(line)
            else:
                self.fail(f"line {line.lineno}: expected lines without a client line before them")
            # The S lines that follow (none while literal data is still to
            # come) are this step's responses.
            i += 1
            j = i
            while j < len(lines) and lines[j].kind.startswith("S"):
                j += 1
            if j > i:
                self.expect(group_expected(lines[i:j], self.env), f"line {line.lineno}")
            i = j
        # Nothing may be left unread on any connection.
        for name, c in self.sessions.items():
            try:
                extra = c.pending(0.02)
            except ConnectionClosed:
                extra = bool(c.buf)
            if extra:
                self.fail(f"session {name}: unexpected data at the end: {bytes(c.buf)!r}")

    def send(self, line: Line) -> None:
        conn = self.conn  # connects (and logs the greeting) first
        if line.kind == "C<":
            data = self.fixture_bytes(line.text.strip())
            self.log(f"C< [{line.text.strip()}: {len(data)} bytes]")
        else:
            text = substitute(line.text, self.env, escape=False)
            data = text.encode("utf-8", "surrogateescape") + b"\r\n"
            self.log(f"C: {text}")
        try:
            conn.send(data)
        except OSError as e:
            self.fail(f"line {line.lineno}: cannot send: {e}")

    def fixture_bytes(self, name: str) -> bytes:
        return fixture(name)

    def expect(self, pats: list[Pattern], where: str) -> None:
        last = pats[-1]
        end_tag = last.tag() if last.kind == "S:" else None
        continuation = last.kind == "S:" and last.text.startswith("+")
        received: list[bytes] = []
        required = sum(1 for p in pats if p.required)
        while True:
            try:
                r = self.conn.response()
            except (socket.timeout, TimeoutError):
                self.fail(f"{where}: timed out waiting; expected\n  " +
                          "\n  ".join(p.text for p in pats) + "\nreceived\n  " +
                          "\n  ".join(x.decode(errors="replace") for x in received))
            except ConnectionClosed as e:
                self.fail(f"{where}: {e}; received so far {received!r}")
            self.log(f"S: {r.decode(errors='replace')}")
            received.append(r)
            if end_tag is not None and r.startswith(end_tag.encode() + b" "):
                break
            if continuation and r.startswith(b"+"):
                break
            if end_tag is None and not continuation and len(received) >= required:
                while self.conn.pending(0.05) and len(received) < len(pats):
                    r = self.conn.response()
                    self.log(f"S: {r.decode(errors='replace')}")
                    received.append(r)
                break
        self.check(received, pats, where)

    def check(self, received: list[bytes], pats: list[Pattern], where: str) -> None:
        k = 0  # next received response
        p = 0
        while p < len(pats):
            if pats[p].kind == "S:":
                if k >= len(received):
                    self.fail(f"{where}: missing response (script line {pats[p].lineno}): {pats[p].text!r}")
                if not pats[p].match(received[k], self.env):
                    self.fail(f"{where}: script line {pats[p].lineno}\n  expected {pats[p].text!r}\n"
                              f"  received {received[k].decode(errors='replace')!r}")
                k += 1
                p += 1
                continue
            # A run of S~ / S? lines: any order.
            run = []
            while p < len(pats) and pats[p].kind in ("S~", "S?"):
                run.append(pats[p])
                p += 1
            matched = [False] * len(run)
            while k < len(received):
                for n, pat in enumerate(run):
                    if not matched[n] and pat.match(received[k], self.env):
                        matched[n] = True
                        break
                else:
                    break
                k += 1
            for n, pat in enumerate(run):
                if pat.required and not matched[n]:
                    self.fail(f"{where}: no response matched (script line {pat.lineno}) {pat.text!r}")
        if k < len(received):
            self.fail(f"{where}: unexpected response {received[k].decode(errors='replace')!r}")

    def directive(self, line: Line) -> None:
        words = line.text.split()
        name, args = words[0], words[1:]
        if name == "login":
            user, password = (args + [ALICE, ALICE_PW][len(args):])[:2]
            self.conn.login(user, password)
            self.log(f"! login {user}")
        elif name == "service":
            assert not self.sessions, "! service must come before the first connection"
            self.service = args[0]
        elif name == "session":
            self.current = args[0]
        elif name == "starttls":
            self.conn.starttls()
            self.log("! starttls")
        elif name == "append":
            mailbox, fixture_name = args[0], args[1]
            rest = line.text.split(None, 3)[3:] or [""]
            m = re.match(r'\s*(\([^)]*\))?\s*("([^"]*)")?\s*$', rest[0])
            assert m, f"line {line.lineno}: ! append MAILBOX NAME [(FLAGS)] [\"DATE\"]"
            flags = (m.group(1) or "()")[1:-1]
            with connect(self.server, timeout=20) as side:
                uid = append(side, mailbox, self.fixture_bytes(fixture_name), flags, m.group(3))
            self.log(f"! append {mailbox} {fixture_name} -> UID {uid}")
        elif name == "deliver":
            self.server.deliver_mx(ALICE, self.fixture_bytes(args[0]))
            self.log(f"! deliver {args[0]}")
        elif name == "closed":
            if not self.conn.closed_by_server(5):
                self.fail(f"line {line.lineno}: the server did not close the connection")
            self.log("! closed")
            del self.sessions[self.current]
        elif name == "silent":
            wait = float(args[0])
            if self.conn.pending(wait):
                r = self.conn.response()
                self.fail(f"line {line.lineno}: unexpected response {r!r}")
        elif name == "sleep":
            time.sleep(float(args[0]))
        elif name == "quota":
            self.server.cli("account quota", ALICE, args[0])
            self.log(f"! quota {args[0]}")
        elif name == "compress":
            self.conn.start_deflate()
            self.log("! compress")
        else:
            raise AssertionError(f"line {line.lineno}: unknown directive {name!r}")


def fixture_sizes() -> dict:
    return {f"size:{p.stem}": len(fixture(p.stem)) for p in MESSAGE_DIR.glob("*.eml")}


def run_scenario(server, scenario: Scenario, env: dict | None = None) -> None:
    merged = fixture_sizes()
    merged.update({
        "len:user": len(ALICE.encode()),
        "len:password": len(ALICE_PW.encode()),
        "plain": base64.b64encode(f"\0{ALICE}\0{ALICE_PW}".encode()).decode(),
    })
    merged.update(env or {})
    Runner(server, scenario, merged).run()
