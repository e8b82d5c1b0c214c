"""Configuration validation, serve.json, TLS certificate handling and graceful shutdown."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from harness import (
    ALICE,
    ConnectionClosed,
    check_reply,
    ehlo_keywords,
    make_message,
    parse_addr,
    tls_context,
    unique_id,
    wait_until,
)

LISTEN = """
[listen]
smtp = ["127.0.0.1:0"]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
pop3 = ["127.0.0.1:0"]
pop3s = ["127.0.0.1:0"]
"""

LISTEN_NO_SMTP = """
[listen]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
pop3 = ["127.0.0.1:0"]
pop3s = ["127.0.0.1:0"]
"""

# (id, config text, word that stderr must contain)
BAD_CONFIGS = [
    ("unknown-top-level-key", 'bogus_key = 1\n' + LISTEN, "bogus_key"),
    ("unknown-key-in-limits", LISTEN + "[limits]\nmax_mesage_bytes = 1000\n", "max_mesage_bytes"),
    ("unknown-section", LISTEN + "[bogus_section]\nx = 1\n", "bogus_section"),
    ("wrong-type-max-recipients", LISTEN + '[limits]\nmax_recipients = "many"\n', "max_recipients"),
    ("wrong-type-hostname", "hostname = 42\n" + LISTEN, "hostname"),
    ("wrong-type-grace", LISTEN + '[server]\nshutdown_grace_secs = "soon"\n', "shutdown_grace_secs"),
    ("wrong-type-listen", LISTEN_NO_SMTP.replace("[listen]\n", "[listen]\nsmtp = 25\n"), "smtp"),
    ("zero-max-message-bytes", LISTEN + "[limits]\nmax_message_bytes = 0\n", "max_message_bytes"),
    ("negative-max-connections", LISTEN + "[limits]\nmax_connections = -1\n", "max_connections"),
    ("invalid-listen-address", LISTEN_NO_SMTP.replace("[listen]\n", '[listen]\nsmtp = ["not-an-address"]\n'),
     "smtp"),
    ("listen-port-out-of-range",
     LISTEN_NO_SMTP.replace("[listen]\n", '[listen]\nsmtp = ["127.0.0.1:70000"]\n'), "smtp"),
]


def run_serve(pochta, timeout: float = 20) -> subprocess.CompletedProcess:
    argv = [str(pochta.bin), "serve", "--data", str(pochta.data), "--config", str(pochta.config_path)]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"pochta serve with a bad config was still running after {timeout}s") from e


@pytest.mark.parametrize("text,key", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_refused(pochta, text, key):
    pochta.write_config(text)
    res = run_serve(pochta)
    assert res.returncode != 0, f"serve accepted a bad config ({key}); stderr: {res.stderr}"
    assert key in res.stderr, f"stderr does not name {key!r}:\n{res.stderr}"
    assert not pochta.serve_json.exists(), "serve.json written despite a bad config"


def test_unparsable_config_refused(pochta):
    pochta.write_config('hostname = "unterminated\n' + LISTEN)
    res = run_serve(pochta)
    assert res.returncode != 0
    assert res.stderr.strip(), "no message on stderr for a TOML syntax error"


def test_missing_config_file_refused(pochta):
    pochta.config_path.unlink()
    res = run_serve(pochta)
    assert res.returncode != 0, "serve started without its config file"
    assert str(pochta.config_path.name) in res.stderr, f"stderr does not name the file:\n{res.stderr}"


def test_port_in_use_refused(pochta):
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        pochta.configure(listen={"smtp": [f"127.0.0.1:{port}"]})
        res = run_serve(pochta)
        assert res.returncode != 0, "serve started although its smtp port is taken"
        assert str(port) in res.stderr, f"stderr does not name the busy address:\n{res.stderr}"
        assert not pochta.serve_json.exists()
    finally:
        blocker.close()


def test_serve_json_and_banner(pochta):
    pochta.configure(hostname="mx.test.local")
    info = pochta.start()
    assert info["hostname"] == "mx.test.local", info
    for service in ("smtp", "submission", "submissions"):
        assert len(info[service]) == 1, f"{service}: {info}"
        host, port = parse_addr(info[service][0])
        assert host == "127.0.0.1" and port > 0, f"{service} bound to {info[service][0]}"
    # RFC 5321 §4.2: the greeting carries the server's name.
    with pochta.raw("smtp") as c:
        r = c.greeting()
        assert r.lines[0].split(" ")[0] == "mx.test.local", f"greeting: {r!r}"
        assert c.cmd("EHLO client.e2e.test").lines[0].split(" ")[0] == "mx.test.local"


def test_sigterm_graceful_shutdown(pochta):
    pochta.start()
    addr = pochta.addr("smtp")
    rc = pochta.stop()
    assert rc == 0, f"exit code after SIGTERM: {rc}\n{pochta.log_tail()}"
    assert not pochta.serve_json.exists(), "serve.json left behind after a clean exit"
    with pytest.raises(OSError):
        socket.create_connection(addr, timeout=2).close()


def test_sigterm_with_idle_client(pochta):
    pochta.configure(server={"shutdown_grace_secs": 2})
    pochta.start()
    with pochta.raw("smtp", timeout=10) as c:
        c.greeting()
        c.ehlo()
        started = time.monotonic()
        pochta.proc.send_signal(signal.SIGTERM)
        try:
            rc = pochta.proc.wait(2 + 8)
        except subprocess.TimeoutExpired:
            raise AssertionError("server with an idle client did not exit within grace (2s) + 8s")
        took = time.monotonic() - started
        assert rc == 0, f"exit code {rc} after SIGTERM with an idle client\n{pochta.log_tail()}"
        # The client was told (421) or at least disconnected.
        try:
            r = c.reply(timeout=2)
        except (ConnectionClosed, OSError):
            r = None
        if r is not None:
            check_reply(r, 421, what="reply to an idle client at shutdown")
        assert c.wait_closed(2), "client connection still open after the server exited"
    assert not pochta.serve_json.exists()
    print(f"exited {took:.1f}s after SIGTERM")


def test_sigterm_mid_transaction_is_consistent(pochta):
    """A message in flight at SIGTERM is either acknowledged and stored, or refused and not stored."""
    pochta.configure(server={"shutdown_grace_secs": 5})
    pochta.setup_basic()
    pochta.start()
    marker = unique_id("inflight")
    msg = make_message(to=ALICE, subject=marker, message_id=f"<{marker}@e2e.test>",
                       body=(b"m" * 70 + b"\r\n") * 200)
    half = len(msg) // 2
    with pochta.raw("smtp", timeout=10) as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<{ALICE}>"), 250, what="RCPT")
        check_reply(c.cmd("DATA"), 354, what="DATA")
        c.send(msg[:half])
        pochta.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        reply = None
        try:
            c.send(msg[half:] + b".\r\n")
            reply = c.reply(timeout=10)
        except Exception:
            reply = None
    try:
        rc = pochta.proc.wait(5 + 10)
    except subprocess.TimeoutExpired:
        raise AssertionError("server did not exit within grace + 10s")
    assert rc == 0, f"exit code {rc}"
    stored = [m for m in pochta.messages(ALICE) if marker.encode() in m]
    if reply is not None and reply.code == 250:
        assert len(stored) == 1, "250 at shutdown but the message is not in the store"
    else:
        assert stored == [], f"message stored although the reply was {reply!r}"


def test_full_config_and_own_certificate(pochta, tmp_path):
    # First start generates the default self-signed certificate.
    pochta.start()
    default_cert = pochta.data / "tls" / "cert.pem"
    assert default_cert.is_file(), "no certificate generated at DATA/tls/cert.pem"
    default_der = ssl.PEM_cert_to_DER_cert(default_cert.read_text())
    with socket.create_connection(pochta.addr("submissions"), timeout=10) as s:
        with tls_context().wrap_socket(s) as t:
            assert t.getpeercert(binary_form=True) == default_der, "served cert is not DATA/tls/cert.pem"
    assert pochta.stop() == 0

    # Restart: the same certificate is reused, not regenerated.
    pochta.start()
    assert ssl.PEM_cert_to_DER_cert(default_cert.read_text()) == default_der, "certificate regenerated"
    assert pochta.stop() == 0

    own_cert = tmp_path / "own-cert.pem"
    own_key = tmp_path / "own-key.pem"
    keys = [p for p in (pochta.data / "tls").iterdir()
            if p != default_cert and "PRIVATE KEY" in p.read_text(errors="replace")]
    assert keys, f"no private key file next to the generated certificate: {list((pochta.data / 'tls').iterdir())}"
    shutil.copy(default_cert, own_cert)
    shutil.copy(keys[0], own_key)
    if os.geteuid() == 0:
        # Readable by the user the server runs as (README, "Privileges").
        user = pwd.getpwnam("pochta")
        for own in (own_cert, own_key):
            os.chown(own, user.pw_uid, user.pw_gid)
    default_cert.unlink()
    full = f"""
hostname = "full.test.local"

[listen]
smtp = ["127.0.0.1:0"]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
pop3 = ["127.0.0.1:0"]
pop3s = ["127.0.0.1:0"]

[limits]
max_message_bytes = 12345678
max_recipients = 7
max_line_bytes = 2048
command_timeout_secs = 60
max_connections = 20

[server]
shutdown_grace_secs = 3

[admin]
listen = ["127.0.0.1:0"]

[tls]
cert_file = "{own_cert}"
key_file = "{own_key}"
"""
    pochta.write_config(full)
    pochta.config["server"] = {"shutdown_grace_secs": 3}
    info = pochta.start()
    assert info["hostname"] == "full.test.local"
    with pochta.raw("submission") as c:
        c.greeting()
        kws = ehlo_keywords(c.ehlo())
        assert kws.get("SIZE") == "12345678", f"SIZE does not follow max_message_bytes: {kws}"
        c.starttls()
        assert c.sock.getpeercert(binary_form=True) == default_der, "served cert is not tls.cert_file"
    assert pochta.stop() == 0


def test_cli_works_without_server(pochta):
    pochta.setup_basic()
    st = pochta.status()
    assert set(st) >= {"domains", "accounts", "queue"}, st
    addrs = sorted(a["address"] for a in st["accounts"])
    assert addrs == sorted([ALICE, "bob@example.test"]), st
    assert st["queue"] == 0
    for a in st["accounts"]:
        assert a["messages"] == 0 and a["disabled"] is False, a
    assert pochta.mailbox(ALICE) == []


def test_stale_serve_json_replaced(pochta):
    """After SIGKILL a stale serve.json may remain; a new start writes a fresh one."""
    pochta.start()
    first = pochta.pid
    pochta.kill()
    info = pochta.start()
    assert info["pid"] == pochta.pid != first
    wait_until(lambda: pochta.running(), 5, "server running")
    with pochta.raw("smtp") as c:
        c.greeting()
