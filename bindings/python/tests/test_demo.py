"""`tandem demo` tells its story in one screen per step: it succeeds on a
fresh database, keeps every step, and stays under 150 lines of output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from support import REPO_ROOT, Database, tandem


def test_the_demo_runs_every_step_in_under_150_lines(database: Database) -> None:
    binary = Path(tandem.load_library()).parent / "tandem"
    environment = dict(os.environ, TANDEM_APPS_DIR=str(REPO_ROOT / "sql" / "apps"), TANDEM_DEMO_RECORDS="150")
    environment.pop("TANDEM_DATABASE_URL", None)
    done = subprocess.run([str(binary), "demo", "--database", database.conninfo], env=environment,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) < 150, "%d lines:\n%s" % (len(lines), done.stdout)
    headings = [line for line in lines if line.startswith("== ")]
    assert [heading.split(" ")[1] for heading in headings] == ["1.", "2.", "3.", "4.", "5.", "6.", "7.", "8.", "Done"]
    text = done.stdout
    assert "Activating notes first is refused (R2)" in text
    for tab in ["contacts_companies", "pipelines_products", "activities", "notes"]:
        assert "   %s: initial sync complete in " % tab in text, tab
    assert "Commit-to-visible latency over 30 edits" in text
    assert "NOT visible" not in text
    assert "the pipeline app's later edit won" in text
    assert "`tandem status`" in text and "active syncer: pid " in text
    assert "crm_wins (changed on both sides while inactive)" in text
    assert "CRM contacts not in the pipeline app now: 0" in text
    assert "`tandem remove`" in text
    assert max(len(line) for line in lines) < 400, "no row dumps a whole record"
