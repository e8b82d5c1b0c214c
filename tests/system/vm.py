"""The appliance under QEMU for the system tests: scripts/run-qemu in its own
process group, its serial console collected by a thread, and bounded waits
for lines on it.

Every VM has a deadline (run-qemu's --timeout) and is killed, group and all,
when the test ends; `power_cut()` is the same SIGKILL on purpose.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = REPO_ROOT / "out" / "pochta-qemu-aarch64.img"

# tracing colours the log when the console is a terminal.
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")



# The serving pochta's pid, in the VM's shell. (`pidof pochta` also finds
# the privileged helper: BusyBox matches the executable too.)
SERVER_PID = r"""$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' /data/run/serve.json)"""

class VM:
    def __init__(self, disk: Path, workdir: Path, name: str, timeout: int = 900,
                 allow_reset: bool = False, rtc_base: str | None = None):
        self.ports_file = workdir / f"{name}-ports.json"
        self.log_path = workdir / f"{name}-console.log"
        self.started = time.monotonic()
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "run-qemu"), "--image", str(disk),
             "--timeout", str(timeout), "--ports-file", str(self.ports_file),
             *(["--allow-reset"] if allow_reset else []),
             *(["--rtc-base", rtc_base] if rtc_base else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ports = self._wait_ports()

    def _read(self):
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            self._log.write(chunk)
            self._log.flush()
            with self._lock:
                self._buf += chunk

    def _wait_ports(self) -> dict[str, int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.ports_file.exists() and self.ports_file.stat().st_size > 0:
                return json.loads(self.ports_file.read_text())
            if self.proc.poll() is not None:
                raise AssertionError(f"run-qemu exited: {self.text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError("run-qemu wrote no ports file within 30 s")

    def text(self) -> str:
        with self._lock:
            raw = bytes(self._buf)
        return ANSI.sub(b"", raw).decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float, since: int = 0) -> re.Match:
        """The first match of `pattern` in the console output after
        character `since`, within `timeout` seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text(), since)
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(f"QEMU exited while waiting for {pattern!r}:\n{self.text()[-4000:]}")
            if time.monotonic() >= deadline:
                raise AssertionError(f"no {pattern!r} on the console within {timeout} s:\n{self.text()[-4000:]}")
            time.sleep(0.1)

    def shell(self, command: str, timeout: float = 60) -> str:
        """Runs `command` in the console's shell (activated with Enter) and
        returns its output, found between two markers."""
        marker = f"M{time.monotonic_ns()}"
        since = len(self.text())
        self.proc.stdin.write(f"\necho {marker}B; {command}; echo {marker}E\n".encode())
        self.proc.stdin.flush()
        # The echo of the typed line also contains the markers: match the
        # printed ones, each at a line start.
        m = self.wait_for(rf"(?ms)^{marker}B\r*\n(.*?)^{marker}E", timeout, since)
        return m.group(1).replace("\r", "")

    def power_cut(self):
        """Kills QEMU at once, like pulling the plug."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        self._log.close()

    close = power_cut
