/*
 * bench/peer_latency.c — single-edit latency through any replicator: how long
 * from an UPDATE of one row in one database until a poller on another
 * connection sees it. bench/peers runs it for Tandem and for Bucardo alike;
 * the replicator itself runs as its own daemon, not in this process.
 *
 *   peer_latency WRITE_CONNINFO READ_CONNINFO READ_TABLE PAIRS_SQL EDITS [POLL_US]
 *
 * PAIRS_SQL runs on the writer and returns (writer id, reader id) pairs. Each
 * edit sets pipeline.contacts.phone of one writer id to a unique value, then
 * polls `SELECT 1 FROM READ_TABLE WHERE id = <reader id> AND phone = <value>`
 * every POLL_US microseconds (default 500) until it matches or 30 s pass.
 * A random 10–20 ms pause (not counted) comes before each edit, so that each
 * edit reaches an idle replicator. Five warm-up edits are not counted.
 * Prints key=value lines (milliseconds).
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define BENCH_PROGRAM "peer_latency"
#include "bench.h"

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, int n, double p) {
    if (n == 0) return 0;
    int i = (int)(p * (n - 1) + 0.5);
    return sorted[i];
}

int main(int argc, char **argv) {
    if (argc < 6) die("usage", "peer_latency WRITE_CONNINFO READ_CONNINFO READ_TABLE PAIRS_SQL EDITS [POLL_US]");
    const char *table = argv[3];
    int edits = atoi(argv[5]);
    int poll_us = argc > 6 ? atoi(argv[6]) : 500;
    const int warmup = 5;
    if (edits <= 0) die("usage", "EDITS must be positive");

    PGconn *writer = PQconnectdb(argv[1]);
    if (PQstatus(writer) != CONNECTION_OK) die("connect (writer)", PQerrorMessage(writer));
    PGconn *reader = PQconnectdb(argv[2]);
    if (PQstatus(reader) != CONNECTION_OK) die("connect (reader)", PQerrorMessage(reader));

    PGresult *pairs = PQexec(writer, argv[4]);
    if (PQresultStatus(pairs) != PGRES_TUPLES_OK || PQntuples(pairs) == 0) die("no pairs", PQerrorMessage(writer));
    int npairs = PQntuples(pairs);

    PGresult *r = PQprepare(writer, "edit", "UPDATE pipeline.contacts SET phone = $1 WHERE id = $2::bigint", 2, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) die("prepare edit", PQerrorMessage(writer));
    PQclear(r);
    char poll_sql[512];
    snprintf(poll_sql, sizeof poll_sql, "SELECT 1 FROM %s WHERE id = $1::bigint AND phone = $2", table);
    r = PQprepare(reader, "poll", poll_sql, 2, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) die("prepare poll", PQerrorMessage(reader));
    PQclear(r);

    double *latency = calloc((size_t)edits, sizeof *latency);
    int measured = 0, failures = 0;
    long polls = 0;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int e = 0; e < warmup + edits; e++) {
        usleep((useconds_t)(10000 + rand() % 10000));
        int k = rand() % npairs;
        char value[64];
        snprintf(value, sizeof value, "lat-%d-%d-%ld", getpid(), e, (long)(now_ms() * 1000) % 1000000000L);
        const char *edit_params[2] = {value, PQgetvalue(pairs, k, 0)};
        const char *poll_params[2] = {PQgetvalue(pairs, k, 1), value};
        double t0 = now_ms();
        r = PQexecPrepared(writer, "edit", 2, edit_params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdTuples(r), "1")) die("edit", PQerrorMessage(writer));
        PQclear(r);
        int seen = 0;
        double t1 = t0;
        while (!seen) {
            r = PQexecPrepared(reader, "poll", 2, poll_params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK) die("poll", PQerrorMessage(reader));
            seen = PQntuples(r) > 0;
            PQclear(r);
            polls++;
            t1 = now_ms();
            if (!seen) {
                if (t1 - t0 > 30000) break;
                if (poll_us > 0) usleep((useconds_t)poll_us);
            }
        }
        if (e < warmup) continue;
        if (seen) latency[measured++] = t1 - t0;
        else failures++;
    }
    qsort(latency, (size_t)measured, sizeof *latency, compare);
    double sum = 0;
    for (int i = 0; i < measured; i++) sum += latency[i];
    printf("n=%d\nfailures=%d\n", measured, failures);
    printf("p50_ms=%.2f\np90_ms=%.2f\np99_ms=%.2f\nmax_ms=%.2f\nmean_ms=%.2f\n",
           percentile(latency, measured, 0.50), percentile(latency, measured, 0.90),
           percentile(latency, measured, 0.99), measured ? latency[measured - 1] : 0,
           measured ? sum / measured : 0);
    printf("polls_per_edit=%.1f\n", (double)polls / (warmup + edits));
    PQclear(pairs);
    PQfinish(writer);
    PQfinish(reader);
    free(latency);
    return failures ? 3 : 0;
}
