/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* container-init: PID 1 for `run --init`. Statically linked, bind-mounted into the container at
 * /dev/init. PID 1 ignores signals it has no handler for, so a shell as PID 1 never sees SIGTERM;
 * this init forwards every catchable signal to its child, reaps orphans, and exits with the
 * child's status (128 + signal when a signal killed it). */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
        sigset_t all, none;
        pid_t child;
        int first = 1;

        if (argc > 1 && strcmp(argv[1], "--") == 0)
                first = 2;
        if (first >= argc) {
                fprintf(stderr, "usage: container-init [--] COMMAND [ARG...]\n");
                return 125;
        }
        sigfillset(&all);
        sigemptyset(&none);
        (void) sigprocmask(SIG_BLOCK, &all, NULL);

        child = fork();
        if (child < 0) {
                perror("container-init: fork");
                return 125;
        }
        if (child == 0) {
                (void) setsid();
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                execvp(argv[first], argv + first);
                fprintf(stderr, "container-init: %s: %s\n", argv[first], strerror(errno));
                _exit(errno == ENOENT ? 127 : 126);
        }

        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&all, &si);

                if (sig < 0)
                        continue;
                if (sig != SIGCHLD) {
                        (void) kill(child, sig);
                        continue;
                }
                for (;;) {
                        int status;
                        pid_t p = waitpid(-1, &status, WNOHANG);
                        if (p <= 0)
                                break;
                        if (p != child)
                                continue;
                        if (WIFEXITED(status))
                                return WEXITSTATUS(status);
                        if (WIFSIGNALED(status))
                                return 128 + WTERMSIG(status);
                }
        }
}
