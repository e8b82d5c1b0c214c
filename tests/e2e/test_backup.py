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
import pwd
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
    wait_until,
)


def restic() -> str:
    path = shutil.which("restic")
    if path is None:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":
            pytest.fail("restic is missing: apt-get install restic")
        pytest.skip("restic is missing: apt-get install restic")
    return path


def give_to_server(path: Path) -> None:
    """Started as root, the server and the CLI act as the `pochta` user:
    a folder they write must be its."""
    if os.geteuid() == 0:
        user = pwd.getpwnam("pochta")
        os.chown(path, user.pw_uid, user.pw_gid)


def backup_folder(pochta: Pochta, name: str = "usb") -> Path:
    """A folder for backups that the server (and the CLI) may write."""
    folder = pochta.root / name
    folder.mkdir()
    give_to_server(folder)
    return folder


def owned_folder(pochta: Pochta, path: Path) -> Path:
    """An empty folder the CLI may write, as a restore target (run as root,
    the CLI acts as the data folder's owner)."""
    path.mkdir()
    give_to_server(path)
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


def backup_now(pochta: Pochta) -> dict:
    """`pochta backup now --json`; the one destination's report."""
    out = pochta.cli_json("backup now")
    [dest] = out["destinations"]
    assert dest["ok"] is True and dest["error"] is None, dest
    return dest["report"]


def verify(pochta: Pochta, *args: str) -> dict:
    """`pochta backup verify --json`; the one destination's report."""
    res = pochta.cli("backup verify", *args, "--json", check=False)
    out = json.loads(res.stdout)
    [dest] = out["destinations"]
    assert res.returncode == (0 if dest["ok"] else 1), res
    return dest["report"]


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


def flag_and_file(pochta: Pochta, flagged: str, filed: str) -> None:
    """Alice flags some INBOX messages and copies others into a new folder
    Projects, as a mail client would."""
    c = imap_session(pochta, ALICE, ALICE_PW)
    c.create("Projects")
    c.select("INBOX")
    c.uid("STORE", flagged, "+FLAGS", r"(\Seen \Flagged)")
    c.uid("COPY", filed, "Projects")
    c.logout()


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
    flag_and_file(server, flagged="1:3", filed="4:6")

    first = backup_now(server)
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
    second = backup_now(server)
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
    report = backup_now(server)
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
    report = verify(server, "--full")
    assert report["problems"] == [] and report["repository_problems"] == [], report
    assert report["database"] == "ok"
    assert report["bodies_checked"] == 8
    assert report["restored"] == report["manifest"]
    assert report["live"]["messages"] == 8
    sample = verify(server)
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
    report = backup_now(server)
    assert report["manifest"]["inventory"]["messages"] == 50
    key = box_key(server)
    out = run_restic(usb, key, "check", "--read-data")
    assert "no errors were found" in out.stdout
    full = verify(server, "--full")
    assert full["problems"] == [] and full["bodies_checked"] == 50, full
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
        give_to_server(disk)
        server.cli("backup to", str(disk))
        deliver(server, ALICE, 20, size=100_000)  # 2 MB of random text, on a 1 MiB disk
        server.wait_messages(ALICE, 20)
        res = server.cli("backup now", check=False)
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert "backed up to" not in res.stdout
        assert "the backup disk is full" in res.stderr, res.stderr
        # Nothing counts as a backup: no snapshot, and the record says failed.
        assert server.cli_json("backup list") == []
        status = server.cli_json("backup status")["status"]["destinations"]["folder"]
        assert status["last_ok"] is None and "space" in status["last_failure"]["error"], status
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
    assert res.returncode == 2 and "nothing to verify: no backup in" in res.stderr, res.stderr
    res = pochta.cli("backup to", "--off")
    assert "no longer" in res.stdout, res.stdout
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2 and "no backup destination is set" in res.stderr, res.stderr


def inbox_subjects(pochta: Pochta) -> list[str]:
    c = imap_session(pochta, ALICE, ALICE_PW)
    try:
        typ, count = c.select("INBOX", readonly=True)
        if int(count[0]) == 0:
            return []
        typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ != "OK" or data == [None]:
            return []
        return [part[1].decode(errors="replace").strip() for part in data if isinstance(part, tuple)]
    finally:
        c.logout()


def backup_check(pochta: Pochta) -> dict:
    res = pochta.cli("health", "--json", check=False)
    checks = [c for c in json.loads(res.stdout).get("checks", []) if c["id"] == "backup"]
    return checks[0] if checks else {}


def test_a_failed_backup_fails_the_health_check_and_alerts_until_one_succeeds(pochta):
    pochta.setup_basic()  # alice is the oldest account: she gets the alerts
    pochta.configure(system={"health_interval_secs": 1})
    usb = backup_folder(pochta)
    pochta.cli("backup to", str(usb))
    pochta.start()
    wait_until(lambda: backup_check(pochta).get("state") == "ok", 15, "the backup check to run")
    assert "No backup to the folder" in backup_check(pochta)["reason"]

    usb.chmod(0o000)  # the disk turned read-only, or its folder went away
    res = pochta.cli("backup now", check=False)
    assert res.returncode == 2, res
    assert "backed up to" not in res.stdout
    assert "the backup to the folder" in res.stderr and "failed" in res.stderr, res.stderr
    wait_until(lambda: backup_check(pochta).get("state") == "failing", 15, "the backup check to fail")
    check = backup_check(pochta)
    assert "The backup to the folder" in check["reason"] and check["fix"], check
    assert pochta.cli("health", check=False).returncode == 1
    wait_until(lambda: any("Problem: Backups" in s for s in inbox_subjects(pochta)), 30,
               "the backup alert in the postmaster's INBOX")
    assert "backup_failed" in pochta.mail_log_text()

    usb.chmod(0o700)
    report = backup_now(pochta)
    wait_until(lambda: backup_check(pochta).get("state") == "ok", 15, "the backup check to recover")
    assert report["snapshot"] in pochta.cli("backup status").stdout
    assert "Last backup to the folder" in backup_check(pochta)["reason"]
    wait_until(lambda: any("Solved: Backups" in s for s in inbox_subjects(pochta)), 30,
               "the 'Solved' mail in the postmaster's INBOX")
    assert "backup_done" in pochta.mail_log_text()


def test_the_daily_schedule_backs_up_at_its_hour_and_test_restores(pochta):
    pochta.setup_basic()
    usb = backup_folder(pochta)
    pochta.cli("backup to", str(usb))
    now = time.localtime()
    if now.tm_min == 59 and now.tm_sec > 45:  # not across the hour
        time.sleep(61 - now.tm_sec)
    hour = time.localtime().tm_hour
    res = pochta.cli("backup schedule", "--hour", str(hour), "--daily", "3")
    assert f"daily at {hour:02d}:00" in res.stdout and "3 daily" in res.stdout
    pochta.configure(system={"backup_schedule": True})
    pochta.start()
    deliver(pochta, ALICE, 2)

    def ran() -> dict | None:
        st = pochta.cli_json("backup status")["status"]["destinations"].get("folder", {})
        return st if st.get("last_ok") and st.get("last_verify") else None
    wait_until(ran, 60, "the scheduled backup and its test restore")
    st = ran()
    assert st["last_verify"]["ok"] is True, st
    assert [s["id"] for s in pochta.cli_json("backup list")] == [st["last_ok"]["snapshot"]]
    # Once a day: a restart within the hour does not back up again.
    pochta.restart()
    time.sleep(2)
    assert len(pochta.cli_json("backup list")) == 1
    log = pochta.mail_log_text()
    assert "backup_done" in log and "backup_verified" in log


def test_a_second_run_at_once_is_refused_not_interleaved(server):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    deliver(server, ALICE, 30, size=50000)
    server.wait_messages(ALICE, 30)
    argv = [str(server.bin), "backup", "now", "--data", str(server.data)]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: (server.data / "backup" / "stage").exists() or first.poll() is not None, 10,
               "the first backup to start")
    second = server.cli("backup now", check=False)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, (out, err)
    if second.returncode != 0:  # it met the first one running
        assert "another backup" in second.stderr, second.stderr
    assert len(server.cli_json("backup list")) in (1, 2)
    assert "no errors were found" in run_restic(usb, box_key(server), "check").stdout


def test_one_account_is_restored_beside_its_mail_without_touching_it(server):
    usb = backup_folder(server)
    server.cli("backup to", str(usb))
    deliver(server, ALICE, 5)
    deliver(server, BOB, 2)
    server.wait_messages(ALICE, 5)
    flag_and_file(server, flagged="1:2", filed="3:4")
    before = imap_picture(server, ALICE, ALICE_PW)
    report = backup_now(server)

    # Alice loses mail: Projects deleted, three INBOX messages expunged.
    c = imap_session(server, ALICE, ALICE_PW)
    c.delete("Projects")
    c.select("INBOX")
    c.uid("STORE", "1:3", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.logout()
    deliver(server, ALICE, 1)  # new mail after the backup stays where it is
    bob_before = imap_picture(server, BOB, BOB_PW)

    res = server.cli("backup restore", report["snapshot"], "--account", ALICE)
    day = time.strftime("%Y-%m-%d")  # the snapshot's date, the box's local time
    assert "restored 7 messages" in res.stdout and f'"Restored' in res.stdout, res.stdout
    after = imap_picture(server, ALICE, ALICE_PW)
    top = next(name for name in after if name.startswith("Restored "))
    assert top == f"Restored {day}", top
    for folder in ("INBOX", "Projects"):
        got = after[f"{top}/{folder}"]["messages"]
        want = before[folder]["messages"]
        # Same messages, bytes and flags, in the same order (new UIDs).
        assert [m for _, m in sorted(got.items())] == [m for _, m in sorted(want.items())], folder
    assert len(after["INBOX"]["messages"]) == 5 - 3 + 1  # the live INBOX untouched
    assert imap_picture(server, BOB, BOB_PW) == bob_before  # another account untouched

    # A second restore does not overwrite the first.
    server.cli("backup restore", "latest", "--account", ALICE)
    assert any(name.startswith(top + " (2)") for name in imap_picture(server, ALICE, ALICE_PW))

    res = server.cli("backup restore", "latest", "--account", "nobody@example.test", check=False)
    assert res.returncode == 2 and "no account nobody@example.test" in res.stderr, res.stderr
