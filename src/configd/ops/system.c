/* system.info: OS, kernel, identity, boot time, memory, storage and hardware of the device. */
#include "configd/ops/ops.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/timeutil.h"

#define INFO_FILE_MAX 8192

int cfgd_validate_no_args(const json_t *args, cfgd_error *err)
{
    static const char *const none[] = {NULL};
    return cfgd_args_only(args, none, err);
}

/* Reads read-only system data: the root's copy when it has one, else the host's (backend.h). */
static bool read_system(cfgd_ctx *ctx, const char *path, char *buf, size_t cap)
{
    char host[PATH_MAX];
    if (cfgd_fs_system_path(ctx->be, path, host, sizeof host) < 0)
        return false;
    FILE *f = fopen(host, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* Trims blanks and stops at the first line end or NUL (device-tree strings end in NUL). */
static char *first_line(char *s)
{
    s += strspn(s, " \t");
    s[strcspn(s, "\r\n")] = '\0';
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static const char *next_line(const char *line)
{
    const char *nl = strchr(line, '\n');
    return nl ? nl + 1 : NULL;
}

/* Text read from the system may be in any encoding; JSON needs UTF-8, so a string that is not
 * valid UTF-8 is reported with its non-ASCII bytes replaced. */
static void put_text(json_t *info, const char *key, const char *value)
{
    json_t *v = json_string(value);
    if (!v) {
        char clean[256];
        size_t i = 0;
        for (; value[i] && i + 1 < sizeof clean; i++)
            clean[i] = (unsigned char)value[i] < 0x80 ? value[i] : '?';
        clean[i] = '\0';
        v = json_string(clean);
    }
    json_object_set_new(info, key, v);
}

/* KEY=value or KEY="value" from os-release text. */
static bool os_release_get(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line; line = next_line(line)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != '=')
            continue;
        const char *v = line + klen + 1;
        size_t n = strcspn(v, "\n");
        if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
            v++;
            n -= 2;
        }
        snprintf(out, cap, "%.*s", (int)n, v);
        return true;
    }
    return false;
}

/* "key: value" from /proc/cpuinfo-style text. */
static bool colon_field(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line; line = next_line(line)) {
        if (strncmp(line, key, klen) != 0)
            continue;
        const char *p = line + klen;
        p += strspn(p, " \t");
        if (*p != ':')
            continue;
        p++;
        p += strspn(p, " \t");
        snprintf(out, cap, "%.*s", (int)strcspn(p, "\n"), p);
        return true;
    }
    return false;
}

static void add_os(cfgd_ctx *ctx, json_t *info, char *buf)
{
    char name[128] = "Linux", version[128] = "";
    if (read_system(ctx, "/etc/os-release", buf, INFO_FILE_MAX) ||
        read_system(ctx, "/usr/lib/os-release", buf, INFO_FILE_MAX)) {
        os_release_get(buf, "NAME", name, sizeof name);
        if (!os_release_get(buf, "VERSION", version, sizeof version))
            os_release_get(buf, "VERSION_ID", version, sizeof version);
    }
    struct utsname u;
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    put_text(info, "osName", name);
    put_text(info, "osVersion", version);
    put_text(info, "kernel", u.release);
    put_text(info, "processorArchitecture", u.machine);
    char host[256] = "";
    if (read_system(ctx, "/etc/hostname", buf, INFO_FILE_MAX))
        snprintf(host, sizeof host, "%s", first_line(buf));
    if (!host[0])
        snprintf(host, sizeof host, "%s", u.nodename);
    put_text(info, "hostname", host);
    const char *id = read_system(ctx, "/etc/machine-id", buf, INFO_FILE_MAX) ? first_line(buf) : "";
    put_text(info, "machineId", id);
}

/* Kernel state: always the host's /proc, whatever the root. */
static void add_memory(json_t *info, char *buf)
{
    long long total = 0, avail = 0;
    FILE *f = fopen("/proc/meminfo", "re");
    while (f && fgets(buf, INFO_FILE_MAX, f)) {
        sscanf(buf, "MemTotal: %lld kB", &total);
        sscanf(buf, "MemAvailable: %lld kB", &avail);
    }
    if (f)
        fclose(f);
    json_object_set_new(info, "totalMemoryKB", json_integer(total));
    json_object_set_new(info, "freeMemoryKB", json_integer(avail));
}

static void add_hardware(cfgd_ctx *ctx, json_t *info, char *buf)
{
    char cpu[128] = "unknown", maker[128] = "unknown", model[128] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "re");
    size_t n = f ? fread(buf, 1, INFO_FILE_MAX - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    if (!colon_field(buf, "vendor_id", cpu, sizeof cpu) &&
        colon_field(buf, "CPU implementer", cpu, sizeof cpu) && strcmp(cpu, "0x41") == 0)
        snprintf(cpu, sizeof cpu, "ARM");
    /* The OEM's own words win; then DMI (PCs, VMs), then the device tree (boards). */
    if (ctx->cfg->manufacturer[0])
        snprintf(maker, sizeof maker, "%s", ctx->cfg->manufacturer);
    else if (read_system(ctx, "/sys/class/dmi/id/sys_vendor", buf, INFO_FILE_MAX))
        snprintf(maker, sizeof maker, "%s", first_line(buf));
    if (ctx->cfg->model[0])
        snprintf(model, sizeof model, "%s", ctx->cfg->model);
    else if (read_system(ctx, "/sys/class/dmi/id/product_name", buf, INFO_FILE_MAX) ||
             read_system(ctx, "/proc/device-tree/model", buf, INFO_FILE_MAX))
        snprintf(model, sizeof model, "%s", first_line(buf));
    put_text(info, "processorManufacturer", cpu);
    put_text(info, "manufacturer", maker);
    put_text(info, "model", model);
}

int cfgd_op_system_info(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    int64_t boot_ms;
    uint64_t total_kb, free_kb;
    int r = ctx->be->vt->boot_time(ctx->be, &boot_ms, err);
    if (r == 0)
        r = cfgd_fs_storage(ctx->be, &total_kb, &free_kb, err);
    char *buf = r == 0 ? malloc(INFO_FILE_MAX) : NULL;
    json_t *info = buf ? json_object() : NULL;
    if (!info) {
        free(buf);
        if (r == 0)
            cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return r < 0 ? r : -ENOMEM;
    }
    char boot[40];
    time_format_iso(boot_ms, boot, sizeof boot);
    int64_t up = (time_now_ms() - boot_ms) / 1000;
    add_os(ctx, info, buf);
    put_text(info, "bootTime", boot);
    json_object_set_new(info, "uptimeSeconds", json_integer(up > 0 ? up : 0));
    add_memory(info, buf);
    json_object_set_new(info, "totalStorageKB", json_integer((json_int_t)total_kb));
    json_object_set_new(info, "freeStorageKB", json_integer((json_int_t)free_kb));
    add_hardware(ctx, info, buf);
    free(buf);
    *out = info;
    return 0;
}
