"""A laptop on the office network, for test_mdns.py: run inside the other
network namespace, it asks with python-zeroconf (a third-party mDNS
implementation) what a phone or a laptop asks, and prints one JSON object:

    python3 mdns_peer.py HOST.local. SERVICE_TYPE... [--fetch PATH]

- "ipv4", "ipv6": the addresses HOST answers with (A and AAAA, RFC 6762);
- "services": for each service type, the instances found by browsing
  (PTR, RFC 6763 §4) with their SRV target, port, TXT and addresses;
- "fetch": with --fetch, GET PATH from the first "_http._tcp" instance, at
  the address HOST resolved to, with `Host: HOST:port` as a browser sends.

Every wait is bounded; nothing here waits longer than WAIT seconds a step.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time

from zeroconf import (AddressResolverIPv4, AddressResolverIPv6, IPVersion, ServiceBrowser,
                      ServiceStateChange, Zeroconf)

WAIT = 10.0


def resolve(zc: Zeroconf, host: str) -> dict:
    out = {}
    for key, resolver, version in (("ipv4", AddressResolverIPv4(host), IPVersion.V4Only),
                                   ("ipv6", AddressResolverIPv6(host), IPVersion.V6Only)):
        resolver.request(zc, int(WAIT * 1000))
        out[key] = sorted(resolver.parsed_addresses(version))
    return out


def browse(zc: Zeroconf, service_type: str) -> list[dict]:
    names: list[str] = []
    found = threading.Event()

    def changed(zeroconf, service_type, name, state_change):
        if state_change is ServiceStateChange.Added:
            names.append(name)
            found.set()

    browser = ServiceBrowser(zc, service_type, handlers=[changed])
    try:
        found.wait(WAIT)
        # Others on the link answer within 500 ms (RFC 6762 §6).
        time.sleep(0.5)
    finally:
        browser.cancel()
    instances = []
    for name in sorted(set(names)):
        info = zc.get_service_info(service_type, name, timeout=int(WAIT * 1000))
        if info is None:
            instances.append({"name": name, "resolved": False})
            continue
        instances.append({
            "name": name,
            "resolved": True,
            "server": info.server,
            "port": info.port,
            "txt": {k.decode(): (v or b"").decode() for k, v in info.properties.items()},
            "addresses": sorted(info.parsed_addresses()),
        })
    return instances


def fetch(host: str, address: str, port: int, path: str) -> dict:
    conn = http.client.HTTPConnection(address, port, timeout=WAIT)
    try:
        conn.request("GET", path, headers={"Host": f"{host.rstrip('.')}:{port}"})
        resp = conn.getresponse()
        body = resp.read(1_000_000)
        return {"status": resp.status, "location": resp.getheader("Location"),
                "body": body.decode("utf-8", "replace")}
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    fetch_paths = []
    while "--fetch" in argv:
        i = argv.index("--fetch")
        fetch_paths.append(argv[i + 1])
        del argv[i:i + 2]
    host, service_types = argv[0], argv[1:]
    zc = Zeroconf(ip_version=IPVersion.All)
    try:
        out = resolve(zc, host)
        out["services"] = {t: browse(zc, t) for t in service_types}
    finally:
        zc.close()
    out["fetch"] = {}
    http_instances = [s for s in out["services"].get("_http._tcp.local.", []) if s.get("resolved")]
    if fetch_paths and out["ipv4"] and http_instances:
        port = http_instances[0]["port"]
        for path in fetch_paths:
            out["fetch"][path] = fetch(host, out["ipv4"][0], port, path)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
