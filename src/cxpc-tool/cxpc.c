/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* cxpc: call any route of a libcxpc service from the shell, with JSON arguments.
 *
 *   cxpc call SOCKET ROUTE [JSON] [--timeout SEC] [--fd KEY=FD]...
 *   cxpc routes SOCKET
 *
 * Exit status: 0 on a normal reply, 1 on an error reply (printed to stderr as "ROUTE: code:
 * message"), 2 when the call itself failed (no such socket, timeout, bad JSON). */

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxpc/cxpc.h"
#include "macro.h"

#define CXPC_TOOL_FDS_MAX 16

typedef struct fd_arg {
        char *key;
        int fd;
} fd_arg;

typedef struct options {
        uint64_t timeout_usec;
        fd_arg fds[CXPC_TOOL_FDS_MAX];
        size_t n_fds;
        bool compact;
} options;

static void help(void) {
        printf("Usage:\n"
               "  cxpc call SOCKET ROUTE [JSON] [OPTIONS]   call ROUTE, print the reply as JSON\n"
               "  cxpc routes SOCKET [OPTIONS]              list the routes a service serves\n"
               "\n"
               "Options:\n"
               "  -t, --timeout SEC   deadline of the call (default %llu s; 0 = none)\n"
               "  -f, --fd KEY=FD     pass our file descriptor FD in the request under KEY\n"
               "  -c, --compact       print the reply on one line\n"
               "  -h, --help          show this help\n"
               "\n"
               "Exit status: 0 reply, 1 error reply, 2 the call failed.\n",
               (unsigned long long) (CXPC_DEFAULT_TIMEOUT_USEC / USEC_PER_SEC));
}

static int parse_timeout(const char *s, uint64_t *ret) {
        char *end = NULL;
        errno = 0;
        double d = strtod(s, &end);
        if (errno != 0 || !end || *end != '\0' || d < 0 || d > 1e9)
                return -EINVAL;
        *ret = d == 0 ? CXPC_INFINITY : (uint64_t) (d * (double) USEC_PER_SEC);
        return 0;
}

static int parse_fd_arg(const char *s, fd_arg *ret) {
        const char *eq = strchr(s, '=');
        if (!eq || eq == s)
                return -EINVAL;
        char *end = NULL;
        errno = 0;
        long fd = strtol(eq + 1, &end, 10);
        if (errno != 0 || !end || *end != '\0' || fd < 0 || fd > INT_MAX)
                return -EINVAL;
        char *key = strndup(s, (size_t) (eq - s));
        if (!key)
                return -ENOMEM;
        *ret = (fd_arg){.key = key, .fd = (int) fd};
        return 0;
}

static int print_object(const cxpc_object *o, bool compact, FILE *f) {
        _cleanup_free_ char *json = NULL;
        int r = cxpc_object_to_json(o, compact ? 0 : CXPC_JSON_PRETTY, &json);
        if (r < 0)
                return r;
        fprintf(f, "%s\n", json);
        return 0;
}

static int do_call(const char *socket_path, const char *route, const char *json, const options *o) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *request = NULL, *reply = NULL, *route_obj = NULL;
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *c = NULL;
        int r;

        if (json) {
                r = cxpc_object_from_json(json, &request);
                if (r < 0) {
                        fprintf(stderr, "cxpc: invalid JSON arguments: %s\n", strerror(-r));
                        return 2;
                }
                if (cxpc_object_get_type(request) != CXPC_TYPE_DICTIONARY) {
                        fprintf(stderr, "cxpc: JSON arguments must be an object\n");
                        return 2;
                }
        } else {
                r = cxpc_dict_new(&request);
                if (r < 0)
                        goto oom;
        }

        r = cxpc_string_new(route, &route_obj);
        if (r < 0) {
                fprintf(stderr, "cxpc: invalid route name '%s': %s\n", route, strerror(-r));
                return 2;
        }
        r = cxpc_dict_set(request, CXPC_KEY_ROUTE, route_obj);
        if (r < 0)
                goto oom;

        for (size_t i = 0; i < o->n_fds; i++) {
                r = cxpc_dict_set_fd(request, o->fds[i].key, o->fds[i].fd);
                if (r < 0) {
                        fprintf(stderr, "cxpc: cannot pass fd %d as '%s': %s\n", o->fds[i].fd, o->fds[i].key,
                                strerror(-r));
                        return 2;
                }
        }

        r = cxpc_connection_new_for_path(socket_path, &c);
        if (r < 0) {
                fprintf(stderr, "cxpc: cannot connect to %s: %s\n", socket_path, strerror(-r));
                return 2;
        }

        r = cxpc_connection_call(c, request, o->timeout_usec, &reply);
        if (r == -ETIMEDOUT) {
                fprintf(stderr, "cxpc: %s: no reply within the deadline (timeout)\n", route);
                return 2;
        }
        if (r < 0) {
                fprintf(stderr, "cxpc: %s: call failed: %s\n", route, strerror(-r));
                return 2;
        }

        cxpc_error_code code;
        const char *message = NULL;
        if (cxpc_reply_check(reply, &code, &message) < 0) {
                fprintf(stderr, "cxpc: %s: %s: %s\n", route, cxpc_error_code_to_string(code) ?: "unknown",
                        message ?: "(no message)");
                return 1;
        }

        r = print_object(reply, o->compact, stdout);
        if (r < 0) {
                fprintf(stderr, "cxpc: cannot format the reply: %s\n", strerror(-r));
                return 2;
        }
        return 0;

oom:
        fprintf(stderr, "cxpc: out of memory\n");
        return 2;
}

static int do_routes(const char *socket_path, const options *o) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *request = NULL, *reply = NULL;
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *c = NULL;
        int r;

        r = cxpc_message_new_request(CXPC_ROUTE_INTROSPECT, &request);
        if (r < 0) {
                fprintf(stderr, "cxpc: out of memory\n");
                return 2;
        }
        r = cxpc_connection_new_for_path(socket_path, &c);
        if (r < 0) {
                fprintf(stderr, "cxpc: cannot connect to %s: %s\n", socket_path, strerror(-r));
                return 2;
        }
        r = cxpc_connection_call(c, request, o->timeout_usec, &reply);
        if (r < 0) {
                fprintf(stderr, "cxpc: listing routes failed: %s\n", strerror(-r));
                return 2;
        }
        cxpc_error_code code;
        const char *message = NULL;
        if (cxpc_reply_check(reply, &code, &message) < 0) {
                fprintf(stderr, "cxpc: listing routes failed: %s: %s\n",
                        cxpc_error_code_to_string(code) ?: "unknown", message ?: "(no message)");
                return 1;
        }
        cxpc_object *routes = cxpc_dict_get(reply, "routes");
        if (cxpc_object_get_type(routes) != CXPC_TYPE_ARRAY) {
                fprintf(stderr, "cxpc: the service's reply has no route list\n");
                return 2;
        }
        for (size_t i = 0; i < cxpc_array_get_count(routes); i++) {
                const char *name;
                if (cxpc_string_get(cxpc_array_get(routes, i), &name) >= 0)
                        printf("%s\n", name);
        }
        return 0;
}

int main(int argc, char *argv[]) {
        static const struct option long_options[] = {
                {"help", no_argument, NULL, 'h'},
                {"timeout", required_argument, NULL, 't'},
                {"fd", required_argument, NULL, 'f'},
                {"compact", no_argument, NULL, 'c'},
                {},
        };
        options o = {.timeout_usec = CXPC_DEFAULT_TIMEOUT_USEC};
        int c, ret;

        while ((c = getopt_long(argc, argv, "ht:f:c", long_options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case 't':
                        if (parse_timeout(optarg, &o.timeout_usec) < 0) {
                                fprintf(stderr, "cxpc: invalid timeout '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'f':
                        if (o.n_fds >= CXPC_TOOL_FDS_MAX) {
                                fprintf(stderr, "cxpc: at most %d --fd options\n", CXPC_TOOL_FDS_MAX);
                                return 2;
                        }
                        if (parse_fd_arg(optarg, &o.fds[o.n_fds]) < 0) {
                                fprintf(stderr, "cxpc: invalid --fd '%s', expected KEY=FD\n", optarg);
                                return 2;
                        }
                        o.n_fds++;
                        break;
                case 'c':
                        o.compact = true;
                        break;
                default:
                        return 2;
                }
        }

        /* getopt_long() permutes argv, so options may stand before or after the positional ones. */
        int n_pos = argc - optind;
        char **pos = argv + optind;
        if (n_pos < 1) {
                help();
                return 2;
        }

        if (streq(pos[0], "call")) {
                if (n_pos < 3 || n_pos > 4) {
                        fprintf(stderr, "cxpc: usage: cxpc call SOCKET ROUTE [JSON]\n");
                        return 2;
                }
                ret = do_call(pos[1], pos[2], n_pos == 4 ? pos[3] : NULL, &o);
        } else if (streq(pos[0], "routes")) {
                if (n_pos != 2) {
                        fprintf(stderr, "cxpc: usage: cxpc routes SOCKET\n");
                        return 2;
                }
                ret = do_routes(pos[1], &o);
        } else {
                fprintf(stderr, "cxpc: unknown command '%s' (try --help)\n", pos[0]);
                ret = 2;
        }

        for (size_t i = 0; i < o.n_fds; i++)
                free(o.fds[i].key);
        return ret;
}
