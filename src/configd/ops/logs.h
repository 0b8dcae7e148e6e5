/* logs.* operations: journald log collectors writing into bounded folders, and the log files
 * (list, read into a caller's descriptor for upload, delete), all under CFGD_LOGS_ROOT. */
#ifndef IOTDM_CONFIGD_OPS_LOGS_H
#define IOTDM_CONFIGD_OPS_LOGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "configd/optable.h"

#define CFGD_LOGS_ROOT          "/var/lib/iotdm/logs"
#define CFGD_LOG_NAME_MAX       255 /* a folder or file name */
#define CFGD_LOG_COLLECTOR_MAX  64  /* a collector name */
#define CFGD_LOG_COLLECTORS_MAX 32
#define CFGD_LOG_FILES_MAX      1024               /* files listed per folder, folders listed */
#define CFGD_LOG_FILE_MAX       (16 * 1024 * 1024) /* a collected file, and an upload */
#define CFGD_LOG_SIZE_LIMIT_MAX 1024               /* sizeLimitMB */
#define CFGD_LOG_SIZE_LIMIT_DEF 4
#define CFGD_LOG_FOLDER_MODE    0750
#define CFGD_LOG_FILE_MODE      0640
#define CFGD_LOG_UNIT_MAX       256
#define CFGD_LOG_IDENTIFIER_MAX 64
/* configd's own files in a collector's folder; names starting with '.' are never served. */
#define CFGD_LOG_STATE_FILE   ".collector.json"
#define CFGD_LOG_CURSOR_FILE  ".cursor"
#define CFGD_LOG_CURRENT_FILE ".current.log"

/* A folder or file name a request may use: 1..255 bytes, printable, no '/', no "..", not
 * starting with '.' (configd's own files and "." itself). */
bool cfgd_log_name_valid(const char *name, size_t len);
/* A collector name: 1..64 of [A-Za-z0-9_-]. */
bool cfgd_log_collector_name_valid(const char *name, size_t len);
/* Checks a collector's settings object (members as in the DTDL, all optional). */
int cfgd_log_settings_check(const json_t *settings, cfgd_error *err);

/* One visible log file of a folder. */
typedef struct {
    char name[CFGD_LOG_NAME_MAX + 1];
    int64_t size;
    struct timespec mtime;
} cfgd_log_file;

/* The visible regular files of the folder open as dfd (links and hidden files skipped), oldest
 * first (modification time, then name); *out is malloc'd. 0 or -errno. */
int cfgd_logs_scan(int dfd, cfgd_log_file **out, size_t *out_n);
/* Opens CFGD_LOGS_ROOT (created when create is set) and, when folder is not NULL, the folder in
 * it (never through a link): not_found when missing. The caller closes *out_fd. */
int cfgd_logs_open(cfgd_ctx *ctx, const char *folder, bool create, int *out_fd, cfgd_error *err);

/* ---- validators ---- */
int cfgd_validate_logs_folder(const json_t *args, cfgd_error *err);
int cfgd_validate_logs_file(const json_t *args, cfgd_error *err);
int cfgd_validate_logs_set_collector(const json_t *args, cfgd_error *err);
int cfgd_validate_logs_collector_name(const json_t *args, cfgd_error *err);

/* ---- handlers (logs.c: files; logs_collect.c: collectors) ---- */
int cfgd_op_logs_list_folders(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_list_files(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_read_file(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_delete_file(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_set_collector(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_remove_collector(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_collect(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_logs_status(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

#endif
