"""Helpers shared by the test modules: psql, throwaway databases, sync loops."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

BINDING_DIR = Path(__file__).resolve().parent.parent
if str(BINDING_DIR) not in sys.path:
    sys.path.insert(0, str(BINDING_DIR))  # test this source tree, installed or not

import tandem  # noqa: E402


def _find_repo_root() -> Path:
    for directory in [BINDING_DIR, *BINDING_DIR.parents]:
        if (directory / "include" / "tandem.h").is_file():
            return directory
    raise RuntimeError("no include/tandem.h above %s: the tests must run from a Tandem checkout"
                       % BINDING_DIR)


REPO_ROOT = _find_repo_root()
HEADER = REPO_ROOT / "include" / "tandem.h"
APP_SCRIPTS = [REPO_ROOT / "sql" / "apps" / name for name in ("pipeline.sql", "crm.sql", "sample.sql")]

ADMIN = "admin@example.com"
DEFAULT_CONFIG = {"pipeline": {"acting_user": ADMIN}, "crm": {"acting_user": ADMIN}}
TAB = "contacts_companies"


# -- psql -------------------------------------------------------------------------


def psql(conninfo: str, sql: Optional[str] = None, *, file: Optional[Path] = None,
         timeout: float = 600) -> str:
    """Runs SQL (or a file) with psql, stops at the first error, returns the
    unaligned, tuples-only output."""
    if shutil.which("psql") is None:
        pytest.fail("psql is not on PATH; install the PostgreSQL client (apt-get install "
                    "postgresql-client)", pytrace=False)
    command = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo]
    command += ["-f", str(file)] if file is not None else ["-c", sql or ""]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError("psql failed (exit %d) running %s:\n%s" % (
            result.returncode, file or sql, result.stderr.strip()))
    return result.stdout.strip()


def with_option(conninfo: str, keyword: str, value: str) -> str:
    """The same connection string with one keyword set (replaced or added);
    works for keyword strings and postgresql:// URIs."""
    if re.match(r"^postgres(ql)?://", conninfo):
        parts = urlsplit(conninfo)
        if keyword == "dbname":
            return urlunsplit(parts._replace(path="/" + quote(value, safe="")))
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != keyword]
        query.append((keyword, value))
        return urlunsplit(parts._replace(query=urlencode(query)))
    quoted = "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")
    pattern = re.compile(r"(^|\s)%s\s*=\s*('(?:[^'\\]|\\.)*'|\S+)" % re.escape(keyword))
    if pattern.search(conninfo):
        return pattern.sub(lambda match: "%s%s=%s" % (match.group(1), keyword, quoted), conninfo, count=1)
    return "%s %s=%s" % (conninfo, keyword, quoted)


def with_dbname(conninfo: str, dbname: str) -> str:
    """The same connection string, pointed at another database."""
    return with_option(conninfo, "dbname", dbname)


class Database:
    """One throwaway database of the test server."""

    def __init__(self, server: str, name: str) -> None:
        self.server = server
        self.name = name
        self.conninfo = with_dbname(server, name)

    def sql(self, statement: str) -> str:
        return psql(self.conninfo, statement)

    def scalar(self, statement: str) -> str:
        return self.sql(statement)

    def count(self, statement: str) -> int:
        return int(self.sql(statement))

    def rows(self, statement: str) -> List[List[str]]:
        output = self.sql(statement)
        return [line.split("|") for line in output.splitlines()] if output else []

    def backends(self) -> int:
        """Open server connections to this database (psql's own excluded)."""
        return int(psql(self.server, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'"
                        % self.name))

    def load_apps(self, records_per_module: Optional[int] = None, overlap_percent: int = 30) -> None:
        """Loads the reference apps (sql/apps) and, when asked, sample data."""
        missing = [str(path) for path in APP_SCRIPTS if not path.is_file()]
        if missing:
            pytest.fail("reference app scripts missing: %s" % ", ".join(missing), pytrace=False)
        for path in APP_SCRIPTS:
            psql(self.conninfo, file=path)
        if records_per_module is not None:
            self.sql("SELECT tandem_sample.generate(%d, %d)" % (records_per_module, overlap_percent))


# -- helpers used by several test modules ------------------------------------------


def tab_status(db: tandem.Tandem, tab: str = TAB) -> dict:
    status = db.status()
    tabs = {entry["tab"]: entry for entry in status["tabs"]}
    assert tab in tabs, "tab %s missing from status: %r" % (tab, status)
    return tabs[tab]


def sync_until_initial_sync_complete(db: tandem.Tandem, tab: str = TAB, timeout: float = 300,
                                     max_passes: int = 10000) -> int:
    """Calls sync() until the tab's initial sync is complete; returns the
    number of passes. Bounded by time and by passes."""
    deadline = time.monotonic() + timeout
    for passes in range(1, max_passes + 1):
        db.sync()
        entry = tab_status(db, tab)
        if entry["initial_sync_complete"]:
            return passes
        assert time.monotonic() < deadline, (
            "initial sync of %s not complete after %d passes / %ss: %r" % (tab, passes, timeout, entry))
    raise AssertionError("initial sync of %s not complete after %d passes" % (tab, max_passes))


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               step: Optional[Callable[[], None]] = None, interval: float = 0.05) -> None:
    """Polls condition (running step between polls) until true, or fails."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        if step is not None:
            step()
        else:
            time.sleep(interval)
