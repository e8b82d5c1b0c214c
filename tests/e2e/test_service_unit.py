"""scripts/systemd/pochta.service, the unit the README gives for running
`pochta serve` as a service on an ordinary Linux machine: systemd's own
checker finds nothing to say about it (with the binary and its manual page
where the unit expects them), and the configuration it names loads."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from harness import REPO_ROOT

UNIT = REPO_ROOT / "scripts" / "systemd" / "pochta.service"
CONFIG = REPO_ROOT / "scripts" / "systemd" / "pochta.toml"


def test_unit_passes_systemd_analyze_verify(pochta, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("POCHTA_REQUIRE_TOOLS") == "1":  # set by .ci/run, which installs it
            pytest.fail("systemd-analyze is missing (apt-get install systemd)")
        pytest.skip("systemd-analyze is missing (apt-get install systemd)")
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/pochta serve --data /var/lib/pochta" in text
    unit = tmp_path / "pochta.service"
    unit.write_text(text.replace("/usr/local/bin/pochta", str(pochta.bin)))
    pochta.cli("man", "--dir", str(tmp_path / "man" / "man1"))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, MANPATH=str(tmp_path / "man")))
    # Unknown keys and bad values are only warnings to systemd: none allowed.
    assert res.returncode == 0 and res.stderr.strip() == "", res


def test_the_units_configuration_loads(pochta):
    pochta.add_domain("example.test")
    res = pochta.cli("domain dns", "example.test", "--config", str(CONFIG))
    assert "IN MX 10 mail.example.com." in res.stdout, res.stdout
