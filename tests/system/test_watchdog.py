"""The box looks after itself, under QEMU (issue 12).

The watchdog: the image boots with QEMU's i6300esb watchdog and pochta arms
it (`[system] watchdog` in the appliance config). A clean stop of pochta
disarms it (the VM runs on); a frozen pochta (`kill -STOP`) stops feeding
it, the watchdog resets the VM, the box boots again and serves mail, and
the health check, the mail log and the postmaster's mailbox say that the
last restart was forced by the watchdog.

The clock: the VM's clock starts wrong; pochta's SNTP client, pointed at a
chronyd on the host (10.0.2.2 from inside QEMU's user network), corrects it
and the clock check goes from warning to ok; after a power cut the time is
not earlier than before it.

Measurements (watchdog reset to pochta ready) are printed, not asserted.
"""

from __future__ import annotations

import imaplib
import json
import re
import smtplib
import time
import uuid

from test_appliance import ANNA, ANNA_PW, BOOT_TIMEOUT, set_up_through_admin_api, tls
from vm import SERVER_PID, VM

READY = r"pochta ready: \{"
# The first line a boot prints (rcS, after the kernel's quiet start).
BOOT_LINE = r"pochta-boot:"


def boot(vms, disk, tmp_path, name, **kw) -> VM:
    vm = VM(disk, tmp_path, name, **kw)
    vms.append(vm)
    vm.wait_for(READY, BOOT_TIMEOUT)
    return vm


def health(vm: VM) -> dict:
    # pochta's log shares the console: the JSON on one line of its own.
    out = vm.shell("pochta health --json 2>/dev/null | tr -d '\\n'; echo")
    line = next(l for l in out.splitlines() if l.startswith("{") and '"checks"' in l)
    return json.loads(line)


def check(vm: VM, id: str) -> dict:
    return next(c for c in health(vm)["checks"] if c["id"] == id)


def wait_check(vm: VM, id: str, pred, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        c = check(vm, id)
        if pred(c):
            return c
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: the {id} check is {c}")
        time.sleep(2)


def uptime(vm: VM) -> float:
    # pochta's log shares the console: the number on a line of its own.
    out = vm.shell("cut -d' ' -f1 /proc/uptime")
    return float(re.findall(r"^(\d+\.\d+)\s*$", out, re.M)[-1])


def inbox_subjects(vm: VM) -> list[str]:
    imap = imaplib.IMAP4_SSL("127.0.0.1", vm.ports["imaps"], ssl_context=tls(), timeout=120)
    try:
        imap.login(ANNA, ANNA_PW)
        imap.select("INBOX", readonly=True)
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        if typ != "OK" or data == [None]:
            return []
        return [p[1].decode(errors="replace").strip() for p in data if isinstance(p, tuple)]
    finally:
        imap.logout()


def test_a_frozen_pochta_is_reset_by_the_watchdog_and_a_clean_stop_is_not(vms, disk, tmp_path):
    vm = VM(disk, tmp_path, "watchdog", allow_reset=True)
    vms.append(vm)
    # How long a boot takes to its first console line: the reset itself is
    # that much earlier than the line that shows it.
    vm.wait_for(BOOT_LINE, BOOT_TIMEOUT)
    first_line = time.monotonic() - vm.started
    vm.wait_for(READY, BOOT_TIMEOUT)
    code = vm.wait_for(r"Setup code:\s+([0-9A-Z]{10})", 30).group(1)
    set_up_through_admin_api(vm, code)
    wd = wait_check(vm, "watchdog", lambda c: "Armed" in c["reason"], 60, "the watchdog to be armed")
    assert wd["state"] == "ok" and "/dev/watchdog" in wd["reason"], wd
    timeout = int(re.search(r"hangs for (\d+) s", wd["reason"]).group(1))
    assert 1 <= timeout <= 60, wd
    report = health(vm)
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", vm.shell(f"grep VmRSS /proc/{SERVER_PID}/status")).group(1))
    print(f"\nhealth round in the VM: {report['round_ms']} ms for {len(report['checks'])} checks; "
          f"pochta RSS with the system part running: {rss} KiB")

    # A clean stop (a maintenance stop: pochta-serve waits) disarms it.
    since = len(vm.text())
    vm.shell("touch /run/pochta/stopped; kill -TERM $(pidof pochta)")
    vm.wait_for("hardware watchdog disarmed", 60, since)
    up_before = uptime(vm)
    time.sleep(timeout * 2 + 10)
    assert vm.proc.poll() is None
    up_after = uptime(vm)
    assert up_after > up_before + timeout * 2, f"the VM restarted: uptime {up_before} -> {up_after}"
    since = len(vm.text())
    vm.shell("rm /run/pochta/stopped")
    vm.wait_for(READY, 120, since)
    wait_check(vm, "watchdog", lambda c: c["state"] == "ok" and "Armed" in c["reason"], 60,
               "the watchdog armed again")

    # Frozen: nothing feeds the watchdog; QEMU resets the VM.
    since = len(vm.text())
    vm.shell("kill -STOP $(pidof pochta)")
    frozen = time.monotonic()
    # The first line of the next boot: the init scripts' start.
    vm.wait_for(BOOT_LINE, timeout * 4 + 60, since)
    reset_after = time.monotonic() - frozen
    vm.wait_for(READY, BOOT_TIMEOUT, since)
    ready_after = time.monotonic() - frozen

    wd = wait_check(vm, "watchdog", lambda c: c["state"] == "warning", 60,
                    "the watchdog check to tell of the forced restart")
    assert "forced by the watchdog" in wd["reason"], wd
    assert "watchdog_reset" in vm.shell("grep watchdog_reset /data/log/mail.log")
    # The box serves mail again, and the postmaster (anna, the oldest
    # account) has the alert.
    deadline = time.monotonic() + 120
    while not any("Restart forced by the watchdog" in s for s in inbox_subjects(vm)):
        assert time.monotonic() < deadline, inbox_subjects(vm)
        time.sleep(2)
    mid = f"<{uuid.uuid4().hex}@system.test>"
    with smtplib.SMTP("127.0.0.1", vm.ports["submission"], timeout=120) as s:
        s.starttls(context=tls())
        s.login(ANNA, ANNA_PW)
        assert s.sendmail(ANNA, [ANNA], f"From: <{ANNA}>\r\nTo: <{ANNA}>\r\nSubject: after the reset\r\n"
                          f"Message-ID: {mid}\r\n\r\nStill here.\r\n".encode()) == {}
    deadline = time.monotonic() + 60
    while "Subject: after the reset" not in inbox_subjects(vm):
        assert time.monotonic() < deadline
        time.sleep(1)
    print(f"\nwatchdog: timeout {timeout} s; frozen to the next boot's first line {reset_after:.1f} s "
          f"(a boot takes {first_line:.1f} s to that line: the reset came about "
          f"{reset_after - first_line:.1f} s after the freeze); frozen to pochta ready {ready_after:.1f} s")


def vm_time(vm: VM) -> int:
    out = vm.shell("date +%s")
    return int(re.findall(r"^(\d{9,})\s*$", out, re.M)[-1])


def test_the_clock_is_set_from_a_time_server_and_never_goes_back_after_a_power_cut(vms, disk, tmp_path):
    from test_clock import Chronyd, free_udp_port

    # The RTC says 2020; the init scripts move the clock to the image's
    # build time at most. Time on this machine is the truth.
    vm = boot(vms, disk, tmp_path, "clock1", rtc_base="2020-01-01T00:00:00")
    vm.wait_for(r"Setup code:\s+([0-9A-Z]{10})", 30)
    port = free_udp_port()
    # The owner's own configuration on /data: the appliance's, with a time
    # server of the office network (the host, as QEMU's user network shows
    # it) and short health rounds.
    vm.shell("cp /etc/pochta/pochta.toml /data/pochta.toml && "
             f"sed -i 's/^ntp = .*/ntp = [\"10.0.2.2:{port}\"]/' /data/pochta.toml && "
             "printf 'health_interval_secs = 2\\n' >> /data/pochta.toml && grep ntp /data/pochta.toml")
    # A clock three days ahead: only a time server may take it back.
    vm.shell("date -s @$(( $(date +%s) + 3 * 86400 ))")
    since = len(vm.text())
    vm.shell("kill -TERM $(pidof pochta)")
    vm.wait_for(READY, 120, since)
    assert abs(vm_time(vm) - time.time()) > 2 * 86400
    c = wait_check(vm, "clock", lambda c: c["state"] == "warning", 60, "the clock check to warn first")
    warned = c["reason"]

    chronyd = Chronyd(tmp_path / "chrony", port)
    try:
        c = wait_check(vm, "clock", lambda c: c["state"] == "ok", 150,
                       "the clock check to be ok once chronyd answers")
        assert "10.0.2.2" in c["reason"], c
        skew = vm_time(vm) - time.time()
        assert abs(skew) < 5, f"the VM's clock is {skew:+.0f} s off after the sync"
        assert "clock_set" in vm.shell("grep clock_set /data/log/mail.log")
    finally:
        chronyd.stop()

    # The time is saved as pochta runs (each health round); a power cut a
    # few rounds later, and an RTC back in 2020.
    before = vm_time(vm)
    time.sleep(8)
    vm.power_cut()
    vm2 = boot(vms, disk, tmp_path, "clock2", rtc_base="2020-01-01T00:00:00")
    after = vm_time(vm2)
    assert after >= before, f"time went back across the power cut: {before} -> {after}"
    print(f"\nclock: warned with {warned!r}; skew after the sync {skew:+.1f} s; "
          f"time before the power cut {before}, after the next boot {after}")
