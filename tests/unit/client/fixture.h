/* Shared helpers for the libiotdm unit tests: throwaway state directories and offline clients. */
#ifndef IOTDM_TEST_CLIENT_FIXTURE_H
#define IOTDM_TEST_CLIENT_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/internal.h"
#include "common/alloc.h"

/* A fresh directory under TMPDIR; the caller frees the string with fixture_rmdir. */
static inline char *fixture_mkdir(void)
{
    const char *tmp = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/iotdm-client-test-XXXXXX", tmp ? tmp : "/tmp");
    char *dir = mkdtemp(path);
    return dir ? strdup(dir) : NULL;
}

/* Removes the files of a state directory (flat: outbox.db and its WAL) and the directory. */
static inline void fixture_rmdir(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(dir);
}

/* A client that never connects unless processed: enough to drive twin and handler logic. */
static inline iotdm_client *fixture_client(const char *dir)
{
    iotdm_client_config cfg = {
        .struct_size = sizeof(iotdm_client_config),
        .host = "hub.example.net",
        .device_id = "dev1",
        .device_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        .state_dir = dir,
    };
    iotdm_client *c = NULL;
    return iotdm_client_new(&cfg, &c) == IOTDM_OK ? c : NULL;
}

/* The internal twin entry points (twin_apply_full, twin_on_desired, twin_on_response) run on the
 * thread inside iotdm_client_process, which holds dispatch and the lock: tests take them the
 * same way around each call. */
static inline void fixture_enter(iotdm_client *c)
{
    assert_int_equal(client_dispatch_begin(c), IOTDM_OK);
    client_lock(c);
}

static inline void fixture_leave(iotdm_client *c)
{
    client_unlock(c);
    client_dispatch_end(c);
}

/* Pops the oldest queued reported patch as JSON (NULL when the outbox has none). Takes the lock:
 * other threads (a capability's worker) may be reporting meanwhile. */
static inline json_t *fixture_pop_reported(iotdm_client *c)
{
    int64_t seq;
    char *text;
    client_lock(c);
    iotdm_result r = outbox_peek_reported(c->ob, &seq, &text);
    if (r == IOTDM_OK)
        assert_int_equal(outbox_remove_reported(c->ob, seq), IOTDM_OK);
    client_unlock(c);
    if (r != IOTDM_OK)
        return NULL;
    json_t *j = json_loads(text, 0, NULL);
    xfree(text);
    return j;
}

#endif
