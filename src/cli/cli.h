/* Internals of the iotdm CLI shared by its command groups: options, login, HTTP, output. */
#ifndef IOTDM_CLI_CLI_H
#define IOTDM_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "cli/exitcodes.h"

/* Returned by the option parser after printing help: the command ends with exit code 0. */
#define CLI_HELP_SHOWN (-1)

#define CLI_MAX_OPTS 96
#define CLI_MAX_POS  8

typedef enum {
    CLI_OPT_FLAG,  /* --name */
    CLI_OPT_VALUE, /* --name VALUE or --name=VALUE */
    CLI_OPT_BOOL,  /* --name, or --name true|false */
} cli_opt_kind;

typedef struct {
    const char *name; /* without the leading "--" */
    cli_opt_kind kind;
    const char *metavar; /* shown in help, e.g. "ID" */
    const char *help;
    bool required;
} cli_opt;

/* A command: a leaf of the command tree (group + name), with its options. */
typedef struct cli_ctx cli_ctx;
typedef struct cli_args cli_args;
typedef int (*cli_run_fn)(cli_ctx *ctx, const cli_args *args);

typedef struct {
    const char *name; /* NULL for a group that is itself the command (monitor, query) */
    const char *summary;
    const cli_opt *opts;
    size_t nopts;
    const char *positional; /* usage text of positional arguments, NULL when none */
    size_t min_pos, max_pos;
    cli_run_fn run;
    const void *data; /* for generated commands (dm) */
} cli_cmd;

typedef struct {
    const char *name;
    const char *summary;
    const cli_cmd *cmds;
    size_t ncmds;
} cli_group;

struct cli_args {
    const cli_cmd *cmd;
    const char *values[CLI_MAX_OPTS]; /* per option of cmd; "true"/"false" for flags and bools */
    const char *pos[CLI_MAX_POS];
    size_t npos;
};

/* Global state of one run: the global options, the resolved login and the HTTP handle. */
struct cli_ctx {
    bool json;
    const char *login;      /* --login */
    const char *login_file; /* --login-file */
    const char *ca;         /* --ca */
    const char *models_dir; /* --models-dir */
    bool verbose;
    const char *argv0_path; /* "iotdm device create": for messages */
    /* Resolved by cli_login(). */
    bool logged_in;
    char host[256];
    char policy[128];
    char key[128];
    void *curl; /* CURL *, created on first use */
};

/* ---- args.c */

/* Parses argv (options of cmd, in any order, mixed with positional arguments). Prints help and
 * returns CLI_HELP_SHOWN for --help; prints the problem and returns CLI_EXIT_USAGE on bad usage. */
int cli_parse(const char *prog, const cli_cmd *cmd, int argc, char **argv, cli_args *out);

/* The value of option name (NULL when not given); flags and bools give "true" or "false". */
const char *cli_arg(const cli_args *args, const char *name);
bool cli_flag(const cli_args *args, const char *name);

/* Parses an integer option in [min, max]; absent: *out keeps its default. Prints the problem. */
int cli_arg_int(const cli_args *args, const char *name, long long min, long long max,
                long long *out);

/* Parses a JSON argument: inline text, or "@FILE" to read it from a file. NULL with a message
 * printed on error. JSON_DECODE_ANY: scalars are allowed. */
json_t *cli_json_arg(const char *option, const char *text);

/* Writes the help of one command. */
void cli_print_cmd_help(FILE *out, const char *prog, const cli_cmd *cmd);

/* Writes a group's command list. */
void cli_print_group_help(FILE *out, const char *prog, const cli_group *g);

/* Prints "iotdm: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* While on, cli_error prints nothing: for probes that have a fallback. */
void cli_set_quiet(bool on);

/* ---- login.c */

/* Resolves the connection string (--login, --login-file, IOTDM_CONNECTION_STRING, the default
 * file) into ctx. Prints the problem; returns an exit code. */
int cli_login(cli_ctx *ctx);

/* Writes a fresh service SAS token (sr = the hub host, as Azure's service SDKs sign it). */
int cli_service_token(const cli_ctx *ctx, char *out, size_t out_cap);

/* ---- http.c */

typedef struct {
    const char *method;
    const char *path;  /* URL path, already encoded, starting with '/' */
    const char *query; /* extra query parameters ("top=10"), or NULL */
    const json_t *body;
    const char *if_match; /* etag without quotes, "*", or NULL */
    const char *continuation;
    long max_items; /* x-ms-max-item-count, 0: not sent */
    long timeout_s; /* whole request; 0: the default; negative: none */
    const char *accept;
    const char *api_version; /* NULL: the IoT Hub service API's */
} cli_request;

typedef struct {
    long status;
    char *body;
    size_t len;
    json_t *json; /* the parsed body, when it is JSON */
    char *continuation;
    char error_code[96]; /* iothub-errorcode */
    char item_type[32];
    char etag[128];
} cli_response;

/* Sends one request. Returns CLI_EXIT_OK when an answer came back (any status; see
 * cli_http_call), CLI_EXIT_UNREACHABLE (printed) when none did. */
int cli_http_do(cli_ctx *ctx, const cli_request *rq, cli_response *out);

/* cli_http_do, then a non-2xx answer is printed ("DeviceNotFound: …") and mapped to an exit code.
 */
int cli_http_call(cli_ctx *ctx, const cli_request *rq, cli_response *out);

/* A streaming GET: on_data receives the body as it arrives (return false to stop). Ends with the
 * stream, after timeout_s (0: never), or when *stop becomes true. Returns an exit code. */
typedef bool (*cli_stream_fn)(void *arg, const char *data, size_t len);
int cli_http_stream(cli_ctx *ctx, const cli_request *rq, cli_stream_fn on_data, void *arg,
                    volatile int *stop);

void cli_response_free(cli_response *r);
void cli_http_cleanup(cli_ctx *ctx);

/* Prints the hub's error from a non-2xx answer: "DeviceNotFound: Device with id 'x' …". */
void cli_print_hub_error(const cli_response *r);

/* Fills r->error_code from the body when the iothub-errorcode header was absent. */
void cli_response_error_code(cli_response *r);

/* Percent-encodes an id for a URL path segment into out; false when it does not fit. */
bool cli_path_escape(const char *id, char *out, size_t cap);

/* ---- output.c */

/* A table for people: fixed columns, rows of strings (copied). */
typedef struct {
    size_t ncols;
    const char *const *headers;
    char **cells; /* nrows * ncols */
    size_t nrows, cap;
} cli_table;

void cli_table_init(cli_table *t, const char *const *headers, size_t ncols);
/* Adds a row of ncols cells; NULL cells print as "-". */
void cli_table_add(cli_table *t, const char *const *cells);
void cli_table_print(FILE *out, const cli_table *t);
void cli_table_free(cli_table *t);

/* Prints JSON for scripts (indented, one document). */
void cli_print_json(const json_t *j);

/* A labelled value for people: label, and a dotted path into the object. */
typedef struct {
    const char *label;
    const char *path;
} cli_field;

/* Prints "label  value" lines, one per field ("-" when absent). */
void cli_print_fields(const json_t *obj, const cli_field *fields, size_t n);

/* A JSON value as short text for a table cell (strings unquoted); the caller frees it. */
char *cli_cell_text(const json_t *v, size_t max_len);

/* A deep copy of v without "$metadata" members (and "$version" when drop_version). */
json_t *cli_strip_metadata(const json_t *v, bool drop_version);

/* ---- command groups */

extern const cli_group cli_group_device, cli_group_twin, cli_group_method, cli_group_job,
    cli_group_c2d, cli_group_monitor, cli_group_query;

/* The dps command tree (enrollment, group, registration, derive-key): the words after "dps". */
int cli_dps_main(cli_ctx *ctx, int argc, char **argv);

/* Completion words for "iotdm dps …"; prints globals after a command's options. */
int cli_dps_complete(int argc, char **argv, const char *globals);

/* The dm group is generated from the DTDL model at run time. */
int cli_dm_main(cli_ctx *ctx, int argc, char **argv);

/* Completion words for "iotdm dm …" (the words typed after "dm"). */
int cli_dm_complete(cli_ctx *ctx, int argc, char **argv);

/* Invokes a direct method and prints its answer (shared by method invoke and the dm commands). */
int cli_invoke_method(cli_ctx *ctx, const char *device_id, const char *method, json_t *payload,
                      long timeout_s, long connect_timeout_s);

/* PATCH /twins/{id} with the body; prints the new twin (--json) or a one-line summary. */
int cli_patch_twin(cli_ctx *ctx, const char *device_id, const json_t *patch, const char *etag,
                   const char *what);

#endif
