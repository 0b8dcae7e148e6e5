/* apps.install: a package from the configured repositories or from a .deb the agent downloaded,
 * pinned (apt-mark hold) at an exact version; the agent's own update runs detached. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/debpkg.h"
#include "common/log.h"
#include "configd/ops/apps.h"
#include "configd/ops/apps_pkg.h"
#include "configd/ops/ops.h"

typedef struct {
    const char *name;
    const char *version;                   /* "latest" or exact */
    const char *sha256;                    /* with a passed file */
    char target[PATH_MAX];                 /* "name=version" or the staged file */
    char resolved[DEBPKG_VERSION_MAX + 1]; /* the version the install results in */
} install_req;

/* Copies the passed file (from offset 0) to name inside the staging folder, links never followed.
 */
static int copy_in(cfgd_ctx *ctx, const char *name, cfgd_error *err)
{
    int dfd = -1;
    int r = cfgd_fs_open_dir(ctx->be, CFGD_DEB_STAGE_DIR, true, 0700, &dfd, err);
    if (r < 0)
        return r;
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    char buf[65536];
    off_t off = 0;
    r = fd < 0 ? -errno : 0;
    while (r == 0) {
        ssize_t n = pread(ctx->fds[0], buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : 0;
            break;
        }
        for (ssize_t done = 0; r == 0 && done < n;) {
            ssize_t w = write(fd, buf + done, (size_t)(n - done));
            if (w < 0 && errno != EINTR)
                r = -errno;
            done += w > 0 ? w : 0;
        }
        off += n;
    }
    if (r == 0 && fsync(fd) != 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    close(dfd);
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot stage the package in %s: %s",
                       CFGD_DEB_STAGE_DIR, strerror(-r));
    return r;
}

/* The passed file, checked again and copied into configd's own folder: apt needs a path, and
 * the agent's copy must not change under dpkg. Earlier leftovers go first, so at most one stays. */
static int stage_file(cfgd_ctx *ctx, install_req *q, cfgd_error *err)
{
    int r = cfgd_fd_check_sha256(ctx->fds[0], q->sha256, err);
    if (r < 0)
        return r;
    char lower[65];
    for (size_t i = 0; i < 64; i++)
        lower[i] = (char)tolower((unsigned char)q->sha256[i]);
    lower[64] = '\0';
    bool existed;
    snprintf(q->target, sizeof q->target, "%s/%s.deb", CFGD_DEB_STAGE_DIR, lower);
    r = cfgd_fs_remove(ctx->be, CFGD_DEB_STAGE_DIR, NULL, 0, &existed, err);
    if (r == 0)
        r = copy_in(ctx, q->target + sizeof CFGD_DEB_STAGE_DIR, err);
    if (r < 0)
        return r;
    char pname[DEBPKG_NAME_MAX + 1];
    r = cfgd_pkg_deb_fields(ctx, q->target, pname, sizeof pname, q->resolved, sizeof q->resolved,
                            err);
    if (r == 0 && strcmp(pname, q->name) != 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "the file holds package %s, not %s", pname,
                       q->name);
        r = -EINVAL;
    } else if (r == 0 && strcmp(q->version, "latest") != 0 &&
               strcmp(q->version, q->resolved) != 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "the file holds %s %s, not version %s",
                       pname, q->resolved, q->version);
        r = -EINVAL;
    }
    return r;
}

static void unstage(cfgd_ctx *ctx)
{
    bool existed;
    cfgd_error err;
    /* A staged package left behind is replaced by the next install; the space it takes is worth
     * a line in the log. */
    if (cfgd_fs_remove(ctx->be, CFGD_DEB_STAGE_DIR, NULL, 0, &existed, &err) < 0)
        log_warn("configd", "cannot remove the staged package: %s", err.message);
}

/* From the repositories: "latest" is apt's candidate; an exact version must be on offer. */
static int resolve_repo(cfgd_ctx *ctx, install_req *q, cfgd_error *err)
{
    json_t *versions = NULL;
    char candidate[DEBPKG_VERSION_MAX + 1];
    int r = cfgd_pkg_policy(ctx, q->name, candidate, sizeof candidate, &versions, err);
    bool latest = strcmp(q->version, "latest") == 0;
    bool offered = latest && candidate[0];
    size_t i;
    json_t *v;
    json_array_foreach(versions, i, v)
    {
        if (!latest && strcmp(json_string_value(v), q->version) == 0)
            offered = true;
    }
    json_decref(versions);
    if (r < 0)
        return r;
    if (!offered) {
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "the configured repositories have no %s%s%s",
                       q->name, latest ? "" : " version ", latest ? "" : q->version);
        return -ENOENT;
    }
    snprintf(q->resolved, sizeof q->resolved, "%s", latest ? candidate : q->version);
    snprintf(q->target, sizeof q->target, "%s=%s", q->name, q->resolved);
    return 0;
}

/* An exact version is held so that automatic upgrades leave it; "latest" lets them upgrade. */
static int pin(cfgd_ctx *ctx, const install_req *q, cfgd_error *err)
{
    cfgd_pkg_status st;
    int r = cfgd_pkg_query(ctx, q->name, &st, err);
    bool hold = strcmp(q->version, "latest") != 0;
    if (r < 0 || !st.installed || st.held == hold)
        return r;
    return cfgd_pkg_hold(ctx, q->name, hold, err);
}

/* A first install that failed half-way is purged again: nothing stays half-installed. */
static void undo_partial(cfgd_ctx *ctx, const char *name)
{
    cfgd_pkg_status st;
    cfgd_error ignored;
    if (cfgd_pkg_query(ctx, name, &st, &ignored) == 0 && st.installed)
        cfgd_pkg_remove(ctx, name, true, &ignored);
}

static int check_request(cfgd_ctx *ctx, const install_req *q, cfgd_error *err)
{
    if ((q->sha256 != NULL) != (ctx->nfds == 1)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "a package file is passed with its sha256, and a sha256 with its file");
        return -EINVAL;
    }
    if (cfgd_pkg_selfupdate_running(ctx)) {
        cfgd_error_set(err, CFGD_ERR_FAILED,
                       "the agent's self-update is still running; try again when it is done");
        return -EBUSY;
    }
    return 0;
}

int cfgd_op_apps_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    install_req q = {.name = json_string_value(json_object_get(args, "package")),
                     .version = json_string_value(json_object_get(args, "version")),
                     .sha256 = json_string_value(json_object_get(args, "sha256"))};
    bool agent = strcmp(q.name, ctx->cfg->agent_package) == 0;
    cfgd_pkg_status st = {0};
    int r = check_request(ctx, &q, err);
    if (r == 0)
        r = cfgd_pkg_query(ctx, q.name, &st, err);
    if (r == 0)
        r = q.sha256 ? stage_file(ctx, &q, err) : resolve_repo(ctx, &q, err);
    if (r == 0 && agent && st.installed && debpkg_version_compare(q.resolved, st.version) < 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "%s is the device-management agent: it cannot downgrade itself "
                       "(installed %s, requested %s)",
                       q.name, st.version, q.resolved);
        r = -EINVAL;
    }
    bool changed = r == 0 && (!st.installed || strcmp(st.version, q.resolved) != 0);
    bool detached = changed && agent; /* the install restarts the agent, which is waiting */
    if (changed) {
        r = cfgd_pkg_install(ctx, q.target, q.name, q.resolved, detached, err);
        if (r < 0 && !st.installed)
            undo_partial(ctx, q.name);
    }
    if (q.sha256 && !detached)
        unstage(ctx);
    if (r == 0 && !detached)
        r = pin(ctx, &q, err);
    json_t *s;
    if (r < 0 || (r = cfgd_apps_status(ctx, q.name, &s, err)) < 0)
        return r;
    *out = json_pack("{s:o, s:b, s:b, s:s, s:b}", "status", s, "changed", changed, "pending",
                     detached, "targetVersion", q.resolved, "simulated", ctx->be->vt->simulated);
    return 0;
}
