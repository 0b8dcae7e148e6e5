/* Shared helpers for the capability unit tests: an offline libiotdm client (the client tests'
 * fixture) and a scripted configd standing in for iotdm-configd. */
#ifndef IOTDM_TEST_CAP_FIXTURE_H
#define IOTDM_TEST_CAP_FIXTURE_H

#include "../client/fixture.h"
#include "capabilities/capabilities.h"

/* One scripted operation: its result, or its error (r < 0) with configd's message. */
typedef struct {
    const char *op;
    iotdm_result r;
    const char *result_json; /* on success; NULL answers an empty object */
    const char *message;     /* on failure */
} fake_op;

typedef struct {
    const fake_op *ops;
    size_t nops;
    char calls[32][48]; /* the operations called, in order */
    int ncalls;
} fake_configd;

/* cap_env.configd: an operation the script lacks fails as an unreachable configd would. */
static inline iotdm_result fake_configd_call(void *ctx, const char *op, json_t *args,
                                             json_t **out_result, char *err, size_t err_cap)
{
    (void)args;
    fake_configd *f = ctx;
    if (f->ncalls < 32)
        snprintf(f->calls[f->ncalls++], sizeof f->calls[0], "%s", op);
    *out_result = NULL;
    for (size_t i = 0; i < f->nops; i++) {
        const fake_op *o = &f->ops[i];
        if (strcmp(o->op, op) != 0)
            continue;
        if (o->r < 0) {
            snprintf(err, err_cap, "%s", o->message ? o->message : "failed");
            return o->r;
        }
        *out_result = json_loads(o->result_json ? o->result_json : "{}", 0, NULL);
        return IOTDM_OK;
    }
    snprintf(err, err_cap, "iotdm-configd is not reachable");
    return -ECONNREFUSED;
}

/* cap_env.configd_fds, from the same script. */
static inline iotdm_result fake_configd_fds(void *ctx, const char *op, json_t *args, const int *fds,
                                            size_t nfds, json_t **out_result, char *err,
                                            size_t err_cap)
{
    (void)fds;
    (void)nfds;
    return fake_configd_call(ctx, op, args, out_result, err, err_cap);
}

typedef struct {
    char *dir;
    iotdm_client *client;
    fake_configd configd;
    cap_env env;
} cap_fixture;

static inline void cap_fixture_init(cap_fixture *f, const fake_op *ops, size_t nops)
{
    memset(f, 0, sizeof *f);
    f->dir = fixture_mkdir();
    f->client = fixture_client(f->dir);
    assert_non_null(f->client);
    f->configd.ops = ops;
    f->configd.nops = nops;
    f->env.client = f->client;
    f->env.configd = fake_configd_call;
    f->env.configd_fds = fake_configd_fds;
    f->env.configd_ctx = &f->configd;
    f->env.state_dir = f->dir;
}

static inline void cap_fixture_deinit(cap_fixture *f)
{
    iotdm_client_free(f->client);
    fixture_rmdir(f->dir);
}

/* Hands the client a full desired document (JSON text) at version, as a twin GET would. */
static inline void cap_fixture_desired(cap_fixture *f, const char *doc_json, int64_t version)
{
    json_t *doc = json_loads(doc_json, 0, NULL);
    assert_non_null(doc);
    fixture_enter(f->client);
    twin_apply_full(f->client, doc, version);
    fixture_leave(f->client);
    json_decref(doc);
}

/* The next reported patch's dm.<property> member (new reference), or NULL when none is queued. */
static inline json_t *cap_fixture_next_ack(cap_fixture *f, const char *property)
{
    for (json_t *patch; (patch = fixture_pop_reported(f->client));) {
        json_t *ack = json_incref(json_object_get(json_object_get(patch, "dm"), property));
        json_decref(patch);
        if (ack)
            return ack;
    }
    return NULL;
}

#endif
