"""A data disk that fills up (issue 12): on a small tmpfs of its own, the
server refuses new mail with `452 4.3.1` (SMTP) and `NO [LIMIT]` (IMAP
APPEND) once the disk reaches `[system] disk_refuse_percent`; everything
acknowledged before is intact over IMAP; the postmaster gets an alert mail;
`pochta health` says failing and exits 1; and once space is freed, mail is
accepted again and the "Solved" mail follows.

Mounting a tmpfs needs root (CI runs as root).
"""

from __future__ import annotations

import imaplib
import os
import smtplib
import subprocess
import time

import pytest

from harness import ALICE, ALICE_PW, BOB, Pochta, make_message, unique_id, wait_until

DISK_MIB = 24


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":
            pytest.fail("mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m,mode=0755", "tmpfs", str(mnt)],
                   check=True, timeout=30)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


def used_percent(path) -> float:
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    usable = used + st.f_bavail * st.f_frsize
    return 100.0 * used / usable


def fill_to(path, percent: float, ballast) -> None:
    """Grows the ballast file until the disk is at least `percent` full."""
    with open(ballast, "ab") as f:
        while used_percent(path) < percent:
            f.write(b"\0" * (256 * 1024))
            f.flush()
            os.fsync(f.fileno())


def imap_login(p: Pochta) -> imaplib.IMAP4:
    host, port = p.addr("imap")
    m = imaplib.IMAP4(host, port, timeout=15)
    m.starttls()
    m.login(ALICE, ALICE_PW)
    return m


def subjects(m: imaplib.IMAP4) -> list[str]:
    m.select("INBOX")
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    if typ != "OK" or data == [None]:
        return []
    return [part[1].decode(errors="replace").strip() for part in data if isinstance(part, tuple)]


def test_a_full_disk_refuses_new_mail_keeps_the_old_and_recovers(small_disk):
    p = Pochta(small_disk)
    try:
        p.setup_basic()
        # alice is the oldest account: with no postmaster@ alias, she gets
        # the alerts.
        p.configure(system={"disk_warning_percent": 50, "disk_refuse_percent": 70,
                            "health_interval_secs": 1})
        p.start()
        host, port = p.addr("smtp")
        sent = {}
        with smtplib.SMTP(host, port, timeout=15) as s:
            for i in range(5):
                mid = unique_id("before")
                msg = make_message(sender=BOB, to=ALICE, subject=f"before {i}", message_id=f"<{mid}@e2e.test>")
                assert s.sendmail(BOB, [ALICE], msg) == {}
                sent[mid] = msg
        ballast = small_disk / "ballast"
        fill_to(small_disk, 72, ballast)
        # The gate reads the disk at most once a second.
        time.sleep(1.2)

        # SMTP: 452 4.3.1 at MAIL, with the reason.
        with smtplib.SMTP(host, port, timeout=15) as s:
            s.ehlo("client.test")
            code, text = s.mail(BOB)
            assert code == 452, (code, text)
            assert text.startswith(b"4.3.1"), text
            assert b"disk" in text, text

        # IMAP APPEND: NO [LIMIT] with words a person understands.
        m = imap_login(p)
        typ, data = m.append("INBOX", None, None, make_message(sender=ALICE, to=ALICE, subject="draft"))
        assert typ == "NO", (typ, data)
        assert b"[LIMIT]" in data[0] and b"disk" in data[0], data

        # pochta health: disk failing, exit 1.
        def disk_failing():
            res = p.cli("health", "--json", check=False)
            return res.returncode == 1 and '"id": "disk"' in res.stdout and '"failing"' in res.stdout
        wait_until(disk_failing, 15, "pochta health to report the disk failing")
        res = p.cli("health", check=False)
        assert res.returncode == 1, res
        assert "new mail is refused" in res.stdout, res.stdout

        # The postmaster's mailbox gets the alert (after the grace rounds).
        wait_until(lambda: any("Problem: Disk space" in s for s in subjects(m)), 30,
                   "the disk alert in the postmaster's INBOX")

        # Everything acknowledged before the disk filled is intact.
        m.select("INBOX")
        for mid, msg in sent.items():
            typ, hits = m.search(None, "HEADER", "Message-ID", mid)
            assert typ == "OK" and len(hits[0].split()) == 1, (mid, hits)
            typ, data = m.fetch(hits[0].split()[0].decode(), "(BODY.PEEK[])")
            stored = data[0][1]
            # The stored copy ends with the sent message (a Received: line is
            # added in front).
            assert stored.endswith(msg), mid
        m.logout()

        # Space returns: mail is taken again, by itself.
        ballast.unlink()

        def accepts():
            with smtplib.SMTP(host, port, timeout=15) as s:
                s.ehlo("client.test")
                code, _ = s.mail(BOB)
                return code == 250
        wait_until(accepts, 10, "SMTP to accept mail again")
        after = unique_id("after")
        with smtplib.SMTP(host, port, timeout=15) as s:
            assert s.sendmail(BOB, [ALICE], make_message(sender=BOB, to=ALICE, subject="after", message_id=f"<{after}@e2e.test>")) == {}
        m = imap_login(p)
        wait_until(lambda: any("Solved: Disk space" in s for s in subjects(m)), 30,
                   "the 'Solved' mail in the postmaster's INBOX")
        assert any(s == "Subject: after" for s in subjects(m)), subjects(m)
        m.logout()
        log = p.mail_log_text()
        assert "alert session=- key=check.disk state=failing" in log, log[-3000:]
        assert "alert session=- key=check.disk state=cleared" in log, log[-3000:]
    finally:
        p.close()
