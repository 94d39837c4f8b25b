"""Alive under faults (B11), with real processes: a `tandem run` host keeps
following through a server restart, and when the active host is killed in the
middle of a long statement a standby takes over within a second."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

from support import ADMIN, REPO_ROOT, Database, psql, tandem

CONFIG = {"pipeline": {"acting_user": ADMIN}, "crm": {"acting_user": ADMIN}}
LOCK_CLASS = 1952804196  # the syncer lock's first key (Engine+Follow.swift)


def cli_binary() -> Path:
    binary = Path(tandem.load_library()).parent / "tandem"
    if not binary.exists():
        pytest.fail("no tandem CLI beside %s: build it with `swift build`" % tandem.load_library(), pytrace=False)
    return binary


def cli(conninfo: str, *arguments: str) -> str:
    done = subprocess.run([str(cli_binary()), *arguments], env=dict(os.environ, TANDEM_DATABASE_URL=conninfo),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, "tandem %s: %s%s" % (" ".join(arguments), done.stdout, done.stderr)
    return done.stdout


def set_up(database: Database, tmp_path: Path) -> None:
    database.load_apps(20, 30)
    config = tmp_path / "tandem.json"
    config.write_text(json.dumps(CONFIG))
    cli(database.conninfo, "install")
    cli(database.conninfo, "configure", "--config", str(config))
    cli(database.conninfo, "activate", "contacts_companies")
    cli(database.conninfo, "sync")


class Host:
    """A `tandem run` process whose output goes to a file."""

    def __init__(self, conninfo: str, log: Path) -> None:
        self.log = log
        self.output = log.open("w")
        self.process = subprocess.Popen([str(cli_binary()), "run"], stdout=self.output, stderr=subprocess.STDOUT,
                                        env=dict(os.environ, TANDEM_DATABASE_URL=conninfo))

    def events(self, type_: str) -> int:
        self.output.flush()
        return sum(1 for line in self.log.read_text().splitlines() if '"type":"%s"' % type_ in line.replace(" ", ""))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.output.close()


def eventually(seconds: float, condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def crm_phone(database: Database, pipeline_id: int) -> str:
    return database.scalar("SELECT c.phone FROM crm.contacts c JOIN tandem.links l ON l.module = 'contacts'"
                           " AND l.crm_id = c.id::text WHERE l.pipeline_id = '%d'" % pipeline_id)


@pytest.fixture
def own_server() -> Iterator[tuple]:
    """A cluster of this test's own, so that it may be restarted."""
    script = REPO_ROOT / "scripts" / "pg-throwaway"
    directory = tempfile.mkdtemp(prefix="tandem-restart-")
    started = subprocess.run([str(script), "start", directory], capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    try:
        yield started.stdout.strip().splitlines()[-1], Path(directory)
    finally:
        subprocess.run([str(script), "stop", directory], capture_output=True, timeout=120)


def pg_ctl(directory: Path, *arguments: str) -> None:
    bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
    command = [str(Path(bindir) / "pg_ctl"), "-D", str(directory / "data"), *arguments]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--"] + command
    # The server started by pg_ctl keeps its standard output: send it to a
    # file, or a pipe to this process would never reach its end.
    with (directory / "pg_ctl.log").open("a") as log:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=120)
    assert done.returncode == 0, (directory / "pg_ctl.log").read_text()[-2000:]


def test_a_host_keeps_following_through_a_server_restart(own_server: tuple, tmp_path: Path) -> None:
    server, directory = own_server
    name = "t_" + uuid.uuid4().hex
    psql(server, 'CREATE DATABASE "%s"' % name)
    database = Database(server, name)
    set_up(database, tmp_path)
    host = Host(database.conninfo, tmp_path / "host.log")
    try:
        database.sql("UPDATE pipeline.contacts SET phone = 'before restart' WHERE id = 1")
        assert eventually(10, lambda: crm_phone(database, 1) == "before restart")

        pg_ctl(directory, "restart", "-m", "fast", "-w", "-t", "60", "-l", str(directory / "server.log"))
        database.sql("UPDATE pipeline.contacts SET phone = 'after restart' WHERE id = 2")
        assert eventually(30, lambda: crm_phone(database, 2) == "after restart"), host.log.read_text()[-2000:]
        assert host.process.poll() is None, "the host is still running"
        assert host.events("connection_lost") >= 1 and host.events("connection_restored") >= 1
        database.sql("UPDATE pipeline.contacts SET phone = 'later' WHERE id = 3")
        assert eventually(10, lambda: crm_phone(database, 3) == "later")
    finally:
        host.stop()


def syncer_pid(database: Database) -> Optional[int]:
    value = database.scalar("SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = %d"
                            " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                            % LOCK_CLASS)
    return int(value) if value else None


def test_a_standby_takes_over_within_a_second_of_the_active_host_dying_mid_statement(database: Database,
                                                                                      tmp_path: Path) -> None:
    set_up(database, tmp_path)
    active = Host(database.conninfo, tmp_path / "active.log")
    standby: Optional[Host] = None
    blocker: Optional[subprocess.Popen] = None
    try:
        assert eventually(10, lambda: syncer_pid(database) is not None), "the first host becomes the syncer"
        active_pid = syncer_pid(database)
        standby = Host(database.conninfo, tmp_path / "standby.log")
        assert eventually(10, lambda: database.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'tandem'") == 2)

        # The active host's pass is made to wait inside a statement for a lock this test holds.
        blocker = subprocess.Popen(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database.conninfo],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert blocker.stdin is not None
        blocker.stdin.write("BEGIN; LOCK TABLE tandem.runs IN ACCESS EXCLUSIVE MODE;\n")
        blocker.stdin.flush()
        assert eventually(5, lambda: database.count(
            "SELECT count(*) FROM pg_locks WHERE relation = 'tandem.runs'::regclass AND mode = 'AccessExclusiveLock' AND granted") == 1)
        database.sql("UPDATE pipeline.contacts SET phone = 'failover' WHERE id = 5")
        assert eventually(5, lambda: database.count(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND wait_event_type = 'Lock'" % active_pid) == 1), \
            "the active host is inside a statement"

        active.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        took_over = eventually(5, lambda: syncer_pid(database) not in (None, active_pid))
        elapsed = time.monotonic() - killed_at
        assert took_over, "the standby took over"
        assert elapsed < 1.0, "the standby took over after %.3f s" % elapsed

        blocker.stdin.write("ROLLBACK;\n")
        blocker.stdin.flush()
        assert eventually(15, lambda: crm_phone(database, 5) == "failover"), "the cut-off pass's edit arrives"
    finally:
        if blocker is not None and blocker.poll() is None:
            blocker.kill()
            blocker.wait(10)
        active.stop()
        if standby is not None:
            standby.stop()


def test_sync_with_wait_stands_by_until_it_is_the_syncer(database: Database, tmp_path: Path) -> None:
    set_up(database, tmp_path)
    active = Host(database.conninfo, tmp_path / "active.log")
    try:
        assert eventually(10, lambda: syncer_pid(database) is not None)
        refused = subprocess.run([str(cli_binary()), "sync"], env=dict(os.environ, TANDEM_DATABASE_URL=database.conninfo),
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "active syncer" in refused.stderr
        waiting = subprocess.Popen([str(cli_binary()), "sync", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, env=dict(os.environ, TANDEM_DATABASE_URL=database.conninfo))
        # It says it waits (read with a deadline), and it does.
        assert waiting.stderr is not None
        said = ""
        deadline = time.monotonic() + 15
        while "waiting to take over" not in said and time.monotonic() < deadline:
            ready, _, _ = select.select([waiting.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = waiting.stderr.readline()
            if not line:
                break
            said += line
        assert "waiting to take over" in said, said
        assert waiting.poll() is None, "sync --wait waits while another host is the syncer"
        active.stop()
        out, err = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, said + err
        assert "written:" in out
    finally:
        active.stop()
