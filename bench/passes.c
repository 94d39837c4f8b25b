/*
 * bench/passes.c — benchmark (b): the cost of one sync pass over a synced tab.
 *
 *   passes CONNINFO [--idle N] [--changes M]
 *
 * On an attached handle (contacts_companies active and synced):
 *   - N idle passes: tandem_sync() with nothing changed, each timed;
 *   - M one-change passes: over a separate libpq connection, one linked
 *     pipeline contact gets a new phone (committed), then one tandem_sync()
 *     is timed; it must write exactly one record (the CRM twin).
 * Output: key=value lines (milliseconds), read by bench/run.
 */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "tandem.h"

#define BENCH_PROGRAM "passes"
#include "bench.h"

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *prefix, double *v, int n) {
    qsort(v, n, sizeof *v, compare);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    printf("%s_n=%d\n%s_min_ms=%.3f\n%s_median_ms=%.3f\n%s_mean_ms=%.3f\n%s_max_ms=%.3f\n",
           prefix, n, prefix, n ? v[0] : 0, prefix, n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0,
           prefix, n ? sum / n : 0, prefix, n ? v[n - 1] : 0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: passes CONNINFO [--idle N] [--changes M]\n");
        return 2;
    }
    const char *conninfo = argv[1];
    int idle = 30, changes = 30;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--idle")) idle = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--changes")) changes = atoi(argv[i + 1]);
        else die("unknown option", argv[i]);
    }

    tandem *db = NULL;
    char *err = NULL;
    if (tandem_open(conninfo, &db, &err) != TANDEM_OK) die("tandem_open", err);
    if (tandem_attach(db, "default") != TANDEM_OK) die("tandem_attach", tandem_errmsg(db));
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) die("connect", PQerrorMessage(conn));

    char limit[32];
    snprintf(limit, sizeof limit, "%d", changes > 0 ? changes : 1);
    const char *params[1] = {limit};
    PGresult *pairs = PQexecParams(conn,
        "SELECT l.pipeline_id FROM tandem.links l"
        " WHERE l.module = 'contacts' AND l.pipeline_deleted_at IS NULL AND l.crm_deleted_at IS NULL"
        " ORDER BY random() LIMIT $1::int", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(pairs) != PGRES_TUPLES_OK || PQntuples(pairs) == 0) die("pick contacts", PQerrorMessage(conn));

    /* Catch up with anything pending, then warm up. */
    int64_t written = 0;
    for (int i = 0; i < 100; i++) {
        if (tandem_sync(db, &written) != TANDEM_OK) die("tandem_sync", tandem_errmsg(db));
        if (written == 0 && i >= 3) break;
    }

    double *idle_ms = calloc((size_t)(idle > 0 ? idle : 1), sizeof(double));
    double *change_ms = calloc((size_t)(changes > 0 ? changes : 1), sizeof(double));
    for (int i = 0; i < idle; i++) {
        double t0 = now_ms();
        if (tandem_sync(db, &written) != TANDEM_OK) die("tandem_sync", tandem_errmsg(db));
        idle_ms[i] = now_ms() - t0;
        if (written != 0) die("idle pass", "wrote records although nothing changed");
    }

    unsigned nonce = (unsigned)time(NULL) ^ (unsigned)getpid();
    int wrong = 0;
    for (int i = 0; i < changes; i++) {
        char phone[64];
        snprintf(phone, sizeof phone, "+1 557 %u-%d", nonce, i);
        const char *up[2] = {phone, PQgetvalue(pairs, i % PQntuples(pairs), 0)};
        PGresult *res = PQexecParams(conn, "UPDATE pipeline.contacts SET phone = $1 WHERE id = $2::bigint",
                                     2, NULL, up, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) die("update", PQerrorMessage(conn));
        PQclear(res);
        double t0 = now_ms();
        if (tandem_sync(db, &written) != TANDEM_OK) die("tandem_sync", tandem_errmsg(db));
        change_ms[i] = now_ms() - t0;
        if (written != 1) wrong++;
    }

    report("idle", idle_ms, idle);
    report("change", change_ms, changes);
    printf("change_passes_not_writing_one=%d\n", wrong);
    PQclear(pairs);
    PQfinish(conn);
    tandem_close(db);
    free(idle_ms);
    free(change_ms);
    return wrong ? 3 : 0;
}
