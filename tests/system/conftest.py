"""Fixtures for the system tests: the firmware image booted under QEMU.

The image is built (scripts/build-image qemu-aarch64) when it is missing or
POCHTA_SYSTEM_REBUILD=1; the binary must exist (scripts/build-firmware).
Each test boots its own copy of the image, so tests do not share a /data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vm import IMAGE, REPO_ROOT

# The admin API client of the end-to-end tests.
sys.path.insert(0, str(REPO_ROOT / "tests" / "e2e"))


@pytest.fixture(scope="session")
def image() -> Path:
    if not (REPO_ROOT / "out" / "firmware" / "pochta").is_file():
        pytest.fail("out/firmware/pochta is missing: run scripts/build-firmware", pytrace=False)
    if os.environ.get("POCHTA_SYSTEM_REBUILD") == "1" or not IMAGE.is_file():
        subprocess.run([str(REPO_ROOT / "scripts" / "build-image"), "qemu-aarch64"],
                       check=True, timeout=900)
    return IMAGE


@pytest.fixture
def disk(image, tmp_path) -> Path:
    """A fresh copy of the image (sparse, like the original)."""
    copy = tmp_path / "disk.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(copy)], check=True, timeout=120)
    return copy


@pytest.fixture
def vms(request, tmp_path):
    """Started VMs, killed at teardown; their consoles are printed on failure."""
    started = []
    yield started
    for vm in started:
        vm.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for vm in started:
            print(f"--- {vm.log_path.name} ---")
            print(vm.text()[-6000:])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
