/* The IoT Hub query language: parse SELECT ... FROM devices|devices.modules|devices.jobs, run it.
 */
#ifndef IOTDM_HUB_QUERY_H
#define IOTDM_HUB_QUERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "iotdm/result.h"

typedef struct hub_query hub_query;

typedef enum {
    HUB_QUERY_FROM_DEVICES,
    HUB_QUERY_FROM_MODULES,
    HUB_QUERY_FROM_JOBS
} hub_query_source;

/* Longest query text accepted, in bytes (Azure's documented limit). */
#define HUB_QUERY_MAX_LEN 8192
/* Deepest nesting of parentheses, unary operators and sub-expressions accepted. */
#define HUB_QUERY_MAX_DEPTH 64

/* Parses a query of len bytes (text need not be NUL-terminated). On success *out_query owns the
 * parsed query (free with hub_query_free). On error returns IOTDM_E_MALFORMED (IOTDM_E_TOO_LARGE
 * over HUB_QUERY_MAX_LEN bytes) and, when err is not NULL, writes a readable message with the
 * 0-based byte position into err ("expected FROM at position 9"). */
IOTDM_NODISCARD iotdm_result hub_query_parse(const char *text, size_t len, hub_query **out_query,
                                             char *err, size_t err_cap);

/* Parses a bare condition, as in a job's queryCondition ("deviceId IN ['a','b']", or "*" for all
 * devices), into the query SELECT * FROM devices WHERE <condition>. Errors as hub_query_parse. */
IOTDM_NODISCARD iotdm_result hub_query_parse_condition(const char *text, size_t len,
                                                       hub_query **out_query, char *err,
                                                       size_t err_cap);

void hub_query_free(hub_query *q);

hub_query_source hub_query_source_of(const hub_query *q);

/* "twin" for SELECT * (the documents themselves), "raw" for projections and aggregates,
 * "deviceJob" for FROM devices.jobs. Static storage. */
const char *hub_query_item_type(const hub_query *q);

/* True when the WHERE clause (if any) is true for doc. doc is the service twin JSON (or a DeviceJob
 * for FROM devices.jobs); it is only read, never referenced or modified. Safe to call from several
 * threads at once on the same query. */
bool hub_query_matches(const hub_query *q, const json_t *doc);

/* Running a query over a sequence of documents. The run borrows q, which must outlive it. */
typedef struct hub_query_run hub_query_run;

/* NULL when out of memory. */
hub_query_run *hub_query_run_new(const hub_query *q);

/* Groups one run of a GROUP BY query may hold: each costs memory until the run finishes. */
#define HUB_QUERY_MAX_GROUPS 10000

/* Feeds one document; it is matched, projected or aggregated (doc is copied where kept, never
 * referenced). Documents may be fed in any order. Returns IOTDM_OK, IOTDM_E_TOO_LARGE when the
 * document would make more than HUB_QUERY_MAX_GROUPS groups, or -ENOMEM (after an error the run is
 * unusable: finish returns NULL). */
IOTDM_NODISCARD iotdm_result hub_query_run_add(hub_query_run *run, const json_t *doc);

/* The result rows (new reference, a JSON array): matching docs (SELECT *), projections, or one row
 * per group (GROUP BY) / a single row (aggregates without GROUP BY). TOP n applied. Frees the run.
 * NULL when out of memory. */
json_t *hub_query_run_finish(hub_query_run *run);

/* Frees a run without producing results (NULL is a no-op). */
void hub_query_run_free(hub_query_run *run);

/* The row a document that matches a query without aggregates gives: a copy of it for SELECT *,
 * an object of the projected members otherwise (new reference; NULL when out of memory). */
json_t *hub_query_project(const hub_query *q, const json_t *doc);

/* ---- paging over the store (query_page.c) ---- */

typedef struct hub_store hub_store;

#define HUB_QUERY_CONTINUATION_MAX 512

typedef struct {
    json_t *items; /* the page (new reference): documents, projections or groups */
    char continuation[HUB_QUERY_CONTINUATION_MAX]; /* "" on the last page */
} hub_query_page;

/* Runs q against store (a reader handle, on a reader thread) from continuation (NULL or "" for
 * the first page; otherwise what a previous page of the same query returned, which is opaque to
 * callers and checked here: IOTDM_E_MALFORMED for one this function did not make for q) and
 * returns at most max_items (>= 1). Rows come in device-id order; a page reads only the twins it
 * needs (hub_store_query_page), and TOP counts across pages. GROUP BY and aggregate queries come
 * whole in one page, computed over every matching twin without keeping them: IOTDM_E_TOO_LARGE
 * beyond HUB_QUERY_MAX_GROUPS groups. FROM devices.modules and devices.jobs give empty pages. */
IOTDM_NODISCARD iotdm_result hub_query_page_run(hub_store *store, const hub_query *q,
                                                const char *continuation, size_t max_items,
                                                hub_query_page *out);

#endif
