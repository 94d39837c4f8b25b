"""Python binding of Tandem, two-way sync between a pipeline CRM and a full
CRM through PostgreSQL.

    import tandem

    with tandem.open("host=/run/postgresql dbname=crm") as db:
        db.install()
        db.configure({"pipeline": {"acting_user": "admin@example.com"},
                      "crm": {"acting_user": "admin@example.com"}})
        db.activate("contacts_companies")
        db.on_event(print)
        db.run()          # until db.stop() from another thread, or Ctrl-C

The shared library (libTandem) is loaded at the first call that needs it;
see ``tandem._library`` for where it is looked up. Failures raise
:class:`TandemError` subclasses; see ``tandem.errors``.
"""

from __future__ import annotations

import logging as _logging

from ._handle import ReportPage, SyncResult, Tandem, errstr, open
from ._library import (
    ENVIRONMENT_VARIABLE,
    HEADER_VERSION,
    HEADER_VERSION_NUMBER,
    library_path,
)
from ._library import library as _load_library
from .errors import (
    BUSY,
    CANCELED,
    CONFIG,
    CONNECT,
    DATABASE,
    ERROR,
    LOG_DEBUG,
    LOG_ERROR,
    LOG_INFO,
    LOG_WARNING,
    MISUSE,
    NOTFOUND,
    OK,
    PERMISSION,
    REMOVED,
    STATE,
    STATE_INACTIVE,
    STATE_JOB_RUNNING,
    STATE_NO_CURSOR,
    STATE_NOT_ACTIVATED,
    STATE_NOT_ALLOWED,
    STATE_NOT_BOUND,
    STATE_NOT_INSTALLED,
    STATE_REMOVED,
    STATE_SCHEMA_VERSION,
    STATE_TAB_NOT_CONFIGURED,
    STATE_TAB_ORDER,
    BusyError,
    CanceledError,
    ConfigError,
    ConnectError,
    DatabaseError,
    MisuseError,
    NotFoundError,
    PermissionDeniedError,
    RemovedError,
    StateError,
    TandemError,
    TandemLibraryNotFound,
)

#: The version of this binding; it follows the C header it was written for.
__version__ = HEADER_VERSION


def libversion() -> str:
    """The version of the loaded library, e.g. "0.1.0"."""
    return (_load_library().tandem_libversion() or b"").decode("utf-8", "replace")


def libversion_number() -> int:
    """The version number of the loaded library (X*1000000 + Y*1000 + Z)."""
    return int(_load_library().tandem_libversion_number())


def python_log_level(level: int) -> int:
    """The ``logging`` level of a library log level (``LOG_ERROR`` ...)."""
    return {LOG_ERROR: _logging.ERROR, LOG_WARNING: _logging.WARNING,
            LOG_INFO: _logging.INFO}.get(level, _logging.DEBUG)


def load_library() -> str:
    """Loads libTandem now (instead of at first use) and returns its path;
    raises :class:`TandemLibraryNotFound` with the places searched."""
    return library_path()


__all__ = [
    "Tandem", "open", "errstr", "libversion", "libversion_number", "load_library",
    "SyncResult", "ReportPage", "python_log_level",
    "CANCELED", "LOG_ERROR", "LOG_WARNING", "LOG_INFO", "LOG_DEBUG",
    "STATE_NOT_BOUND", "STATE_NOT_INSTALLED", "STATE_TAB_ORDER", "STATE_INACTIVE",
    "STATE_NOT_ACTIVATED", "STATE_JOB_RUNNING", "STATE_NO_CURSOR", "STATE_SCHEMA_VERSION",
    "STATE_REMOVED", "STATE_NOT_ALLOWED", "STATE_TAB_NOT_CONFIGURED", "CanceledError",
    "library_path", "ENVIRONMENT_VARIABLE", "HEADER_VERSION", "HEADER_VERSION_NUMBER",
    "OK", "ERROR", "MISUSE", "CONFIG", "PERMISSION", "DATABASE", "CONNECT", "BUSY",
    "STATE", "NOTFOUND", "REMOVED",
    "TandemError", "MisuseError", "ConfigError", "PermissionDeniedError", "DatabaseError",
    "ConnectError", "BusyError", "StateError", "NotFoundError", "RemovedError",
    "TandemLibraryNotFound",
    "__version__",
]
