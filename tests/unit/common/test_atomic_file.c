/* The atomic file writer: new and replaced files with the caller's mode, and failures (a write
 * past the file-size limit, a rename onto a folder) that leave the old file and no temporary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"

typedef struct {
    char dir[256];
    char path[300];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/iotdm-atomic-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/state.json", f->dir);
    *state = f;
    return 0;
}

/* Removes the folder's files (and one level of sub-folders) and the folder. */
static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && unlink(p) != 0)
            rmdir(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void assert_content(const char *path, const char *want)
{
    char buf[256] = "";
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    assert_string_equal(buf, want);
}

/* How many names the folder holds (a leftover temporary file counts). */
static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void test_atomic_write_new_file_has_content_and_exact_mode(void **state)
{
    fixture *f = *state;
    mode_t old = umask(077); /* the caller's mode wins over the umask */
    assert_int_equal(atomic_file_write(f->path, "{\"a\":1}", 7, 0644, NULL, 0), 0);
    umask(old);
    assert_content(f->path, "{\"a\":1}");
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_equal(count_entries(f->dir), 1);
}

static void test_atomic_write_replaces_and_leaves_no_temporary(void **state)
{
    fixture *f = *state;
    assert_int_equal(atomic_file_write(f->path, "old", 3, 0600, NULL, 0), 0);
    assert_int_equal(atomic_file_write(f->path, "new and longer", 14, 0600, NULL, 0), 0);
    assert_content(f->path, "new and longer");
    assert_int_equal(atomic_file_write(f->path, "", 0, 0600, NULL, 0), 0);
    assert_content(f->path, "");
    assert_int_equal(count_entries(f->dir), 1);
}

/* A write that fails half-way (the file-size limit standing in for a full disk): the old file
 * is whole, the temporary file is gone, and the error names the file and the step. */
static void test_atomic_write_failed_write_keeps_old_file(void **state)
{
    fixture *f = *state;
    assert_int_equal(atomic_file_write(f->path, "old", 3, 0600, NULL, 0), 0);
    char big[4096];
    memset(big, 'x', sizeof big);
    struct rlimit saved, small = {.rlim_cur = 100, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small.rlim_max = saved.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    char err[256] = "";
    iotdm_result r = atomic_file_write(f->path, big, sizeof big, 0600, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(r, -EFBIG);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, ": write: "));
    assert_content(f->path, "old");
    assert_int_equal(count_entries(f->dir), 1);
}

/* The rename fails (a folder holds the name): nothing replaced, no temporary left. */
static void test_atomic_write_failed_rename_leaves_no_temporary(void **state)
{
    fixture *f = *state;
    char sub[400], inner[420];
    snprintf(sub, sizeof sub, "%s/taken", f->dir);
    snprintf(inner, sizeof inner, "%s/x", sub);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(atomic_file_write(inner, "keep", 4, 0600, NULL, 0), 0);
    char err[256] = "";
    iotdm_result r = atomic_file_write(sub, "data", 4, 0600, err, sizeof err);
    assert_true(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
    assert_non_null(strstr(err, ": rename: "));
    assert_content(inner, "keep");
    assert_int_equal(count_entries(f->dir), 1);
    assert_int_equal(unlink(inner), 0);
}

/* A link at the name is replaced by the file, never written through. */
static void test_atomic_write_replaces_a_link_without_following_it(void **state)
{
    fixture *f = *state;
    char target[400];
    snprintf(target, sizeof target, "%s/target", f->dir);
    assert_int_equal(atomic_file_write(target, "target", 6, 0600, NULL, 0), 0);
    assert_int_equal(symlink(target, f->path), 0);
    assert_int_equal(atomic_file_write(f->path, "file", 4, 0600, NULL, 0), 0);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_content(target, "target");
}

static void test_atomic_write_bad_names_and_missing_folder(void **state)
{
    fixture *f = *state;
    char err[256] = "";
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(atomic_file_write_at(dfd, "a/b", NULL, "x", 1, 0600, err, sizeof err),
                     -EINVAL);
    assert_int_equal(atomic_file_write_at(dfd, "..", NULL, "x", 1, 0600, NULL, 0), -EINVAL);
    assert_int_equal(atomic_file_write_at(dfd, "ok", "shown/ok", "x", 1, 0600, err, sizeof err), 0);
    close(dfd);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nowhere/file", f->dir);
    assert_int_equal(atomic_file_write(missing, "x", 1, 0600, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "open the folder"));
    assert_int_equal(count_entries(f->dir), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_atomic_write_new_file_has_content_and_exact_mode,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_replaces_and_leaves_no_temporary, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_failed_write_keeps_old_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_failed_rename_leaves_no_temporary, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_replaces_a_link_without_following_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_write_bad_names_and_missing_folder, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
