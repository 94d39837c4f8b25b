"""The appended C API from Python: sync_v2, paged reports, cancel, the log
callback and extended result codes."""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Dict, List, Tuple

import pytest

from support import DEFAULT_CONFIG, TAB, Database, tandem, wait_until

TOUCH_CONTACT = ("UPDATE pipeline.contacts SET title = coalesce(title, '') || '.' "
                 "WHERE id = (SELECT min(id) FROM pipeline.contacts)")


@pytest.fixture
def synced(database: Database):  # type: ignore[no-untyped-def]
    """A handle whose contacts_companies initial sync ran with sync_v2()."""
    database.load_apps(records_per_module=60)
    with tandem.open(database.conninfo) as db:
        db.install()
        db.configure(DEFAULT_CONFIG)
        db.activate(TAB)
        first = db.sync_v2()
        assert first.more, "a pass that handled an initial-sync chunk says more: %r" % (first,)
        passes = 1
        while db.sync_v2().more:
            passes += 1
            assert passes < 1000
        yield db


def test_state_errors_say_which_state(database: Database, handle: tandem.Tandem) -> None:
    with pytest.raises(tandem.StateError) as raised:
        handle.attach("default")
    assert raised.value.extended_code == tandem.STATE_NOT_INSTALLED
    assert raised.value.code == tandem.STATE
    with pytest.raises(tandem.StateError) as raised:
        handle.status()
    assert raised.value.extended_code == tandem.STATE_NOT_BOUND
    with pytest.raises(tandem.NotFoundError) as missing:
        handle.report("no_such_report")
    assert missing.value.extended_code == tandem.NOTFOUND


def test_tab_order_is_its_own_extended_code(database: Database) -> None:
    database.load_apps(records_per_module=10)
    with tandem.open(database.conninfo) as db:
        db.install()
        db.configure(dict(DEFAULT_CONFIG, tabs={TAB: {}, "notes": {}}))
        with pytest.raises(tandem.StateError) as raised:
            db.activate("notes")
        assert raised.value.extended_code == tandem.STATE_TAB_ORDER


def test_sync_v2_reports_counts_and_whether_more_is_left(synced: tandem.Tandem) -> None:
    quiet = synced.sync_v2()
    assert isinstance(quiet, tandem.SyncResult)
    assert not quiet.more and quiet.read == 0 and quiet.written == 0
    runs = synced.report("run_history", 1000)
    assert sum(run["created_in_crm"] + run["created_in_pipeline"] for run in runs) > 0


def test_iter_report_reads_every_row_page_by_page(synced: tandem.Tandem) -> None:
    whole = synced.report("linked_records", 10000)
    assert len(whole) > 7
    paged = list(synced.iter_report("linked_records", page_size=7))
    assert [row["link_id"] for row in paged] == [row["link_id"] for row in whole]
    first = synced.report_page("linked_records", None, 7)
    assert len(first.rows) == 7 and first.next is not None
    second = synced.report_page("linked_records", first.next, 7)
    assert second.rows[0]["link_id"] > first.rows[-1]["link_id"]
    for name in ("run_history", "event_history", "linked_records", "runs", "events", "links"):
        assert isinstance(synced.report(name, 5), list)
        assert isinstance(list(synced.iter_report(name, 50)), list)
    with pytest.raises(tandem.MisuseError):
        synced.report_page("linked_records", "not a key from the library")
    with pytest.raises(tandem.MisuseError):
        synced.report_page("run_history", first.next)


class Locker:
    """A psql session that holds ACCESS EXCLUSIVE on a table until released."""

    def __init__(self, database: Database, table: str) -> None:
        self.database = database
        self.process = subprocess.Popen(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database.conninfo],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.process.stdin is not None
        self.process.stdin.write("BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\n" % table)
        self.process.stdin.flush()
        wait_until(lambda: database.count(
            "SELECT count(*) FROM pg_locks WHERE relation = '%s'::regclass "
            "AND mode = 'AccessExclusiveLock' AND granted" % table) == 1, 10, "the lock on %s" % table)

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("ROLLBACK;\n")
        self.process.stdin.close()
        self.process.wait(timeout=30)


def test_cancel_interrupts_a_pass_which_rolls_back(synced: tandem.Tandem, database: Database) -> None:
    synced.cancel()  # nothing runs: harmless
    assert not synced.sync_v2().more
    lines: List[Tuple[int, str]] = []
    synced.set_log_callback(lambda level, message: lines.append((level, message)))
    database.sql(TOUCH_CONTACT)
    locker = Locker(database, "tandem.runs")
    outcome: Dict[str, BaseException] = {}

    def sync() -> None:
        try:
            synced.sync_v2()
        except BaseException as error:
            outcome["error"] = error

    worker = threading.Thread(target=sync)
    try:
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "the pass should be held up by the lock: %r" % (outcome,)
        canceled_at = time.monotonic()
        synced.cancel()
        worker.join(10)
        took = time.monotonic() - canceled_at
    finally:
        locker.release()
        worker.join(60)
    error = outcome.get("error")
    assert isinstance(error, tandem.CanceledError), outcome
    assert error.code == tandem.CANCELED and error.sqlstate == "57014"
    assert took < 5
    again = synced.sync_v2()
    assert again.read >= 1, "the canceled pass rolled back: its change is read again (%r)" % (again,)
    assert any(level == tandem.LOG_INFO for level, _ in lines), lines
    assert any(level == tandem.LOG_DEBUG and "57014" in message for level, message in lines), lines
    assert not any(database.conninfo in message for _, message in lines)
    synced.set_log_callback(None)
    count = len(lines)
    database.sql(TOUCH_CONTACT)
    synced.sync_v2()
    assert len(lines) == count


def test_log_callback_exception_is_reraised(synced: tandem.Tandem, database: Database) -> None:
    def broken(level: int, message: str) -> None:
        raise ValueError("from the log callback")

    synced.set_log_callback(broken)
    database.sql(TOUCH_CONTACT)
    with pytest.raises(ValueError):
        synced.sync_v2()
    synced.set_log_callback(None)
    assert tandem.python_log_level(tandem.LOG_WARNING) == 30
