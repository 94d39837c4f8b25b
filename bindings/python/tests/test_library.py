"""The library itself: lookup, version agreement, declarations. No database."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import BINDING_DIR, HEADER, REPO_ROOT, tandem
from tandem import _library, errors


def header_define(name: str) -> str:
    match = re.search(r"^#define\s+%s\s+(\S+)" % name, HEADER.read_text(), re.MULTILINE)
    assert match, "%s not defined in %s" % (name, HEADER)
    return match.group(1).strip('"')


def header_functions() -> set:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.DOTALL)
    return set(re.findall(r"\b(tandem_[a-z_0-9]+)\s*\(", text)) - {"tandem_event_fn"}


def test_version_agrees_with_header() -> None:
    assert tandem.libversion_number() == int(header_define("TANDEM_VERSION_NUMBER")) == 1000
    assert tandem.libversion() == header_define("TANDEM_VERSION") == "0.1.0"
    assert tandem.HEADER_VERSION_NUMBER == 1000
    assert tandem.__version__ == tandem.HEADER_VERSION == "0.1.0"


def test_every_header_function_is_declared() -> None:
    declared = set(_library.PROTOTYPES)
    assert header_functions() == declared
    lib = _library.library()
    for name, (restype, argtypes) in _library.PROTOTYPES.items():
        function = getattr(lib, name)
        assert function.argtypes == argtypes, name
        assert function.restype == restype, name


def test_result_codes_match_header() -> None:
    for name in ("OK", "ERROR", "MISUSE", "CONFIG", "PERMISSION", "DATABASE", "CONNECT", "BUSY",
                 "STATE", "NOTFOUND", "REMOVED", "CANCELED"):
        assert getattr(tandem, name) == int(header_define("TANDEM_" + name)), name


def test_extended_codes_and_log_levels_match_header() -> None:
    text = HEADER.read_text()
    extended = re.findall(r"^#define\s+TANDEM_(STATE_[A-Z_]+)\s+\(TANDEM_STATE \| \((\d+) << 8\)\)", text, re.MULTILINE)
    assert len(extended) >= 11
    for name, case in extended:
        assert getattr(tandem, name) == tandem.STATE | (int(case) << 8), name
    for name in ("LOG_ERROR", "LOG_WARNING", "LOG_INFO", "LOG_DEBUG"):
        assert getattr(tandem, name) == int(header_define("TANDEM_" + name)), name


def test_errstr() -> None:
    texts = {code: tandem.errstr(code) for code in range(0, 12)}
    assert all(texts.values()), texts
    assert len(set(texts.values())) == len(texts), "each code needs its own text: %r" % texts
    assert tandem.errstr(tandem.CONFIG) == "configuration error"
    assert tandem.errstr(12345) == "unknown result code"
    assert tandem.errstr(-1) == "unknown result code"


def test_code_to_exception_mapping() -> None:
    expected = {
        tandem.ERROR: tandem.TandemError,
        tandem.MISUSE: tandem.MisuseError,
        tandem.CONFIG: tandem.ConfigError,
        tandem.PERMISSION: tandem.PermissionDeniedError,
        tandem.DATABASE: tandem.DatabaseError,
        tandem.CONNECT: tandem.ConnectError,
        tandem.BUSY: tandem.BusyError,
        tandem.STATE: tandem.StateError,
        tandem.NOTFOUND: tandem.NotFoundError,
        tandem.REMOVED: tandem.RemovedError,
        tandem.CANCELED: tandem.CanceledError,
    }
    for code, cls in expected.items():
        error = errors.error_for_code(code, "why", "42P01" if code == tandem.DATABASE else "")
        assert type(error) is cls
        assert isinstance(error, tandem.TandemError)
        assert error.code == code and error.message == "why"
        assert error.sqlstate == ("42P01" if code == tandem.DATABASE else None)
    unknown = errors.error_for_code(42, "from a newer library")
    assert type(unknown) is tandem.TandemError and unknown.code == 42
    state = errors.error_for_code(tandem.STATE, "why", None, tandem.STATE_TAB_ORDER)
    assert type(state) is tandem.StateError and state.extended_code == tandem.STATE_TAB_ORDER
    assert errors.error_for_code(tandem.CONFIG, "why").extended_code == tandem.CONFIG
    # An extended code of another family is not believed.
    assert errors.error_for_code(tandem.CONFIG, "why", None, tandem.STATE_TAB_ORDER).extended_code == tandem.CONFIG
    assert str(errors.error_for_code(tandem.DATABASE, "boom", "23505")) == "boom (SQLSTATE 23505)"


# -- lookup, in fresh interpreters ----------------------------------------------------


def run_python(code: str, cwd: Path, pythonpath: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("TANDEM_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(pythonpath)
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-c", code], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=60)


REPORT = """
import tandem
try:
    print("PATH", tandem.load_library())
except tandem.TandemLibraryNotFound as error:
    assert isinstance(error, OSError)
    print("NOTFOUND", error)
"""


def test_lookup_honours_tandem_library(tmp_path: Path, library_path: str) -> None:
    result = run_python(REPORT, tmp_path, BINDING_DIR, TANDEM_LIBRARY=library_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PATH " + os.path.abspath(library_path)


def test_lookup_reports_a_wrong_tandem_library(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "libTandem.so")
    result = run_python(REPORT, tmp_path, BINDING_DIR, TANDEM_LIBRARY=missing)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("NOTFOUND "), result.stdout
    assert "TANDEM_LIBRARY" in result.stdout and missing in result.stdout


def test_lookup_walks_up_to_the_build_folder(tmp_path: Path) -> None:
    # Package imported from the checkout, current directory elsewhere.
    result = run_python(REPORT, tmp_path, BINDING_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PATH "), result.stdout
    found = Path(result.stdout.split(" ", 1)[1].strip())
    assert REPO_ROOT / ".build" in found.parents


def test_lookup_walks_up_from_the_current_directory(tmp_path: Path) -> None:
    # Package copied out of the checkout (as pip installs it), run from inside it.
    shutil.copytree(BINDING_DIR / "tandem", tmp_path / "tandem")
    result = run_python(REPORT, REPO_ROOT / "bindings", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PATH "), result.stdout
    assert REPO_ROOT / ".build" in Path(result.stdout.split(" ", 1)[1].strip()).parents


def test_missing_library_fails_clearly_and_import_still_works(tmp_path: Path) -> None:
    shutil.copytree(BINDING_DIR / "tandem", tmp_path / "tandem")
    code = "import tandem; print('VERSION', tandem.__version__)\n" + REPORT
    result = run_python(code, tmp_path, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "VERSION 0.1.0"
    if ctypes.util.find_library("Tandem"):
        # Installed system-wide (make install): the loader's copy is used.
        assert lines[1].startswith("PATH "), result.stdout
    else:
        assert lines[1].startswith("NOTFOUND "), result.stdout
        assert "TANDEM_LIBRARY" in result.stdout and "swift build" in result.stdout


def test_loaded_library_is_the_one_reported(library_path: str) -> None:
    assert os.path.exists(library_path) or ctypes.util.find_library("Tandem")
    assert tandem.library_path() == library_path
    assert isinstance(_library.library(), ctypes.CDLL)
