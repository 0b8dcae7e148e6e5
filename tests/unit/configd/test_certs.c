/* Unit tests for the certs.* operations: argument checks, certificate parsing, and the effects in
 * a sandbox (files, update-ca-certificates in the journal) and under a linux root without it. */
#include "install_fixture.h"

#include <ctype.h>

#include "configd/ops/ops.h"

typedef struct {
    fx_fixture *f;
    char cert[256], der[256], key[256], bundle[256];
    char sha1[41];  /* upper case, from openssl */
    char lower[41]; /* the file name */
    char sha256_fp[65];
} certs_fx;

/* openssl prints "SHA1 Fingerprint=AB:CD:…": the hex digits alone. */
static void fingerprint(const char *cert, const char *alg, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "openssl x509 -in '%s' -noout -fingerprint -%s", cert, alg);
    const char *line = strchr(ix_sh_out(cmd), '=');
    size_t n = 0;
    for (line = line ? line + 1 : ""; *line && n + 1 < cap; line++)
        if (*line != ':')
            out[n++] = *line;
    out[n] = '\0';
}

static void make_cert(certs_fx *c, const char *name, const char *cn)
{
    snprintf(c->cert, sizeof c->cert, "%s/%s.pem", c->f->work, name);
    snprintf(c->key, sizeof c->key, "%s/%s.key", c->f->work, name);
    ix_sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
          "'%s' -out '%s' -days 2 -subj '/CN=%s/O=iotdm tests' 2>/dev/null",
          c->key, c->cert, cn);
}

static int setup(void **state)
{
    certs_fx *c = calloc(1, sizeof *c);
    c->f = fx_setup("certs", FX_SANDBOX, 5000);
    make_cert(c, "other", "iotdm other");
    char other[256];
    snprintf(other, sizeof other, "%s", c->cert);
    make_cert(c, "root", "iotdm test root");
    snprintf(c->der, sizeof c->der, "%s/root.der", c->f->work);
    ix_sh("openssl x509 -in '%s' -outform DER -out '%s'", c->cert, c->der);
    snprintf(c->bundle, sizeof c->bundle, "%s/bundle.pem", c->f->work);
    ix_sh("cat '%s' '%s' > '%s'", c->cert, other, c->bundle);
    fingerprint(c->cert, "sha1", c->sha1, sizeof c->sha1);
    fingerprint(c->cert, "sha256", c->sha256_fp, sizeof c->sha256_fp);
    for (size_t i = 0; i < 41; i++)
        c->lower[i] = (char)tolower((unsigned char)c->sha1[i]);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    certs_fx *c = *state;
    fx_free(c->f);
    free(c);
    return 0;
}

/* certs.install of file into store under thumbprint, with the file's real digest. */
static json_t *install(certs_fx *c, const char *store, const char *thumbprint, const char *file)
{
    char args[512];
    snprintf(args, sizeof args, "{\"store\":\"%s\",\"thumbprint\":\"%s\",\"sha256\":\"%s\"}", store,
             thumbprint, ix_sha256(file));
    return ix_call_file(c->f, "certs.install", args, file);
}

static void root_path(certs_fx *c, char *out, size_t cap)
{
    snprintf(out, cap, "/usr/local/share/ca-certificates/iotdm/root/%s.crt", c->lower);
}

static void test_validators_refuse_bad_arguments(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"store\":\"Root\",\"thumbprint\":\"0123456789abcdef0123456789abcdef01234567\"}",
        "{\"store\":\"../root\",\"thumbprint\":\"0123456789abcdef0123456789abcdef01234567\"}",
        "{\"store\":\"root\",\"thumbprint\":\"../../../../../../../../../../etc/passwd\"}",
        "{\"store\":\"root\",\"thumbprint\":\"0123456789abcdef0123456789abcdef0123456\"}",
        "{\"store\":\"root\",\"thumbprint\":\"0123456789abcdef0123456789abcdef0123456g\"}",
        "{\"store\":\"root\",\"thumbprint\":\"0123456789abcdef0123456789abcdef01234567/\"}",
        "{\"store\":\"root\"}",
        "{\"store\":\"root\",\"thumbprint\":\"0123456789abcdef0123456789abcdef01234567\",\"x\":1}",
    };
    cfgd_error err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *args = fx_json(bad[i]);
        assert_int_equal(cfgd_validate_certs_ref(args, &err), -EINVAL);
        assert_int_equal(err.code, CFGD_ERR_INVALID_ARGUMENT);
        json_decref(args);
    }
    json_t *ok = fx_json("{\"store\":\"trustedPeople\","
                         "\"thumbprint\":\"0123456789ABCDEF0123456789abcdef01234567\"}");
    assert_int_equal(cfgd_validate_certs_ref(ok, &err), 0);
    assert_int_equal(cfgd_validate_certs_install(ok, &err), -EINVAL); /* sha256 missing */
    json_object_set_new(ok, "sha256", json_string("zz"));
    assert_int_equal(cfgd_validate_certs_install(ok, &err), -EINVAL);
    json_decref(ok);
}

static void test_install_root_writes_pem_and_updates_trust(void **state)
{
    certs_fx *c = *state;
    char path[256];
    root_path(c, path, sizeof path);
    json_t *reply = install(c, "root", c->lower, c->cert); /* any case is the same certificate */
    json_t *r = fx_result(reply);
    assert_string_equal(json_string_value(json_object_get(r, "thumbprint")), c->sha1);
    assert_true(json_is_true(json_object_get(r, "changed")));
    json_decref(reply);
    const char *pem = fx_read(c->f->dir, path);
    assert_non_null(pem);
    assert_non_null(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    assert_null(strstr(pem, "PRIVATE"));
    assert_int_equal(ix_journal(c->f, "/usr/sbin/update-ca-certificates"), 1);

    reply = fx_call(&c->f->ctx, "certs.list", NULL);
    json_t *held = json_object_get(json_object_get(fx_result(reply), "root"), c->sha1);
    assert_non_null(held);
    assert_non_null(
        strstr(json_string_value(json_object_get(held, "subject")), "CN=iotdm test root"));
    assert_int_equal(json_object_size(json_object_get(fx_result(reply), "ca")), 0);
    json_decref(reply);

    /* The same certificate again: nothing written, the trust not rebuilt. */
    reply = install(c, "root", c->sha1, c->der);
    assert_false(json_is_true(json_object_get(fx_result(reply), "changed")));
    json_decref(reply);
    assert_int_equal(ix_journal(c->f, "update-ca-certificates"), 1);
}

static void test_install_der_into_my_system_needs_no_trust_update(void **state)
{
    certs_fx *c = *state;
    json_t *reply = install(c, "mySystem", c->sha1, c->der);
    fx_result(reply);
    json_decref(reply);
    char path[256];
    snprintf(path, sizeof path, "/etc/iotdm/certs/my-system/%s.pem", c->lower);
    assert_non_null(strstr(fx_read(c->f->dir, path), "-----BEGIN CERTIFICATE-----"));
    assert_int_equal(ix_journal(c->f, "update-ca-certificates"), 0);
}

static void test_details_and_uninstall(void **state)
{
    certs_fx *c = *state;
    json_decref(install(c, "ca", c->sha1, c->cert));
    char args[256];
    snprintf(args, sizeof args, "{\"store\":\"ca\",\"thumbprint\":\"%s\"}", c->sha1);
    json_t *reply = fx_call(&c->f->ctx, "certs.details", args);
    json_t *r = fx_result(reply);
    assert_string_equal(json_string_value(json_object_get(r, "sha1")), c->sha1);
    assert_string_equal(json_string_value(json_object_get(r, "sha256")), c->sha256_fp);
    assert_non_null(strstr(json_string_value(json_object_get(r, "issuer")), "CN=iotdm test root"));
    assert_non_null(strstr(json_string_value(json_object_get(r, "notAfter")), "Z"));
    assert_non_null(json_object_get(r, "notBefore"));
    json_decref(reply);

    reply = fx_call(&c->f->ctx, "certs.uninstall", args);
    assert_true(json_is_true(json_object_get(fx_result(reply), "removed")));
    json_decref(reply);
    assert_int_equal(ix_count_files(c->f, "/usr/local/share/ca-certificates/iotdm"), 0);
    assert_int_equal(ix_journal(c->f, "update-ca-certificates"), 2);
    reply = fx_call(&c->f->ctx, "certs.uninstall", args);
    assert_false(json_is_true(json_object_get(fx_result(reply), "removed")));
    json_decref(reply);
    assert_int_equal(ix_journal(c->f, "update-ca-certificates"), 2);
    reply = fx_call(&c->f->ctx, "certs.details", args);
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
}

/* Each bad file is refused with its own reason, and no file is left in any store. */
static void expect_refused(certs_fx *c, json_t *reply, const char *code, const char *words)
{
    assert_string_equal(fx_code(reply), code);
    if (!strstr(ix_message(reply), words))
        fail_msg("message \"%s\" lacks \"%s\"", ix_message(reply), words);
    json_decref(reply);
    assert_int_equal(ix_count_files(c->f, "/usr/local/share/ca-certificates"), 0);
    assert_int_equal(ix_count_files(c->f, "/etc/iotdm"), 0);
}

static void test_bad_files_are_refused_and_leave_nothing(void **state)
{
    certs_fx *c = *state;
    char args[512];
    snprintf(args, sizeof args, "{\"store\":\"root\",\"thumbprint\":\"%s\",\"sha256\":\"%064d\"}",
             c->sha1, 0);
    expect_refused(c, ix_call_file(c->f, "certs.install", args, c->cert), "invalid_argument",
                   "SHA-256");
    expect_refused(c, install(c, "root", "0123456789abcdef0123456789abcdef01234567", c->cert),
                   "invalid_argument", "thumbprint is");
    expect_refused(c, install(c, "trustedPublisher", c->sha1, c->key), "invalid_argument",
                   "private key");
    char both[256];
    snprintf(both, sizeof both, "%s/both.pem", c->f->work);
    ix_sh("cat '%s' '%s' > '%s'", c->cert, c->key, both);
    expect_refused(c, install(c, "trustedPublisher", c->sha1, both), "invalid_argument",
                   "private key");
    expect_refused(c, install(c, "myUser", c->sha1, c->bundle), "invalid_argument",
                   "more than one");
    const char *text = ix_input(c->f, "notes.txt", "just some text, not a certificate\n");
    expect_refused(c, install(c, "root", c->sha1, text), "invalid_argument", "not a certificate");
    const char *fake = ix_input(c->f, "fake.pem",
                                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    expect_refused(c, install(c, "root", c->sha1, fake), "invalid_argument", "not a certificate");
    char big[256];
    snprintf(big, sizeof big, "%s/big.pem", c->f->work);
    ix_sh("head -c 70000 /dev/zero > '%s'", big);
    expect_refused(c, install(c, "root", c->sha1, big), "too_large", "at most");
    snprintf(args, sizeof args, "{\"store\":\"root\",\"thumbprint\":\"%s\",\"sha256\":\"%s\"}",
             c->sha1, ix_sha256(c->cert));
    expect_refused(c, ix_call_file(c->f, "certs.install", args, NULL), "invalid_argument",
                   "descriptor");
    assert_int_equal(ix_journal(c->f, "update-ca-certificates"), 0);
}

static void test_parse_reports_fields(void **state)
{
    certs_fx *c = *state;
    const char *pem = fx_read("", c->cert);
    cfgd_cert_info info;
    cfgd_error err;
    assert_int_equal(cfgd_cert_parse(pem, strlen(pem), true, &info, &err), 0);
    assert_string_equal(info.sha1, c->sha1);
    assert_string_equal(info.subject, info.issuer); /* self-signed */
    assert_non_null(info.pem);
    assert_int_equal(memcmp(info.pem, "-----BEGIN CERTIFICATE-----", 27), 0);
    cfgd_cert_info_deinit(&info);
    assert_int_equal(cfgd_cert_parse("", 0, false, &info, &err), -EINVAL);
}

/* The real backend with no update-ca-certificates in the root: the install fails and the file it
 * wrote is taken away again; an uninstall that cannot update the trust puts the file back. */
static void test_failed_trust_update_leaves_store_as_it_was(void **state)
{
    certs_fx *c = *state;
    fx_fixture *sandbox = c->f;
    c->f = fx_setup("certs", FX_LINUX, 5000);
    fx_rmtree(c->f->work);
    snprintf(c->f->work, sizeof c->f->work, "%s", sandbox->work);
    json_t *reply = install(c, "root", c->sha1, c->cert);
    assert_string_equal(fx_code(reply), "failed");
    assert_non_null(strstr(ix_message(reply), "update-ca-certificates"));
    json_decref(reply);
    assert_int_equal(ix_count_files(c->f, "/usr/local/share/ca-certificates"), 0);

    char path[256], args[256];
    root_path(c, path, sizeof path);
    fx_write(c->f->dir, path, fx_read("", c->cert), 0644);
    snprintf(args, sizeof args, "{\"store\":\"root\",\"thumbprint\":\"%s\"}", c->sha1);
    reply = fx_call(&c->f->ctx, "certs.uninstall", args);
    assert_string_equal(fx_code(reply), "failed");
    json_decref(reply);
    assert_true(fx_exists(c->f->dir, path));

    fx_write(c->f->dir, "/usr/sbin/update-ca-certificates", "#!/bin/sh\nexit 0\n", 0755);
    reply = fx_call(&c->f->ctx, "certs.uninstall", args);
    assert_true(json_is_true(json_object_get(fx_result(reply), "removed")));
    json_decref(reply);
    assert_false(fx_exists(c->f->dir, path));
    cfgd_backend_free(c->f->be);
    fx_rmtree(c->f->dir);
    free(c->f);
    c->f = sandbox;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validators_refuse_bad_arguments),
        cmocka_unit_test_setup_teardown(test_install_root_writes_pem_and_updates_trust, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_install_der_into_my_system_needs_no_trust_update,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_details_and_uninstall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files_are_refused_and_leave_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_parse_reports_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_trust_update_leaves_store_as_it_was, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
