/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The container CLI (docs/cli.md). */

#include <cxpc/cxpc.h>
#include <jansson.h>
#include <stdbool.h>

#include "container-common.h"
#include "macro.h"

/* How long the CLI waits for an API server it started to listen. */
#define CLI_APISERVER_START_TIMEOUT_USEC (10ull * 1000000ull)
/* Delay between connection attempts while it starts (bounded by the timeout above). */
#define CLI_APISERVER_START_STEP_USEC (5ull * 1000ull)
/* How long an orderly `system stop` waits for the old server to let go of its socket. */
#define CLI_APISERVER_STOP_TIMEOUT_USEC (10ull * 1000000ull)
/* Lines of an --env-file. */
#define CLI_ENV_FILE_LINE_MAX 65536u

typedef enum OutputFormat {
        OUTPUT_TABLE,
        OUTPUT_JSON,
        _OUTPUT_FORMAT_MAX,
        _OUTPUT_FORMAT_INVALID = -22,
} OutputFormat;

extern const char *arg_root;
extern const char *arg_run_dir;

/* The options before the command, of container and of container-archive (which gets the CLI's
 * own arguments): their getopt_long() entries, and the handling of what getopt returned for one
 * (true when c was one of them). */
#define CLI_GLOBAL_OPTIONS                              \
        {"root", required_argument, NULL, 'r'}, {       \
                "run-dir", required_argument, NULL, 'R' \
        }
bool cli_global_option(int c, const char *arg);

/* One line on stderr: "container: <what>: <code>: <message>". Returns -EINVAL-ish r unchanged. */
int cli_error(int r, const char *what, const char *code, const char *format, ...) _printf_(4, 5);
/* For failures of a call: the remote code (or the local errno's code) and message. */
int cli_error_reply(int r, const char *what, cxpc_object *reply);

/* Connects to the API server, starting it when nothing listens (autostart = true). */
int cli_connect(bool autostart, cxpc_connection **ret);
/* Synchronous call with a deadline; on an error reply or local failure prints one line naming
 * `what` and returns a negative errno. On success stores the reply if asked. */
int cli_call(cxpc_connection *c, cxpc_object *req, uint64_t timeout_usec, const char *what,
             cxpc_object **ret_reply);
/* The same on another connection: peer names who went away if the connection drops. */
int cli_call_peer(cxpc_connection *c, const char *peer, cxpc_object *req, uint64_t timeout_usec,
                  const char *what, cxpc_object **ret_reply);
/* The runtime service of a running container: an endpoint from the API server
 * (container/endpoint), or a connection made from it. Failures are reported. */
int cli_runtime_endpoint(const char *container, cxpc_object **ret_endpoint);
int cli_runtime_connect(const char *container, cxpc_connection **ret);
/* "SIZE" with an optional suffix b, k, m or g (k, m, g optionally followed by b): bytes. */
int cli_parse_size(const char *s, int64_t *ret);
/* --cpus and --memory of run, create and update, within resource-limits.h; errors are reported. */
int cli_parse_cpus(const char *s, double *ret);
int cli_parse_memory(const char *s, int64_t *ret);
/* For commands without options of their own: true (after printing usage) when argv[1] is -h or
 * --help, which must never be taken as a container or image name, nor do anything. */
bool cli_help_requested(int argc, char **argv, const char *usage);
/* prune's options: -f/--force (accepted: we never ask), and -a/--all when ret_all is given. */
int cli_prune_options(int argc, char **argv, const char *what, bool *ret_all);
/* image/prune, printing what went (images.c). */
int cli_image_prune(bool all);
/* A new request for route with "id" set (id may be NULL). */
int cli_request(const char *route, const char *id, cxpc_object **ret);
/* Converts a reply value to jansson. */
json_t *cli_object_to_json(const cxpc_object *o);
int parse_output_format(const char *s, OutputFormat *ret);

int apiserver_socket_path(char **ret);

/* Commands; each returns the process exit code. */
int verb_run(int argc, char **argv, bool create_only);
int verb_start(int argc, char **argv);
int verb_exec(int argc, char **argv);
int verb_logs(int argc, char **argv);
int verb_wait(int argc, char **argv);
int verb_ls(int argc, char **argv);
int verb_inspect(int argc, char **argv);
int verb_stop(int argc, char **argv);
int verb_restart(int argc, char **argv);
int verb_update(int argc, char **argv);
int verb_kill(int argc, char **argv);
int verb_pause(int argc, char **argv);
int verb_unpause(int argc, char **argv);
int verb_rm(int argc, char **argv);
int verb_stats(int argc, char **argv);
int verb_top(int argc, char **argv);
/* cp and export are in the container-archive helper (archive.c), which the CLI executes: libarchive
 * and what it pulls in (libxml2, ICU, libstdc++) are never loaded by the other commands. */
int verb_cp(int argc, char **argv);
int verb_export(int argc, char **argv);
int verb_prune(int argc, char **argv);
int verb_system(int argc, char **argv);
int verb_image(int argc, char **argv);

/* run/create's --cap-add, --cap-drop, --security-opt, --ulimit and --pids-limit (run-security.c).
 * The parsers print their error and return -EINVAL for a bad value. */
typedef struct RunSecurity {
        bool caps_changed, add_all, drop_all;
        uint64_t add, drop;    /* bit n: capability n (capability_all) */
        int no_new_privileges; /* -1: not given (the runtime's default, on) */
        bool has_rlimits;
        int64_t pids_limit; /* 0: none given */
} RunSecurity;
#define RUN_SECURITY_INIT ((RunSecurity){.no_new_privileges = -1})
int run_security_cap_add(RunSecurity *s, const char *value);
int run_security_cap_drop(RunSecurity *s, const char *value);
int run_security_opt(RunSecurity *s, const char *value);
int run_security_ulimit(RunSecurity *s, json_t *rlimits, const char *value);
int run_security_pids_limit(RunSecurity *s, const char *value);
/* Sets process.capabilities, process.noNewPrivileges, process.rlimits and resources.pids as given. */
int run_security_apply(const RunSecurity *s, json_t *process, json_t *resources, json_t *rlimits);

/* ls --filter (filter.c). */
#define CLI_FILTER_VALUES_MAX 64u /* values of one key */
typedef enum FilterKey {
        FILTER_ID,
        FILTER_NAME,
        FILTER_LABEL,
        FILTER_STATUS,
        FILTER_ANCESTOR,
        FILTER_EXITED,
        _FILTER_KEY_MAX,
} FilterKey;
typedef struct ContainerFilter {
        char **values[_FILTER_KEY_MAX];
        size_t n[_FILTER_KEY_MAX];
} ContainerFilter;
/* Adds "KEY=VALUE"; an unknown key or a bad value is reported and returns a negative errno. */
int container_filter_add(ContainerFilter *f, const char *spec);
void container_filter_done(ContainerFilter *f);
/* A status or exited filter looks at stopped containers too (ls -a implied, as in docker). */
bool container_filter_wants_all(const ContainerFilter *f);
/* Every key given has a value that matches (values of one key are alternatives). */
bool container_filter_match(const ContainerFilter *f, json_t *container);
