/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Runs the OCI runtime (crun or runc) as a child process without waiting for it: the caller
 * reaps it (the service's SIGCHLD source) and then reads its error message. */

#define OCI_RUNTIME_ARGS_MAX    24u
#define OCI_RUNTIME_MESSAGE_MAX 4096u

typedef struct OciInvocation {
        pid_t pid;
        int log_fd; /* memfd the runtime writes its log to (--log) */
} OciInvocation;

/* Executes the runtime from fd, a sealed copy of its binary (sealed_exe_check() passed), from
 * now on; without one each call makes its own copy. The fd stays the caller's. */
void oci_runtime_set_exe_fd(int fd);
/* argv: the subcommand and its arguments, NULL-terminated (e.g. {"delete","-f",id,NULL}).
 * stdio[i] < 0 means /dev/null. state_root is passed as --root. pass_fd >= 0 stays open in the
 * runtime under its own number, for an argument "/proc/self/fd/N" (e.g. --process of a memfd). */
int oci_runtime_spawn(const char *binary, const char *state_root, const char *const *argv,
                      const int stdio[3], int pass_fd, OciInvocation *ret);
/* The runtime's error message from what it logged, or NULL. Closes the log fd. */
char *oci_invocation_finish(OciInvocation *inv);
/* The message of the last error-level line of a runtime's log (else of the last non-empty line),
 * without the log format around it: crun writes plain lines, runc logrus text lines
 * (time="..." level=error msg="..."), either JSON lines with --log-format=json. NULL if empty. */
char *oci_log_message(const char *text);
/* Blocking variant for the reaper and for cleanup at exit: spawn, wait, return exit status or
 * negative errno. */
int oci_runtime_run_sync(const char *binary, const char *state_root, const char *const *argv);
