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
 *    handles are independent. The only exception is tandem_stop(), which
 *    may be called from any thread (or a signal-safe context) while another
 *    thread is inside tandem_run() on the same handle.
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
 *  and every string borrowed from it are invalid afterwards. */
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

/* ------------------------------------------------------------------------ */
/* Schema and configuration                                                 */
/* ------------------------------------------------------------------------ */

/** Installs or upgrades the `tandem` schema (numbered migrations, each
 *  applied once under an advisory lock). Safe to call on every start. */
int tandem_install(tandem *db);

/** Validates a configuration (JSON, see README "Configuration") against the
 *  live catalog without storing it. Every problem is named in one message.
 *  Returns TANDEM_CONFIG or TANDEM_PERMISSION when invalid. */
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
 *  Never blocks waiting for input. A standby host (TANDEM_BUSY on the lock)
 *  returns TANDEM_OK and does nothing. */
int tandem_process(tandem *db);

/** How long a host with its own event loop may wait on tandem_socket()
 *  before it must call tandem_process() even though nothing arrived, in
 *  milliseconds, into *milliseconds: -1 when only the socket can bring work
 *  (every committed change makes it readable, B1), else the time until the
 *  earliest due retry of a record error (B6) or, on a standby host, until
 *  its next attempt to take over (B9). An idle active host with no record
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

/** Asks tandem_run() on this handle to return. Safe from any thread and
 *  from a signal handler; returns TANDEM_MISUSE only for NULL. A stop that
 *  arrives while no tandem_run() is active makes the next tandem_run() on the
 *  handle return at once. The handle keeps the integration's syncer lock
 *  until it is closed. */
int tandem_stop(tandem *db);

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

/** Called on the thread that runs the sync with one event as JSON, e.g.
 *  {"type":"initial_sync_complete","tab":"contacts_companies",...}. The JSON
 *  is borrowed for the duration of the call. The callback must not call back
 *  into the same handle. */
typedef void (*tandem_event_fn)(void *context, const char *event_json);

/** Sets (or clears, with NULL) the event callback. The context is passed
 *  through untouched. */
int tandem_set_event_callback(tandem *db, tandem_event_fn callback, void *context);

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

/** One reporting view of the bound integration as a JSON array of rows:
 *  "tab_status", "pending_changes", "links", "conflicts", "record_errors",
 *  "runs" or "events". At most `limit` rows (0 means 100). Stored in
 *  *json_out (free with tandem_free). TANDEM_NOTFOUND for other names. */
int tandem_report(tandem *db, const char *report, int limit, char **json_out);

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/** Frees a string returned by this library. NULL does nothing. */
void tandem_free(void *pointer);

#ifdef __cplusplus
}
#endif
#endif /* TANDEM_H */
