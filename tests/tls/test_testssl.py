"""testssl.sh (the Debian package) against every TLS port and STARTTLS
service of a running pochta (issue 13): TLS 1.2 and 1.3 only, forward
secrecy only, the server's cipher order, and no finding rated MEDIUM or
worse except those a self-signed certificate causes by its nature.

Slow (testssl makes hundreds of handshakes per port; the eight services
run at once, ~3 minutes on 2 cores): `.ci/run`'s slower tier runs it with
`scripts/test-tls`. Each service's JSON and text output and a summary are
left in artifacts/testssl/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))

from harness import Pochta  # noqa: E402

OUT = REPO_ROOT / "artifacts" / "testssl"

# service in serve.json → testssl's STARTTLS protocol (None: TLS from the
# first byte).
SERVICES = {
    "smtp": "smtp",
    "submission": "smtp",
    "submissions": None,
    "imap": "imap",
    "imaps": None,
    "pop3": "pop3",
    "pop3s": None,
    "admin_tls": None,
}

# What a self-signed certificate is by its nature: no chain to a trusted
# root, no OCSP or CRL address. Nothing else rated MEDIUM or worse passes.
SELF_SIGNED = {"cert_chain_of_trust", "cert_revocation"}
BAD = {"MEDIUM", "HIGH", "CRITICAL"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if shutil.which("testssl") is None:
        pytest.fail("testssl is missing: apt-get install testssl.sh", pytrace=False)
    p = Pochta(tmp_path_factory.mktemp("testssl"))
    p.start()
    yield p
    p.close()


@pytest.fixture(scope="module")
def reports(server):
    """Runs testssl against every service at once; service → findings."""
    OUT.mkdir(parents=True, exist_ok=True)
    runs = {}
    for service, starttls in SERVICES.items():
        host, port = server.addr(service)
        jsonfile = OUT / f"{service}.json"
        jsonfile.unlink(missing_ok=True)
        cmd = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--fast",
               "--jsonfile", str(jsonfile)]
        if starttls:
            cmd += ["-t", starttls]
        cmd.append(f"{host}:{port}")
        text = open(OUT / f"{service}.txt", "w")
        runs[service] = (subprocess.Popen(cmd, stdout=text, stderr=subprocess.STDOUT), text, jsonfile)
    found = {}
    for service, (proc, text, jsonfile) in runs.items():
        try:
            proc.wait(timeout=900)
        finally:
            text.close()
        assert jsonfile.is_file(), f"testssl wrote no JSON for {service}: see {text.name}"
        found[service] = json.loads(jsonfile.read_text())
    summary = summarise(found)
    (OUT / "summary.txt").write_text(summary)
    print(summary)
    return found


def by_id(findings: list[dict]) -> dict[str, dict]:
    return {f["id"]: f for f in findings}


def summarise(found: dict[str, list[dict]]) -> str:
    lines = []
    for service, findings in found.items():
        f = by_id(findings)
        protocols = [p for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")
                     if p in f and f[p]["finding"].startswith("offered")]
        ciphers = sorted({x["finding"].split()[-1] for x in findings
                          if x["id"].startswith("cipher-tls") or x["id"].startswith("cipher_x")})
        bad = [f"{x['severity']} {x['id']}: {x['finding']}" for x in findings if x["severity"] in BAD]
        lines.append(f"{service}: protocols {' '.join(protocols)}; "
                     f"cipher order: {f.get('cipher_order', {}).get('finding', '?')}; "
                     f"{len(ciphers)} ciphers: {' '.join(ciphers)}")
        lines += [f"    {b}" for b in bad]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("service", SERVICES)
def test_only_tls12_and_tls13(reports, service):
    f = by_id(reports[service])
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert f[old]["finding"].startswith("not offered"), f"{service} offers {old}: {f[old]}"
    assert f["TLS1_2"]["finding"].startswith("offered"), f["TLS1_2"]
    assert f["TLS1_3"]["finding"].startswith("offered"), f["TLS1_3"]


@pytest.mark.parametrize("service", SERVICES)
def test_forward_secrecy_and_the_servers_cipher_order(reports, service):
    findings = reports[service]
    f = by_id(findings)
    for weak in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                 "cipherlist_3DES_IDEA"):
        assert f[weak]["finding"] == "not offered", f"{service}: {f[weak]}"
    assert f["cipher_order"]["severity"] == "OK", f"{service}: {f['cipher_order']}"
    offered = [x for x in findings if x["id"].startswith("cipher-tls") or x["id"].startswith("cipher_x")]
    assert offered, f"{service}: testssl listed no ciphers"
    for c in offered:
        assert "ECDH" in c["finding"] or "TLS_" in c["finding"], f"{service}: not forward secret: {c}"


@pytest.mark.parametrize("service", SERVICES)
def test_no_finding_worse_than_low_but_the_self_signed_certificates(reports, service):
    bad = [x for x in reports[service] if x["severity"] in BAD and x["id"] not in SELF_SIGNED]
    assert not bad, f"{service}: " + "; ".join(f"{x['severity']} {x['id']}: {x['finding']}" for x in bad)
