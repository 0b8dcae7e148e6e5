/* A throwaway swtpm (socket mode, TCP on loopback) for the limpet unit tests. */
#ifndef IOTDM_TEST_SWTPM_FIXTURE_H
#define IOTDM_TEST_SWTPM_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "limpet/tpm.h"

typedef struct {
    pid_t pid;
    char dir[256];
    char tcti[96];
    limpet_tpm *tpm;
} swtpm_fixture;

static inline bool swtpm_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static inline bool swtpm_connects(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts swtpm; false (with a message) when it is not installed or does not come up. */
static inline bool swtpm_start(swtpm_fixture *f)
{
    memset(f, 0, sizeof *f);
    if (system("command -v swtpm >/dev/null 2>&1") != 0) {
        fprintf(stderr, "swtpm not installed: skipping\n");
        return false;
    }
    snprintf(f->dir, sizeof f->dir, "/tmp/iotdm-swtpm-XXXXXX");
    if (!mkdtemp(f->dir))
        return false;
    int port = 0;
    for (int p = 20000 + (getpid() * 7) % 20000; p < 60000 && !port; p += 2)
        if (swtpm_port_free(p) && swtpm_port_free(p + 1))
            port = p;
    char state[300], server[64], ctrl[64];
    snprintf(state, sizeof state, "dir=%s", f->dir);
    snprintf(server, sizeof server, "type=tcp,port=%d", port);
    snprintf(ctrl, sizeof ctrl, "type=tcp,port=%d", port + 1);
    f->pid = fork();
    if (f->pid == 0) {
        execlp("swtpm", "swtpm", "socket", "--tpmstate", state, "--server", server, "--ctrl", ctrl,
               "--tpm2", "--flags", "not-need-init,startup-clear", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !swtpm_connects(port); i++)
        usleep(50 * 1000);
    snprintf(f->tcti, sizeof f->tcti, "swtpm:host=127.0.0.1,port=%d", port);
    char err[256];
    if (limpet_tpm_open(f->tcti, &f->tpm, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return false;
    }
    return true;
}

static inline void swtpm_stop(swtpm_fixture *f)
{
    limpet_tpm_close(f->tpm);
    f->tpm = NULL;
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (f->dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
}

#endif
