"""Result codes and the exceptions they become.

This module is the one place where a result code of the C interface turns
into a Python exception (see ``error_for_code``). Codes are append-only in
``include/tandem.h``: a code this module does not know still raises
:class:`TandemError`, never passes silently.
"""

from __future__ import annotations

from typing import Dict, Optional, Type

# Result codes, mirrored from include/tandem.h. Never renumbered.
OK = 0
ERROR = 1
MISUSE = 2
CONFIG = 3
PERMISSION = 4
DATABASE = 5
CONNECT = 6
BUSY = 7
STATE = 8
NOTFOUND = 9
REMOVED = 10
CANCELED = 11

# Extended result codes (tandem_extended_errcode): the primary code in the
# low 8 bits, which case of it above. Append-only like the primary codes.
STATE_NOT_BOUND = STATE | (1 << 8)
STATE_NOT_INSTALLED = STATE | (2 << 8)
STATE_TAB_ORDER = STATE | (3 << 8)
STATE_INACTIVE = STATE | (4 << 8)
STATE_NOT_ACTIVATED = STATE | (5 << 8)
STATE_JOB_RUNNING = STATE | (6 << 8)
STATE_NO_CURSOR = STATE | (7 << 8)
STATE_SCHEMA_VERSION = STATE | (8 << 8)
STATE_REMOVED = STATE | (9 << 8)
STATE_NOT_ALLOWED = STATE | (10 << 8)
STATE_TAB_NOT_CONFIGURED = STATE | (11 << 8)

# Log levels of the log callback (TANDEM_LOG_...): lower is more severe.
LOG_ERROR = 1
LOG_WARNING = 2
LOG_INFO = 3
LOG_DEBUG = 4


class TandemLibraryNotFound(OSError):
    """libTandem could not be found or loaded.

    Raised at the first call that needs the library. The message names the
    places that were searched and how to fix it (``TANDEM_LIBRARY`` or
    ``swift build``).
    """


class TandemError(Exception):
    """A call into libTandem failed.

    ``code`` is the result code (one of the module constants, or a newer code
    this binding does not know), ``message`` the library's explanation and
    ``sqlstate`` the five-character SQLSTATE when PostgreSQL reported the
    failure (``None`` otherwise). ``extended_code`` says which case of the
    code it was (``STATE_NOT_BOUND``, ``STATE_TAB_ORDER``, ...; the code
    itself when there is no more to say). Code ``ERROR`` (internal error) and
    unknown codes raise this class itself; the known families raise a subclass.
    """

    def __init__(self, code: int, message: str, sqlstate: Optional[str] = None,
                 extended_code: Optional[int] = None) -> None:
        super().__init__(code, message, sqlstate)
        self.code = code
        self.message = message
        self.sqlstate = sqlstate or None
        self.extended_code = code if extended_code is None else extended_code

    def __str__(self) -> str:
        if self.sqlstate:
            return "%s (SQLSTATE %s)" % (self.message, self.sqlstate)
        return self.message

    def __repr__(self) -> str:
        return "%s(code=%d, message=%r, sqlstate=%r)" % (
            type(self).__name__, self.code, self.message, self.sqlstate)


class MisuseError(TandemError):
    """NULL or closed handle, bad argument, call out of order, bad UTF-8."""


class ConfigError(TandemError):
    """Bad configuration: JSON, unknown table or column, mapping."""


class PermissionDeniedError(TandemError):
    """The acting user is not Administrator + CEO in both apps (R5), or the
    pipeline app's edition does not allow the integration (R6)."""


class DatabaseError(TandemError):
    """An SQL statement failed; ``sqlstate`` says which way."""


class ConnectError(TandemError):
    """Could not connect, or the connection was lost."""


class BusyError(TandemError):
    """Another host is the active syncer for this integration."""


class StateError(TandemError):
    """Not allowed in the current state (tab order R2, not configured)."""


class NotFoundError(TandemError):
    """No such integration, tab or report."""


class RemovedError(TandemError):
    """The integration was removed (R17): stop following it."""


class CanceledError(TandemError):
    """:meth:`Tandem.cancel` interrupted the pass; it rolled back."""


#: Result code -> exception class. Codes missing here raise TandemError.
EXCEPTION_BY_CODE: Dict[int, Type[TandemError]] = {
    ERROR: TandemError,
    MISUSE: MisuseError,
    CONFIG: ConfigError,
    PERMISSION: PermissionDeniedError,
    DATABASE: DatabaseError,
    CONNECT: ConnectError,
    BUSY: BusyError,
    STATE: StateError,
    NOTFOUND: NotFoundError,
    REMOVED: RemovedError,
    CANCELED: CanceledError,
}


def error_for_code(code: int, message: str, sqlstate: Optional[str] = None,
                   extended_code: Optional[int] = None) -> TandemError:
    """The exception for a failed call with result ``code`` (and, when the
    library said, its ``extended_code``)."""
    if code == OK:
        # A failure reported with code 0 is a library bug; do not hide it.
        code = ERROR
        message = message or "call failed but the library reported success"
    if extended_code is not None and extended_code & 0xFF != code:
        extended_code = code  # an extended code must extend this code
    cls = EXCEPTION_BY_CODE.get(code, TandemError)
    return cls(code, message, sqlstate, extended_code)
