"""The admin page in a real browser: tests/browser/admin-tour.mjs drives
headless Chromium (Debian's, through playwright-core) through first-boot
setup, TOTP, the wizard (with the backup key's recovery sheet), a second
account with an app password, logout and login, a backup from the Backup
page, and screenshots every page at desktop and phone width into
artifacts/screenshots/, the printed recovery sheet too. Then the app
password it made is used for real: IMAP and SMTP submission; and the key
the wizard showed is the box's, and opens the backup with Debian's restic.

Skipped when Chromium or playwright-core is missing, unless
POCHTA_REQUIRE_BROWSER=1 (set by .ci/run, which installs both)."""

from __future__ import annotations

import imaplib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness import make_message, tls_context, unique_id
from test_backup import backup_folder, run_restic

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = REPO / "tests" / "browser"
SCREENSHOTS = Path(os.environ.get("POCHTA_SCREENSHOTS", REPO / "artifacts" / "screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is missing (apt-get install nodejs npm)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core").exists():
        return "playwright-core is missing (cd tests/browser && npm ci)"
    return None


@pytest.fixture
def browser_ready():
    why = browser_missing()
    if why:
        if os.environ.get("POCHTA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"POCHTA_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)


def install_expired_certificate(pochta) -> None:
    """An owner's certificate (Pochta never replaces one) that expired
    yesterday: the dashboard's certificate check is failing, so the tour
    can look at a failing check. Mail clients in this test do not verify."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.test.local"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Owner's own CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("mx.test.local")]), critical=False)
            .sign(key, hashes.SHA256()))
    tls = pochta.data / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    (tls / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tls / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    (tls / "key.pem").chmod(0o600)


def test_admin_page_in_chromium(pochta, browser_ready):
    install_expired_certificate(pochta)
    pochta.configure(system={"health_interval_secs": 1})
    # Chosen before the start: the confined server may write there.
    usb = backup_folder(pochta).resolve()
    pochta.cli("backup to", str(usb))
    pochta.start()
    host, port = pochta.addr("admin")
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    env = dict(os.environ, POCHTA_ADMIN_URL=f"http://{host}:{port}", POCHTA_DATA=str(pochta.data),
               SCREENSHOTS=str(SCREENSHOTS), CHROMIUM=CHROMIUM, BACKUP_FOLDER=str(usb))
    run = subprocess.run(["node", "admin-tour.mjs"], cwd=BROWSER_DIR, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"browser tour failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    for name in result["screenshots"]:
        png = SCREENSHOTS / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert len(result["screenshots"]) >= 20, result["screenshots"]
    for name in ("19-backup-desktop.png", "19-backup-phone.png", "20-recovery-sheet-desktop.png",
                 "05b-wizard-key-desktop.png"):
        assert (SCREENSHOTS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name

    # The key the wizard showed is the box's, and opens the backup the
    # Backup page made.
    key = result["backup_key"]
    assert key == pochta.cli("backup key").stdout.strip()
    snaps = json.loads(run_restic(usb, key, "snapshots", "--json").stdout)
    assert len(snaps) == 1 and snaps[0]["tags"] == ["pochta"], snaps

    # The app password the browser made works for IMAP and submission.
    user, password = result["app_password_account"], result["app_password"]
    with pochta.submit_client(user, password) as s:
        marker = unique_id("browser")
        s.sendmail(user, [user], make_message(sender=user, to=user, subject=marker))
    imap = imaplib.IMAP4_SSL(*pochta.addr("imaps"), ssl_context=tls_context(), timeout=30)
    try:
        imap.login(user, password)
        typ, data = imap.select("INBOX")
        assert typ == "OK" and int(data[0]) >= 1
    finally:
        imap.logout()
