"""The clock (issue 12): pochta's SNTP client asks the time servers in
`[system] ntp`, and the health page (`run/health.json`) says whether the
clock is synchronised, with whom, and by how much it is off.

A real NTP server runs on loopback: Debian's chronyd (`-x`: it never touches
this machine's clock), serving its own clock as `local stratum 8`. A box
whose clock is wrong is played by a tiny server here that answers an hour
ahead: pochta runs with `set_clock = false` in every test, so this machine's
clock is never set (that part is tested in QEMU)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import threading
import time

import pytest

from admin_http import AdminClient, logged_in
from harness import wait_until

NTP_UNIX = 2_208_988_800


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clock_check(pochta) -> dict | None:
    """The clock check of the last round, from `run/health.json` (replaced
    whole each round, so never half-written)."""
    try:
        report = json.loads((pochta.data / "run" / "health.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return next((c for c in report.get("checks", []) if c["id"] == "clock"), None)


def wait_clock(pochta, state: str, timeout: float, what: str) -> dict:
    def seen():
        check = clock_check(pochta)
        return check if check and check["state"] == state else None
    try:
        return wait_until(seen, timeout, what, interval=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; last clock check: {clock_check(pochta)}\n{pochta.log_tail()}") from e


def configure_ntp(pochta, port: int) -> None:
    pochta.configure(system={"ntp": [f"127.0.0.1:{port}"], "set_clock": False,
                             "health_interval_secs": 1})


class Chronyd:
    """chronyd on 127.0.0.1:`port`, serving this machine's clock; it does
    not control the clock (`-x`), listens on loopback only, and has no
    command port."""

    def __init__(self, root, port: int):
        binary = shutil.which("chronyd") or "/usr/sbin/chronyd"
        if not os.path.exists(binary):
            if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":  # set by .ci/run, which installs it
                pytest.fail("chronyd is missing (apt-get install chrony)")
            pytest.skip("chronyd is missing (apt-get install chrony)")
        root.mkdir(parents=True, exist_ok=True)
        conf = root / "chrony.conf"
        conf.write_text(
            f"port {port}\n"
            "bindaddress 127.0.0.1\n"
            "cmdport 0\n"
            "local stratum 8\n"
            "allow 127.0.0.1\n"
            f"pidfile {root / 'chronyd.pid'}\n"
        )
        self.log = root / "chronyd.log"
        with open(self.log, "wb") as log:
            # -d: in the foreground, logging to stderr; -x: never set the
            # clock; -u root: no change of user (its files are in tmp).
            self.proc = subprocess.Popen(
                [binary, "-f", str(conf), "-d", "-x", "-u", "root"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class WrongTimeServer:
    """An SNTP server (RFC 4330 §5) on loopback whose clock is `skew`
    seconds off: it echoes the request's transmit timestamp as originate,
    as a real server does, so only the time is wrong."""

    def __init__(self, skew: float):
        self.skew = skew
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.answered = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _stamp(self) -> bytes:
        t = time.time() + self.skew + NTP_UNIX
        return struct.pack("!II", int(t) & 0xFFFFFFFF, int((t % 1) * 2**32))

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                req, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            if len(req) < 48:
                continue
            received = self._stamp()
            head = struct.pack("!BBbb", (0 << 6) | (4 << 3) | 4, 2, 6, -20)
            reply = (head + bytes(8) + b"\x7f\x00\x00\x01" + received + req[40:48]
                     + received + self._stamp())
            self.sock.sendto(reply, peer)
            self.answered += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


def test_clock_goes_from_warning_to_ok_when_a_time_server_answers(pochta, tmp_path):
    port = free_udp_port()
    configure_ntp(pochta, port)
    pochta.start()
    # Nothing listens on the port yet: not synchronised.
    check = wait_clock(pochta, "warning", 15, "the clock check to be a warning")
    assert check["reason"].startswith(
        "The clock has not been set from a time server yet (offset unknown)"), check
    assert check["fix"], check
    # While the clock is not trusted, a wrong TOTP code says it may be the clock.
    logged_in(pochta)
    r = AdminClient(pochta.addr("admin")).post("/api/login", {
        "user": "root", "password": "correct horse battery staple", "totp": "000000"})
    assert r.status == 401, r
    assert "clock" in r.json["error"], r.json

    chronyd = Chronyd(tmp_path / "chrony", port)
    try:
        # pochta asks again 16 s after a failed poll (RFC 4330 §10: never
        # under 15 s).
        check = wait_clock(pochta, "ok", 45, "the clock check to be ok with chronyd answering")
        assert check["reason"].startswith(f"Synchronised with 127.0.0.1:{port}, offset "), check
        offset = float(check["reason"].split("offset ")[1].split(" s")[0])
        assert abs(offset) < 0.5, check
        # Trusted now: a wrong code is only a wrong code.
        r = AdminClient(pochta.addr("admin")).post("/api/login", {
            "user": "root", "password": "correct horse battery staple", "totp": "000000"})
        assert r.status == 401, r
        assert "clock" not in r.json["error"], r.json
    finally:
        chronyd.stop()
    pochta.stop()
    # The time was saved for the next boot.
    with sqlite3.connect(f"file:{pochta.db_path}?mode=ro", uri=True, timeout=10) as db:
        (saved,) = db.execute(
            "SELECT value FROM settings WHERE key = 'system.clock.last_good'").fetchone()
    assert abs(int(saved) - time.time()) < 120, saved


def test_a_clock_an_hour_off_is_a_warning_with_the_skew(pochta):
    server = WrongTimeServer(skew=3600.0)
    try:
        configure_ntp(pochta, server.port)
        pochta.start()
        check = wait_clock(pochta, "warning", 15, "the clock check to report the skew")
        wait_until(lambda: "off by" in (clock_check(pochta) or {}).get("reason", ""), 15,
                   "the skew in the clock check")
        check = clock_check(pochta)
        reason = check["reason"]
        assert f"from 127.0.0.1:{server.port}; pochta may not set it (set_clock is off)" in reason, check
        skew = float(reason.split("off by ")[1].split(" s")[0])
        assert 3599.0 < skew < 3601.0, check
        assert "set_clock" in check["fix"], check
        assert server.answered >= 1
    finally:
        server.stop()


def test_no_time_servers_is_not_checked(pochta):
    pochta.configure(system={"health_interval_secs": 1})
    pochta.start()
    check = wait_clock(pochta, "ok", 15, "the clock check")
    assert check["reason"] == "Not checked: no time servers configured", check
