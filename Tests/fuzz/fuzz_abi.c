/*
 * fuzz_abi.c — a libFuzzer target for the string- and JSON-taking entry
 * points of tandem.h, against a real PostgreSQL database.
 *
 * The first byte of an input picks the entry point (byte % 8); the rest,
 * cut at the first NUL, is its string argument:
 *
 *   0 tandem_validate(config_json)      4 tandem_report(name), tandem_report_page(after)
 *   1 tandem_configure(config_json),    5 tandem_open(conninfo)
 *     then tandem_activate of its first tab
 *   2 tandem_activate(tab)              6 tandem_open(conninfo + " password=<secret>")
 *   3 tandem_attach(integration)        7 tandem_errstr(code), tandem_status, tandem_sync
 *
 * One handle on TANDEM_FUZZ_CONNINFO (a database with both reference apps,
 * prepared by scripts/fuzz) lives for the whole run, configured with the
 * default configuration at the start. Inputs see the state earlier ones left:
 * a configure binds the handle to its integration and activates Contacts &
 * Companies there, so table and column names the fuzzer finds valid reach
 * activation (capture triggers, match index names). A crash found this way
 * may need the inputs before it to happen again.
 *
 * What counts as a failure, besides a crash or a trap (the point: nothing
 * may trap across the C ABI) and what AddressSanitizer finds:
 *  - a result code outside TANDEM_OK..TANDEM_NOTFOUND;
 *  - tandem_errmsg()/tandem_sqlstate() NULL, or an empty message after a failure;
 *  - tandem_errcode() disagreeing with the code returned;
 *  - an out-parameter set on failure, or left NULL on success;
 *  - the password given to tandem_open appearing in its error message.
 *
 * Build and run: scripts/fuzz (make fuzz; a short run is part of make test).
 */
#include <tandem.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tandem *db;
static const char secret[] = "fuzz-Secret-7f3a9c";

static void check(int condition, const char *what, const char *input) {
    if (condition) return;
    fprintf(stderr, "fuzz_abi: %s (input: \"%s\")\n", what, input);
    abort();
}

static void check_handle(int code, const char *input) {
    check(code >= TANDEM_OK && code <= TANDEM_NOTFOUND, "result code out of range", input);
    check(tandem_errcode(db) == code, "tandem_errcode differs from the returned code", input);
    const char *message = tandem_errmsg(db);
    const char *sqlstate = tandem_sqlstate(db);
    check(message != NULL && sqlstate != NULL, "NULL error text", input);
    check(code == TANDEM_OK || message[0] != '\0', "a failure without a message", input);
    check(strlen(sqlstate) == 0 || strlen(sqlstate) == 5, "an SQLSTATE that is not five characters", input);
    check(tandem_errstr(code) != NULL, "tandem_errstr returned NULL", input);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *conninfo = getenv("TANDEM_FUZZ_CONNINFO");
    if (conninfo == NULL) {
        fprintf(stderr, "fuzz_abi: set TANDEM_FUZZ_CONNINFO (scripts/fuzz does)\n");
        exit(2);
    }
    /* A fuzzed conninfo may name any host: give up quickly on it. */
    setenv("PGCONNECT_TIMEOUT", "2", 0);
    setenv("RES_OPTIONS", "timeout:1 attempts:1", 0);
    char *error = NULL;
    if (tandem_open(conninfo, &db, &error) != TANDEM_OK || tandem_install(db) != TANDEM_OK
        || tandem_configure(db, "{\"pipeline\":{\"acting_user\":\"admin@example.com\"},"
                                "\"crm\":{\"acting_user\":\"admin@example.com\"}}") != TANDEM_OK) {
        fprintf(stderr, "fuzz_abi: cannot prepare the database: %s\n", error ? error : tandem_errmsg(db));
        exit(2);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    unsigned entry = data[0] % 8;
    char *text = malloc(size + sizeof secret + 16);
    if (text == NULL) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';

    int code;
    char *out = NULL;
    tandem *opened = NULL;
    char *error = NULL;
    switch (entry) {
    case 0: code = tandem_validate(db, text); check_handle(code, text); break;
    case 1:
        code = tandem_configure(db, text);
        check_handle(code, text);
        if (code == TANDEM_OK) {
            code = tandem_activate(db, "contacts_companies");
            check_handle(code, text);
        }
        break;
    case 2: code = tandem_activate(db, text); check_handle(code, text); break;
    case 3: code = tandem_attach(db, text); check_handle(code, text); break;
    case 4: {
        int limit = size > 1 ? (int)(signed char)data[1] * 1000 : 0;
        code = tandem_report(db, text, limit, &out);
        check_handle(code, text);
        check((code == TANDEM_OK) == (out != NULL), "report out-parameter wrong for the result", text);
        if (out) check(out[0] == '[', "a report that is not a JSON array", text);
        tandem_free(out);
        /* The same text as a page key: one this library did not make is misuse. */
        out = NULL;
        code = tandem_report_page(db, "linked_records", text, limit < 0 ? 0 : limit % 1000, &out);
        check_handle(code, text);
        check((code == TANDEM_OK) == (out != NULL), "report page out-parameter wrong for the result", text);
        if (out) check(strncmp(out, "{\"rows\":[", 9) == 0, "a report page that is not {\"rows\":[...]}", text);
        tandem_free(out);
        break;
    }
    case 5:
    case 6: {
        /* The oracle holds only when the fuzzed part does not spell the secret itself. */
        int secret_given = strstr(text, secret) != NULL;
        if (entry == 6) {
            strcat(text, " password=");
            strcat(text, secret);
        }
        code = tandem_open(text, &opened, &error);
        check(code >= TANDEM_OK && code <= TANDEM_NOTFOUND, "tandem_open: result code out of range", text);
        check((code == TANDEM_OK) == (opened != NULL), "tandem_open: out-parameter wrong for the result", text);
        check(code == TANDEM_OK || (error != NULL && error[0] != '\0'), "tandem_open failed without a message", text);
        if (error && !secret_given)
            check(strstr(error, secret) == NULL, "tandem_open: the password is in the error message", text);
        tandem_free(error);
        tandem_close(opened);
        break;
    }
    default: {
        int any = (int)(size > 1 ? (signed char)data[1] : 0) * 1000003;
        check(tandem_errstr(any) != NULL, "tandem_errstr returned NULL", text);
        code = tandem_status(db, &out);
        check_handle(code, text);
        check((code == TANDEM_OK) == (out != NULL), "status out-parameter wrong for the result", text);
        tandem_free(out);
        int64_t written = -1;
        code = tandem_sync(db, &written);
        check_handle(code, text);
        check(code != TANDEM_OK || written >= 0, "tandem_sync succeeded without a count", text);
        break;
    }
    }
    free(text);
    return 0;
}
