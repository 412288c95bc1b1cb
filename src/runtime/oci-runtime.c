/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "macro.h"
#include "oci-runtime.h"
#include "sealed-exe.h"

extern char **environ;

/* The sealed copy of the binary the runtime is executed from (sealed-exe.h): the API server's,
 * handed over at startup, or else one made per call and closed once the runtime runs (held for the
 * container's lifetime it would be memory, shmem, that no RSS shows). */
static int shared_exe_fd = -EBADF;

void oci_runtime_set_exe_fd(int fd) {
        shared_exe_fd = fd;
}

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

        /* The sealed copy when there is one: the kernel opens /proc/self/fd/N before the exec
         * closes CLOEXEC fds. argv[0] stays the runtime's name. */
        char exe_path[64];
        const char *exe = binary;
        _cleanup_close_ int own_exe_fd = -EBADF;
        int exe_fd = shared_exe_fd;
        if (exe_fd < 0 && sealed_exe_copy(binary, &own_exe_fd) >= 0)
                exe_fd = own_exe_fd;
        if (exe_fd >= 0) {
                snprintf(exe_path, sizeof(exe_path), "/proc/self/fd/%d", exe_fd);
                exe = exe_path;
        }
        r = posix_spawn(&pid, exe, &fa, &attr, (char *const *) args, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;

        *ret = (OciInvocation){.pid = pid, .log_fd = TAKE_FD(log_fd)};
        return 0;
}

static unsigned hex_value(char c) {
        return isdigit((unsigned char) c) ? (unsigned) (c - '0')
                                          : (unsigned) (tolower((unsigned char) c) - 'a' + 10);
}

/* Go's strconv quoting (logrus' text format quotes values with %q): \" \\ \n \t \r \xNN \uNNNN. Decodes
 * the quoted string starting at s (at the opening quote) into a new string. */
static char *go_unquote(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(n + 1), *o = out;

        if (!out)
                return NULL;
        for (s++; *s && *s != '"'; s++) {
                if (*s != '\\' || !s[1]) {
                        *o++ = *s;
                        continue;
                }
                s++;
                switch (*s) {
                case 'n':
                        *o++ = '\n';
                        break;
                case 't':
                        *o++ = '\t';
                        break;
                case 'r':
                        *o++ = '\r';
                        break;
                case 'x':
                case 'u': {
                        unsigned digits = *s == 'x' ? 2 : 4, v = 0, i;
                        for (i = 0; i < digits && isxdigit((unsigned char) s[1 + i]); i++)
                                v = v * 16 + hex_value(s[1 + i]);
                        if (i < digits || v == 0) {
                                *o++ = '\\';
                                *o++ = *s;
                                break;
                        }
                        s += digits;
                        /* Printable ASCII stays as is; anything else (rare in these messages) as '?'. */
                        *o++ = v < 0x80 ? (char) v : '?';
                        break;
                }
                default:
                        *o++ = *s; /* \" \\ and anything else: the character itself */
                }
        }
        *o = 0;
        return out;
}

/* The value of key in a logrus text line ("time=... level=error msg=\"...\""), or NULL. */
static char *logrus_field(const char *line, const char *key) {
        size_t klen = strlen(key);

        for (const char *s = line; (s = strstr(s, key)); s += klen) {
                if ((s != line && s[-1] != ' ') || s[klen] != '=')
                        continue;
                s += klen + 1;
                if (*s == '"')
                        return go_unquote(s);
                return strndup(s, strcspn(s, " "));
        }
        return NULL;
}

/* One log line as the runtime wrote it: plain text (crun), logrus text (runc: time="..."
 * level=error msg="...") or JSON ({"level":"error","msg":"..."}, --log-format=json). Returns the
 * message and, in *ret_level, the level if the line had one (else NULL). */
static char *log_line_parse(const char *line, char **ret_level) {
        *ret_level = NULL;
        if (line[0] == '{') {
                json_t *j = json_loads(line, 0, NULL);
                const char *msg = j ? json_string_value(json_object_get(j, "msg")) : NULL;
                char *r = NULL;
                if (msg) {
                        const char *level = json_string_value(json_object_get(j, "level"));
                        r = strdup(msg);
                        *ret_level = level ? strdup(level) : NULL;
                }
                json_decref(j);
                if (r)
                        return r;
        } else if (strstr(line, "msg=") && strstr(line, "level=")) {
                char *msg = logrus_field(line, "msg");
                if (msg) {
                        *ret_level = logrus_field(line, "level");
                        return msg;
                }
        }
        return strdup(line);
}

char *oci_log_message(const char *text) {
        _cleanup_free_ char *copy = NULL;
        char *last = NULL, *last_error = NULL;

        if (!text)
                return NULL;
        copy = strdup(text);
        if (!copy)
                return NULL;
        /* The last error-level line wins over later warnings; without levels the last line. */
        for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *level = NULL, *msg;
                size_t len = strlen(line);

                while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\r'))
                        line[--len] = 0;
                if (len == 0)
                        continue;
                msg = log_line_parse(line, &level);
                if (!msg) {
                        free(level);
                        continue;
                }
                if (level && (streq(level, "error") || streq(level, "fatal") || streq(level, "panic"))) {
                        free(last_error);
                        last_error = strdup(msg);
                }
                free(level);
                free(last);
                last = msg;
        }
        if (last_error) {
                free(last);
                last = last_error;
        }
        if (last && !*last) {
                free(last);
                last = NULL;
        }
        return last;
}

char *oci_invocation_finish(OciInvocation *inv) {
        char buf[OCI_RUNTIME_MESSAGE_MAX];
        off_t size;
        ssize_t n;
        char *start;

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
        /* A tail that starts in the middle of a line: drop the partial line. */
        start = buf;
        if (size > (off_t) sizeof(buf) - 1) {
                char *nl = strchr(buf, '\n');
                if (nl)
                        start = nl + 1;
        }
        return oci_log_message(start);
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
