/* The seam between configd's operations and the OS: every effect goes through this vtable. */
#ifndef IOTDM_CONFIGD_BACKEND_H
#define IOTDM_CONFIGD_BACKEND_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "configd/config.h"
#include "iotdm/result.h"
#include "proto/configd_frame.h"

#define CFGD_SYSTEMCTL        "/usr/bin/systemctl"
#define CFGD_CMD_OUTPUT_MAX   4096
#define CFGD_SANDBOX_STATE    "/var/lib/iotdm-sandbox" /* under the sandbox directory */
#define CFGD_SANDBOX_JOURNAL  CFGD_SANDBOX_STATE "/journal.jsonl"
#define CFGD_SANDBOX_SERVICES CFGD_SANDBOX_STATE "/services.json"
#define CFGD_SANDBOX_BOOT     CFGD_SANDBOX_STATE "/boot_time"
/* Log collectors (backend_logs.c): journalctl, or the simulated journal a test writes. */
#define CFGD_JOURNALCTL          "/usr/bin/journalctl"
#define CFGD_SANDBOX_JOURNALD    CFGD_SANDBOX_STATE "/journald.jsonl"
#define CFGD_JOURNAL_MATCHES_MAX 16

/* What a command did. */
typedef struct {
    int status;                       /* exit status; -1 when it was killed (timeout or signal) */
    bool timed_out;                   /* killed because it ran past the timeout */
    char output[CFGD_CMD_OUTPUT_MAX]; /* stdout and stderr interleaved, truncated, NUL-terminated */
    size_t output_len;
} cfgd_cmd_result;

typedef enum {
    CFGD_SVC_ENABLE,
    CFGD_SVC_DISABLE,
    CFGD_SVC_START,
    CFGD_SVC_STOP,
    CFGD_SVC_TRY_RESTART /* restart only when running */
} cfgd_svc_action;

typedef struct {
    bool enabled;
    bool active;
} cfgd_svc_state;

typedef struct cfgd_backend cfgd_backend;

/* Which journal entries a log collector takes: units AND identifiers AND priority, as journalctl
 * combines -u, -t and -p (several units or several identifiers: any of them). */
typedef struct cfgd_journal_query {
    const char *units[CFGD_JOURNAL_MATCHES_MAX];
    size_t nunits;
    const char *identifiers[CFGD_JOURNAL_MATCHES_MAX];
    size_t nidentifiers;
    int priority;            /* 0 (emerg) .. 7 (debug): this level and more severe */
    int64_t since_ms;        /* entries older than this second are skipped */
    const char *cursor_path; /* device path of the cursor file */
} cfgd_journal_query;

/* What differs between the real system and the sandbox: commands, services, reboots, the clock
 * and the journal. Files are the same for both (cfgd_fs_* below, under the backend's root).
 * Every function returns 0 or -errno and, on failure, fills err (code "failed" unless said
 * otherwise) with a message naming the device path, never a secret. */
typedef struct {
    const char *name; /* "linux", "sandbox" */
    bool simulated;   /* reboots, services and hooks are recorded, not done */

    /* Runs argv[0] (absolute) with argv and envp, no shell, with the configured timeout. 0 means it
     * ran (look at out->status); -errno means it could not be started. */
    IOTDM_NODISCARD iotdm_result (*run)(cfgd_backend *be, const char *const *argv,
                                        const char *const *envp, cfgd_cmd_result *out,
                                        cfgd_error *err);
    IOTDM_NODISCARD iotdm_result (*service)(cfgd_backend *be, const char *unit,
                                            cfgd_svc_action action, cfgd_error *err);
    /* A unit that cannot be queried reads as neither enabled nor active. */
    IOTDM_NODISCARD iotdm_result (*service_state)(cfgd_backend *be, const char *unit,
                                                  cfgd_svc_state *out, cfgd_error *err);
    /* Starts a reboot (real) or records one and moves the boot time (simulated). */
    IOTDM_NODISCARD iotdm_result (*reboot)(cfgd_backend *be, const char *reason, cfgd_error *err);
    /* Boot time in milliseconds since the epoch. */
    IOTDM_NODISCARD iotdm_result (*boot_time)(cfgd_backend *be, int64_t *out_ms, cfgd_error *err);
    /* Whether the system clock is synchronised (NTP). */
    IOTDM_NODISCARD iotdm_result (*clock_synced)(cfgd_backend *be, bool *out, cfgd_error *err);
    /* Records an event with its fields (borrowed): the sandbox journal, or a log line. */
    IOTDM_NODISCARD iotdm_result (*journal)(cfgd_backend *be, const char *event,
                                            const json_t *fields);
    /* Appends to out_fd, as journalctl's short-iso text, the journal entries that match q and
     * come after the cursor in q->cursor_path, then advances the cursor. */
    IOTDM_NODISCARD iotdm_result (*journal_read)(cfgd_backend *be, const cfgd_journal_query *q,
                                                 int out_fd, cfgd_error *err);
} cfgd_backend_vt;

struct cfgd_backend {
    const cfgd_backend_vt *vt;
    char root[PATH_MAX]; /* "" = the real root */
    int command_timeout_ms;
};

/* The real system; root (may be "" or NULL) prefixes every path it writes and every program it
 * runs, so that it can be tested against a throwaway root. Returns NULL with a message on failure.
 */
cfgd_backend *cfgd_backend_linux_new(const char *root, int command_timeout_ms, char *error,
                                     size_t error_cap);
/* The sandbox in dir (created if missing): files under dir, commands recorded, effects simulated.
 */
cfgd_backend *cfgd_backend_sandbox_new(const char *dir, int command_timeout_ms, char *error,
                                       size_t error_cap);
void cfgd_backend_free(cfgd_backend *be);

/* ---- shared by both backends (backend_fs.c, backend_run.c) ---- */

/* root + path into buf; -ENAMETOOLONG or -EINVAL (path not absolute and clean). */
IOTDM_NODISCARD iotdm_result cfgd_fs_map(const cfgd_backend *be, const char *path, char *buf,
                                         size_t cap);
/* The files of a device, the same for both backends: paths are absolute device paths
 * ("/etc/timezone"), mapped under the backend's root (cfgd_fs_map). Each returns 0 or -errno and,
 * on failure, fills err (code "failed" unless said otherwise) naming the device path. */

/* Writes a whole file atomically (temporary file, fsync, rename), creating missing parents. */
IOTDM_NODISCARD iotdm_result cfgd_fs_write_file(cfgd_backend *be, const char *path,
                                                const void *data, size_t len, unsigned mode,
                                                cfgd_error *err);
/* Reads at most cap - 1 bytes and NUL-terminates; -ENOENT for a missing file. */
IOTDM_NODISCARD iotdm_result cfgd_fs_read_file(cfgd_backend *be, const char *path, char *buf,
                                               size_t cap, size_t *out_len, cfgd_error *err);
/* Makes path a symbolic link to target, atomically replacing what was there. */
IOTDM_NODISCARD iotdm_result cfgd_fs_symlink(cfgd_backend *be, const char *target, const char *path,
                                             cfgd_error *err);
/* The target of a symbolic link (NUL-terminated); -EINVAL when path is not a link. */
IOTDM_NODISCARD iotdm_result cfgd_fs_readlink(cfgd_backend *be, const char *path, char *buf,
                                              size_t cap, cfgd_error *err);
/* Removes a file, link or whole tree without following links, sparing the device paths in
 * keep[0..nkeep) and the folders leading to them. *out_existed says whether path existed. */
IOTDM_NODISCARD iotdm_result cfgd_fs_remove(cfgd_backend *be, const char *path,
                                            const char (*keep)[CFGD_PATH_MAX], size_t nkeep,
                                            bool *out_existed, cfgd_error *err);
/* 1 when path exists (as anything, links not followed), 0 when not, or -errno. */
IOTDM_NODISCARD int cfgd_fs_exists(cfgd_backend *be, const char *path);
/* Where to read read-only system data (the zoneinfo database, os-release): the root's copy when
 * it has one, else the host's. The result is a host path. */
IOTDM_NODISCARD iotdm_result cfgd_fs_system_path(cfgd_backend *be, const char *path, char *buf,
                                                 size_t cap);
/* The regular files directly in a folder (links not followed), sorted by name: *out is a new
 * array of {"name", "size", "mtime" (seconds)}. A missing folder is an empty array. */
IOTDM_NODISCARD iotdm_result cfgd_fs_list_dir(cfgd_backend *be, const char *path, json_t **out,
                                              cfgd_error *err);
/* Size and free space of the file system holding the root, in KiB. */
IOTDM_NODISCARD iotdm_result cfgd_fs_storage(cfgd_backend *be, uint64_t *out_total_kb,
                                             uint64_t *out_free_kb, cfgd_error *err);
/* mkdir -p of a host path. */
IOTDM_NODISCARD iotdm_result cfgd_fs_mkdirs(const char *host_path, unsigned mode);
/* Writes all of data to fd, retrying short writes and EINTR: 0, or -errno (-EIO for a write of
 * nothing). */
IOTDM_NODISCARD iotdm_result cfgd_fs_write_all(int fd, const void *data, size_t len);

/* Runs exec_path (a host path) with argv and envp; see cfgd_backend_vt.run. */
IOTDM_NODISCARD iotdm_result cfgd_run_command(const char *exec_path, const char *const *argv,
                                              const char *const *envp, int timeout_ms,
                                              cfgd_cmd_result *out, cfgd_error *err);
/* The same with the program's stdout going to stdout_fd; out->output then holds stderr only. */
IOTDM_NODISCARD iotdm_result cfgd_run_command_to(const char *exec_path, const char *const *argv,
                                                 const char *const *envp, int timeout_ms,
                                                 int stdout_fd, cfgd_cmd_result *out,
                                                 cfgd_error *err);
/* Log collectors (backend_logs.c). cfgd_fs_open_dir opens the folder at path as a directory
 * descriptor (*out_fd), creating it with mode (its parents 0755) when create is set; -ENOENT when
 * missing and not created. The folder itself must not be a link; callers work inside it with
 * *at() calls that never follow links. journal_read is each backend's. */
IOTDM_NODISCARD iotdm_result cfgd_fs_open_dir(cfgd_backend *be, const char *path, bool create,
                                              unsigned mode, int *out_fd, cfgd_error *err);
IOTDM_NODISCARD iotdm_result cfgd_journal_read_linux(cfgd_backend *be, const cfgd_journal_query *q,
                                                     int out_fd, cfgd_error *err);
IOTDM_NODISCARD iotdm_result cfgd_journal_read_sandbox(cfgd_backend *be,
                                                       const cfgd_journal_query *q, int out_fd,
                                                       cfgd_error *err);

#endif
