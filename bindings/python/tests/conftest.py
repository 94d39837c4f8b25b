"""Fixtures for the Tandem binding tests: a real PostgreSQL, one fresh
database per test, and psql for admin SQL (no Python driver needed).

Server: ``TANDEM_TEST_DATABASE_URL`` (a libpq keyword string or URI) when set;
otherwise a throwaway cluster started with ``scripts/pg-throwaway`` for the
session and removed at the end. Nothing is skipped: a missing library, psql
or server fails the tests with the reason.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from typing import Iterator

import pytest

from support import REPO_ROOT, Database, psql, tandem


# -- a time limit per test ---------------------------------------------------------

#: Seconds one test may take, fixtures included; the longest take about 20 s.
#: ``TANDEM_TEST_TIMEOUT`` overrides it (0 turns it off).
TEST_TIMEOUT = float(os.environ.get("TANDEM_TEST_TIMEOUT", "180"))


def _timed_out(config, nodeid: str) -> None:
    # pytest holds file descriptor 2 while a test runs: give it back first,
    # or the message would go to a capture file that is never shown.
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        try:
            capture.suspend_global_capture(in_=True)
        except Exception:  # pragma: no cover - the run ends either way
            pass
    sys.__stderr__.write("\nFAIL: %s did not finish within %g s (TANDEM_TEST_TIMEOUT); "
                         "the stacks of every thread follow, then the run ends\n" % (nodeid, TEST_TIMEOUT))
    faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
    sys.__stderr__.flush()
    os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test that hangs ends the run instead of hanging it, naming the test
    and showing where every thread is. A timer thread does it, so it works
    while the test is blocked in the library too (ctypes releases the GIL
    during a call), with nothing beyond the standard library."""
    if TEST_TIMEOUT <= 0:
        yield
        return
    timer = threading.Timer(TEST_TIMEOUT, _timed_out, args=(item.config, item.nodeid))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def library_path() -> str:
    """Every test needs libTandem; a missing one fails (never skips) them."""
    try:
        return tandem.load_library()
    except tandem.TandemLibraryNotFound as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    url = os.environ.get("TANDEM_TEST_DATABASE_URL")
    if url:
        psql(url, "SELECT 1")
        yield url
        return
    script = REPO_ROOT / "scripts" / "pg-throwaway"
    directory = tempfile.mkdtemp(prefix="tandem-pytest-")
    result = subprocess.run([str(script), "start", directory], capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail("could not start a throwaway PostgreSQL with %s (set TANDEM_TEST_DATABASE_URL "
                    "to use a running server):\n%s" % (script, result.stderr.strip()), pytrace=False)
    conninfo = result.stdout.strip().splitlines()[-1]
    try:
        yield conninfo
    finally:
        subprocess.run([str(script), "stop", directory], capture_output=True, timeout=120)


@pytest.fixture
def database(server: str) -> Iterator[Database]:
    name = "t_" + uuid.uuid4().hex
    psql(server, 'CREATE DATABASE "%s"' % name)
    try:
        yield Database(server, name)
    finally:
        psql(server, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def handle(database: Database) -> Iterator[tandem.Tandem]:
    """An open handle on the test database, closed afterwards."""
    with tandem.open(database.conninfo) as db:
        yield db


