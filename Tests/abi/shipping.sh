#!/usr/bin/env bash
# The installed library is one a C host can ship (README "Shipping the library").
#
#   Tests/abi/shipping.sh SERVER_CONNINFO
#
# Checks, in order:
#   1. the version lives in one place: include/tandem.h's TANDEM_VERSION, with
#      TANDEM_VERSION_NUMBER = X*1000000 + Y*1000 + Z, and the Python package
#      (pyproject.toml, HEADER_VERSION*) saying the same;
#   2. `make install PREFIX=<temp>` installs libTandem.so.X.Y.Z with the
#      libTandem.so.X and libTandem.so links, the header, tandem.pc and the CLI;
#   3. readelf: SONAME libTandem.so.X, no RUNPATH/RPATH into the toolchain;
#   4. nm -D --defined-only: only tandem_* symbols;
#   5. ldd of the library and the CLI: nothing from the toolchain, nothing missing;
#   6. with the toolchain's directory hidden (a mount namespace with an empty
#      tmpfs over it, as root): the example C host, built with pkg-config
#      against the installed prefix, completes an initial sync; the installed
#      CLI installs the schema; Python loads the installed library.
# Step 6 needs root (unshare -m); without it the step says so and is skipped.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:?usage: Tests/abi/shipping.sh SERVER_CONNINFO}
cd "$root"

failures=0
ok() { echo "ok - $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-shipping.XXXXXX")
chmod 755 "$work"
database=""
cleanup() {
  local status=$?
  set +e
  [[ -n $database ]] && psql "$server" -X -q -c "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

# ---- 1. one version --------------------------------------------------------
version=$(sed -n 's/^#define TANDEM_VERSION "\(.*\)"$/\1/p' include/tandem.h)
number=$(sed -n 's/^#define TANDEM_VERSION_NUMBER \([0-9]*\)$/\1/p' include/tandem.h)
if [[ ! $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
  fail "include/tandem.h: TANDEM_VERSION '$version' is not X.Y.Z"
  exit 1
fi
major=${BASH_REMATCH[1]}
expected=$((10#${BASH_REMATCH[1]} * 1000000 + 10#${BASH_REMATCH[2]} * 1000 + 10#${BASH_REMATCH[3]}))
[[ $number == "$expected" ]] && ok "TANDEM_VERSION_NUMBER $number is TANDEM_VERSION $version" \
  || fail "TANDEM_VERSION_NUMBER is $number, but TANDEM_VERSION $version makes $expected"
python_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' bindings/python/pyproject.toml)
python_header=$(sed -n 's/^HEADER_VERSION = "\(.*\)"$/\1/p' bindings/python/tandem/_library.py)
python_number=$(sed -n 's/^HEADER_VERSION_NUMBER = \([0-9]*\)$/\1/p' bindings/python/tandem/_library.py)
[[ $python_version == "$version" && $python_header == "$version" && $python_number == "$number" ]] \
  && ok "the Python package says $version too" \
  || fail "bindings/python says version '$python_version', HEADER_VERSION '$python_header' ($python_number); the header says $version ($number)"

# ---- 2. make install ---------------------------------------------------------
prefix=$work/prefix
if ! make -s install PREFIX="$prefix" >"$work/install.log" 2>&1; then
  sed 's/^/#   /' "$work/install.log"
  fail "make install PREFIX=$prefix"
  exit 1
fi
lib=$prefix/lib/libTandem.so.$version
[[ -f $lib && ! -L $lib ]] && ok "installed $lib" || fail "$lib is not an installed file"
[[ $(readlink "$prefix/lib/libTandem.so.$major") == "libTandem.so.$version" ]] \
  && ok "libTandem.so.$major -> libTandem.so.$version" || fail "libTandem.so.$major is not a link to libTandem.so.$version"
[[ $(readlink "$prefix/lib/libTandem.so") == "libTandem.so.$major" ]] \
  && ok "libTandem.so -> libTandem.so.$major" || fail "libTandem.so is not a link to libTandem.so.$major"
[[ -f $prefix/include/tandem.h && -x $prefix/bin/tandem && -f $prefix/lib/pkgconfig/tandem.pc ]] \
  && ok "header, CLI and tandem.pc installed" || fail "header, CLI or tandem.pc missing"
grep -qx "Version: $version" "$prefix/lib/pkgconfig/tandem.pc" \
  && ok "tandem.pc says Version: $version" || fail "tandem.pc does not say Version: $version"

# ---- 3. SONAME and RUNPATH ---------------------------------------------------
toolchain=$(dirname "$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")")
dynamic=$(readelf -d "$lib")
grep -q "Library soname: \[libTandem.so.$major\]" <<<"$dynamic" \
  && ok "SONAME libTandem.so.$major" || fail "no SONAME libTandem.so.$major: $(grep -i soname <<<"$dynamic")"
for file in "$lib" "$prefix/bin/tandem"; do
  paths=$(readelf -d "$file" | grep -E 'RUNPATH|RPATH' || true)
  if grep -qF "$toolchain" <<<"$paths"; then
    fail "$(basename "$file") has a RUNPATH into the toolchain ($toolchain): $paths"
  else
    ok "$(basename "$file"): no RUNPATH into $toolchain${paths:+ (${paths##*: })}"
  fi
done

# ---- 4. exports --------------------------------------------------------------
symbols=$(nm -D --defined-only "$lib" | awk '{print $NF}')
others=$(grep -v '^tandem_' <<<"$symbols" || true)
count=$(grep -c '^tandem_' <<<"$symbols" || true)
declared=$(grep -oE '\btandem_[a-z_0-9]+\(' include/tandem.h | sort -u | wc -l)
if [[ -n $others ]]; then
  fail "libTandem exports $(wc -l <<<"$others") symbols besides tandem_*, e.g. $(head -3 <<<"$others" | tr '\n' ' ')"
elif [[ $count -ne $declared ]]; then
  fail "libTandem exports $count tandem_* symbols, the header declares $declared"
else
  ok "exports exactly the $count tandem_* functions of the header"
fi

# ---- 5. ldd ------------------------------------------------------------------
for file in "$lib" "$prefix/bin/tandem"; do
  libraries=$(ldd "$file")
  if grep -qF "$toolchain" <<<"$libraries" || grep -q "not found" <<<"$libraries"; then
    fail "ldd $(basename "$file"): $(grep -E "$toolchain|not found" <<<"$libraries" | tr '\n' ' ')"
  else
    ok "ldd $(basename "$file"): $(awk '{print $1}' <<<"$libraries" | tr '\n' ' ')"
  fi
done

# ---- 6. run with the toolchain out of reach -------------------------------
database="ship_$(date +%s)_$RANDOM"
psql "$server" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$database\"" >/dev/null
if [[ $server =~ ^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$ ]]; then
  conninfo="${BASH_REMATCH[1]}/$database${BASH_REMATCH[4]}"
else
  conninfo="$(sed -E "s/(^|[[:space:]])dbname[[:space:]]*=[[:space:]]*[^[:space:]]*//g" <<<"$server") dbname=$database"
fi
for f in pipeline crm sample; do
  psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -f "sql/apps/$f.sql" >/dev/null
done
psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -c "SELECT tandem_sample.generate(50, 30)" >/dev/null

host=$work/example_host
# shellcheck disable=SC2046
${CC:-cc} -std=c11 -Wall -Wextra -Werror bindings/c/example_host.c \
  $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs tandem) -o "$host"
readelf -d "$host" | grep -q "Shared library: \[libTandem.so.$major\]" \
  && ok "example_host links libTandem.so.$major (pkg-config)" || fail "example_host does not record libTandem.so.$major"

if [[ $(id -u) -ne 0 ]] || ! unshare -m true 2>/dev/null; then
  echo "# skipped: hiding $toolchain needs root and unshare -m"
else
  hidden() {
    # An empty tmpfs over the toolchain, in a private mount namespace: this
    # process sees no Swift runtime, the rest of the machine is untouched.
    unshare -m sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$toolchain" "$@"
  }
  if hidden sh -c 'test ! -e "$0/usr/lib/swift"' "$toolchain"; then
    ok "the toolchain at $toolchain is out of reach inside the namespace"
  else
    fail "could not hide $toolchain"
  fi
  if hidden "$prefix/bin/tandem" --help >"$work/cli.out" 2>&1 \
     && TANDEM_DATABASE_URL=$conninfo hidden "$prefix/bin/tandem" install >>"$work/cli.out" 2>&1; then
    ok "the installed tandem CLI runs and installs the schema without the toolchain"
  else
    sed 's/^/#   /' "$work/cli.out"; fail "the installed tandem CLI does not run without the toolchain"
  fi
  set +e
  timeout 300 unshare -m sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$toolchain" \
    "$host" "$conninfo" --seconds 1 >"$work/host.out" 2>&1
  status=$?
  set -e
  if [[ $status -eq 0 ]] && grep -q initial_sync_complete "$work/host.out"; then
    ok "example_host completed the initial sync without the toolchain"
  else
    sed 's/^/#   /' "$work/host.out" | cut -c1-300; fail "example_host without the toolchain (status $status)"
  fi
  if hidden env PYTHONPATH="$root/bindings/python" TANDEM_LIBRARY="$prefix/lib/libTandem.so" \
       python3 -c 'import tandem, sys; sys.exit(0 if tandem.libversion() == sys.argv[1] else 1)' "$version" \
       >"$work/python.out" 2>&1; then
    ok "Python loads the installed library without the toolchain"
  else
    sed 's/^/#   /' "$work/python.out"; fail "Python cannot load the installed library without the toolchain"
  fi

  # make wheel: the Python package with the library inside, installed into a
  # fresh virtual environment and used from outside the repository, with no
  # TANDEM_LIBRARY and the toolchain out of reach.
  if wheel=$(scripts/wheel "$lib" "$work/dist" 2>"$work/wheel.out") \
     && python3 -m venv "$work/venv" >>"$work/wheel.out" 2>&1 \
     && "$work/venv/bin/pip" install -q --no-index "$wheel" >>"$work/wheel.out" 2>&1; then
    ok "make wheel: $(basename "$wheel") installs with pip, offline"
    if (cd "$work" && hidden env -u TANDEM_LIBRARY -u PYTHONPATH "$work/venv/bin/python" -c '
import sys, tandem
path = tandem.library_path()
assert path.endswith("/tandem/_lib/libTandem.so.0") and "/venv/" in path, path
with tandem.open(sys.argv[1]) as db:
    db.install()
    db.configure({"pipeline": {"acting_user": "admin@example.com"}, "crm": {"acting_user": "admin@example.com"}})
    db.activate("contacts_companies")
    db.wait_for_initial_sync("contacts_companies", timeout=120)
print("ok", path)' "$conninfo" >"$work/venv.out" 2>&1); then
      ok "the installed wheel syncs from outside the build tree, without the toolchain: $(tail -1 "$work/venv.out")"
    else
      sed 's/^/#   /' "$work/venv.out"; fail "the installed wheel does not work outside the build tree"
    fi
  else
    sed 's/^/#   /' "$work/wheel.out"; fail "make wheel, or pip install of the wheel"
  fi
fi

if ((failures)); then
  echo "shipping: $failures check(s) failed"
  exit 1
fi
echo "shipping: all checks passed"
