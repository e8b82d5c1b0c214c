"""The admin page's operational pages against a real `pochta serve`: the
dashboard (services, today's mail, queue, storage, alerts), the queue (retry,
delete), the mail log (search, "why didn't this arrive?"), security (bans from
real failed IMAP logins, unban) and aliases (added on the page, routing real
mail sent with smtplib)."""

from __future__ import annotations

import datetime
import html
import imaplib
import re
import shutil
import smtplib
import subprocess
import time
import urllib.parse

import pytest

from admin_http import AdminClient
from harness import ALICE, ALICE_PW, BOB, DOMAIN, make_message, tls_context, unique_id, wait_until
from test_admin_api import enrolled
from test_admin_pages import FORM, check_page, csrf_of

# (method, path, body) of every operational endpoint.
ENDPOINTS = [
    ("GET", "/api/dashboard", None),
    ("GET", "/api/queue", None),
    ("POST", "/api/queue/1/retry", {}),
    ("POST", "/api/queue/1/delete", {}),
    ("GET", "/api/log?q=x", None),
    ("GET", "/api/log/trace?q=x", None),
    ("GET", "/api/security", None),
    ("POST", "/api/security/unban", {"address": "127.0.0.1"}),
    ("GET", "/api/aliases", None),
    ("POST", "/api/aliases", {"address": f"info@{DOMAIN}", "targets": [ALICE]}),
    ("POST", "/api/aliases/remove", {"address": f"info@{DOMAIN}"}),
]

PAGES = ["/", "/queue", "/log", "/log?q=alice", "/log/trace", "/log/trace?q=nobody@x.test",
         "/security", "/aliases"]


def post_form(c: AdminClient, path: str, fields: dict):
    return c.request("POST", path, urllib.parse.urlencode(fields).encode(), content_type=FORM, csrf=False)


def send_mx(pochta, rcpt: str, message_id: str | None = None) -> str:
    """One message through the MX port with smtplib; returns its Message-ID."""
    message_id = message_id or f"<{unique_id('ops')}@e2e.test>"
    msg = make_message(to=rcpt, subject=message_id, message_id=message_id)
    with pochta.smtp("smtp") as s:
        s.sendmail("sender@remote.invalid", [rcpt], msg)
    return message_id


def refused_mx(pochta, rcpt: str) -> None:
    with pochta.smtp("smtp") as s:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            s.sendmail("sender@remote.invalid", [rcpt], make_message(to=rcpt))


def submit_remote(pochta, rcpt: str) -> None:
    """Alice sends to a remote address: it waits in the queue ([queue] hold)."""
    s = pochta.submit_client(ALICE, ALICE_PW)
    try:
        s.sendmail(ALICE, [rcpt], make_message(sender=ALICE, to=rcpt))
    finally:
        s.quit()


def imap_login(pochta, user: str, password: str) -> bool:
    host, port = pochta.addr("imaps")
    c = imaplib.IMAP4_SSL(host, port, ssl_context=tls_context(), timeout=15)
    try:
        c.login(user, password)
        return True
    except imaplib.IMAP4.error:
        return False
    finally:
        try:
            c.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def dashboard(c: AdminClient) -> dict:
    r = c.get("/api/dashboard")
    assert r.status == 200, r
    return r.json


def test_every_ops_endpoint_needs_a_session_and_csrf_token(pochta):
    pochta.setup_basic()
    pochta.start()
    anonymous = AdminClient(pochta.addr("admin"))
    for method, path, body in ENDPOINTS:
        r = anonymous.request(method, path, body)
        assert r.status == 401 and r.json["error"] == "log in first", (method, path, r)
    c, _, _ = enrolled(pochta)
    for method, path, body in ENDPOINTS:
        if method != "POST":
            continue
        r = c.request(method, path, body, csrf=False)
        assert r.status == 403 and "CSRF" in r.json["error"], (path, r)
        r = c.request(method, path, body, csrf="f" * 64)
        assert r.status == 403 and "CSRF" in r.json["error"], (path, r)
    assert c.get("/api/aliases").json == {"aliases": []}, "a refused request changed something"
    # Pages without a session go to the login; their forms need the CSRF field.
    for path in PAGES:
        r = anonymous.get(path)
        assert r.status == 303, (path, r)
    for path in ["/aliases", "/aliases/remove", "/security/unban", "/queue/1/retry", "/queue/1/delete"]:
        r = post_form(c, path, {"address": "x"})
        assert r.status == 403, (path, r)


def test_dashboard_services_mail_today_queue_storage(pochta):
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    d = dashboard(c)
    names = {s["name"]: s for s in d["services"]}
    assert set(names) == {"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "admin",
                          "admin_tls"}
    for name, s in names.items():
        assert s["status"] == "up", (name, s)
        assert s["addresses"] and all(a["up"] for a in s["addresses"]), s
    assert names["smtp"]["addresses"][0]["address"] == pochta.info["smtp"][0]
    # The HTTPS admin listener is a service of its own, checked like the others.
    assert [a["address"] for a in names["admin_tls"]["addresses"]] == pochta.info["admin_tls"]
    assert names["admin_tls"]["label"] == "Admin page (HTTPS)"
    page = check_page(c.get("/"))
    for address in pochta.info["admin_tls"] + pochta.info["smtp"]:
        assert f'<span class="addr">{address}</span>' in page, page
    before = d["today"]
    assert d["queue"] == {"length": 0, "oldest_age_secs": None}
    storage = d["storage"]
    assert 0 < storage["free_bytes"] <= storage["total_bytes"]
    assert storage["database_bytes"] > 0
    assert d["tls_certificate"]["seconds_left"] > 14 * 86400, d["tls_certificate"]

    send_mx(pochta, ALICE)
    send_mx(pochta, BOB)
    refused_mx(pochta, f"nobody@{DOMAIN}")
    submit_remote(pochta, "carol@remote.invalid")
    d = dashboard(c)
    t = d["today"]
    assert t["received"] == before["received"] + 3, t
    assert t["delivered_local"] == before["delivered_local"] + 2, t
    assert t["rejected"] == before["rejected"] + 1, t
    assert d["queue"]["length"] == 1 and d["queue"]["oldest_age_secs"] >= 0, d["queue"]
    assert d["storage"]["mail_bytes"] > 0
    # The only alert a fresh box may show is about this machine's own disk.
    expected = ["disk"] if d["storage"]["used_percent"] >= 95 else []
    critical = [a for a in d["alerts"] if a["level"] == "critical"]
    assert ["disk" for a in critical if a["text"].startswith("Disk space:")] == expected, d["alerts"]
    assert len(critical) == len(expected), d["alerts"]
    # The health checks are on the dashboard, one row each.
    ids = {c["id"] for c in d["health"]["checks"]}
    assert {"service.smtp", "service.pop3s", "store", "disk", "queue", "certificate", "watchdog"} <= ids, ids
    assert 'data-check="service.imaps"' in check_page(c.get("/"))



def test_counts_survive_a_restart(pochta):
    pochta.setup_basic()
    pochta.start()
    send_mx(pochta, ALICE)
    refused_mx(pochta, f"nobody@{DOMAIN}")
    pochta.restart()
    c, _, _ = enrolled(pochta)
    t = dashboard(c)["today"]
    assert t["received"] == 1 and t["rejected"] == 1 and t["delivered_local"] == 1, t


def _kill_listener(port: int) -> bool:
    """Closes a listening socket of the server from outside (ss -K, root and
    CONFIG_INET_DIAG_DESTROY); false when that is not possible here."""
    if shutil.which("ss") is None:
        return False
    r = subprocess.run(["ss", "-K", "-t", "-l", "sport", "=", str(port)],
                       capture_output=True, text=True, timeout=10)
    return r.returncode == 0


def test_a_service_that_stops_listening_shows_down_and_is_restarted(pochta):
    """A listener closed from outside: the dashboard shows it down, the
    health check fails, and the supervisor starts the service again on its
    address without touching the others (issue 12)."""
    pochta.setup_basic()
    pochta.configure(system={"health_interval_secs": 3})
    pochta.start()
    c, _, _ = enrolled(pochta)
    host, port = pochta.addr("pop3")
    imap_pid_before = pochta.pid
    if not _kill_listener(port):
        pytest.skip("cannot close a listening socket from outside here (needs ss -K as root)")
    import poplib
    import socket
    try:
        socket.create_connection((host, port), timeout=2).close()
        pytest.skip("ss -K did not close the listener on this kernel")
    except OSError:
        pass
    d = dashboard(c)
    names = {s["name"]: s for s in d["services"]}
    assert names["pop3"]["status"] == "down", names["pop3"]
    assert names["pop3s"]["status"] == "up" and names["imap"]["status"] == "up"
    text = check_page(c.get("/"))
    assert 'class="state down"' in text

    def alerted():
        alerts = [a for a in dashboard(c)["alerts"] if "POP3" in a["text"]]
        return alerts and alerts[0]["level"] == "critical" and "Does not answer" in alerts[0]["text"]
    wait_until(alerted, 15, "a critical POP3 alert on the dashboard", interval=0.2)

    wait_until(lambda: "service_restarted session=- service=pop3 " in pochta.mail_log_text(), 20,
               "the supervisor to restart pop3")
    p = poplib.POP3(host, port, timeout=10)
    assert p.getwelcome().startswith(b"+OK")
    p.quit()
    wait_until(lambda: {s["name"]: s for s in dashboard(c)["services"]}["pop3"]["status"] == "up", 10,
               "pop3 up on the dashboard")
    # The same process: only the one service was restarted.
    assert pochta.pid == imap_pid_before and pochta.running()
    assert "service_restarted session=- service=imap" not in pochta.mail_log_text()


def test_queue_list_retry_delete(pochta):
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    submit_remote(pochta, "carol@remote.invalid")
    submit_remote(pochta, "dave@remote.invalid")
    items = c.get("/api/queue").json["items"]
    assert [i["recipient"] for i in items] == ["carol@remote.invalid", "dave@remote.invalid"], items
    first, second = items
    assert first["sender"] == ALICE and first["size"] > 0 and first["attempts"] == 0
    assert {"next_attempt", "next_attempt_in_secs", "last_error", "age_secs"} <= set(first)

    r = c.post(f"/api/queue/{first['id']}/retry")
    assert r.status == 200 and r.json["retry"] == "now", r
    again = {i["id"]: i for i in c.get("/api/queue").json["items"]}
    assert again[first["id"]]["next_attempt_in_secs"] == 0
    assert c.post("/api/queue/999999/retry").status == 404
    r = c.post("/api/queue/abc/retry")
    assert r.status == 400 and "not a queue item" in r.json["error"], r

    r = c.post(f"/api/queue/{first['id']}/delete")
    assert r.status == 200 and r.json["deleted"] is True, r
    assert [i["id"] for i in c.get("/api/queue").json["items"]] == [second["id"]]
    assert [i["id"] for i in pochta.queue()] == [second["id"]], "the CLI sees the same queue"
    assert c.post(f"/api/queue/{first['id']}/delete").status == 404

    # The page: the list, a confirmation page, then the delete form.
    text = check_page(c.get("/queue"))
    assert "dave@remote.invalid" in text and f'action="/queue/{second["id"]}/retry"' in text
    confirm = c.get(f"/queue/{second['id']}/delete")
    text = check_page(confirm)
    assert "Delete queue item" in text and "dave@remote.invalid" in text
    r = post_form(c, f"/queue/{second['id']}/retry", {"csrf_token": csrf_of(confirm)})
    assert r.status == 303 and r.headers["Location"] == "/queue", r
    r = post_form(c, f"/queue/{second['id']}/delete", {"csrf_token": csrf_of(confirm)})
    assert r.status == 303 and r.headers["Location"] == "/queue", r
    assert c.get("/api/queue").json["items"] == []
    assert "The queue is empty" in check_page(c.get("/queue"))
    assert c.get("/queue/12345/delete").status == 404


def test_mail_log_search_and_trace(pochta):
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    message_id = send_mx(pochta, ALICE)
    pochta.wait_messages(ALICE, 1)
    refused_mx(pochta, f"nobody@{DOMAIN}")
    submit_remote(pochta, "carol@remote.invalid")

    r = c.get("/api/log?q=" + urllib.parse.quote(ALICE))
    assert r.status == 200, r
    events = [line["event"] for line in r.json["lines"]]
    assert "accepted" in events and "delivered" in events, events
    times = [line["time"] for line in r.json["lines"]]
    assert times == sorted(times, reverse=True), "newest first"
    r = c.get("/api/log?q=" + urllib.parse.quote(message_id))
    found = [line for line in r.json["lines"] if line["event"] == "accepted"]
    assert len(found) == 1 and found[0]["fields"]["msgid"] == message_id, r.json
    assert found[0]["fields"]["to"] == f"<{ALICE}>"
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert c.get(f"/api/log?date={today}&q=accepted").json["lines"]
    assert c.get("/api/log?date=2000-01-01").json["lines"] == []
    r = c.get("/api/log?limit=2")
    assert len(r.json["lines"]) == 2 and r.json["complete"] is False, r.json
    for bad in ["/api/log?date=yesterday", "/api/log?limit=0", "/api/log?limit=x"]:
        r = c.get(bad)
        assert r.status == 400, (bad, r)

    # Why didn't it arrive? A delivered message, found by its Message-ID.
    r = c.get("/api/log/trace?q=" + urllib.parse.quote(message_id))
    assert r.status == 200, r
    [msg] = r.json["messages"]
    assert msg["outcome"] == "delivered", msg
    texts = [s["text"] for s in msg["steps"]]
    assert texts[0].startswith("Received from 127.0.0.1") and message_id in texts[0], texts
    assert any(t.startswith(f"Stored in the mailbox of <{ALICE}>") for t in texts), texts
    # A rejected recipient.
    r = c.get("/api/log/trace?q=" + urllib.parse.quote(f"nobody@{DOMAIN}"))
    [msg] = r.json["messages"]
    assert msg["outcome"] == "rejected", msg
    assert msg["steps"][0]["text"].startswith(f"The recipient nobody@{DOMAIN} was refused"), msg
    assert "550" in msg["steps"][0]["text"]
    # A queued one, by the recipient: accepted, then queued.
    r = c.get("/api/log/trace?q=carol@remote.invalid")
    [msg] = r.json["messages"]
    assert msg["outcome"] == "queued", msg
    assert [s["event"] for s in msg["steps"]] == ["accepted", "queued"], msg
    assert c.get("/api/log/trace?q=never@seen.test").json["messages"] == []
    # Two messages in one SMTP session are two messages in a trace.
    ids = [f"<{unique_id('one')}@e2e.test>", f"<{unique_id('two')}@e2e.test>"]
    with pochta.smtp("smtp") as s:
        for mid in ids:
            s.sendmail("sender@remote.invalid", [BOB], make_message(to=BOB, message_id=mid))
    [msg] = c.get("/api/log/trace?q=" + urllib.parse.quote(ids[1])).json["messages"]
    assert [s["event"] for s in msg["steps"]] == ["accepted", "delivered"], msg
    assert ids[1] in msg["steps"][0]["text"]
    assert len(c.get(f"/api/log/trace?q={BOB}").json["messages"]) == 2
    assert c.get("/api/log/trace").status == 400

    # The pages.
    text = check_page(c.get("/log?q=" + urllib.parse.quote(message_id)))
    assert "msgid=" in text and "Message received" in text
    text = check_page(c.get("/log/trace?q=" + urllib.parse.quote(f"nobody@{DOMAIN}")))
    assert "was refused" in text and 'class="state rejected"' in text
    r = c.get("/log?date=bad")
    assert r.status == 400 and "not a date" in check_page(r)


def test_bans_from_failed_imap_logins_and_unban(pochta):
    pochta.configure(guard={"max_failures": 3, "delay_after": 10})
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    assert c.get("/api/security").json["banned"] == []
    for _ in range(3):
        assert not imap_login(pochta, ALICE, "wrong password")
    assert not imap_login(pochta, ALICE, ALICE_PW), "banned address logged in"
    sec = c.get("/api/security").json
    assert [b["address"] for b in sec["banned"]] == ["127.0.0.1"], sec
    assert sec["banned"][0]["failures"] >= 3 and sec["banned"][0]["seconds_left"] > 0
    failures = [x for x in sec["logins"] if not x["ok"] and x["service"] == "imaps"]
    assert failures and failures[0]["user"].startswith(ALICE), sec["logins"]
    times = [x["time"] for x in sec["logins"]]
    assert times == sorted(times, reverse=True)
    d = dashboard(c)
    assert d["banned"] == 1 and any("banned" in a["text"] for a in d["alerts"]), d["alerts"]

    page = c.get("/security")
    text = check_page(page)
    assert "127.0.0.1" in text and 'action="/security/unban"' in text
    r = c.post("/api/security/unban", {"address": "not an ip"})
    assert r.status == 400 and "not an IP address" in r.json["error"], r
    r = post_form(c, "/security/unban", {"address": "127.0.0.1", "csrf_token": csrf_of(page)})
    assert r.status == 303 and r.headers["Location"] == "/security", r
    assert c.get("/api/security").json["banned"] == []
    assert imap_login(pochta, ALICE, ALICE_PW), "login refused after unban"
    r = c.post("/api/security/unban", {"address": "127.0.0.1"})
    assert r.status == 404, r
    ok = [x for x in c.get("/api/security").json["logins"] if x["ok"]]
    assert ok and ok[0]["user"] == ALICE and ok[0]["service"] == "imaps", ok
    # The admin page's own login is there too.
    assert any(x["service"] == "admin" and x["user"] == "root" for x in ok), ok


def test_aliases_groups_catch_all_route_real_mail(pochta):
    pochta.setup_basic()
    pochta.add_domain("other.test")
    pochta.start()
    c, _, _ = enrolled(pochta)
    bad = [
        ({"address": "info@nowhere.test", "targets": [ALICE]}, "not a domain of this box"),
        ({"address": f"info@{DOMAIN}", "targets": ["not an address"]}, "not an address"),
        ({"address": f"info@{DOMAIN}", "targets": []}, "at least one target"),
        ({"address": "info", "targets": [ALICE]}, "not an address"),
        ({"address": ALICE, "targets": [BOB]}, "is an account"),
        ({"address": f"loop@{DOMAIN}", "targets": [f"loop@{DOMAIN}"]}, "its own target"),
        ({"address": f"info@{DOMAIN}"}, "`targets` is missing"),
        ({"address": f"info@{DOMAIN}", "targets": 5}, "list of addresses"),
    ]
    for body, message in bad:
        r = c.post("/api/aliases", body)
        assert r.status == 400 and message in r.json["error"], (body, r)
    assert c.get("/api/aliases").json["aliases"] == []

    r = c.post("/api/aliases", {"address": f"Info@{DOMAIN}", "targets": [ALICE]})
    assert r.status == 201 and r.json["kind"] == "alias", r
    r = c.post("/api/aliases", {"address": f"team@{DOMAIN}", "targets": f"{ALICE}, {BOB}"})
    assert r.status == 201 and r.json["kind"] == "group" and r.json["targets"] == [ALICE, BOB], r
    # The page's form adds the catch-all.
    page = c.get("/aliases")
    r = post_form(c, "/aliases", {"address": "@other.test", "targets": BOB, "csrf_token": csrf_of(page)})
    assert r.status == 303, r
    r = post_form(c, "/aliases", {"address": "bad@", "targets": BOB, "csrf_token": csrf_of(page)})
    assert r.status == 400 and "not an address" in check_page(r)
    listed = {a["address"]: a for a in c.get("/api/aliases").json["aliases"]}
    assert listed["@other.test"]["kind"] == "catch-all"
    assert set(listed) == {f"info@{DOMAIN}", f"team@{DOMAIN}", "@other.test"}
    text = check_page(c.get("/aliases"))
    assert f"team@{DOMAIN}" in text and "catch-all" in text

    info = send_mx(pochta, f"info@{DOMAIN}")
    team = send_mx(pochta, f"team@{DOMAIN}")
    anything = send_mx(pochta, "whoever@other.test")
    pochta.find_message(ALICE, info.encode())
    pochta.find_message(ALICE, team.encode())
    pochta.find_message(BOB, team.encode())
    pochta.find_message(BOB, anything.encode())
    assert not [m for m in pochta.messages(BOB) if info.encode() in m]

    # Remove one member, then a whole alias.
    r = c.post("/api/aliases/remove", {"address": f"team@{DOMAIN}", "target": BOB})
    assert r.status == 200, r
    listed = {a["address"]: a for a in c.get("/api/aliases").json["aliases"]}
    assert listed[f"team@{DOMAIN}"]["targets"] == [ALICE] and listed[f"team@{DOMAIN}"]["kind"] == "alias"
    page = c.get("/aliases")
    r = post_form(c, "/aliases/remove", {"address": f"info@{DOMAIN}", "csrf_token": csrf_of(page)})
    assert r.status == 303, r
    assert f"info@{DOMAIN}" not in {a["address"] for a in c.get("/api/aliases").json["aliases"]}
    refused_mx(pochta, f"info@{DOMAIN}")
    r = c.post("/api/aliases/remove", {"address": f"info@{DOMAIN}"})
    assert r.status == 404, r
    r = c.post("/api/aliases/remove", {"address": f"team@{DOMAIN}", "target": BOB})
    assert r.status == 404, r


def test_pages_are_well_formed_and_the_dashboard_is_light(pochta):
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    send_mx(pochta, ALICE)
    for path in PAGES:
        r = c.get(path)
        assert r.status == 200, (path, r)
        text = check_page(r)
        for label in ["Aliases", "Queue", "Mail log", "Security"]:
            assert f">{label}</a>" in text, (path, label)
    dash = c.get("/")
    css = c.get("/style.css")
    weight = len(dash.body) + len(css.body)
    assert weight < 50 * 1024, f"dashboard HTML+CSS is {weight} bytes"
    text = dash.body.decode()
    assert re.search(r'<span class="state up">up</span>', text)
    if c.get("/api/dashboard").json["storage"]["free_percent"] >= 10:
        assert "Nothing needs attention" in text
    else:
        assert "free on the data disk" in text and "Nothing needs attention" not in text


def test_mail_log_page_in_words_and_the_box_local_time(pochta):
    # The box's zone as any Unix program takes it: TZ (here a POSIX rule,
    # 5 h 30 min east of UTC, no summer time), else /etc/localtime.
    pochta.env["TZ"] = "IST-5:30"
    pochta.setup_basic()
    pochta.start()
    c, _, _ = enrolled(pochta)
    send_mx(pochta, ALICE)
    pochta.wait_messages(ALICE, 1)
    assert not imap_login(pochta, ALICE, "not the password")

    lines = c.get("/api/log").json["lines"]
    events = {line["event"] for line in lines}
    assert {"accepted", "delivered", "auth_failed"} <= events, events
    # The API keeps the log's own words and UTC.
    assert all(line["time"].endswith("Z") for line in lines), lines

    text = html.unescape(check_page(c.get("/log")))
    assert "Times are the box's local time, UTC+05:30." in text, text
    for words in ["Message received", "Stored in a mailbox", "Login failed"]:
        assert f"<td>{words}</td>" in text, (words, text)
    for raw in ["auth_failed", ">accepted<", ">delivered<"]:
        assert raw not in text, raw
    for line in lines:
        utc = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%SZ")
        local = utc + datetime.timedelta(hours=5, minutes=30)
        # The date and the clock, each kept whole on a narrow screen.
        shown = local.strftime('<span class="nowrap">%Y-%m-%d</span> <span class="nowrap">%H:%M:%S</span>')
        assert shown in text, (line["time"], text)

    # The trace of a message, and the logins on the security page, too.
    trace = html.unescape(check_page(c.get("/log/trace?q=" + urllib.parse.quote(ALICE))))
    assert "UTC+05:30" in trace
    first = datetime.datetime.strptime(
        c.get("/api/log/trace?q=" + urllib.parse.quote(ALICE)).json["messages"][0]["steps"][0]["time"],
        "%Y-%m-%dT%H:%M:%SZ")
    assert (first + datetime.timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S") in trace
    security = html.unescape(check_page(c.get("/security")))
    assert "UTC+05:30" in security and "Time (UTC)" not in security
