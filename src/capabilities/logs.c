/* logCollectors (journald collectors kept by configd) and the log-file commands dm*listLogFolders,
 * dm*listLogFiles, dm*uploadLogFile (through the hub's file-upload API) and dm*deleteLogFile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capabilities/capabilities.h"
#include "common/log.h"

/* configd collects only when asked: this often while a collector runs, and at every apply. */
#define COLLECT_INTERVAL_MS (60 * 1000)
#define PROPERTY            "logCollectors"

typedef struct {
    cap_env *env;
    json_t *state;  /* persisted: "reported" (names in the twin), "ac", "ad" (the last ack) */
    json_t *errors; /* name -> {"errorCode","errorMessage"} of the last apply, kept till the next */
    char *last_core; /* the last reported value without deletions, to report changes only */
    char *value_text;
    char ack_text[512];
    int64_t next_collect_ms;
} logs_cap;

static const char state_name[] = "logs";

static char *canonical(json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* What configd says about each collector, with the refusals of the last apply and a failed
 * collection next to them, as per-item errors are everywhere in the twin. */
static json_t *core_value(logs_cap *lc, json_t *collectors)
{
    json_t *v = json_deep_copy(collectors);
    if (!json_is_object(v)) {
        json_decref(v);
        v = json_object();
    }
    const char *name;
    json_t *item;
    json_object_foreach(v, name, item)
    {
        json_t *failed = json_object_get(item, "error");
        if (json_is_string(failed)) {
            json_object_set_new(item, "errorCode", json_integer(500));
            json_object_set(item, "errorMessage", failed);
        }
        json_object_del(item, "error");
    }
    json_t *e;
    json_object_foreach(lc->errors, name, e)
    {
        item = json_object_get(v, name);
        if (!item)
            json_object_set_new(v, name, item = json_object());
        json_object_update(item, e);
    }
    return v;
}

/* Reported properties merge, so a collector that is gone must be reported as null once. */
static json_t *with_deletions(logs_cap *lc, json_t *core)
{
    json_t *v = json_deep_copy(core), *names = json_array();
    size_t i;
    json_t *old;
    json_array_foreach(json_object_get(lc->state, "reported"), i, old)
    {
        if (json_is_string(old) && !json_object_get(core, json_string_value(old)))
            json_object_set_new(v, json_string_value(old), json_null());
    }
    const char *name;
    json_t *item;
    json_object_foreach(core, name, item)
    {
        json_array_append_new(names, json_string(name));
    }
    json_object_set_new(lc->state, "reported", names);
    free(lc->last_core);
    lc->last_core = canonical(core);
    return v;
}

static void save(logs_cap *lc)
{
    if (cap_state_save(lc->env, state_name, lc->state) < 0)
        log_warn("logs", "cannot save state dir=%s", lc->env->state_dir);
}

static json_t *configd_collectors(logs_cap *lc, const char *op, char *err, size_t err_cap)
{
    json_t *result = NULL;
    if (lc->env->configd(lc->env->configd_ctx, op, NULL, &result, err, err_cap) < 0)
        return NULL;
    json_t *c = json_incref(json_object_get(result, "collectors"));
    json_decref(result);
    return c;
}

static int error_code(iotdm_result r)
{
    return r == IOTDM_E_MALFORMED || r == IOTDM_E_TOO_LARGE ? 400 : 500;
}

/* Applies one desired collector; a refusal is kept next to it. Returns the ack code. */
static int apply_collector(logs_cap *lc, const char *name, json_t *settings)
{
    char err[400] = "";
    iotdm_result r = IOTDM_E_MALFORMED;
    if (!json_is_object(settings)) {
        snprintf(err, sizeof err, "the settings of a collector must be an object");
    } else {
        json_t *args = json_pack("{s:s, s:O}", "name", name, "settings", settings), *res = NULL;
        r = lc->env->configd(lc->env->configd_ctx, "logs.set_collector", args, &res, err,
                             sizeof err);
        json_decref(args);
        json_decref(res);
    }
    if (r == IOTDM_OK)
        return 200;
    json_object_set_new(lc->errors, name,
                        json_pack("{s:i, s:s}", "errorCode", error_code(r), "errorMessage", err));
    return error_code(r);
}

/* Collectors configd has that the desired value no longer names: stopped and forgotten (their
 * files stay in their folder). */
static int remove_others(logs_cap *lc, json_t *desired)
{
    char err[400];
    json_t *have = configd_collectors(lc, "logs.status", err, sizeof err);
    if (!have)
        return 500;
    int code = 200;
    const char *name;
    json_t *item;
    json_object_foreach(have, name, item)
    {
        json_t *d = json_object_get(desired, name);
        if (d && !json_is_null(d))
            continue;
        json_t *args = json_pack("{s:s}", "name", name), *res = NULL;
        iotdm_result r = lc->env->configd(lc->env->configd_ctx, "logs.remove_collector", args, &res,
                                          err, sizeof err);
        json_decref(args);
        json_decref(res);
        if (r < 0) {
            json_object_set_new(lc->errors, name,
                                json_pack("{s:i, s:s}", "errorCode", 500, "errorMessage", err));
            code = 500;
        }
    }
    json_decref(have);
    return code;
}

static void remember_ack(logs_cap *lc, int code, const char *description)
{
    json_object_set_new(lc->state, "ac", json_integer(code));
    json_object_set_new(lc->state, "ad", json_string(description));
}

static void collectors_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    logs_cap *lc = ctx;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    json_object_clear(lc->errors);
    int code = 200;
    const char *name;
    json_t *settings;
    json_object_foreach(desired, name, settings)
    {
        int c = json_is_null(settings) ? 200 : apply_collector(lc, name, settings);
        code = c > code ? c : code;
    }
    int removed = remove_others(lc, desired);
    code = removed > code ? removed : code;
    json_decref(desired);
    char err[400] = "";
    json_t *collectors = configd_collectors(lc, "logs.status", err, sizeof err);
    if (!collectors) {
        cap_ack_error(ack, 500, lc->ack_text, sizeof lc->ack_text, "%s", err);
        return;
    }
    size_t bad = json_object_size(lc->errors);
    if (bad) {
        void *it = json_object_iter(lc->errors);
        const char *first = json_object_iter_key(it);
        json_t *msg = json_object_get(json_object_iter_value(it), "errorMessage");
        cap_ack_error(ack, code, lc->ack_text, sizeof lc->ack_text,
                      "%zu collector(s) not applied; %s: %s", bad, first, json_string_value(msg));
    } else {
        ack->code = 200;
        ack->description = "applied";
    }
    json_t *core = core_value(lc, collectors);
    cap_ack_value(ack, &lc->value_text, with_deletions(lc, core));
    json_decref(core);
    json_decref(collectors);
    remember_ack(lc, ack->code, ack->description);
    save(lc);
}

static char *collectors_read(void *ctx)
{
    logs_cap *lc = ctx;
    char err[400];
    json_t *collectors = configd_collectors(lc, "logs.status", err, sizeof err);
    if (!collectors)
        return NULL;
    json_t *core = core_value(lc, collectors), *v = with_deletions(lc, core);
    save(lc);
    char *text = canonical(v);
    json_decref(v);
    json_decref(core);
    json_decref(collectors);
    return text;
}

/* ---- periodic collection -------------------------------------------------------------------- */

static int64_t logs_next_due(void *ctx)
{
    return ((logs_cap *)ctx)->next_collect_ms;
}

/* Collects, and reports the value again when anything in it changed (files, bytes, state). */
static void logs_run_due(void *ctx, int64_t now_ms)
{
    logs_cap *lc = ctx;
    lc->next_collect_ms = now_ms + COLLECT_INTERVAL_MS;
    char err[400];
    json_t *collectors = configd_collectors(lc, "logs.collect", err, sizeof err);
    if (!collectors)
        return;
    json_t *core = core_value(lc, collectors);
    char *text = canonical(core);
    if (text && (!lc->last_core || strcmp(text, lc->last_core) != 0)) {
        json_t *ac = json_object_get(lc->state, "ac");
        const char *ad = json_string_value(json_object_get(lc->state, "ad"));
        iotdm_ack ack = {ac ? (int)json_integer_value(ac) : 203, ad ? ad : "reported by the device",
                         NULL};
        snprintf(lc->ack_text, sizeof lc->ack_text, "%s", ack.description);
        ack.description = lc->ack_text;
        /* with_deletions records the names as reported: if the report is not stored, the twin
         * still shows the old ones, so put them back and report again at the next collection. */
        json_t *before = json_incref(json_object_get(lc->state, "reported"));
        cap_ack_value(&ack, &lc->value_text, with_deletions(lc, core));
        iotdm_result r = iotdm_report_ack(lc->env->client, CAP_COMPONENT, PROPERTY, -1, &ack);
        if (r < 0) {
            log_error("logs", "cannot report the collectors: %s", iotdm_result_message(r));
            if (before)
                json_object_set(lc->state, "reported", before);
            else
                json_object_del(lc->state, "reported");
            free(lc->last_core);
            lc->last_core = NULL;
        }
        json_decref(before);
        save(lc);
    }
    free(text);
    json_decref(core);
    json_decref(collectors);
}

/* ---- commands ------------------------------------------------------------------------------- */

static int answer_error(char **out_json, int status, const char *message)
{
    json_t *m = json_pack("{s:s}", "message", message);
    *out_json = cap_dump(m);
    json_decref(m);
    return status;
}

/* configd's answer as a method status: its "no log …" refusals are 404s. */
static int failure_status(iotdm_result r, const char *err)
{
    if (r == IOTDM_E_MALFORMED)
        return strncmp(err, "no log ", 7) == 0 ? 404 : 400;
    return r == IOTDM_E_TOO_LARGE ? 413 : 500;
}

/* {"folder"} or {"folder","file"} from a command payload, as configd arguments. */
static json_t *name_args(const char *payload, bool with_file, char **out_json, int *out_status)
{
    json_t *p = json_loads(payload, JSON_DECODE_ANY, NULL);
    const json_t *folder = json_object_get(p, "folder"), *file = json_object_get(p, "file");
    json_t *args = NULL;
    if (!json_is_string(folder) || (with_file && !json_is_string(file)))
        *out_status = answer_error(out_json, 400,
                                   with_file ? "the payload must be {\"folder\": …, \"file\": …}"
                                             : "the payload must be {\"folder\": …}");
    else if (with_file)
        args = json_pack("{s:O, s:O}", "folder", folder, "file", file);
    else
        args = json_pack("{s:O}", "folder", folder);
    json_decref(p);
    return args;
}

/* Runs op and answers with its result member (or the whole result when member is NULL). */
static int simple_command(logs_cap *lc, const char *op, json_t *args, const char *member,
                          char **out_json)
{
    char err[400] = "";
    json_t *result = NULL;
    iotdm_result r = lc->env->configd(lc->env->configd_ctx, op, args, &result, err, sizeof err);
    json_decref(args);
    if (r < 0)
        return answer_error(out_json, failure_status(r, err), err);
    *out_json = member ? cap_dump(json_object_get(result, member)) : NULL;
    json_decref(result);
    return 200;
}

static int list_folders_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name, (void)payload;
    return simple_command(ctx, "logs.list_folders", NULL, "folders", out_json);
}

static int list_files_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    int status = 0;
    json_t *args = name_args(payload, false, out_json, &status);
    return args ? simple_command(ctx, "logs.list_files", args, "files", out_json) : status;
}

static int delete_file_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    int status = 0;
    json_t *args = name_args(payload, true, out_json, &status);
    return args ? simple_command(ctx, "logs.delete_file", args, NULL, out_json) : status;
}

/* configd copies the file into a memory file of ours: the agent never reads the logs folder. */
static int scratch_file(logs_cap *lc)
{
    int fd = memfd_create("iotdm-log", MFD_CLOEXEC);
    if (fd < 0)
        fd = open(lc->env->state_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    return fd;
}

/* Synchronous: the DTDL answer carries the blob name, and a collected file is at most 16 MiB. */
static int upload_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    logs_cap *lc = ctx;
    int status = 0;
    json_t *args = name_args(payload, true, out_json, &status), *result = NULL;
    if (!args)
        return status;
    char err[400] = "", blob[1100], hub_blob[1200];
    snprintf(blob, sizeof blob, "logs/%s/%s", json_string_value(json_object_get(args, "folder")),
             json_string_value(json_object_get(args, "file")));
    int fd = scratch_file(lc);
    iotdm_result r = fd < 0 ? -errno : IOTDM_OK;
    if (r < 0)
        snprintf(err, sizeof err, "cannot make a temporary file: %s", strerror(errno));
    else
        r = lc->env->configd_fds(lc->env->configd_ctx, "logs.read_file", args, &fd, 1, &result, err,
                                 sizeof err);
    json_decref(args);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return answer_error(out_json, failure_status(r, err), err);
    }
    json_int_t size = json_integer_value(json_object_get(result, "size"));
    json_decref(result);
    if (lseek(fd, 0, SEEK_SET) != 0)
        r = -errno;
    else
        r = lc->env->upload(lc->env->transfer_ctx, fd, blob, hub_blob, sizeof hub_blob, err,
                            sizeof err);
    close(fd);
    if (r < 0) {
        log_warn("logs", "upload of %s failed: %s", blob, err);
        return answer_error(out_json, 502, err);
    }
    json_t *answer = json_pack("{s:s, s:I}", "blobName", hub_blob, "size", size);
    *out_json = cap_dump(answer);
    json_decref(answer);
    return 200;
}

iotdm_result cap_logs_start(cap_env *env, void **out_state, cap_timer *out_timer)
{
    logs_cap *lc = calloc(1, sizeof *lc);
    if (!lc)
        return -ENOMEM;
    lc->env = env;
    lc->state = cap_state_load(env, state_name);
    lc->errors = json_object();
    lc->next_collect_ms = env->now_ms(env->clock_ctx) + COLLECT_INTERVAL_MS;
    *out_state = lc;
    *out_timer = (cap_timer){logs_next_due, logs_run_due, lc};
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = CAP_COMPONENT,
                                .property = PROPERTY,
                                .on_desired = collectors_desired,
                                .read_state = collectors_read,
                                .ctx = lc};
    static const struct {
        const char *name;
        iotdm_method_fn fn;
    } commands[] = {{"listLogFolders", list_folders_command},
                    {"listLogFiles", list_files_command},
                    {"uploadLogFile", upload_command},
                    {"deleteLogFile", delete_file_command}};
    iotdm_result r = iotdm_handler_add(env->client, &h);
    for (size_t i = 0; r == IOTDM_OK && i < sizeof commands / sizeof *commands; i++)
        r = iotdm_command_register(env->client, CAP_COMPONENT, commands[i].name, commands[i].fn,
                                   lc);
    return r;
}

void cap_logs_stop(void *state)
{
    logs_cap *lc = state;
    if (!lc)
        return;
    json_decref(lc->state);
    json_decref(lc->errors);
    free(lc->last_core);
    free(lc->value_text);
    free(lc);
}
