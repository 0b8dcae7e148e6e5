/* Runs iotdm-transfer for each download or upload and maps its exit status back to results. */
#include "agent/transfer_client.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

void agent_transfers_init(agent_transfers *t, const char *helper, const char *state_dir)
{
    if (helper && *helper) {
        snprintf(t->helper, sizeof t->helper, "%s", helper);
    } else {
        char self[512];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        snprintf(t->helper, sizeof t->helper, "%s/iotdm-transfer", n > 0 ? dirname(self) : ".");
    }
    snprintf(t->temp_dir, sizeof t->temp_dir, "%s/downloads", state_dir);
    atomic_init(&t->running_pid, 0);
    atomic_init(&t->cancelled, false);
}

void agent_transfers_cancel(void *ctx)
{
    agent_transfers *t = ctx;
    atomic_store(&t->cancelled, true);
    int pid = atomic_load(&t->running_pid);
    if (pid > 0)
        kill(pid, SIGTERM);
}

static iotdm_result result_of(int status)
{
    if (!WIFEXITED(status))
        return -EIO;
    switch (WEXITSTATUS(status)) {
    case TRANSFER_EXIT_OK:
        return IOTDM_OK;
    case TRANSFER_EXIT_MALFORMED:
        return IOTDM_E_MALFORMED;
    case TRANSFER_EXIT_TOO_LARGE:
        return IOTDM_E_TOO_LARGE;
    case TRANSFER_EXIT_HASH:
        return IOTDM_E_PRECONDITION;
    case TRANSFER_EXIT_UNAUTHORIZED:
        return IOTDM_E_UNAUTHORIZED;
    default:
        return -EIO;
    }
}

/* Runs the helper with file_fd as its descriptor 3 and stdin_text on its stdin; its stdout and
 * stderr (one short line) land in out. */
static iotdm_result run_helper(agent_transfers *t, char *const argv[], int file_fd,
                               const char *stdin_text, char *out, size_t out_cap)
{
    int in[2], outp[2];
    out[0] = '\0';
    if (atomic_load(&t->cancelled)) {
        snprintf(out, out_cap, "cancelled: the agent is stopping");
        return -ECANCELED;
    }
    if (pipe2(in, O_CLOEXEC) != 0)
        return -errno;
    if (pipe2(outp, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]);
        return -errno;
    }
    static const char no_exec[] = "cannot run iotdm-transfer\n";
    pid_t pid = fork();
    if (pid == 0) {
        /* The agent has threads: between fork and exec only async-signal-safe calls (no stdio).
         * dup2 clears close-on-exec on the copies: exactly these reach the helper. */
        if (dup2(in[0], 0) < 0 || dup2(outp[1], 1) < 0 || dup2(outp[1], 2) < 0 ||
            dup2(file_fd, TRANSFER_FILE_FD) < 0)
            _exit(127);
        execv(t->helper, argv);
        IOTDM_IGNORE(write(2, no_exec, sizeof no_exec - 1)); /* the parent logs the exit code */
        _exit(127);
    }
    if (pid > 0) {
        atomic_store(&t->running_pid, (int)pid);
        if (atomic_load(&t->cancelled)) /* cancelled after the check above */
            kill(pid, SIGTERM);
    }
    close(in[0]);
    close(outp[1]);
    if (pid < 0) {
        close(in[1]), close(outp[0]);
        return -errno;
    }
    signal(SIGPIPE, SIG_IGN);
    if (stdin_text)
        (void)!write(in[1], stdin_text, strlen(stdin_text));
    close(in[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(outp[0], out + len, out_cap - 1 - len)) > 0 && len + (size_t)n < out_cap - 1)
        len += (size_t)n;
    if (n > 0)
        len += (size_t)n;
    out[len < out_cap ? len : out_cap - 1] = '\0';
    out[strcspn(out, "\n")] = '\0';
    close(outp[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    atomic_store(&t->running_pid, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        log_error("agent", "cannot run %s: %s", t->helper, out[0] ? out : "no reason given");
    return result_of(status);
}

static int staging_file(const char *dir)
{
    mkdir(dir, 0700);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    /* O_TMPFILE is not supported everywhere: a named file, unlinked at once. */
    char path[700];
    snprintf(path, sizeof path, "%s/.download.XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

iotdm_result agent_transfer_download(void *ctx, const char *url, const char *sha256_hex,
                                     size_t max_bytes, int *out_fd, char *err, size_t err_cap)
{
    agent_transfers *t = ctx;
    *out_fd = -1;
    int fd = staging_file(t->temp_dir);
    if (fd < 0) {
        snprintf(err, err_cap, "cannot stage the download in %s: %s", t->temp_dir, strerror(errno));
        return -EIO;
    }
    char max[32];
    snprintf(max, sizeof max, "%zu", max_bytes);
    char *argv[] = {
        t->helper,
        "download",
        (char *)url,
        (char *)sha256_hex,
        max,
        (char *)(t->download_ca_file && *t->download_ca_file ? t->download_ca_file : NULL),
        NULL};
    iotdm_result r = run_helper(t, argv, fd, NULL, err, err_cap);
    if (r == IOTDM_OK && lseek(fd, 0, SEEK_SET) != 0)
        r = -EIO;
    if (r < 0) {
        close(fd);
        return r;
    }
    *out_fd = fd;
    return IOTDM_OK;
}

iotdm_result agent_transfer_upload(void *ctx, int fd, const char *blob_name, char *out_blob,
                                   size_t out_cap, char *err, size_t err_cap)
{
    agent_transfers *t = ctx;
    bool x509 = t->cert_file && *t->cert_file;
    char port[16], line[sizeof TRANSFER_TOKEN_PREFIX + 1024 + 1], output[1400];
    line[0] = '\0';
    if (!x509) {
        size_t pre = strlen(TRANSFER_TOKEN_PREFIX);
        memcpy(line, TRANSFER_TOKEN_PREFIX, pre);
        iotdm_result r = iotdm_client_sas_token(t->client, TRANSFER_TOKEN_TTL_S, line + pre,
                                                sizeof line - pre - 1);
        if (r < 0) {
            memset(line, 0, sizeof line);
            snprintf(err, err_cap, "cannot sign a SAS token for the upload: %s",
                     iotdm_result_message(r));
            return r;
        }
        strcat(line, "\n");
    }
    snprintf(port, sizeof port, "%u", t->hub_https_port ? t->hub_https_port : 443);
    char *argv[] = {t->helper,
                    "upload",
                    (char *)t->hub_host,
                    port,
                    (char *)(t->hub_ca_file ? t->hub_ca_file : ""),
                    (char *)t->device_id,
                    (char *)blob_name,
                    x509 ? (char *)t->cert_file : NULL,
                    x509 ? (char *)t->key_file : NULL,
                    NULL};
    lseek(fd, 0, SEEK_SET);
    iotdm_result r = run_helper(t, argv, fd, x509 ? NULL : line, output, sizeof output);
    memset(line, 0, sizeof line);
    if (r < 0)
        snprintf(err, err_cap, "%s", output[0] ? output : "the upload failed");
    else
        snprintf(out_blob, out_cap, "%s", output);
    return r;
}
