"""Concurrency: several IMAP sessions on one mailbox while mail arrives and
messages are expunged. Each watching session keeps its own model of the
sequence-number -> UID map from nothing but the untagged EXISTS, EXPUNGE
and FETCH responses it receives (RFC 3501 §7.3.1, §7.4.1, §2.3.1.2), and
checks at every step:

- EXISTS never shrinks the mailbox (only EXPUNGE does);
- EXPUNGE and FETCH name sequence numbers that exist;
- UIDs are strictly ascending in sequence order, a known message never
  changes its UID, and no UID shows up twice (an expunged UID never comes
  back; a new message never reuses a UID).

At the end the model must equal a fresh `FETCH 1:* (UID)` and
`UID SEARCH ALL` of the same session, and all sessions must agree.
Session A waits in IDLE, session B polls with NOOP, session C expunges and
flags; a thread delivers over SMTP. Everything is bounded in time.
"""

from __future__ import annotations

import random
import re
import smtplib
import threading
import time

from harness import ALICE, make_message
from imap_wire import append, connect, deliver_many, fetch_items

RUN_SECONDS = 10
SEED_MESSAGES = 20


class ViewError(AssertionError):
    pass


class View:
    """One session's picture of the selected mailbox."""

    def __init__(self, name: str):
        self.name = name
        self.uids: list[int | None] = []  # by sequence number - 1; None = UID not learnt yet
        self.ever: set[int] = set()  # every UID this session has learnt
        self.expunged: set[int] = set()
        self.log: list[str] = []

    def fail(self, why: str):
        tail = "\n".join(self.log[-30:])
        raise ViewError(f"session {self.name}: {why}\nlast responses:\n{tail}")

    def apply(self, r: bytes) -> None:
        self.log.append(r.decode(errors="replace")[:200])
        if m := re.fullmatch(rb"\* (\d+) EXISTS", r):
            n = int(m.group(1))
            if n < len(self.uids):
                self.fail(f"EXISTS {n} shrinks the mailbox from {len(self.uids)} without EXPUNGE")
            self.uids.extend([None] * (n - len(self.uids)))
        elif m := re.fullmatch(rb"\* (\d+) EXPUNGE", r):
            n = int(m.group(1))
            if not 1 <= n <= len(self.uids):
                self.fail(f"EXPUNGE {n} with {len(self.uids)} messages")
            uid = self.uids.pop(n - 1)
            if uid is not None:
                self.expunged.add(uid)
        elif re.match(rb"\* \d+ FETCH \(", r):
            seq, items = fetch_items(r)
            if not 1 <= seq <= len(self.uids):
                self.fail(f"FETCH for message {seq} with {len(self.uids)} messages")
            if "UID" in items:
                self.learn(seq, int(items["UID"]))
        elif re.fullmatch(rb"\* \d+ RECENT", r) or r.startswith((b"* OK", b"* FLAGS ")):
            pass
        else:
            self.fail(f"unexpected untagged response {r!r}")

    def learn(self, seq: int, uid: int) -> None:
        known = self.uids[seq - 1]
        if known is not None:
            if known != uid:
                self.fail(f"message {seq} was UID {known}, now FETCH says UID {uid}")
            return
        if uid in self.ever:
            self.fail(f"UID {uid} shows up again at {seq} (expunged: {uid in self.expunged})")
        before = [u for u in self.uids[:seq - 1] if u is not None]
        after = [u for u in self.uids[seq:] if u is not None]
        if (before and before[-1] >= uid) or (after and after[0] <= uid):
            self.fail(f"UID {uid} at {seq} breaks the ascending order "
                      f"(before {before[-1:]}, after {after[:1]})")
        self.uids[seq - 1] = uid
        self.ever.add(uid)

    def first_unknown(self) -> int | None:
        for i, u in enumerate(self.uids):
            if u is None:
                return i + 1
        return None


class Session:
    """A connection that feeds every untagged response to its View."""

    def __init__(self, server, name: str):
        self.conn = connect(server, timeout=20)
        self.view = View(name)
        self.tags = 0

    def command(self, text: str) -> bytes:
        self.tags += 1
        tag = f"{self.view.name}{self.tags}"
        self.conn.send(f"{tag} {text}\r\n")
        while True:
            r = self.conn.response()
            if r.startswith(tag.encode() + b" "):
                if not r.startswith(tag.encode() + b" OK"):
                    self.view.fail(f"{text}: {r!r}")
                return r
            self.view.apply(r)

    def select(self) -> None:
        self.command("SELECT INBOX")
        self.learn_uids()

    def learn_uids(self) -> None:
        first = self.view.first_unknown()
        if first is not None:
            # A FETCH (not UID FETCH) may not send EXPUNGE (RFC 3501 §7.4.1),
            # so the numbers stay put while it runs.
            self.command(f"FETCH {first}:* (UID FLAGS)")

    def final_check(self) -> list[int]:
        self.command("NOOP")
        self.learn_uids()
        model = list(self.view.uids)
        self.tags += 1
        tag = f"{self.view.name}{self.tags}"
        self.conn.send(f"{tag} FETCH 1:* (UID)\r\n")
        fetched = []
        while True:
            r = self.conn.response()
            if r.startswith(tag.encode()):
                break
            seq, items = fetch_items(r)
            fetched.append((seq, int(items["UID"])))
        assert [s for s, _ in fetched] == list(range(1, len(fetched) + 1)), (
            f"session {self.view.name}: FETCH 1:* answered out of order: {fetched[:10]}")
        fresh = [u for _, u in fetched]
        assert model == fresh, (
            f"session {self.view.name}: the model built from untagged responses differs from "
            f"FETCH 1:* (UID):\nmodel {model}\nfresh {fresh}")
        untagged, tagged = self.conn.command("UID SEARCH ALL")
        found = [int(x) for x in untagged[-1].split()[2:]] if untagged else []
        assert found == fresh, f"session {self.view.name}: UID SEARCH ALL {found} != FETCH {fresh}"
        return fresh

    def close(self) -> None:
        self.conn.close()


def idler(server, session: Session, stop: threading.Event, errors: list) -> None:
    """Session A: IDLE; leaves it to learn new UIDs, re-enters it."""
    try:
        while not stop.is_set():
            session.tags += 1
            tag = f"{session.view.name}{session.tags}"
            session.conn.send(f"{tag} IDLE\r\n")
            r = session.conn.response()
            if not r.startswith(b"+"):
                session.view.fail(f"IDLE: {r!r}")
            started = time.monotonic()
            while not stop.is_set() and time.monotonic() - started < 3:
                if session.conn.pending(0.1):
                    session.view.apply(session.conn.response())
                    if session.view.first_unknown() is not None:
                        break
            session.conn.send(b"DONE\r\n")
            while True:
                r = session.conn.response()
                if r.startswith(tag.encode() + b" "):
                    if not r.startswith(tag.encode() + b" OK"):
                        session.view.fail(f"IDLE ended with {r!r}")
                    break
                session.view.apply(r)
            session.learn_uids()
    except Exception as e:
        errors.append(e)


def poller(server, session: Session, stop: threading.Event, errors: list) -> None:
    """Session B: NOOP every 50 ms."""
    try:
        while not stop.is_set():
            session.command("NOOP")
            session.learn_uids()
            time.sleep(0.05)
    except Exception as e:
        errors.append(e)


def expunger(server, stop: threading.Event, errors: list, counts: dict) -> None:
    """Session C: flags and expunges random messages."""
    rng = random.Random(1)
    try:
        c = connect(server, timeout=20)
        c.ok("SELECT INBOX")
        while not stop.is_set():
            untagged = c.ok("UID SEARCH ALL")
            line = next((r for r in untagged if r.startswith(b"* SEARCH")), b"* SEARCH")
            uids = [int(x) for x in line.split()[2:]]
            if len(uids) > 5:
                victims = rng.sample(uids, 2)
                c.ok(f"UID STORE {victims[0]} +FLAGS.SILENT (\\Deleted)")
                if rng.random() < 0.5:
                    c.ok(f"UID EXPUNGE {victims[0]}")
                else:
                    c.ok("EXPUNGE")
                counts["expunged"] += 1
                c.ok(f"UID STORE {victims[1]} +FLAGS (\\Flagged)")
            time.sleep(0.1)
        c.close()
    except Exception as e:
        errors.append(e)


def deliverer(server, stop: threading.Event, errors: list, counts: dict) -> None:
    try:
        with smtplib.SMTP(*server.addr("smtp"), timeout=30) as s:
            s.ehlo("conc.e2e.test")
            i = 0
            while not stop.is_set():
                msg = make_message(subject=f"concurrent {i}", message_id=f"<conc.{i}@e2e.test>")
                for attempt in range(20):
                    try:
                        s.sendmail("sender@remote.invalid", [ALICE], msg)
                        break
                    except smtplib.SMTPDataError as e:
                        if e.smtp_code // 100 != 4 or attempt == 19:
                            raise
                        s.rset()
                        time.sleep(0.05)
                counts["delivered"] += 1
                i += 1
                time.sleep(0.05)
    except Exception as e:
        errors.append(e)


def test_sessions_stay_consistent_under_delivery_and_expunge(server):
    c = connect(server)
    for i in range(SEED_MESSAGES):
        append(c, "INBOX", make_message(subject=f"seed {i}", message_id=f"<seed.{i}@e2e.test>"))
    c.close()
    a, b = Session(server, "A"), Session(server, "B")
    a.select()
    b.select()
    stop = threading.Event()
    errors: list = []
    counts = {"delivered": 0, "expunged": 0}
    threads = [
        threading.Thread(target=idler, args=(server, a, stop, errors), daemon=True),
        threading.Thread(target=poller, args=(server, b, stop, errors), daemon=True),
        threading.Thread(target=expunger, args=(server, stop, errors, counts), daemon=True),
        threading.Thread(target=deliverer, args=(server, stop, errors, counts), daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline and not errors:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "a session thread did not stop within 20 s"
    if errors:
        raise errors[0]
    assert counts["delivered"] >= 20 and counts["expunged"] >= 10, f"too little happened: {counts}"
    final_a = a.final_check()
    final_b = b.final_check()
    assert final_a == final_b, f"sessions A and B disagree:\nA {final_a}\nB {final_b}"
    stored = sorted(m["uid"] for m in server.mailbox(ALICE))
    assert final_a == stored, f"sessions see {final_a}, the store holds {stored}"
    assert len(a.view.ever) >= SEED_MESSAGES + counts["delivered"] - 5, (
        f"session A learnt only {len(a.view.ever)} UIDs of {SEED_MESSAGES + counts['delivered']}")
    a.close()
    b.close()


def test_idle_sees_each_delivery_within_a_second(server):
    """RFC 2177: a session in IDLE hears of new mail as it arrives."""
    s = Session(server, "I")
    s.select()
    s.conn.send(b"I0 IDLE\r\n")
    assert s.conn.response().startswith(b"+")
    worst = 0.0
    for i in range(10):
        started = time.monotonic()
        server.deliver_mx(ALICE, make_message(subject=f"idle {i}"))
        r = s.conn.response(timeout=5)
        worst = max(worst, time.monotonic() - started)
        assert r == b"* %d EXISTS" % (i + 1), r
        while s.conn.pending(0.05):
            s.view.apply(s.conn.response())
    s.conn.send(b"DONE\r\n")
    assert s.conn.response().startswith(b"I0 OK")
    assert worst < 1.5, f"an EXISTS took {worst:.2f}s after the delivery was accepted"
    s.close()


def test_parallel_deliveries_are_never_refused(server):
    """Four SMTP sessions delivering to the same INBOX at once: every
    message is accepted on the first try (no 4xx), as a local store under
    light load should."""
    messages = [make_message(subject=f"parallel {i}", message_id=f"<par.{i}@e2e.test>")
                for i in range(1000)]
    temp_failures = deliver_many(server, messages, connections=4)
    assert temp_failures == 0, f"{temp_failures} deliveries were refused with 4xx and retried"


def test_imap_commands_never_fail_during_delivery(server):
    """While one SMTP session delivers, an IMAP session that sets and clears
    flags must get OK every time (RFC 3501 leaves no room for a transient
    NO on STORE of existing messages)."""
    c = connect(server)
    for i in range(20):
        append(c, "INBOX", make_message(subject=f"seed {i}"))
    c.ok("SELECT INBOX")
    stop = threading.Event()
    errors: list = []
    counts = {"delivered": 0}
    t = threading.Thread(target=deliverer, args=(server, stop, errors, counts), daemon=True)
    t.start()
    failures = []
    deadline = time.monotonic() + 8
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            for text in (f"STORE 1:* +FLAGS.SILENT ($Tag{n % 3})", f"STORE 1:* -FLAGS.SILENT ($Tag{n % 3})",
                         "EXPUNGE", "NOOP"):
                _, tagged = c.command(text)
                if not re.match(rb"t\d+ OK", tagged):
                    failures.append((text, tagged))
    finally:
        stop.set()
        t.join(20)
    c.close()
    assert not errors, errors
    assert not failures, f"{len(failures)} commands failed during {counts['delivered']} deliveries: {failures[:3]}"
