"""A full sync driven from Python against the reference apps, then following
changes with sync(), with process() on the socket, and with run()/stop()."""

from __future__ import annotations

import json
import selectors
import threading
import time
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

from support import (DEFAULT_CONFIG, TAB, Database, sync_until_initial_sync_complete, tab_status,
                     tandem, wait_until)

CONTACT_FIELDS = ["first_name", "last_name", "email", "phone", "mobile", "title", "description",
                  "mailing_street", "mailing_city", "mailing_state", "mailing_zip", "mailing_country"]
COMPANY_FIELDS = [("company_name", "account_name"), ("phone", "phone"), ("website", "website"),
                  ("description", "description"), ("billing_street", "billing_street"),
                  ("billing_city", "billing_city"), ("billing_state", "billing_state"),
                  ("billing_code", "billing_code"), ("billing_country", "billing_country")]

# How the apps' first-sync matching keys are normalised (B3; see the COMMENTs in sql/apps).
EMAIL_KEY = "lower(btrim(email))"
NAME_KEY = "lower(regexp_replace(btrim({column}), '\\s+', ' ', 'g'))"


def unique_phone() -> str:
    return "+1 555 %s" % uuid.uuid4().hex[:10]


# -- counting what the apps hold ------------------------------------------------------


def matchable_pairs(database: Database, pipeline_table: str, crm_table: str,
                    pipeline_key: str, crm_key: str) -> int:
    """How many records can be paired one-to-one by their matching key."""
    return database.count("""
        WITH p AS (SELECT {pk} AS k, count(*) AS n FROM pipeline.{pt}
                    WHERE nullif(btrim({pk}), '') IS NOT NULL GROUP BY 1),
             c AS (SELECT {ck} AS k, count(*) AS n FROM crm.{ct}
                    WHERE nullif(btrim({ck}), '') IS NOT NULL GROUP BY 1)
        SELECT coalesce(sum(least(p.n, c.n)), 0) FROM p JOIN c USING (k)
    """.format(pk=pipeline_key, ck=crm_key, pt=pipeline_table, ct=crm_table))


def snapshot(database: Database) -> Dict[str, int]:
    return {
        "pipeline_contacts": database.count("SELECT count(*) FROM pipeline.contacts"),
        "crm_contacts": database.count("SELECT count(*) FROM crm.contacts"),
        "contact_pairs": matchable_pairs(database, "contacts", "contacts", EMAIL_KEY, EMAIL_KEY),
        "pipeline_companies": database.count("SELECT count(*) FROM pipeline.companies"),
        "crm_accounts": database.count("SELECT count(*) FROM crm.accounts"),
        "company_pairs": matchable_pairs(database, "companies", "accounts",
                                         NAME_KEY.format(column="company_name"),
                                         NAME_KEY.format(column="account_name")),
    }


def links(database: Database, module: str, origin: Optional[str] = None) -> int:
    where = " AND origin = '%s'" % origin if origin else ""
    return database.count("SELECT count(*) FROM tandem.links WHERE module = '%s'%s" % (module, where))


def a_link(database: Database, module: str, origin: str, skip: int = 0) -> Tuple[str, str]:
    rows = database.rows("SELECT pipeline_id, crm_id FROM tandem.links WHERE module = '%s' "
                         "AND origin = '%s' ORDER BY link_id OFFSET %d LIMIT 1" % (module, origin, skip))
    assert rows, "no %s link with origin %s" % (module, origin)
    return rows[0][0], rows[0][1]


def assert_initial_sync_result(database: Database, before: Dict[str, int]) -> None:
    after = snapshot(database)
    # Nothing duplicated (B3): what existed on both sides was paired, the rest copied.
    assert before["contact_pairs"] > 0 and before["company_pairs"] > 0, before
    assert after["crm_contacts"] == before["crm_contacts"] + before["pipeline_contacts"] - before["contact_pairs"]
    assert after["pipeline_contacts"] == before["pipeline_contacts"] + before["crm_contacts"] - before["contact_pairs"]
    assert after["crm_accounts"] == before["crm_accounts"] + before["pipeline_companies"] - before["company_pairs"]
    assert after["pipeline_companies"] == before["pipeline_companies"] + before["crm_accounts"] - before["company_pairs"]
    assert links(database, "contacts", "matched") == before["contact_pairs"]
    assert links(database, "companies", "matched") == before["company_pairs"]
    for module, origin in [("contacts", "pipeline"), ("contacts", "crm"),
                           ("companies", "pipeline"), ("companies", "crm")]:
        assert links(database, module, origin) > 0, (module, origin)

    # Every record of both apps has exactly one link (the CRM views are all_*).
    assert links(database, "contacts") == after["pipeline_contacts"] == after["crm_contacts"]
    assert links(database, "companies") == after["pipeline_companies"] == after["crm_accounts"]
    assert database.count("""
        SELECT count(*) FROM pipeline.contacts p WHERE NOT EXISTS (
            SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.pipeline_id = p.id::text)""") == 0
    assert database.count("""
        SELECT count(*) FROM crm.contacts c WHERE NOT EXISTS (
            SELECT 1 FROM tandem.links l WHERE l.module = 'contacts' AND l.crm_id = c.id::text)""") == 0
    for module, pipeline_table, crm_table in (("contacts", "contacts", "contacts"),
                                              ("companies", "companies", "accounts")):
        assert database.count("""
            SELECT count(*) FROM tandem.links l
             WHERE l.module = '{module}'
               AND (NOT EXISTS (SELECT 1 FROM pipeline.{pt} p WHERE p.id::text = l.pipeline_id)
                    OR NOT EXISTS (SELECT 1 FROM crm.{ct} c WHERE c.id::text = l.crm_id))
            """.format(module=module, pt=pipeline_table, ct=crm_table)) == 0, "dangling links"
    # Every pipeline contact with an email now has a CRM contact with that email.
    with_email = database.count("SELECT count(*) FROM pipeline.contacts WHERE email IS NOT NULL")
    assert with_email > 0
    assert database.count("""
        SELECT count(*) FROM pipeline.contacts
         WHERE lower(btrim(email)) IN (SELECT lower(btrim(email)) FROM crm.contacts)""") == with_email

    # Records created by the sync carry the mapped fields of their source.
    differing = " OR ".join("p.%s IS DISTINCT FROM c.%s" % (f, f) for f in CONTACT_FIELDS)
    assert database.count("""
        SELECT count(*) FROM tandem.links l
          JOIN pipeline.contacts p ON p.id::text = l.pipeline_id
          JOIN crm.contacts c ON c.id::text = l.crm_id
         WHERE l.module = 'contacts' AND l.origin <> 'matched' AND (%s)""" % differing) == 0
    differing = " OR ".join("p.%s IS DISTINCT FROM c.%s" % pair for pair in COMPANY_FIELDS)
    assert database.count("""
        SELECT count(*) FROM tandem.links l
          JOIN pipeline.companies p ON p.id::text = l.pipeline_id
          JOIN crm.accounts c ON c.id::text = l.crm_id
         WHERE l.module = 'companies' AND l.origin <> 'matched' AND (%s)""" % differing) == 0
    # ... their company lookup translated through the company links ...
    assert database.count("""
        SELECT count(*) FROM tandem.links l
          JOIN pipeline.contacts p ON p.id::text = l.pipeline_id
          JOIN crm.contacts c ON c.id::text = l.crm_id
         WHERE l.module = 'contacts' AND l.origin <> 'matched'
           AND NOT ((p.company_id IS NULL AND c.account_id IS NULL)
                    OR EXISTS (SELECT 1 FROM tandem.links k
                                WHERE k.module = 'companies' AND k.pipeline_id = p.company_id::text
                                  AND k.crm_id = c.account_id::text))""") == 0
    # ... and the same owner by email, or the acting user where there is none (R13).
    for source, target, origin in (("pipeline", "crm", "pipeline"), ("crm", "pipeline", "crm")):
        assert database.count("""
            SELECT count(*) FROM tandem.links l
              JOIN {source}.contacts s ON s.id::text = l.{source}_id
              JOIN {target}.contacts t ON t.id::text = l.{target}_id
              JOIN {source}.users su ON su.id = s.owner_id
              JOIN {target}.users tu ON tu.id = t.owner_id
             WHERE l.module = 'contacts' AND l.origin = '{origin}'
               AND lower(tu.email) <> CASE
                   WHEN EXISTS (SELECT 1 FROM {target}.users x WHERE lower(x.email) = lower(su.email))
                   THEN lower(su.email) ELSE 'admin@example.com' END
            """.format(source=source, target=target, origin=origin)) == 0


# -- setting up ----------------------------------------------------------------------------


class Events:
    """Collects the events delivered to the callback."""

    def __init__(self) -> None:
        self.received: List[Any] = []
        self.threads: List[str] = []

    def __call__(self, event: Any) -> None:
        self.received.append(event)
        self.threads.append(threading.current_thread().name)

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [event for event in self.received if event.get("type") == kind]


def set_up(database: Database, db: tandem.Tandem, records: int, overlap: int = 30) -> Events:
    database.load_apps(records_per_module=records, overlap_percent=overlap)
    events = Events()
    db.on_event(events)
    db.install()
    db.configure(DEFAULT_CONFIG)
    db.activate(TAB)
    return events


@pytest.fixture
def synced(database: Database) -> Iterator[Tuple[tandem.Tandem, Events]]:
    """A handle whose contacts_companies tab finished its initial sync (small data)."""
    with tandem.open(database.conninfo) as db:
        events = set_up(database, db, records=20)
        sync_until_initial_sync_complete(db)
        assert db.sync() == 0
        yield db, events


def run_in_thread(db: tandem.Tandem) -> Tuple[threading.Thread, List[Any]]:
    outcome: List[Any] = []

    def follow() -> None:
        try:
            db.run()
            outcome.append(None)
        except BaseException as error:  # reported by the test
            outcome.append(error)

    thread = threading.Thread(target=follow, name="test-run", daemon=True)
    thread.start()
    return thread, outcome


def join(db: tandem.Tandem, thread: threading.Thread, timeout: float = 30) -> None:
    thread.join(timeout)
    if thread.is_alive():
        db.stop()
        thread.join(30)
        raise AssertionError("run() did not return within %ss" % timeout)


def phone_of(database: Database, app: str, record_id: str) -> str:
    return database.scalar("SELECT phone FROM %s.contacts WHERE id = %s" % (app, record_id))


# -- the full sync ---------------------------------------------------------------------------


def test_full_sync_from_python(database: Database) -> None:
    database.load_apps(records_per_module=200, overlap_percent=30)
    before = snapshot(database)
    with tandem.open(database.conninfo) as db:
        events = Events()
        db.on_event(events)
        db.install()
        db.install()  # safe on every start
        db.validate(DEFAULT_CONFIG)
        db.configure(DEFAULT_CONFIG)
        db.configure(json.dumps(DEFAULT_CONFIG))  # again, and as text: harmless
        status = db.status()
        assert status["integration"] == "default"
        assert isinstance(status["tabs"], list)

        db.activate(TAB)
        assert tab_status(db)["initial_sync_complete"] is False
        sync_until_initial_sync_complete(db)
        entry = tab_status(db)
        assert entry["state"] == "active" and entry["initial_sync_complete"] is True
        assert db.sync() == 0  # a quiet system does no work (B4)

        assert events.received and all(isinstance(event, dict) for event in events.received)
        complete = events.of_type("initial_sync_complete")
        assert len(complete) == 1 and complete[0]["tab"] == TAB, events.received

        assert_initial_sync_result(database, before)

        # pipeline -> CRM, on a pair matched by email
        pipeline_id, crm_id = a_link(database, "contacts", "matched")
        phone = unique_phone()
        database.sql("UPDATE pipeline.contacts SET phone = '%s' WHERE id = %s" % (phone, pipeline_id))
        assert db.sync() == 1
        assert phone_of(database, "crm", crm_id) == phone
        assert db.sync() == 0  # the engine's own write does not come back (B4)

        # CRM -> pipeline, on a contact that came from the CRM
        pipeline_id, crm_id = a_link(database, "contacts", "crm")
        phone = unique_phone()
        database.sql("UPDATE crm.contacts SET phone = '%s' WHERE id = %s" % (phone, crm_id))
        assert db.sync() == 1
        assert phone_of(database, "pipeline", pipeline_id) == phone
        assert db.sync() == 0

        # a contact created in the pipeline app after the initial sync
        email = "new-%s@example.com" % uuid.uuid4().hex[:8]
        database.sql("""INSERT INTO pipeline.contacts (last_name, email, phone, owner_id)
                        SELECT 'Newcomer', '%s', '+1 555 0100', id FROM pipeline.users
                         WHERE email = 'admin@example.com'""" % email)
        assert db.sync() == 1
        assert database.scalar("SELECT last_name || ' ' || phone FROM crm.contacts WHERE email = '%s'"
                               % email) == "Newcomer +1 555 0100"

        rows = db.report("links", limit=5)
        assert isinstance(rows, list) and len(rows) == 5 and all(isinstance(r, dict) for r in rows)
        for name in ("tab_status", "pending_changes", "conflicts", "record_errors", "runs", "events"):
            assert isinstance(db.report(name), list), name
        assert db.report("record_errors") == []
        assert len(db.report("links", limit=0)) == 100  # 0 means 100


# -- following changes ----------------------------------------------------------------------


def test_process_follows_changes_announced_on_the_socket(database: Database, synced) -> None:
    db, _ = synced
    selector = selectors.DefaultSelector()
    selector.register(db, selectors.EVENT_READ)  # via fileno()
    db.process()  # consume whatever is pending

    start = time.monotonic()
    db.process()  # nothing to read: returns at once, never blocks
    assert time.monotonic() - start < 2
    # Every committed change makes the socket readable: an idle active host
    # with no record errors needs no timeout (B1).
    assert db.timeout() is None

    for app, other, origin in (("crm", "pipeline", "crm"), ("pipeline", "crm", "pipeline")):
        pipeline_id, crm_id = a_link(database, "contacts", origin)
        ids = {"pipeline": pipeline_id, "crm": crm_id}
        phone = unique_phone()
        database.sql("UPDATE %s.contacts SET phone = '%s' WHERE id = %s" % (app, phone, ids[app]))
        assert selector.select(timeout=10), "the socket did not become readable after a committed change"

        def step() -> None:
            selector.select(timeout=0.5)
            db.process()

        db.process()
        wait_until(lambda: phone_of(database, other, ids[other]) == phone, 20,
                   "the %s change to reach the %s app through process()" % (app, other), step=step)
    assert db.sync() == 0  # process() left nothing behind
    selector.close()


def test_run_follows_changes_until_stopped(database: Database, synced) -> None:
    db, _ = synced
    thread, outcome = run_in_thread(db)
    try:
        for app, other, origin in (("pipeline", "crm", "matched"), ("crm", "pipeline", "pipeline")):
            pipeline_id, crm_id = a_link(database, "contacts", origin)
            ids = {"pipeline": pipeline_id, "crm": crm_id}
            phone = unique_phone()
            database.sql("UPDATE %s.contacts SET phone = '%s' WHERE id = %s" % (app, phone, ids[app]))
            wait_until(lambda: phone_of(database, other, ids[other]) == phone, 20,
                       "run() to carry the %s change to the %s app" % (app, other))
    finally:
        db.stop()
        join(db, thread)
    assert outcome == [None]
    assert db.sync() == 0  # the handle is usable again, and nothing was left behind


def test_run_catches_up_and_runs_the_initial_sync(database: Database) -> None:
    with tandem.open(database.conninfo) as db:
        events = set_up(database, db, records=20)
        before = len(events.received)
        thread, outcome = run_in_thread(db)
        try:
            wait_until(lambda: bool(events.of_type("initial_sync_complete")), 60,
                       "run() to finish the initial sync")
        finally:
            db.stop()
            join(db, thread)
        assert outcome == [None]
        # Delivered on the thread running the C loop, which is run()'s helper thread.
        assert set(events.threads[before:]) == {"tandem-run"}
        assert tab_status(db)["initial_sync_complete"] is True


def test_a_second_host_stands_by_while_run_is_active(database: Database, synced) -> None:
    db, _ = synced
    with tandem.open(database.conninfo) as standby:
        standby.attach("default")
        assert standby.status()["integration"] == "default"
        thread, outcome = run_in_thread(db)
        try:
            busy: List[tandem.TandemError] = []

            def standby_is_refused() -> bool:
                try:
                    standby.sync()
                except tandem.BusyError as error:
                    busy.append(error)
                    return True
                return False

            wait_until(standby_is_refused, 20, "sync() on a second host to raise BusyError")
            assert busy[0].code == tandem.BUSY and busy[0].message
            standby.process()  # a standby host's process() does nothing and succeeds
            wait = standby.timeout()  # ...and tries to take over again this soon
            assert wait is not None and 0 < wait <= 1, wait
        finally:
            db.stop()
            join(db, thread)
        assert outcome == [None]
        with pytest.raises(tandem.BusyError):
            standby.sync()  # the syncer lock lives as long as the active host's session
        db.close()

        def standby_takes_over() -> bool:
            try:
                assert standby.sync() == 0
            except tandem.BusyError:
                return False  # the closed session's backend has not exited yet
            return True

        wait_until(standby_takes_over, 10, "the standby to take over once the active host is gone")


# -- events and callbacks ---------------------------------------------------------------------


def test_callback_exception_is_reraised_after_the_call(database: Database) -> None:
    with tandem.open(database.conninfo) as db:
        events = set_up(database, db, records=10)

        def explode(event: Dict[str, Any]) -> None:
            events(event)
            if event.get("type") == "initial_sync_complete":
                raise RuntimeError("boom from the callback")

        db.set_event_callback(explode)
        with pytest.raises(RuntimeError, match="boom from the callback"):
            sync_until_initial_sync_complete(db)
        # The call's own work stays done; the handle is fine.
        assert tab_status(db)["initial_sync_complete"] is True
        assert len(events.of_type("initial_sync_complete")) == 1
        db.set_event_callback(None)
        assert db.sync() == 0


def test_callback_must_not_call_back_into_the_handle(database: Database) -> None:
    with tandem.open(database.conninfo) as db:
        set_up(database, db, records=10)
        db.on_event(lambda event: db.status())
        with pytest.raises(tandem.MisuseError) as caught:
            sync_until_initial_sync_complete(db)
        assert "in use" in caught.value.message
        db.set_event_callback(None)
        sync_until_initial_sync_complete(db)


def test_callback_exception_stops_run(database: Database) -> None:
    with tandem.open(database.conninfo) as db:
        set_up(database, db, records=10)

        def explode(event: Dict[str, Any]) -> None:
            if event.get("type") == "initial_sync_complete":
                raise KeyError("from the callback")

        db.on_event(explode)
        thread, outcome = run_in_thread(db)
        join(db, thread, timeout=60)
        assert len(outcome) == 1 and isinstance(outcome[0], KeyError), outcome


def test_cleared_callback_receives_nothing(database: Database) -> None:
    with tandem.open(database.conninfo) as db:
        events = set_up(database, db, records=10)
        assert events.of_type("tab_activated"), events.received  # delivered during activate()
        delivered = len(events.received)
        db.set_event_callback(None)
        sync_until_initial_sync_complete(db)
        assert len(events.received) == delivered
        assert any(row for row in db.report("events")), "the event is still recorded in the database"


def test_handle_is_busy_while_run_is_active(database: Database, synced) -> None:
    db, _ = synced
    thread, outcome = run_in_thread(db)
    try:
        def status_refused() -> bool:
            try:
                db.status()
            except tandem.MisuseError as error:
                assert "in use" in error.message
                return True
            return False

        wait_until(status_refused, 10, "status() to be refused while run() holds the handle")
        with pytest.raises(tandem.MisuseError):
            db.close()
        assert not db.closed
    finally:
        db.stop()
        join(db, thread)
    assert outcome == [None]
    assert isinstance(db.status(), dict)
