"""The other three tabs driven from Python: order (R2), a change in every tab,
stages mapped per pipeline, reminders never synced (R12)."""

from __future__ import annotations

import pytest

from support import ADMIN, Database, sync_until_initial_sync_complete, tandem

ALL_TABS = ["contacts_companies", "pipelines_products", "activities", "notes"]
CONFIG = {"pipeline": {"acting_user": ADMIN}, "crm": {"acting_user": ADMIN},
          "tabs": {tab: {} for tab in ALL_TABS}}


def test_every_tab_is_set_up_in_order_and_syncs_both_ways(database: Database) -> None:
    database.load_apps(60, 30)
    with tandem.open(database.conninfo) as db:
        db.install()
        db.configure(CONFIG)
        with pytest.raises(tandem.StateError) as refused:
            db.activate("notes")
        assert "(R2)" in refused.value.message
        for tab in ALL_TABS:
            db.activate(tab)
            sync_until_initial_sync_complete(db, tab)
        assert {entry["tab"] for entry in db.status()["tabs"] if entry["initial_sync_complete"]} == set(ALL_TABS)

        crm_deal = database.scalar("SELECT crm_id FROM tandem.links WHERE module = 'deals' AND pipeline_id = '1'")
        crm_account = database.scalar("SELECT crm_id FROM tandem.links WHERE module = 'companies' AND pipeline_id = '1'")
        database.sql("UPDATE crm.deals SET stage = 'Value Proposition' WHERE id = %s" % crm_deal)
        database.sql("INSERT INTO pipeline.events (title, start_time, end_time, contact_id, owner_id, reminder_minutes)"
                     " VALUES ('From Python', now(), now() + interval '1 hour', 1, 1, 15)")
        database.sql("INSERT INTO crm.notes (note_content, parent_module, parent_id, owner_id)"
                     " VALUES ('Python note', 'accounts', %s, 1)" % crm_account)
        for _ in range(100):  # bounded: a sync that never quiets fails, it does not hang
            if db.sync() == 0:
                break
        else:
            pytest.fail("sync() still wrote records after 100 passes")
        assert database.scalar("SELECT stage FROM pipeline.pipeline_records WHERE id = 1") == "Needs Identified"
        assert database.rows("SELECT title, coalesce(reminder_minutes::text, 'none') FROM crm.events WHERE title = 'From Python'") \
            == [["From Python", "none"]]
        assert database.scalar("SELECT company_id FROM pipeline.notes WHERE note_content = 'Python note'") == "1"
        assert db.report("record_errors") == []
