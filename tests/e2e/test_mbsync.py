"""mbsync (Debian `isync`) against a real `pochta serve`: a 1,000-message
INBOX synchronised both ways with a Maildir.

1. 1,000 messages are delivered over SMTP; the first sync brings all of
   them down, each exactly once.
2. Flags are changed and messages deleted on both sides (Maildir files
   renamed by the `:2,FLAGS` convention or removed; IMAP STORE, EXPUNGE),
   and messages added on both sides (a file in new/, APPEND and SMTP).
   After a sync both sides hold the same Message-IDs with the same flags,
   and every deletion has reached the other side (`Expunge Both`).
3. One more sync changes nothing on either side and sends no message or
   flag over the wire.

Every mbsync run has a timeout; the server's certificate is verified
(`CertificateFile`), with `Host localhost`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import ALICE, ALICE_PW, make_message, wait_until
from imap_wire import append, connect, deliver_many, fetch_items

pytestmark = pytest.mark.skipif(shutil.which("mbsync") is None,
                                reason="mbsync not installed (Debian package isync)")

COUNT = 1000
MBSYNC_TIMEOUT = 300

# Maildir info flags (https://cr.yp.to/proto/maildir.html) and IMAP flags.
MAILDIR_TO_IMAP = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}
MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]*>)")


def mid(i: int, side: str = "smtp") -> str:
    return f"<mbsync.{side}.{i}@e2e.test>"


def write_config(tmp: Path, server) -> Path:
    _, port = server.addr("imaps")
    maildir = tmp / "mail"
    maildir.mkdir()
    cfg = tmp / "mbsyncrc"
    cfg.write_text(f"""\
IMAPAccount pochta
Host localhost
Port {port}
User {ALICE}
Pass {ALICE_PW}
SSLType IMAPS
CertificateFile {server.data / "tls" / "cert.pem"}

IMAPStore remote
Account pochta

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX

Channel inbox
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
""")
    return cfg


def mbsync(cfg: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["mbsync", "-c", str(cfg), *extra, "inbox"]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=MBSYNC_TIMEOUT,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"mbsync did not finish within {MBSYNC_TIMEOUT}s") from e
    assert res.returncode == 0, (
        f"mbsync exited {res.returncode}\nstdout: {res.stdout[-3000:]}\nstderr: {res.stderr[-3000:]}")
    return res


# -- the two sides as {Message-ID: flags} ---------------------------------------


def maildir_state(inbox: Path) -> dict[str, tuple[Path, frozenset[str]]]:
    out: dict[str, tuple[Path, frozenset[str]]] = {}
    for sub in ("new", "cur"):
        for path in (inbox / sub).iterdir():
            m = MESSAGE_ID.search(path.read_bytes())
            assert m, f"no Message-ID in {path}"
            key = m.group(1).decode()
            assert key not in out, f"{key} is in the Maildir twice: {out[key][0].name} and {path.name}"
            info = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            out[key] = (path, frozenset(MAILDIR_TO_IMAP[c] for c in info if c in MAILDIR_TO_IMAP))
    return out


def imap_state(server) -> dict[str, tuple[int, frozenset[str]]]:
    c = connect(server, timeout=60)
    try:
        untagged = c.ok("EXAMINE INBOX")
        exists = next(int(r.split()[1]) for r in untagged if r.endswith(b" EXISTS"))
        out: dict[str, tuple[int, frozenset[str]]] = {}
        if exists == 0:
            return out
        for r in c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])", timeout=60):
            _, items = fetch_items(r)
            header = next(v for k, v in items.items() if k.startswith("BODY["))
            m = MESSAGE_ID.search(header)
            assert m, f"no Message-ID in {r!r}"
            key = m.group(1).decode()
            assert key not in out, f"{key} is on the server twice"
            flags = frozenset(str(f) for f in items["FLAGS"] if str(f) != "\\Recent")
            out[key] = (int(items["UID"]), flags)
        return out
    finally:
        c.close()


def flags_of(state: dict) -> dict[str, frozenset[str]]:
    return {k: v[1] for k, v in state.items()}


def set_maildir_flags(path: Path, flags: str) -> Path:
    """Renames a Maildir message to carry `flags` (moving it to cur/)."""
    base = path.name.split(":2,", 1)[0]
    old = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
    new_name = f"{base}:2,{''.join(sorted(set(old) | set(flags)))}"
    target = path.parent.parent / "cur" / new_name
    os.rename(path, target)
    return target


def assert_same(near: dict, far: dict, what: str) -> None:
    missing_near = sorted(set(far) - set(near))
    missing_far = sorted(set(near) - set(far))
    assert not missing_near and not missing_far, (
        f"{what}: the sides differ: only on the server {missing_near[:5]} ({len(missing_near)}), "
        f"only in the Maildir {missing_far[:5]} ({len(missing_far)})")
    differ = {k: (sorted(near[k]), sorted(far[k])) for k in near if near[k] != far[k]}
    assert not differ, f"{what}: flags differ (Maildir, server) for {len(differ)}: {list(differ.items())[:5]}"


def test_mbsync_two_way_sync_of_1000_messages(server, tmp_path):
    sent = [make_message(subject=f"mbsync {i}", message_id=mid(i), body=f"message {i}\r\n")
            for i in range(COUNT)]
    deliver_many(server, sent)
    wait_until(lambda: len(server.mailbox(ALICE)) >= COUNT, 30, f"{COUNT} messages stored")
    cfg = write_config(tmp_path, server)
    inbox = tmp_path / "mail" / "INBOX"

    # 1. Everything comes down once.
    started = time.monotonic()
    mbsync(cfg, "-V")
    first_sync = time.monotonic() - started
    near, far = maildir_state(inbox), imap_state(server)
    assert set(near) == {mid(i) for i in range(COUNT)}, f"first sync brought {len(near)} of {COUNT}"
    assert_same(flags_of(near), flags_of(far), "after the first sync")

    # 2. Changes on both sides.
    ids = [mid(i) for i in range(COUNT)]
    for key in ids[0:20]:
        set_maildir_flags(near[key][0], "S")
    for key in ids[20:40]:
        set_maildir_flags(near[key][0], "FS")
    for key in ids[40:50]:
        near[key][0].unlink()
    for key in ids[50:55]:
        set_maildir_flags(near[key][0], "T")
    for i in range(5):
        name = f"{int(time.time())}.e2e{i}.localhost"
        (inbox / "new" / name).write_bytes(
            make_message(subject=f"near {i}", message_id=mid(i, "near"), body=b"written in the Maildir\r\n"))

    c = connect(server, timeout=60)
    c.ok("SELECT INBOX")
    uid = {k: v[0] for k, v in far.items()}

    def uids(keys):
        return ",".join(str(uid[k]) for k in keys)

    c.ok(f"UID STORE {uids(ids[100:120])} +FLAGS.SILENT (\\Flagged)")
    c.ok(f"UID STORE {uids(ids[120:140])} +FLAGS.SILENT (\\Seen \\Answered)")
    c.ok(f"UID STORE {uids(ids[140:150])} +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    for i in range(3):
        append(c, "INBOX", make_message(subject=f"far {i}", message_id=mid(i, "append")), "\\Seen")
    c.close()
    deliver_many(server, [make_message(subject=f"late {i}", message_id=mid(i, "late")) for i in range(3)],
                 connections=1)

    mbsync(cfg, "-V")
    near, far = maildir_state(inbox), imap_state(server)
    deleted = set(ids[40:55]) | set(ids[140:150])
    added = {mid(i, "near") for i in range(5)} | {mid(i, "append") for i in range(3)} | {mid(i, "late") for i in range(3)}
    expected = (set(ids) - deleted) | added
    assert set(far) == expected, (
        f"server after the sync: missing {sorted(expected - set(far))[:5]}, "
        f"extra {sorted(set(far) - expected)[:5]}")
    assert_same(flags_of(near), flags_of(far), "after changes on both sides")
    want = {k: frozenset() for k in expected}
    want.update({k: frozenset({"\\Seen"}) for k in ids[0:20]})
    want.update({k: frozenset({"\\Flagged", "\\Seen"}) for k in ids[20:40]})
    want.update({k: frozenset({"\\Flagged"}) for k in ids[100:120]})
    want.update({k: frozenset({"\\Seen", "\\Answered"}) for k in ids[120:140]})
    want.update({mid(i, "append"): frozenset({"\\Seen"}) for i in range(3)})
    wrong = {k: (sorted(flags_of(far)[k]), sorted(want[k])) for k in want if flags_of(far)[k] != want[k]}
    assert not wrong, f"flags (server, expected) wrong for {len(wrong)}: {list(wrong.items())[:5]}"

    # 3. Nothing left to do: no message or flag goes over the wire, nothing changes.
    before_near = {k: v[0].name for k, v in near.items()}
    before_far = far
    res = mbsync(cfg, "-V", "-Dn")
    wire = res.stdout + res.stderr
    commands = [line[4:] for line in wire.splitlines() if line.startswith(">>> ")]
    assert commands, f"mbsync -Dn printed no client commands: {wire[-2000:]}"
    sent_lines = [c for c in commands if re.search(r"\b(APPEND|STORE|EXPUNGE|MOVE|COPY)\b|BODY(\.PEEK)?\[\]", c)]
    assert not sent_lines, f"the third sync still transferred: {sent_lines[:5]} (all: {commands})"
    after_near = {k: v[0].name for k, v in maildir_state(inbox).items()}
    assert after_near == before_near, "the third sync changed the Maildir"
    assert imap_state(server) == before_far, "the third sync changed the server"
    print(f"first sync of {COUNT} messages: {first_sync:.1f}s")
