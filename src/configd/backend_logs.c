/* Log collectors' backend effects: folders opened without following links, and the journal read
 * through journalctl (linux) or from the simulated journal a test writes (sandbox). */
#include "configd/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_ARGS_MAX (8 + 2 * CFGD_JOURNAL_MATCHES_MAX)
#define JOURNAL_ARG_LEN  (PATH_MAX + 32) /* "--cursor-file=" + a host path */

int cfgd_fs_open_dir(cfgd_backend *be, const char *path, bool create, unsigned mode, int *out_fd,
                     cfgd_error *err)
{
    char host[PATH_MAX], parent[PATH_MAX];
    *out_fd = -1;
    int r = cfgd_fs_map(be, path, host, sizeof host);
    if (r == 0 && create) {
        snprintf(parent, sizeof parent, "%s", host);
        *strrchr(parent, '/') = '\0';
        r = parent[0] ? cfgd_fs_mkdirs(parent, 0755) : 0;
        if (r == 0 && mkdir(host, (mode_t)mode) != 0 && errno != EEXIST)
            r = -errno;
    }
    if (r == 0) {
        *out_fd = open(host, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = *out_fd < 0 ? -errno : 0;
    }
    if (r < 0)
        cfgd_error_set(err, r == -ENOENT ? CFGD_ERR_NOT_FOUND : CFGD_ERR_FAILED,
                       "cannot open the folder %s: %s", path, strerror(-r));
    return r;
}

/* ---- linux: journalctl --------------------------------------------------------------------- */

typedef struct {
    char text[JOURNAL_ARGS_MAX][JOURNAL_ARG_LEN];
    const char *argv[JOURNAL_ARGS_MAX + 1];
    size_t n;
    bool truncated;
} arg_list;

static void add_arg(arg_list *a, const char *option, const char *value)
{
    if (a->n >= JOURNAL_ARGS_MAX)
        return;
    int n = snprintf(a->text[a->n], JOURNAL_ARG_LEN, "%s%s", option, value);
    if (n < 0 || n >= JOURNAL_ARG_LEN)
        a->truncated = true;
    a->argv[a->n] = a->text[a->n];
    a->argv[++a->n] = NULL;
}

/* Every value goes in the same argument as its option ("--unit=x"), so none can pass for an
 * option. --cursor-file makes journalctl resume exactly after the last entry it gave us, which
 * --since alone (whole seconds) cannot; --since still bounds the first read after a start. */
static void journal_args(const cfgd_journal_query *q, const char *cursor_host, arg_list *a)
{
    char since[32];
    a->n = 0;
    add_arg(a, CFGD_JOURNALCTL, "");
    add_arg(a, "--no-pager", "");
    add_arg(a, "--quiet", "");
    add_arg(a, "--utc", "");
    add_arg(a, "--output=short-iso", "");
    add_arg(a, "--cursor-file=", cursor_host);
    snprintf(since, sizeof since, "@%" PRId64, q->since_ms / 1000);
    add_arg(a, "--since=", since);
    for (size_t i = 0; i < q->nunits; i++)
        add_arg(a, "--unit=", q->units[i]);
    for (size_t i = 0; i < q->nidentifiers; i++)
        add_arg(a, "--identifier=", q->identifiers[i]);
    if (q->priority >= 0 && q->priority < 7) {
        char p[4] = {(char)('0' + q->priority), '\0'};
        add_arg(a, "--priority=", p);
    }
}

static int run_journalctl(cfgd_backend *be, const arg_list *a, int out_fd, cfgd_cmd_result *res,
                          cfgd_error *err)
{
    char exec_path[PATH_MAX], root_var[PATH_MAX + 16];
    /* The same fixed environment as every program configd runs (backend_linux.c). */
    const char *env[5] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", "SYSTEMD_PAGER=", NULL,
                          NULL};
    if (be->root[0]) {
        snprintf(root_var, sizeof root_var, "IOTDM_ROOT=%s", be->root);
        env[3] = root_var;
    }
    if (cfgd_fs_map(be, CFGD_JOURNALCTL, exec_path, sizeof exec_path) < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %s: path too long", CFGD_JOURNALCTL);
        return -ENAMETOOLONG;
    }
    return cfgd_run_command_to(exec_path, a->argv, env, be->command_timeout_ms, out_fd, res, err);
}

/* Runs journalctl once more without the cursor when it fails with one: a cursor the journal no
 * longer knows (vacuumed, or a new machine id) must not stop the collector for good. */
static int journal_read(cfgd_backend *be, const arg_list *a, const char *cursor_host, int out_fd,
                        cfgd_cmd_result *res, cfgd_error *err)
{
    off_t start = lseek(out_fd, 0, SEEK_END);
    int r = run_journalctl(be, a, out_fd, res, err);
    if (r == 0 && res->status != 0 && unlink(cursor_host) == 0 && ftruncate(out_fd, start) == 0 &&
        lseek(out_fd, start, SEEK_SET) == start)
        r = run_journalctl(be, a, out_fd, res, err);
    if (r == 0 && res->status != 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "journalctl %s: %.300s",
                       res->timed_out ? "timed out" : "failed", res->output);
        r = -EIO;
    }
    return r;
}

int cfgd_journal_read_linux(cfgd_backend *be, const cfgd_journal_query *q, int out_fd,
                            cfgd_error *err)
{
    char cursor_host[PATH_MAX];
    if (cfgd_fs_map(be, q->cursor_path, cursor_host, sizeof cursor_host) < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "bad cursor path %s", q->cursor_path);
        return -EINVAL;
    }
    arg_list *a = calloc(1, sizeof *a);
    cfgd_cmd_result *res = calloc(1, sizeof *res);
    int r = a && res ? 0 : -ENOMEM;
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
    if (r == 0)
        journal_args(q, cursor_host, a);
    if (r == 0 && a->truncated) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "journalctl arguments too long");
        r = -ENAMETOOLONG;
    }
    if (r == 0)
        r = journal_read(be, a, cursor_host, out_fd, res, err);
    free(a);
    free(res);
    return r;
}

/* ---- sandbox: the simulated journal -------------------------------------------------------- */

/* A field of a journalctl -o json entry: journald writes strings, a test may write numbers. */
static const char *field(const json_t *entry, const char *key, char *buf, size_t cap)
{
    const json_t *v = json_object_get(entry, key);
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

static bool unit_matches(const char *have, const char *want)
{
    if (strcmp(have, want) == 0)
        return true;
    /* journalctl -u ssh means ssh.service */
    size_t n = strlen(want);
    return !strchr(want, '.') && strncmp(have, want, n) == 0 && strcmp(have + n, ".service") == 0;
}

static bool entry_matches(const cfgd_journal_query *q, const json_t *entry)
{
    char buf[32];
    const char *ts = field(entry, "__REALTIME_TIMESTAMP", buf, sizeof buf);
    if (ts && strtoll(ts, NULL, 10) < q->since_ms / 1000 * 1000000)
        return false;
    const char *unit = field(entry, "_SYSTEMD_UNIT", buf, sizeof buf);
    bool ok = q->nunits == 0;
    for (size_t i = 0; !ok && unit && i < q->nunits; i++)
        ok = unit_matches(unit, q->units[i]);
    const char *ident = field(entry, "SYSLOG_IDENTIFIER", buf, sizeof buf);
    bool id_ok = q->nidentifiers == 0;
    for (size_t i = 0; !id_ok && ident && i < q->nidentifiers; i++)
        id_ok = strcmp(ident, q->identifiers[i]) == 0;
    if (!ok || !id_ok)
        return false;
    if (q->priority >= 7)
        return true;
    const char *prio = field(entry, "PRIORITY", buf, sizeof buf);
    return prio && prio[0] >= '0' && prio[0] <= '7' && !prio[1] && prio[0] - '0' <= q->priority;
}

/* One entry as journalctl --utc -o short-iso prints it. */
static int write_entry(int fd, const json_t *entry)
{
    char b1[32], b2[32], b3[32], when[40] = "-";
    const char *ts = field(entry, "__REALTIME_TIMESTAMP", b1, sizeof b1);
    time_t secs = ts ? (time_t)(strtoll(ts, NULL, 10) / 1000000) : time(NULL);
    struct tm tm;
    if (gmtime_r(&secs, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
    const char *host = json_string_value(json_object_get(entry, "_HOSTNAME"));
    const char *ident = field(entry, "SYSLOG_IDENTIFIER", b2, sizeof b2);
    const char *pid = field(entry, "_PID", b3, sizeof b3);
    const char *msg = json_string_value(json_object_get(entry, "MESSAGE"));
    char *line = NULL;
    int n = asprintf(&line, "%s %s %s%s%s%s: %s\n", when, host ? host : "localhost",
                     ident ? ident : "unknown", pid ? "[" : "", pid ? pid : "", pid ? "]" : "",
                     msg ? msg : "");
    if (n < 0)
        return -ENOMEM;
    for (int i = 0; i < n - 1; i++) /* one entry, one line */
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = ' ';
    int r = cfgd_fs_write_all(fd, line, (size_t)n);
    free(line);
    return r;
}

static long long read_cursor(cfgd_backend *be, const char *path)
{
    char text[64];
    cfgd_error ignored;
    long long off = 0;
    if (cfgd_fs_read_file(be, path, text, sizeof text, NULL, &ignored) == 0 &&
        sscanf(text, "sandbox:%lld", &off) == 1 && off >= 0)
        return off;
    return 0;
}

/* The simulated journal is CFGD_SANDBOX_JOURNALD: journalctl -o json lines that a test appends.
 * The cursor is a byte offset after the last whole line read. */
int cfgd_journal_read_sandbox(cfgd_backend *be, const cfgd_journal_query *q, int out_fd,
                              cfgd_error *err)
{
    char host[PATH_MAX];
    if (cfgd_fs_map(be, CFGD_SANDBOX_JOURNALD, host, sizeof host) < 0)
        return -ENAMETOOLONG;
    int fd = open(host, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0; /* an empty journal */
    FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
    if (!f) {
        if (fd >= 0)
            close(fd);
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot read the simulated journal: %s",
                       strerror(errno));
        return -EIO;
    }
    long long start = read_cursor(be, q->cursor_path), off = start;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < off)
        off = 0; /* the test replaced the journal */
    fseeko(f, (off_t)off, SEEK_SET);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int r = 0;
    while (r == 0 && (len = getline(&line, &cap, f)) > 0 && line[len - 1] == '\n') {
        off += len;
        json_t *entry = json_loadb(line, (size_t)len, 0, NULL);
        if (json_is_object(entry) && entry_matches(q, entry))
            r = write_entry(out_fd, entry);
        json_decref(entry);
    }
    free(line);
    fclose(f);
    char text[64];
    snprintf(text, sizeof text, "sandbox:%lld\n", off);
    if (r == 0 && off != start)
        r = cfgd_fs_write_file(be, q->cursor_path, text, strlen(text), 0640, err);
    else if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot write the collected log: %s", strerror(-r));
    return r;
}
