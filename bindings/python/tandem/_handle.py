"""The Tandem handle: one connection to one PostgreSQL database."""

from __future__ import annotations

import json
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from ctypes import byref, c_int, c_int64, c_void_p, sizeof, string_at
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Union

from ._library import EVENT_FN, HANDLE, LOG_FN, SyncResultStruct, library
from .errors import (ERROR, MISUSE, OK, STATE, STATE_INACTIVE, STATE_NOT_ACTIVATED, STATE_TAB_NOT_CONFIGURED,
                     MisuseError, TandemError, error_for_code)

Text = Union[str, bytes]
EventCallback = Callable[[Dict[str, Any]], Any]
#: Called with a log level (``tandem.LOG_ERROR`` ... ``tandem.LOG_DEBUG``) and one line.
LogCallback = Callable[[int, str], Any]


class SyncResult(NamedTuple):
    """What one pass did (:meth:`Tandem.sync_v2`, ``tandem_sync_result``).

    ``more`` is True when another pass right now could find work (changes
    were read, or a chunk of an initial sync, edit sync or reactivation was
    handled); False once the integration is caught up."""

    read: int
    matched: int
    created_in_pipeline: int
    created_in_crm: int
    updated_in_pipeline: int
    updated_in_crm: int
    conflicts: int
    errors: int
    waiting: int
    deferred: int
    more: bool

    @property
    def written(self) -> int:
        """Records written in either app (what :meth:`Tandem.sync` returns)."""
        return (self.created_in_pipeline + self.created_in_crm
                + self.updated_in_pipeline + self.updated_in_crm)


class ReportPage(NamedTuple):
    """One page of a report (:meth:`Tandem.report_page`): its rows, and the
    key of the next page (``None`` on the last)."""

    rows: List[Dict[str, Any]]
    next: Optional[str]

_INT_MAX = 2 ** 31 - 1


def errstr(code: int) -> str:
    """The library's static English text for a result code."""
    text = library().tandem_errstr(code)
    return (text or b"").decode("utf-8", "replace")


def _encode(value: Text, what: str) -> bytes:
    """A str or bytes argument as the NUL-terminated UTF-8 the ABI takes."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        raise TypeError("%s must be str or bytes, not %s" % (what, type(value).__name__))
    if b"\x00" in data:
        raise ValueError("%s contains a NUL character" % what)
    return data


def _configuration_text(config: Union[Mapping[str, Any], Text]) -> bytes:
    if isinstance(config, Mapping):
        return _encode(json.dumps(dict(config)), "config")
    if isinstance(config, (str, bytes, bytearray, memoryview)):
        return _encode(config, "config")
    raise TypeError("config must be a dict (or other mapping) or a JSON str/bytes, not %s"
                    % type(config).__name__)


def _take_string(pointer: c_void_p) -> Optional[str]:
    """Reads a string the library handed over and frees it with tandem_free."""
    if not pointer.value:
        return None
    try:
        return string_at(pointer.value).decode("utf-8", "replace")
    finally:
        library().tandem_free(pointer.value)
        pointer.value = None


def _closed_error() -> MisuseError:
    return MisuseError(MISUSE, "the Tandem handle is closed")


class Tandem:
    """An open connection to one PostgreSQL database, bound to at most one
    integration at a time (``tandem *`` in the C interface).

    A handle is used by one thread at a time: a call made while another
    thread (or an event callback) is inside a call on the same handle raises
    :class:`MisuseError` instead of breaking the C contract. The exception is
    :meth:`stop`, which any thread may call while :meth:`run` is running.
    """

    # Class-level defaults so that __del__ works even if __init__ failed.
    _handle = None
    _callback: Optional[EventCallback] = None
    _event_function = None
    _log_callback: Optional[LogCallback] = None
    _log_function = None

    def __init__(self, conninfo: Text) -> None:
        lib = library()
        self._lock = threading.Lock()        # held for the duration of a call
        self._pointer_lock = threading.Lock()  # guards _handle between close() and stop()
        self._callback_error: Optional[BaseException] = None
        self._stop_requested = False
        out = HANDLE()
        errmsg = c_void_p()
        rc = lib.tandem_open(_encode(conninfo, "conninfo"), byref(out), byref(errmsg))
        message = _take_string(errmsg)
        if rc != OK:
            raise error_for_code(rc, message or errstr(rc))
        if not out:
            raise TandemError(ERROR, "tandem_open() succeeded but returned no handle")
        self._handle = out

    # -- lifetime ------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._handle is None

    def close(self) -> None:
        """Closes the connection. Calling it again does nothing."""
        if self._handle is None:
            return
        if not self._lock.acquire(blocking=False):
            if self._handle is None:
                return
            raise MisuseError(MISUSE, "cannot close the Tandem handle while another call is "
                                      "using it (call stop() to end run() first)")
        try:
            with self._pointer_lock:
                handle, self._handle = self._handle, None
            if handle:
                library().tandem_close(handle)
            self._callback = None
            self._event_function = None
            self._log_callback = None
            self._log_function = None
        finally:
            self._lock.release()

    def __enter__(self) -> "Tandem":
        if self._handle is None:
            raise _closed_error()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if self._handle is not None:
            warnings.warn("unclosed %r" % (self,), ResourceWarning, source=self)
            try:
                self.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else "open"
        return "<tandem.Tandem %s at %#x>" % (state, id(self))

    # -- calling into the library --------------------------------------------

    @contextmanager
    def _using(self) -> Iterator[Any]:
        """Holds the handle for one call; raises if closed or in use."""
        if not self._lock.acquire(blocking=False):
            if self._handle is None:
                raise _closed_error()
            raise MisuseError(MISUSE, "the Tandem handle is in use by another call (another "
                                      "thread, or an event callback calling back into it); "
                                      "a handle serves one call at a time")
        try:
            if self._handle is None:
                raise _closed_error()
            yield self._handle
        finally:
            self._lock.release()

    def _failure(self, handle: Any, rc: int) -> TandemError:
        lib = library()
        message = (lib.tandem_errmsg(handle) or b"").decode("utf-8", "replace")
        sqlstate = (lib.tandem_sqlstate(handle) or b"").decode("ascii", "replace")
        extended = int(lib.tandem_extended_errcode(handle))
        return error_for_code(rc, message or errstr(rc), sqlstate or None, extended)

    def _invoke(self, name: str, *args: Any) -> None:
        """Calls ``name(handle, *args)``; raises on failure, and re-raises an
        exception the event callback raised during the call."""
        function = getattr(library(), name)
        with self._using() as handle:
            self._callback_error = None
            rc = function(handle, *args)
            failure = self._failure(handle, rc) if rc != OK else None
            callback_error, self._callback_error = self._callback_error, None
        self._raise(failure, callback_error)

    @staticmethod
    def _raise(failure: Optional[TandemError], callback_error: Optional[BaseException]) -> None:
        if failure is not None:
            if callback_error is not None:
                failure.__context__ = callback_error
            raise failure
        if callback_error is not None:
            raise callback_error

    # -- schema and configuration ----------------------------------------------

    def install(self) -> None:
        """Installs or upgrades the ``tandem`` schema. Safe on every start."""
        self._invoke("tandem_install")

    def validate(self, config: Union[Mapping[str, Any], Text]) -> None:
        """Checks a configuration (dict or JSON text) without storing it;
        raises :class:`ConfigError` or :class:`PermissionDeniedError`."""
        self._invoke("tandem_validate", _configuration_text(config))

    def configure(self, config: Union[Mapping[str, Any], Text]) -> None:
        """Validates and stores a configuration (dict or JSON text) and binds
        the handle to its integration."""
        self._invoke("tandem_configure", _configuration_text(config))

    def attach(self, integration: Text) -> None:
        """Binds the handle to an integration configured earlier."""
        self._invoke("tandem_attach", _encode(integration, "integration"))

    # -- tabs and sync -----------------------------------------------------------

    def activate(self, tab: Text) -> None:
        """Activates a tab and schedules its initial sync, which then runs in
        chunks inside :meth:`sync`, :meth:`process` or :meth:`run`."""
        self._invoke("tandem_activate", _encode(tab, "tab"))

    def wait_for_initial_sync(self, tab: Text, timeout: Optional[float] = 600.0) -> int:
        """Runs passes until ``tab`` has completed its initial sync and runs no
        other background job (an edit sync's re-scan, a reactivation's
        catch-up); returns the number of passes. Raises :class:`StateError`
        when the tab is not activated, ``TimeoutError`` after ``timeout``
        seconds (``None``: no limit)."""
        name = tab.decode("utf-8") if isinstance(tab, bytes) else tab
        deadline = None if timeout is None else time.monotonic() + timeout
        passes = 0
        while True:
            entries = [entry for entry in self.status().get("tabs", []) if entry.get("tab") == name]
            if not entries:
                raise error_for_code(STATE, "tab %s is not set up in the bound integration" % name,
                                     None, STATE_TAB_NOT_CONFIGURED)
            entry = entries[0]
            if entry.get("state") not in ("initial_sync", "active"):
                raise error_for_code(STATE, "tab %s is %s: activate (or reactivate) it first" % (name, entry.get("state")),
                                     None, STATE_INACTIVE if entry.get("state") == "inactive" else STATE_NOT_ACTIVATED)
            if entry.get("initial_sync_complete") and entry.get("job") is None:
                return passes
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the initial sync of %s is not complete after %s s (%d passes)" % (name, timeout, passes))
            self.sync()
            passes += 1

    # -- lifecycle of tabs and of the integration (R14-R17) --------------------

    def edit_sync(self, tab: Text, config: Optional[Union[Mapping[str, Any], Text]] = None) -> None:
        """Edit sync (R14) of ``contacts_companies`` or ``pipelines_products``:
        ``config`` is the whole new configuration, in which only that tab's CRM
        views and field mappings may differ; ``None`` re-scans the views as
        they are (after a view's definition changed in SQL). The re-scan runs
        in chunks inside :meth:`sync`, :meth:`process` or :meth:`run`."""
        text = None if config is None else _configuration_text(config)
        self._invoke("tandem_edit_sync", _encode(tab, "tab"), text)

    def deactivate(self, tab: Text) -> None:
        """Deactivates a tab (R15): its data stop syncing at once, nothing is
        deleted. ``contacts_companies`` cannot be deactivated."""
        self._invoke("tandem_deactivate", _encode(tab, "tab"))

    def reactivate(self, tab: Text, policy: Text) -> None:
        """Reactivates an inactive tab (R16); ``policy`` (``latest``,
        ``crm_wins``, ``pipeline_wins`` or ``skip``) decides records changed on
        both sides while it was inactive."""
        self._invoke("tandem_reactivate", _encode(tab, "tab"), _encode(policy, "policy"))

    def remove(self, purge: bool = False) -> None:
        """Removes the bound integration (R17): all of its sync stops, Tandem's
        triggers and indexes leave the app tables, no app data is deleted. The
        history stays for reporting unless ``purge``. Harmless when repeated."""
        self._invoke("tandem_remove", 1 if purge else 0)

    def set_reconnect_timeout(self, seconds: float) -> None:
        """How long :meth:`run` keeps restoring a lost connection before it
        raises :class:`ConnectError` (default 300 s; 0: never reconnect)."""
        self._invoke("tandem_set_reconnect_timeout", float(seconds))

    def uninstall(self) -> None:
        """Drops the ``tandem`` schema; refused while an integration is in place."""
        self._invoke("tandem_uninstall")

    def sync(self) -> int:
        """Runs one sync pass; returns the number of records written."""
        changes = c_int64(0)
        self._invoke("tandem_sync", byref(changes))
        return changes.value

    def sync_v2(self) -> SyncResult:
        """Runs one sync pass and says what it did and whether more work is
        left; ``while db.sync_v2().more: pass`` runs a whole catch-up or
        initial sync. Raises :class:`CanceledError` after :meth:`cancel`."""
        result = SyncResultStruct()
        result.size = sizeof(SyncResultStruct)
        self._invoke("tandem_sync_v2", byref(result))
        return SyncResult(int(result.read), int(result.matched), int(result.created_in_pipeline),
                          int(result.created_in_crm), int(result.updated_in_pipeline),
                          int(result.updated_in_crm), int(result.conflicts), int(result.errors),
                          int(result.waiting), int(result.deferred), bool(result.more))

    def cancel(self) -> None:
        """Interrupts the pass running on this handle, from any thread: it
        rolls back, and the call running it (:meth:`sync`, :meth:`sync_v2`,
        :meth:`process`, :meth:`run`) raises :class:`CanceledError`. Does
        nothing when no pass runs (use :meth:`stop` to end :meth:`run`)."""
        with self._pointer_lock:
            handle = self._handle
            if handle is None:
                raise _closed_error()
            rc = library().tandem_cancel(handle)
        if rc != OK:
            raise error_for_code(rc, errstr(rc))

    def socket(self) -> int:
        """The file descriptor to poll for readability. It belongs to the
        handle: do not close it."""
        lib = library()
        with self._using() as handle:
            descriptor = int(lib.tandem_socket(handle))
            if descriptor >= 0:
                return descriptor
            rc = lib.tandem_errcode(handle)
            raise self._failure(handle, rc if rc != OK else ERROR)

    def fileno(self) -> int:
        """Same as :meth:`socket`, so that a handle can go into ``select`` and
        ``selectors`` directly."""
        return self.socket()

    def process(self) -> None:
        """Consumes what arrived on the socket and syncs what it announced.
        Never blocks waiting for input."""
        self._invoke("tandem_process")

    def timeout(self) -> Optional[float]:
        """Seconds a loop of your own may wait on :meth:`socket` before it
        must call :meth:`process` even though nothing arrived (a record error
        due for a retry, or a standby's next attempt to take over); ``None``
        when only the socket can bring work."""
        milliseconds = c_int(0)
        self._invoke("tandem_timeout", byref(milliseconds))
        return None if milliseconds.value < 0 else milliseconds.value / 1000

    def run(self) -> None:
        """Follows changes until :meth:`stop` is called (from another thread,
        or from a signal handler).

        The C loop runs on a helper thread while the calling thread waits, so
        that Ctrl-C still works: a KeyboardInterrupt (or any exception raised
        in the calling thread) stops the loop, waits for it to return and is
        re-raised. An exception raised by the event callback also stops the
        loop and is re-raised from here.
        """
        lib = library()
        with self._using() as handle:
            self._callback_error = None
            self._stop_requested = False
            outcome: Dict[str, Any] = {}

            def follow() -> None:
                try:
                    outcome["rc"] = lib.tandem_run(handle)
                except BaseException as error:  # pragma: no cover - ctypes does not raise here
                    outcome["error"] = error

            worker = threading.Thread(target=follow, name="tandem-run", daemon=True)
            worker.start()
            try:
                while worker.is_alive():
                    worker.join(0.2)
                    if self._callback_error is not None:
                        self._stop_requested = True
                    if self._stop_requested and worker.is_alive():
                        # Repeated until the loop returns: a stop that arrives
                        # before the C loop has started must not be lost.
                        lib.tandem_stop(handle)
            except BaseException:
                # Never give the handle back while the C loop still uses it;
                # a pass in flight is interrupted (it rolls back) rather than
                # waited for.
                while worker.is_alive():
                    try:
                        lib.tandem_stop(handle)
                        lib.tandem_cancel(handle)
                        worker.join(0.2)
                    except BaseException:
                        continue
                raise
            if "error" in outcome:
                raise outcome["error"]
            rc = outcome["rc"]
            failure = self._failure(handle, rc) if rc != OK else None
            callback_error, self._callback_error = self._callback_error, None
        self._raise(failure, callback_error)

    def stop(self) -> None:
        """Asks :meth:`run` to return. Safe from any thread; a stop that
        arrives while run() is still starting is not lost."""
        with self._pointer_lock:
            handle = self._handle
            if handle is None:
                raise _closed_error()
            self._stop_requested = True
            rc = library().tandem_stop(handle)
        if rc != OK:
            # Not reading errmsg: the handle may be busy in another thread.
            raise error_for_code(rc, errstr(rc))

    # -- events --------------------------------------------------------------------

    def set_event_callback(self, callback: Optional[EventCallback]) -> None:
        """Sets (or clears, with None) the function called with each event,
        as a dict parsed from the library's JSON (for example
        ``{"type": "initial_sync_complete", "tab": "contacts_companies", ...}``).

        The callback runs on the thread that runs the sync, inside
        :meth:`sync`, :meth:`process` or :meth:`run`. It must not call back
        into the same handle (doing so raises :class:`MisuseError`). An
        exception it raises never crosses into C: the first one is kept and
        re-raised by the call that delivered the event, after the library
        returned (that call's own work stays done); :meth:`run` is stopped
        first. Later events of the same call still reach the callback.
        """
        if callback is not None and not callable(callback):
            raise TypeError("the event callback must be callable or None, not %s"
                            % type(callback).__name__)
        if callback is None:
            self._invoke("tandem_set_event_callback", EVENT_FN(), None)
            self._callback = None
            self._event_function = None
            return
        function = self._event_function or EVENT_FN(_trampoline(weakref.ref(self)))
        previous = self._callback, self._event_function
        # Keep the C function object alive for as long as the library holds it.
        self._callback, self._event_function = callback, function
        try:
            self._invoke("tandem_set_event_callback", function, None)
        except BaseException:
            self._callback, self._event_function = previous
            raise

    def on_event(self, callback: EventCallback) -> EventCallback:
        """Sets the event callback; returns it, so it works as a decorator."""
        self.set_event_callback(callback)
        return callback

    def set_log_callback(self, callback: Optional[LogCallback]) -> None:
        """Sets (or clears, with None) the function called with the library's
        diagnostics: ``callback(level, message)`` with ``level`` one of
        ``tandem.LOG_ERROR``, ``LOG_WARNING``, ``LOG_INFO``, ``LOG_DEBUG``.
        Without one the library is silent. Lines never carry the connection
        string, a password or record values. The callback runs on the thread
        inside the call; an exception it raises is re-raised by that call, as
        for the event callback. ``logging`` users can pass
        ``lambda level, message: logger.log(tandem.python_log_level(level), message)``."""
        if callback is not None and not callable(callback):
            raise TypeError("the log callback must be callable or None, not %s"
                            % type(callback).__name__)
        if callback is None:
            self._invoke("tandem_set_log_callback", LOG_FN(), None)
            self._log_callback = None
            self._log_function = None
            return
        function = self._log_function or LOG_FN(_log_trampoline(weakref.ref(self)))
        previous = self._log_callback, self._log_function
        self._log_callback, self._log_function = callback, function
        try:
            self._invoke("tandem_set_log_callback", function, None)
        except BaseException:
            self._log_callback, self._log_function = previous
            raise

    # -- reporting -----------------------------------------------------------------

    def status(self) -> Dict[str, Any]:
        """Status of the bound integration and its tabs."""
        out = c_void_p()
        try:
            self._invoke("tandem_status", byref(out))
        finally:
            text = _take_string(out)
        status: Dict[str, Any] = json.loads(text or "null")
        return status

    def report(self, name: Text, limit: int = 100) -> List[Dict[str, Any]]:
        """Rows of one reporting view, by the view's name: "tab_status",
        "pending_changes", "linked_records", "conflicts", "record_errors",
        "run_history" or "event_history" ("links", "runs" and "events" are
        accepted too). At most ``limit`` rows; :meth:`iter_report` reads all."""
        _check_limit(limit)
        out = c_void_p()
        try:
            self._invoke("tandem_report", _encode(name, "report"), limit, byref(out))
        finally:
            text = _take_string(out)
        rows: List[Dict[str, Any]] = json.loads(text or "null")
        return rows


    def report_page(self, name: Text, after: Optional[str] = None, limit: int = 100) -> ReportPage:
        """One page of a report: ``after`` is the ``next`` of the page before
        (None for the first), passed back unchanged; a key the library did
        not make raises :class:`MisuseError`."""
        _check_limit(limit)
        key = None if after is None else _encode(after, "after")
        out = c_void_p()
        try:
            self._invoke("tandem_report_page", _encode(name, "report"), key, limit, byref(out))
        finally:
            text = _take_string(out)
        page: Dict[str, Any] = json.loads(text or "null")
        rows: List[Dict[str, Any]] = page["rows"]
        next_key: Optional[str] = page["next"]
        return ReportPage(rows, next_key)

    def iter_report(self, name: Text, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        """Every row of a report, read page by page (``page_size`` rows a
        call, so a long history is never read at once). Rows added while
        iterating may or may not appear; no row that stays is repeated or
        skipped."""
        _check_limit(page_size)
        after: Optional[str] = None
        while True:
            page = self.report_page(name, after, page_size)
            yield from page.rows
            if page.next is None:
                return
            after = page.next


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError("limit must be an int, not %s" % type(limit).__name__)
    if not 0 <= limit <= _INT_MAX:
        raise ValueError("limit must be between 0 and %d (0 means 100)" % _INT_MAX)


def _log_trampoline(owner: "weakref.ReferenceType[Tandem]") -> Callable[[Any, int, Optional[bytes]], None]:
    """The C-callable log function; like the event trampoline, it holds the
    handle weakly and never lets an exception escape into C."""

    def deliver(context: Any, level: int, message: Optional[bytes]) -> None:
        tandem = owner()
        if tandem is None:
            return
        callback = tandem._log_callback
        if callback is None:
            return
        try:
            callback(int(level), (message or b"").decode("utf-8", "replace"))
        except BaseException as error:
            if tandem._callback_error is None:
                tandem._callback_error = error

    return deliver


def _trampoline(owner: "weakref.ReferenceType[Tandem]") -> Callable[[Any, Optional[bytes]], None]:
    """The C-callable event function. It holds the handle weakly (no cycle
    between the handle and its C function object) and never lets an
    exception escape into C."""

    def deliver(context: Any, event_json: Optional[bytes]) -> None:
        tandem = owner()
        if tandem is None:
            return
        callback = tandem._callback
        if callback is None:
            return
        try:
            event = json.loads((event_json or b"null").decode("utf-8"))
            callback(event)
        except BaseException as error:
            if tandem._callback_error is None:
                tandem._callback_error = error

    return deliver


def open(conninfo: Text) -> Tandem:  # noqa: A001 - mirrors sqlite3.connect / tandem_open
    """Connects with a libpq connection string ("host=... dbname=..." or a
    postgresql:// URI) and returns a :class:`Tandem` handle."""
    return Tandem(conninfo)
