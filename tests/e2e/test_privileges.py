"""Least privilege (issue 13): started as root, `pochta serve` binds its
ports, then runs as the `pochta` user with no capabilities, `no_new_privs`
and Landlock (it writes only its data folder); the clock goes through a
privileged helper that refuses whatever is not in its small request set.

What is looked at is the real serving process: its /proc/PID/status, and a
write it attempts itself once confined ($POCHTA_SANDBOX_PROBE: the server
tries to make a file in that folder and says in serve.json what happened).
The folder is writable by the `pochta` user, as shown by writing there as
that user, so a refusal is Landlock's, not the file permissions'.

The helper is started here as `serve` starts it (`pochta privileged-helper`
with a socket as its standard input), and is sent requests `serve` never
sends; never one it would carry out, which would set this machine's clock
(the QEMU system test does that)."""

from __future__ import annotations

import ctypes
import json
import os
import pwd
import signal
import socket
import struct
import subprocess
import time

import pytest

from harness import traversable, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="started as root only")

CAP_SYS_TIME = 25


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none), by the system call."""
    libc = ctypes.CDLL(None, use_errno=True)
    # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(abi, 0)


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def serving_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("pochta")
    except KeyError:
        pytest.fail("no user pochta: scripts/test makes it (useradd --system pochta)", pytrace=False)


def test_the_serving_process_is_pochta_without_capabilities_and_confined(pochta, tmp_path):
    user = serving_user()
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o777)
    os.chmod(outside, 0o777)
    traversable(outside)
    # The pochta user itself may write there: only Landlock can refuse.
    subprocess.run(["touch", str(outside / "by-the-user")], user="pochta", group=user.pw_gid,
                   extra_groups=[], check=True)
    pochta.env["POCHTA_SANDBOX_PROBE"] = str(outside)
    pochta.setup_basic()
    info = pochta.start()

    status = proc_status(pochta.pid)
    uids = [int(u) for u in status["Uid"].split()]
    gids = [int(g) for g in status["Gid"].split()]
    assert uids == [user.pw_uid] * 4, status["Uid"]
    assert gids == [user.pw_gid] * 4, status["Gid"]
    assert status["Groups"] == "", status["Groups"]
    assert int(status["CapEff"], 16) == 0, status["CapEff"]
    assert int(status["CapPrm"], 16) == 0, status["CapPrm"]
    assert int(status["CapBnd"], 16) == 0, status["CapBnd"]
    assert status["NoNewPrivs"] == "1"

    sandbox = info["sandbox"]
    assert sandbox["user"] == "pochta", sandbox
    assert sandbox["writable"] == [str(pochta.data.resolve())], sandbox
    if landlock_abi() > 0:
        assert sandbox["landlock"] in ("full", "partial"), sandbox
        assert sandbox["probe"].startswith("refused"), sandbox
        assert not (outside / "written-by-pochta").exists()
    else:
        assert sandbox["landlock"] == "none", sandbox
        assert sandbox["probe"] == "written", sandbox

    # Mail still flows through the confined process, and is stored.
    pochta.assert_still_serves()

    # Secrets at rest: the data folder is pochta's alone.
    for path in [pochta.data, *pochta.data.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), f"{path} is not pochta's"
        assert st.st_mode & 0o077 == 0, f"{path} has mode {st.st_mode & 0o777:o}"
    for key in ["tls/key.pem", "setup-code.txt", "pochta.db"]:
        path = pochta.data / key
        if path.exists():
            assert path.stat().st_mode & 0o777 == 0o600, f"{key}: {path.stat().st_mode & 0o777:o}"

    # The helper: root, but with the clock's capability only.
    helper = proc_status(sandbox["helper_pid"])
    assert helper["PPid"] == str(pochta.pid)
    assert int(helper["CapEff"], 16) == 1 << CAP_SYS_TIME, helper["CapEff"]
    assert int(helper["CapBnd"], 16) == 1 << CAP_SYS_TIME, helper["CapBnd"]
    assert helper["NoNewPrivs"] == "1"
    assert pochta.stop() == 0
    wait_until(lambda: not os.path.exists(f"/proc/{sandbox['helper_pid']}"), 10, "the helper to end")


def test_a_command_run_as_root_leaves_the_folder_to_pochta(pochta):
    user = serving_user()
    pochta.setup_basic()
    pochta.start()
    pochta.stop()
    # Run as root with the server stopped: SQLite makes -wal and -shm anew.
    pochta.add_domain("later.test")
    pochta.add_account("dave@later.test", "Pw-7kq2x-5519873")
    for path in [pochta.data, *pochta.data.rglob("*")]:
        assert path.lstat().st_uid == user.pw_uid, f"{path} was left to root"
    pochta.start()
    pochta.assert_still_serves("dave@later.test")


def test_without_the_pochta_user_root_does_not_serve(pochta, tmp_path):
    # A passwd without pochta, seen by this process only (a private mount
    # namespace), as on a machine where the user was never made.
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(line for line in open("/etc/passwd") if not line.startswith("pochta:")))
    r = subprocess.run(
        ["unshare", "--mount", "sh", "-c", 'mount --bind "$1" /etc/passwd && exec "$2" serve --data "$3" --config "$4"',
         "sh", str(passwd), str(pochta.bin), str(pochta.data), str(pochta.config_path)],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 2, r
    assert "useradd --system --no-create-home --shell /usr/sbin/nologin pochta" in r.stderr, r.stderr
    assert not (pochta.data / "run" / "serve.json").exists()


def test_development_serve_as_a_normal_user(pochta, tmp_path):
    """`pochta serve` by a user who is not root: no helper, no switch, but
    the same no_new_privs and Landlock."""
    user = serving_user()
    data = tmp_path / "dev-data"
    data.mkdir()
    os.chown(data, user.pw_uid, user.pw_gid)
    proc = subprocess.Popen(
        [str(pochta.bin), "serve", "--data", str(data), "--config", str(pochta.config_path)],
        user="pochta", group=user.pw_gid, extra_groups=[], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        serve_json = data / "run" / "serve.json"
        wait_until(lambda: serve_json.exists() or proc.poll() is not None, 20, "serve.json")
        assert proc.poll() is None, proc.stderr.read().decode()
        info = json.loads(serve_json.read_text())
        assert info["sandbox"]["user"] == "pochta"
        assert "helper_pid" not in info["sandbox"], info
        assert info["sandbox"]["landlock"] == ("full" if landlock_abi() >= 5 else info["sandbox"]["landlock"])
        status = proc_status(proc.pid)
        assert status["NoNewPrivs"] == "1" and int(status["CapEff"], 16) == 0, status
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


# -- the privileged helper ------------------------------------------------


class Helper:
    """`pochta privileged-helper` on a socket pair, as `serve` starts it;
    `argv` runs the binary (under qemu-user in the system tests)."""

    def __init__(self, argv: list[str]):
        self.sock, theirs = socket.socketpair()
        self.proc = subprocess.Popen([*argv, "privileged-helper"], stdin=theirs,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        theirs.close()
        self.sock.settimeout(30)

    def frame(self, body: bytes) -> None:
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def answer(self) -> dict:
        head = self._read(4)
        (n,) = struct.unpack(">I", head)
        return json.loads(self._read(n))

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the helper closed the socket"
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


REFUSED = [
    # Out of bounds: before this build, and absurdly far ahead.
    (b'{"request":"set_clock","unix_secs":1000,"nanos":0}', "before this build"),
    (b'{"request":"set_clock","unix_secs":99999999999,"nanos":0}', "not a plausible time"),
    (b'{"request":"set_clock","unix_secs":1900000000,"nanos":1000000000}', "not below one second"),
    # In the set, but not given to this helper (no setup copy file).
    (b'{"request":"write_setup_copy","text":"x"}', "no setup copy file"),
    (b'{"request":"remove_setup_copy"}', "no setup copy file"),
    # Out of the set.
    (b'{"request":"mount","device":"/dev/sda1","on":"/mnt"}', "not a request this helper knows"),
    (b'{"request":"run","argv":["/bin/sh","-c","id"]}', "not a request this helper knows"),
    (b'{"request":"set_clock","unix_secs":1900000000,"nanos":0,"then":"run"}',
     "not a request this helper knows"),
    # Malformed.
    (b"set_clock 1900000000", "not a request this helper knows"),
    (b"\xff\xfe\x00", "not a request this helper knows"),
    (b"", "not a request this helper knows"),
]


def assert_refusals(h: Helper) -> None:
    """Every request of REFUSED is refused with its reason, the clock does
    not move, and an oversized frame ends the helper."""
    assert h.answer() == {"answer": "done"}, "the helper did not say it is ready"
    before = time.time()
    for body, why in REFUSED:
        h.frame(body)
        a = h.answer()
        assert a["answer"] == "refused", (body, a)
        assert why in a["reason"], (body, a)
    assert abs(time.time() - before) < 60, "the clock moved"
    # A frame too long to read cannot be skipped: refused, and the helper ends.
    h.sock.sendall(struct.pack(">I", 1 << 20))
    a = h.answer()
    assert a["answer"] == "refused" and "over 4096" in a["reason"], a
    assert h.proc.wait(30) == 1
    log = h.proc.stderr.read().decode()
    assert "refused: not a request this helper knows" in log, log


def test_the_helper_refuses_what_is_not_in_its_set(pochta_binary):
    h = Helper([str(pochta_binary)])
    try:
        # Ready means hardened: look before it ends.
        assert h.answer() == {"answer": "done"}
        status = proc_status(h.proc.pid)
        assert int(status["CapEff"], 16) == 1 << CAP_SYS_TIME, status["CapEff"]
        assert int(status["CapPrm"], 16) == 1 << CAP_SYS_TIME, status["CapPrm"]
        assert status["NoNewPrivs"] == "1"
    finally:
        h.close()
    h = Helper([str(pochta_binary)])
    try:
        assert_refusals(h)
    finally:
        h.close()


def test_the_helper_is_only_started_by_serve(pochta_binary):
    r = subprocess.run([str(pochta_binary), "privileged-helper"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert "started by `pochta serve`" in r.stderr, r.stderr
