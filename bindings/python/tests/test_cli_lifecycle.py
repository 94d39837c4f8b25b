"""The `tandem` CLI's lifecycle commands (R14-R17), run as a user would: the
real binary next to the library under test, against a fresh database."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import List

import pytest

from support import ADMIN, Database, tandem

CONFIG = {"pipeline": {"acting_user": ADMIN}, "crm": {"acting_user": ADMIN},
          "tabs": {"contacts_companies": {"views": {"contacts": "contacts_with_email"}}, "activities": {}}}


@pytest.fixture
def cli(database: Database, tmp_path: Path):
    binary = Path(tandem.load_library()).parent / "tandem"
    if not binary.exists():
        pytest.fail("no tandem CLI beside %s: build it with `swift build`" % tandem.load_library(), pytrace=False)
    environment = dict(os.environ, TANDEM_DATABASE_URL=database.conninfo)

    def run(*arguments: str, expect: int = 0) -> str:
        done = subprocess.run([str(binary), *arguments], env=environment, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, "tandem %s exited %d: %s%s" % (
            " ".join(arguments), done.returncode, done.stdout, done.stderr)
        return done.stdout + done.stderr
    return run


def write(path: Path, config: dict) -> str:
    path.write_text(json.dumps(config))
    return str(path)


def test_every_lifecycle_command(cli, database: Database, tmp_path: Path) -> None:
    database.load_apps(30, 30)
    config = write(tmp_path / "tandem.json", CONFIG)
    cli("install")
    cli("configure", "--config", config)
    cli("activate", "contacts_companies")
    cli("sync")
    assert "active already" in cli("activate", "contacts_companies")
    cli("activate", "activities")
    cli("sync")

    assert "R15" in cli("deactivate", "contacts_companies", expect=81)  # TANDEM_STATE
    assert "deactivated activities" in cli("deactivate", "activities")
    assert "inactive already" in cli("deactivate", "activities")
    assert "--policy" in cli("reactivate", "activities", expect=64)
    assert "'loudest' is invalid" in cli("reactivate", "activities", "--policy", "loudest", expect=64)
    assert "reactivated activities with skip" in cli("reactivate", "activities", "--policy", "skip")
    cli("sync")

    widened = dict(CONFIG, tabs={"contacts_companies": {"views": {"contacts": "all_contacts"}}, "activities": {}})
    out = cli("edit", "contacts_companies", "--config", write(tmp_path / "wider.json", widened))
    assert "CRM view changed: contacts" in out
    cli("sync")
    assert database.count("SELECT count(*) FROM crm.contacts c WHERE NOT EXISTS (SELECT 1 FROM tandem.links l"
                          " WHERE l.module = 'contacts' AND l.crm_id = c.id::text)") == 0
    assert "R9" in cli("edit", "activities", expect=81)

    assert "still serves integration 'default'" in cli("uninstall", expect=81)
    assert "removed integration 'default'" in cli("remove")
    assert "removed already" in cli("remove")
    assert "purged" in cli("remove", "--purge")
    assert "nothing to remove" in cli("remove")
    cli("uninstall")
    assert database.scalar("SELECT to_regnamespace('tandem') IS NULL") == "t"
