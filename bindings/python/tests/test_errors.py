"""Failures come back as the right exception class, with code and message."""

from __future__ import annotations

import uuid

import pytest

from support import DEFAULT_CONFIG, TAB, Database, psql, tandem, with_dbname, with_option
from tandem.errors import EXCEPTION_BY_CODE

PASSWORD = "s3cret"


def assert_tandem_error(error: tandem.TandemError, cls: type, code: int) -> None:
    assert type(error) is cls, repr(error)
    assert error.code == code
    assert isinstance(error.message, str) and error.message.strip(), repr(error)
    assert str(error).startswith(error.message)


def assert_matches_code(error: tandem.TandemError) -> None:
    """The class is the one the code maps to, whatever the code is."""
    assert error.code != tandem.OK
    assert type(error) is EXCEPTION_BY_CODE.get(error.code, tandem.TandemError), repr(error)
    assert error.message.strip(), repr(error)


# -- connecting -------------------------------------------------------------------------


@pytest.mark.parametrize("conninfo", [
    "host=/nonexistent/tandem port=5 user=nobody dbname=nowhere password=%s connect_timeout=5" % PASSWORD,
    "postgresql://nobody:%s@/nowhere?host=/nonexistent/tandem&port=5" % PASSWORD,
    "password=%s bogus_option=1" % PASSWORD,
    "password=%s this is not a connection string" % PASSWORD,
])
def test_bad_conninfo_raises_connect_error_without_password(conninfo: str) -> None:
    with pytest.raises(tandem.ConnectError) as caught:
        tandem.open(conninfo)
    error = caught.value
    assert_tandem_error(error, tandem.ConnectError, tandem.CONNECT)
    assert error.sqlstate is None
    for text in (error.message, str(error), repr(error)):
        assert PASSWORD not in text


def test_missing_database_raises_connect_error_without_password(server: str) -> None:
    conninfo = with_option(with_dbname(server, "t_missing_" + uuid.uuid4().hex), "password", PASSWORD)
    with pytest.raises(tandem.ConnectError) as caught:
        tandem.Tandem(conninfo)
    assert_tandem_error(caught.value, tandem.ConnectError, tandem.CONNECT)
    assert "does not exist" in caught.value.message
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)


def test_conninfo_argument_types() -> None:
    with pytest.raises(TypeError):
        tandem.open(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tandem.open(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tandem.open("dbname=x\x00host=y")


def test_conninfo_as_bytes(database: Database) -> None:
    with tandem.open(database.conninfo.encode("utf-8")) as db:
        assert not db.closed


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("config", ["{not json", "", "[1, 2", "\"just a string\"", "[]"])
def test_bad_json_raises_config_error(handle: tandem.Tandem, config: str) -> None:
    handle.install()
    for call in (handle.validate, handle.configure):
        with pytest.raises(tandem.ConfigError) as caught:
            call(config)
        assert_tandem_error(caught.value, tandem.ConfigError, tandem.CONFIG)
        assert caught.value.sqlstate is None


def test_configure_argument_types(handle: tandem.Tandem) -> None:
    with pytest.raises(TypeError):
        handle.configure(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        handle.configure(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        handle.configure('{"integration": "a\x00b"}')


def test_every_problem_is_named(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    config = {"pipeline": {"acting_user": "admin@example.com", "colour": "blue"},
              "crm": {"acting_user": "admin@example.com"},
              "conflict_policy": "coin_toss"}
    with pytest.raises(tandem.ConfigError) as caught:
        handle.validate(config)
    assert "colour" in caught.value.message and "coin_toss" in caught.value.message


def test_unknown_table_raises_config_error(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    config = dict(DEFAULT_CONFIG, modules={"contacts": {"crm": {"table": "no_such_table"}}})
    with pytest.raises(tandem.ConfigError) as caught:
        handle.configure(config)
    assert "no_such_table" in caught.value.message


def test_acting_user_must_be_administrator_and_ceo(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    email = "not-the-boss-%s@example.com" % uuid.uuid4().hex[:8]
    database.sql("INSERT INTO pipeline.users (email, full_name, profile, role) "
                 "VALUES ('%s', 'Sam Standard', 'Standard', 'Sales Rep')" % email)
    config = {"pipeline": {"acting_user": email}, "crm": {"acting_user": "admin@example.com"}}
    with pytest.raises(tandem.PermissionDeniedError) as caught:
        handle.configure(config)
    assert_tandem_error(caught.value, tandem.PermissionDeniedError, tandem.PERMISSION)
    assert email in caught.value.message


def test_edition_must_allow_the_integration(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    database.sql("UPDATE pipeline.org SET edition = 'Free'")
    with pytest.raises(tandem.PermissionDeniedError) as caught:
        handle.validate(DEFAULT_CONFIG)
    assert_tandem_error(caught.value, tandem.PermissionDeniedError, tandem.PERMISSION)
    assert "Free" in caught.value.message


# -- state and names ---------------------------------------------------------------------


def test_activate_before_configure(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    with pytest.raises(tandem.TandemError) as caught:
        handle.activate(TAB)
    assert caught.value.code in (tandem.STATE, tandem.MISUSE), repr(caught.value)
    assert_matches_code(caught.value)


def test_status_before_configure(handle: tandem.Tandem) -> None:
    handle.install()
    with pytest.raises(tandem.TandemError) as caught:
        handle.status()
    assert caught.value.code in (tandem.STATE, tandem.MISUSE), repr(caught.value)
    assert_matches_code(caught.value)


def test_other_tab_before_contacts_companies_raises_state_error(database: Database,
                                                                handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    handle.configure(dict(DEFAULT_CONFIG, tabs={TAB: {}, "pipelines_products": {}}))
    with pytest.raises(tandem.StateError) as caught:
        handle.activate("pipelines_products")
    assert_tandem_error(caught.value, tandem.StateError, tandem.STATE)
    assert TAB in caught.value.message


def test_unknown_names_raise_not_found(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    with pytest.raises(tandem.NotFoundError) as caught:
        handle.attach("no_such_integration")
    assert_tandem_error(caught.value, tandem.NotFoundError, tandem.NOTFOUND)
    assert "no_such_integration" in caught.value.message

    handle.configure(DEFAULT_CONFIG)
    with pytest.raises(tandem.NotFoundError) as caught:
        handle.report("no_such_report")
    assert_tandem_error(caught.value, tandem.NotFoundError, tandem.NOTFOUND)
    assert "no_such_report" in caught.value.message

    with pytest.raises(tandem.NotFoundError) as caught:
        handle.activate("no_such_tab")
    assert_tandem_error(caught.value, tandem.NotFoundError, tandem.NOTFOUND)


def test_report_limit_is_checked(handle: tandem.Tandem) -> None:
    with pytest.raises(ValueError):
        handle.report("links", limit=-1)
    with pytest.raises(TypeError):
        handle.report("links", limit="10")  # type: ignore[arg-type]


def test_error_detail_clears_after_success(database: Database, handle: tandem.Tandem) -> None:
    database.load_apps(records_per_module=3)
    handle.install()
    with pytest.raises(tandem.ConfigError):
        handle.configure("{not json")
    handle.configure(DEFAULT_CONFIG)  # a success after a failure does not raise the old error
    assert isinstance(handle.status(), dict)


# -- database errors ---------------------------------------------------------------------


def test_sql_failure_raises_database_error_with_sqlstate(database: Database) -> None:
    # A table in the way of the first migration.
    database.sql("CREATE SCHEMA tandem")
    database.sql("CREATE TABLE tandem.integrations (something_else int)")
    with tandem.open(database.conninfo) as db:
        with pytest.raises(tandem.DatabaseError) as caught:
            db.install()
    error = caught.value
    assert_tandem_error(error, tandem.DatabaseError, tandem.DATABASE)
    assert error.sqlstate == "42P07", repr(error)  # duplicate_table
    assert str(error).endswith("(SQLSTATE 42P07)")


def test_missing_privilege_raises_permission_error_naming_the_grant(database: Database) -> None:
    role = "t_nopriv_" + uuid.uuid4().hex[:12]
    psql(database.server, 'CREATE ROLE "%s" LOGIN' % role)
    try:
        database.sql('REVOKE CREATE ON DATABASE "%s" FROM PUBLIC' % database.name)
        database.sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        conninfo = with_option(database.conninfo, "user", role)
        with tandem.open(conninfo) as db:
            with pytest.raises(tandem.PermissionDeniedError) as caught:
                db.install()
        error = caught.value
        assert_tandem_error(error, tandem.PermissionDeniedError, tandem.PERMISSION)
        assert error.sqlstate == "42501", repr(error)  # insufficient_privilege
        assert "needs CREATE on database" in error.message, error.message
        assert 'GRANT CREATE ON DATABASE "%s" TO "%s"' % (database.name, role) in error.message, error.message
    finally:
        psql(database.server, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % database.name)
        psql(database.server, 'DROP ROLE IF EXISTS "%s"' % role)
