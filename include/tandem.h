/*
 * tandem.h — the C interface of Tandem, two-way sync between a pipeline CRM
 * and a full CRM through PostgreSQL.
 *
 * Conventions, once for the whole header:
 *  - Every function returns an int result code (TANDEM_OK on success) unless
 *    it says otherwise. The detail of the last failure lives on the handle:
 *    tandem_errcode(), tandem_errmsg(), tandem_sqlstate().
 *  - Strings passed in are UTF-8, NUL-terminated and borrowed for the call
 *    only. Strings the library hands out through a `char **` out-parameter
 *    are owned by the caller and must be released with tandem_free(), never
 *    with the C library's free().
 *  - Out-parameters are left untouched when a call fails.
 *  - Threads: a handle may be used by one thread at a time. Different
 *    handles are independent. The only exceptions are tandem_stop(), which
 *    may be called from any thread (or a signal-safe context) while another
 *    thread is inside tandem_run() on the same handle, and tandem_cancel(),
 *    which may be called from any thread while another is inside a call.
 *  - The library never prints: its diagnostics go to the log callback
 *    (tandem_set_log_callback), and with none it is silent.
 *  - Nothing is ever thrown or trapped across this boundary: NULL pointers,
 *    bad UTF-8, bad JSON and bad connection strings come back as codes.
 *  - Error messages never contain the connection password.
 */
#ifndef TANDEM_H
#define TANDEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/** The version of this header, as text and as X*1000000 + Y*1000 + Z.
 *  This is the one place the version lives: the library reports it through
 *  tandem_libversion(), and its SONAME is libTandem.so.X (X changes only when
 *  the ABI breaks; a signature changes by adding a _v2 function instead). */
#define TANDEM_VERSION "0.1.0"
#define TANDEM_VERSION_NUMBER 1000

/** The version of the linked library; compare with TANDEM_VERSION_NUMBER to
 *  be sure header and library agree. Static string, never freed. */
const char *tandem_libversion(void);
/** The version number of the linked library (X*1000000 + Y*1000 + Z). */
int tandem_libversion_number(void);

/* ------------------------------------------------------------------------ */
/* Handles                                                                  */
/* ------------------------------------------------------------------------ */

/** An open connection to one PostgreSQL database, bound to at most one
 *  integration at a time. Opaque. */
typedef struct tandem tandem;

/* ------------------------------------------------------------------------ */
/* Result codes. Append-only: codes are never renumbered, and later versions
 * may return codes this header does not know; treat those as errors.       */
/* ------------------------------------------------------------------------ */

#define TANDEM_OK          0  /**< success */
#define TANDEM_ERROR       1  /**< internal error; the message says more */
#define TANDEM_MISUSE      2  /**< NULL handle/argument, call out of order, bad UTF-8 */
#define TANDEM_CONFIG      3  /**< bad configuration: JSON, unknown table/column, mapping */
#define TANDEM_PERMISSION  4  /**< acting user not Administrator + CEO (R5), edition (R6) */
#define TANDEM_DATABASE    5  /**< an SQL statement failed; see tandem_sqlstate() */
#define TANDEM_CONNECT     6  /**< could not connect, or the connection was lost */
#define TANDEM_BUSY        7  /**< another host is the active syncer for this integration */
#define TANDEM_STATE       8  /**< not allowed in the current state (tab order R2, not configured) */
#define TANDEM_NOTFOUND    9  /**< no such integration, tab or report */
#define TANDEM_REMOVED    10  /**< the integration was removed (R17): stop following it */
#define TANDEM_CANCELED   11  /**< tandem_cancel() interrupted the pass; it rolled back */

/* Extended result codes (tandem_extended_errcode): which case of a primary
 * code the last failure was, as sqlite's extended codes are. The primary code
 * is the low 8 bits (code & 0xff); the case is in the bits above. Append-only
 * like the primary codes; a failure with no more to say has its primary code
 * as its extended code, and later versions may return extended codes this
 * header does not know. tandem_errcode() always returns the primary code. */
#define TANDEM_STATE_NOT_BOUND         (TANDEM_STATE | (1 << 8))  /**< no integration is bound: tandem_configure or tandem_attach first */
#define TANDEM_STATE_NOT_INSTALLED     (TANDEM_STATE | (2 << 8))  /**< the tandem schema is not installed: tandem_install first */
#define TANDEM_STATE_TAB_ORDER         (TANDEM_STATE | (3 << 8))  /**< R2: contacts_companies must be active and initially synced first */
#define TANDEM_STATE_INACTIVE          (TANDEM_STATE | (4 << 8))  /**< the tab is inactive (R15): tandem_reactivate it */
#define TANDEM_STATE_NOT_ACTIVATED     (TANDEM_STATE | (5 << 8))  /**< the tab was never activated: tandem_activate it */
#define TANDEM_STATE_JOB_RUNNING       (TANDEM_STATE | (6 << 8))  /**< a background job of the tab runs: wait for its completion event */
#define TANDEM_STATE_NO_CURSOR         (TANDEM_STATE | (7 << 8))  /**< the integration has no sync cursor: tandem_configure it again */
#define TANDEM_STATE_SCHEMA_VERSION    (TANDEM_STATE | (8 << 8))  /**< the schema is newer than this library, or its migrations were edited */
#define TANDEM_STATE_REMOVED           (TANDEM_STATE | (9 << 8))  /**< configure: that integration was removed; purge it or choose another name */
#define TANDEM_STATE_NOT_ALLOWED       (TANDEM_STATE | (10 << 8)) /**< never allowed for this tab or now (deactivate contacts_companies, edit sync of notes, uninstall while in use, configure changing tabs in use) */
#define TANDEM_STATE_TAB_NOT_CONFIGURED (TANDEM_STATE | (11 << 8)) /**< the tab is not set up in the configuration's "tabs" */

/** Static English text for a result code ("configuration error", ...).
 *  Never NULL; unknown codes give "unknown result code". Never freed. */
const char *tandem_errstr(int code);

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

/** Connects with a libpq connection string ("host=... dbname=..." or a
 *  postgresql:// URI). On success stores a new handle in *out. On failure
 *  *out is untouched and, when errmsg is not NULL, *errmsg receives a message
 *  the caller frees with tandem_free() (the password is never included).
 *  Returns TANDEM_MISUSE for NULL conninfo/out, TANDEM_CONNECT otherwise. */
int tandem_open(const char *conninfo, tandem **out, char **errmsg);

/** Closes the connection and frees the handle. NULL does nothing. The handle
 *  and every string borrowed from it are invalid afterwards. The destroy
 *  function of an event callback set with tandem_set_event_callback_v2 is
 *  called on its context here. */
void tandem_close(tandem *db);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/** The result code of the last call on this handle; TANDEM_MISUSE for NULL. */
int tandem_errcode(tandem *db);

/** The message of the last failed call on this handle ("" after success).
 *  Borrowed: valid until the next call on the handle. Never NULL. */
const char *tandem_errmsg(tandem *db);

/** The five-character SQLSTATE of the last database error, or "" when the
 *  last failure did not come from PostgreSQL. Borrowed like tandem_errmsg. */
const char *tandem_sqlstate(tandem *db);

/** The extended result code of the last call on this handle (see the
 *  TANDEM_STATE_... list above): the primary code of tandem_errcode() in the
 *  low 8 bits, the case in the bits above; equal to tandem_errcode() when the
 *  failure has no more to say, TANDEM_OK after success. TANDEM_MISUSE for
 *  NULL. Reads the handle only; returns the code itself (no result code). */
int tandem_extended_errcode(tandem *db);

/* ------------------------------------------------------------------------ */
/* Schema and configuration                                                 */
/* ------------------------------------------------------------------------ */

/** Installs or upgrades the `tandem` schema (numbered migrations, each
 *  applied once under an advisory lock). Safe to call on every start. */
int tandem_install(tandem *db);

/** Validates a configuration (JSON, see README "Configuration") against the
 *  live catalog without storing it. Every problem is named in one message.
 *  Returns TANDEM_CONFIG or TANDEM_PERMISSION when invalid, TANDEM_CONFIG
 *  also for a configuration over 4 MiB of JSON or with more than 10,000
 *  entries in one module's "fields", and TANDEM_MISUSE for text that is not
 *  UTF-8. Takes time linear in the size of the configuration. */
int tandem_validate(tandem *db, const char *config_json);

/** Validates and stores a configuration, and binds the handle to its
 *  integration (the "integration" key, default "default"). Calling it again
 *  with the same JSON is harmless. Installs change-capture triggers on the
 *  configured tables of active tabs. */
int tandem_configure(tandem *db, const char *config_json);

/** Binds the handle to an integration configured earlier (by any host).
 *  TANDEM_NOTFOUND when there is none of that name. */
int tandem_attach(tandem *db, const char *integration);

/* ------------------------------------------------------------------------ */
/* Tabs                                                                     */
/* ------------------------------------------------------------------------ */

/** Activates a tab ("contacts_companies", ...): installs its triggers and
 *  schedules the initial sync of existing data in both apps (R10). Returns at
 *  once; the initial sync runs in chunks inside tandem_sync(),
 *  tandem_process() or tandem_run(), and an "initial_sync_complete" event is
 *  emitted at the end. A tab that syncs already is left as it is (TANDEM_OK).
 *  TANDEM_STATE when the tab order forbids it (R2) and for an inactive tab
 *  (see tandem_reactivate). */
int tandem_activate(tandem *db, const char *tab);

/* ------------------------------------------------------------------------ */
/* Lifecycle of tabs and of the integration (R14-R17)                        */
/* None of these deletes or rewrites data in either app. Each is one          */
/* transaction; where data must be looked at again, a background job runs in  */
/* chunks inside tandem_sync()/tandem_process()/tandem_run(), with progress   */
/* in tandem.tab_status and a completion event. Hosts bound to the            */
/* integration elsewhere pick the change up before their next pass.          */
/* ------------------------------------------------------------------------ */

/** Edit sync (R14) of "contacts_companies" or "pipelines_products": changes
 *  the tab's CRM views or field mapping. config_json is the whole new
 *  configuration, validated like tandem_configure's (every problem in one
 *  message); only that tab's views and fields may differ from the stored
 *  one (TANDEM_CONFIG names anything else). NULL keeps the configuration and
 *  re-scans the views, for a view whose definition changed in SQL.
 *  Records synced from an old view keep their links; CRM records now in the
 *  view are matched or created ("edit_sync_complete" event at the end); a
 *  newly mapped field is brought into line for every linked record (a value
 *  on one side fills the other, different values are decided by the policy
 *  and recorded as conflicts); a field no longer mapped stops syncing.
 *  TANDEM_STATE for activities and notes (R9, nothing to edit), for a tab
 *  never activated, and while a job of the tab runs. */
int tandem_edit_sync(tandem *db, const char *tab, const char *config_json);

/** Deactivates a tab (R15): its new and edited data stop syncing at once and
 *  its capture triggers are dropped, so its tables cost their writers
 *  nothing. Links and mirrors stay. TANDEM_STATE for "contacts_companies",
 *  the parent of every other tab (remove the integration instead). A tab
 *  that is inactive already is left as it is (TANDEM_OK). */
int tandem_deactivate(tandem *db, const char *tab);

/** Reactivates an inactive tab (R16) with a conflict policy for records
 *  changed on both sides while it was inactive: "latest", "crm_wins",
 *  "pipeline_wins" or "skip" (neither side is written). Every linked record
 *  is diffed against its mirror; one-sided changes and records added
 *  meanwhile sync as usual. The policy applies to that catch-up only
 *  ("reactivation_complete" event at the end). TANDEM_MISUSE for an unknown
 *  policy; TANDEM_STATE for a tab never activated. An active tab is left as
 *  it is (TANDEM_OK). */
int tandem_reactivate(tandem *db, const char *tab, const char *policy);

/** Removes the bound integration (R17): all of its sync stops, hosts
 *  following it return TANDEM_REMOVED, and every trigger, function and
 *  index Tandem put on the app tables is dropped (unless another
 *  integration still uses it). Nothing in either app is deleted. Its
 *  history (links, conflicts, runs, events) stays for reporting unless purge
 *  is non-zero. Calling it again is harmless. */
int tandem_remove(tandem *db, int purge);

/** Drops the tandem schema (with the history of removed integrations).
 *  TANDEM_STATE, naming them, while an integration is still in place. Needs
 *  no bound integration; harmless when nothing is installed. */
int tandem_uninstall(tandem *db);

/* ------------------------------------------------------------------------ */
/* Sync                                                                     */
/* ------------------------------------------------------------------------ */

/** Runs one sync pass: one chunk of any running initial sync, then every
 *  change committed since the cursor. When changes is not NULL it receives
 *  the number of records written in either app. TANDEM_BUSY when another
 *  host is the active syncer of this integration. */
int tandem_sync(tandem *db, int64_t *changes);

/** The socket to poll for readability in a host's own event loop; -1 (and
 *  TANDEM_MISUSE/CONNECT in tandem_errcode) when there is none. The socket
 *  belongs to the handle: do not close it. */
int tandem_socket(tandem *db);

/** Consumes what arrived on the socket and, if changes were announced (or an
 *  initial sync is running), runs passes until there is nothing left to do.
 *  Never blocks waiting for input. While it passes, writers may skip their
 *  notification; before it returns it waits (at most 100 ms) for those
 *  writers to end and reads their changes, or, if one is still running,
 *  tandem_timeout() asks to be called again soon. A standby host
 *  (TANDEM_BUSY on the lock) returns TANDEM_OK and does nothing. */
int tandem_process(tandem *db);

/** How long a host with its own event loop may wait on tandem_socket()
 *  before it must call tandem_process() even though nothing arrived, in
 *  milliseconds, into *milliseconds: -1 when only the socket can bring work
 *  (every committed change makes it readable, B1), else the time until the
 *  earliest due retry of a record error (B6), until the next look for the
 *  change of a writer that skipped its notification while tandem_process()
 *  passed and was still running when it returned (at most about 110 ms),
 *  or, on a standby host, until its next attempt to take over (B9); 0 when
 *  a change was announced while
 *  it asked (call tandem_process now). An idle active host with no record
 *  errors therefore waits with no timeout and runs no statement. Runs at
 *  most one short query. *milliseconds is untouched on failure;
 *  TANDEM_MISUSE when it is NULL. */
int tandem_timeout(tandem *db, int *milliseconds);

/** Follows changes until tandem_stop() is called: waits on the socket,
 *  catches up from the cursor first (B1), takes over when the active host
 *  goes away (B9). A lost connection or a server restart is restored with
 *  back-off ("connection_lost" and "connection_restored" events), then the
 *  host catches up from the cursor; transient failures (deadlock, lock
 *  timeout) are retried ("transient_error" events). Returns TANDEM_OK after
 *  a stop, TANDEM_CONNECT when the connection could not be restored within
 *  the reconnect timeout, TANDEM_REMOVED when the integration was removed. */
int tandem_run(tandem *db);

/** How long tandem_run() keeps trying to restore a lost connection before it
 *  returns TANDEM_CONNECT, in seconds (default 300; 0: never reconnect).
 *  tandem_process() tries once per call; the handle's socket is then a new
 *  one, so a host's own loop asks tandem_socket() on every round.
 *  TANDEM_MISUSE for a negative value. */
int tandem_set_reconnect_timeout(tandem *db, double seconds);

/** What one call of tandem_sync_v2() did. The caller sets `size` to
 *  sizeof(tandem_sync_result) before the call; the library fills only the
 *  fields that fit in `size` bytes and sets `size` to the number of bytes it
 *  filled, so that later versions may append fields without breaking hosts
 *  built against this header (and a newer host on an older library sees which
 *  fields were filled). Counts are records, not fields. */
typedef struct tandem_sync_result {
    size_t size;                 /**< in: sizeof *result; out: bytes filled */
    int64_t read;                /**< records looked at (changes, job chunk, retries) */
    int64_t matched;             /**< pairs linked by their match key (B3) */
    int64_t created_in_pipeline; /**< records created in the pipeline app */
    int64_t created_in_crm;      /**< records created in the CRM app */
    int64_t updated_in_pipeline; /**< records updated in the pipeline app */
    int64_t updated_in_crm;      /**< records updated in the CRM app */
    int64_t conflicts;           /**< fields decided by the conflict policy */
    int64_t errors;              /**< records that could not be written (B6) */
    int64_t waiting;             /**< records waiting for a parent to be linked (R11) */
    int64_t deferred;            /**< records left for a later pass: a user was writing them (B11) */
    int more;                    /**< non-zero: another pass right now could find work
                                      (changes were read, or a chunk of an initial sync,
                                      edit sync or reactivation was handled); 0: the
                                      integration is caught up until something changes */
} tandem_sync_result;

/** Runs one sync pass, like tandem_sync(), and reports what it did in
 *  *result (see tandem_sync_result for the size rule). A host drives a whole
 *  catch-up or initial sync with
 *      do { r.size = sizeof r; rc = tandem_sync_v2(db, &r); } while (rc == TANDEM_OK && r.more);
 *  TANDEM_MISUSE when result is NULL or result->size is smaller than the
 *  first count (offsetof(tandem_sync_result, read) + sizeof(int64_t)).
 *  *result is untouched on failure. TANDEM_BUSY when another host is the
 *  active syncer; TANDEM_CANCELED after tandem_cancel(). */
int tandem_sync_v2(tandem *db, tandem_sync_result *result);

/** Interrupts the pass running on this handle (inside tandem_sync,
 *  tandem_sync_v2, tandem_process or tandem_run) from any thread: libpq's
 *  PQcancel() asks the server to stop the statement in flight; the pass rolls
 *  back as a whole (B5: nothing of it is written, the cursor does not move,
 *  the next pass does its work), and the interrupted call returns
 *  TANDEM_CANCELED with SQLSTATE 57014 (query_canceled). tandem_run returns
 *  too (with TANDEM_CANCELED): a host that wants to go on calls it again. A
 *  cancel while no pass runs (between calls, or while tandem_run waits for
 *  changes; use tandem_stop to end that) does nothing, and a pass that
 *  committed before the cancel arrived stays committed. Not for signal
 *  handlers (it opens a connection to the server). Returns TANDEM_OK, or
 *  TANDEM_MISUSE for NULL; it does not change the handle's error state. */
int tandem_cancel(tandem *db);

/** Asks tandem_run() on this handle to return. Safe from any thread and
 *  from a signal handler; returns TANDEM_MISUSE only for NULL. A stop that
 *  arrives while no tandem_run() is active makes the next tandem_run() on the
 *  handle return at once. The handle keeps the integration's syncer lock
 *  until it is closed. */
int tandem_stop(tandem *db);

/* ------------------------------------------------------------------------ */
/* Events and logging                                                       */
/* ------------------------------------------------------------------------ */

/** Called on the thread that runs the sync with one event as JSON, e.g.
 *  {"type":"initial_sync_complete","tab":"contacts_companies",...}. The JSON
 *  is borrowed for the duration of the call. The callback must not call back
 *  into the same handle. */
typedef void (*tandem_event_fn)(void *context, const char *event_json);

/** Sets (or clears, with NULL) the event callback. The context is passed
 *  through untouched. */
int tandem_set_event_callback(tandem *db, tandem_event_fn callback, void *context);

/** Like tandem_set_event_callback(), and the library owns `context`:
 *  destroy(context) is called (on the calling thread) when the callback is
 *  replaced by either setter, cleared, or the handle is closed, exactly once.
 *  destroy may be NULL (then this is tandem_set_event_callback). With a NULL
 *  callback nothing is kept and destroy(context), when given, is called at
 *  once. For a NULL handle nothing is called: TANDEM_MISUSE. */
int tandem_set_event_callback_v2(tandem *db, tandem_event_fn callback, void *context,
                                 void (*destroy)(void *context));

/** Log levels; lower is more severe. Later versions may add levels. */
#define TANDEM_LOG_ERROR    1  /**< something failed that the host should look at */
#define TANDEM_LOG_WARNING  2  /**< the library recovers (a lost connection, a server WARNING) */
#define TANDEM_LOG_INFO     3  /**< what a pass did (counts), a connection restored */
#define TANDEM_LOG_DEBUG    4  /**< failed statements (their text, with $n placeholders) */

/** Called with one line of diagnostics, on the thread inside the call that
 *  produced it. The message is UTF-8 with no trailing newline, borrowed for
 *  the call. Messages never contain the connection string, a password or
 *  values of records; notices and warnings of the PostgreSQL server are
 *  passed on with their own text. The callback must not call back into the
 *  same handle. */
typedef void (*tandem_log_fn)(void *context, int level, const char *message);

/** Sets (or clears, with NULL) the log callback. The library never prints
 *  by itself: without a callback its diagnostics (and the server's notices,
 *  which libpq would print to stderr) are dropped. The context is passed
 *  through untouched and stays the caller's. TANDEM_MISUSE for NULL db. */
int tandem_set_log_callback(tandem *db, tandem_log_fn callback, void *context);

/* ------------------------------------------------------------------------ */
/* Reporting                                                                */
/* ------------------------------------------------------------------------ */

/** Status of the bound integration and its tabs as a JSON object, stored in
 *  *json_out (free with tandem_free). Keys: "integration", "conflict_policy",
 *  "cursor", "schema_version"; "active_syncer": the session that holds the
 *  integration's syncer lock, whichever host it is, as {"pid",
 *  "application_name", "client_addr", "since" (when that session started)},
 *  or null when no host syncs; "tabs": the rows of tandem.tab_status in sync
 *  order (contacts_companies, pipelines_products, activities, notes), each
 *  with "job_progress": per module and scan of its background job
 *  {"module", "scan", "job", "read", "total", "done"}, where total is read
 *  plus what is still to read, counted at the call ([] when no job runs). */
int tandem_status(tandem *db, char **json_out);

/** One reporting view of the bound integration as a JSON array of rows,
 *  named as the view is: "tab_status", "pending_changes", "linked_records",
 *  "conflicts", "record_errors", "run_history" or "event_history" (the
 *  earlier names "links", "runs" and "events" are still accepted). Rows come
 *  in each view's order: tab_status by tab, pending_changes oldest first,
 *  linked_records by link_id, the others newest first. At most `limit` rows
 *  (0 means 100). Stored in *json_out (free with tandem_free).
 *  TANDEM_NOTFOUND for other names. */
int tandem_report(tandem *db, const char *report, int limit, char **json_out);

/** One page of a report (names and order as tandem_report's) as the JSON
 *  object {"rows": [...], "next": KEY} where KEY is a string, or null on the
 *  last page. Pass NULL as `after` for the first page, then each page's
 *  "next", unchanged, for the one after it. The key is opaque: it names the
 *  report and the position after the last row handed out, so rows added or
 *  removed meanwhile never make a page repeat or skip a row that stayed
 *  (the order is total). At most `limit` rows (0 means 100; more than 10000
 *  gives 10000). Stored in *json_out (free with tandem_free), untouched on
 *  failure. TANDEM_NOTFOUND for an unknown report; TANDEM_MISUSE for a
 *  negative limit, NULL report or json_out, and an `after` this library did
 *  not make for this report (malformed, edited, or from another report). */
int tandem_report_page(tandem *db, const char *report, const char *after, int limit, char **json_out);

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/** Frees a string returned by this library. NULL does nothing. */
void tandem_free(void *pointer);

#ifdef __cplusplus
}
#endif
#endif /* TANDEM_H */
