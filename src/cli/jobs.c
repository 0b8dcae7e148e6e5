/* iotdm job: jobs v2 over many devices at once (docs/jobs.md): create, show, list, cancel, and
 * --wait to follow one to its end. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define ID_ESC_MAX 256

static int job_path(const char *id, const char *suffix, char *out, size_t cap)
{
    char esc[ID_ESC_MAX];
    if (!cli_path_escape(id, esc, sizeof esc)) {
        cli_error("job id too long");
        return CLI_EXIT_USAGE;
    }
    snprintf(out, cap, "/jobs/v2/%s%s", esc, suffix);
    return CLI_EXIT_OK;
}

static void print_job(const cli_ctx *ctx, const json_t *job)
{
    if (ctx->json) {
        cli_print_json(job);
        return;
    }
    const json_t *st = json_object_get(job, "deviceJobStatistics");
    printf("Job:       %s (%s)\n", json_string_value(json_object_get(job, "jobId")),
           json_string_value(json_object_get(job, "type")));
    printf("Status:    %s\n", json_string_value(json_object_get(job, "status")));
    printf("Condition: %s\n", json_string_value(json_object_get(job, "queryCondition")));
    printf("Start:     %s\n", json_string_value(json_object_get(job, "startTime")));
    const char *end = json_string_value(json_object_get(job, "endTime"));
    if (end)
        printf("End:       %s\n", end);
    if (st)
        printf("Devices:   %lld (succeeded %lld, failed %lld, running %lld, pending %lld)\n",
               (long long)json_integer_value(json_object_get(st, "deviceCount")),
               (long long)json_integer_value(json_object_get(st, "succeededCount")),
               (long long)json_integer_value(json_object_get(st, "failedCount")),
               (long long)json_integer_value(json_object_get(st, "runningCount")),
               (long long)json_integer_value(json_object_get(st, "pendingCount")));
}

static bool ended(const json_t *job)
{
    const char *s = json_string_value(json_object_get(job, "status"));
    return s && (!strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled"));
}

/* The exit code a job's end gives: 0 when every device succeeded. */
static int job_exit(const json_t *job)
{
    const char *s = json_string_value(json_object_get(job, "status"));
    const json_t *st = json_object_get(job, "deviceJobStatistics");
    if (s && !strcmp(s, "completed") && json_integer_value(json_object_get(st, "failedCount")) == 0)
        return CLI_EXIT_OK;
    if (s && !strcmp(s, "completed"))
        cli_error("%lld device(s) failed",
                  (long long)json_integer_value(json_object_get(st, "failedCount")));
    else
        cli_error("the job ended %s", s ? s : "unknown");
    return CLI_EXIT_DEVICE;
}

/* Polls the job until it ends or timeout_s passes. */
static int wait_for(cli_ctx *ctx, const char *id, long long timeout_s)
{
    char path[ID_ESC_MAX + 32];
    int rc = job_path(id, "", path, sizeof path);
    time_t give_up = time(NULL) + timeout_s;
    while (rc == CLI_EXIT_OK) {
        cli_response r;
        cli_request rq = {.method = "GET", .path = path};
        rc = cli_http_call(ctx, &rq, &r);
        if (rc == CLI_EXIT_OK && (ended(r.json) || time(NULL) >= give_up)) {
            print_job(ctx, r.json);
            rc = ended(r.json) ? job_exit(r.json) : CLI_EXIT_OFFLINE;
            if (rc == CLI_EXIT_OFFLINE)
                cli_error("the job had not ended after %lld s", timeout_s);
            cli_response_free(&r);
            return rc;
        }
        cli_response_free(&r);
        if (rc == CLI_EXIT_OK)
            sleep(1);
    }
    return rc;
}

static int cmd_create(cli_ctx *ctx, const cli_args *a)
{
    const char *id = cli_arg(a, "job-id"), *type = cli_arg(a, "job-type");
    bool twin = !strcmp(type, "twin") || !strcmp(type, "scheduleUpdateTwin");
    bool method = !strcmp(type, "method") || !strcmp(type, "scheduleDeviceMethod");
    if (!twin && !method) {
        cli_error("--job-type is twin or method");
        return CLI_EXIT_USAGE;
    }
    long long ttl = 3600, timeout = 30, connect = 0, wait_s = 600;
    int rc = cli_arg_int(a, "ttl", 1, 7 * 24 * 3600, &ttl);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "method-timeout", 5, 300, &timeout);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "method-connect-timeout", 0, 300, &connect);
    if (rc == CLI_EXIT_OK)
        rc = cli_arg_int(a, "wait-timeout", 1, 7 * 24 * 3600, &wait_s);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_t *body = json_pack("{s:s, s:s, s:s, s:I}", "jobId", id, "type",
                             twin ? "scheduleUpdateTwin" : "scheduleDeviceMethod", "queryCondition",
                             cli_arg(a, "query"), "maxExecutionTimeInSeconds", (json_int_t)ttl);
    if (cli_arg(a, "start"))
        json_object_set_new(body, "startTime", json_string(cli_arg(a, "start")));
    if (twin) {
        const char *patch_text = cli_arg(a, "twin-patch");
        json_t *patch = patch_text ? cli_json_arg("twin-patch", patch_text) : NULL;
        if (!patch || !json_is_object(patch)) {
            if (patch || !patch_text)
                cli_error("a twin job needs --twin-patch, a JSON object with tags and/or "
                          "properties.desired");
            json_decref(patch);
            json_decref(body);
            return CLI_EXIT_USAGE;
        }
        json_object_set_new(patch, "etag", json_string("*"));
        json_object_set_new(body, "updateTwin", patch);
    } else {
        const char *name = cli_arg(a, "method-name");
        if (!name) {
            cli_error("a method job needs --method-name");
            json_decref(body);
            return CLI_EXIT_USAGE;
        }
        json_t *payload = NULL;
        const char *text = cli_arg(a, "method-payload");
        if (text && !(payload = cli_json_arg("method-payload", text))) {
            json_decref(body);
            return CLI_EXIT_USAGE;
        }
        json_object_set_new(body, "cloudToDeviceMethod",
                            json_pack("{s:s, s:o, s:I, s:I}", "methodName", name, "payload",
                                      payload ? payload : json_null(), "responseTimeoutInSeconds",
                                      (json_int_t)timeout, "connectTimeoutInSeconds",
                                      (json_int_t)connect));
    }
    char path[ID_ESC_MAX + 32];
    rc = job_path(id, "", path, sizeof path);
    cli_response r = {0};
    if (rc == CLI_EXIT_OK) {
        cli_request rq = {.method = "PUT", .path = path, .body = body};
        rc = cli_http_call(ctx, &rq, &r);
    }
    json_decref(body);
    if (rc == CLI_EXIT_OK && !cli_flag(a, "wait"))
        print_job(ctx, r.json);
    cli_response_free(&r);
    if (rc == CLI_EXIT_OK && cli_flag(a, "wait"))
        rc = wait_for(ctx, id, wait_s);
    return rc;
}

static int cmd_show(cli_ctx *ctx, const cli_args *a)
{
    char path[ID_ESC_MAX + 32];
    int rc = job_path(cli_arg(a, "job-id"), "", path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (cli_flag(a, "wait")) {
        long long wait_s = 600;
        rc = cli_arg_int(a, "wait-timeout", 1, 7 * 24 * 3600, &wait_s);
        return rc == CLI_EXIT_OK ? wait_for(ctx, cli_arg(a, "job-id"), wait_s) : rc;
    }
    cli_response r;
    cli_request rq = {.method = "GET", .path = path};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK)
        print_job(ctx, r.json);
    cli_response_free(&r);
    return rc;
}

static int cmd_cancel(cli_ctx *ctx, const cli_args *a)
{
    char path[ID_ESC_MAX + 32];
    int rc = job_path(cli_arg(a, "job-id"), "/cancel", path, sizeof path);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_response r;
    cli_request rq = {.method = "POST", .path = path};
    rc = cli_http_call(ctx, &rq, &r);
    if (rc == CLI_EXIT_OK)
        print_job(ctx, r.json);
    cli_response_free(&r);
    return rc;
}

static int cmd_list(cli_ctx *ctx, const cli_args *a)
{
    char query[128] = "";
    const char *type = cli_arg(a, "job-type"), *status = cli_arg(a, "job-status");
    if (type && strcmp(type, "twin") == 0)
        type = "scheduleUpdateTwin";
    else if (type && strcmp(type, "method") == 0)
        type = "scheduleDeviceMethod";
    if (type || status)
        snprintf(query, sizeof query, "%s%s%s%s%s", type ? "jobType=" : "", type ? type : "",
                 type && status ? "&" : "", status ? "jobStatus=" : "", status ? status : "");
    json_t *all = json_array();
    char *cont = NULL;
    int rc = CLI_EXIT_OK;
    do {
        cli_response r;
        cli_request rq = {.method = "GET",
                          .path = "/jobs/v2/query",
                          .query = query[0] ? query : NULL,
                          .continuation = cont,
                          .max_items = 100};
        rc = cli_http_call(ctx, &rq, &r);
        free(cont);
        cont = NULL;
        if (rc == CLI_EXIT_OK) {
            json_array_extend(all, r.json);
            if (r.continuation)
                cont = strdup(r.continuation);
        }
        cli_response_free(&r);
    } while (rc == CLI_EXIT_OK && cont);
    if (rc == CLI_EXIT_OK && ctx->json) {
        cli_print_json(all);
    } else if (rc == CLI_EXIT_OK) {
        static const char *const headers[] = {"JOB",     "TYPE",   "STATUS",
                                              "DEVICES", "FAILED", "CREATED"};
        cli_table t;
        cli_table_init(&t, headers, 6);
        size_t i;
        json_t *job;
        json_array_foreach(all, i, job)
        {
            const json_t *st = json_object_get(job, "deviceJobStatistics");
            char devices[24], failed[24];
            snprintf(devices, sizeof devices, "%lld",
                     (long long)json_integer_value(json_object_get(st, "deviceCount")));
            snprintf(failed, sizeof failed, "%lld",
                     (long long)json_integer_value(json_object_get(st, "failedCount")));
            const char *cells[] = {json_string_value(json_object_get(job, "jobId")),
                                   json_string_value(json_object_get(job, "type")),
                                   json_string_value(json_object_get(job, "status")),
                                   devices,
                                   failed,
                                   json_string_value(json_object_get(job, "createdTime"))};
            cli_table_add(&t, cells);
        }
        cli_table_print(stdout, &t);
        cli_table_free(&t);
    }
    json_decref(all);
    return rc;
}

static const cli_opt create_opts[] = {
    {"job-id", CLI_OPT_VALUE, "ID", "The job's id (letters, digits and '-', up to 64)", true},
    {"job-type", CLI_OPT_VALUE, "twin|method", "Update twins, or invoke a direct method", true},
    {"query", CLI_OPT_VALUE, "CONDITION",
     "The devices, as a WHERE condition (\"tags.site = 'north'\", or \"*\" for all)", true},
    {"twin-patch", CLI_OPT_VALUE, "JSON|@FILE",
     "twin: tags and/or properties.desired to merge into every twin", false},
    {"method-name", CLI_OPT_VALUE, "NAME", "method: the method to invoke", false},
    {"method-payload", CLI_OPT_VALUE, "JSON|@FILE", "method: its payload (default null)", false},
    {"method-timeout", CLI_OPT_VALUE, "S", "method: seconds to wait for each answer (default 30)",
     false},
    {"method-connect-timeout", CLI_OPT_VALUE, "S",
     "method: seconds to wait for an offline device per attempt (default 0; offline devices are "
     "tried again until the job's time runs out)",
     false},
    {"start", CLI_OPT_VALUE, "TIME", "When to start (ISO 8601 with a UTC offset; default now)",
     false},
    {"ttl", CLI_OPT_VALUE, "S", "The job's time from its start, in seconds (default 3600)", false},
    {"wait", CLI_OPT_FLAG, NULL,
     "Wait for the job to end; exit code 0 when every device succeeded, 10 otherwise, 6 on "
     "timeout",
     false},
    {"wait-timeout", CLI_OPT_VALUE, "S", "With --wait: give up after this long (default 600)",
     false},
};

static const cli_opt show_opts[] = {
    {"job-id", CLI_OPT_VALUE, "ID", "The job's id", true},
    {"wait", CLI_OPT_FLAG, NULL, "Wait for the job to end (exit codes as job create --wait)",
     false},
    {"wait-timeout", CLI_OPT_VALUE, "S", "With --wait: give up after this long (default 600)",
     false},
};

static const cli_opt cancel_opts[] = {
    {"job-id", CLI_OPT_VALUE, "ID", "The job's id", true},
};

static const cli_opt list_opts[] = {
    {"job-type", CLI_OPT_VALUE, "twin|method", "Only jobs of this type", false},
    {"job-status", CLI_OPT_VALUE, "STATUS",
     "Only jobs in this status (queued, scheduled, running, completed, failed, cancelled)", false},
};

static const cli_cmd job_cmds[] = {
    {"create", "Create a job that updates twins or invokes a method on every matching device.",
     create_opts, sizeof create_opts / sizeof create_opts[0], NULL, 0, 0, cmd_create, NULL},
    {"show", "Show a job and its device counts.", show_opts, sizeof show_opts / sizeof show_opts[0],
     NULL, 0, 0, cmd_show, NULL},
    {"list", "List jobs, newest first.", list_opts, sizeof list_opts / sizeof list_opts[0], NULL, 0,
     0, cmd_list, NULL},
    {"cancel", "Cancel a job; devices not yet reached are left alone.", cancel_opts,
     sizeof cancel_opts / sizeof cancel_opts[0], NULL, 0, 0, cmd_cancel, NULL},
};

const cli_group cli_group_job = {"job", "Jobs over many devices: create, show, list, cancel",
                                 job_cmds, sizeof job_cmds / sizeof job_cmds[0]};
