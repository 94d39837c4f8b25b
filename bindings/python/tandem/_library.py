"""Finding, loading and declaring libTandem.

The library is loaded once, lazily, at the first call that needs it, so that
``import tandem`` works (and ``tandem.__version__`` can be read) even where
the library is not built yet. Where it is looked up, in order:

1. ``TANDEM_LIBRARY``: the path of the shared library. When set it is the
   only place tried, so a typo is reported instead of silently loading
   another build.
2. The library inside this package (``tandem/_lib/libTandem.so.0``), which
   a wheel made by ``make wheel`` carries.
3. A SwiftPM build folder, walking up from this package's directory and
   then from the current directory: ``.build/release``, ``.build/debug``
   and ``.build/<triple>/release|debug``. When one ``.build`` holds several
   builds, the most recently built file wins (a stale release build must
   not shadow the debug build being worked on).
4. The dynamic loader's search path (``make install``, ``LD_LIBRARY_PATH``):
   ``ctypes.util.find_library("Tandem")``, then ``libTandem.so`` by name.

Every symbol of include/tandem.h gets its ``argtypes`` and ``restype`` here
and nowhere else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import threading
from ctypes import POINTER, c_char_p, c_double, c_int, c_int64, c_size_t, c_void_p
from typing import List, Optional

from .errors import TandemLibraryNotFound

ENVIRONMENT_VARIABLE = "TANDEM_LIBRARY"

#: The header this binding was written against (TANDEM_VERSION_NUMBER).
HEADER_VERSION = "0.1.0"
HEADER_VERSION_NUMBER = 1000

if sys.platform == "darwin":
    LIBRARY_FILE = "libTandem.dylib"
elif sys.platform == "win32":
    LIBRARY_FILE = "Tandem.dll"
else:
    LIBRARY_FILE = "libTandem.so"


class TandemStruct(ctypes.Structure):
    """The opaque ``struct tandem``; only pointers to it are ever used."""


HANDLE = POINTER(TandemStruct)

#: typedef void (*tandem_event_fn)(void *context, const char *event_json);
EVENT_FN = ctypes.CFUNCTYPE(None, c_void_p, c_char_p)

#: void (*destroy)(void *context) of tandem_set_event_callback_v2.
DESTROY_FN = ctypes.CFUNCTYPE(None, c_void_p)

#: typedef void (*tandem_log_fn)(void *context, int level, const char *message);
LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class SyncResultStruct(ctypes.Structure):
    """``tandem_sync_result``: the caller sets ``size`` to ``sizeof`` first."""

    _fields_ = [
        ("size", c_size_t),
        ("read", c_int64),
        ("matched", c_int64),
        ("created_in_pipeline", c_int64),
        ("created_in_crm", c_int64),
        ("updated_in_pipeline", c_int64),
        ("updated_in_crm", c_int64),
        ("conflicts", c_int64),
        ("errors", c_int64),
        ("waiting", c_int64),
        ("deferred", c_int64),
        ("more", c_int),
    ]

# name: (restype, argtypes). Strings handed out through `char **` are
# declared as `void **` so that the pointer survives for tandem_free();
# borrowed strings are `char *` results that ctypes copies into bytes.
PROTOTYPES = {
    "tandem_libversion": (c_char_p, []),
    "tandem_libversion_number": (c_int, []),
    "tandem_errstr": (c_char_p, [c_int]),
    "tandem_open": (c_int, [c_char_p, POINTER(HANDLE), POINTER(c_void_p)]),
    "tandem_close": (None, [HANDLE]),
    "tandem_errcode": (c_int, [HANDLE]),
    "tandem_errmsg": (c_char_p, [HANDLE]),
    "tandem_sqlstate": (c_char_p, [HANDLE]),
    "tandem_install": (c_int, [HANDLE]),
    "tandem_validate": (c_int, [HANDLE, c_char_p]),
    "tandem_configure": (c_int, [HANDLE, c_char_p]),
    "tandem_attach": (c_int, [HANDLE, c_char_p]),
    "tandem_activate": (c_int, [HANDLE, c_char_p]),
    "tandem_edit_sync": (c_int, [HANDLE, c_char_p, c_char_p]),
    "tandem_deactivate": (c_int, [HANDLE, c_char_p]),
    "tandem_reactivate": (c_int, [HANDLE, c_char_p, c_char_p]),
    "tandem_remove": (c_int, [HANDLE, c_int]),
    "tandem_uninstall": (c_int, [HANDLE]),
    "tandem_set_reconnect_timeout": (c_int, [HANDLE, c_double]),
    "tandem_sync": (c_int, [HANDLE, POINTER(c_int64)]),
    "tandem_socket": (c_int, [HANDLE]),
    "tandem_process": (c_int, [HANDLE]),
    "tandem_timeout": (c_int, [HANDLE, POINTER(c_int)]),
    "tandem_run": (c_int, [HANDLE]),
    "tandem_stop": (c_int, [HANDLE]),
    "tandem_set_event_callback": (c_int, [HANDLE, EVENT_FN, c_void_p]),
    "tandem_status": (c_int, [HANDLE, POINTER(c_void_p)]),
    "tandem_report": (c_int, [HANDLE, c_char_p, c_int, POINTER(c_void_p)]),
    "tandem_free": (None, [c_void_p]),
    "tandem_extended_errcode": (c_int, [HANDLE]),
    "tandem_sync_v2": (c_int, [HANDLE, POINTER(SyncResultStruct)]),
    "tandem_cancel": (c_int, [HANDLE]),
    "tandem_set_event_callback_v2": (c_int, [HANDLE, EVENT_FN, c_void_p, DESTROY_FN]),
    "tandem_set_log_callback": (c_int, [HANDLE, LOG_FN, c_void_p]),
    "tandem_report_page": (c_int, [HANDLE, c_char_p, c_char_p, c_int, POINTER(c_void_p)]),
}

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_library_path: Optional[str] = None


def _build_candidates(directory: str) -> List[str]:
    """Existing library files in ``directory/.build``, newest first."""
    build = os.path.join(directory, ".build")
    if not os.path.isdir(build):
        return []
    patterns = [
        os.path.join(build, "release", LIBRARY_FILE),
        os.path.join(build, "debug", LIBRARY_FILE),
        os.path.join(build, "*", "release", LIBRARY_FILE),
        os.path.join(build, "*", "debug", LIBRARY_FILE),
    ]
    found: List[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if os.path.isfile(real) and real not in found:
                found.append(real)
    # Stable sort: on equal times the documented order (release first) holds.
    found.sort(key=lambda path: os.path.getmtime(path), reverse=True)
    return found


def _ancestors(start: str) -> List[str]:
    directory = os.path.abspath(start)
    result = []
    while True:
        result.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            return result
        directory = parent


def _search_build_folders(searched: List[str]) -> Optional[str]:
    starts = [os.path.dirname(os.path.abspath(__file__))]
    try:
        starts.append(os.getcwd())
    except OSError:  # the current directory was removed
        pass
    seen = set()
    for start in starts:
        for directory in _ancestors(start):
            if directory in seen:
                continue
            seen.add(directory)
            candidates = _build_candidates(directory)
            if candidates:
                return candidates[0]
        searched.append("every .build/{release,debug,*/release,*/debug} above %s" % start)
    return None


def _declare(library: ctypes.CDLL, path: str) -> None:
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            function = getattr(library, name)
        except AttributeError:
            raise TandemLibraryNotFound(
                "%s does not export %s(); it is older or newer than this binding "
                "(header %s). Rebuild it with `swift build`, or point %s at a "
                "matching build." % (path, name, HEADER_VERSION, ENVIRONMENT_VARIABLE)
            ) from None
        function.restype = restype
        function.argtypes = argtypes


def _load(path: str) -> ctypes.CDLL:
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise TandemLibraryNotFound(
            "found %s but could not load it: %s" % (path, error)) from error
    _declare(library, path)
    number = library.tandem_libversion_number()
    if number // 1000000 != HEADER_VERSION_NUMBER // 1000000 or (
            HEADER_VERSION_NUMBER < 1000000 and number // 1000 != HEADER_VERSION_NUMBER // 1000):
        # 0.y.z releases may break between minor versions; x.y.z between majors.
        version = (library.tandem_libversion() or b"?").decode("utf-8", "replace")
        raise TandemLibraryNotFound(
            "%s is Tandem %s, which this binding (written for %s) cannot use. "
            "Rebuild it with `swift build` or set %s." % (
                path, version, HEADER_VERSION, ENVIRONMENT_VARIABLE))
    return library


def _find_and_load() -> "tuple[ctypes.CDLL, str]":
    searched: List[str] = []
    configured = os.environ.get(ENVIRONMENT_VARIABLE)
    if configured:
        if not os.path.isfile(configured):
            raise TandemLibraryNotFound(
                "%s=%s, but there is no such file. Point %s at libTandem "
                "(e.g. .build/debug/%s after `swift build`) or unset it." % (
                    ENVIRONMENT_VARIABLE, configured, ENVIRONMENT_VARIABLE, LIBRARY_FILE))
        return _load(configured), os.path.abspath(configured)
    searched.append("%s (not set)" % ENVIRONMENT_VARIABLE)

    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", LIBRARY_FILE + ".0")
    if os.path.isfile(bundled):
        return _load(bundled), bundled
    searched.append(bundled)

    built = _search_build_folders(searched)
    if built:
        return _load(built), built

    names = []
    found = ctypes.util.find_library("Tandem")
    if found:
        names.append(found)
    names.append(LIBRARY_FILE)
    errors = []
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError as error:
            errors.append(str(error))
            continue
        del library  # reopen through _load so that it is declared and checked
        return _load(name), name
    searched.append("the dynamic loader's search path (%s)" % "; ".join(errors or names))
    raise TandemLibraryNotFound(
        "libTandem (%s) was not found. Build it with `swift build` in the Tandem "
        "repository, or set %s to the path of the library. Searched: %s." % (
            LIBRARY_FILE, ENVIRONMENT_VARIABLE, "; ".join(searched)))


def library() -> ctypes.CDLL:
    """The loaded, declared library; loads it on first use."""
    global _library, _library_path
    if _library is None:
        with _lock:
            if _library is None:
                loaded, path = _find_and_load()
                _library_path = path
                _library = loaded
    return _library


def library_path() -> str:
    """The path (or loader name) of the library in use; loads it if needed."""
    library()
    assert _library_path is not None
    return _library_path
