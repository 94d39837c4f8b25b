"""Fixtures for the Tandem binding tests: a real PostgreSQL, one fresh
database per test, and psql for admin SQL (no Python driver needed).

Server: ``TANDEM_TEST_DATABASE_URL`` (a libpq keyword string or URI) when set;
otherwise a throwaway cluster started with ``scripts/pg-throwaway`` for the
session and removed at the end. Nothing is skipped: a missing library, psql
or server fails the tests with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from typing import Iterator

import pytest

from support import REPO_ROOT, Database, psql, tandem


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


