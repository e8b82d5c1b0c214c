"""fetchmail (Debian package `fetchmail`) downloading over POP3 with TLS:
STLS on the POP3 port and implicit TLS on the POP3S port.

fetchmail runs once in the foreground (no daemon), with its rc file, id file
and lock in the test's folder, and a timeout. The certificate is
self-signed, so instead of a CA check the test pins its fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import sys

import pytest

from harness import ALICE, ALICE_PW, make_message, unique_id

pytestmark = pytest.mark.skipif(shutil.which("fetchmail") is None,
                                reason="fetchmail not installed (apt-get install fetchmail)")

# A delivery agent that writes each message it gets on stdin to its own file.
SAVE_MESSAGE = """\
import os, sys, uuid
data = sys.stdin.buffer.read()
with open(os.path.join(sys.argv[1], uuid.uuid4().hex + ".eml"), "wb") as f:
    f.write(data)
"""


def fingerprint(pochta) -> str:
    """MD5 of the server certificate, as fetchmail's sslfingerprint wants it."""
    der = ssl.PEM_cert_to_DER_cert((pochta.data / "tls" / "cert.pem").read_text())
    digest = hashlib.md5(der).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def run_fetchmail(pochta, home, *, implicit_tls: bool, keep: bool,
                  fetchall: bool = True) -> tuple[subprocess.CompletedProcess, list[bytes]]:
    """One fetchmail run; `home` keeps its id file (seen UIDLs) between runs."""
    inbox = home / f"delivered-{unique_id('run')}"
    inbox.mkdir(parents=True)
    saver = home / "save-message.py"
    saver.write_text(SAVE_MESSAGE)
    host, port = pochta.addr("pop3s" if implicit_tls else "pop3")
    tls = "ssl sslproto 'TLS1.2+'" if implicit_tls else "sslproto 'TLS1.2+'"
    rc = home / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "set no bouncemail\n"
        "set invisible\n"
        f'poll {host} protocol POP3 service {port} auth password timeout 30 uidl\n'
        f'    user "{ALICE}" there with password "{ALICE_PW}" is "{os.environ.get("USER", "root")}" here\n'
        f"    {tls} no sslcertck sslfingerprint \"{fingerprint(pochta)}\"\n"
        f"    {'fetchall' if fetchall else 'no fetchall'} {'keep' if keep else 'no keep'}"
        " no rewrite no stripcr\n"
        f'    mda "{sys.executable} {saver} {inbox}"\n'
    )
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(home), FETCHMAILHOME=str(home), LC_ALL="C")
    argv = ["fetchmail", "--nodetach", "--nosyslog", "-v", "-f", str(rc), "-i", str(home / "fetchids")]
    try:
        res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"fetchmail did not finish within 120s: {e.stdout!r} {e.stderr!r}") from e
    got = [p.read_bytes() for p in inbox.iterdir()]
    return res, got


def deliver(pochta, n: int) -> list[bytes]:
    """Deliver n messages over SMTP; return all stored files of the INBOX."""
    before = len(pochta.messages(ALICE))
    for i in range(n):
        body = b"".join(b"%s line %d\r\n" % (b"." if j % 7 == 0 else b"", j) for j in range(50 * (i + 1)))
        pochta.deliver_mx(ALICE, make_message(to=ALICE, subject=unique_id("fetch"), body=body))
    return pochta.wait_messages(ALICE, before + n)


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["stls", "pop3s"])
def test_fetchmail_downloads_and_deletes(server, tmp_path, implicit_tls):
    stored = deliver(server, 5)
    res, got = run_fetchmail(server, tmp_path, implicit_tls=implicit_tls, keep=False)
    assert res.returncode == 0, f"fetchmail exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    log = res.stdout + res.stderr
    assert "STLS" in log or implicit_tls, f"fetchmail did not use STLS:\n{log}"
    assert sorted(got) == sorted(stored), (
        f"fetchmail delivered {len(got)} message(s), {len(stored)} stored;\n"
        f"first delivered: {got[:1]!r}\nfirst stored: {stored[:1]!r}\n{log}"
    )
    # With "no keep" fetchmail deleted them (DELE + QUIT).
    assert server.messages(ALICE) == []
    assert "deleted" in log or "flushed" in log, log


def test_fetchmail_keep_then_only_new_mail(server, tmp_path):
    stored = deliver(server, 3)
    res, got = run_fetchmail(server, tmp_path, implicit_tls=True, keep=True, fetchall=False)
    assert res.returncode == 0, f"fetchmail exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert sorted(got) == sorted(stored)
    assert server.messages(ALICE) == stored, "keep: messages must stay on the server"
    # UIDL is stable across sessions, so a second run fetches only new mail
    # (fetchmail exits 1 when there was nothing to fetch).
    res, got = run_fetchmail(server, tmp_path, implicit_tls=True, keep=True, fetchall=False)
    assert res.returncode == 1 and got == [], f"{res.returncode} {got!r}\n{res.stdout}\n{res.stderr}"
    newer = deliver(server, 1)[-1]
    res, got = run_fetchmail(server, tmp_path, implicit_tls=True, keep=True, fetchall=False)
    assert res.returncode == 0, f"fetchmail exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert got == [newer]
