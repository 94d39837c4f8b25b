/*
 * example_host.c — a small host program for Tandem, meant to be copied.
 *
 *   example_host CONNINFO [CONFIG_JSON_FILE] [--seconds N]
 *
 * It connects to the database that holds both apps' schemas, installs
 * Tandem's own schema, configures an integration, activates the
 * Contacts & Companies tab and then drives the sync from its own poll()
 * loop: first until the initial sync of existing data is complete, then for
 * N more seconds (default 5) following live changes. Every event the library
 * emits is printed as one JSON line; the integration's status is printed at
 * the end.
 *
 * Build (after `make install PREFIX=...`):
 *   cc -std=c11 example_host.c $(pkg-config --cflags --libs tandem) -o example_host
 *
 * A host that does not need its own event loop can call tandem_run() on a
 * thread and tandem_stop() to end it; this example shows the poll() way
 * because that is what a host with other work to do (a GUI, a server) needs.
 */
#define _POSIX_C_SOURCE 200809L

#include <tandem.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Used when no configuration file is given: the reference apps' admin user
 * (Administrator with the CEO role in both apps, as R5 requires) and the
 * default mappings for everything else. */
static const char DEFAULT_CONFIG[] =
    "{\"pipeline\":{\"acting_user\":\"admin@example.com\"},"
    "\"crm\":{\"acting_user\":\"admin@example.com\"}}";

/* Prints why the last call on `db` failed and returns an exit status.
 * tandem_errstr() names the family of the error; tandem_errmsg() says what
 * happened; tandem_sqlstate() is set when PostgreSQL itself refused. */
static int fail(tandem *db, const char *what, int rc)
{
    const char *state = tandem_sqlstate(db);
    fprintf(stderr, "example_host: %s failed: %s (%d): %s", what, tandem_errstr(rc), rc, tandem_errmsg(db));
    if (state[0] != '\0') fprintf(stderr, " [SQLSTATE %s]", state);
    fputc('\n', stderr);
    return 1;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees with free(). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf != NULL) {
        if (ferror(f)) { free(buf); buf = NULL; }
        else buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the event callback learns, shared with the loop through `context`. */
struct host_state {
    int initial_sync_complete; /* set when the initial sync of the tab ended */
    long events;
};

/* The event callback. It runs on the thread that drives the sync (here: the
 * main thread, inside tandem_process()), receives one event as JSON that is
 * only borrowed for the call, and must not call back into the handle. */
static void on_event(void *context, const char *event_json)
{
    struct host_state *state = context;
    state->events++;
    printf("event: %s\n", event_json);
    fflush(stdout);
    /* A real host would parse the JSON; a substring test is enough here. */
    if (strstr(event_json, "initial_sync_complete") != NULL) state->initial_sync_complete = 1;
}

/* Whether the status JSON says the initial sync is complete. Checked as
 * well as the event, so that a host restarted after the initial sync (which
 * sees no new event) still knows. Tolerates blanks around the colon. */
static int status_says_complete(const char *json)
{
    const char *p = json;
    while ((p = strstr(p, "\"initial_sync_complete\"")) != NULL) {
        p += strlen("\"initial_sync_complete\"");
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (*p != ':') continue;
        p++;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (strncmp(p, "true", 4) == 0) return 1;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: example_host CONNINFO [CONFIG_JSON_FILE] [--seconds N]\n");
}

int main(int argc, char **argv)
{
    const char *conninfo = NULL, *config_path = NULL;
    double follow_seconds = 5;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            char *end;
            follow_seconds = strtod(argv[++i], &end);
            if (*end != '\0' || follow_seconds < 0) { usage(); return 2; }
        } else if (conninfo == NULL) {
            conninfo = argv[i];
        } else if (config_path == NULL) {
            config_path = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (conninfo == NULL) { usage(); return 2; }

    /* 0. Make sure the header we compiled against matches the library we run with. */
    if (tandem_libversion_number() != TANDEM_VERSION_NUMBER) {
        fprintf(stderr, "example_host: built for Tandem %s but linked with %s\n", TANDEM_VERSION,
                tandem_libversion());
        return 1;
    }

    /* The configuration: from the file, or the default. The library only
     * borrows the string for the call, so we free our copy ourselves. */
    char *config_from_file = NULL;
    if (config_path != NULL) {
        config_from_file = read_file(config_path);
        if (config_from_file == NULL) {
            fprintf(stderr, "example_host: cannot read %s: %s\n", config_path, strerror(errno));
            return 1;
        }
    }
    const char *config = config_from_file ? config_from_file : DEFAULT_CONFIG;

    /* 1. Connect. There is no handle yet when this fails, so the message
     *    comes back through the last argument (never with the password) and
     *    is freed with tandem_free(), not free(). */
    tandem *db = NULL;
    char *open_error = NULL;
    int rc = tandem_open(conninfo, &db, &open_error);
    if (rc != TANDEM_OK) {
        fprintf(stderr, "example_host: tandem_open failed: %s (%d): %s\n", tandem_errstr(rc), rc,
                open_error ? open_error : "");
        tandem_free(open_error);
        free(config_from_file);
        return 1;
    }

    int status = 1; /* the exit status; set to 0 only at the very end */
    struct host_state state = { 0, 0 };

    /* 2. Install or upgrade the `tandem` schema; harmless when current. */
    rc = tandem_install(db);
    if (rc != TANDEM_OK) { fail(db, "tandem_install", rc); goto done; }

    /* 3. Store the configuration and bind the handle to its integration.
     *    Every problem in the configuration is named in one message. */
    rc = tandem_configure(db, config);
    if (rc != TANDEM_OK) { fail(db, "tandem_configure", rc); goto done; }

    /* 4. Events arrive on the thread that runs the sync; set the callback
     *    before anything can emit one. */
    rc = tandem_set_event_callback(db, on_event, &state);
    if (rc != TANDEM_OK) { fail(db, "tandem_set_event_callback", rc); goto done; }

    /* 5. Activate Contacts & Companies (it must be first, R2). This returns
     *    at once; the initial sync runs in chunks inside tandem_process().
     *    On a second start the tab is already active: a TANDEM_STATE answer
     *    is reported and the host carries on. */
    rc = tandem_activate(db, "contacts_companies");
    if (rc == TANDEM_STATE) {
        fprintf(stderr, "example_host: tandem_activate: %s (continuing)\n", tandem_errmsg(db));
    } else if (rc != TANDEM_OK) {
        fail(db, "tandem_activate", rc);
        goto done;
    }

    /* 6. The event loop. tandem_socket() is readable when PostgreSQL has
     *    announced changes (LISTEN/NOTIFY); tandem_process() consumes them and
     *    runs sync passes until there is nothing left, without ever blocking
     *    on input. It is also called on every timeout so that the chunks of
     *    the initial sync keep moving and missed notifications are caught up. */
    int fd = tandem_socket(db);
    if (fd < 0) { fail(db, "tandem_socket", tandem_errcode(db)); goto done; }

    double follow_until = -1; /* set once the initial sync is complete */
    double initial_deadline = now_seconds() + 600; /* give up on a stuck initial sync */
    for (;;) {
        rc = tandem_process(db);
        if (rc != TANDEM_OK) { fail(db, "tandem_process", rc); goto done; }

        if (follow_until < 0) {
            /* Still in the initial sync: the event tells us, and so does the status. */
            int complete = state.initial_sync_complete;
            if (!complete) {
                char *json = NULL;
                rc = tandem_status(db, &json);
                if (rc != TANDEM_OK) { fail(db, "tandem_status", rc); goto done; }
                complete = status_says_complete(json);
                tandem_free(json);
            }
            if (complete) {
                printf("initial sync complete; following changes for %g s\n", follow_seconds);
                fflush(stdout);
                follow_until = now_seconds() + follow_seconds;
            } else if (now_seconds() > initial_deadline) {
                fprintf(stderr, "example_host: the initial sync did not complete in time\n");
                goto done;
            }
        }
        if (follow_until >= 0 && now_seconds() >= follow_until) break;

        /* Wait for the socket, at most 100 ms (the socket belongs to the
         * handle: poll it, never close it). During the initial sync, wait only
         * briefly: there may be chunks left to run. */
        int timeout_ms = 100;
        if (follow_until < 0 && !state.initial_sync_complete) timeout_ms = 10;
        else if (follow_until >= 0) {
            double left = (follow_until - now_seconds()) * 1000;
            if (left < timeout_ms) timeout_ms = left > 0 ? (int)left : 0;
        }
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR) {
            fprintf(stderr, "example_host: poll: %s\n", strerror(errno));
            goto done;
        }
        /* The socket may change if the library reconnects; ask again. */
        fd = tandem_socket(db);
        if (fd < 0) { fail(db, "tandem_socket", tandem_errcode(db)); goto done; }
    }

    /* 7. The status of the integration and its tabs, as JSON. The string is
     *    ours to free, with tandem_free(). */
    char *json = NULL;
    rc = tandem_status(db, &json);
    if (rc != TANDEM_OK) { fail(db, "tandem_status", rc); goto done; }
    printf("status: %s\n", json);
    tandem_free(json);
    printf("%ld events\n", state.events);
    status = 0;

done:
    /* 8. Close the handle (this also drops the callback) and free our copy. */
    tandem_close(db);
    free(config_from_file);
    return status;
}
