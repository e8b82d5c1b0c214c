"""`pochta health` and `GET /api/health` (issue 12): every check with its
state, since-when, reason and fix; the command exits 1 when something is
failing, including when no server runs at all."""

from __future__ import annotations

import json

from admin_http import AdminClient, logged_in
from harness import wait_until

EXPECTED = {"service.smtp", "service.submission", "service.submissions", "service.imap",
            "service.imaps", "service.pop3", "service.pop3s", "store", "disk", "queue",
            "certificate", "clock", "watchdog", "dns", "backup"}


def test_no_server_is_failing_and_says_what_to_do(pochta):
    res = pochta.cli("health", check=False)
    assert res.returncode == 1, res
    assert "pochta serve is not running" in res.stdout and "what to do:" in res.stdout, res.stdout
    out = json.loads(pochta.cli("health", "--json", check=False).stdout)
    assert out["state"] == "failing" and out["pid"] is None, out


def test_every_check_has_a_state_a_reason_and_a_fix(pochta):
    pochta.setup_basic()
    pochta.configure(system={"health_interval_secs": 1})
    pochta.start()

    def reported():
        res = pochta.cli("health", "--json", check=False)
        return res.stdout and {c["id"] for c in json.loads(res.stdout)["checks"]} >= EXPECTED
    wait_until(reported, 15, "the first round of health checks")
    res = pochta.cli("health", "--json", check=False)
    out = json.loads(res.stdout)
    assert out["pid"] == pochta.pid and out["interval_secs"] == 1 and out["round_ms"] >= 0, out
    for c in out["checks"]:
        assert set(c) == {"id", "title", "state", "since", "reason", "fix"}, c
        assert c["state"] in ("ok", "warning", "failing") and c["reason"], c
        if c["state"] != "ok":
            assert c["fix"], c
    by_id = {c["id"]: c for c in out["checks"]}
    assert by_id["service.imap"]["state"] == "ok", by_id["service.imap"]
    assert by_id["store"]["state"] == "ok", by_id["store"]
    # Exit 1 only for failing: on a healthy box (a warning, such as this
    # machine's own disk filling, is not failing) 0.
    failing = [c for c in out["checks"] if c["state"] == "failing"]
    assert res.returncode == (1 if failing else 0), (res.returncode, failing)
    text = pochta.cli("health", check=False).stdout
    assert "Reading mail (IMAP)" in text and "checked" in text, text

    # The same over HTTP, for administrators only.
    assert AdminClient(pochta.addr("admin")).get("/api/health").status == 401
    c = logged_in(pochta)
    api = c.get("/api/health").json
    assert {x["id"] for x in api["checks"]} >= EXPECTED, api
    assert api["state"] in ("ok", "warning", "failing") and isinstance(api["alerts"], list), api


def test_a_stale_report_is_failing(pochta):
    """Rounds that stopped coming (a hang the checks cannot report): the
    command says so instead of showing an old all-clear."""
    pochta.setup_basic()
    pochta.configure(system={"health_interval_secs": 1})
    pochta.start()
    wait_until(lambda: (pochta.data / "run" / "health.json").exists(), 15, "health.json")
    import os
    import signal
    os.kill(pochta.pid, signal.SIGSTOP)
    try:
        def stale():
            res = pochta.cli("health", check=False)
            return res.returncode == 1 and "has stopped" in res.stdout
        wait_until(stale, 60, "pochta health to call the report stale", interval=1)
    finally:
        os.kill(pochta.pid, signal.SIGCONT)
