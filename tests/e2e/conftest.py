"""Fixtures for the Pochta end-to-end tests.

Each test gets its own data folder and, when it starts one, its own server
process listening on 127.0.0.1 port 0; whatever is still running at teardown
is killed.

The binary is $POCHTA_BIN, or target/debug/pochta under the repository root.
"""

from __future__ import annotations

import pytest

from harness import Pochta, pochta_bin


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def pochta_binary():
    path = pochta_bin()
    if not path.is_file():
        pytest.fail(f"pochta binary not found at {path} (build it, or set POCHTA_BIN)", pytrace=False)
    return path


@pytest.fixture
def pochta(tmp_path, pochta_binary, request):
    """A pochta installation with a default config; the server is not started."""
    p = Pochta(tmp_path)
    yield p
    p.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        # Shown in the report's "Captured stdout teardown" section.
        print(p.log_tail(200))
        print("--- mail.log ---")
        print(p.mail_log_text()[-5000:])


@pytest.fixture
def server(pochta):
    """example.test with alice and bob, server running with the default config."""
    pochta.setup_basic()
    pochta.start()
    return pochta
