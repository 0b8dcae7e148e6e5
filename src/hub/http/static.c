/* The dashboard's static files (web/), served at /. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "hub/http/internal.h"

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* The largest dashboard file served (the dashboard's own files are far smaller). */
#define STATIC_MAX_BYTES (4 * 1024 * 1024)

static void static_file(http_ctx *cx)
{
    const char *root = cx->h->cfg.web_dir;
    char rel[1024] = "";
    /* Segments are already decoded; refuse anything that could leave the web folder. */
    for (size_t i = 0; i < cx->nsegments; i++) {
        const char *s = cx->segments[i];
        if (s[0] == '.' || strchr(s, '/') || strchr(s, '\\')) {
            http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
            return;
        }
        size_t len = strlen(rel);
        snprintf(rel + len, sizeof rel - len, "/%s", s);
    }
    if (!rel[0])
        snprintf(rel, sizeof rel, "/index.html");
    char path[1600];
    snprintf(path, sizeof path, "%s%s", root, rel);
    int fd = root[0] ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    char *data = NULL;
    bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
              st.st_size <= STATIC_MAX_BYTES && (data = xmalloc((size_t)st.st_size + 1));
    /* The hub's own small files, from the page cache: read here rather than through a unit. */
    if (ok && st.st_size > 0)
        ok = read(fd, data, (size_t)st.st_size) == (ssize_t)st.st_size;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        xfree(data);
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
        return;
    }
    http_add_header(cx, "Cache-Control", "no-cache");
    http_send_bytes_take(cx, 200, content_type(path), data, (size_t)st.st_size);
}

const http_route http_static_routes[] = {
    {"", HTTPD_GET | HTTPD_HEAD, HTTP_AUTH_NONE, 0, HTTP_BODY_NONE, false, NULL, static_file, 0},
    {"**", HTTPD_GET | HTTPD_HEAD, HTTP_AUTH_NONE, 0, HTTP_BODY_NONE, false, NULL, static_file, 0},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
