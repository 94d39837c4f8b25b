#!/usr/bin/env bash
# ABI tests of Tandem's C interface, and a smoke run of the example C host.
#
#   Tests/abi/run.sh [SERVER_CONNINFO] [plain|asan|valgrind]
#
# SERVER_CONNINFO is a libpq connection string (keywords or postgresql:// URI)
# of a server where we may create databases. Without it (or with ""), a
# throwaway cluster is started with scripts/pg-throwaway and removed at the end.
#
# For each run the script creates a fresh database abi_<random> on that
# server, loads the reference apps (sql/apps/pipeline.sql, crm.sql, sample.sql)
# and sample data, compiles Tests/abi/abi_test.c against include/tandem.h and
# the built library, and runs it. It then runs bindings/c/example_host for 2 s
# on another fresh database and checks that the initial sync completed. Both
# databases are dropped at the end (TANDEM_ABI_KEEP=1 keeps them for a look).
#
# Modes:
#   plain     abi_test as is.
#   asan      abi_test compiled with -fsanitize=address (invalid reads/writes,
#             use after free, double free — including a host freeing a
#             library string twice). Leak detection is left on: LeakSanitizer
#             reports only unreachable blocks, and the Swift runtime's caches
#             stay reachable, so its allocations do not show up as leaks.
#             Set ASAN_OPTIONS=detect_leaks=0 yourself to turn it off.
#   valgrind  abi_test under memcheck: definite leaks and invalid accesses fail
#             the run; "possibly lost"/"still reachable" from the Swift runtime
#             at exit do not. Tests/abi/valgrind.supp is used when present.
#
# Environment:
#   TANDEM_LIB_DIR   folder with libTandem.so (default: .build/debug under the
#                    repository root; a relative path is taken from the root).
#   CC               C compiler (default: cc).
#   TANDEM_ABI_KEEP  1 keeps the databases and the build folder.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
server=${1:-}
mode=${2:-plain}
case $mode in plain|asan|valgrind) ;; *)
  echo "usage: Tests/abi/run.sh [SERVER_CONNINFO] [plain|asan|valgrind]" >&2; exit 2 ;;
esac

libdir=${TANDEM_LIB_DIR:-.build/debug}
[[ $libdir == /* ]] || libdir=$root/$libdir
if [[ ! -f $libdir/libTandem.so ]]; then
  echo "run.sh: $libdir/libTandem.so not found; build the library first (swift build)" >&2
  exit 1
fi
libdir=$(cd "$libdir" && pwd)
cc=${CC:-cc}

for f in pipeline crm sample; do
  if [[ ! -f $root/sql/apps/$f.sql ]]; then
    echo "run.sh: $root/sql/apps/$f.sql not found" >&2
    exit 1
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-abi.XXXXXX")
databases=()
cluster=""

cleanup() {
  local status=$?
  set +e
  if [[ ${TANDEM_ABI_KEEP:-0} == 1 ]]; then
    echo "# kept: databases ${databases[*]:-none}, build folder $work" >&2
  else
    for db in "${databases[@]}"; do
      psql "$server" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
        || psql "$server" -X -q -c "DROP DATABASE IF EXISTS \"$db\"" >/dev/null
    done
    rm -rf "$work"
  fi
  [[ -n $cluster ]] && "$root/scripts/pg-throwaway" stop "$cluster"
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $server ]]; then
  # Not under $work: that folder is private to us, and as root the cluster
  # runs as the `postgres` user, who must be able to reach it.
  cluster=$(mktemp -d "${TMPDIR:-/tmp}/tandem-abi-pg.XXXXXX")
  server=$("$root/scripts/pg-throwaway" start "$cluster")
fi

# The server's connection string with the database name replaced.
with_dbname() {
  local conninfo=$1 db=$2
  if [[ $conninfo =~ ^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$ ]]; then
    printf '%s/%s%s' "${BASH_REMATCH[1]}" "$db" "${BASH_REMATCH[4]}"
  else
    # Drop any dbname=... (bare or quoted) and name ours; libpq would also
    # take the last of two, but one is clearer in messages.
    conninfo=$(printf '%s' "$conninfo" |
      sed -E "s/(^|[[:space:]])dbname[[:space:]]*=[[:space:]]*('([^'\\\\]|\\\\.)*'|[^[:space:]]*)//g")
    printf '%s dbname=%s' "$conninfo" "$db"
  fi
}

# Creates a fresh database with both apps and sample data and sets $conninfo
# to it. (Not a command substitution: the name must reach `databases`.)
conninfo=""
fresh_database() {
  local db="abi_$(date +%s)_$RANDOM$RANDOM"
  psql "$server" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\"" >/dev/null
  databases+=("$db")
  conninfo=$(with_dbname "$server" "$db")
  local f
  for f in pipeline crm sample; do
    psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -f "$root/sql/apps/$f.sql" >/dev/null
  done
  psql "$conninfo" -X -q -v ON_ERROR_STOP=1 -c "SELECT tandem_sample.generate(100, 30)" >/dev/null
}

link=(-L "$libdir" -lTandem "-Wl,-rpath,$libdir")
# abi_test also talks to PostgreSQL itself (libpq), to hold a lock a pass needs.
pq=($(pkg-config --cflags --libs libpq))
warn=(-std=c11 -Wall -Wextra -Werror -I "$root/include")
failures=0

# ---- abi_test --------------------------------------------------------------
sanitize=()
[[ $mode == asan ]] && sanitize=(-fsanitize=address -fno-omit-frame-pointer -g)
"$cc" "${warn[@]}" "${sanitize[@]}" -g -pthread "$here/abi_test.c" "${link[@]}" "${pq[@]}" -o "$work/abi_test"

fresh_database
db1=$conninfo
echo "# abi_test ($mode) on database ${databases[-1]}"
runner=()
case $mode in
  valgrind)
    runner=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
            --show-leak-kinds=definite --num-callers=30 --log-file="$work/valgrind.log")
    [[ -f $here/valgrind.supp ]] && runner+=(--suppressions="$here/valgrind.supp")
    ;;
  asan)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
    ;;
esac

set +e
timeout --kill-after=30 900 "${runner[@]}" "$work/abi_test" "$db1" >"$work/abi_test.out" 2>"$work/abi_test.err"
status=$?
set -e
cat "$work/abi_test.out"
[[ -s $work/abi_test.err ]] && { echo "# stderr of abi_test:"; sed 's/^/#   /' "$work/abi_test.err"; }
last=$(tail -n 1 "$work/abi_test.out")
if [[ $status -eq 124 ]]; then
  echo "FAIL: abi_test did not finish within 900 s and was stopped (timeout); last line: $last"
  failures=$((failures + 1))
elif [[ $status -ne 0 || ! $last =~ ^[0-9]+\ passed,\ 0\ failed$ ]]; then
  echo "FAIL: abi_test exited with status $status; last line: $last"
  if [[ $mode == valgrind && -f $work/valgrind.log ]]; then
    echo "# valgrind log:"; sed 's/^/#   /' "$work/valgrind.log"
  fi
  failures=$((failures + 1))
elif [[ -s $work/abi_test.err ]]; then
  # The library never prints by itself: diagnostics go to the log callback.
  echo "FAIL: abi_test wrote to stderr; the library must stay silent without a log callback"
  failures=$((failures + 1))
elif [[ $mode == valgrind ]]; then
  grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable' "$work/valgrind.log" \
    | sed 's/^/# valgrind: /' || true
fi

# ---- example_host ------------------------------------------------------------
"$cc" "${warn[@]}" "$root/bindings/c/example_host.c" "${link[@]}" -o "$work/example_host"
fresh_database
db2=$conninfo
echo "# example_host on database ${databases[-1]}"
set +e
timeout --kill-after=30 300 "$work/example_host" "$db2" --seconds 2 >"$work/example_host.out" 2>&1
status=$?
set -e
sed 's/^/# example_host: /' "$work/example_host.out" | cut -c1-300
if [[ $status -eq 124 ]]; then
  echo "FAIL: example_host did not finish within 300 s and was stopped (timeout)"
  failures=$((failures + 1))
elif [[ $status -ne 0 ]]; then
  echo "FAIL: example_host exited with status $status"
  failures=$((failures + 1))
elif ! grep -q initial_sync_complete "$work/example_host.out"; then
  echo "FAIL: example_host output does not mention initial_sync_complete"
  failures=$((failures + 1))
else
  echo "ok - example_host completed the initial sync and followed changes for 2 s"
fi

if ((failures)); then
  echo "ABI tests: $failures part(s) failed"
  exit 1
fi
echo "ABI tests: all passed ($mode)"
