/* time.set_zone against the zoneinfo database: only TZif files the database itself holds are zones.
 * Debian's zoneinfo/localtime links to /etc/localtime, which links back into the database, so it
 * resolved to a real TZif file and was accepted, leaving /etc/localtime a link to itself. */
#include "configd_fixture.h"

#include <limits.h>

#include "configd/ops/ops.h"

/* dir + rel (static buffer). */
static const char *fx_path(const char *dir, const char *rel)
{
    static char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s%s", dir, rel);
    return buf;
}

static int setup(void **state)
{
    fx_fixture *f = fx_new("zone");
    fx_install_zoneinfo(f->dir);
    fx_open(f, FX_SANDBOX, 5000);
    *state = f;
    return 0;
}

static void link_in_root(fx_fixture *f, const char *target, const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", f->dir, rel);
    assert_int_equal(symlink(target, path), 0);
}

/* The root as a Debian device has it: /etc/localtime -> the zone's file, and zoneinfo/localtime ->
 * /etc/localtime. Both are absolute links; here they name the root's own files by their host paths,
 * as they would on the device itself. */
static void debian_localtime(fx_fixture *f)
{
    char target[PATH_MAX];
    fx_mkdirs(fx_path(f->dir, "/etc"));
    snprintf(target, sizeof target, "%s/usr/share/zoneinfo/Europe/Berlin", f->dir);
    link_in_root(f, target, "/etc/localtime");
    snprintf(target, sizeof target, "%s/etc/localtime", f->dir);
    link_in_root(f, target, "/usr/share/zoneinfo/localtime");
}

static void assert_refused(fx_fixture *f, const char *zone)
{
    char args[256];
    snprintf(args, sizeof args, "{\"zone\":\"%s\"}", zone);
    json_t *reply = fx_call(&f->ctx, "time.set_zone", args);
    if (strcmp(fx_code(reply), "invalid_argument") != 0)
        fail_msg("zone %s gave %s", zone, fx_code(reply));
    json_decref(reply);
}

static void test_zone_localtime_is_refused_and_leaves_no_loop(void **state)
{
    fx_fixture *f = *state;
    debian_localtime(f);
    assert_refused(f, "localtime");
    assert_string_equal(fx_readlink(f->dir, "/etc/localtime"),
                        fx_path(f->dir, "/usr/share/zoneinfo/Europe/Berlin"));
    assert_false(fx_exists(f->dir, "/etc/timezone"));
    /* The name is refused before the database is consulted, and in any folder. */
    assert_refused(f, "Europe/localtime");
}

static void test_zone_posixrules_is_refused(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/usr/share/zoneinfo/posixrules", "TZif2 new york rules\n", 0644);
    assert_refused(f, "posixrules");
}

/* A link that leaves the database, even to come back in, is not followed: relative or absolute,
 * and also under another name than "localtime". */
static void test_zone_links_leaving_the_database_are_refused(void **state)
{
    fx_fixture *f = *state;
    char target[PATH_MAX];
    debian_localtime(f);
    snprintf(target, sizeof target, "%s/etc/localtime", f->dir);
    link_in_root(f, target, "/usr/share/zoneinfo/Here");
    link_in_root(f, "../../../etc/localtime", "/usr/share/zoneinfo/Hop");
    fx_write(f->dir, "/elsewhere/Zone", "TZif2 outside\n", 0644);
    link_in_root(f, "/elsewhere/Zone", "/usr/share/zoneinfo/Device");
    link_in_root(f, "Loop", "/usr/share/zoneinfo/Loop");
    fx_write(f->dir, "/usr/share/zoneinfo/zone.tab", "DE\t+5230+01322\tEurope/Berlin\n", 0644);
    static const char *const zones[] = {"Here", "Hop", "Device", "Loop", "zone.tab", "Europe"};
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++)
        assert_refused(f, zones[i]);
    assert_string_equal(fx_readlink(f->dir, "/etc/localtime"),
                        fx_path(f->dir, "/usr/share/zoneinfo/Europe/Berlin"));
}

/* Links that stay inside (tzdata's backward names, absolute ones naming the device's database
 * folder) still name zones; the link written names the zone asked for. */
static void test_zone_links_inside_the_database_are_zones(void **state)
{
    fx_fixture *f = *state;
    char etc[PATH_MAX];
    snprintf(etc, sizeof etc, "%s/usr/share/zoneinfo/Etc", f->dir);
    fx_mkdirs(etc);
    link_in_root(f, "../Europe/Berlin", "/usr/share/zoneinfo/Etc/Berlin");
    link_in_root(f, "Etc/Berlin", "/usr/share/zoneinfo/Backward");
    link_in_root(f, "/usr/share/zoneinfo/Europe/Berlin", "/usr/share/zoneinfo/Absolute");
    static const char *const zones[] = {"Etc/Berlin", "Backward", "Absolute"};
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
        char args[256];
        snprintf(args, sizeof args, "{\"zone\":\"%s\"}", zones[i]);
        json_t *r = fx_call_ok(f, "time.set_zone", args);
        assert_string_equal(json_string_value(json_object_get(r, "timeZone")), zones[i]);
        json_decref(r);
    }
    assert_string_equal(fx_readlink(f->dir, "/etc/localtime"), "/usr/share/zoneinfo/Absolute");
}

/* The lookup itself, without configd around it. */
static void test_zoneinfo_lookup_results(void **state)
{
    fx_fixture *f = *state;
    char db[PATH_MAX], out[PATH_MAX], target[PATH_MAX];
    snprintf(db, sizeof db, "%s/usr/share/zoneinfo", f->dir);
    snprintf(target, sizeof target, "%s/etc/localtime", f->dir);
    debian_localtime(f);
    link_in_root(f, target, "/usr/share/zoneinfo/Here");
    link_in_root(f, "Loop", "/usr/share/zoneinfo/Loop");
    const char *dev = "/usr/share/zoneinfo";
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "Europe/Berlin", out, sizeof out), 0);
    assert_string_equal(out, fx_path(f->dir, "/usr/share/zoneinfo/Europe/Berlin"));
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "Here", out, sizeof out), -EXDEV);
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "Loop", out, sizeof out), -ELOOP);
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "Mars", out, sizeof out), -ENOENT);
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "leapseconds", out, sizeof out), -EINVAL);
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "localtime", out, sizeof out), -EINVAL);
    assert_int_equal(cfgd_zoneinfo_lookup(db, dev, "Europe", out, sizeof out), -EISDIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zone_localtime_is_refused_and_leaves_no_loop, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_zone_posixrules_is_refused, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_zone_links_leaving_the_database_are_refused, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_zone_links_inside_the_database_are_zones, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_zoneinfo_lookup_results, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
