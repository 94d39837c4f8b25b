/*
 * bench/edit_latency.c — single-edit latency for a note and for a deal
 * (the other tabs): how long from an UPDATE in one app until it is visible in
 * the other, with a host following changes (tandem_run on a thread).
 *
 *   edit_latency CONNINFO note|deal [--edits N]
 *
 * note: UPDATE pipeline.notes SET note_content = <unique> -> crm.notes
 * deal: UPDATE crm.deals SET amount = <unique> (and the next stage) -> pipeline.pipeline_records
 * Every tab must be active. Prints key=value lines (milliseconds).
 */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tandem.h"

#define BENCH_PROGRAM "edit_latency"
#include "bench.h"

static void *follow(void *handle) {
    int rc = tandem_run((tandem *)handle);
    if (rc != TANDEM_OK) fprintf(stderr, "edit_latency: tandem_run: %s\n", tandem_errmsg((tandem *)handle));
    return NULL;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[2], "note") && strcmp(argv[2], "deal")))
        die("usage", "edit_latency CONNINFO note|deal [--edits N]");
    int edits = 200;
    if (argc >= 5 && !strcmp(argv[3], "--edits")) edits = atoi(argv[4]);
    int note = !strcmp(argv[2], "note");

    tandem *db = NULL;
    char *error = NULL;
    if (tandem_open(argv[1], &db, &error) != TANDEM_OK) die("tandem_open", error);
    if (tandem_attach(db, "default") != TANDEM_OK) die("tandem_attach", tandem_errmsg(db));
    pthread_t thread;
    pthread_create(&thread, NULL, follow, db);

    PGconn *sql = PQconnectdb(argv[1]);
    if (PQstatus(sql) != CONNECTION_OK) die("connect", PQerrorMessage(sql));
    /* Linked records of the module, with both ids. */
    PGresult *pairs = PQexec(sql, note
        ? "SELECT pipeline_id, crm_id FROM tandem.links WHERE module = 'notes' ORDER BY random() LIMIT 2000"
        : "SELECT l.pipeline_id, l.crm_id FROM tandem.links l JOIN crm.deals d ON d.id = l.crm_id::bigint"
          " WHERE l.module = 'deals' AND d.pipeline = 'Standard' ORDER BY random() LIMIT 2000");
    if (PQresultStatus(pairs) != PGRES_TUPLES_OK || PQntuples(pairs) == 0) die("no linked records", PQerrorMessage(sql));
    static const char *stages[] = {"Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"};
    static const char *mapped[] = {"Qualification", "Needs Identified", "Proposal/Price Quote", "Negotiation/Review"};
    double *samples = calloc((size_t)edits, sizeof(double));
    int missed = 0;
    usleep(300000);
    for (int i = 0; i < edits + 10; i++) {
        int row = i % PQntuples(pairs);
        const char *pipeline_id = PQgetvalue(pairs, row, 0), *crm_id = PQgetvalue(pairs, row, 1);
        char value[64];
        snprintf(value, sizeof value, note ? "bench note %d-%ld" : "%d.%02ld", i, note ? random() : random() % 100);
        const char *stage = stages[i % 4], *expected_stage = mapped[i % 4];
        usleep(10000 + (useconds_t)(random() % 10000));  /* independent edits, not a burst */
        double started = now_ms();
        PGresult *r;
        if (note) {
            const char *params[] = {value, pipeline_id};
            r = PQexecParams(sql, "UPDATE pipeline.notes SET note_content = $1 WHERE id = $2::bigint", 2, NULL, params, NULL, NULL, 0);
        } else {
            const char *params[] = {value, stage, crm_id};
            r = PQexecParams(sql, "UPDATE crm.deals SET amount = $1::numeric, stage = $2 WHERE id = $3::bigint", 3, NULL, params, NULL, NULL, 0);
        }
        if (PQresultStatus(r) != PGRES_COMMAND_OK) die("update", PQerrorMessage(sql));
        PQclear(r);
        int seen = 0;
        while (now_ms() - started < 5000) {
            if (note) {
                const char *params[] = {crm_id, value};
                r = PQexecParams(sql, "SELECT 1 FROM crm.notes WHERE id = $1::bigint AND note_content = $2", 2, NULL, params, NULL, NULL, 0);
            } else {
                const char *params[] = {pipeline_id, value, expected_stage};
                r = PQexecParams(sql, "SELECT 1 FROM pipeline.pipeline_records WHERE id = $1::bigint AND amount = $2::numeric AND stage = $3",
                                 3, NULL, params, NULL, NULL, 0);
            }
            seen = PQntuples(r) == 1;
            PQclear(r);
            if (seen) break;
            usleep(100);
        }
        if (i >= 10) {  /* the first ten warm up */
            if (seen) samples[i - 10] = now_ms() - started; else { samples[i - 10] = 5000; missed++; }
        }
    }
    tandem_stop(db);
    pthread_join(thread, NULL);
    /* Baseline, engine stopped: the same UPDATE and one SELECT, no sync. */
    double base[50];
    for (int i = 0; i < 50; i++) {
        const char *pipeline_id = PQgetvalue(pairs, i % PQntuples(pairs), 0), *crm_id = PQgetvalue(pairs, i % PQntuples(pairs), 1);
        double started = now_ms();
        PGresult *r;
        if (note) {
            const char *params[] = {"baseline", pipeline_id};
            r = PQexecParams(sql, "UPDATE pipeline.notes SET note_content = $1 WHERE id = $2::bigint", 2, NULL, params, NULL, NULL, 0);
            PQclear(r);
            const char *check[] = {crm_id, "baseline"};
            r = PQexecParams(sql, "SELECT 1 FROM crm.notes WHERE id = $1::bigint AND note_content = $2", 2, NULL, check, NULL, NULL, 0);
        } else {
            const char *params[] = {"1.00", crm_id};
            r = PQexecParams(sql, "UPDATE crm.deals SET amount = $1::numeric WHERE id = $2::bigint", 2, NULL, params, NULL, NULL, 0);
            PQclear(r);
            const char *check[] = {pipeline_id, "1.00"};
            r = PQexecParams(sql, "SELECT 1 FROM pipeline.pipeline_records WHERE id = $1::bigint AND amount = $2::numeric", 2, NULL, check, NULL, NULL, 0);
        }
        PQclear(r);
        base[i] = now_ms() - started;
    }
    qsort(base, 50, sizeof(double), compare);
    qsort(samples, (size_t)edits, sizeof(double), compare);
    printf("kind=%s\nedits=%d\nmissed=%d\np50=%.3f\np90=%.3f\np99=%.3f\nmax=%.3f\nbaseline_p50=%.3f\n", argv[2], edits, missed,
           samples[edits / 2], samples[edits * 9 / 10], samples[edits * 99 / 100], samples[edits - 1], base[25]);
    PQclear(pairs);
    PQfinish(sql);
    tandem_close(db);
    free(samples);
    return 0;
}
