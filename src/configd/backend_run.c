/* Running a program the safe way: execve of an absolute path, no shell, captured output, timeout.
 */
#include "configd/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"

/* Between fork and execve only async-signal-safe calls are allowed. */
static void child(const char *exec_path, const char *const *argv, const char *const *envp,
                  int out_fd, int err_fd, int status_fd)
{
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, NULL); /* configd ignores SIGPIPE; the program must not inherit it */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0); /* its own process group, so a timeout kills whatever it started too */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        goto failed;
    /* Nothing of configd's (its socket, client connections) leaks into the program. The status
     * pipe stays: it is close-on-exec, so it closes by itself when execve succeeds. */
    if (status_fd > 3)
        close_range(3, (unsigned)status_fd - 1, 0);
    close_range((unsigned)status_fd + 1, ~0U, 0);
    execve(exec_path, (char *const *)argv, (char *const *)envp);
failed:;
    int e = errno;
    (void)!write(status_fd, &e, sizeof e);
    _exit(127);
}

static void append_output(cfgd_cmd_result *out, const char *buf, size_t n)
{
    size_t room = sizeof out->output - 1 - out->output_len;
    if (n > room)
        n = room;
    memcpy(out->output + out->output_len, buf, n);
    out->output_len += n;
    out->output[out->output_len] = '\0';
}

/* Collects output until end of stream or the deadline; returns false on timeout. */
static bool collect(int fd, int64_t deadline, cfgd_cmd_result *out)
{
    for (;;) {
        int64_t left = deadline - time_mono_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno != EINTR)
            return false;
        if (n <= 0)
            continue;
        char buf[1024];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return true;
        append_output(out, buf, (size_t)got);
    }
}

/* Waits for the child until the deadline, then kills it. */
static void reap(pid_t pid, int64_t deadline, cfgd_cmd_result *out)
{
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            out->status = -1;
            return;
        }
        if (time_mono_ms() >= deadline) {
            if (kill(-pid, SIGKILL) != 0)
                kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            out->timed_out = true;
            break;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    out->status = !out->timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int cfgd_run_command(const char *exec_path, const char *const *argv, const char *const *envp,
                     int timeout_ms, cfgd_cmd_result *out, cfgd_error *err)
{
    return cfgd_run_command_to(exec_path, argv, envp, timeout_ms, -1, out, err);
}

int cfgd_run_command_to(const char *exec_path, const char *const *argv, const char *const *envp,
                        int timeout_ms, int stdout_fd, cfgd_cmd_result *out, cfgd_error *err)
{
    memset(out, 0, sizeof *out);
    int out_pipe[2], status_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %s: %s", argv[0], strerror(errno));
        return -errno;
    }
    if (pipe2(status_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %s: %s", argv[0], strerror(e));
        return -e;
    }
    int64_t deadline = time_mono_ms() + timeout_ms;
    pid_t pid = fork();
    if (pid == 0)
        child(exec_path, argv, envp, stdout_fd >= 0 ? stdout_fd : out_pipe[1], out_pipe[1],
              status_pipe[1]);
    int fork_errno = errno;
    if (pid > 0)
        setpgid(pid, pid); /* also here: whichever of the two runs first */
    close(out_pipe[1]);
    close(status_pipe[1]);
    if (pid < 0) {
        close(out_pipe[0]);
        close(status_pipe[0]);
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %s: %s", argv[0], strerror(fork_errno));
        return -fork_errno;
    }
    /* The status pipe reads empty once execve succeeded, or the child's errno when it failed. */
    int exec_errno = 0;
    ssize_t n;
    while ((n = read(status_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR)
        ;
    close(status_pipe[0]);
    if (n != (ssize_t)sizeof exec_errno)
        exec_errno = 0;
    bool done = exec_errno == 0 ? collect(out_pipe[0], deadline, out) : true;
    close(out_pipe[0]);
    reap(pid, done ? deadline : 0, out);
    if (exec_errno) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %s: %s", argv[0], strerror(exec_errno));
        return -exec_errno;
    }
    return 0;
}
