/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "oci-runtime.h"

extern char **environ;

int oci_runtime_spawn(const char *binary, const char *state_root, const char *const *argv,
                      const int stdio[3], int pass_fd, OciInvocation *ret) {
        _cleanup_close_ int log_fd = -EBADF, null_fd = -EBADF;
        char log_arg[64];
        const char *args[OCI_RUNTIME_ARGS_MAX + 8];
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t empty;
        size_t n = 0;
        pid_t pid;
        int r;

        assert_return(binary && state_root && argv && ret, -EINVAL);

        log_fd = memfd_create("oci-log", MFD_CLOEXEC);
        if (log_fd < 0)
                return negative_errno();
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                return negative_errno();
        /* The runtime reopens the path; /proc/self/fd/N resolves in the child after the dup2
         * below clears CLOEXEC on the same number. */
        snprintf(log_arg, sizeof(log_arg), "--log=/proc/self/fd/%d", log_fd);

        args[n++] = binary;
        args[n++] = "--root";
        args[n++] = state_root;
        args[n++] = log_arg;
        for (size_t i = 0; argv[i]; i++) {
                if (i >= OCI_RUNTIME_ARGS_MAX)
                        return -E2BIG;
                args[n++] = argv[i];
        }
        args[n] = NULL;

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        for (int i = 0; i < 3; i++)
                posix_spawn_file_actions_adddup2(&fa, stdio && stdio[i] >= 0 ? stdio[i] : null_fd, i);
        /* Without caller stdio, stderr joins the log: early errors (before the runtime opened
         * its log) are printed only there. */
        if (!stdio)
                posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
        /* dup2 onto itself clears FD_CLOEXEC (glibc >= 2.29). */
        posix_spawn_file_actions_adddup2(&fa, log_fd, log_fd);
        if (pass_fd > 2)
                posix_spawn_file_actions_adddup2(&fa, pass_fd, pass_fd);

        posix_spawnattr_init(&attr);
        sigemptyset(&empty);
        posix_spawnattr_setsigmask(&attr, &empty);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        {
                sigset_t all;
                sigfillset(&all);
                posix_spawnattr_setsigdefault(&attr, &all);
        }

        r = posix_spawn(&pid, binary, &fa, &attr, (char *const *) args, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;

        *ret = (OciInvocation){.pid = pid, .log_fd = TAKE_FD(log_fd)};
        return 0;
}

char *oci_invocation_finish(OciInvocation *inv) {
        char buf[OCI_RUNTIME_MESSAGE_MAX];
        off_t size;
        ssize_t n;
        char *end, *start;

        if (!inv || inv->log_fd < 0)
                return NULL;
        size = lseek(inv->log_fd, 0, SEEK_END);
        if (size <= 0) {
                inv->log_fd = safe_close(inv->log_fd);
                return NULL;
        }
        n = pread(inv->log_fd, buf, sizeof(buf) - 1,
                  size > (off_t) sizeof(buf) - 1 ? size - (off_t) sizeof(buf) + 1 : 0);
        inv->log_fd = safe_close(inv->log_fd);
        if (n <= 0)
                return NULL;
        buf[n] = 0;
        end = buf + n;
        while (end > buf && (end[-1] == '\n' || end[-1] == ' '))
                *--end = 0;
        start = strrchr(buf, '\n');
        start = start ? start + 1 : buf;
        return *start ? strdup(start) : NULL;
}

int oci_runtime_run_sync(const char *binary, const char *state_root, const char *const *argv) {
        OciInvocation inv;
        int status, r;

        r = oci_runtime_spawn(binary, state_root, argv, NULL, -EBADF, &inv);
        if (r < 0)
                return r;
        while (waitpid(inv.pid, &status, 0) < 0)
                if (errno != EINTR) {
                        safe_close(inv.log_fd);
                        return negative_errno();
                }
        safe_close(inv.log_fd);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
