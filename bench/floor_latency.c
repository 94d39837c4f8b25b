/*
 * bench/floor_latency.c — the floor of benchmark (c) in this design: how soon
 * an edit can be on the other side when nothing but the parts the design card
 * fixes stands between them.
 *
 *   floor_latency CONNINFO [--edits N] [--warmup N] [--pause-ms P] [--rows R] [--timeout-ms T]
 *
 * It copies R pipeline contacts into a schema of its own, bench_floor: table p
 * (the pipeline side) and table c (the CRM side, the same rows), with the
 * app's own BEFORE UPDATE trigger on both and Tandem's capture triggers
 * installed on both by tandem._install_capture, as on an app table. A links
 * table maps p to c, a mirror table holds one hash per record, a cursor table
 * holds a snapshot. A thread, on its own connection, LISTENs on Tandem's
 * channel, is listed in tandem._followers as a follower that is not awake (so
 * the capture triggers notify, as they do for an idle engine) and, for each
 * notification, calls once a minimal hand-written pass in PL/pgSQL: read the
 * change log from its cursor, list its transaction in tandem._applying (so
 * the capture triggers skip its write, as for the engine), copy the phone of
 * the changed records to c and update their mirror hash in one statement,
 * move the cursor, trim its entries of the change log. No three-way merge, no
 * locking of write targets, no run history, no failure handling: what is left
 * when those are taken away.
 *
 * The main thread edits p and polls c exactly as bench/latency.c does
 * (UPDATE, then SELECT in a tight loop until the new value is there), with a
 * random P..2P ms pause before each edit (paced) or none (back to back).
 * Afterwards the capture is removed, the follower row deleted and the schema
 * dropped.
 *
 * Output: key=value lines (milliseconds), read by bench/run: floor_* for the
 * edit -> visible time, pass_* for the server round trip of the passes that
 * copied something.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define BENCH_PROGRAM "floor_latency"
#include "bench.h"

static void exec_ok(PGconn *conn, const char *sql, const char *what) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) die(what, PQerrorMessage(conn));
    PQclear(res);
}

/* Setup: the two tables, with the app's trigger and Tandem's capture, the
 * links, the mirror and the cursor. %d: the number of rows. */
static const char *setup_sql =
    /* A run that died left its capture installed: remove it before the tables go. */
    "SELECT tandem._remove_capture(t) FROM (VALUES (to_regclass('bench_floor.p')), (to_regclass('bench_floor.c'))) v(t)\n"
    " WHERE t IS NOT NULL;\n"
    "DROP SCHEMA IF EXISTS bench_floor CASCADE;\n"
    "CREATE SCHEMA bench_floor;\n"
    "CREATE TABLE bench_floor.p (LIKE pipeline.contacts INCLUDING DEFAULTS INCLUDING INDEXES);\n"
    "INSERT INTO bench_floor.p SELECT * FROM pipeline.contacts ORDER BY id LIMIT %d;\n"
    "CREATE TABLE bench_floor.c (LIKE bench_floor.p INCLUDING DEFAULTS INCLUDING INDEXES);\n"
    "INSERT INTO bench_floor.c SELECT * FROM bench_floor.p;\n"
    "CREATE TRIGGER set_modified_time BEFORE UPDATE ON bench_floor.p FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();\n"
    "CREATE TRIGGER set_modified_time BEFORE UPDATE ON bench_floor.c FOR EACH ROW EXECUTE FUNCTION pipeline.set_modified_time();\n"
    "CREATE TABLE bench_floor.links (link_id bigint PRIMARY KEY, p_id text NOT NULL UNIQUE, c_id text NOT NULL UNIQUE);\n"
    "INSERT INTO bench_floor.links SELECT row_number() OVER (ORDER BY id), id::text, id::text FROM bench_floor.p;\n"
    "CREATE TABLE bench_floor.mirrors (link_id bigint PRIMARY KEY, hashes bigint[] NOT NULL);\n"
    "INSERT INTO bench_floor.mirrors SELECT l.link_id, ARRAY[hashtextextended(p.phone, 0)] FROM bench_floor.links l\n"
    "  JOIN bench_floor.p p ON p.id = l.p_id::bigint;\n"
    "CREATE TABLE bench_floor.cursor (id int PRIMARY KEY, snapshot pg_snapshot NOT NULL);\n"
    "INSERT INTO bench_floor.cursor VALUES (1, pg_current_snapshot());\n"
    "ANALYZE bench_floor.p, bench_floor.c, bench_floor.links, bench_floor.mirrors, bench_floor.cursor;\n"
    "SELECT tandem._install_capture('bench_floor.p', 'id'), tandem._install_capture('bench_floor.c', 'id');\n";

/* The follower's session: the pass, planned for a handful of records as the
 * engine's small merge is (no hash or merge joins). */
static const char *pass_sql =
    "CREATE TEMP TABLE _floor_candidates (record_id text PRIMARY KEY);\n"
    "ANALYZE _floor_candidates;\n"
    "CREATE FUNCTION pg_temp.floor_pass() RETURNS bigint LANGUAGE plpgsql\n"
    "SET enable_hashjoin = off SET enable_mergejoin = off AS $floor$\n"
    "DECLARE\n"
    "  _current pg_snapshot := pg_current_snapshot();\n"
    "  _n bigint;\n"
    "BEGIN\n"
    "  DELETE FROM _floor_candidates;\n"
    "  INSERT INTO _floor_candidates (record_id)\n"
    "  SELECT cl.record_id FROM bench_floor.cursor fc\n"
    "    JOIN tandem.change_log cl ON cl.xid_order >= pg_snapshot_xmin(fc.snapshot)::text::bigint\n"
    "         AND cl.xid >= pg_snapshot_xmin(fc.snapshot) AND NOT pg_visible_in_snapshot(cl.xid, fc.snapshot)\n"
    "   WHERE fc.id = 1 AND cl.table_oid = 'bench_floor.p'::regclass\n"
    "  ON CONFLICT DO NOTHING;\n"
    "  GET DIAGNOSTICS _n = ROW_COUNT;\n"
    "  IF _n = 0 THEN RETURN 0; END IF;\n"
    "  INSERT INTO tandem._applying (xid) VALUES (pg_current_xact_id());\n"
    "  PERFORM set_config('synchronous_commit', 'off', true);\n"
    "  WITH written AS (\n"
    "    UPDATE bench_floor.c c SET phone = p.phone\n"
    "      FROM _floor_candidates x\n"
    "      JOIN bench_floor.links l ON l.p_id = x.record_id\n"
    "      JOIN bench_floor.p p ON p.id = l.p_id::bigint\n"
    "     WHERE c.id = l.c_id::bigint\n"
    "    RETURNING l.link_id, c.phone)\n"
    "  UPDATE bench_floor.mirrors m SET hashes = ARRAY[hashtextextended(w.phone, 0)]\n"
    "    FROM written w WHERE m.link_id = w.link_id;\n"
    "  UPDATE bench_floor.cursor SET snapshot = _current WHERE id = 1;\n"
    "  DELETE FROM tandem.change_log cl\n"
    "   WHERE cl.table_oid = 'bench_floor.p'::regclass AND cl.xid_order < pg_snapshot_xmin(_current)::text::bigint;\n"
    "  DELETE FROM tandem._applying WHERE xid = pg_current_xact_id();\n"
    "  RETURN _n;\n"
    "END\n"
    "$floor$;\n";

/* Listed as a follower that is not awake, as an idle engine is: the capture
 * triggers notify. The same transaction shape as the engine's changeFollowers. */
static const char *follower_sql =
    "BEGIN;\n"
    "LOCK TABLE tandem._followers IN SHARE ROW EXCLUSIVE MODE;\n"
    "INSERT INTO tandem._followers (backend_pid) VALUES (pg_backend_pid())\n"
    "  ON CONFLICT (backend_pid) DO UPDATE SET awake = false;\n"
    "SELECT setval('tandem._sleeping_followers', (SELECT count(*) FROM tandem._followers WHERE NOT awake), true);\n"
    "COMMIT;\n";
static const char *leave_sql =
    "BEGIN;\n"
    "LOCK TABLE tandem._followers IN SHARE ROW EXCLUSIVE MODE;\n"
    "DELETE FROM tandem._followers WHERE backend_pid = pg_backend_pid();\n"
    "SELECT setval('tandem._sleeping_followers', (SELECT count(*) FROM tandem._followers WHERE NOT awake), true);\n"
    "COMMIT;\n";

struct follower {
    const char *conninfo;
    atomic_int ready, stop;
    double *pass_ms;
    int pass_capacity, passes;
    char error[512];
};

static void *follow(void *arg) {
    struct follower *f = arg;
    PGconn *conn = PQconnectdb(f->conninfo);
    if (PQstatus(conn) != CONNECTION_OK) die("follower connect", PQerrorMessage(conn));
    exec_ok(conn, "SET application_name = 'tandem-bench-floor'", "follower settings");
    exec_ok(conn, pass_sql, "create the floor pass");
    exec_ok(conn, "LISTEN tandem", "listen");
    exec_ok(conn, follower_sql, "join the followers");
    exec_ok(conn, "SELECT pg_temp.floor_pass()", "first pass");
    atomic_store(&f->ready, 1);
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&p, 1, 100) < 0 && errno != EINTR) die("poll", strerror(errno));
        if (!PQconsumeInput(conn)) die("follower connection", PQerrorMessage(conn));
        int notified = 0;
        PGnotify *n;
        while ((n = PQnotifies(conn))) {
            notified = 1;
            PQfreemem(n);
        }
        if (!notified) continue;
        double t0 = now_ms();
        PGresult *res = PQexec(conn, "SELECT pg_temp.floor_pass()");
        if (PQresultStatus(res) != PGRES_TUPLES_OK) die("floor pass", PQerrorMessage(conn));
        int copied = atoi(PQgetvalue(res, 0, 0)) > 0;
        PQclear(res);
        if (copied && f->passes < f->pass_capacity) f->pass_ms[f->passes++] = now_ms() - t0;
    }
    exec_ok(conn, leave_sql, "leave the followers");
    PQfinish(conn);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor_latency CONNINFO [--edits N] [--warmup N] [--pause-ms P] [--rows R] [--timeout-ms T]\n");
        return 2;
    }
    const char *conninfo = argv[1];
    int edits = 1000, warmup = 20, pause_ms = 0, rows = 10000;
    double timeout_ms = 10000;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--edits")) edits = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pause-ms")) pause_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout-ms")) timeout_ms = atof(argv[i + 1]);
        else die("unknown option", argv[i]);
    }
    if (edits < 1 || rows < 1) die("--edits and --rows", "must be at least 1");

    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) die("connect", PQerrorMessage(conn));
    exec_ok(conn, "SET application_name = 'tandem-bench-floor'", "settings");
    exec_ok(conn, "SET client_min_messages = warning", "settings");
    char setup[4096];
    snprintf(setup, sizeof setup, setup_sql, rows);
    exec_ok(conn, setup, "set up bench_floor");

    PGresult *pairs = PQexec(conn, "SELECT p_id, c_id FROM bench_floor.links ORDER BY random()");
    if (PQresultStatus(pairs) != PGRES_TUPLES_OK || PQntuples(pairs) == 0) die("pick records", PQerrorMessage(conn));
    int available = PQntuples(pairs);
    PGresult *res = PQprepare(conn, "upd", "UPDATE bench_floor.p SET phone = $1 WHERE id = $2::bigint", 2, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) die("prepare update", PQerrorMessage(conn));
    PQclear(res);
    res = PQprepare(conn, "chk", "SELECT 1 FROM bench_floor.c WHERE id = $1::bigint AND phone = $2", 2, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) die("prepare check", PQerrorMessage(conn));
    PQclear(res);

    int total = edits + warmup;
    struct follower f = {.conninfo = conninfo, .pass_capacity = total + 16};
    f.pass_ms = calloc((size_t)f.pass_capacity, sizeof *f.pass_ms);
    double *samples = calloc((size_t)edits, sizeof *samples);
    if (!f.pass_ms || !samples) die("calloc", "out of memory");
    pthread_t thread;
    if (pthread_create(&thread, NULL, follow, &f) != 0) die("pthread_create", strerror(errno));
    for (int spin = 0; !atomic_load(&f.ready); spin++) {
        if (spin > 30000) die("follower", "not ready within 30 s");
        usleep(1000);
    }

    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    int measured = 0, failures = 0;
    for (int i = 0; i < total; i++) {
        const char *pid = PQgetvalue(pairs, i % available, 0);
        const char *cid = PQgetvalue(pairs, i % available, 1);
        char phone[64];
        snprintf(phone, sizeof phone, "+1 557 %u-%d", seed, i);
        const char *up[2] = {phone, pid};
        const char *cp[2] = {cid, phone};
        if (pause_ms > 0) usleep((useconds_t)(pause_ms * 1000 + rand_r(&seed) % (pause_ms * 1000 + 1)));
        double t0 = now_ms(), t1 = t0;
        res = PQexecPrepared(conn, "upd", 2, up, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(res), "1") != 0) die("update", PQerrorMessage(conn));
        PQclear(res);
        int seen = 0;
        while (!seen) {
            res = PQexecPrepared(conn, "chk", 2, cp, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) die("check", PQerrorMessage(conn));
            seen = PQntuples(res) == 1;
            PQclear(res);
            t1 = now_ms();
            if (!seen && t1 - t0 > timeout_ms) break;
        }
        if (i < warmup) continue;
        if (!seen) { failures++; continue; }
        samples[measured++] = t1 - t0;
    }
    atomic_store(&f.stop, 1);
    pthread_join(thread, NULL);

    exec_ok(conn, "SELECT tandem._remove_capture('bench_floor.p'), tandem._remove_capture('bench_floor.c')", "remove capture");
    exec_ok(conn, "DROP SCHEMA bench_floor CASCADE", "drop bench_floor");

    printf("edits=%d\nwarmup=%d\npause_ms=%d\nrows=%d\nfailures=%d\n", edits, warmup, pause_ms, rows, failures);
    bench_report("floor", samples, measured);
    bench_report("pass", f.pass_ms, f.passes);
    PQclear(pairs);
    PQfinish(conn);
    free(samples);
    free(f.pass_ms);
    return failures ? 3 : 0;
}
