/*
 * bench/latency.c — benchmark (c): a single-row edit in the pipeline app,
 * how long until it is visible in the CRM app.
 *
 *   latency CONNINFO [--edits N] [--warmup N] [--poll-us U] [--pause-ms P] [--timeout-ms T]
 *
 * The contacts_companies tab must be active and its initial sync complete.
 * A thread runs tandem_run() on an attached handle (LISTEN/NOTIFY-driven, as a
 * host would). The main thread, over its own libpq connection (autocommit):
 *   1. UPDATE pipeline.contacts SET phone = <unique value> WHERE id = <id>
 *   2. SELECT 1 FROM crm.contacts WHERE id = <linked id> AND phone = <value>,
 *      again and again (a tight loop unless --poll-us) until it matches.
 * The time from before the UPDATE to the matching SELECT is one sample.
 * N edits on N different linked contacts drawn at random. By default each
 * edit follows the previous one at once (back to back); with --pause-ms P the
 * main thread first sleeps a random P..2P ms, so that edits arrive while the
 * engine is idle, as independent edits by people would.
 *
 * The engine's own view is recorded too: its event callback notes when a
 * sync_pass event that updated a CRM record arrives (events are emitted after
 * the pass committed), which gives the edit -> committed-on-the-other-side time
 * without the polling's own cost ("engine_*" figures).
 *
 * Then the engine is stopped and the baseline is measured on the same
 * contacts: the same UPDATE followed by one SELECT, no sync.
 *
 * Output: key=value lines (times in milliseconds), read by bench/run.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tandem.h"

#define BENCH_PROGRAM "latency"
#include "bench.h"

static PGresult *check(PGconn *conn, PGresult *res, ExecStatusType want, const char *what) {
    if (PQresultStatus(res) != want) {
        fprintf(stderr, "latency: %s: %s", what, PQerrorMessage(conn));
        exit(1);
    }
    return res;
}

/* Set by the event callback (engine thread), read by the main thread. */
static _Atomic long pass_events;
static _Atomic double pass_event_ms;

static void on_event(void *context, const char *json) {
    (void)context;
    if (!strstr(json, "\"type\":\"sync_pass\"")) return;
    const char *u = strstr(json, "\"updated_in_crm\":");
    if (!u || atol(u + strlen("\"updated_in_crm\":")) < 1) return;
    atomic_store(&pass_event_ms, now_ms());
    atomic_fetch_add(&pass_events, 1);
}

struct runner {
    tandem *db;
    int rc;
    char message[512];
};

static void *run_engine(void *arg) {
    struct runner *r = arg;
    r->rc = tandem_run(r->db);
    if (r->rc != TANDEM_OK) snprintf(r->message, sizeof r->message, "%s", tandem_errmsg(r->db));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: latency CONNINFO [--edits N] [--warmup N] [--poll-us U] [--pause-ms P] [--timeout-ms T]\n");
        return 2;
    }
    const char *conninfo = argv[1];
    int edits = 1000, warmup = 20, poll_us = 0, pause_ms = 0;
    double timeout_ms = 10000;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--edits")) edits = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--warmup")) warmup = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--poll-us")) poll_us = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pause-ms")) pause_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout-ms")) timeout_ms = atof(argv[i + 1]);
        else die("unknown option", argv[i]);
    }
    if (edits < 1) die("--edits", "must be at least 1");

    /* The engine, on its own thread. */
    tandem *db = NULL;
    char *err = NULL;
    if (tandem_open(conninfo, &db, &err) != TANDEM_OK) die("tandem_open", err);
    if (tandem_attach(db, "default") != TANDEM_OK) die("tandem_attach", tandem_errmsg(db));
    if (tandem_set_event_callback(db, on_event, NULL) != TANDEM_OK) die("tandem_set_event_callback", tandem_errmsg(db));

    /* Our own connection, as the pipeline app. */
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) die("connect", PQerrorMessage(conn));
    PQclear(check(conn, PQexec(conn, "SET application_name = 'tandem-bench-latency'"), PGRES_COMMAND_OK, "set"));

    /* Linked contacts, drawn at random (distinct), that exist on both sides. */
    int total = edits + warmup;
    char limit[32];
    snprintf(limit, sizeof limit, "%d", total);
    const char *pick_params[1] = {limit};
    PGresult *pairs = check(conn, PQexecParams(conn,
        "SELECT l.pipeline_id, l.crm_id FROM tandem.links l"
        " WHERE l.module = 'contacts' AND l.pipeline_deleted_at IS NULL AND l.crm_deleted_at IS NULL"
        " ORDER BY random() LIMIT $1::int",
        1, NULL, pick_params, NULL, NULL, 0), PGRES_TUPLES_OK, "pick contacts");
    int available = PQntuples(pairs);
    if (available < total) {
        fprintf(stderr, "latency: only %d linked contacts; using them round-robin\n", available);
        if (available == 0) die("pick contacts", "no linked contacts: activate and sync contacts_companies first");
    }

    PQclear(check(conn, PQprepare(conn, "upd", "UPDATE pipeline.contacts SET phone = $1 WHERE id = $2::bigint", 2, NULL),
                  PGRES_COMMAND_OK, "prepare update"));
    PQclear(check(conn, PQprepare(conn, "chk", "SELECT 1 FROM crm.contacts WHERE id = $1::bigint AND phone = $2", 2, NULL),
                  PGRES_COMMAND_OK, "prepare check"));

    struct runner runner = {.db = db, .rc = 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_engine, &runner) != 0) die("pthread_create", strerror(errno));
    usleep(500 * 1000); /* let the engine catch up and go idle */

    double *samples = calloc((size_t)edits, sizeof *samples);
    double *base = calloc((size_t)edits, sizeof *base);
    double *engine = calloc((size_t)edits, sizeof *engine);
    if (!samples || !base || !engine) die("calloc", "out of memory");
    int engine_measured = 0;
    long polls = 0;
    int failures = 0, measured = 0;
    unsigned nonce = (unsigned)time(NULL) ^ (unsigned)getpid();
    unsigned seed = nonce;

    for (int i = 0; i < total; i++) {
        const char *pid = PQgetvalue(pairs, i % available, 0);
        const char *cid = PQgetvalue(pairs, i % available, 1);
        char phone[64];
        snprintf(phone, sizeof phone, "+1 555 %u-%d", nonce, i);
        const char *up[2] = {phone, pid};
        const char *cp[2] = {cid, phone};
        if (pause_ms > 0) usleep((useconds_t)(pause_ms * 1000 + rand_r(&seed) % (pause_ms * 1000 + 1)));

        long events_before = atomic_load(&pass_events);
        double t0 = now_ms();
        PGresult *res = check(conn, PQexecPrepared(conn, "upd", 2, up, NULL, NULL, 0), PGRES_COMMAND_OK, "update");
        if (strcmp(PQcmdTuples(res), "1") != 0) die("update", "did not update one row");
        PQclear(res);
        int seen = 0;
        double t1 = t0;
        while (!seen) {
            res = check(conn, PQexecPrepared(conn, "chk", 2, cp, NULL, NULL, 0), PGRES_TUPLES_OK, "check");
            seen = PQntuples(res) == 1;
            PQclear(res);
            polls++;
            t1 = now_ms();
            if (!seen && t1 - t0 > timeout_ms) break;
            if (!seen && poll_us > 0) usleep((useconds_t)poll_us);
        }
        if (i < warmup) continue;
        if (!seen) { failures++; continue; }
        samples[measured++] = t1 - t0;
        /* The pass that wrote it has committed; its event may trail the poll by a moment. */
        for (int spin = 0; spin < 2000 && atomic_load(&pass_events) == events_before; spin++) usleep(50);
        if (atomic_load(&pass_events) > events_before) engine[engine_measured++] = atomic_load(&pass_event_ms) - t0;
    }

    tandem_stop(db);
    pthread_join(thread, NULL);
    if (runner.rc != TANDEM_OK) die("tandem_run", runner.message);

    /* Baseline: the same UPDATE plus one SELECT, with no engine running. */
    for (int i = 0; i < edits; i++) {
        int row = (warmup + i) % available;
        const char *pid = PQgetvalue(pairs, row, 0);
        const char *cid = PQgetvalue(pairs, row, 1);
        char phone[64];
        snprintf(phone, sizeof phone, "+1 556 %u-%d", nonce, i);
        const char *up[2] = {phone, pid};
        const char *cp[2] = {cid, phone};
        double t0 = now_ms();
        PQclear(check(conn, PQexecPrepared(conn, "upd", 2, up, NULL, NULL, 0), PGRES_COMMAND_OK, "baseline update"));
        PQclear(check(conn, PQexecPrepared(conn, "chk", 2, cp, NULL, NULL, 0), PGRES_TUPLES_OK, "baseline check"));
        base[i] = now_ms() - t0;
    }

    printf("edits=%d\nwarmup=%d\npoll_us=%d\npause_ms=%d\nfailures=%d\npolls_per_edit=%.1f\n",
           edits, warmup, poll_us, pause_ms, failures, (double)polls / total);
    bench_report("latency", samples, measured);
    bench_report("engine", engine, engine_measured);
    bench_report("baseline", base, edits);

    PQclear(pairs);
    PQfinish(conn);
    tandem_close(db);
    free(samples);
    free(base);
    free(engine);
    return failures ? 3 : 0;
}
