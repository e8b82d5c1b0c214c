"""The admin CLI, and that its changes take effect on a running server."""

from __future__ import annotations

import pytest

from harness import (
    ALICE,
    ALICE_PW,
    BOB,
    DOMAIN,
    check_reply,
    make_message,
)

FOLDERS = ["INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"]


def auth_code(server, user: str, password: str) -> int:
    """AUTH PLAIN (UTF-8) on the submission port after STARTTLS; the reply code."""
    with server.raw("submission") as c:
        c.greeting()
        c.ehlo()
        c.starttls()
        c.ehlo()
        return c.auth_plain(user, password).code


def test_domains(pochta):
    pochta.add_domain("one.test")
    pochta.add_domain("two.test")
    out = pochta.cli("domain list").stdout
    assert "one.test" in out and "two.test" in out, out
    pochta.cli("domain remove", "two.test", "--yes")
    out = pochta.cli("domain list").stdout
    assert "one.test" in out and "two.test" not in out, out
    assert "one.test" in str(pochta.status()["domains"])


def test_accounts_and_folders(pochta):
    pochta.setup_basic()
    out = pochta.cli("account list").stdout
    assert ALICE in out and BOB in out, out
    for folder in FOLDERS:
        assert pochta.mailbox(ALICE, folder) == [], f"folder {folder} of a new account is not empty"
    res = pochta.cli("mailbox show", ALICE, "--folder", "NoSuchFolder", "--json", check=False)
    assert res.returncode != 0, "mailbox show of a missing folder succeeded"


def test_account_add_errors(pochta):
    pochta.setup_basic()
    res = pochta.cli("account add", ALICE, "--password-stdin", input="another-password\n", check=False)
    assert res.returncode != 0, "adding an existing account succeeded"
    res = pochta.cli("account add", "x@unknown-domain.test", "--password-stdin", input="long-enough-password\n", check=False)
    assert res.returncode != 0, "adding an account in a domain that is not local succeeded"


@pytest.mark.parametrize("quota", ["10M", "500K", "1G", "123456"])
def test_quota_forms_accepted(pochta, quota):
    pochta.add_domain(DOMAIN)
    pochta.add_account(f"q@{DOMAIN}", "long-enough-password", quota=quota)


@pytest.mark.parametrize("quota", ["10X", "-5", "lots", ""])
def test_quota_forms_refused(pochta, quota):
    pochta.add_domain(DOMAIN)
    res = pochta.cli("account add", f"q@{DOMAIN}", "--password-stdin", "--quota", quota,
                     input="long-enough-password\n", check=False)
    assert res.returncode != 0, f"--quota {quota!r} accepted"


def test_password_is_one_stdin_line_and_not_stored_plainly(pochta):
    pochta.add_domain(DOMAIN)
    pw = "pass word with spaces ünïcödé"
    pochta.add_account(ALICE, pw)
    pochta.start()
    assert auth_code(pochta, ALICE, pw) == 235, "AUTH with a password containing spaces and UTF-8"
    assert auth_code(pochta, ALICE, pw + "\n") != 235
    assert pochta.stop() == 0
    for path in pochta.data.rglob("*"):
        if path.is_file():
            assert pw.encode() not in path.read_bytes(), f"password stored in clear in {path}"
    for cmd in ("account list", "status"):
        assert pw not in pochta.cli(cmd).stdout


def test_disable_enable_passwd_remove_on_running_server(server):
    assert auth_code(server, ALICE, ALICE_PW) == 235

    server.cli("account disable", ALICE)
    st = {a["address"]: a for a in server.status()["accounts"]}
    assert st[ALICE]["disabled"] is True, st
    code = auth_code(server, ALICE, ALICE_PW)
    assert 500 <= code < 600, f"AUTH of a disabled account: got {code}"

    server.cli("account enable", ALICE)
    assert auth_code(server, ALICE, ALICE_PW) == 235, "AUTH after account enable"

    new_pw = "a-new-password-42"
    server.cli("account passwd", ALICE, "--password-stdin", input=new_pw + "\n")
    assert auth_code(server, ALICE, ALICE_PW) == 535, "old password still works after passwd"
    assert auth_code(server, ALICE, new_pw) == 235, "new password refused after passwd"

    server.cli("account remove", BOB, "--yes")
    assert BOB not in [a["address"] for a in server.status()["accounts"]]
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<{BOB}>"), 550, "5.1.1", what="RCPT to a removed account")

    log = server.mail_log_text()
    assert ALICE_PW not in log and new_pw not in log, "password in mail.log"


def test_mail_log_and_status_after_delivery(server):
    msg = make_message(to=ALICE, subject="logged")
    server.deliver_mx(ALICE, msg)
    with server.raw("smtp") as c:
        c.greeting()
        c.ehlo()
        check_reply(c.cmd("MAIL FROM:<x@elsewhere.invalid>"), 250, what="MAIL")
        check_reply(c.cmd(f"RCPT TO:<nobody@{DOMAIN}>"), 550, what="RCPT unknown")
    log = server.mail_log_text()
    assert ALICE in log, f"delivery to {ALICE} not in mail.log:\n{log}"
    assert f"nobody@{DOMAIN}" in log, f"rejected recipient not in mail.log:\n{log}"
    st = {a["address"]: a for a in server.status()["accounts"]}
    assert st[ALICE]["messages"] == 1, st
    assert st[ALICE]["bytes"] >= len(msg), st
    entries = server.mailbox(ALICE)
    assert len(entries) == 1
    e = entries[0]
    assert {"uid", "modseq", "size", "path", "internaldate"} <= set(e), e
    assert e["size"] >= len(msg), e
