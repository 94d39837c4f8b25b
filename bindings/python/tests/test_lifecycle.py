"""The lifecycle of a tab and of the integration driven from Python (R14-R17):
deactivate, edit on both sides, reactivate with a policy, edit sync, remove
while another handle follows, uninstall."""

from __future__ import annotations

import threading

import pytest

from support import ADMIN, Database, sync_until_initial_sync_complete, tandem

CONFIG = {"pipeline": {"acting_user": ADMIN}, "crm": {"acting_user": ADMIN},
          "tabs": {"contacts_companies": {}, "activities": {}}}


def drain(db: tandem.Tandem, limit: int = 1000) -> None:
    """Passes until one writes nothing; bounded."""
    for _ in range(limit):
        if db.sync() == 0:
            return
    raise AssertionError("still writing after %d passes" % limit)


def until_job_done(db: tandem.Tandem, tab: str, limit: int = 1000) -> None:
    """Passes until the tab runs no background job; bounded. (A pass may write
    nothing while the job still has chunks to read.)"""
    for _ in range(limit):
        db.sync()
        if [t["job"] for t in db.status()["tabs"] if t["tab"] == tab] == [None]:
            return
    raise AssertionError("the job of %s is still running after %d passes" % (tab, limit))


def test_deactivate_edit_both_sides_and_reactivate_with_crm_wins(database: Database) -> None:
    database.load_apps(60, 30)
    with tandem.open(database.conninfo) as db:
        db.install()
        db.configure(CONFIG)
        for tab in ("contacts_companies", "activities"):
            db.activate(tab)
            sync_until_initial_sync_complete(db, tab)
        pipeline_id, crm_id = database.rows(
            "SELECT pipeline_id, crm_id FROM tandem.links WHERE module = 'tasks' ORDER BY link_id LIMIT 1")[0]

        with pytest.raises(tandem.StateError) as refused:
            db.deactivate("contacts_companies")
        assert "(R15)" in refused.value.message
        db.deactivate("activities")
        assert [t["state"] for t in db.status()["tabs"] if t["tab"] == "activities"] == ["inactive"]

        database.sql("UPDATE pipeline.tasks SET subject = 'pipeline side' WHERE id = %s" % pipeline_id)
        database.sql("UPDATE crm.tasks SET subject = 'crm side', priority = 'Low' WHERE id = %s" % crm_id)
        drain(db)
        assert database.scalar("SELECT subject FROM crm.tasks WHERE id = %s" % crm_id) == "crm side"

        with pytest.raises(tandem.MisuseError):
            db.reactivate("activities", "whoever_shouts")
        db.reactivate("activities", "crm_wins")
        until_job_done(db, "activities")
        assert database.rows("SELECT subject, priority FROM pipeline.tasks WHERE id = %s" % pipeline_id) \
            == [["crm side", "Low"]]
        conflict = [c for c in db.report("conflicts") if c["field"] == "subject"][0]
        assert conflict["winner"] == "crm" and conflict["policy"] == "crm_wins"
        assert "changed on both sides while inactive" in conflict["reason"]

        with pytest.raises(tandem.StateError) as r9:
            db.edit_sync("activities")
        assert "(R9)" in r9.value.message
        views = dict(CONFIG, tabs={"contacts_companies": {"views": {"contacts": "contacts_with_email"}}, "activities": {}})
        db.edit_sync("contacts_companies", views)
        until_job_done(db, "contacts_companies")
        assert [e for e in db.report("events") if e["type"] == "edit_sync_complete"]


def test_remove_stops_a_following_handle_and_uninstall_needs_it(database: Database) -> None:
    database.load_apps(20, 30)
    with tandem.open(database.conninfo) as db, tandem.open(database.conninfo) as follower:
        db.install()
        db.configure(CONFIG)
        db.activate("contacts_companies")
        sync_until_initial_sync_complete(db)
        follower.attach("default")
        outcome: dict = {}

        def follow() -> None:
            try:
                follower.run()
            except tandem.TandemError as error:
                outcome["error"] = error

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        with pytest.raises(tandem.StateError) as in_use:
            db.uninstall()
        assert "'default'" in in_use.value.message
        db.remove()
        thread.join(15)
        if thread.is_alive():
            follower.stop()
            thread.join(5)
            pytest.fail("the following handle did not return within 15 s of the removal")
        assert isinstance(outcome.get("error"), tandem.RemovedError)
        assert outcome["error"].code == tandem.REMOVED
        db.remove()  # harmless
        assert database.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%tandem%'") == "0"
        db.uninstall()
        assert database.scalar("SELECT to_regnamespace('tandem') IS NULL") == "t"
