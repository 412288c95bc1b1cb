/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every command of the CLI (and its container-archive helper) shares: the connection to the
 * API server (started on demand), calls with deadlines, error reporting. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "resource-limits.h"

const char *arg_root = NULL;
const char *arg_run_dir = NULL;

bool cli_global_option(int c, const char *arg) {
        if (c == 'r')
                arg_root = arg;
        else if (c == 'R')
                arg_run_dir = arg;
        else
                return false;
        return true;
}

int cli_error(int r, const char *what, const char *code, const char *format, ...) {
        va_list ap;

        fprintf(stderr, "container: %s: %s: ", what, code);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r;
}

int cli_error_reply(int r, const char *what, cxpc_object *reply) {
        cxpc_error_code code = cxpc_error_code_from_errno(-r);
        const char *message = NULL;

        if (reply)
                (void) cxpc_reply_check(reply, &code, &message);
        if (!message || !*message)
                message = strerror(-r);
        return cli_error(r, what, cxpc_error_code_to_string(code) ?: "unknown", "%s", message);
}

int apiserver_socket_path(char **ret) {
        _cleanup_free_ char *run = NULL;
        int r;

        r = container_run_dir(arg_run_dir, &run);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s/%s", run, CONTAINER_APISERVER_SOCKET) < 0)
                return -ENOMEM;
        return 0;
}

static int spawn_apiserver(void) {
        _cleanup_free_ char *path = NULL, *root = NULL, *run = NULL, *log = NULL;
        const char *oci = getenv("CONTAINER_OCI_RUNTIME");
        char err[512];
        pid_t pid;
        int r, status;

        r = find_helper_binary("CONTAINER_APISERVER", "apiserver", "container-apiserver", &path);
        if (r < 0)
                return cli_error(r, "starting the API server", "notFound",
                                 "container-apiserver not found next to the CLI; set CONTAINER_APISERVER");
        /* The server would refuse it and exit; say so now rather than after the start timeout. */
        if (oci && *oci && oci_runtime_check(oci, err, sizeof err) < 0)
                return cli_error(-EINVAL, "starting the API server", "invalidArgument",
                                 "CONTAINER_OCI_RUNTIME: %s", err);
        r = container_root_dir(arg_root, &root);
        if (r >= 0)
                r = container_run_dir(arg_run_dir, &run);
        if (r < 0)
                return r;
        r = mkdir_p(run, 0700);
        if (r < 0)
                return cli_error(r, "starting the API server", "internalError", "%s: %s", run, strerror(-r));
        if (asprintf(&log, "%s/apiserver.log", run) < 0)
                return -ENOMEM;

        /* Double fork: the server is nobody's child that could wait for it, in its own session. */
        pid = fork();
        if (pid < 0)
                return negative_errno();
        if (pid == 0) {
                sigset_t none;
                int fd;

                sigemptyset(&none);
                (void) sigprocmask(SIG_SETMASK, &none, NULL);
                if (setsid() < 0)
                        _exit(1);
                pid = fork();
                if (pid != 0)
                        _exit(pid < 0 ? 1 : 0);
                fd = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (fd >= 0) {
                        (void) dup2(fd, STDIN_FILENO);
                        (void) dup2(fd, STDOUT_FILENO);
                }
                /* Its diagnostics go next to the run directory (it may not exist yet). */
                fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
                if (fd >= 0)
                        (void) dup2(fd, STDERR_FILENO);
                execl(path, "container-apiserver", "--root", root, "--run-dir", run, (char *) NULL);
                _exit(127);
        }
        if (waitpid(pid, &status, 0) < 0)
                return negative_errno();
        return 0;
}

static uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

int cli_connect(bool autostart, cxpc_connection **ret) {
        _cleanup_free_ char *sock = NULL;
        uint64_t deadline;
        int r;

        r = apiserver_socket_path(&sock);
        if (r < 0)
                return cli_error(r, "connecting to the API server", "internalError", "%s", strerror(-r));
        r = cxpc_connection_new_for_path(sock, ret);
        if (r >= 0)
                return 0;
        if (!autostart || (r != -ENOENT && r != -ECONNREFUSED))
                return cli_error(r, "connecting to the API server",
                                 cxpc_error_code_to_string(cxpc_error_code_from_errno(-r)),
                                 "%s: %s (start it with: container system start)", sock, strerror(-r));
        r = spawn_apiserver();
        if (r < 0)
                return r;
        /* A readiness fd would need the server to outlive a pipe to us; connection attempts are
         * cheap, and bounded. */
        deadline = now_usec() + CLI_APISERVER_START_TIMEOUT_USEC;
        for (;;) {
                r = cxpc_connection_new_for_path(sock, ret);
                if (r >= 0)
                        return 0;
                if (now_usec() > deadline)
                        return cli_error(
                                r, "starting the API server", "timeout",
                                "nothing listens on %s after %llus: %s (see apiserver.log in the run "
                                "directory)",
                                sock, (unsigned long long) (CLI_APISERVER_START_TIMEOUT_USEC / USEC_PER_SEC),
                                strerror(-r));
                (void) usleep(CLI_APISERVER_START_STEP_USEC);
        }
}

int cli_call_peer(cxpc_connection *c, const char *peer, cxpc_object *req, uint64_t timeout_usec,
                  const char *what, cxpc_object **ret_reply) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        int r;

        r = cxpc_connection_call(c, req, timeout_usec ?: CONTAINER_CALL_TIMEOUT_USEC, &reply);
        if (r < 0) {
                if (r == -ECONNRESET || r == -ENOTCONN)
                        return cli_error(r, what, "interrupted", "%s went away", peer);
                return cli_error_reply(r, what, NULL);
        }
        r = cxpc_reply_check(reply, NULL, NULL);
        if (r < 0)
                return cli_error_reply(r, what, reply);
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

int cli_call(cxpc_connection *c, cxpc_object *req, uint64_t timeout_usec, const char *what,
             cxpc_object **ret_reply) {
        return cli_call_peer(c, "the API server", req, timeout_usec, what, ret_reply);
}

int cli_runtime_endpoint(const char *container, cxpc_object **ret_endpoint) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        cxpc_object *ep;
        int r;

        r = cli_connect(true, &conn);
        if (r < 0)
                return r;
        r = cli_request(APISERVER_ROUTE_ENDPOINT, container, &req);
        if (r < 0)
                return cli_error(r, "reaching the container", "internalError", "%s", strerror(-r));
        r = cli_call(conn, req, 0, "reaching the container", &reply);
        if (r < 0)
                return r;
        ep = cxpc_dict_get(reply, "endpoint");
        if (cxpc_object_get_type(ep) != CXPC_TYPE_ENDPOINT)
                return cli_error(-EBADMSG, "reaching the container", "internalError",
                                 "reply without endpoint");
        *ret_endpoint = cxpc_object_ref(ep);
        return 0;
}

int cli_runtime_connect(const char *container, cxpc_connection **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *ep = NULL;
        int r;

        r = cli_runtime_endpoint(container, &ep);
        if (r < 0)
                return r;
        r = cxpc_connection_new_for_endpoint(ep, ret);
        if (r < 0)
                return cli_error(r, "reaching the container", "internalError",
                                 "connecting to its runtime service: %s", strerror(-r));
        return 0;
}

int cli_request(const char *route, const char *id, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        r = cxpc_message_new_request(route, &m);
        if (r >= 0 && id)
                r = cxpc_dict_set_string(m, "id", id);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

json_t *cli_object_to_json(const cxpc_object *o) {
        _cleanup_free_ char *text = NULL;

        if (!o || cxpc_object_to_json(o, 0, &text) < 0)
                return NULL;
        return json_loads(text, JSON_DECODE_ANY, NULL);
}

int parse_output_format(const char *s, OutputFormat *ret) {
        if (streq(s, "table"))
                *ret = OUTPUT_TABLE;
        else if (streq(s, "json"))
                *ret = OUTPUT_JSON;
        else
                return cli_error(-EINVAL, "--format", "invalidArgument", "\"%s\": use table or json", s);
        return 0;
}

int cli_parse_size(const char *s, int64_t *ret) {
        char *end;
        double v;
        int64_t mult = 1;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || v < 0)
                return -EINVAL;
        switch (*end) {
        case 0:
                break;
        case 'b':
        case 'B':
                mult = 1;
                end++;
                break;
        case 'k':
        case 'K':
                mult = 1024;
                end++;
                break;
        case 'm':
        case 'M':
                mult = 1024 * 1024;
                end++;
                break;
        case 'g':
        case 'G':
                mult = 1024 * 1024 * 1024;
                end++;
                break;
        default:
                return -EINVAL;
        }
        if (*end == 'b' || *end == 'B')
                end++;
        if (*end)
                return -EINVAL;
        *ret = (int64_t) (v * (double) mult);
        return 0;
}

bool cli_help_requested(int argc, char **argv, const char *usage) {
        if (argc < 2 || (!streq(argv[1], "--help") && !streq(argv[1], "-h")))
                return false;
        printf("%s\n", usage);
        return true;
}

int cli_parse_cpus(const char *s, double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || end == s || !(v > 0) || v > CONTAINER_CPUS_MAX)
                return cli_error(-EINVAL, "--cpus", "invalidArgument", "\"%s\": a positive number of CPUs",
                                 s);
        *ret = v;
        return 0;
}

int cli_parse_memory(const char *s, int64_t *ret) {
        int64_t v;

        if (cli_parse_size(s, &v) < 0 || v < (int64_t) CONTAINER_MEMORY_MIN)
                return cli_error(-EINVAL, "--memory", "invalidArgument",
                                 "\"%s\": a size of at least 4m (suffixes b, k, m, g)", s);
        *ret = v;
        return 0;
}
