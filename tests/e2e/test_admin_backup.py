"""The Backup page and /api/backup against a real `pochta serve`: the folder
set through the API (and the restart a Landlock-confined server needs before
it may write there, said on the page and by a run that meets it), a backup
and a test restore started from the page and ended in the background, the
record of runs and the snapshots they leave, a run refused in words while
another holds the lock, and the backup key behind the password and a second
factor: refused for a wrong code (counted like a failed login) and for an
API token, the same key as `pochta backup key`, and one that Debian's restic
opens the folder with."""

from __future__ import annotations

import fcntl
import html
import json
import re
import time

from admin_http import AdminClient, totp
from harness import ALICE, BOB, wait_until
from test_admin_api import ADMIN_PW, do_setup
from test_admin_keys import bearer
from test_admin_pages import FORM, check_page, csrf_of, error_of, post_form
from test_backup import backup_folder, run_restic

NOT_SET_UP = "No backup is set up: a failed SD card would lose all mail."
KEY = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){5}$")
SHEET_SENTENCE = "Without this key the backup cannot be read, by Pochta or anyone: keep it away from the box."


def enrol(pochta) -> tuple[AdminClient, str, float, list[str]]:
    """Setup and TOTP enrolment: the client, the secret, the time whose
    step the confirmation used up, and the recovery codes."""
    c, secret = do_setup(pochta)
    at = time.time()
    r = c.post("/api/totp/confirm", {"code": totp(secret, at)})
    assert r.status == 200, r
    return c, secret, at, r.json["recovery_codes"]


def fresh_code(secret: str, used_at: float) -> tuple[str, float]:
    """A code of a step after the one used at `used_at` (each step's code
    is accepted once), waiting for that step: at most 30 s."""
    wait = (int(used_at // 30) + 1) * 30 - time.time()
    if wait > 0:
        time.sleep(wait + 0.2)
    now = time.time()
    return totp(secret, now), now


def confined(pochta) -> bool:
    """Whether Landlock confines the server (it then writes only the folders
    it could when it started)."""
    return pochta.info["sandbox"]["landlock"] != "none"


def start_and_wait(c: AdminClient, path: str, kind: str, form: bool = False, timeout: float = 180) -> dict:
    """Starts a run (the API, or the page's button) and waits, bounded, for
    the page's record of it to end; returns how it ended."""
    before = c.get("/api/backup").json["runs"]["last"]
    if form:
        page = c.get("/backup")
        r = post_form(c, path, {"csrf_token": csrf_of(page)})
        assert r.status == 303 and r.headers["Location"] == "/backup", r
    else:
        r = c.post(path, {})
        assert r.status in (200, 202), r

    def ended():
        runs = c.get("/api/backup").json["runs"]
        last = runs["last"]
        if runs["running"] is None and last and last != before and last["kind"] == kind:
            return last
        return None
    return wait_until(ended, timeout, f"the {kind} started on the page to end", interval=0.3)


def test_without_a_destination_the_page_says_so(pochta):
    pochta.setup_basic()
    pochta.start()
    c, _, _, _ = enrol(pochta)
    o = c.get("/api/backup")
    assert o.status == 200, o
    assert o.json["set_up"] is False and o.json["destinations"] == [], o.json
    assert o.json["settings"]["folder"] is None and o.json["settings"]["hour"] == 3, o.json
    assert o.json["runs"] == {"running": None, "last": None}, o.json
    page = html.unescape(check_page(c.get("/backup")))
    assert NOT_SET_UP in page, page
    assert '<a href="/backup" aria-current="page">Backup</a>' in page, "not in the menu"
    assert "Back up now" not in page, "a button that cannot work"
    r = c.post("/api/backup/run", {})
    assert r.status == 409 and "no backup is set up" in r.json["error"], r
    r = c.post("/api/backup/verify", {})
    assert r.status == 409, r


def test_settings_runs_snapshots_and_the_restart_a_new_folder_needs(pochta):
    pochta.configure(system={"health_interval_secs": 1})
    pochta.setup_basic()
    pochta.start()
    pochta.deliver_mx(ALICE)
    pochta.deliver_mx(BOB)
    pochta.wait_messages(ALICE, 1)
    c, _, _, _ = enrol(pochta)
    usb = backup_folder(pochta)

    # Refused settings, each in words; nothing is saved.
    for body, words in [
        ({"folder": str(pochta.root / "no-such-disk")}, "there is no folder"),
        ({"folder": "relative/usb"}, "full path"),
        ({"folder": str(pochta.data)}, "data folder"),
        ({"hour": 24}, "`hour` must be a whole number from 0 to 23"),
        ({"daily": 0, "weekly": 0, "monthly": 0}, "keep at least one snapshot"),
        ({"folder": 7}, "`folder` must be a string"),
    ]:
        r = c.post("/api/backup/settings", body)
        assert r.status == 400 and words in r.json["error"], (body, r)
    assert c.get("/api/backup").json["set_up"] is False
    # The page's form keeps what was typed and says why, as a sentence.
    csrf = csrf_of(c.get("/backup"))
    r = post_form(c, "/backup/settings", {"folder": str(usb), "hour": "25", "daily": "5", "weekly": "2",
                                          "monthly": "6", "csrf_token": csrf})
    message, fields = error_of(r, 400)
    assert message == "The hour must be a whole number from 0 to 23.", message
    assert fields["backup-folder"] == str(usb) and fields["backup-hour"] == "25", fields
    assert fields["keep-daily"] == "5", fields

    r = c.post("/api/backup/settings", {"folder": str(usb), "hour": 4, "daily": 5, "weekly": 2, "monthly": 6})
    assert r.status == 200, r
    assert r.json["settings"] == {"folder": str(usb.resolve()), "hour": 4,
                                  "retention": {"daily": 5, "weekly": 2, "monthly": 6}, "s3": None}, r.json
    # The CLI sees the same choice, and the first folder made the key.
    cli = pochta.cli_json("backup status")["settings"]
    assert cli == r.json["settings"], cli
    assert KEY.match(pochta.cli("backup key").stdout.strip())

    # Chosen while the server runs: a confined server may write there only
    # after a restart. The API, the page and a run say so in the same words.
    restart = confined(pochta)
    assert r.json["restart_needed"] is restart, (r.json, pochta.info["sandbox"])
    o = c.get("/api/backup").json
    [dest] = o["destinations"]
    assert dest["id"] == "folder" and dest["folder"] == str(usb.resolve()), dest
    assert dest["restart_needed"] is restart and dest["snapshots"] == [], dest
    page = html.unescape(check_page(c.get("/backup")))
    if restart:
        assert dest["restart_message"] in page and 'id="restart-needed"' in page, page
        ended = start_and_wait(c, "/api/backup/run", "backup")
        assert ended["ok"] is False and ended["refused"] is False, ended
        assert any("chosen after the server started" in p for p in ended["problems"]), ended
        page = html.unescape(check_page(c.get("/backup")))
        assert "it was chosen after the server started; restart pochta." in page, page
        assert "pochta backup now" not in page, "a command on the page"
        assert c.get("/api/backup").json["status"]["destinations"]["folder"]["last_failure"], "not recorded"
        pochta.restart()  # the session outlives it (sessions are in the store)
        c.addr = pochta.addr("admin")
        o = c.get("/api/backup").json
        assert o["destinations"][0]["restart_needed"] is False, o
        assert 'id="restart-needed"' not in check_page(c.get("/backup"))
    else:
        assert 'id="restart-needed"' not in page

    # Back up now, from the page's button: it ends in the background.
    ended = start_and_wait(c, "/backup/run", "backup", form=True)
    assert ended["ok"] is True and ended["problems"] == [], ended
    o = c.get("/api/backup").json
    last_ok = o["status"]["destinations"]["folder"]["last_ok"]
    assert last_ok and last_ok["messages"] == 2 and last_ok["bytes"] > 0, last_ok
    [snap] = o["destinations"][0]["snapshots"]
    assert snap["id"] == last_ok["snapshot"] and snap["tags"] == ["pochta"], snap
    assert [s["id"] for s in pochta.cli_json("backup list")] == [snap["id"]]
    page = html.unescape(check_page(c.get("/backup")))
    assert NOT_SET_UP not in page
    assert f'<table id="snapshots-folder"' in page and f"<code>{snap['id']}</code>" in page, page
    assert "all went well" in page and 'id="run-in-progress"' not in page, page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d\d:\d\d)?: [\d.]+ (B|KB|MB) \([\d.]+ (B|KB|MB) added\), "
                     r"2 messages, took [\d.]+ (s|min)", page), page
    assert "http-equiv" not in page, "the page reloads with no run under way"

    # While another run holds the lock (the CLI, the schedule), a run from
    # the page is refused at once, in words.
    lock = open(pochta.data / "backup" / "lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = c.post("/api/backup/run", {})
        assert r.status == 409 and "another backup, verification or pruning" in r.json["error"], r
        csrf = csrf_of(c.get("/backup"))
        r = post_form(c, "/backup/verify", {"csrf_token": csrf})
        message, _ = error_of(r, 409)
        assert message.startswith("Another backup, verification or pruning"), message
    finally:
        lock.close()
    assert c.get("/api/backup").json["runs"]["last"] == ended, "a refusal replaced the last run"

    # Test restore now: ok, recorded, on the page.
    ended = start_and_wait(c, "/api/backup/verify", "verify")
    assert ended["ok"] is True, ended
    verify = c.get("/api/backup").json["status"]["destinations"]["folder"]["last_verify"]
    assert verify["ok"] is True and verify["snapshot"] == snap["id"] and verify["bodies"] >= 1, verify
    page = html.unescape(check_page(c.get("/backup")))
    assert re.search(r'id="last-verify-folder">[^<]+: <span class="state ok">ok</span>', page), page

    # The dashboard's health row reads as the brief says, and links here.
    def backup_row():
        rows = [x for x in c.get("/api/health").json["checks"] if x["id"] == "backup"]
        return rows[0] if rows and "test-restored" in rows[0]["reason"] else None
    row = wait_until(backup_row, 30, "the backup check to see the test restore", interval=0.5)
    assert row["state"] == "ok" and re.fullmatch(
        rf"Last backup to the folder {re.escape(str(usb.resolve()))} \d+ (s|min) ago, [\d.]+ (B|KB|MB) "
        rf"\([\d.]+ (B|KB|MB) added\) in \d+ s, test-restored \d+ (s|min) ago", row["reason"]), row
    dash = check_page(c.get("/"))
    assert '<td><a href="/backup">Backups</a></td>' in dash, dash


def test_the_key_behind_password_and_code_and_restic_opens_the_folder_with_it(pochta):
    # Wrong passwords and codes below: the guard must not slow the test down.
    pochta.configure(guard={"max_failures": 1000, "delay_after": 1000})
    pochta.setup_basic()
    usb = backup_folder(pochta)
    # Set before the start: the confined server may write there.
    pochta.cli("backup to", str(usb))
    pochta.start()
    c, secret, used_at, codes = enrol(pochta)
    ended = start_and_wait(c, "/api/backup/run", "backup")
    assert ended["ok"] is True, ended

    # Wrong password, wrong code, a code already used: refused, in words.
    code, used_at = fresh_code(secret, used_at)
    wrong = "000000" if code != "000000" else "111111"
    r = c.post("/api/backup/key", {"password": "not the password", "totp": code})
    assert r.status == 403 and r.json["error"] == "wrong password", r
    r = c.post("/api/backup/key", {"password": ADMIN_PW, "totp": wrong})
    assert r.status == 403 and "wrong or already used TOTP code" in r.json["error"], r
    r = c.post("/api/backup/key", {"password": ADMIN_PW})
    assert r.status == 400 and "`totp` is missing" in r.json["error"], r
    r = c.post("/api/backup/key", {"password": ADMIN_PW, "totp": code}, csrf=False)
    assert r.status == 403 and "CSRF" in r.json["error"], r
    assert "key" not in r.json
    # An API token may run backups, never read the key.
    token = c.post("/api/tokens", {"name": "backup script"}).json["token"]
    status, body = bearer(pochta, token, "GET", "/api/backup")
    assert status == 200 and body["set_up"] is True, body
    status, body = bearer(pochta, token, "POST", "/api/backup/key", {"password": ADMIN_PW, "totp": code})
    assert status == 403 and "backup key" in body["error"] and "key" not in body, body

    r = c.post("/api/backup/key", {"password": ADMIN_PW, "totp": code})
    assert r.status == 200, r
    key = r.json["key"]
    assert KEY.match(key), key
    assert key == pochta.cli("backup key").stdout.strip()
    assert r.json["hostname"] == "mx.test.local"
    assert r.json["destinations"] == [f"the folder {usb.resolve()}"], r.json
    r = c.post("/api/backup/key", {"password": ADMIN_PW, "totp": code})
    assert r.status == 403 and "already used" in r.json["error"], "a code used twice"

    # Debian's restic opens the folder with it.
    [snap] = c.get("/api/backup").json["destinations"][0]["snapshots"]
    listed = json.loads(run_restic(usb, key, "snapshots", "--json").stdout)
    assert [s["short_id"] for s in listed] == [snap["id"]], listed

    # The page: the form, then the recovery sheet (a recovery code serves
    # as the second factor, as at the login).
    page = c.get("/backup")
    text = check_page(page)
    assert 'action="/backup/key"' in text and key not in text, "the key shown without the password"
    r = post_form(c, "/backup/key", {"password": "not the password", "totp": codes[0],
                                     "csrf_token": csrf_of(page)})
    message, fields = error_of(r, 403)
    assert message == "Wrong password.", message
    assert fields["key-password"] == "" and fields["key-code"] == "", fields
    r = post_form(c, "/backup/key", {"password": ADMIN_PW, "totp": codes[1], "csrf_token": csrf_of(page)})
    assert r.status == 200, r
    sheet = html.unescape(check_page(r))
    shown = re.search(r'<code class="backup-key" id="backup-key">(.*?)</code>', sheet).group(1)
    assert shown.replace("<wbr>", "") == key, shown
    words = re.sub(r"<[^>]+>", "", sheet)
    for want in [SHEET_SENTENCE, "mx.test.local", f"restic -r {usb.resolve()} restore latest --target DIR",
                 "DIR/pochta/", f"pochta backup restore latest --from {usb.resolve()} --key-stdin --into NEWDATA",
                 f"the folder {usb.resolve()}"]:
        assert want in words, (want, words)
    assert "<title>Recovery sheet · Pochta</title>" in sheet
    log = pochta.mail_log_text() + pochta.log_tail(500)
    assert key not in log, "the key in a log"
    assert ADMIN_PW not in log


def test_wrong_codes_for_the_key_count_like_failed_logins(pochta):
    pochta.configure(guard={"max_failures": 3, "delay_after": 10})
    pochta.start()
    c, secret, _, _ = enrol(pochta)
    wrong = "000000" if totp(secret) != "000000" else "111111"
    for body in ({"password": "not the password", "totp": wrong},
                 {"password": ADMIN_PW, "totp": wrong},
                 {"password": ADMIN_PW, "totp": wrong}):
        r = c.post("/api/backup/key", body)
        assert r.status == 403, r
    r = c.post("/api/backup/key", {"password": ADMIN_PW, "totp": totp(secret, time.time() + 30)})
    assert r.status == 429 and "too many failed attempts" in r.json["error"], r
    log = pochta.mail_log_text()
    assert log.count("auth_failed") >= 3 and "service=admin" in log, log[-2000:]
