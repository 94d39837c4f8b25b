/*
 * abi_test.c — tests of Tandem's C ABI, through include/tandem.h only.
 *
 *   abi_test CONNINFO
 *
 * CONNINFO names a database the tests may use: they call tandem_install()
 * and create nothing outside the `tandem` schema. The reference apps
 * (sql/apps/pipeline.sql, crm.sql, sample.sql) must be loaded for the checks
 * that configure, run and sync; Tests/abi/run.sh makes such a database.
 *
 * Prints one line per check ("ok - ..." or "FAIL - ...: why") and ends with
 * the line "N passed, N failed". Exits 1 when any check failed.
 *
 * Every check compares against what include/tandem.h promises; where the
 * header leaves a choice open the check says so in a comment and accepts
 * each reading.
 */
#define _POSIX_C_SOURCE 200809L

#include "tandem.h"

#include <libpq-fe.h>

#include <ctype.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Reporting                                                                */
/* ------------------------------------------------------------------------ */

static int passed, failed;

/* Records one check. The detail (printf-style) is printed only on failure. */
static int check(int ok, const char *name, const char *detail_fmt, ...)
{
    if (ok) {
        passed++;
        printf("ok - %s\n", name);
    } else {
        failed++;
        printf("FAIL - %s", name);
        if (detail_fmt && *detail_fmt) {
            va_list ap;
            va_start(ap, detail_fmt);
            fputs(": ", stdout);
            vprintf(detail_fmt, ap);
            va_end(ap);
        }
        putchar('\n');
    }
    fflush(stdout);
    return ok;
}

/* A comment line ("# ..."), never counted; multi-line text stays commented. */
static void note(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
    fputs("# ", stdout);
    for (const char *p = buf; *p; p++) {
        putchar(*p);
        if (*p == '\n') fputs("# ", stdout);
    }
    putchar('\n');
    fflush(stdout);
}

static int finish(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

/* A message for failure details that is never NULL. */
static const char *safe(const char *s) { return s ? s : "(NULL)"; }

/* The handle's message, copied, so that it survives the next call. */
static char last_message[2048];
static const char *copy_errmsg(tandem *db)
{
    const char *m = tandem_errmsg(db);
    snprintf(last_message, sizeof last_message, "%s", safe(m));
    return last_message;
}

/*
 * The core invariant of the error model: a call's result code, the handle's
 * errcode and errmsg agree. After a failure errcode == rc and errmsg is a
 * non-empty message; after success errcode == 0 and errmsg is "". sqlstate
 * is never NULL and is either "" or five characters.
 */
static int check_rc(tandem *db, int rc, int expected, const char *name)
{
    const char *msg = tandem_errmsg(db);
    const char *state = tandem_sqlstate(db);
    int code = tandem_errcode(db);
    char buf[2600];

    if (rc != expected) {
        snprintf(buf, sizeof buf, "returned %d (%s), expected %d (%s); errmsg: %s",
                 rc, tandem_errstr(rc), expected, tandem_errstr(expected), safe(msg));
        return check(0, name, "%s", buf);
    }
    if (code != rc)
        return check(0, name, "returned %d but tandem_errcode() is %d", rc, code);
    if (msg == NULL)
        return check(0, name, "tandem_errmsg() returned NULL");
    if (rc == TANDEM_OK && msg[0] != '\0')
        return check(0, name, "succeeded but tandem_errmsg() is \"%s\"", msg);
    if (rc != TANDEM_OK && msg[0] == '\0')
        return check(0, name, "failed with %d but tandem_errmsg() is empty", rc);
    if (state == NULL)
        return check(0, name, "tandem_sqlstate() returned NULL");
    if (state[0] != '\0' && strlen(state) != 5)
        return check(0, name, "tandem_sqlstate() is \"%s\", neither empty nor 5 characters", state);
    if (rc == TANDEM_OK && state[0] != '\0')
        return check(0, name, "succeeded but tandem_sqlstate() is \"%s\"", state);
    return check(1, name, NULL);
}

/* Like check_rc, but any of two codes will do (where the header allows both). */
static void note(const char *fmt, ...);
static int check_rc2(tandem *db, int rc, int expected1, int expected2, const char *name)
{
    int ok = check_rc(db, rc, rc == expected2 ? expected2 : expected1, name);
    if (ok) note("the library chose %d (%s): %s", rc, tandem_errstr(rc), tandem_errmsg(db));
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static const char DEFAULT_CONFIG[] =
    "{\"pipeline\":{\"acting_user\":\"admin@example.com\"},"
    "\"crm\":{\"acting_user\":\"admin@example.com\"}}";

/* Distinct addresses the library must never write into an out-parameter. */
static char sentinel_storage[2];
#define SENTINEL_STRING ((char *)&sentinel_storage[0])
#define SENTINEL_HANDLE ((tandem *)&sentinel_storage[1])

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A flag one thread raises and another waits for, at most a given time:
 * the tests wait for what they need, never for a guessed time. */
struct latch {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int raised;
};

static void latch_init(struct latch *l)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mutex, NULL);
    pthread_cond_init(&l->cond, &attr);
    pthread_condattr_destroy(&attr);
    l->raised = 0;
}

static void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mutex);
}

static void latch_raise(struct latch *l)
{
    pthread_mutex_lock(&l->mutex);
    l->raised = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mutex);
}

static int latch_is_raised(struct latch *l)
{
    pthread_mutex_lock(&l->mutex);
    int raised = l->raised;
    pthread_mutex_unlock(&l->mutex);
    return raised;
}

/* Waits until the latch is raised or `seconds` have passed; 1 if raised. */
static int latch_wait(struct latch *l, double seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)seconds;
    deadline.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&l->mutex);
    int rc = 0;
    while (!l->raised && rc == 0) rc = pthread_cond_timedwait(&l->cond, &l->mutex, &deadline);
    int raised = l->raised;
    pthread_mutex_unlock(&l->mutex);
    return raised;
}

/* Whether JSON text has `"key"` followed (after blanks and a colon) by `value`. */
static int json_has(const char *json, const char *key, const char *value)
{
    size_t klen = strlen(key);
    const char *p = json;
    while ((p = strstr(p, key)) != NULL) {
        const char *q = p + klen;
        if (p > json && p[-1] == '"' && *q == '"') {
            q++;
            while (isspace((unsigned char)*q)) q++;
            if (*q == ':') {
                q++;
                while (isspace((unsigned char)*q)) q++;
                if (strncmp(q, value, strlen(value)) == 0) return 1;
            }
        }
        p += klen;
    }
    return 0;
}

/* The number of elements of a top-level JSON array, or -1 when the text is
 * not an array. Enough of a parser for counting report rows. */
static long json_array_length(const char *json)
{
    const char *p = json;
    int depth = 0, in_string = 0, any = 0;
    long count = 0;
    while (isspace((unsigned char)*p)) p++;
    if (*p != '[') return -1;
    for (; *p; p++) {
        char c = *p;
        if (in_string) {
            if (c == '\\' && p[1]) p++;
            else if (c == '"') in_string = 0;
            continue;
        }
        if (c == '"') { in_string = 1; if (depth == 1) any = 1; }
        else if (c == '[' || c == '{') { if (depth == 1) any = 1; depth++; }
        else if (c == ']' || c == '}') { depth--; if (depth == 0) return any ? count + 1 : 0; }
        else if (c == ',' && depth == 1) count++;
        else if (depth == 1 && !isspace((unsigned char)c)) any = 1;
    }
    return -1;
}

/* Events seen by the callback, for the sync checks. */
struct events {
    int magic;          /* proves the context pointer is passed through */
    int count;
    int initial_sync_complete;
    int bad_json;       /* an event that was not a JSON object */
    char first[512];
};
#define EVENTS_MAGIC 0x7a4d

static void on_event(void *context, const char *event_json)
{
    struct events *ev = context;
    if (ev == NULL || ev->magic != EVENTS_MAGIC) {
        /* Context not passed through: make the later check fail. */
        return;
    }
    ev->count++;
    if (event_json == NULL || event_json[0] != '{') ev->bad_json++;
    if (event_json && strstr(event_json, "initial_sync_complete")) ev->initial_sync_complete++;
    if (ev->count == 1) snprintf(ev->first, sizeof ev->first, "%s", safe(event_json));
}

/* ------------------------------------------------------------------------ */
/* Checks that need no database                                             */
/* ------------------------------------------------------------------------ */

static void test_version(void)
{
    int n = tandem_libversion_number();
    const char *v = tandem_libversion();
    check(n == TANDEM_VERSION_NUMBER, "version: tandem_libversion_number() == TANDEM_VERSION_NUMBER",
          "library says %d, header says %d", n, TANDEM_VERSION_NUMBER);
    check(v != NULL && strcmp(v, TANDEM_VERSION) == 0, "version: tandem_libversion() == TANDEM_VERSION",
          "library says \"%s\", header says \"%s\"", safe(v), TANDEM_VERSION);
    check(v != NULL && v == tandem_libversion(), "version: tandem_libversion() is one static string",
          "two calls gave different pointers");
}

static void test_errstr(void)
{
    const char *texts[12];
    int ok = 1;
    char why[512] = "";
    for (int code = 0; code <= 11; code++) {
        texts[code] = tandem_errstr(code);
        if (texts[code] == NULL || texts[code][0] == '\0') {
            ok = 0;
            snprintf(why, sizeof why, "tandem_errstr(%d) is %s", code, texts[code] ? "\"\"" : "NULL");
            break;
        }
        for (int other = 0; other < code; other++) {
            if (strcmp(texts[code], texts[other]) == 0) {
                ok = 0;
                snprintf(why, sizeof why, "codes %d and %d share the text \"%s\"", other, code, texts[code]);
            }
        }
    }
    check(ok, "tandem_errstr: codes 0..11 have distinct, non-empty texts", "%s", why);
    check(strcmp(tandem_errstr(TANDEM_CANCELED), "the pass was canceled") == 0, "tandem_errstr(TANDEM_CANCELED)",
          "got \"%s\"", tandem_errstr(TANDEM_CANCELED));
    check((TANDEM_STATE_NOT_BOUND & 0xff) == TANDEM_STATE && (TANDEM_STATE_TAB_NOT_CONFIGURED & 0xff) == TANDEM_STATE
              && TANDEM_STATE_NOT_BOUND != TANDEM_STATE_NOT_INSTALLED,
          "extended codes: the primary code in the low 8 bits, distinct cases", NULL);

    const char *unknown = tandem_errstr(999);
    check(unknown != NULL && unknown[0] != '\0', "tandem_errstr(999) gives non-NULL, non-empty text",
          "got %s", unknown ? "\"\"" : "NULL");
    const char *negative = tandem_errstr(-1);
    check(negative != NULL && negative[0] != '\0', "tandem_errstr(-1) gives non-NULL, non-empty text",
          "got %s", negative ? "\"\"" : "NULL");
    /* The header names the text for unknown codes. */
    check(unknown != NULL && strcmp(unknown, "unknown result code") == 0,
          "tandem_errstr(999) is \"unknown result code\"", "got \"%s\"", safe(unknown));
    check(unknown != NULL && texts[TANDEM_OK] && strcmp(unknown, texts[TANDEM_OK]) != 0,
          "tandem_errstr(999) differs from tandem_errstr(TANDEM_OK)", "both are \"%s\"", safe(unknown));
}

static void dummy_event(void *context, const char *json) { (void)context; (void)json; }

static void test_null_handle(void)
{
    tandem_close(NULL);
    tandem_free(NULL);
    check(1, "NULL: tandem_close(NULL) and tandem_free(NULL) return", NULL);

    char *s = SENTINEL_STRING;
    int64_t changes = 424242;
    int rc;

#define NULL_HANDLE(expr, label)                                                   \
    rc = (expr);                                                                   \
    check(rc == TANDEM_MISUSE, "NULL handle: " label " returns TANDEM_MISUSE",     \
          "returned %d (%s)", rc, tandem_errstr(rc))

    NULL_HANDLE(tandem_install(NULL), "tandem_install");
    NULL_HANDLE(tandem_validate(NULL, DEFAULT_CONFIG), "tandem_validate");
    NULL_HANDLE(tandem_configure(NULL, DEFAULT_CONFIG), "tandem_configure");
    NULL_HANDLE(tandem_attach(NULL, "default"), "tandem_attach");
    {
        int milliseconds = 0;
        NULL_HANDLE(tandem_timeout(NULL, &milliseconds), "tandem_timeout");
    }
    NULL_HANDLE(tandem_activate(NULL, "contacts_companies"), "tandem_activate");
    NULL_HANDLE(tandem_sync(NULL, &changes), "tandem_sync");
    NULL_HANDLE(tandem_sync(NULL, NULL), "tandem_sync(changes NULL)");
    NULL_HANDLE(tandem_process(NULL), "tandem_process");
    NULL_HANDLE(tandem_run(NULL), "tandem_run");
    NULL_HANDLE(tandem_stop(NULL), "tandem_stop");
    NULL_HANDLE(tandem_set_event_callback(NULL, dummy_event, NULL), "tandem_set_event_callback");
    NULL_HANDLE(tandem_set_event_callback(NULL, NULL, NULL), "tandem_set_event_callback(NULL callback)");
    NULL_HANDLE(tandem_status(NULL, &s), "tandem_status");
    NULL_HANDLE(tandem_report(NULL, "runs", 0, &s), "tandem_report");
    NULL_HANDLE(tandem_errcode(NULL), "tandem_errcode");
    NULL_HANDLE(tandem_edit_sync(NULL, "contacts_companies", NULL), "tandem_edit_sync");
    NULL_HANDLE(tandem_deactivate(NULL, "activities"), "tandem_deactivate");
    NULL_HANDLE(tandem_reactivate(NULL, "activities", "latest"), "tandem_reactivate");
    NULL_HANDLE(tandem_remove(NULL, 0), "tandem_remove");
    NULL_HANDLE(tandem_uninstall(NULL), "tandem_uninstall");
    NULL_HANDLE(tandem_set_reconnect_timeout(NULL, 10), "tandem_set_reconnect_timeout");
    {
        tandem_sync_result result = { sizeof result, 4242, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        NULL_HANDLE(tandem_sync_v2(NULL, &result), "tandem_sync_v2");
        check(result.read == 4242 && result.size == sizeof result, "NULL handle: tandem_sync_v2 leaves *result untouched", NULL);
    }
    NULL_HANDLE(tandem_cancel(NULL), "tandem_cancel");
    NULL_HANDLE(tandem_set_log_callback(NULL, NULL, NULL), "tandem_set_log_callback");
    NULL_HANDLE(tandem_set_event_callback_v2(NULL, dummy_event, NULL, NULL), "tandem_set_event_callback_v2");
    NULL_HANDLE(tandem_report_page(NULL, "run_history", NULL, 0, &s), "tandem_report_page");
    NULL_HANDLE(tandem_extended_errcode(NULL), "tandem_extended_errcode");
#undef NULL_HANDLE

    check(s == SENTINEL_STRING, "NULL handle: status/report leave *json_out untouched", "it was overwritten");
    check(changes == 424242, "NULL handle: tandem_sync leaves *changes untouched", "it became %lld",
          (long long)changes);

    int fd = tandem_socket(NULL);
    check(fd == -1, "NULL handle: tandem_socket returns -1", "returned %d", fd);

    const char *m = tandem_errmsg(NULL);
    check(m != NULL, "NULL handle: tandem_errmsg(NULL) is not NULL", NULL);
    const char *st = tandem_sqlstate(NULL);
    check(st != NULL, "NULL handle: tandem_sqlstate(NULL) is not NULL", NULL);
}

static void test_open_failures(const char *good)
{
    tandem *db;
    char *msg;
    int rc;

    /* NULL conninfo */
    db = SENTINEL_HANDLE;
    msg = SENTINEL_STRING;
    rc = tandem_open(NULL, &db, &msg);
    check(rc == TANDEM_MISUSE, "tandem_open(NULL conninfo) returns TANDEM_MISUSE", "returned %d (%s)", rc,
          tandem_errstr(rc));
    check(db == SENTINEL_HANDLE, "tandem_open(NULL conninfo) leaves *out untouched", "it became %p", (void *)db);
    /* "On failure ... *errmsg receives a message" — the MISUSE case too. */
    check(msg != SENTINEL_STRING && msg != NULL && msg[0] != '\0',
          "tandem_open(NULL conninfo) stores a non-empty *errmsg", "got %s",
          msg == SENTINEL_STRING ? "nothing (untouched)" : msg ? "\"\"" : "NULL");
    if (msg != SENTINEL_STRING) tandem_free(msg);

    /* NULL out */
    msg = SENTINEL_STRING;
    rc = tandem_open(good, NULL, &msg);
    check(rc == TANDEM_MISUSE, "tandem_open(NULL out) returns TANDEM_MISUSE", "returned %d (%s)", rc,
          tandem_errstr(rc));
    if (rc == TANDEM_MISUSE)
        check(msg != SENTINEL_STRING && msg != NULL && msg[0] != '\0',
              "tandem_open(NULL out) stores a non-empty *errmsg", NULL);
    if (msg != SENTINEL_STRING) tandem_free(msg);

    /* NULL out and NULL errmsg: must simply not crash. */
    rc = tandem_open(NULL, NULL, NULL);
    check(rc == TANDEM_MISUSE, "tandem_open(NULL, NULL, NULL) returns TANDEM_MISUSE", "returned %d (%s)", rc,
          tandem_errstr(rc));

    static const char *const bad[] = {
        "this is not a conninfo",
        "host=/nonexistent port=1",
        "host=/nonexistent password=s3cret",
        "postgresql://someone:s3cret@/nodb?host=/nonexistent",
        "host=/nonexistent password='s3cret with spaces'",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char name[256];
        db = SENTINEL_HANDLE;
        msg = SENTINEL_STRING;
        rc = tandem_open(bad[i], &db, &msg);
        snprintf(name, sizeof name, "tandem_open(\"%s\") returns TANDEM_CONNECT", bad[i]);
        check(rc == TANDEM_CONNECT, name, "returned %d (%s)", rc, tandem_errstr(rc));
        snprintf(name, sizeof name, "tandem_open(\"%s\") leaves *out untouched", bad[i]);
        check(db == SENTINEL_HANDLE, name, "it became %p", (void *)db);
        if (db != SENTINEL_HANDLE && db != NULL) tandem_close(db);
        snprintf(name, sizeof name, "tandem_open(\"%s\") gives a non-empty message", bad[i]);
        int has_msg = msg != SENTINEL_STRING && msg != NULL && msg[0] != '\0';
        check(has_msg, name, "got %s", msg == SENTINEL_STRING ? "nothing (untouched)" : msg ? "\"\"" : "NULL");
        if (has_msg) {
            note("message: %s", msg);
            snprintf(name, sizeof name, "tandem_open(\"%s\") message does not contain the password", bad[i]);
            check(strstr(msg, "s3cret") == NULL, name, "message: %s", msg);
        }
        if (msg != SENTINEL_STRING) tandem_free(msg);

        /* Same failure without an errmsg out-parameter. */
        db = SENTINEL_HANDLE;
        rc = tandem_open(bad[i], &db, NULL);
        snprintf(name, sizeof name, "tandem_open(\"%s\", errmsg NULL) returns TANDEM_CONNECT", bad[i]);
        check(rc == TANDEM_CONNECT && db == SENTINEL_HANDLE, name, "returned %d (%s), out %s", rc,
              tandem_errstr(rc), db == SENTINEL_HANDLE ? "untouched" : "overwritten");
    }

    /* Invalid UTF-8 in the connection string: a code, never a crash. The header
     * names TANDEM_MISUSE for bad UTF-8 and TANDEM_CONNECT for every other
     * open failure; either reading is accepted here. */
    db = SENTINEL_HANDLE;
    msg = SENTINEL_STRING;
    rc = tandem_open("host=/nonexistent dbname=\xff\xfe", &db, &msg);
    check((rc == TANDEM_MISUSE || rc == TANDEM_CONNECT) && db == SENTINEL_HANDLE,
          "tandem_open(invalid UTF-8) returns TANDEM_MISUSE or TANDEM_CONNECT, *out untouched",
          "returned %d (%s)", rc, tandem_errstr(rc));
    check(msg != SENTINEL_STRING && msg != NULL && msg[0] != '\0', "tandem_open(invalid UTF-8) gives a message",
          NULL);
    if (msg != SENTINEL_STRING) tandem_free(msg);
}

/* ------------------------------------------------------------------------ */
/* Checks on an open handle                                                 */
/* ------------------------------------------------------------------------ */

static tandem *open_or_die(const char *conninfo)
{
    tandem *db = NULL;
    char *msg = NULL;
    int rc = tandem_open(conninfo, &db, &msg);
    if (rc != TANDEM_OK || db == NULL) {
        check(0, "tandem_open(good conninfo)", "%d (%s): %s", rc, tandem_errstr(rc), safe(msg));
        tandem_free(msg);
        finish();
        exit(1);
    }
    return db;
}

static void test_open_close_loop(const char *good)
{
    int ok = 1, i;
    char why[1024] = "";
    for (i = 0; i < 200; i++) {
        tandem *db = NULL;
        char *msg = NULL;
        int rc = tandem_open(good, &db, &msg);
        if (rc != TANDEM_OK || db == NULL) {
            ok = 0;
            snprintf(why, sizeof why, "open %d: %d (%s): %s", i, rc, tandem_errstr(rc), safe(msg));
            tandem_free(msg);
            break;
        }
        tandem_free(msg); /* whatever the library did with it on success */
        if (tandem_errcode(db) != TANDEM_OK || strcmp(tandem_errmsg(db), "") != 0) {
            ok = 0;
            snprintf(why, sizeof why, "fresh handle has errcode %d, errmsg \"%s\"", tandem_errcode(db),
                     tandem_errmsg(db));
        }
        tandem_close(db);
        if (!ok) break;
    }
    check(ok, "200 x tandem_open + tandem_close", "%s", why);
}

static void test_null_arguments(tandem *db)
{
    int rc;
    char *s = SENTINEL_STRING;

    rc = tandem_validate(db, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_validate(db, NULL)");
    rc = tandem_configure(db, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_configure(db, NULL)");
    rc = tandem_attach(db, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_attach(db, NULL)");
    rc = tandem_activate(db, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_activate(db, NULL)");
    rc = tandem_edit_sync(db, NULL, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_edit_sync(db, NULL tab, NULL)");
    rc = tandem_deactivate(db, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_deactivate(db, NULL)");
    rc = tandem_reactivate(db, NULL, "latest");
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_reactivate(db, NULL tab, policy)");
    rc = tandem_reactivate(db, "activities", NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_reactivate(db, tab, NULL policy)");
    rc = tandem_report(db, NULL, 0, &s);
    check_rc(db, rc, TANDEM_MISUSE, "NULL argument: tandem_report(db, NULL name)");
    check(s == SENTINEL_STRING, "NULL argument: tandem_report(db, NULL name) leaves *json_out untouched", NULL);

    rc = tandem_status(db, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL out-param: tandem_status(db, NULL)");
    rc = tandem_report(db, "runs", 0, NULL);
    check_rc(db, rc, TANDEM_MISUSE, "NULL out-param: tandem_report(db, \"runs\", 0, NULL)");
}

static void test_errors_before_configure(tandem *db)
{
    int rc;
    char *s;

    /* R2/"not configured": activating on an unbound handle is out of order. */
    rc = tandem_activate(db, "contacts_companies");
    check_rc2(db, rc, TANDEM_STATE, TANDEM_MISUSE, "tandem_activate before configure: TANDEM_STATE or TANDEM_MISUSE");

    /* After a failure, a successful call resets errcode and errmsg. */
    rc = tandem_install(db);
    check_rc(db, rc, TANDEM_OK, "after an error, a successful call: errcode 0, errmsg \"\"");

    rc = tandem_attach(db, "no-such-integration");
    check_rc(db, rc, TANDEM_NOTFOUND, "tandem_attach(\"no-such-integration\") returns TANDEM_NOTFOUND");

    rc = tandem_attach(db, "\xff\xfe");
    check_rc(db, rc, TANDEM_MISUSE, "tandem_attach(invalid UTF-8) returns TANDEM_MISUSE");
    rc = tandem_activate(db, "\xff\xfe");
    check_rc(db, rc, TANDEM_MISUSE, "tandem_activate(invalid UTF-8) returns TANDEM_MISUSE");

    /* The header does not say what reporting does on an unbound handle; it
     * must at least keep the error model and leave the out-param alone. */
    s = SENTINEL_STRING;
    rc = tandem_status(db, &s);
    if (rc == TANDEM_OK) {
        check_rc(db, rc, TANDEM_OK, "tandem_status before configure: OK (returns JSON)");
        check(s != SENTINEL_STRING && s != NULL && s[0] == '{', "tandem_status before configure: a JSON object",
              "got %s", s == SENTINEL_STRING ? "(untouched)" : safe(s));
        if (s != SENTINEL_STRING) tandem_free(s);
    } else {
        check_rc(db, rc, rc, "tandem_status before configure: fails with a code and message");
        note("the library chose %d (%s): %s", rc, tandem_errstr(rc), tandem_errmsg(db));
        check(s == SENTINEL_STRING, "tandem_status before configure: *json_out untouched on failure", NULL);
    }
}

static void test_bad_json(tandem *db)
{
    static const char *const bad[] = { "{", "[]", "null", "", "{\"pipeline\":", "42", "\"text\"",
                                       "{\"pipeline\":{\"acting_user\":\"admin@example.com\"}}}" };
    char name[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(name, sizeof name, "bad JSON: tandem_validate(\"%s\") returns TANDEM_CONFIG", bad[i]);
        check_rc(db, tandem_validate(db, bad[i]), TANDEM_CONFIG, name);
        snprintf(name, sizeof name, "bad JSON: tandem_configure(\"%s\") returns TANDEM_CONFIG", bad[i]);
        check_rc(db, tandem_configure(db, bad[i]), TANDEM_CONFIG, name);
    }

    /* Bad UTF-8: the header lists it under TANDEM_MISUSE; for JSON text the
     * brief allows TANDEM_CONFIG too. */
    check_rc2(db, tandem_validate(db, "\xff\xfe"), TANDEM_MISUSE, TANDEM_CONFIG,
              "invalid UTF-8: tandem_validate returns TANDEM_MISUSE or TANDEM_CONFIG");
    check_rc2(db, tandem_configure(db, "\xff\xfe"), TANDEM_MISUSE, TANDEM_CONFIG,
              "invalid UTF-8: tandem_configure returns TANDEM_MISUSE or TANDEM_CONFIG");
    check(strcmp(tandem_errmsg(db), "config_json is not valid UTF-8") == 0,
          "invalid UTF-8: the message is \"config_json is not valid UTF-8\" (the CLI refuses a file the same way)",
          "message: %s", tandem_errmsg(db));
    check_rc2(db, tandem_validate(db, "{\"integration\":\"\xff\xfe\"}"), TANDEM_MISUSE, TANDEM_CONFIG,
              "invalid UTF-8 inside a JSON string: tandem_validate returns TANDEM_MISUSE or TANDEM_CONFIG");

    /* A well-formed configuration naming things that do not exist. */
    check_rc(db,
             tandem_validate(db, "{\"pipeline\":{\"schema\":\"no_such_schema_xyz\",\"acting_user\":\"admin@example.com\"},"
                                 "\"crm\":{\"acting_user\":\"admin@example.com\"}}"),
             TANDEM_CONFIG, "tandem_validate with an unknown schema returns TANDEM_CONFIG");
    const char *m = copy_errmsg(db);
    check(strstr(m, "no_such_schema_xyz") != NULL, "the TANDEM_CONFIG message names the unknown schema",
          "message: %s", m);

    /* R5: an acting user who is not Administrator + CEO. The header maps R5 to
     * TANDEM_PERMISSION; for a user that does not exist at all TANDEM_CONFIG is
     * a defensible reading, so both are accepted. */
    check_rc2(db,
              tandem_validate(db, "{\"pipeline\":{\"acting_user\":\"nobody-at-all@example.invalid\"},"
                                  "\"crm\":{\"acting_user\":\"admin@example.com\"}}"),
              TANDEM_PERMISSION, TANDEM_CONFIG, "tandem_validate with an unknown acting user: PERMISSION or CONFIG");

    /* Success resets the error state. */
    check_rc(db, tandem_validate(db, DEFAULT_CONFIG), TANDEM_OK,
             "tandem_validate(default config) after errors: OK, errcode 0, errmsg \"\"");
}

/* Report names are checked on a bound handle (after configure), where the
 * header's TANDEM_NOTFOUND is unambiguous. On an unbound handle (`bound` 0)
 * the header does not say which comes first, the unknown name or the missing
 * integration, so TANDEM_NOTFOUND and TANDEM_STATE are both accepted there. */
static void test_report_errors(tandem *db, int bound)
{
    const char *when = bound ? "bound handle" : "unbound handle";
    char name[256];
    char *s = SENTINEL_STRING;
    int rc = tandem_report(db, "no_such_report", 0, &s);
    snprintf(name, sizeof name, "%s: tandem_report(\"no_such_report\") returns TANDEM_NOTFOUND%s", when,
             bound ? "" : " or TANDEM_STATE");
    if (bound) check_rc(db, rc, TANDEM_NOTFOUND, name);
    else check_rc2(db, rc, TANDEM_NOTFOUND, TANDEM_STATE, name);
    snprintf(name, sizeof name, "%s: tandem_report with a bad name leaves *json_out untouched", when);
    check(s == SENTINEL_STRING, name, NULL);

    s = SENTINEL_STRING;
    rc = tandem_report(db, "\xff\xfe", 0, &s);
    snprintf(name, sizeof name, "%s: tandem_report(invalid UTF-8 name) returns TANDEM_MISUSE", when);
    check_rc(db, rc, TANDEM_MISUSE, name);
    snprintf(name, sizeof name, "%s: tandem_report(invalid UTF-8 name) leaves *json_out untouched", when);
    check(s == SENTINEL_STRING, name, NULL);

    s = SENTINEL_STRING;
    rc = tandem_report(db, "", 0, &s);
    snprintf(name, sizeof name, "%s: tandem_report(\"\") returns TANDEM_NOTFOUND%s", when,
             bound ? "" : " or TANDEM_STATE");
    if (bound) check_rc(db, rc, TANDEM_NOTFOUND, name);
    else check_rc2(db, rc, TANDEM_NOTFOUND, TANDEM_STATE, name);
    snprintf(name, sizeof name, "%s: tandem_report(\"\") leaves *json_out untouched", when);
    check(s == SENTINEL_STRING, name, NULL);
}

/* ------------------------------------------------------------------------ */
/* tandem_stop from another thread                                          */
/* ------------------------------------------------------------------------ */

struct runner {
    tandem *db;
    int rc;
    double returned_at;
    struct latch started; /* the thread is about to call tandem_run */
    struct latch done;    /* tandem_run returned */
};

static void *run_thread(void *arg)
{
    struct runner *r = arg;
    latch_raise(&r->started);
    r->rc = tandem_run(r->db);
    r->returned_at = now_seconds();
    latch_raise(&r->done);
    return NULL;
}

/* Starts tandem_run on a thread, stops it from this one once the thread is
 * running, and expects it back with TANDEM_OK within 5 s. A stop that
 * arrives before tandem_run has begun counts (the header says so), so no
 * guessed delay is needed; stopping a loop that is already waiting is
 * covered by the signal-handler test. Returns 0 when the thread could not
 * be joined (the handle is then unusable). */
static int check_stop_from_thread(tandem *db, const char *label)
{
    struct runner r;
    memset(&r, 0, sizeof r);
    r.db = db;
    r.rc = -1;
    pthread_t thread;
    char name[256];

    latch_init(&r.started);
    latch_init(&r.done);
    if (pthread_create(&thread, NULL, run_thread, &r) != 0) {
        snprintf(name, sizeof name, "%s: start a thread", label);
        check(0, name, "pthread_create failed");
        latch_destroy(&r.started);
        latch_destroy(&r.done);
        return 1;
    }
    if (!latch_wait(&r.started, 5.0)) {
        snprintf(name, sizeof name, "%s: the tandem_run thread starts within 5 s", label);
        check(0, name, "it did not");
    }
    int returned_early = latch_is_raised(&r.done);
    double stop_at = now_seconds();
    int src = tandem_stop(db);

    if (!latch_wait(&r.done, 5.0)) {
        snprintf(name, sizeof name, "%s: tandem_run returns within 5 s of tandem_stop", label);
        check(0, name, "still running after 5 s");
        return 0;
    }
    pthread_join(thread, NULL);
    latch_destroy(&r.started);
    latch_destroy(&r.done);

    snprintf(name, sizeof name, "%s: tandem_stop returns TANDEM_OK", label);
    check(src == TANDEM_OK, name, "returned %d (%s)", src, tandem_errstr(src));
    snprintf(name, sizeof name, "%s: tandem_run had not returned before the stop", label);
    check(!returned_early, name, "tandem_run returned %d (%s) before the stop: %s", r.rc, tandem_errstr(r.rc),
          tandem_errmsg(db));
    snprintf(name, sizeof name, "%s: tandem_run returns TANDEM_OK within 5 s of tandem_stop", label);
    check(r.rc == TANDEM_OK && r.returned_at - stop_at < 5.0, name, "returned %d (%s) after %.2f s: %s", r.rc,
          tandem_errstr(r.rc), r.returned_at - stop_at, tandem_errmsg(db));
    note("%s: tandem_run returned %.3f s after tandem_stop", label, r.returned_at - stop_at);
    return 1;
}

/* tandem_stop from a signal handler: the header calls it signal-safe. The
 * handler runs on whichever thread the kernel picks; tandem_run must notice
 * either way. A watchdog thread ends the process if tandem_run never
 * returns, since the main thread is then stuck inside it. */
static tandem *volatile signal_target;
static volatile sig_atomic_t signal_stop_rc = -1;
static struct latch signal_run_done;

static void on_alarm(int signo)
{
    (void)signo;
    signal_stop_rc = tandem_stop(signal_target);
}

static void *watchdog(void *arg)
{
    (void)arg;
    if (latch_wait(&signal_run_done, 8.0)) return NULL; /* 8 s: 1 s alarm + 5 s + slack */
    check(0, "stop (signal handler): tandem_run returns within 5 s of tandem_stop", "still running after 7 s");
    finish();
    fflush(stdout);
    _exit(1);
}

static void check_stop_from_signal(tandem *db)
{
    struct sigaction sa, old;
    pthread_t dog;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    signal_target = db;
    signal_stop_rc = -1;
    latch_init(&signal_run_done);
    if (sigaction(SIGALRM, &sa, &old) != 0 || pthread_create(&dog, NULL, watchdog, NULL) != 0) {
        check(0, "stop (signal handler): set up", "sigaction or pthread_create failed");
        return;
    }
    alarm(1);
    double started = now_seconds();
    int rc = tandem_run(db);
    double elapsed = now_seconds() - started;
    latch_raise(&signal_run_done);
    alarm(0);
    pthread_join(dog, NULL);
    latch_destroy(&signal_run_done);
    sigaction(SIGALRM, &old, NULL);

    check(signal_stop_rc == TANDEM_OK, "stop (signal handler): tandem_stop returns TANDEM_OK",
          "returned %d", (int)signal_stop_rc);
    check(elapsed >= 0.9, "stop (signal handler): tandem_run was still running when the signal came",
          "it returned %d (%s) after %.2f s: %s", rc, tandem_errstr(rc), elapsed, tandem_errmsg(db));
    check(rc == TANDEM_OK && elapsed < 6.0, "stop (signal handler): tandem_run returns TANDEM_OK within 5 s",
          "returned %d (%s) after %.2f s: %s", rc, tandem_errstr(rc), elapsed, tandem_errmsg(db));
    note("stop (signal handler): tandem_run returned %.3f s after it started (alarm at 1 s)", elapsed);
}

/* ------------------------------------------------------------------------ */
/* Extended result codes, sync_v2, paging, cancel, logging, destructors    */
/* ------------------------------------------------------------------------ */

/* Checks the extended code of the last call on db. */
static int check_extended(tandem *db, int expected, const char *name)
{
    int extended = tandem_extended_errcode(db);
    int primary = tandem_errcode(db);
    return check(extended == expected && (extended & 0xff) == primary, name,
                 "tandem_extended_errcode() is %d (primary %d), expected %d; errmsg: %s", extended, primary, expected,
                 tandem_errmsg(db));
}

/* Before tandem_install: the schema is missing, nothing is bound. */
static void test_extended_before_install(tandem *db)
{
    char *s = SENTINEL_STRING;
    check_rc(db, tandem_set_reconnect_timeout(db, 300), TANDEM_OK, "tandem_set_reconnect_timeout(300)");
    check(tandem_extended_errcode(db) == TANDEM_OK, "after success: tandem_extended_errcode() is TANDEM_OK", NULL);
    check_rc(db, tandem_attach(db, "default"), TANDEM_STATE, "tandem_attach before tandem_install: TANDEM_STATE");
    check_extended(db, TANDEM_STATE_NOT_INSTALLED, "tandem_attach before tandem_install: TANDEM_STATE_NOT_INSTALLED");
    check_rc(db, tandem_configure(db, DEFAULT_CONFIG), TANDEM_STATE, "tandem_configure before tandem_install: TANDEM_STATE");
    check_extended(db, TANDEM_STATE_NOT_INSTALLED, "tandem_configure before tandem_install: TANDEM_STATE_NOT_INSTALLED");
    check_rc(db, tandem_status(db, &s), TANDEM_STATE, "tandem_status on an unbound handle: TANDEM_STATE");
    check_extended(db, TANDEM_STATE_NOT_BOUND, "tandem_status on an unbound handle: TANDEM_STATE_NOT_BOUND");
    check(s == SENTINEL_STRING, "tandem_status on an unbound handle leaves *json_out untouched", NULL);
    check_rc(db, tandem_sync(db, NULL), TANDEM_STATE, "tandem_sync on an unbound handle: TANDEM_STATE");
    check_extended(db, TANDEM_STATE_NOT_BOUND, "tandem_sync on an unbound handle: TANDEM_STATE_NOT_BOUND");
    check_rc(db, tandem_report_page(db, "run_history", NULL, 0, &s), TANDEM_STATE,
             "tandem_report_page on an unbound handle: TANDEM_STATE");
    check_extended(db, TANDEM_STATE_NOT_BOUND, "tandem_report_page on an unbound handle: TANDEM_STATE_NOT_BOUND");
    check_rc(db, tandem_report(db, "no_such_report", 0, &s), TANDEM_NOTFOUND, "an unknown report: TANDEM_NOTFOUND");
    check_extended(db, TANDEM_NOTFOUND, "a failure with no more to say: the extended code is the primary code");
    check_rc(db, tandem_validate(db, "{"), TANDEM_CONFIG, "bad JSON: TANDEM_CONFIG");
    check_extended(db, TANDEM_CONFIG, "TANDEM_CONFIG has no extended case");
}

/* The "next" of a page into buf; NULL when it is null (the last page). */
static const char *json_next(const char *json, char *buf, size_t size)
{
    const char *p = strstr(json, "\"next\":");
    if (p == NULL) return NULL;
    p += strlen("\"next\":");
    while (isspace((unsigned char)*p)) p++;
    if (*p != '"') return NULL;
    p++;
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < size) buf[n++] = *p++;
    buf[n] = '\0';
    return buf;
}

/* The rows array of a page, for json_array_length. */
static const char *page_rows(const char *json)
{
    const char *p = strstr(json, "\"rows\":");
    return p ? p + strlen("\"rows\":") : "";
}

static void test_report_pages(tandem *db)
{
    static const char *const names[] = { "tab_status", "pending_changes", "linked_records", "conflicts", "record_errors",
                                         "run_history", "event_history", "links", "runs", "events" };
    char name[256];
    char *s;
    int rc;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        s = NULL;
        rc = tandem_report(db, names[i], 5, &s);
        snprintf(name, sizeof name, "tandem_report(\"%s\") is accepted", names[i]);
        if (check_rc(db, rc, TANDEM_OK, name)) {
            snprintf(name, sizeof name, "tandem_report(\"%s\", 5) is an array of at most 5 rows", names[i]);
            long n = json_array_length(s);
            check(n >= 0 && n <= 5, name, "got %.200s", safe(s));
            tandem_free(s);
        }
        s = NULL;
        rc = tandem_report_page(db, names[i], NULL, 5, &s);
        snprintf(name, sizeof name, "tandem_report_page(\"%s\") is accepted", names[i]);
        if (check_rc(db, rc, TANDEM_OK, name)) {
            snprintf(name, sizeof name, "tandem_report_page(\"%s\") is {\"rows\":[...],\"next\":...}", names[i]);
            long n = json_array_length(page_rows(s));
            check(strncmp(s, "{\"rows\":[", 9) == 0 && n >= 0 && n <= 5 && strstr(s, "\"next\":") != NULL, name,
                  "got %.300s", safe(s));
            tandem_free(s);
        }
    }

    /* All linked records, 7 a page: the same rows as one big report, in
     * link_id order, none twice. */
    s = NULL;
    long total = -1;
    if (tandem_report(db, "linked_records", 10000, &s) == TANDEM_OK) {
        total = json_array_length(s);
        tandem_free(s);
    }
    char after[4200] = "";
    const char *key = NULL;
    long seen = 0, pages = 0;
    long long previous = -1;
    int ordered = 1, ok = 1;
    char why[2600] = "";
    while (pages < 10000) {
        s = NULL;
        rc = tandem_report_page(db, "linked_records", key, 7, &s);
        if (rc != TANDEM_OK) {
            ok = 0;
            snprintf(why, sizeof why, "page %ld: %d (%s): %s", pages + 1, rc, tandem_errstr(rc), tandem_errmsg(db));
            break;
        }
        pages++;
        long n = json_array_length(page_rows(s));
        if (n < 0 || n > 7) {
            ok = 0;
            snprintf(why, sizeof why, "page %ld has %ld rows: %.300s", pages, n, s);
            tandem_free(s);
            break;
        }
        seen += n;
        for (const char *p = strstr(s, "\"link_id\":"); p; p = strstr(p + 1, "\"link_id\":")) {
            long long id = atoll(p + strlen("\"link_id\":"));
            if (id <= previous) ordered = 0;
            previous = id;
        }
        key = json_next(s, after, sizeof after);
        if (key == NULL && n == 7 && seen < total) {
            ok = 0;
            snprintf(why, sizeof why, "page %ld is full but has no next", pages);
        }
        tandem_free(s);
        if (key == NULL) break;
    }
    check(ok && total > 7 && seen == total, "tandem_report_page: all linked_records, 7 a page, add up to the whole report",
          "%s; %ld rows in %ld pages, report has %ld", why, seen, pages, total);
    check(ordered, "tandem_report_page: rows come in link_id order, none twice", "a link_id repeated or went back");
    note("report pages: %ld linked records in %ld pages of 7", seen, pages);

    /* Keys the library did not make for this report are misuse. */
    static const char *const bad[] = { "", "garbage", "p1.", "p1.!!!!", "p1.WyJsaW5rZWRfcmVjb3JkcyJd",
                                       "p1.WyJsaW5rZWRfcmVjb3JkcyIsImFiYyJd", "p1.WyJydW5faGlzdG9yeSIsIjEiXQ" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = SENTINEL_STRING;
        rc = tandem_report_page(db, "linked_records", bad[i], 7, &s);
        snprintf(name, sizeof name, "tandem_report_page(after \"%s\") returns TANDEM_MISUSE", bad[i]);
        check_rc(db, rc, TANDEM_MISUSE, name);
        snprintf(name, sizeof name, "tandem_report_page(after \"%s\") leaves *json_out untouched", bad[i]);
        check(s == SENTINEL_STRING, name, NULL);
    }
    s = SENTINEL_STRING;
    check_rc(db, tandem_report_page(db, "linked_records", NULL, -1, &s), TANDEM_MISUSE, "tandem_report_page(limit -1): TANDEM_MISUSE");
    check_rc(db, tandem_report_page(db, "no_such_report", NULL, 0, &s), TANDEM_NOTFOUND,
             "tandem_report_page(\"no_such_report\"): TANDEM_NOTFOUND");
    check_rc(db, tandem_report_page(db, "linked_records", NULL, 0, NULL), TANDEM_MISUSE,
             "tandem_report_page(json_out NULL): TANDEM_MISUSE");
    check_rc(db, tandem_report_page(db, NULL, NULL, 0, &s), TANDEM_MISUSE, "tandem_report_page(report NULL): TANDEM_MISUSE");
    check_rc(db, tandem_report_page(db, "\xff\xfe", NULL, 0, &s), TANDEM_MISUSE,
             "tandem_report_page(invalid UTF-8 report): TANDEM_MISUSE");
    check(s == SENTINEL_STRING, "failed tandem_report_page calls leave *json_out untouched", NULL);
}

/* Log lines seen by the callback. */
struct logs {
    int magic;
    atomic_int count;
    atomic_int by_level[5];
    atomic_int leaked;      /* a line with the password or the connection string */
    atomic_int bad_level;
};
#define LOGS_MAGIC 0x10a9
static const char *log_conninfo;

static void on_log(void *context, int level, const char *message)
{
    struct logs *logs = context;
    if (logs == NULL || logs->magic != LOGS_MAGIC) return;
    atomic_fetch_add(&logs->count, 1);
    if (level >= TANDEM_LOG_ERROR && level <= TANDEM_LOG_DEBUG) atomic_fetch_add(&logs->by_level[level], 1);
    else atomic_fetch_add(&logs->bad_level, 1);
    if (message == NULL || strstr(message, "password") || (log_conninfo && strstr(message, log_conninfo)))
        atomic_fetch_add(&logs->leaked, 1);
}

static PGconn *pq_open(const char *conninfo, const char *label)
{
    PGconn *connection = PQconnectdb(conninfo);
    if (PQstatus(connection) != CONNECTION_OK) {
        check(0, label, "libpq: %s", PQerrorMessage(connection));
        PQfinish(connection);
        return NULL;
    }
    return connection;
}

static int pq_exec(PGconn *connection, const char *sql)
{
    PGresult *result = PQexec(connection, sql);
    int ok = PQresultStatus(result) == PGRES_COMMAND_OK || PQresultStatus(result) == PGRES_TUPLES_OK;
    if (!ok) note("libpq: %s: %s", sql, PQerrorMessage(connection));
    PQclear(result);
    return ok;
}

static const char TOUCH_CONTACT[] =
    "UPDATE pipeline.contacts SET title = coalesce(title, '') || '.' WHERE id = (SELECT min(id) FROM pipeline.contacts)";

struct syncer {
    tandem *db;
    int run;            /* tandem_run instead of tandem_sync */
    int rc;
    char sqlstate[8];
    struct latch done;  /* the call returned */
};

static void *sync_thread(void *arg)
{
    struct syncer *r = arg;
    r->rc = r->run ? tandem_run(r->db) : tandem_sync(r->db, NULL);
    snprintf(r->sqlstate, sizeof r->sqlstate, "%s", tandem_sqlstate(r->db));
    latch_raise(&r->done);
    return NULL;
}

static void start_syncer(struct syncer *r, tandem *db, int run)
{
    memset(r, 0, sizeof *r);
    r->db = db;
    r->run = run;
    r->rc = -1;
    latch_init(&r->done);
}

/* Polls a yes/no query (libpq) until it says yes or `seconds` pass: waits
 * for a state, never for a guessed time. */
static int pq_wait_until(PGconn *connection, const char *query, double seconds)
{
    double started = now_seconds();
    for (;;) {
        PGresult *result = PQexec(connection, query);
        int yes = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1
                  && strcmp(PQgetvalue(result, 0, 0), "t") == 0;
        PQclear(result);
        if (yes) return 1;
        if (now_seconds() - started > seconds) return 0;
        struct timespec pause = { 0, 10 * 1000000L };
        nanosleep(&pause, NULL);
    }
}

/* The pass is held up: some session waits for the lock on tandem.runs. */
static const char PASS_WAITS_FOR_LOCK[] =
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'tandem.runs'::regclass AND NOT granted)";

/* A pass held up by a lock is interrupted by tandem_cancel from this thread;
 * it rolls back (B5): the change it read is read again by the next pass. The
 * log callback sees what happened, and nothing secret. */
static int test_cancel(tandem *db, const char *good)
{
    struct logs logs = { LOGS_MAGIC, 0, { 0 }, 0, 0 };
    log_conninfo = good;
    check_rc(db, tandem_set_log_callback(db, on_log, &logs), TANDEM_OK, "tandem_set_log_callback");

    check(tandem_cancel(db) == TANDEM_OK, "tandem_cancel with nothing running returns TANDEM_OK", NULL);
    check_rc(db, tandem_sync(db, NULL), TANDEM_OK, "a cancel while nothing ran is harmless: the next tandem_sync succeeds");

    PGconn *app = pq_open(good, "cancel: an app session (libpq)");
    PGconn *locker = pq_open(good, "cancel: a session that holds a lock (libpq)");
    if (!app || !locker) {
        if (app) PQfinish(app);
        if (locker) PQfinish(locker);
        return 1;
    }

    /* tandem_sync, held up by a lock on tandem.runs, canceled. */
    pq_exec(app, TOUCH_CONTACT);
    pq_exec(locker, "BEGIN");
    pq_exec(locker, "LOCK TABLE tandem.runs IN ACCESS EXCLUSIVE MODE");
    struct syncer r;
    start_syncer(&r, db, 0);
    pthread_t thread;
    if (pthread_create(&thread, NULL, sync_thread, &r) != 0) {
        check(0, "cancel: start a thread", "pthread_create failed");
        PQfinish(app);
        PQfinish(locker);
        return 1;
    }
    check(pq_wait_until(app, PASS_WAITS_FOR_LOCK, 10.0), "cancel: the pass waits for the lock on tandem.runs", NULL);
    int early = latch_is_raised(&r.done);
    double cancel_at = now_seconds();
    int crc = tandem_cancel(db);
    int back = latch_wait(&r.done, 10.0);
    double took = now_seconds() - cancel_at;
    pq_exec(locker, "ROLLBACK");
    if (!back) {
        check(0, "cancel: tandem_sync returns after tandem_cancel", "still running 10 s later");
        latch_wait(&r.done, 60.0);
    }
    pthread_join(thread, NULL);
    latch_destroy(&r.done);
    check(crc == TANDEM_OK, "cancel: tandem_cancel from another thread returns TANDEM_OK", "returned %d", crc);
    check(!early, "cancel: the pass was still running (held up by the lock) when canceled", "returned %d early: %s", r.rc,
          tandem_errmsg(db));
    check(r.rc == TANDEM_CANCELED && took < 5.0, "cancel: the interrupted tandem_sync returns TANDEM_CANCELED within 5 s",
          "returned %d (%s) after %.2f s: %s", r.rc, tandem_errstr(r.rc), took, tandem_errmsg(db));
    check(tandem_errcode(db) == TANDEM_CANCELED && tandem_errmsg(db)[0] != '\0',
          "cancel: tandem_errcode is TANDEM_CANCELED, with a message", "errcode %d", tandem_errcode(db));
    check(strcmp(r.sqlstate, "57014") == 0, "cancel: tandem_sqlstate is 57014 (query_canceled)", "got \"%s\"", r.sqlstate);
    note("cancel: tandem_sync returned %.3f s after tandem_cancel", took);
    {
        tandem_sync_result result = { sizeof result, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1 };
        int rc = tandem_sync_v2(db, &result);
        check_rc(db, rc, TANDEM_OK, "cancel: the next pass succeeds");
        check(result.read >= 1, "cancel: the canceled pass rolled back (B5): the next pass reads its change again",
              "read %lld", (long long)result.read);
        check(result.more == 1, "tandem_sync_v2: more is set after a pass that read changes", "more %d", result.more);
        result.size = sizeof result;
        check_rc(db, tandem_sync_v2(db, &result), TANDEM_OK, "tandem_sync_v2 once caught up");
        check(result.more == 0 && result.read == 0, "tandem_sync_v2: more is 0 once caught up", "more %d, read %lld",
              result.more, (long long)result.read);
    }

    /* tandem_run: a cancel while it waits for changes does nothing... */
    struct syncer runner;
    start_syncer(&runner, db, 1);
    if (pthread_create(&thread, NULL, sync_thread, &runner) != 0) {
        check(0, "cancel: start a thread for tandem_run", "pthread_create failed");
        PQfinish(app);
        PQfinish(locker);
        return 1;
    }
    /* Waiting: its session is idle, listening, outside a transaction. */
    check(pq_wait_until(app, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                             "AND application_name = 'tandem' AND state = 'idle' AND query LIKE 'SELECT ceil(%')", 10.0),
          "cancel: tandem_run is waiting for changes", NULL);
    tandem_cancel(db);
    check(!latch_wait(&runner.done, 0.3), "cancel: a cancel while tandem_run waits for changes does nothing",
          "tandem_run returned %d: %s", runner.rc, tandem_errmsg(db));
    /* ...and one during its pass ends it with TANDEM_CANCELED. */
    pq_exec(locker, "BEGIN");
    pq_exec(locker, "LOCK TABLE tandem.runs IN ACCESS EXCLUSIVE MODE");
    pq_exec(app, TOUCH_CONTACT);
    check(pq_wait_until(app, PASS_WAITS_FOR_LOCK, 10.0), "cancel: tandem_run's pass waits for the lock on tandem.runs", NULL);
    early = latch_is_raised(&runner.done);
    cancel_at = now_seconds();
    tandem_cancel(db);
    back = latch_wait(&runner.done, 10.0);
    took = now_seconds() - cancel_at;
    pq_exec(locker, "ROLLBACK");
    if (!back) {
        check(0, "cancel: tandem_run returns after tandem_cancel during a pass", "still running 10 s later");
        tandem_stop(db);
        if (!latch_wait(&runner.done, 30.0)) return 0;
    }
    pthread_join(thread, NULL);
    latch_destroy(&runner.done);
    check(!early && runner.rc == TANDEM_CANCELED && took < 5.0,
          "cancel: tandem_run returns TANDEM_CANCELED when its pass is canceled",
          "returned %d (%s) after %.2f s%s: %s", runner.rc, tandem_errstr(runner.rc), took, early ? " (early)" : "",
          tandem_errmsg(db));
    {
        tandem_sync_result result = { sizeof result, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1 };
        check_rc(db, tandem_sync_v2(db, &result), TANDEM_OK, "cancel: tandem_sync_v2 after the canceled tandem_run");
        check(result.read >= 1, "cancel: tandem_run's canceled pass rolled back: its change is read again", "read %lld",
              (long long)result.read);
    }
    PQfinish(app);
    PQfinish(locker);

    check(atomic_load(&logs.count) > 0 && atomic_load(&logs.by_level[TANDEM_LOG_INFO]) > 0,
          "log callback: passes are logged at TANDEM_LOG_INFO", "%d lines, %d info", atomic_load(&logs.count),
          atomic_load(&logs.by_level[TANDEM_LOG_INFO]));
    check(atomic_load(&logs.by_level[TANDEM_LOG_DEBUG]) > 0, "log callback: the canceled statement is logged at TANDEM_LOG_DEBUG",
          "%d debug lines", atomic_load(&logs.by_level[TANDEM_LOG_DEBUG]));
    check(atomic_load(&logs.leaked) == 0 && atomic_load(&logs.bad_level) == 0,
          "log callback: no line has the connection string or a password, every level is known",
          "%d leaked, %d bad levels", atomic_load(&logs.leaked), atomic_load(&logs.bad_level));
    check_rc(db, tandem_set_log_callback(db, NULL, NULL), TANDEM_OK, "tandem_set_log_callback(NULL) clears");
    int before = atomic_load(&logs.count);
    check_rc(db, tandem_sync(db, NULL), TANDEM_OK, "tandem_sync after the log callback was cleared");
    check(atomic_load(&logs.count) == before, "log callback: a cleared callback is not called", NULL);
    return 1;
}

/* tandem_sync_v2's size rule. */
static void test_sync_v2_sizes(tandem *db)
{
    tandem_sync_result result;
    memset(&result, 0x5a, sizeof result);
    result.size = 4;
    int rc = tandem_sync_v2(db, &result);
    check_rc(db, rc, TANDEM_MISUSE, "tandem_sync_v2 with result->size too small: TANDEM_MISUSE");
    check(result.size == 4 && result.read == (int64_t)0x5a5a5a5a5a5a5a5aLL, "tandem_sync_v2 failing leaves *result untouched", NULL);
    check_rc(db, tandem_sync_v2(db, NULL), TANDEM_MISUSE, "tandem_sync_v2(db, NULL): TANDEM_MISUSE");

    /* An older, shorter struct (up to `errors`): nothing after it is written. */
    memset(&result, 0x5a, sizeof result);
    result.size = offsetof(tandem_sync_result, errors) + sizeof result.errors;
    rc = tandem_sync_v2(db, &result);
    check_rc(db, rc, TANDEM_OK, "tandem_sync_v2 with a shorter struct");
    check(result.size == offsetof(tandem_sync_result, errors) + sizeof result.errors && result.read == 0 && result.errors == 0,
          "tandem_sync_v2 fills the fields that fit and says how many bytes", "size %zu, read %lld", result.size,
          (long long)result.read);
    check(result.waiting == (int64_t)0x5a5a5a5a5a5a5a5aLL && result.more == 0x5a5a5a5a,
          "tandem_sync_v2 writes nothing beyond result->size", NULL);

    memset(&result, 0x5a, sizeof result);
    result.size = sizeof result;
    check_rc(db, tandem_sync_v2(db, &result), TANDEM_OK, "tandem_sync_v2 with the whole struct");
    check(result.size == sizeof result && result.more == 0 && result.read == 0 && result.deferred == 0,
          "tandem_sync_v2 fills the whole struct on a quiet system", "size %zu, more %d", result.size, result.more);
}

/* The event callback's context and its destructor. */
struct owned {
    int destroyed;
};

static void destroy_owned(void *context) { ((struct owned *)context)->destroyed++; }

static void test_event_destroy(const char *good)
{
    tandem *h = open_or_die(good);
    struct owned a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };
    check_rc(h, tandem_set_event_callback_v2(h, dummy_event, &a, destroy_owned), TANDEM_OK, "tandem_set_event_callback_v2");
    check(a.destroyed == 0, "destroy: not called while the callback is set", NULL);
    check_rc(h, tandem_set_event_callback_v2(h, dummy_event, &b, destroy_owned), TANDEM_OK, "tandem_set_event_callback_v2 again");
    check(a.destroyed == 1 && b.destroyed == 0, "destroy: called once on the replaced context", "a %d, b %d", a.destroyed,
          b.destroyed);
    check_rc(h, tandem_set_event_callback(h, dummy_event, NULL), TANDEM_OK, "tandem_set_event_callback replaces a v2 callback");
    check(b.destroyed == 1, "destroy: called when tandem_set_event_callback replaces the callback", "b %d", b.destroyed);
    check_rc(h, tandem_set_event_callback_v2(h, dummy_event, &c, destroy_owned), TANDEM_OK, "tandem_set_event_callback_v2 (c)");
    check_rc(h, tandem_set_event_callback(h, NULL, NULL), TANDEM_OK, "clearing the callback");
    check(c.destroyed == 1, "destroy: called when the callback is cleared", "c %d", c.destroyed);
    check_rc(h, tandem_set_event_callback_v2(h, NULL, &d, destroy_owned), TANDEM_OK, "tandem_set_event_callback_v2(NULL callback)");
    check(d.destroyed == 1, "destroy: a NULL callback keeps nothing; destroy is called at once", "d %d", d.destroyed);
    check_rc(h, tandem_set_event_callback_v2(h, dummy_event, &e, destroy_owned), TANDEM_OK, "tandem_set_event_callback_v2 (e)");
    tandem_close(h);
    check(e.destroyed == 1, "destroy: called when the handle is closed", "e %d", e.destroyed);
    check(a.destroyed == 1 && b.destroyed == 1 && c.destroyed == 1 && d.destroyed == 1,
          "destroy: each context destroyed exactly once", "a %d b %d c %d d %d", a.destroyed, b.destroyed, c.destroyed,
          d.destroyed);
}

/* ------------------------------------------------------------------------ */
/* A configured handle: configure, stop, a full small sync                  */
/* ------------------------------------------------------------------------ */

static int test_configured(tandem *db, const char *good)
{
    int rc;
    char *s;
    struct events ev = { EVENTS_MAGIC, 0, 0, 0, "" };

    rc = tandem_configure(db, DEFAULT_CONFIG);
    if (!check_rc(db, rc, TANDEM_OK, "tandem_configure(default config)")) return 1;
    check_rc(db, tandem_configure(db, DEFAULT_CONFIG), TANDEM_OK, "tandem_configure again with the same JSON");
    test_report_errors(db, 1);

    int fd = tandem_socket(db);
    check(fd >= 0, "tandem_socket on a configured handle is a descriptor", "returned %d: %s", fd,
          tandem_errmsg(db));
    check(tandem_socket(db) == fd, "tandem_socket returns the same descriptor twice", NULL);

    check_rc(db, tandem_activate(db, "no_such_tab"), TANDEM_NOTFOUND, "tandem_activate(\"no_such_tab\") returns TANDEM_NOTFOUND");
    /* R2: no other tab before Contacts & Companies. */
    check_rc(db, tandem_activate(db, "notes"), TANDEM_STATE,
             "tandem_activate(\"notes\") before contacts_companies returns TANDEM_STATE (R2)");
    check_extended(db, TANDEM_STATE_TAB_NOT_CONFIGURED,
                   "tandem_activate(\"notes\"), not in the configuration: TANDEM_STATE_TAB_NOT_CONFIGURED");
    {
        /* R2 on an integration that has the tab: a second one, removed after. */
        tandem *other = open_or_die(good);
        check_rc(other, tandem_configure(other, "{\"integration\":\"r2\",\"pipeline\":{\"acting_user\":\"admin@example.com\"},"
                                                "\"crm\":{\"acting_user\":\"admin@example.com\"},"
                                                "\"tabs\":{\"contacts_companies\":{},\"notes\":{}}}"),
                 TANDEM_OK, "tandem_configure of a second integration with notes");
        check_rc(other, tandem_activate(other, "notes"), TANDEM_STATE, "tandem_activate(\"notes\") before contacts_companies (R2)");
        check_extended(other, TANDEM_STATE_TAB_ORDER, "tandem_activate(\"notes\") before contacts_companies: TANDEM_STATE_TAB_ORDER");
        check(tandem_errcode(other) == TANDEM_STATE, "the primary code stays TANDEM_STATE", "errcode %d", tandem_errcode(other));
        check_rc(other, tandem_remove(other, 1), TANDEM_OK, "tandem_remove(purge) of the second integration");
        tandem_close(other);
    }

    /* A second handle attaches to the integration configured above. */
    {
        tandem *other = open_or_die(good);
        check_rc(other, tandem_attach(other, "default"), TANDEM_OK, "second handle: tandem_attach(\"default\")");
        tandem_close(other);
    }

    /* tandem_stop from another thread, nothing active yet. */
    if (!check_stop_from_thread(db, "stop (configured, idle)")) return 0;
    check_stop_from_signal(db);

    rc = tandem_set_event_callback(db, on_event, &ev);
    check_rc(db, rc, TANDEM_OK, "tandem_set_event_callback");

    rc = tandem_activate(db, "contacts_companies");
    if (!check_rc(db, rc, TANDEM_OK, "tandem_activate(\"contacts_companies\")")) return 1;

    /* Run the initial sync by hand, a bounded number of passes, until the
     * status says it is complete. A failing tandem_status is its own check;
     * the loop then goes on until the event arrives, so that the sync checks
     * below still say something. */
    int complete = 0, passes = 0, sync_ok = 1, status_ok = 1;
    int64_t total = 0;
    double started = now_seconds();
    char why[2600] = "", status_why[2600] = "";
    while (!complete && passes < 2000 && now_seconds() - started < 120.0) {
        int64_t changes = -1;
        rc = tandem_sync(db, &changes);
        passes++;
        if (rc != TANDEM_OK) {
            sync_ok = 0;
            snprintf(why, sizeof why, "pass %d: %d (%s): %s [sqlstate \"%s\"]", passes, rc, tandem_errstr(rc),
                     tandem_errmsg(db), tandem_sqlstate(db));
            break;
        }
        if (changes < 0) {
            sync_ok = 0;
            snprintf(why, sizeof why, "pass %d: *changes not set (%lld)", passes, (long long)changes);
            break;
        }
        total += changes;
        s = NULL;
        rc = tandem_status(db, &s);
        if (rc != TANDEM_OK || s == NULL) {
            if (status_ok)
                snprintf(status_why, sizeof status_why, "after pass %d: %d (%s): %s [sqlstate \"%s\"]", passes, rc,
                         tandem_errstr(rc), tandem_errmsg(db), tandem_sqlstate(db));
            status_ok = 0;
            if (ev.initial_sync_complete) break;
            continue;
        }
        complete = json_has(s, "initial_sync_complete", "true");
        tandem_free(s);
    }
    check(sync_ok, "tandem_sync passes succeed", "%s", why);
    check(status_ok, "tandem_status succeeds during the initial sync", "%s", status_why);
    check(complete, "tandem_status reports \"initial_sync_complete\":true", "not after %d passes, %.1f s", passes,
          now_seconds() - started);
    note("initial sync: %d passes, %lld records written, %.2f s", passes, (long long)total, now_seconds() - started);
    check(total > 0, "the initial sync wrote records in either app", "total changes %lld", (long long)total);
    check(ev.count > 0 && ev.bad_json == 0, "the event callback received JSON objects", "%d events, %d not objects",
          ev.count, ev.bad_json);
    check(ev.initial_sync_complete > 0, "the event callback received an initial_sync_complete event",
          "%d events, first: %s", ev.count, ev.first);

    s = NULL;
    rc = tandem_status(db, &s);
    if (check_rc(db, rc, TANDEM_OK, "tandem_status after the sync")) {
        check(s != NULL && s[0] == '{', "tandem_status is a JSON object", "got %s", safe(s));
        if (s) note("status: %.400s", s);
        tandem_free(s);
    }

    /* Every named report works and is a JSON array within its limit. */
    static const char *const reports[] = { "tab_status", "pending_changes", "links", "conflicts",
                                           "record_errors", "runs", "events" };
    for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
        char name[128];
        s = SENTINEL_STRING;
        rc = tandem_report(db, reports[i], 0, &s);
        snprintf(name, sizeof name, "tandem_report(\"%s\")", reports[i]);
        if (check_rc(db, rc, TANDEM_OK, name)) {
            long n = s != SENTINEL_STRING && s ? json_array_length(s) : -1;
            snprintf(name, sizeof name, "tandem_report(\"%s\", 0) is a JSON array of at most 100 rows", reports[i]);
            check(n >= 0 && n <= 100, name, "got %.200s", s == SENTINEL_STRING ? "(untouched)" : safe(s));
            if (s != SENTINEL_STRING) tandem_free(s);
        }
    }
    s = NULL;
    rc = tandem_report(db, "links", 2, &s);
    if (check_rc(db, rc, TANDEM_OK, "tandem_report(\"links\", 2)")) {
        long n = s ? json_array_length(s) : -1;
        check(n == 2, "tandem_report(\"links\", 2) has 2 rows (the sync linked more)", "got %ld rows", n);
        tandem_free(s);
    }

    /* Nothing left to do: process and sync are quiet (B4). */
    check_rc(db, tandem_process(db), TANDEM_OK, "tandem_process after the sync");
    {
        /* Every committed change makes the socket readable: an active host
         * with no record errors waits for it alone (B1). */
        int milliseconds = 0;
        check_rc(db, tandem_timeout(db, &milliseconds), TANDEM_OK, "tandem_timeout");
        check(milliseconds == -1, "tandem_timeout: an idle active host waits on the socket alone", "got %d", milliseconds);
        check_rc(db, tandem_timeout(db, NULL), TANDEM_MISUSE, "tandem_timeout(db, NULL)");
    }
    {
        int64_t changes = -1;
        check_rc(db, tandem_sync(db, &changes), TANDEM_OK, "tandem_sync on a quiet system");
        check(changes == 0, "a quiet system writes nothing (B4)", "changes = %lld", (long long)changes);
        check_rc(db, tandem_sync(db, NULL), TANDEM_OK, "tandem_sync(db, NULL changes)");
    }

    /* Contacts & Companies is now active; a second activation must not crash
     * and keeps the error model (OK or STATE are both readings of the header). */
    check_rc2(db, tandem_activate(db, "contacts_companies"), TANDEM_OK, TANDEM_STATE,
              "tandem_activate(\"contacts_companies\") again: OK or TANDEM_STATE");

    /* Clearing the callback, then tandem_stop while following changes. */
    check_rc(db, tandem_set_event_callback(db, NULL, NULL), TANDEM_OK, "tandem_set_event_callback(NULL) clears");
    if (!check_stop_from_thread(db, "stop (after the initial sync)")) return 0;
    /* After a stop the handle remains usable. */
    check_rc(db, tandem_sync(db, NULL), TANDEM_OK, "tandem_sync after tandem_run was stopped");
    return 1;
}

/* The lifecycle (R14-R17) through the C ABI: the refusals, then removal
 * while another handle follows the integration: its tandem_run returns
 * TANDEM_REMOVED. Returns 0 when the following thread never came back. */
static int test_lifecycle(tandem *db, const char *good)
{
    int rc;
    rc = tandem_deactivate(db, "contacts_companies");
    check_rc(db, rc, TANDEM_STATE, "tandem_deactivate(\"contacts_companies\") is refused (R15)");
    check(strstr(tandem_errmsg(db), "R15") != NULL, "the refusal names R15", "errmsg: %s", tandem_errmsg(db));
    rc = tandem_reactivate(db, "contacts_companies", "sometimes");
    check_rc(db, rc, TANDEM_MISUSE, "tandem_reactivate with an unknown policy");
    rc = tandem_reactivate(db, "contacts_companies", "crm_wins");
    check_rc(db, rc, TANDEM_OK, "tandem_reactivate of an active tab leaves it as it is");
    rc = tandem_set_reconnect_timeout(db, -1);
    check_rc(db, rc, TANDEM_MISUSE, "tandem_set_reconnect_timeout(-1) is refused");
    rc = tandem_set_reconnect_timeout(db, 30);
    check_rc(db, rc, TANDEM_OK, "tandem_set_reconnect_timeout(30)");
    rc = tandem_edit_sync(db, "notes", NULL);
    check_rc(db, rc, TANDEM_STATE, "tandem_edit_sync of a tab not set up");
    check_extended(db, TANDEM_STATE_TAB_NOT_CONFIGURED, "tandem_edit_sync of a tab not set up: TANDEM_STATE_TAB_NOT_CONFIGURED");
    check_rc(db, tandem_configure(db, "{\"pipeline\":{\"acting_user\":\"admin@example.com\"},\"crm\":{\"acting_user\":\"admin@example.com\"},"
                                      "\"tabs\":{\"contacts_companies\":{},\"activities\":{}}}"),
             TANDEM_OK, "tandem_configure adds the activities tab");
    rc = tandem_edit_sync(db, "activities", NULL);
    check_rc(db, rc, TANDEM_STATE, "tandem_edit_sync(\"activities\")");
    check_extended(db, TANDEM_STATE_NOT_ALLOWED, "tandem_edit_sync(\"activities\"): TANDEM_STATE_NOT_ALLOWED (R9)");
    rc = tandem_deactivate(db, "activities");
    check_rc(db, rc, TANDEM_STATE, "tandem_deactivate of a tab never activated");
    check_extended(db, TANDEM_STATE_NOT_ACTIVATED, "tandem_deactivate of a tab never activated: TANDEM_STATE_NOT_ACTIVATED");
    if (check_rc(db, tandem_activate(db, "activities"), TANDEM_OK, "tandem_activate(\"activities\")")) {
        /* The initial sync of the tab runs in chunks: more is set while it does. */
        tandem_sync_result result = { sizeof result, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        int passes = 0, first_more = -1;
        do {
            result.size = sizeof result;
            rc = tandem_sync_v2(db, &result);
            if (first_more < 0) first_more = result.more;
            passes++;
        } while (rc == TANDEM_OK && result.more && passes < 1000);
        check(rc == TANDEM_OK && first_more == 1 && result.more == 0,
              "tandem_sync_v2: more while the tab's initial sync runs, then 0", "rc %d, first more %d, last more %d, %d passes",
              rc, first_more, result.more, passes);
        note("activities: initial sync in %d passes of tandem_sync_v2", passes);
        check_rc(db, tandem_deactivate(db, "activities"), TANDEM_OK, "tandem_deactivate(\"activities\")");
        check_rc(db, tandem_activate(db, "activities"), TANDEM_STATE, "tandem_activate of an inactive tab");
        check_extended(db, TANDEM_STATE_INACTIVE, "tandem_activate of an inactive tab: TANDEM_STATE_INACTIVE");
        check_rc(db, tandem_reactivate(db, "activities", "latest"), TANDEM_OK, "tandem_reactivate(\"activities\")");
    }
    rc = tandem_edit_sync(db, "contacts_companies", "{");
    check_rc(db, rc, TANDEM_CONFIG, "tandem_edit_sync with bad JSON");
    rc = tandem_edit_sync(db, "contacts_companies", NULL);
    check_rc(db, rc, TANDEM_OK, "tandem_edit_sync(NULL config) re-scans the views");
    check_rc(db, tandem_sync(db, NULL), TANDEM_OK, "tandem_sync runs the re-scan");

    tandem *follower = open_or_die(good);
    check_rc(follower, tandem_attach(follower, "default"), TANDEM_OK, "a second handle attaches");
    struct runner r;
    memset(&r, 0, sizeof r);
    r.db = follower;
    r.rc = -1;
    latch_init(&r.started);
    latch_init(&r.done);
    pthread_t thread;
    if (pthread_create(&thread, NULL, run_thread, &r) != 0) {
        check(0, "lifecycle: start a following thread", "pthread_create failed");
        latch_destroy(&r.started);
        latch_destroy(&r.done);
        tandem_close(follower);
        return 1;
    }
    latch_wait(&r.started, 10.0);
    rc = tandem_remove(db, 0);
    check_rc(db, rc, TANDEM_OK, "tandem_remove(db, 0)");
    if (!latch_wait(&r.done, 10.0)) {
        check(0, "a host following a removed integration returns within 10 s", "still running");
        tandem_stop(follower);
        if (!latch_wait(&r.done, 10.0)) return 0;
    }
    pthread_join(thread, NULL);
    latch_destroy(&r.started);
    latch_destroy(&r.done);
    check(r.rc == TANDEM_REMOVED, "the following host's tandem_run returns TANDEM_REMOVED", "returned %d (%s): %s",
          r.rc, tandem_errstr(r.rc), tandem_errmsg(follower));
    check(strcmp(tandem_errstr(TANDEM_REMOVED), "the integration was removed") == 0, "tandem_errstr(TANDEM_REMOVED)",
          "%s", tandem_errstr(TANDEM_REMOVED));
    tandem_close(follower);

    check_rc(db, tandem_remove(db, 0), TANDEM_OK, "tandem_remove again is harmless");
    check_rc(db, tandem_sync(db, NULL), TANDEM_REMOVED, "tandem_sync on a removed integration");
    check_rc(db, tandem_uninstall(db), TANDEM_OK, "tandem_uninstall once no integration is in place");
    check_rc(db, tandem_uninstall(db), TANDEM_OK, "tandem_uninstall again is harmless");
    check_rc(db, tandem_attach(db, "default"), TANDEM_STATE, "tandem_attach after tandem_uninstall");
    check_extended(db, TANDEM_STATE_NOT_INSTALLED, "tandem_attach after tandem_uninstall: TANDEM_STATE_NOT_INSTALLED");
    return 1;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CONNINFO\n", argv[0]);
        return 2;
    }
    const char *good = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);

    test_version();
    test_errstr();
    test_null_handle();
    test_open_failures(good);
    test_open_close_loop(good);

    tandem *db = open_or_die(good);
    check_rc(db, TANDEM_OK, TANDEM_OK, "a fresh handle: errcode 0, errmsg \"\", sqlstate \"\"");
    test_null_arguments(db);
    test_extended_before_install(db);
    test_errors_before_configure(db);
    test_bad_json(db);
    test_report_errors(db, 0);

    if (!test_configured(db, good)) {
        /* A tandem_run thread never came back: the handle cannot be closed. */
        return finish();
    }
    test_report_pages(db);
    test_sync_v2_sizes(db);
    if (!test_cancel(db, good)) return finish();
    test_event_destroy(good);
    if (!test_lifecycle(db, good)) return finish();
    tandem_close(db);
    return finish();
}
