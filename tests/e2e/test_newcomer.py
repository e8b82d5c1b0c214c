"""The first hour with Pochta, as a newcomer meets it on the command line:
data folders that are never made by mistake, one server per folder, one rule
for addresses and passwords, destructive commands that ask first, words that
say what happened, human sizes, and the certificate the box makes for
itself. Each test here failed on the CLI as it was before issue 11."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    DOMAIN,
    Pochta,
    make_message,
    pochta_bin,
    wait_until,
)
from admin_http import logged_in


def run(argv: list[str], *, cwd: Path | None = None, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, input=input, capture_output=True, text=True,
                          timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


# -- data folders ---------------------------------------------------------


def test_a_mistyped_data_folder_is_not_created(tmp_path):
    missing = tmp_path / "nonexistent" / "deep" / "dir"
    res = run([str(pochta_bin()), "--data", str(missing), "domain", "list"])
    assert res.returncode != 0, res
    assert "no Pochta data folder" in res.stderr and "--data" in res.stderr, res.stderr
    assert "pochta init" in res.stderr, res.stderr
    assert not (tmp_path / "nonexistent").exists(), "the mistyped folder was made"


def test_status_elsewhere_says_there_is_no_data_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "POCHTA_DATA"}
    res = subprocess.run([str(pochta_bin()), "status"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert res.returncode != 0, res
    assert "no Pochta data folder" in res.stderr, res.stderr
    assert "accounts" not in res.stdout
    assert not (tmp_path / "pochta-data").exists(), "status made ./pochta-data"


def test_init_makes_a_folder_once(tmp_path):
    data = tmp_path / "box"
    first = run([str(pochta_bin()), "init", "--data", str(data)])
    assert first.returncode == 0 and (data / "pochta.db").is_file(), first
    again = run([str(pochta_bin()), "init", "--data", str(data)])
    assert again.returncode == 0 and "already" in again.stdout, again
    assert run([str(pochta_bin()), "domain", "list", "--data", str(data)]).returncode == 0


def test_a_second_server_on_one_folder_is_refused(pochta):
    pochta.setup_basic()
    first = pochta.start()
    second = Pochta(pochta.root / "second")
    second.data = pochta.data  # the same folder, other ports (all :0)
    log = pochta.root / "second.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(pochta.bin), "serve", "--data", str(pochta.data),
                                 "--config", str(second.config_path)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert rc != 0, text
    assert f"already served by pid {pochta.pid}" in text, text
    # The first server and its ready file are untouched.
    assert json.loads(pochta.serve_json.read_text())["pid"] == pochta.pid
    pochta.assert_still_serves()
    st = pochta.status()
    assert st["server"]["running"] is True and st["server"]["pid"] == pochta.pid, st
    assert first["smtp"] == st["server"]["smtp"], st


def test_status_asks_the_lock_not_the_file(pochta):
    pochta.setup_basic()
    pochta.start()
    # serve.json gone while the server runs (a second server used to
    # delete it as it ended): still running, by the lock.
    pochta.serve_json.unlink()
    st = pochta.status()
    assert st["server"]["running"] is True and st["server"]["pid"] == pochta.pid, st
    assert f"pid {pochta.pid}" in pochta.cli("status").stdout
    pochta.kill()  # no clean stop: a stale serve.json stays behind
    pochta.serve_json.write_text(json.dumps({"pid": pochta.pid}))
    assert pochta.serve_json.exists()
    st = pochta.status()
    assert st["server"]["running"] is False, st
    text = pochta.cli("status").stdout
    assert "server: not running" in text, text
    pochta.start()  # the lock died with the process
    assert pochta.status()["server"]["running"] is True


# -- one rule for addresses and passwords ---------------------------------


@pytest.mark.parametrize("address,why", [
    ("a b@example.test", "spaces"),
    ("a,b@example.test", "','"),
    ("ann@example", "top-level domain"),
])
def test_bad_addresses_are_refused_by_the_cli(pochta, address, why):
    pochta.add_domain(DOMAIN)
    res = pochta.cli("account add", address, "--password-stdin", input=ALICE_PW + "\n", check=False)
    assert res.returncode != 0 and why in res.stderr, res
    assert pochta.cli_json("account list") == []


def test_alias_target_without_a_top_level_domain_is_refused(pochta):
    pochta.setup_basic()
    pochta.add_alias(f"info@{DOMAIN}", ALICE)
    res = pochta.cli("alias add", f"info@{DOMAIN}", "nosuch@nowhere", check=False)
    assert res.returncode != 0 and "top-level domain" in res.stderr, res
    assert pochta.cli("alias list").stdout.strip() == f"info@{DOMAIN} -> {ALICE}"


def test_adding_a_target_to_an_existing_alias_says_so(pochta):
    pochta.setup_basic()
    pochta.add_alias(f"info@{DOMAIN}", ALICE)
    out = pochta.cli("alias add", f"info@{DOMAIN}", BOB).stdout
    assert "added to the existing" in out and BOB in out, out


def test_one_password_policy_for_cli_and_page(pochta):
    """The CLI refuses what the page refuses, with the same words."""
    pochta.add_domain(DOMAIN)
    pochta.start()
    client = logged_in(pochta)
    for weak in ["letmein1", "Welcome2026!", "anna-Secret-pw-1", "aaaaaaaaaaaaaaaa"]:
        res = pochta.cli("account add", f"anna@{DOMAIN}", "--password-stdin", input=weak + "\n",
                         check=False)
        assert res.returncode != 0, f"the CLI took {weak!r}"
        r = client.post("/api/accounts", {"address": f"anna@{DOMAIN}", "password": weak})
        assert r.status == 400, r
        assert r.json["error"] in res.stderr, (weak, r.json["error"], res.stderr)
    res = pochta.cli("account add", "bad address@" + DOMAIN, "--password-stdin",
                     input=ALICE_PW + "\n", check=False)
    r = client.post("/api/accounts", {"address": "bad address@" + DOMAIN, "password": ALICE_PW})
    assert r.status == 400 and r.json["error"] in res.stderr, (r.json, res.stderr)


# -- destructive commands ask first ---------------------------------------


def on_terminal(pochta: Pochta, args: list[str], answer: str | None,
                timeout: float = 30) -> tuple[int, str]:
    """Runs a command with a terminal on its standard input (as a person at
    a shell has), answers its prompt, and returns (status, what it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(pochta.bin), *args, "--data", str(pochta.data)],
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    answered = answer is None
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break  # the command ended and closed the terminal
                if not chunk:
                    break
                seen += chunk
                if not answered and (b"to confirm" in seen or b"[y/N]" in seen):
                    os.write(master, answer.encode() + b"\r")
                    answered = True
            elif proc.poll() is not None:
                break
        rc = proc.wait(max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return rc, seen.decode(errors="replace")


def test_account_remove_asks_first(pochta):
    pochta.setup_basic()
    res = pochta.cli("account remove", BOB, check=False)
    assert res.returncode != 0 and "--yes" in res.stderr and "all its mail" in res.stderr, res
    assert any(a["address"] == BOB for a in pochta.cli_json("account list"))
    rc, text = on_terminal(pochta, ["account", "remove", BOB], "not-the-address")
    assert rc != 0 and "nothing was changed" in text, text
    assert any(a["address"] == BOB for a in pochta.cli_json("account list"))
    rc, text = on_terminal(pochta, ["account", "remove", BOB], BOB)
    assert rc == 0 and f"Type {BOB} to confirm" in text, text
    assert not any(a["address"] == BOB for a in pochta.cli_json("account list"))


def test_generated_passwd_asks_first(pochta):
    pochta.setup_basic()
    pochta.start()
    res = pochta.cli("account passwd", ALICE, check=False)
    assert res.returncode != 0 and "--yes" in res.stderr, res
    with pochta.submit_client(ALICE, ALICE_PW):
        pass  # the old password still works
    rc, text = on_terminal(pochta, ["account", "passwd", ALICE], "n")
    assert rc != 0 and "[y/N]" in text, text
    out = pochta.cli("account passwd", ALICE, "--yes").stdout
    new = re.search(r"password for \S+: (\S+)", out).group(1)
    with pochta.submit_client(ALICE, new):
        pass


def test_domain_remove_and_queue_delete_ask_first(pochta):
    pochta.add_domain("two.test")
    res = pochta.cli("domain remove", "two.test", check=False)
    assert res.returncode != 0 and "--yes" in res.stderr, res
    assert "two.test" in pochta.cli("domain list").stdout
    rc, text = on_terminal(pochta, ["domain", "remove", "two.test"], "two.test")
    assert rc == 0, text
    assert "two.test" not in pochta.cli("domain list").stdout
    res = pochta.cli("queue delete", "12345", check=False)
    assert res.returncode != 0 and "no queue item 12345" in res.stderr, res


def test_alias_remove_one_target(pochta):
    pochta.setup_basic()
    pochta.add_alias(f"team@{DOMAIN}", ALICE, BOB)
    out = pochta.cli("alias remove", f"team@{DOMAIN}", BOB).stdout
    assert "still leads to" in out and ALICE in out, out
    assert pochta.cli("alias list").stdout.strip() == f"team@{DOMAIN} -> {ALICE}"
    res = pochta.cli("alias remove", f"team@{DOMAIN}", "carol@example.test", check=False)
    assert res.returncode != 0 and "is not a target" in res.stderr, res
    out = pochta.cli("alias remove", f"team@{DOMAIN}", ALICE).stdout
    assert "last target" in out, out
    assert "no aliases yet" in pochta.cli("alias list").stdout


# -- words ----------------------------------------------------------------


def test_alias_on_an_account_address_reads_right(pochta):
    pochta.setup_basic()
    res = pochta.cli("alias add", BOB, ALICE, check=False)
    assert res.returncode != 0, res
    assert f"{BOB} is an account: an alias needs an address of its own" in res.stderr, res.stderr
    assert "exists already" not in res.stderr, res.stderr


def test_mailbox_show_of_an_unknown_account(pochta):
    pochta.setup_basic()
    res = pochta.cli("mailbox show", f"nosuch@{DOMAIN}", check=False)
    assert res.returncode != 0 and f"no such account nosuch@{DOMAIN}" in res.stderr, res
    res = pochta.cli("mailbox show", ALICE, "--folder", "Nope", check=False)
    assert res.returncode != 0 and "no such folder Nope" in res.stderr, res


def test_disabled_accounts_still_receive_as_the_help_says(pochta):
    help_text = pochta.cli("account disable", "--help").stdout
    assert "still arrives" in help_text and "Refuse logins and mail" not in help_text, help_text
    pochta.setup_basic()
    pochta.cli("account disable", ALICE)
    pochta.start()
    pochta.deliver_mx(ALICE, make_message(subject="while disabled"))
    pochta.wait_messages(ALICE, 1)


def test_empty_lists_say_so(pochta):
    assert "no domains yet" in pochta.cli("domain list").stdout
    assert "no accounts yet" in pochta.cli("account list").stdout
    assert "no aliases yet" in pochta.cli("alias list").stdout
    assert "queue is empty" in pochta.cli("queue list").stdout
    pochta.setup_basic()
    assert f"no messages in INBOX of {ALICE}" in pochta.cli("mailbox show", ALICE).stdout
    assert pochta.cli_json("queue list") == []


def test_sizes_are_human_and_exact_in_json(pochta):
    pochta.add_domain(DOMAIN)
    pochta.add_account(ALICE, ALICE_PW, quota="2G")
    listing = pochta.cli("account list").stdout
    assert "2 GB" in listing and "2147483648" not in listing, listing
    assert pochta.cli_json("account list")[0]["quota_bytes"] == 2147483648
    out = pochta.cli("account quota", ALICE, "500M").stdout
    assert "500 MB" in out, out
    status = pochta.cli("status").stdout
    assert "0 B" in status and "0.0 MB" not in status, status


def test_mailbox_show_lists_mail_not_files(pochta):
    pochta.setup_basic()
    pochta.start()
    pochta.deliver_mx(ALICE, make_message(sender="carol@remote.invalid", subject="Quarterly figures"))
    pochta.wait_messages(ALICE, 1)
    out = pochta.cli("mailbox show", ALICE).stdout
    assert "Quarterly figures" in out and "carol@remote.invalid" in out, out
    assert "/blobs/" not in out, out
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", out), out
    listed = pochta.mailbox(ALICE)
    assert listed[0]["subject"] == "Quarterly figures" and Path(listed[0]["path"]).is_file()


def test_a_closed_pipe_ends_quietly(pochta):
    """`pochta status | head -1`: the reader is gone before pochta writes."""
    pochta.setup_basic()
    for words in (["status"], ["account", "list"], ["completions", "bash"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        proc = subprocess.run([str(pochta.bin), *words, "--data", str(pochta.data)],
                              stdout=write_end, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=60)
        os.close(write_end)
        err = proc.stderr.decode(errors="replace")
        assert "panicked" not in err and "Broken pipe" not in err, (words, err)
        assert proc.returncode in (0, -signal.SIGPIPE), (words, proc.returncode, err)


def test_a_new_store_logs_one_line(tmp_path):
    data = tmp_path / "fresh"
    box = Pochta(tmp_path / "box")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(box.bin), "serve", "--data", str(data), "--config",
                                 str(box.config_path)], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        wait_until(lambda: (data / "run" / "serve.json").exists(), 30, "serve.json")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    text = log.read_text()
    assert len(re.findall(r"schema migrated|store created", text)) == 1, text


# -- what users expect ----------------------------------------------------


def test_status_shows_the_admin_page_and_pending_setup(pochta):
    pochta.setup_basic()
    st = pochta.status()
    assert st["setup"]["pending"] is True
    assert "not running" in pochta.cli("status").stdout
    pochta.start()
    host, port = pochta.addr("admin")
    text = pochta.cli("status").stdout
    assert f"http://{host}:{port}/" in text, text
    code_file = pochta.data / "setup-code.txt"
    assert "setup: not done yet" in text and str(code_file.resolve()) in text, text
    st = pochta.status()
    assert st["server"]["admin_urls"][0] == f"http://{host}:{port}/", st
    logged_in(pochta)
    text = pochta.cli("status").stdout
    assert "setup" not in text, text
    assert pochta.status()["setup"] == {"pending": False, "code_file": None}


def test_completions_and_manual_pages(pochta, tmp_path):
    bash = pochta.cli("completions bash").stdout
    assert "complete -F" in bash and "mailbox" in bash, bash[:300]
    assert pochta.cli("completions zsh").stdout.startswith("#compdef pochta")
    assert "complete -c pochta" in pochta.cli("completions fish").stdout
    page = pochta.cli("man").stdout
    assert page.startswith(".ie") or ".TH pochta" in page, page[:200]
    out = tmp_path / "man1"
    pochta.cli("man", "--dir", str(out))
    names = sorted(p.name for p in out.iterdir())
    assert "pochta.1" in names and "pochta-account.1" in names and "pochta-account-remove.1" in names, names
    rendered = run(["man", "-l", str(out / "pochta-account-remove.1")])
    assert rendered.returncode == 0 and "--yes" in rendered.stdout, rendered


def test_domain_dns_warns_about_a_bare_host_name(pochta):
    pochta.add_domain(DOMAIN)
    res = pochta.cli("domain dns", DOMAIN, "--host", "vm")
    assert "warning" in res.stderr and "not a full domain name" in res.stderr, res.stderr
    assert "10 vm." in res.stdout
    res = pochta.cli("domain dns", DOMAIN, "--host", "mail.example.com")
    assert "warning" not in res.stderr, res.stderr


# -- the first-boot line and the certificate ------------------------------


def cert_text(path: Path) -> str:
    res = run(["openssl", "x509", "-in", str(path), "-noout", "-subject", "-issuer", "-dates",
               "-ext", "subjectAltName"])
    assert res.returncode == 0, res
    return res.stdout


def peer_cert_pem(addr) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(addr, timeout=10) as raw, ctx.wrap_socket(raw) as tls:
        return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def test_first_boot_line_names_an_address_that_opens(pochta):
    pochta.start()
    host, port = pochta.addr("admin")
    line = next(l for l in pochta.log_tail(400).splitlines() if "no administrator yet" in l)
    assert f"open http://{host}:{port}/" in line, line
    assert "self-signed" in line and "0.0.0.0" not in line, line


def test_the_self_signed_certificate_is_named_after_the_box(pochta):
    pochta.start()
    text = cert_text(pochta.data / "tls" / "cert.pem")
    assert "CN = mx.test.local" in text and "rcgen" not in text, text
    assert "DNS:mx.test.local" in text and "IP Address:127.0.0.1" in text, text
    dates = dict(l.split("=", 1) for l in text.splitlines() if l.startswith("not"))
    days = (ssl.cert_time_to_seconds(dates["notAfter"]) - ssl.cert_time_to_seconds(dates["notBefore"])) / 86400
    assert 364 < days < 367, text
    # The dashboard's expiry is now months, not "2069 years".
    client = logged_in(pochta)
    left = client.get("/api/dashboard").json["tls_certificate"]["seconds_left"]
    assert 364 * 86400 < left <= 366 * 86400, left


def test_an_old_rcgen_certificate_is_replaced_and_an_owners_is_kept(pochta, tmp_path):
    tls = pochta.data / "tls"
    tls.mkdir(exist_ok=True)
    old = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-subj", "/CN=rcgen self signed cert", "-days", "36500",
               "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem")])
    assert old.returncode == 0, old
    pochta.start()
    assert "CN = mx.test.local" in cert_text(tls / "cert.pem")
    pochta.stop()
    mine = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-subj", "/CN=mail.example.com/O=Example Ltd", "-days", "90",
                "-keyout", str(tls / "key.pem"), "-out", str(tls / "cert.pem")])
    assert mine.returncode == 0, mine
    before = (tls / "cert.pem").read_text()
    pochta.start()
    assert (tls / "cert.pem").read_text() == before, "the owner's certificate was replaced"
    assert "mail.example.com" in cert_text(tls / "cert.pem")


def test_a_replaced_certificate_is_served_after_sighup(pochta, tmp_path):
    pochta.setup_basic()
    pochta.start()
    addr = pochta.addr("imaps")
    first = peer_cert_pem(addr)
    tls = pochta.data / "tls"
    made = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-subj", "/CN=mail.example.com/O=Example Ltd", "-days", "90",
                "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")])
    assert made.returncode == 0, made
    os.replace(tmp_path / "key.pem", tls / "key.pem")
    os.replace(tmp_path / "cert.pem", tls / "cert.pem")
    if os.geteuid() == 0:
        # Put in place by root: given to the user the server runs as
        # (README, "Privileges").
        import pwd
        user = pwd.getpwnam("pochta")
        for name in ("key.pem", "cert.pem"):
            os.chown(tls / name, user.pw_uid, user.pw_gid)
    os.kill(pochta.pid, signal.SIGHUP)
    wait_until(lambda: peer_cert_pem(addr) != first, 10, "the new certificate on IMAPS")
    assert peer_cert_pem(addr).strip() == (tls / "cert.pem").read_text().strip()
    pochta.assert_still_serves()
