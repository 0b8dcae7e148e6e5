/* The dashboard's static files (web/), served at /. */
#include <event2/buffer.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

void http_static(http_ctx *cx)
{
    if (cx->method != EVHTTP_REQ_GET && cx->method != EVHTTP_REQ_HEAD) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
        return;
    }
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
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
        return;
    }
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_file(out, fd, 0, st.st_size); /* takes the descriptor */
    struct evkeyvalq *h = evhttp_request_get_output_headers(cx->req);
    evhttp_add_header(h, "Content-Type", content_type(path));
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_send_reply(cx->req, 200, NULL, out);
    evbuffer_free(out);
}
