"""mDNS (issue 12): `pochta.local` resolves from another machine on the
LAN, the admin page is announced as `_http._tcp` and `_https._tcp`, and it
loads at that name.

Two network namespaces joined by a veth pair stand in for the box and a
laptop on one office network (10.77.0.0/24, fd77::/64). `pochta serve` runs
in the box's namespace with `[system] mdns = "pochta"`; in the laptop's,
python-zeroconf, a third-party mDNS implementation (tests/e2e/mdns_peer.py),
resolves the name, browses the services and fetches the page. Needs root
(namespaces); nothing leaves the two namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import parse_addr, wait_until

PEER = Path(__file__).with_name("mdns_peer.py")
BOX_V4, LAPTOP_V4 = "10.77.0.1", "10.77.0.2"
BOX_V6, LAPTOP_V6 = "fd77::1", "fd77::2"


def missing(why: str):
    if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":  # set by .ci/run, which runs as root
        pytest.fail(why)
    pytest.skip(why)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def need_namespaces() -> None:
    if os.geteuid() != 0:
        missing("network namespaces need root")
    if shutil.which("ip") is None:
        missing("ip is missing (apt-get install iproute2)")


@pytest.fixture
def lan():
    """Two namespaces on one link: (box, laptop). Removed even on failure."""
    need_namespaces()
    try:
        import zeroconf  # noqa: F401
    except ImportError:
        missing("python zeroconf is missing (python3 -m pip install zeroconf)")
    tag = f"{os.getpid() % 100000}"
    box, laptop = f"pochta-box-{tag}", f"pochta-laptop-{tag}"
    made = []
    try:
        for ns in (box, laptop):
            ip("netns", "add", ns)
            made.append(ns)
        ip("link", "add", f"vbox{tag}", "netns", box, "type", "veth",
           "peer", "name", f"vlap{tag}", "netns", laptop)
        for ns, dev, v4, v6 in ((box, f"vbox{tag}", BOX_V4, BOX_V6),
                                (laptop, f"vlap{tag}", LAPTOP_V4, LAPTOP_V6)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ip("-n", ns, "link", "set", dev, "multicast", "on", "up")
            # mDNS goes to 224.0.0.251 (RFC 6762 §3); there is no default route.
            ip("-n", ns, "route", "add", "224.0.0.0/4", "dev", dev)
        yield box, laptop
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


@pytest.fixture
def unplugged():
    """A namespace with loopback only: a box whose cable is out."""
    need_namespaces()
    ns = f"pochta-alone-{os.getpid() % 100000}"
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def ask(laptop: str, *args: str) -> dict:
    """mdns_peer.py, run on the laptop."""
    res = subprocess.run(["ip", "netns", "exec", laptop, sys.executable, str(PEER), *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"mdns_peer.py failed:\n{res.stderr}"
    return json.loads(res.stdout)


def mdns_check(pochta, state: str) -> dict | None:
    """The `mdns` check in run/health.json, if it is in `state`."""
    try:
        report = json.loads((pochta.data / "run" / "health.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return next((c for c in report["checks"] if c["id"] == "mdns" and c["state"] == state), None)


def test_pochta_local_resolves_and_the_admin_page_loads_there(pochta, lan):
    box, laptop = lan
    pochta.configure(
        admin={"listen": ["0.0.0.0:0"], "listen_tls": ["0.0.0.0:0"]},
        system={"mdns": "pochta", "health_interval_secs": 1},
    )
    pochta.netns = box
    info = pochta.start()
    http_port = parse_addr(info["admin"][0])[1]
    https_port = parse_addr(info["admin_tls"][0])[1]

    seen = ask(laptop, "pochta.local.", "_http._tcp.local.", "_https._tcp.local.",
               "--fetch", "/", "--fetch", "/setup")

    # A and AAAA: the box's LAN addresses, never loopback.
    assert seen["ipv4"] == [BOX_V4], seen
    assert BOX_V6 in seen["ipv6"], seen
    assert not any(a.startswith("127.") or a == "::1" for a in seen["ipv4"] + seen["ipv6"]), seen
    # The admin page, by DNS-SD: one instance of each, on pochta.local.
    instance = "Pochta mail server (mx.test.local)"
    for service, port in (("_http._tcp.local.", http_port), ("_https._tcp.local.", https_port)):
        found = seen["services"][service]
        assert [s["name"] for s in found] == [f"{instance}.{service}"], seen
        assert found[0]["server"] == "pochta.local." and found[0]["port"] == port, found
        assert found[0]["txt"] == {"path": "/"}, found
        assert BOX_V4 in found[0]["addresses"], found
    # http://pochta.local:<port>/ in a browser: the first start sends the
    # visitor to the setup page, which loads.
    home, setup = seen["fetch"]["/"], seen["fetch"]["/setup"]
    assert home["status"] == 303 and home["location"] == "/setup", home
    assert setup["status"] == 200, setup
    assert "<html" in setup["body"] and "Pochta" in setup["body"], setup["body"][:500]

    # The health check says so, with the name and the address.
    check = wait_until(lambda: mdns_check(pochta, "ok"), 15, "the mdns check ok")
    assert check["reason"].startswith(f"pochta.local answers with {BOX_V4}"), check
    log = pochta.log_tail(400)
    assert f"mDNS: answering pochta.local and announcing the admin page at http://pochta.local:{http_port}/" in log, log
    assert pochta.stop() == 0, pochta.log_tail()


def test_no_network_is_a_warning_with_a_fix_not_a_crash(pochta, unplugged):
    pochta.configure(
        admin={"listen": ["0.0.0.0:0"], "listen_tls": []},
        system={"mdns": "pochta", "health_interval_secs": 1},
    )
    pochta.netns = unplugged
    pochta.start()
    check = wait_until(lambda: mdns_check(pochta, "warning"), 15, "the mdns check warning")
    assert check["title"] == "Name on the network (pochta.local)", check
    assert check["reason"] == "pochta.local is not announced: the box has no address on the office network", check
    assert "network cable" in check["fix"], check
    assert pochta.running()
    assert pochta.stop() == 0, pochta.log_tail()
