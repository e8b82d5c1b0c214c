"""Backups to a folder (the USB disk's, on the appliance): what is backed up
comes back whole, the repository is restic's and Debian's `restic` reads it,
and failures are failures.

The restored box is compared with the live one over IMAP, as a mail client
sees them: every account, folder, UIDVALIDITY, UID, flag and message byte.
"""

from __future__ import annotations

import imaplib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    BOB_PW,
    Pochta,
    tls_context,
    unique_id,
)


def restic() -> str:
    path = shutil.which("restic")
    if path is None:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":
            pytest.fail("restic is missing: apt-get install restic")
        pytest.skip("restic is missing: apt-get install restic")
    return path


def backup_folder(pochta: Pochta, name: str = "usb") -> Path:
    """A folder for backups that the data folder's owner can write (the
    server and the CLI run as the `pochta` user when started as root)."""
    folder = pochta.root / name
    folder.mkdir()
    st = pochta.data.stat()
    os.chown(folder, st.st_uid, st.st_gid)
    return folder


def owned_folder(pochta: Pochta, path: Path) -> Path:
    """An empty folder the CLI may write, as a restore target (run as root,
    the CLI acts as the data folder's owner)."""
    path.mkdir()
    st = pochta.data.stat()
    os.chown(path, st.st_uid, st.st_gid)
    return path


def box_key(pochta: Pochta) -> str:
    return pochta.cli("backup key").stdout.strip()


def run_restic(repo: Path, key: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, RESTIC_PASSWORD=key, RESTIC_CACHE_DIR=str(repo.parent / "restic-cache"))
    res = subprocess.run([restic(), "-r", str(repo), *args], capture_output=True, text=True,
                         timeout=300, env=env)
    if check:
        assert res.returncode == 0, f"restic {' '.join(args)}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def imap_picture(pochta: Pochta, user: str, password: str) -> dict:
    """What a mail client sees of one account: per folder its UIDVALIDITY,
    UIDNEXT, and each UID's flags and bytes."""
    host, port = pochta.addr("imaps")
    c = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(), timeout=30)
    try:
        c.login(user, password)
        typ, lines = c.list()
        assert typ == "OK", lines
        folders = sorted(re.search(rb'"([^"]*)"\s*$|(\S+)\s*$', line).group(1) or
                         re.search(rb"(\S+)\s*$", line).group(1) for line in lines)
        picture = {}
        for name in folders:
            quoted = '"' + name.decode() + '"'
            typ, _ = c.select(quoted, readonly=True)
            assert typ == "OK", name
            uidvalidity = c.untagged_responses.get("UIDVALIDITY", [b""])[-1]
            typ, data = c.status(quoted, "(UIDNEXT MESSAGES)")
            messages = {}
            typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            assert typ == "OK", data
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head, body = item
                uid = int(re.search(rb"UID (\d+)", head).group(1))
                flags = sorted(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).split())
                messages[uid] = (flags, body)
            picture[name.decode()] = {"uidvalidity": uidvalidity, "messages": messages}
        return picture
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def imap_session(pochta: Pochta, user: str, password: str) -> imaplib.IMAP4_SSL:
    host, port = pochta.addr("imaps")
    c = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(), timeout=30)
    c.login(user, password)
    return c


def deliver(pochta: Pochta, rcpt: str, n: int, size: int = 2000) -> None:
    """n messages as mail usually is: a line of text and an attachment
    (random, so that nothing deduplicates or compresses it away)."""
    for _ in range(n):
        marker = unique_id("bk")
        m = EmailMessage(policy=SMTP)
        m["From"] = "sender@remote.invalid"
        m["To"] = rcpt
        m["Subject"] = marker
        m["Message-ID"] = f"<{marker}@e2e.test>"
        m.set_content("The report is attached.\n")
        m.add_attachment(os.urandom(size), maintype="application", subtype="octet-stream",
                         filename=f"{marker}.bin")
        pochta.deliver_mx(rcpt, m.as_bytes())


def assert_restore_equals_live(server: Pochta, root: Path, *restore_args: str) -> dict:
    """Restores the latest snapshot (`pochta backup restore latest
    RESTORE_ARGS`) into a new box under `root`, serves it, and checks that a
    mail client sees there what it sees in the live box: every account,
    folder, UIDVALIDITY, UID, flag and message byte. Returns the live
    picture."""
    users = ((ALICE, ALICE_PW), (BOB, BOB_PW))
    live = {u: imap_picture(server, u, pw) for u, pw in users}
    restored_root = owned_folder(server, root)
    server.cli("backup restore", "latest", "--into", str(restored_root / "data"), *restore_args)
    other = Pochta(restored_root)
    try:
        other.start()
        again = {u: imap_picture(other, u, pw) for u, pw in users}
    finally:
        other.close()
    assert set(again) == set(live)
    for user in live:
        assert live[user].keys() == again[user].keys(), user
        for folder, seen in live[user].items():
            got = again[user][folder]
            assert got["uidvalidity"] == seen["uidvalidity"], (user, folder)
            assert got["messages"].keys() == seen["messages"].keys(), (user, folder)
            for uid, (flags, body) in seen["messages"].items():
                assert got["messages"][uid][0] == flags, (user, folder, uid)
                assert got["messages"][uid][1] == body, (user, folder, uid)
    return live


def test_backup_then_more_mail_then_an_incremental_backup_restores_what_a_client_saw(server, tmp_path):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    deliver(server, ALICE, 12, size=20000)
    deliver(server, BOB, 5, size=20000)
    server.wait_messages(ALICE, 12)
    c = imap_session(server, ALICE, ALICE_PW)
    c.create("Projects")
    c.select("INBOX")
    c.uid("STORE", "1:3", "+FLAGS", r"(\Seen \Flagged)")
    c.uid("COPY", "4:6", "Projects")
    c.logout()

    first = server.cli_json("backup now")
    assert first["created_repository"] is True
    assert first["manifest"]["inventory"]["accounts"] == 2
    assert first["manifest"]["inventory"]["messages"] == 12 + 3 + 5
    assert first["bytes_added"] > 17 * 20000, first

    # More mail, a deletion and new flags, then the second backup.
    deliver(server, ALICE, 3, size=20000)
    server.wait_messages(ALICE, 15)
    c = imap_session(server, ALICE, ALICE_PW)
    c.select("INBOX")
    c.uid("STORE", "7", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.uid("STORE", "8", "+FLAGS", r"(\Answered $Label1)")
    c.logout()
    second = server.cli_json("backup now")
    assert second["created_repository"] is False
    assert second["manifest"]["inventory"]["messages"] == 14 + 3 + 5
    # Incremental: the three new messages and the changed database, not the
    # seventeen old bodies again.
    assert second["bytes_added"] < first["bytes_added"] / 2, (first["bytes_added"], second["bytes_added"])
    assert second["files_new"] <= 3 + 1 + 1, second
    snaps = server.cli_json("backup list")
    assert [s["id"] for s in snaps] == [first["snapshot"], second["snapshot"]]

    live = assert_restore_equals_live(server, tmp_path / "restored")
    assert live[ALICE]["INBOX"]["messages"][1][0] == [b"\\Flagged", b"\\Seen"]


def test_debian_restic_lists_checks_and_restores_the_backup(server, tmp_path):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    deliver(server, ALICE, 4)
    server.wait_messages(ALICE, 4)
    report = server.cli_json("backup now")
    key = box_key(server)

    snaps = json.loads(run_restic(usb, key, "snapshots", "--json").stdout)
    assert [s["short_id"] for s in snaps] == [report["snapshot"]]
    assert snaps[0]["paths"] == ["/pochta"] and snaps[0]["tags"] == ["pochta"]
    out = run_restic(usb, key, "check", "--read-data")
    assert "no errors were found" in out.stdout
    target = tmp_path / "by-restic"
    run_restic(usb, key, "restore", "latest", "--target", str(target))
    ours = owned_folder(server, tmp_path / "by-pochta")
    server.cli("backup restore", report["snapshot"], "--into", str(ours))

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    by_restic, by_pochta = files(target / "pochta"), files(ours)
    by_pochta.pop("backup/key")  # the restored box keeps its key; restic restores files only
    assert by_restic == by_pochta
    bodies = [name for name in by_restic if name.startswith("blobs/")]
    assert len(bodies) == 4
    assert "pochta.db" in by_restic and "manifest.json" in by_restic


def test_a_wrong_key_is_refused_in_words_and_nothing_is_restored(server, tmp_path):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    server.cli("backup now")
    into = owned_folder(server, tmp_path / "wrong-key")
    res = server.cli("backup restore", "latest", "--into", str(into), "--from", str(usb),
                     "--key-stdin", input="AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF\n", check=False)
    assert res.returncode == 2, res
    assert "backup key does not open this repository" in res.stderr, res.stderr
    assert not (into / "pochta.db").exists()
    # The right key, typed from the sheet, restores.
    res = server.cli("backup restore", "latest", "--into", str(into), "--from", str(usb),
                     "--key-stdin", input=box_key(server) + "\n")
    assert (into / "pochta.db").is_file()


def test_verify_passes_and_then_finds_a_tampered_pack_file(server):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    deliver(server, ALICE, 6)
    deliver(server, BOB, 2)
    server.wait_messages(ALICE, 6)
    server.cli("backup now")
    report = server.cli_json("backup verify", "--full")
    assert report["problems"] == [] and report["repository_problems"] == [], report
    assert report["database"] == "ok"
    assert report["bodies_checked"] == 8
    assert report["restored"] == report["manifest"]
    assert report["live"]["messages"] == 8
    sample = server.cli_json("backup verify")
    assert sample["problems"] == [] and sample["bodies_checked"] > 0, sample

    # Flip one byte in the middle of the biggest pack file.
    packs = sorted((p for p in (usb / "data").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim = packs[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    victim.write_bytes(bytes(raw))
    res = server.cli("backup verify", "--full", check=False)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "verification FAILED" in res.stdout
    assert "problem:" in res.stdout


def test_a_backup_killed_anywhere_leaves_a_repository_the_next_one_completes(server):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    deliver(server, ALICE, 30, size=20000)
    server.wait_messages(ALICE, 30)
    rng = random.Random(7)
    argv = [str(server.bin), "backup", "now", "--data", str(server.data)]
    killed = 0
    for run in range(4):
        deliver(server, ALICE, 5, size=20000)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.05, 0.6))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    assert killed >= 2, "the backups finished before they could be killed: make them bigger"
    report = server.cli_json("backup now")
    assert report["manifest"]["inventory"]["messages"] == 50
    key = box_key(server)
    out = run_restic(usb, key, "check", "--read-data")
    assert "no errors were found" in out.stdout
    verify = server.cli_json("backup verify", "--full")
    assert verify["problems"] == [] and verify["bodies_checked"] == 50, verify
    # No stage left behind in the data folder.
    assert not (server.data / "backup" / "stage").exists()


def test_a_full_backup_disk_is_an_error_not_a_success(server, tmp_path):
    if os.geteuid() != 0:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":
            pytest.fail("mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "small-usb"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(disk)],
                   check=True, timeout=30)
    try:
        st = server.data.stat()
        os.chown(disk, st.st_uid, st.st_gid)
        server.cli("backup to", str(disk))
        deliver(server, ALICE, 20, size=100_000)  # 2 MB of random text, on a 1 MiB disk
        server.wait_messages(ALICE, 20)
        res = server.cli("backup now", check=False)
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert "backed up" not in res.stdout
        assert re.search(r"No space left on device|space", res.stderr), res.stderr
        assert server.cli_json("backup list") == [] if (disk / "config").exists() else True
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, timeout=30)


def test_commands_say_what_is_missing(pochta, tmp_path):
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2
    assert "no backup destination is set" in res.stderr and "pochta backup to" in res.stderr
    assert "pochta backup to-s3" in res.stderr
    res = pochta.cli("backup to", str(tmp_path / "nowhere"), check=False)
    assert res.returncode == 2 and "is not a folder" in res.stderr
    usb = backup_folder(pochta)
    pochta.cli("backup to", str(usb))
    res = pochta.cli("backup list")
    assert "no backup" in res.stdout or "no backups" in res.stdout
    res = pochta.cli("backup verify", check=False)
    assert res.returncode == 2 and "no backup in" in res.stderr, res.stderr
    res = pochta.cli("backup to", "--off")
    assert "no longer" in res.stdout, res.stdout
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2 and "no backup destination is set" in res.stderr, res.stderr
