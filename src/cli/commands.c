/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ls, inspect, stop, kill, pause, unpause, rm, stats, top, cp, export, prune, system. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime-client.h"
#include "cli.h"
#include "update-limits.h"

/* Interval of `stats` samples, and the window of its CPU percentage. */
#define STATS_INTERVAL_USEC   (1000ull * 1000ull)
#define STATS_CPU_WINDOW_USEC (200ull * 1000ull)

static int list_containers(cxpc_connection *conn, bool all, json_t **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        json_t *j;
        int r;

        r = cli_request(APISERVER_ROUTE_LIST, NULL, &req);
        if (r >= 0)
                r = cxpc_dict_set_bool(req, "all", all);
        if (r < 0)
                return r;
        r = cli_call(conn, req, 0, "listing containers", &reply);
        if (r < 0)
                return r;
        j = cli_object_to_json(cxpc_dict_get(reply, "containers"));
        if (!json_is_array(j)) {
                json_decref(j);
                return cli_error(-EBADMSG, "listing containers", "internalError", "malformed reply");
        }
        *ret = j;
        return 0;
}

static void format_ago(int64_t then, char *buf, size_t size) {
        int64_t d = (now_nsec() - then) / (int64_t) NSEC_PER_SEC;

        if (d < 0)
                d = 0;
        if (d < 60)
                snprintf(buf, size, "%" PRIi64 " second%s", d, d == 1 ? "" : "s");
        else if (d < 3600)
                snprintf(buf, size, "%" PRIi64 " minute%s", d / 60, d / 60 == 1 ? "" : "s");
        else if (d < 86400)
                snprintf(buf, size, "%" PRIi64 " hour%s", d / 3600, d / 3600 == 1 ? "" : "s");
        else
                snprintf(buf, size, "%" PRIi64 " day%s", d / 86400, d / 86400 == 1 ? "" : "s");
}

static int64_t json_date(json_t *j) {
        int64_t v = 0;

        if (json_is_string(j))
                (void) parse_rfc3339(json_string_value(j), &v);
        return v;
}

static void print_table_row(json_t *c) {
        const char *status = json_string_value(json_object_get(c, "status")) ?: "?";
        json_t *cmd = json_object_get(c, "command"), *v;
        char command[32] = "", created[48] = "", st[96], ago[32];
        size_t i, used = 0;

        json_array_foreach(cmd, i, v) {
                int n = snprintf(command + used, sizeof command - used, "%s%s", i ? " " : "",
                                 json_string_value(v) ?: "");
                if (n < 0 || (size_t) n >= sizeof command - used) {
                        strcpy(command + sizeof command - 4, "...");
                        break;
                }
                used += (size_t) n;
        }
        if (json_date(json_object_get(c, "createdAt")) > 0) {
                format_ago(json_date(json_object_get(c, "createdAt")), ago, sizeof ago);
                snprintf(created, sizeof created, "%s ago", ago);
        }
        if (streq(status, "running")) {
                format_ago(json_date(json_object_get(c, "startedAt")), ago, sizeof ago);
                snprintf(st, sizeof st, "Up %s", ago);
        } else if (streq(status, "paused")) {
                format_ago(json_date(json_object_get(c, "startedAt")), ago, sizeof ago);
                snprintf(st, sizeof st, "Up %s (Paused)", ago);
        } else if (streq(status, "stopped")) {
                json_t *code = json_object_get(c, "exitCode");
                format_ago(json_date(json_object_get(c, "exitedAt")), ago, sizeof ago);
                if (json_is_integer(code))
                        snprintf(st, sizeof st, "Exited (%" JSON_INTEGER_FORMAT ") %s ago",
                                 json_integer_value(code), ago);
                else
                        snprintf(st, sizeof st, "Exited (unknown) %s ago", ago);
        } else if (streq(status, "created"))
                snprintf(st, sizeof st, "Created");
        else
                snprintf(st, sizeof st, "Broken");
        printf("%-16s %-32s %-32s %-16s %s\n", json_string_value(json_object_get(c, "id")),
               json_string_value(json_object_get(c, "image")) ?: json_string_value(json_object_get(c, "rootfs")) ?: "-",
               command, created, st);
}

int verb_ls(int argc, char **argv) {
        static const struct option options[] = {
                {"all", no_argument, NULL, 'a'},          {"quiet", no_argument, NULL, 'q'},
                {"format", required_argument, NULL, 'F'}, {"filter", required_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},         {},
        };
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(json_decrefp) json_t *list = NULL;
        _cleanup_(container_filter_done) ContainerFilter filter = {};
        OutputFormat format = OUTPUT_TABLE;
        bool all = false, quiet = false;
        json_t *c;
        size_t i;
        int opt;

        while ((opt = getopt_long(argc, argv, "aqf:h", options, NULL)) >= 0)
                switch (opt) {
                case 'a':
                        all = true;
                        break;
                case 'f':
                        if (container_filter_add(&filter, optarg) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'F':
                        if (parse_output_format(optarg, &format) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        break;
                case 'h':
                        printf("Usage: container ls [-a] [-q] [-f|--filter KEY=VALUE]... [--format "
                               "table|json]\n"
                               "  KEY: id, name, label (K or K=V), status (created, running, exited),\n"
                               "       ancestor (IMAGE[:TAG]), exited (exit code)\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (optind < argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "ls", "invalidArgument",
                                 "unexpected argument %s", argv[optind]);
        if (cli_connect(true, &conn) < 0 ||
            list_containers(conn, all || container_filter_wants_all(&filter), &list) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (i = json_array_size(list); i > 0; i--)
                if (!container_filter_match(&filter, json_array_get(list, i - 1)) &&
                    json_array_remove(list, i - 1) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
        if (quiet) {
                json_array_foreach(list, i, c) printf("%s\n", json_string_value(json_object_get(c, "id")));
        } else if (format == OUTPUT_JSON) {
                if (json_dumpf(list, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
                putchar('\n');
        } else {
                printf("%-16s %-32s %-32s %-16s %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
                       "STATUS");
                json_array_foreach(list, i, c) print_table_row(c);
        }
        return fflush(stdout) == 0 ? 0 : CONTAINER_EXIT_TOOL_FAILED;
}

int verb_inspect(int argc, char **argv) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(json_decrefp) json_t *out = json_array();
        int ret = 0, first = 1;

        if (cli_help_requested(argc, argv, "Usage: container inspect [--format json] CONTAINER..."))
                return 0;
        /* --format json is the only shape; accepted for symmetry with ls. */
        if (argc > first + 1 && streq(argv[first], "--format")) {
                if (!streq(argv[first + 1], "json"))
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--format", "invalidArgument",
                                         "inspect prints json");
                first += 2;
        } else if (argc > first && streq(argv[first], "--format=json"))
                first++;
        if (argc <= first)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "inspect", "invalidArgument",
                                 "give at least one container");
        if (!out || cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (int i = first; i < argc; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
                char what[128];

                snprintf(what, sizeof what, "inspecting %.64s", argv[i]);
                if (cli_request(APISERVER_ROUTE_INSPECT, argv[i], &req) < 0 ||
                    cli_call(conn, req, 0, what, &reply) < 0) {
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                        continue;
                }
                (void) json_array_append_new(out, cli_object_to_json(cxpc_dict_get(reply, "container")));
        }
        if (json_array_size(out) > 0 || ret == 0) {
                (void) json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                putchar('\n');
        }
        return ret;
}

/* stop, kill and rm share a shape: options, then ids, one call each. */
/* One request about one container; the error (with what) is printed. */
static int call_for_id(cxpc_connection *conn, const char *id, const char *route, const char *verb,
                       int (*fill)(cxpc_object *req, void *ud), void *ud, uint64_t timeout) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL;
        char what[128];

        snprintf(what, sizeof what, "%s %.64s", verb, id);
        if (cli_request(route, id, &req) < 0 || (fill && fill(req, ud) < 0) ||
            cli_call(conn, req, timeout, what, NULL) < 0)
                return -EIO;
        return 0;
}

static int for_each_id(int argc, char **argv, int first, const char *route, const char *verb,
                       int (*fill)(cxpc_object *req, void *ud), void *ud, uint64_t timeout) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        int ret = 0;

        if (first >= argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, verb, "invalidArgument",
                                 "give at least one container");
        if (cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (int i = first; i < argc; i++) {
                if (call_for_id(conn, argv[i], route, verb, fill, ud, timeout) < 0)
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                else {
                        printf("%s\n", argv[i]);
                        fflush(stdout); /* in order with the errors on stderr */
                }
        }
        return ret;
}

typedef struct StopArgs {
        int64_t timeout;
        const char *signal;
} StopArgs;

static int fill_stop(cxpc_object *req, void *ud) {
        StopArgs *a = ud;
        int r = 0;

        if (a->timeout >= 0)
                r = cxpc_dict_set_int64(req, "timeout", a->timeout);
        if (r >= 0 && a->signal)
                r = cxpc_dict_set_string(req, "signal", a->signal);
        return r;
}

/* stop's and restart's options; false with the exit code in *ret when there is nothing to do. */
static bool parse_stop_options(int argc, char **argv, const char *usage, StopArgs *a, int *ret) {
        static const struct option options[] = {
                {"time", required_argument, NULL, 't'},
                {"timeout", required_argument, NULL, 't'},
                {"signal", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        int c;

        *a = (StopArgs){.timeout = -1};
        while ((c = getopt_long(argc, argv, "t:s:h", options, NULL)) >= 0)
                switch (c) {
                case 't': {
                        char *end;
                        a->timeout = strtoll(optarg, &end, 10);
                        if (*end || end == optarg || a->timeout < 0 || a->timeout > 86400) {
                                *ret = cli_error(CONTAINER_EXIT_TOOL_FAILED, "--time", "invalidArgument",
                                                 "\"%s\": seconds, 0 to 86400", optarg);
                                return false;
                        }
                        break;
                }
                case 's':
                        a->signal = optarg;
                        break;
                case 'h':
                        printf("%s\n", usage);
                        *ret = 0;
                        return false;
                default:
                        *ret = CONTAINER_EXIT_TOOL_FAILED;
                        return false;
                }
        return true;
}

/* The server answers stop after the exit: our deadline covers its timeout and then some. */
static uint64_t stop_deadline(const StopArgs *a) {
        return (uint64_t) ((a->timeout < 0 ? 10 : a->timeout) + 30) * USEC_PER_SEC;
}

int verb_stop(int argc, char **argv) {
        StopArgs a;
        int ret;

        if (!parse_stop_options(argc, argv, "Usage: container stop [-t SECONDS] [-s SIGNAL] CONTAINER...",
                                &a, &ret))
                return ret;
        return for_each_id(argc, argv, optind, APISERVER_ROUTE_STOP, "stopping", fill_stop, &a,
                           stop_deadline(&a));
}

/* docker restart: stop (as stop does: a stopped container stays stopped) then start, detached. */
int verb_restart(int argc, char **argv) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        StopArgs a;
        int ret = 0;

        if (!parse_stop_options(argc, argv, "Usage: container restart [-t SECONDS] [-s SIGNAL] CONTAINER...",
                                &a, &ret))
                return ret;
        if (optind >= argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "restarting", "invalidArgument",
                                 "give at least one container");
        if (cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (int i = optind; i < argc; i++) {
                if (call_for_id(conn, argv[i], APISERVER_ROUTE_STOP, "restarting", fill_stop, &a,
                                stop_deadline(&a)) < 0 ||
                    call_for_id(conn, argv[i], APISERVER_ROUTE_START, "restarting", NULL, NULL, 0) < 0)
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                else {
                        printf("%s\n", argv[i]);
                        fflush(stdout); /* in order with the errors on stderr */
                }
        }
        return ret;
}

static int fill_update(cxpc_object *req, void *ud) {
        return update_limits_to_request(ud, req);
}

/* docker update: the limits of running containers change at once (the OCI runtime's update), and
 * every container's configuration keeps them for its next start. */
int verb_update(int argc, char **argv) {
        enum { OPT_CPUS = 0x100, OPT_PIDS_LIMIT };
        static const struct option options[] = {
                {"cpus", required_argument, NULL, OPT_CPUS},
                {"memory", required_argument, NULL, 'm'},
                {"pids-limit", required_argument, NULL, OPT_PIDS_LIMIT},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        UpdateLimits a = {};
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "m:h", options, NULL)) >= 0)
                switch (c) {
                case OPT_CPUS:
                        if (cli_parse_cpus(optarg, &a.cpus) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        a.has_cpus = true;
                        break;
                case 'm':
                        if (cli_parse_memory(optarg, &a.memory_bytes) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        a.has_memory = true;
                        break;
                case OPT_PIDS_LIMIT:
                        errno = 0;
                        a.pids = strtoll(optarg, &end, 10);
                        if (errno || *end || end == optarg || a.pids < -1)
                                return cli_error(
                                        CONTAINER_EXIT_TOOL_FAILED, "--pids-limit", "invalidArgument",
                                        "\"%s\": a number of processes (0 or -1: no limit)", optarg);
                        if (a.pids < 0)
                                a.pids = 0;
                        a.has_pids = true;
                        break;
                case 'h':
                        printf("Usage: container update [--cpus N] [-m|--memory SIZE] [--pids-limit N] "
                               "CONTAINER...\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (!a.has_cpus && !a.has_memory && !a.has_pids)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "update", "invalidArgument",
                                 "give --cpus, --memory or --pids-limit");
        return for_each_id(argc, argv, optind, APISERVER_ROUTE_UPDATE, "updating", fill_update, &a, 0);
}

static int fill_kill(cxpc_object *req, void *ud) {
        return cxpc_dict_set_string(req, "signal", ud);
}

int verb_kill(int argc, char **argv) {
        static const struct option options[] = {
                {"signal", required_argument, NULL, 's'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *sig = "SIGKILL";
        int c;

        while ((c = getopt_long(argc, argv, "s:h", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        sig = optarg;
                        break;
                case 'h':
                        printf("Usage: container kill [-s SIGNAL] CONTAINER...\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        return for_each_id(argc, argv, optind, APISERVER_ROUTE_KILL, "killing", fill_kill, (void *) sig, 0);
}

/* pause and unpause: no options but --help. */
static int pause_unpause(int argc, char **argv, const char *route, const char *verb, const char *usage) {
        if (cli_help_requested(argc, argv, usage))
                return 0;
        return for_each_id(argc, argv, 1, route, verb, NULL, NULL, 0);
}

int verb_pause(int argc, char **argv) {
        return pause_unpause(argc, argv, APISERVER_ROUTE_PAUSE, "pausing",
                             "Usage: container pause CONTAINER...\n"
                             "Freeze every process of running containers.");
}

int verb_unpause(int argc, char **argv) {
        return pause_unpause(argc, argv, APISERVER_ROUTE_UNPAUSE, "unpausing",
                             "Usage: container unpause CONTAINER...\n"
                             "Thaw the processes of paused containers.");
}

static int fill_rm(cxpc_object *req, void *ud) {
        return cxpc_dict_set_bool(req, "force", *(bool *) ud);
}

int verb_rm(int argc, char **argv) {
        static const struct option options[] = {
                {"force", no_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        bool force = false;
        int c;

        while ((c = getopt_long(argc, argv, "fh", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        force = true;
                        break;
                case 'h':
                        printf("Usage: container rm [-f] CONTAINER...\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        return for_each_id(argc, argv, optind, APISERVER_ROUTE_DELETE, "removing", fill_rm, &force, 0);
}

int verb_prune(int argc, char **argv) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        cxpc_object *removed;

        if (cli_help_requested(argc, argv, "Usage: container prune [-f]  (removes every stopped container)"))
                return 0;
        if (cli_prune_options(argc, argv, "prune", NULL) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (cli_connect(true, &conn) < 0 || cli_request(APISERVER_ROUTE_PRUNE, NULL, &req) < 0 ||
            cli_call(conn, req, 0, "pruning containers", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        removed = cxpc_dict_get(reply, "removed");
        for (size_t i = 0; i < cxpc_array_get_count(removed); i++) {
                const char *id = NULL;
                if (cxpc_string_get(cxpc_array_get(removed, i), &id) >= 0)
                        printf("%s\n", id);
        }
        return 0;
}

/* ---- stats ---- */

static void format_bytes(uint64_t v, char *buf, size_t size) {
        static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        double d = (double) v;
        size_t u = 0;

        if (v == UINT64_MAX) {
                snprintf(buf, size, "unlimited");
                return;
        }
        while (d >= 1024 && u + 1 < ELEMENTSOF(units)) {
                d /= 1024;
                u++;
        }
        snprintf(buf, size, u == 0 ? "%.0f%s" : "%.2f%s", d, units[u]);
}

/* One runtime/statistics sample through the typed client, errors reported with their code. */
static int runtime_statistics(RuntimeClient *rc, const char *what, RuntimeStatistics *ret) {
        int r = runtime_client_statistics(rc, ret);
        if (r < 0) {
                const RuntimeClientError *e = runtime_client_last_error(rc);
                return cli_error(r, what, cxpc_error_code_to_string(e->code) ?: "unknown", "%s",
                                 e->message[0] ? e->message : strerror(-r));
        }
        return 0;
}

static int stats_sample(const char *id, RuntimeStatistics *ret, double *ret_cpu) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *rt = NULL;
        _cleanup_(runtime_client_freep) RuntimeClient *rc = NULL;
        RuntimeStatistics a, b;
        char what[128];
        int r;

        snprintf(what, sizeof what, "statistics of %.64s", id);
        r = cli_runtime_connect(id, &rt);
        if (r < 0)
                return r;
        r = runtime_client_new_from_connection(rt, &rc);
        if (r < 0)
                return cli_error(r, what, "internalError", "%s", strerror(-r));
        runtime_client_set_timeout(rc, CONTAINER_CALL_TIMEOUT_USEC);
        r = runtime_statistics(rc, what, &a);
        if (r < 0)
                return r;
        (void) usleep(STATS_CPU_WINDOW_USEC);
        r = runtime_statistics(rc, what, &b);
        if (r < 0)
                return r;
        *ret = b;
        *ret_cpu = b.cpu_usage_ns >= a.cpu_usage_ns
                           ? 100.0 * (double) (b.cpu_usage_ns - a.cpu_usage_ns) /
                                     (double) (STATS_CPU_WINDOW_USEC * NSEC_PER_USEC)
                           : 0.0;
        return 0;
}

int verb_stats(int argc, char **argv) {
        static const struct option options[] = {
                {"no-stream", no_argument, NULL, 'N'},
                {"format", required_argument, NULL, 'F'},
                {"all", no_argument, NULL, 'a'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        OutputFormat format = OUTPUT_TABLE;
        bool stream = true;
        int c, ret = 0;

        while ((c = getopt_long(argc, argv, "ah", options, NULL)) >= 0)
                switch (c) {
                case 'N':
                        stream = false;
                        break;
                case 'a':
                        break;
                case 'F':
                        if (parse_output_format(optarg, &format) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        break;
                case 'h':
                        printf("Usage: container stats [--no-stream] [--format table|json] "
                               "[CONTAINER...]\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (;;) {
                _cleanup_(json_decrefp) json_t *ids = json_array(), *out = json_array();

                if (!ids || !out)
                        return CONTAINER_EXIT_TOOL_FAILED;
                if (optind < argc) {
                        for (int i = optind; i < argc; i++)
                                (void) json_array_append_new(ids, json_string(argv[i]));
                } else {
                        _cleanup_(json_decrefp) json_t *list = NULL;
                        json_t *e;
                        size_t i;
                        if (list_containers(conn, false, &list) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        json_array_foreach(list, i, e)(void)
                                json_array_append(ids, json_object_get(e, "id"));
                }
                if (format == OUTPUT_TABLE)
                        printf("%-16s %8s %24s %8s %24s\n", "CONTAINER ID", "CPU %", "MEM USAGE / LIMIT",
                               "PIDS", "BLOCK I/O");
                for (size_t i = 0; i < json_array_size(ids); i++) {
                        const char *id = json_string_value(json_array_get(ids, i));
                        char mem[24], lim[24], rd[24], wr[24], ml[56], io[56];
                        RuntimeStatistics st = {};
                        double cpu = 0;

                        if (stats_sample(id, &st, &cpu) < 0) {
                                ret = CONTAINER_EXIT_TOOL_FAILED;
                                continue;
                        }
                        if (format == OUTPUT_JSON) {
                                (void) json_array_append_new(
                                        out,
                                        json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", id,
                                                  "cpuPercent", cpu, "cpuUsageNs",
                                                  (json_int_t) st.cpu_usage_ns, "memoryUsageBytes",
                                                  (json_int_t) st.memory_usage_bytes, "memoryLimitBytes",
                                                  st.memory_limit_bytes == UINT64_MAX
                                                          ? (json_int_t) -1
                                                          : (json_int_t) st.memory_limit_bytes,
                                                  "pidsCurrent", (json_int_t) st.pids_current, "pidsLimit",
                                                  st.pids_limit == UINT64_MAX ? (json_int_t) -1
                                                                              : (json_int_t) st.pids_limit,
                                                  "blockReadBytes", (json_int_t) st.block_read_bytes,
                                                  "blockWriteBytes", (json_int_t) st.block_write_bytes));
                                continue;
                        }
                        format_bytes(st.memory_usage_bytes, mem, sizeof mem);
                        format_bytes(st.memory_limit_bytes, lim, sizeof lim);
                        format_bytes(st.block_read_bytes, rd, sizeof rd);
                        format_bytes(st.block_write_bytes, wr, sizeof wr);
                        snprintf(ml, sizeof ml, "%s / %s", mem, lim);
                        snprintf(io, sizeof io, "%s / %s", rd, wr);
                        printf("%-16s %7.2f%% %24s %8" PRIu64 " %24s\n", id, cpu, ml, st.pids_current, io);
                }
                if (format == OUTPUT_JSON) {
                        (void) json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                        putchar('\n');
                }
                (void) fflush(stdout);
                if (!stream)
                        return ret;
                (void) usleep(STATS_INTERVAL_USEC);
        }
}

/* ---- top ---- */

/* STIME as ps prints it: the time of day when it was today, else the month and day (the year
 * when it was another year). */
static void format_stime(int64_t nsec, char *buf, size_t size) {
        time_t then = (time_t) (nsec / (int64_t) NSEC_PER_SEC), now = time(NULL);
        struct tm t, n;

        if (!localtime_r(&then, &t) || !localtime_r(&now, &n)) {
                snprintf(buf, size, "?");
                return;
        }
        if (t.tm_year == n.tm_year && t.tm_yday == n.tm_yday)
                strftime(buf, size, "%H:%M", &t);
        else if (t.tm_year == n.tm_year)
                strftime(buf, size, "%b%d", &t);
        else
                strftime(buf, size, "%Y", &t);
}

/* TIME as ps prints it: [DD-]HH:MM:SS of CPU time. */
static void format_cpu_time(uint64_t ns, char *buf, size_t size) {
        uint64_t s = ns / NSEC_PER_SEC;

        if (s >= 86400)
                snprintf(buf, size, "%" PRIu64 "-%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 86400,
                         s / 3600 % 24, s / 60 % 60, s % 60);
        else
                snprintf(buf, size, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
}

int verb_top(int argc, char **argv) {
        static const struct option options[] = {
                {"format", required_argument, NULL, 'F'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        _cleanup_(json_decrefp) json_t *out = NULL;
        OutputFormat format = OUTPUT_TABLE;
        cxpc_object *procs;
        char what[128];
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'F':
                        if (parse_output_format(optarg, &format) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        break;
                case 'h':
                        printf("Usage: container top [--format table|json] CONTAINER\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (argc - optind != 1)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "top", "invalidArgument",
                                 "give exactly one container");
        snprintf(what, sizeof what, "top %.64s", argv[optind]);
        if (cli_connect(true, &conn) < 0 || cli_request(APISERVER_ROUTE_TOP, argv[optind], &req) < 0 ||
            cli_call(conn, req, 0, what, &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        procs = cxpc_dict_get(reply, "processes");
        if (cxpc_object_get_type(procs) != CXPC_TYPE_ARRAY)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, what, "internalError",
                                 "the reply has no processes");

        out = json_array();
        if (!out)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (format == OUTPUT_TABLE)
                printf("%-8s %-8s %-8s %-8s %-4s %-5s %-10s %s\n", "UID", "PID", "PPID", "CPID", "STAT",
                       "STIME", "TIME", "CMD");
        for (size_t i = 0; i < cxpc_array_get_count(procs); i++) {
                cxpc_object *p = cxpc_array_get(procs, i);
                int64_t pid = 0, cpid = 0, ppid = 0, uid = 0, started = 0;
                uint64_t cpu = 0;
                const char *state = "?", *command = "";
                char stime[32], cputime[32], date[64], cpid_s[24] = "-";

                (void) cxpc_dict_get_int64(p, "pid", &pid);
                (void) cxpc_dict_get_int64(p, "containerPid", &cpid);
                (void) cxpc_dict_get_int64(p, "ppid", &ppid);
                (void) cxpc_dict_get_int64(p, "uid", &uid);
                (void) cxpc_dict_get_string(p, "state", &state);
                (void) cxpc_dict_get_date(p, "startedAt", &started);
                (void) cxpc_dict_get_uint64(p, "cpuTimeNs", &cpu);
                (void) cxpc_dict_get_string(p, "command", &command);
                if (format == OUTPUT_JSON) {
                        if (format_rfc3339(started, date, sizeof date) < 0)
                                date[0] = 0;
                        (void) json_array_append_new(
                                out, json_pack("{s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:s}", "pid",
                                               (json_int_t) pid, "containerPid", (json_int_t) cpid, "ppid",
                                               (json_int_t) ppid, "uid", (json_int_t) uid, "state", state,
                                               "startedAt", date, "cpuTimeNs", (json_int_t) cpu, "command",
                                               command));
                        continue;
                }
                format_stime(started, stime, sizeof stime);
                format_cpu_time(cpu, cputime, sizeof cputime);
                /* 0: status had no NSpid line */
                if (cpid > 0)
                        snprintf(cpid_s, sizeof cpid_s, "%" PRIi64, cpid);
                printf("%-8" PRIi64 " %-8" PRIi64 " %-8" PRIi64 " %-8s %-4s %-5s %-10s %s\n", uid, pid, ppid,
                       cpid_s, state, stime, cputime, command);
        }
        if (format == OUTPUT_JSON) {
                (void) json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                putchar('\n');
        }
        return 0;
}

/* ---- system ---- */

static int system_status(bool quiet_if_down) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        _cleanup_(json_decrefp) json_t *st = NULL;
        _cleanup_free_ char *sock = NULL;

        if (apiserver_socket_path(&sock) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (cxpc_connection_new_for_path(sock, &conn) < 0) {
                if (!quiet_if_down)
                        printf("container-apiserver is not running (%s)\n", sock);
                return 1;
        }
        if (cli_request(APISERVER_ROUTE_SYSTEM_STATUS, NULL, &req) < 0 ||
            cli_call(conn, req, 0, "system status", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        st = cli_object_to_json(cxpc_dict_get(reply, "status"));
        printf("container-apiserver is running\n"
               "  version:    %s\n  pid:        %" JSON_INTEGER_FORMAT
               "\n  root:       %s\n  run dir:    %s\n"
               "  runtime:    %s\n  oci:        %s (default OCI runtime)\n"
               "  containers: %" JSON_INTEGER_FORMAT " (%" JSON_INTEGER_FORMAT " running)\n",
               json_string_value(json_object_get(st, "version")) ?: "?",
               json_integer_value(json_object_get(st, "pid")),
               json_string_value(json_object_get(st, "root")) ?: "?",
               json_string_value(json_object_get(st, "runDir")) ?: "?",
               json_string_value(json_object_get(st, "runtime")) ?: "?",
               json_string_value(json_object_get(st, "ociRuntime")) ?: "?",
               json_integer_value(json_object_get(st, "containers")),
               json_integer_value(json_object_get(st, "running")));
        return 0;
}

#define SYSTEM_USAGE                                                                      \
        "Usage: container system COMMAND\n"                                               \
        "  start     start the API server if it is not running, and show its status\n"    \
        "  stop      stop the API server (containers keep running)\n"                     \
        "  status    show whether the API server runs, its pid, root and run directory\n" \
        "  version   show the versions of the CLI and the API server\n"                   \
        "  prune [-a] [-f]  remove stopped containers and unnamed images (-a: every unused image)"

int verb_system(int argc, char **argv) {
        const char *what = argc > 1 ? argv[1] : "";

        /* "system --help" and "system start --help": usage, never the action. */
        if (cli_help_requested(argc, argv, SYSTEM_USAGE) ||
            (argc > 2 && cli_help_requested(argc - 1, argv + 1, SYSTEM_USAGE)))
                return 0;

        if (streq(what, "prune")) {
                /* docker system prune: stopped containers, then unnamed images (-a: every unused
                 * one); networks and build caches we do not have. */
                char *container_prune[] = {(char *) "prune", NULL};
                bool all;
                int r;

                if (cli_prune_options(argc - 1, argv + 1, "system prune", &all) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
                r = verb_prune(1, container_prune);
                return r != 0 ? r : cli_image_prune(all);
        }
        if (streq(what, "start")) {
                _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
                return cli_connect(true, &conn) < 0 ? CONTAINER_EXIT_TOOL_FAILED : system_status(false);
        }
        if (streq(what, "stop")) {
                _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
                _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL;
                _cleanup_free_ char *sock = NULL;

                if (apiserver_socket_path(&sock) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
                if (cxpc_connection_new_for_path(sock, &conn) < 0) {
                        printf("container-apiserver is not running\n");
                        return 0;
                }
                if (cli_request(APISERVER_ROUTE_SYSTEM_SHUTDOWN, NULL, &req) < 0 ||
                    cli_call(conn, req, 0, "stopping the API server", NULL) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
                /* Done when the socket no longer answers (bounded). */
                for (uint64_t waited = 0;; waited += 10 * USEC_PER_MSEC) {
                        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *probe = NULL;
                        if (cxpc_connection_new_for_path(sock, &probe) < 0)
                                break;
                        if (waited > CLI_APISERVER_STOP_TIMEOUT_USEC)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "stopping the API server",
                                                 "timeout", "%s still answers", sock);
                        (void) usleep(10 * USEC_PER_MSEC);
                }
                printf("container-apiserver stopped (containers keep running)\n");
                return 0;
        }
        if (streq(what, "status"))
                return system_status(false);
        if (streq(what, "version")) {
                printf("container CLI %s\n", container_version());
                if (system_status(true) == 1)
                        printf("container-apiserver: not running\n");
                return 0;
        }
        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "system", "invalidArgument",
                         "use start, stop, status, version or prune");
}
