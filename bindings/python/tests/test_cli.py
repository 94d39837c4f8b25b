"""The `tandem` CLI as scripts and people use it: help, version, usage errors
(exit 64 with the command's usage), one exit code per result code family,
status and report as tables or JSON, `sync` output when redirected or on a
terminal, and Ctrl-C. The real binary beside the library under test."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from support import ADMIN, HEADER, Database, tandem, wait_until

COMMANDS = ["install", "validate", "configure", "activate", "edit", "deactivate", "reactivate", "remove",
            "uninstall", "sync", "run", "status", "report", "demo"]
SYNC_ORDER = ["contacts_companies", "pipelines_products", "activities", "notes"]
# README, "The CLI": exit status per result code family.
EXIT = {"usage": 64, "noinput": 66, "connect": 69, "busy": 75, "permission": 77, "config": 78,
        "state": 81, "notfound": 82, "removed": 83, "interrupted": 130}
CONFIG = {"pipeline": {"acting_user": ADMIN}, "crm": {"acting_user": ADMIN}, "initial_sync_chunk": 25,
          "tabs": {"contacts_companies": {}, "activities": {}}}


def binary() -> Path:
    path = Path(tandem.load_library()).parent / "tandem"
    if not path.exists():
        pytest.fail("no tandem CLI beside %s: build it with `swift build`" % tandem.load_library(), pytrace=False)
    return path


def run(*arguments: str, database: Optional[str] = "host=/nonexistent-tandem-test port=1",
        timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TANDEM_DATABASE_URL"}
    if database is not None:
        environment["TANDEM_DATABASE_URL"] = database
    return subprocess.run([str(binary()), *arguments], env=environment, capture_output=True, text=True,
                          timeout=timeout)


def ok(database: Database, *arguments: str) -> str:
    done = run(*arguments, database=database.conninfo)
    assert done.returncode == 0, "tandem %s exited %d: %s%s" % (" ".join(arguments), done.returncode,
                                                               done.stdout, done.stderr)
    return done.stdout


def set_up(database: Database, tmp_path: Path, records: int = 40, config: Optional[Dict] = None) -> None:
    database.load_apps(records, 30)
    path = tmp_path / "tandem.json"
    path.write_text(json.dumps(config or CONFIG))
    ok(database, "install")
    ok(database, "configure", "--config", str(path))
    ok(database, "activate", "contacts_companies")


# -- help, version, usage ----------------------------------------------------------


def test_every_command_has_its_own_help() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert re.search(r"^\s+%s\s" % command, top.stdout, re.MULTILINE), "%s missing from tandem --help" % command
        done = run(command, "--help")
        assert done.returncode == 0, done.stderr
        assert "USAGE: tandem %s" % command in done.stdout, done.stdout
        assert "--database <conninfo>" in done.stdout
    assert "--policy <policy>" in run("reactivate", "--help").stdout
    assert "--limit <n>" in run("report", "--help").stdout
    assert "--json" in run("status", "--help").stdout
    assert "--wait" in run("sync", "--help").stdout


def test_version_comes_from_the_header() -> None:
    version = re.search(r'#define TANDEM_VERSION "([^"]+)"', HEADER.read_text()).group(1)  # type: ignore[union-attr]
    done = run("--version")
    assert (done.returncode, done.stdout.strip()) == (0, version)


@pytest.mark.parametrize("arguments, command", [
    (["report", "conflicts", "--limt", "2"], "report"),
    (["report", "conflicts", "--limit", "abc"], "report"),
    (["report", "conflicts", "--limit", "0"], "report"),
    (["report", "conflicts", "--limit", "-1"], "report"),
    (["report", "no_such_report"], "report"),
    (["status", "--bogus", "x"], "status"),
    (["status", "extra"], "status"),
    (["activate", "contacts_companies", "notes"], "activate"),
    (["activate", "no_such_tab"], "activate"),
    (["activate"], "activate"),
    (["reactivate", "activities"], "reactivate"),
    (["reactivate", "activities", "--policy", "loudest"], "reactivate"),
    (["configure"], "configure"),
    (["run", "--reconnect-timeout", "-5"], "run"),
    (["sync", "--wait", "now"], "sync"),
    (["remove", "--purge=yes"], "remove"),
])
def test_usage_errors_exit_64_with_the_usage_of_that_command(arguments: List[str], command: str) -> None:
    done = run(*arguments)
    assert done.returncode == EXIT["usage"], (done.returncode, done.stdout, done.stderr)
    assert done.stdout == ""
    assert "Usage: tandem %s" % command in done.stderr, done.stderr
    assert "library used incorrectly" not in done.stderr


def test_no_command_no_database_and_unknown_commands_are_usage_errors() -> None:
    for arguments, database in [([], "x"), (["frobnicate"], "x"), (["status"], None)]:
        done = run(*arguments, database=database)
        assert done.returncode == EXIT["usage"], (arguments, done.stderr)
        assert "library used incorrectly" not in done.stderr
    assert "TANDEM_DATABASE_URL" in run("status", database=None).stderr


# -- exit codes per result code family ---------------------------------------------


def test_each_result_code_family_has_its_exit_code(database: Database, server: str, tmp_path: Path) -> None:
    assert run("status").returncode == EXIT["connect"]
    assert run("status", database=database.conninfo).returncode == EXIT["state"], "schema not installed"
    assert run("configure", "--config", str(tmp_path / "missing.json"), database=database.conninfo).returncode \
        == EXIT["noinput"]
    set_up(database, tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(CONFIG, colour="blue")))
    assert run("validate", "--config", str(bad), database=database.conninfo).returncode == EXIT["config"]
    bad.write_text(json.dumps(dict(CONFIG, pipeline={"acting_user": "nobody@example.com"})))
    assert run("validate", "--config", str(bad), database=database.conninfo).returncode == EXIT["permission"]
    assert run("status", "--integration", "nope", database=database.conninfo).returncode == EXIT["notfound"]
    assert run("deactivate", "contacts_companies", database=database.conninfo).returncode == EXIT["state"]

    # Another host is the active syncer: 75 and a hint, not the message twice.
    with tandem.open(database.conninfo) as host:
        host.attach("default")
        host.sync()
        busy = run("sync", database=database.conninfo)
        assert busy.returncode == EXIT["busy"], busy.stderr
        assert busy.stderr.count("active syncer") == 1 and "--wait" in busy.stderr, busy.stderr

    with tandem.open(database.conninfo) as follower:
        follower.attach("default")
        ok(database, "remove")
        with pytest.raises(tandem.RemovedError):
            follower.sync()
    removed = run("sync", database=database.conninfo)
    assert removed.returncode == EXIT["removed"], removed.stderr


# -- status and report ---------------------------------------------------------------


def syncer_pid(database: Database) -> Optional[int]:
    pid = database.scalar("SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
                          " AND l.classid = 1952804196 AND l.objid = hashtext('default')::oid"
                          " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return int(pid) if pid else None


def test_status_for_people_and_as_json(database: Database, tmp_path: Path) -> None:
    set_up(database, tmp_path)
    # Before the initial sync: progress with totals counted from the apps.
    human = ok(database, "status")
    assert "active syncer: none" in human
    header = next(line for line in human.splitlines() if line.startswith("tab "))
    assert re.match(r"tab\s+state\s+job\s+linked\s+pending\s+waiting\s+errors\s+conflicts\s+last pass", header)
    rows = [line.split()[0] for line in human.splitlines() if line.split() and line.split()[0] in SYNC_ORDER]
    assert rows[:2] == ["contacts_companies", "activities"], human
    companies = database.count("SELECT count(*) FROM pipeline.companies")
    assert re.search(r"companies\s+pipeline app\s+0\s+%d\s+0%%\s+to do" % companies, human), human
    assert "initial_sync 0%" in human

    status = json.loads(ok(database, "status", "--json"))
    assert [tab["tab"] for tab in status["tabs"]] == ["contacts_companies", "activities"]
    scans = status["tabs"][0]["job_progress"]
    assert scans[0] == {"module": "companies", "scan": "pipeline", "job": "initial_sync", "read": 0,
                        "total": companies, "done": False}
    assert status["active_syncer"] is None

    # Another host syncs: status names it, whoever asks.
    with tandem.open(database.conninfo) as host:
        host.attach("default")
        host.sync()
        pid = syncer_pid(database)
        assert pid is not None
        status = json.loads(ok(database, "status", "--json"))
        assert status["active_syncer"]["pid"] == pid
        assert status["active_syncer"]["application_name"] == "tandem"
        assert "active syncer: pid %d (application \"tandem\")" % pid in ok(database, "status")
        read = status["tabs"][0]["job_progress"][0]["read"]
        assert 0 < read <= status["tabs"][0]["job_progress"][0]["total"]
    ok(database, "sync")
    status = json.loads(ok(database, "status", "--json"))
    assert status["tabs"][0]["state"] == "active" and status["tabs"][0]["job_progress"] == []


def test_report_as_a_table_and_as_json(database: Database, tmp_path: Path) -> None:
    set_up(database, tmp_path)
    ok(database, "sync")
    rows = json.loads(ok(database, "report", "conflicts", "--json", "--limit", "3"))
    assert isinstance(rows, list) and 0 < len(rows) <= 3
    assert {"field", "winner", "policy"} <= set(rows[0])
    table = ok(database, "report", "conflicts", "--limit", "3").splitlines()
    assert re.match(r"module\s+link_id\s+field\s+pipeline_value\s+crm_value\s+winner", table[0]), table
    assert set(table[1]) <= {"-", " "}
    assert len(table) == 2 + len(rows) + 1 and table[-1].startswith("(%d rows" % len(rows))
    # Columns line up: every row starts its second column where the header does.
    second = table[0].index("link_id")
    assert all(line[second - 2:second] == "  " for line in table[2:-1])
    assert len(ok(database, "report", "runs").splitlines()) <= 2 + 20 + 1, "a few rows by default"
    # The view's name works as well as the report's.
    assert json.loads(ok(database, "report", "run_history", "--json", "--limit", "1"))[0]["run_id"] > 0
    assert ok(database, "report", "record_errors") == "(no rows)\n"


# -- sync ----------------------------------------------------------------------------


def test_sync_redirected_to_a_file_prints_a_line_per_pass_as_it_goes(database: Database, tmp_path: Path) -> None:
    set_up(database, tmp_path, records=150)
    output = tmp_path / "sync.out"
    with output.open("w") as file:
        process = subprocess.Popen([str(binary()), "sync"], stdout=file, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, TANDEM_DATABASE_URL=database.conninfo))
        seen_while_running = False
        while process.poll() is None:
            if output.read_text().startswith("pass 1: "):
                seen_while_running = True
            time.sleep(0.01)
        assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    lines = output.read_text().splitlines()
    assert seen_while_running, "each pass's line is flushed at once, not at exit"
    passes = [line for line in lines if line.startswith("pass ")]
    assert passes[0].startswith("pass 1: contacts_companies initial sync ")
    assert re.search(r"initial sync \d+% \(now companies, pipeline app \d+ of \d+\)", passes[0]), passes[0]
    assert passes[-1] == "pass %d: nothing left to do" % len(passes)
    # One line per pass; the last found nothing to do and recorded no run.
    assert database.count("SELECT count(*) FROM tandem.runs") == len(passes) - 1
    assert any(line.startswith("contacts_companies: initial sync complete") for line in lines)
    assert lines[-1].startswith("done: %d passes in " % len(passes)) and "written: " in lines[-1]
    assert "\r" not in output.read_text()


def test_sync_on_a_terminal_updates_one_line_in_place(database: Database, tmp_path: Path) -> None:
    set_up(database, tmp_path)
    controller, terminal = pty.openpty()
    process = subprocess.Popen([str(binary()), "sync"], stdout=terminal, stderr=subprocess.PIPE,
                               env=dict(os.environ, TANDEM_DATABASE_URL=database.conninfo))
    os.close(terminal)
    received = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = received.decode()
    assert text.count("\r\x1b[Kpass ") >= 2, text
    assert not re.search(r"\npass \d", text.replace("\r\n", "\n")), "no line of its own per pass on a terminal"
    assert "done: " in text and "written: " in text


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sync_rolls_back_the_pass_in_flight_and_resumes(
        database: Database, tmp_path: Path, signal_number: int) -> None:
    set_up(database, tmp_path, records=300, config=dict(CONFIG, initial_sync_chunk=10))
    output = tmp_path / "sync.out"
    with output.open("w") as file:
        process = subprocess.Popen([str(binary()), "sync"], stdout=file, stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, TANDEM_DATABASE_URL=database.conninfo))
        wait_until(lambda: "pass 3:" in output.read_text() or process.poll() is not None, 60, "three passes")
        process.send_signal(signal_number)
        _, err = process.communicate(timeout=30)
    assert process.returncode == EXIT["interrupted"], err
    assert "interrupted; `tandem sync` resumes where it stopped" in err, err
    assert database.scalar("SELECT state FROM tandem.tabs WHERE tab = 'contacts_companies'") == "initial_sync"
    assert syncer_pid(database) is None, "the interrupted host's session is gone with its lock"
    passes = len([line for line in output.read_text().splitlines() if line.startswith("pass ")])
    # Only the passes it reported committed (give or take one whose COMMIT
    # went through just as the signal came).
    assert passes <= database.count("SELECT count(*) FROM tandem.runs") <= passes + 1

    ok(database, "sync")
    assert database.scalar("SELECT state FROM tandem.tabs WHERE tab = 'contacts_companies'") == "active"
    for pipeline_table, crm_table, module in [("companies", "accounts", "companies"), ("contacts", "contacts", "contacts")]:
        links = database.count("SELECT count(*) FROM tandem.links WHERE module = '%s'" % module)
        assert database.count("SELECT count(*) FROM pipeline.%s" % pipeline_table) == links, module
