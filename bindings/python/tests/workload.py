"""Concurrent writers on both apps and an end-state check that trusts only what
the writers committed, shared by the chaos test (test_chaos.py) and the
sustained-load benchmark (bench/load).

It talks to PostgreSQL through libpq with ctypes, so it needs no Python driver,
and every libpq call releases the GIL: writer threads really run concurrently.

The writers are designed so that the end state can be checked independently of
the engine's own bookkeeping:
- each field is written from one side only (pipeline writers: phone and
  description; CRM writers: title and mailing_city of contacts, website and
  billing_city of accounts), so nothing is ever a conflict and each field's
  last committed value is the only right answer on both sides;
- the linked pairs are split among the writers of a side (pair i belongs to
  writer i mod N), so every (record, field) has a single writer, whose
  statements run one after another on one connection: its last committed
  statement is, without doubt, the last write;
- every inserted record carries a unique tag (the contact's email and last
  name, the company's name), so "exactly once on the other side" is a count.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import threading
import time
from typing import Dict, List, Optional, Tuple

# -- libpq through ctypes -----------------------------------------------------------

_PGRES_COMMAND_OK = 1
_PGRES_TUPLES_OK = 2
_CONNECTION_OK = 0
_PG_DIAG_SQLSTATE = ord("C")

_libpq = None


def libpq() -> ctypes.CDLL:
    global _libpq
    if _libpq is None:
        name = ctypes.util.find_library("pq") or "libpq.so.5"
        lib = ctypes.CDLL(name)
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        lib.PQstatus.restype = ctypes.c_int
        lib.PQerrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQerrorMessage.restype = ctypes.c_char_p
        lib.PQfinish.argtypes = [ctypes.c_void_p]
        lib.PQfinish.restype = None
        lib.PQexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.PQexec.restype = ctypes.c_void_p
        lib.PQresultStatus.argtypes = [ctypes.c_void_p]
        lib.PQresultStatus.restype = ctypes.c_int
        lib.PQresultErrorMessage.argtypes = [ctypes.c_void_p]
        lib.PQresultErrorMessage.restype = ctypes.c_char_p
        lib.PQresultErrorField.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.PQresultErrorField.restype = ctypes.c_char_p
        lib.PQntuples.argtypes = [ctypes.c_void_p]
        lib.PQntuples.restype = ctypes.c_int
        lib.PQnfields.argtypes = [ctypes.c_void_p]
        lib.PQnfields.restype = ctypes.c_int
        lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQgetvalue.restype = ctypes.c_char_p
        lib.PQgetisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQgetisnull.restype = ctypes.c_int
        lib.PQcmdTuples.argtypes = [ctypes.c_void_p]
        lib.PQcmdTuples.restype = ctypes.c_char_p
        lib.PQclear.argtypes = [ctypes.c_void_p]
        lib.PQclear.restype = None
        _libpq = lib
    return _libpq


class QueryError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__("%s %s" % (sqlstate, message))
        self.sqlstate = sqlstate
        self.message = message


class Connection:
    """One libpq connection in autocommit mode; one thread at a time."""

    def __init__(self, conninfo: str, statement_timeout_s: Optional[float] = None) -> None:
        self.lib = libpq()
        self.conn = self.lib.PQconnectdb(conninfo.encode())
        if not self.conn or self.lib.PQstatus(self.conn) != _CONNECTION_OK:
            message = self.lib.PQerrorMessage(self.conn).decode(errors="replace") if self.conn else "out of memory"
            self.close()
            raise ConnectionError("could not connect: %s" % message.strip())
        if statement_timeout_s is not None:   # a bounded wait even for a check that goes wrong
            self.execute("SET statement_timeout = %d" % int(statement_timeout_s * 1000))

    def execute(self, sql: str) -> Tuple[int, List[List[Optional[str]]]]:
        """Runs one statement: (rows affected, rows returned); QueryError on failure."""
        lib = self.lib
        res = lib.PQexec(self.conn, sql.encode())
        try:
            status = lib.PQresultStatus(res) if res else -1
            if status not in (_PGRES_COMMAND_OK, _PGRES_TUPLES_OK):
                state = lib.PQresultErrorField(res, _PG_DIAG_SQLSTATE) if res else None
                message = (lib.PQresultErrorMessage(res) if res else lib.PQerrorMessage(self.conn)) or b""
                raise QueryError((state or b"?????").decode(), message.decode(errors="replace").strip())
            affected = lib.PQcmdTuples(res)
            rows: List[List[Optional[str]]] = []
            if status == _PGRES_TUPLES_OK:
                for r in range(lib.PQntuples(res)):
                    rows.append([None if lib.PQgetisnull(res, r, c) else lib.PQgetvalue(res, r, c).decode()
                                 for c in range(lib.PQnfields(res))])
            return (int(affected) if affected else 0), rows
        finally:
            if res:
                lib.PQclear(res)

    def rows(self, sql: str) -> List[List[Optional[str]]]:
        return self.execute(sql)[1]

    def scalar(self, sql: str) -> Optional[str]:
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self.conn:
            self.lib.PQfinish(self.conn)
            self.conn = None


# -- the workload -------------------------------------------------------------------

SIDES = ("pipeline", "crm")
MODULES = ("contacts", "companies")
TABLE = {("pipeline", "contacts"): "pipeline.contacts", ("crm", "contacts"): "crm.contacts",
         ("pipeline", "companies"): "pipeline.companies", ("crm", "companies"): "crm.accounts"}
# The fields each side writes; never the same field from both sides.
WRITES = {("pipeline", "contacts"): ("phone", "description"), ("crm", "contacts"): ("title", "mailing_city"),
          ("pipeline", "companies"): ("phone", "description"), ("crm", "companies"): ("website", "billing_city")}
# Mapped plain fields compared on every linked pair (pipeline column, CRM column).
PAIR_FIELDS = {
    "contacts": [(c, c) for c in ("first_name", "last_name", "email", "phone", "mobile", "title", "description",
                                  "mailing_street", "mailing_city", "mailing_state", "mailing_zip", "mailing_country")],
    "companies": [("company_name", "account_name")] + [(c, c) for c in (
        "phone", "website", "description", "billing_street", "billing_city", "billing_state", "billing_code",
        "billing_country")],
}


#: The match keys of the reference configuration and the normalized form the
#: engine matches them by (ModuleCompiler.normalized): case and spacing aside.
MATCH_KEYS = {("email", "email"), ("company_name", "account_name")}
MATCH_KEY_FORM = "lower(regexp_replace(btrim(%s::text), '\\s+', ' ', 'g'))"


def _array(values) -> str:
    """A PostgreSQL array literal of our own (quote- and backslash-free) strings."""
    return "'{%s}'" % ",".join('"%s"' % v for v in values)


class Writer:
    """One app connection writing its share of the records at a target rate."""

    def __init__(self, workload: "Workload", side: str, index: int) -> None:
        self.workload, self.side, self.index = workload, side, index
        self.conn = Connection(workload.conninfo)
        self.rng = random.Random(workload.seed * 1000 + index * 2 + (side == "crm"))
        n = workload.writers_per_side
        self.hot = {m: workload.hot[m][index::n] for m in MODULES}
        self.cold = {m: workload.cold[m][index::n] for m in MODULES}
        self.sequence = 0
        self.last: Dict[Tuple[str, str, int], str] = {}   # (module, field, id) -> last committed value
        self.inserted = {m: 0 for m in MODULES}
        self.statements = 0
        self.rows = 0
        self.errors: Dict[str, int] = {}
        self.rate = 0.0
        self.thread: Optional[threading.Thread] = None
        self.stop = threading.Event()

    def _pick(self, module: str) -> int:
        hot, cold = self.hot[module], self.cold[module]
        if self.workload.hot_share is None:   # spread evenly over every linked record
            i = self.rng.randrange(len(hot) + len(cold))
            return hot[i] if i < len(hot) else cold[i - len(hot)]
        if cold and (not hot or self.rng.random() >= self.workload.hot_share):
            return self.rng.choice(cold)
        return self.rng.choice(hot)

    def statement(self) -> None:
        """One statement: single- or multi-row UPDATE or INSERT of contacts or companies."""
        rng, side, w = self.rng, self.side, self.workload
        module = "contacts" if rng.random() < 0.6 else "companies"
        table = TABLE[(side, module)]
        self.sequence += 1
        tag = "%s-%s%d-%d" % (w.tag, side[0], self.index, self.sequence)
        kind = rng.random()
        try:
            if kind < 0.80:   # 55 % single-row UPDATEs, 25 % multi-row
                field = rng.choice(WRITES[(side, module)])
                if kind < 0.55:
                    ids = [self._pick(module)]
                    sql = "UPDATE %s SET %s = '%s' WHERE id = %d" % (table, field, tag, ids[0])
                    values = {ids[0]: tag}
                else:
                    ids = sorted({self._pick(module) for _ in range(rng.randint(2, 10))})
                    sql = "UPDATE %s SET %s = '%s-' || id WHERE id IN (%s)" % (
                        table, field, tag, ",".join(map(str, ids)))
                    values = {i: "%s-%d" % (tag, i) for i in ids}
                affected, _ = self.conn.execute(sql)
                for i, v in values.items():
                    self.last[(module, field, i)] = v
                self.rows += affected
            else:             # 15 % single-row INSERTs, 5 % multi-row
                count = 1 if kind < 0.95 else rng.randint(2, 5)
                names = ["%s-%d" % (tag, k) for k in range(count)]
                owner = w.owner[side]
                if module == "contacts":
                    company = self._pick("companies") if self.hot["companies"] or self.cold["companies"] else None
                    parent = "company_id" if side == "pipeline" else "account_id"
                    values_sql = ",".join("('Load', '%s', '%s@load.test', %d, %s)" % (
                        n, n, owner, "NULL" if company is None else company) for n in names)
                    sql = "INSERT INTO %s (first_name, last_name, email, owner_id, %s) VALUES %s" % (
                        table, parent, values_sql)
                else:
                    name_column = "company_name" if side == "pipeline" else "account_name"
                    sql = "INSERT INTO %s (%s, owner_id) VALUES %s" % (
                        table, name_column, ",".join("('%s', %d)" % (n, owner) for n in names))
                affected, _ = self.conn.execute(sql)
                self.inserted[module] += affected
                self.rows += affected
            self.statements += 1
        except QueryError as error:
            # Not committed (autocommit): nothing to remember. Counted and reported.
            self.errors[error.sqlstate] = self.errors.get(error.sqlstate, 0) + 1

    def _run(self, rate: float, seconds: float) -> None:
        interval = 1.0 / rate
        start = time.monotonic()
        end = start + seconds
        next_at = start + self.rng.random() * interval
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            if next_at > now:
                time.sleep(min(next_at - now, end - now))
                continue
            self.statement()
            # Behind schedule by more than a second (blocked on a lock, CPU starved): the
            # missed slots are dropped, not burst out later; the achieved rate says so.
            next_at = max(next_at + interval, time.monotonic() - 1.0)

    def start(self, rate: float, seconds: float) -> None:
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, args=(rate, seconds), daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise AssertionError("writer %s%d did not stop within %ss" % (self.side, self.index, timeout))

    def close(self) -> None:
        self.conn.close()


class Workload:
    """N writers per side over the linked contacts and companies of an
    integration whose contacts_companies tab is active and synced."""

    def __init__(self, conninfo: str, tag: str, writers_per_side: int = 3, hot_share: Optional[float] = 0.85,
                 hot_contacts: int = 400, hot_companies: int = 250, reserve_contacts: int = 1,
                 seed: int = 1) -> None:
        self.conninfo, self.tag, self.writers_per_side = conninfo, tag, writers_per_side
        self.hot_share, self.seed = hot_share, seed
        admin = Connection(conninfo)
        try:
            self.owner = {side: int(admin.scalar(
                "SELECT id FROM %s.users WHERE lower(email) = 'admin@example.com'" % side)) for side in SIDES}
            pairs = {m: admin.rows("SELECT pipeline_id::bigint, crm_id::bigint FROM tandem.links WHERE module = '%s'"
                                   " AND pipeline_deleted_at IS NULL AND crm_deleted_at IS NULL ORDER BY link_id" % m)
                     for m in MODULES}
        finally:
            admin.close()
        rng = random.Random(seed)
        for m in MODULES:
            rng.shuffle(pairs[m])
        if len(pairs["contacts"]) <= reserve_contacts or not pairs["companies"]:
            raise AssertionError("not enough linked records: %r" % {m: len(p) for m, p in pairs.items()})
        # Contacts no writer touches, for a probe.
        self.reserved = [(int(p), int(c)) for p, c in pairs["contacts"][:reserve_contacts]]
        pairs["contacts"] = pairs["contacts"][reserve_contacts:]
        sizes = {"contacts": hot_contacts, "companies": hot_companies}
        # Writers of both sides pick by pair index, each side with its own id.
        self.pairs = {m: [(int(p), int(c)) for p, c in pairs[m]] for m in MODULES}
        self.hot = {}
        self.cold = {}
        self.writers: List[Writer] = []
        for side in SIDES:
            column = 0 if side == "pipeline" else 1
            for m in MODULES:
                ids = [pair[column] for pair in self.pairs[m]]
                self.hot[m], self.cold[m] = ids[:sizes[m]], ids[sizes[m]:]
            for i in range(writers_per_side):
                self.writers.append(Writer(self, side, i))

    # -- running --

    def run(self, statements_per_second: float, seconds: float) -> Dict[str, float]:
        """Writes at the target rate (all writers together) for the given time;
        returns what was achieved."""
        before = sum(w.statements for w in self.writers), sum(sum(w.errors.values()) for w in self.writers)
        per_writer = statements_per_second / len(self.writers)
        start = time.monotonic()
        for w in self.writers:
            w.start(per_writer, seconds)
        for w in self.writers:
            w.join(seconds + 60)
        elapsed = time.monotonic() - start
        statements = sum(w.statements for w in self.writers) - before[0]
        errors = sum(sum(w.errors.values()) for w in self.writers) - before[1]
        # Statements begin only inside the window (a late one may end just after it): the rate
        # achieved is what began per second of the window.
        return {"statements": statements, "seconds": elapsed, "per_second": statements / seconds, "errors": errors}

    def start(self, statements_per_second: float, seconds: float) -> None:
        for w in self.writers:
            w.start(statements_per_second / len(self.writers), seconds)

    def stop(self, timeout: float = 60) -> None:
        for w in self.writers:
            w.stop.set()
        for w in self.writers:
            w.join(timeout)

    def close(self) -> None:
        for w in self.writers:
            w.close()

    def errors(self) -> Dict[str, int]:
        total: Dict[str, int] = {}
        for w in self.writers:
            for state, n in w.errors.items():
                total[state] = total.get(state, 0) + n
        return total

    def inserted(self) -> Dict[Tuple[str, str], int]:
        return {(side, m): sum(w.inserted[m] for w in self.writers if w.side == side) for side in SIDES for m in MODULES}

    # -- the end state --

    def check(self, conn: Connection, sample: int = 5) -> Dict[str, object]:
        """Compares the apps with what the writers committed. Returns counts of
        every kind of mismatch (all zero when the end state is right) and a few
        examples of each."""
        found: Dict[str, object] = {}
        examples: List[str] = []

        # 1. Every linked pair equal under the mapping (plain fields and the contact's company).
        for m in MODULES:
            p_table, c_table = TABLE[("pipeline", m)], TABLE[("crm", m)]
            # The match key (B3) is one value under the engine's normalization:
            # a matched pair keeps each side's spelling of it.
            p_cols = [MATCH_KEY_FORM % ("p." + a) if (a, b) in MATCH_KEYS else "p.%s" % a for a, b in PAIR_FIELDS[m]]
            c_cols = [MATCH_KEY_FORM % ("c." + b) if (a, b) in MATCH_KEYS else "c.%s" % b for a, b in PAIR_FIELDS[m]]
            lookup = ""
            if m == "contacts":
                lookup = ("LEFT JOIN tandem.links lc ON lc.module = 'companies' AND lc.integration_id = l.integration_id"
                          " AND lc.pipeline_id = p.company_id::text")
                p_cols.append("lc.crm_id")
                c_cols.append("c.account_id::text")
            rows = conn.rows(
                "SELECT l.pipeline_id, l.crm_id FROM tandem.links l"
                " JOIN %s p ON p.id = l.pipeline_id::bigint JOIN %s c ON c.id = l.crm_id::bigint %s"
                " WHERE l.module = '%s' AND (%s) IS DISTINCT FROM (%s)"
                % (p_table, c_table, lookup, m, ", ".join(p_cols), ", ".join(c_cols)))
            found["unequal_pairs_%s" % m] = len(rows)
            examples += ["%s pair pipeline %s / crm %s differs" % (m, r[0], r[1]) for r in rows[:sample]]

        # 2. Each field ends with its last committed value, on its own side and on the other.
        last: Dict[Tuple[str, str, str], Dict[int, str]] = {}
        for w in self.writers:
            for (m, field, i), v in w.last.items():
                last.setdefault((w.side, m, field), {})[i] = v
        wrong = 0
        for (side, m, field), values in sorted(last.items()):
            other = "crm" if side == "pipeline" else "pipeline"
            ids = sorted(values)
            rows = conn.rows(
                "SELECT e.id, e.v, s.%s, t.%s FROM unnest('{%s}'::bigint[], %s::text[]) AS e(id, v)"
                " LEFT JOIN %s s ON s.id = e.id"
                " LEFT JOIN tandem.links l ON l.module = '%s' AND l.%s_id = e.id::text"
                " LEFT JOIN %s t ON t.id = l.%s_id::bigint"
                " WHERE s.%s IS DISTINCT FROM e.v OR t.%s IS DISTINCT FROM e.v"
                % (field, field, ",".join(map(str, ids)), _array(values[i] for i in ids),
                   TABLE[(side, m)], m, side, TABLE[(other, m)], other, field, field))
            wrong += len(rows)
            examples += ["%s %s.%s id %s: last written %r, %s side has %r, other side %r"
                         % (side, m, field, r[0], r[1], side, r[2], r[3]) for r in rows[:sample]]
        found["fields_not_last_written"] = wrong
        found["fields_checked"] = sum(len(v) for v in last.values())

        # 3. Every insert exactly once on both sides (tags are unique per inserted record).
        for (side, m), n in self.inserted().items():
            other = "crm" if side == "pipeline" else "pipeline"
            key = {"contacts": ("email", "email"), "companies": ("company_name", "account_name")}[m]
            own_key = key[0] if side == "pipeline" else key[1]
            other_key = key[0] if other == "pipeline" else key[1]
            pattern = "%s-%s%%" % (self.tag, side[0])
            own = int(conn.scalar("SELECT count(*) FROM %s WHERE %s LIKE '%s'" % (TABLE[(side, m)], own_key, pattern)))
            total, distinct = conn.rows("SELECT count(*), count(DISTINCT %s) FROM %s WHERE %s LIKE '%s'"
                                        % (other_key, TABLE[(other, m)], other_key, pattern))[0]
            missing = n - int(distinct)
            duplicates = int(total) - int(distinct)
            found["inserted_%s_%s" % (side, m)] = n
            found["inserts_missing_%s_%s" % (side, m)] = missing + abs(own - n)
            found["inserts_duplicated_%s_%s" % (side, m)] = duplicates
            if missing or duplicates or own != n:
                examples.append("%s %s inserted from the %s side: %d committed, %d there, %d distinct on the %s "
                                "side (%d rows)" % (m, "records", side, n, own, int(distinct), other, int(total)))

        # 4. Nothing left behind.
        found["pending_changes"] = int(conn.scalar("SELECT count(*) FROM tandem.pending_changes"))
        found["deferred_records"] = int(conn.scalar("SELECT count(*) FROM tandem.deferred_records"))
        found["record_errors"] = int(conn.scalar("SELECT count(*) FROM tandem.record_failures WHERE resolved_at IS NULL"))
        found["examples"] = examples
        return found


PROBLEM_KEYS = ("unequal_pairs_contacts", "unequal_pairs_companies", "fields_not_last_written",
                "pending_changes", "deferred_records", "record_errors")


def problems(found: Dict[str, object]) -> Dict[str, int]:
    """The non-zero mismatch counts of a check."""
    bad = {k: int(found[k]) for k in PROBLEM_KEYS if int(found[k])}  # type: ignore[arg-type]
    for k, v in found.items():
        if (k.startswith("inserts_missing_") or k.startswith("inserts_duplicated_")) and int(v):  # type: ignore[arg-type]
            bad[k] = int(v)  # type: ignore[arg-type]
    return bad


# What tandem.pending_changes is made of, counted without its join to the links: with a backlog of
# tens of thousands of changes the view itself runs for minutes (the join on a CASE of the side is not
# indexable and the planner expects one change), so it is asked only once these are zero.
BACKLOG = ("SELECT (SELECT count(*) FROM tandem.change_log cl JOIN tandem.sync_cursors sc"
           " ON cl.xid >= sc.position AND NOT pg_visible_in_snapshot(cl.xid, sc.snapshot))"
           " + (SELECT count(*) FROM tandem.deferred_records) + (SELECT count(*) FROM tandem.waiting_records)"
           " + (SELECT count(*) FROM tandem.record_failures WHERE resolved_at IS NULL)")


def wait_settled(conn: Connection, timeout: float, interval: float = 0.1) -> Optional[float]:
    """Waits until tandem.pending_changes (which includes deferred records) is
    empty; seconds taken, or None when it was not within the timeout."""
    start = time.monotonic()
    while True:
        if int(conn.scalar(BACKLOG)) == 0 and int(conn.scalar("SELECT count(*) FROM tandem.pending_changes")) == 0:
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(interval)


class Probe:
    """A dedicated connection that edits one linked contact's mobile in the
    pipeline app every ~interval seconds and measures how long until the CRM
    app shows it (polling every poll_ms)."""

    def __init__(self, conninfo: str, pipeline_id: int, crm_id: int, tag: str, interval: float = 0.1,
                 poll_ms: float = 2.0, timeout: float = 10.0) -> None:
        self.conn = Connection(conninfo)
        self.pipeline_id, self.crm_id, self.tag = pipeline_id, crm_id, tag
        self.interval, self.poll, self.timeout = interval, poll_ms / 1000.0, timeout
        self.samples: List[float] = []
        self.unseen = 0
        self.sequence = 0
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def _run(self) -> None:
        while not self.stop.is_set():
            self.sequence += 1
            value = "%s-probe-%d" % (self.tag, self.sequence)
            t0 = time.monotonic()
            self.conn.execute("UPDATE pipeline.contacts SET mobile = '%s' WHERE id = %d" % (value, self.pipeline_id))
            check = "SELECT 1 FROM crm.contacts WHERE id = %d AND mobile = '%s'" % (self.crm_id, value)
            while True:
                if self.conn.rows(check):
                    self.samples.append((time.monotonic() - t0) * 1000.0)
                    break
                if time.monotonic() - t0 > self.timeout:
                    self.unseen += 1
                    break
                time.sleep(self.poll)
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def start(self) -> None:
        self.samples, self.unseen = [], 0
        self.stop.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def finish(self) -> Dict[str, float]:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(self.timeout + 5)
        ordered = sorted(self.samples)

        def pct(p: float) -> float:
            if not ordered:
                return float("nan")
            rank = max(1, min(len(ordered), int(p / 100.0 * len(ordered) + 0.999999)))
            return ordered[rank - 1]
        return {"n": len(ordered), "unseen": self.unseen, "p50_ms": pct(50), "p99_ms": pct(99),
                "max_ms": ordered[-1] if ordered else float("nan")}

    def close(self) -> None:
        self.conn.close()
