"""Least privilege on the appliance (issue 13), in the image booted under
QEMU: init starts pochta as root; `ps` shows the serving process as the
user pochta (no capabilities, no_new_privs, Landlock) and the privileged
helper as root with the clock's capability only; /data is pochta's, keys
0600. A second `pochta serve` started as root like the first, with
$POCHTA_SANDBOX_PROBE, tries to write outside its data folder once
confined and is refused. A time server answering a time before the build
makes the serving process ask the helper to set the clock back, and the
helper refuses; the aarch64 helper, run under qemu-user, refuses the
out-of-set, malformed and out-of-bounds requests of
tests/e2e/test_privileges.py. Mail still
flows: test_appliance.py, test_watchdog.py (the clock is set through the
helper there) run on the same image."""

from __future__ import annotations

import json
import re
import time

import os
import shutil

import pytest

from test_watchdog import READY, boot, check
from vm import REPO_ROOT, VM

POCHTA_UID = 998
CAP_SYS_TIME = 25


def status_fields(vm: VM, pid: str) -> dict[str, str]:
    out = vm.shell(f"grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|NoNewPrivs|PPid):' /proc/{pid}/status")
    return {k: v.strip() for k, v in re.findall(r"^(\w+):\s*(.*)$", out, re.M)}


def one_line(vm: VM, command: str, pattern: str) -> str:
    # pochta's log shares the console: the line that matches.
    out = vm.shell(command)
    lines = [line for line in out.splitlines() if re.search(pattern, line)]
    assert lines, f"{command!r} printed no line matching {pattern!r}:\n{out}"
    return lines[-1]


def test_pochta_serves_as_pochta_and_the_helper_refuses(vms, disk, tmp_path):
    from test_clock import WrongTimeServer

    vm = boot(vms, disk, tmp_path, "priv")
    vm.wait_for(r"Setup code:\s+([0-9A-Z]{10})", 60)

    # ps: the server is not root; the helper is.
    ps = vm.shell("ps")
    server = [line for line in ps.splitlines() if "serve --config" in line and "/usr/bin/pochta" in line]
    helper = [line for line in ps.splitlines() if "pochta-helper privileged-helper" in line]
    assert len(server) == 1 and len(helper) == 1, ps
    assert server[0].split()[1] == "pochta", server
    assert helper[0].split()[1] == "root", helper
    server_pid, helper_pid = server[0].split()[0], helper[0].split()[0]

    s = status_fields(vm, server_pid)
    assert s["Uid"].split() == [str(POCHTA_UID)] * 4, s
    assert int(s["CapEff"], 16) == 0 and int(s["CapPrm"], 16) == 0 and int(s["CapBnd"], 16) == 0, s
    assert s["NoNewPrivs"] == "1", s
    h = status_fields(vm, helper_pid)
    assert h["PPid"] == server_pid, h
    assert int(h["CapEff"], 16) == 1 << CAP_SYS_TIME, h
    assert h["NoNewPrivs"] == "1", h

    info = json.loads(one_line(vm, "cat /data/run/serve.json", r"^\{"))
    sandbox = info["sandbox"]
    # Debian's 6.1 kernel has Landlock ABI 2: rights of later ABIs
    # (truncate, ioctl on devices) are not there, so "partial".
    assert sandbox["user"] == "pochta" and sandbox["landlock"] in ("full", "partial"), sandbox
    assert sandbox["writable"] == ["/data"], sandbox

    # Secrets at rest: everything in /data is pochta's and private.
    listing = vm.shell("find /data | xargs stat -c '%u %g %a %n'")
    entries = re.findall(r"^(\d+) (\d+) ([0-7]+) (/data\S*)$", listing, re.M)
    assert len(entries) > 10, listing
    for uid, gid, mode, path in entries:
        assert (int(uid), int(gid)) == (POCHTA_UID, POCHTA_UID), f"{path} is {uid}:{gid}"
        assert int(mode, 8) & 0o077 == 0, f"{path} has mode {mode}"
    modes = {path: mode for _, _, mode, path in entries}
    for key in ["/data/tls/key.pem", "/data/setup-code.txt", "/data/pochta.db"]:
        assert modes.get(key) == "600", (key, modes.get(key))
    # The setup code's copy on the root-owned boot partition: the helper's.
    assert "SETUP.TXT" in vm.shell("ls /boot"), "the helper did not write SETUP.TXT"

    # Landlock: a second server, started as root as init starts the first,
    # tries to write into a folder anyone may write, outside its data.
    vm.shell("mkdir -p /tmp/probe /tmp/d2 && chmod 777 /tmp/probe && "
             "printf '[listen]\\nsmtp = [\"127.0.0.1:0\"]\\nsubmission = []\\nsubmissions = []\\n"
             "imap = []\\nimaps = []\\npop3 = []\\npop3s = []\\n[admin]\\nlisten = [\"127.0.0.1:0\"]\\n"
             "listen_tls = []\\n' > /tmp/c2.toml")
    vm.shell("(POCHTA_SANDBOX_PROBE=/tmp/probe pochta --data /tmp/d2 serve --config /tmp/c2.toml "
             "> /tmp/d2.log 2>&1 &)")
    vm.shell("i=0; while [ ! -f /tmp/d2/run/serve.json ] && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done",
             timeout=150)
    second = json.loads(one_line(vm, "cat /tmp/d2/run/serve.json", r"^\{"))["sandbox"]
    assert second["user"] == "pochta", second
    assert second["probe"].startswith("refused"), second
    assert "written-by-pochta" not in vm.shell("ls -a /tmp/probe")
    vm.shell("touch /tmp/probe/by-root && ls -l /tmp/probe")
    vm.shell("kill -TERM $(cat /tmp/d2/run/serve.lock)")

    # The helper refuses a clock before this build, asked by the server
    # itself when a time server says it is 2001.
    past = WrongTimeServer(skew=978_307_200 - time.time())
    try:
        vm.shell("cp /etc/pochta/pochta.toml /data/pochta.toml && "
                 f"sed -i 's/^ntp = .*/ntp = [\"10.0.2.2:{past.port}\"]/' /data/pochta.toml && "
                 "printf 'health_interval_secs = 2\\n' >> /data/pochta.toml")
        since = len(vm.text())
        vm.shell("kill -TERM $(pidof pochta)")
        vm.wait_for(READY, 180, since)
        m = vm.wait_for(r"privileged helper: refused: (set_clock: -?\d+ is before this build[^\r\n]*)", 120, since)
        print(f"\nhelper: {m.group(1)}")
        c = check(vm, "clock")
        assert c["state"] != "ok", c
        # The clock stayed where it was (in this century).
        now = int(one_line(vm, "date +%s", r"^\d+\s*$"))
        assert abs(now - time.time()) < 3600, now
    finally:
        past.stop()


def test_the_aarch64_helper_refuses_what_is_not_in_its_set():
    # tests/e2e is on the path (conftest.py): its requests and checks.
    from test_privileges import Helper, assert_refusals

    binary = REPO_ROOT / "out" / "firmware" / "pochta"
    if not binary.is_file():
        pytest.fail("out/firmware/pochta is missing: run scripts/build-firmware", pytrace=False)
    if os.geteuid() != 0 or not shutil.which("qemu-aarch64-static"):
        pytest.skip("needs root and qemu-aarch64-static")
    h = Helper(["qemu-aarch64-static", str(binary)])
    try:
        assert_refusals(h)
    finally:
        h.close()
