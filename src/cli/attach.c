/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* run, create, start, exec, logs, wait: the commands that stay attached to a process. */

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <termios.h>
#include <unistd.h>

#include "signal-util.h"
#include "cli.h"

#define DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Bytes moved per read when relaying a terminal or following a log. */
#define RELAY_BUFFER_SIZE 65536u

/* Signals a non-terminal session forwards to the container process. */
static const int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};

DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose);

typedef struct Session {
        sd_event *event;
        cxpc_connection *api;     /* container/kill goes here when runtime is NULL */
        cxpc_connection *runtime; /* exec: runtime/kill and runtime/wait go straight to the service */
        const char *id;           /* container id, or the exec process id */
        const char *container;
        int exit_code;
        bool tty; /* the process has a terminal (the runtime service's pty) */
        bool relay_stdin;
        bool raw;
        struct termios saved;
        bool abandoned; /* the session is over: late replies are not news */
} Session;

static int write_all(int fd, const void *p, size_t n) {
        const char *s = p;

        while (n > 0) {
                ssize_t k = write(fd, s, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN) {
                                /* stdout may be non-blocking when shared; wait briefly. */
                                (void) usleep(1000);
                                continue;
                        }
                        return negative_errno();
                }
                s += k;
                n -= (size_t) k;
        }
        return 0;
}

static void session_restore_terminal(Session *s) {
        if (s->raw) {
                (void) tcsetattr(STDIN_FILENO, TCSADRAIN, &s->saved);
                s->raw = false;
        }
}

static void session_done(Session *s) {
        s->abandoned = true;
        session_restore_terminal(s);
        cxpc_connection_close_unref(s->api);
        s->api = NULL;
        cxpc_connection_close_unref(s->runtime);
        s->runtime = NULL;
        sd_event_unref(s->event);
        s->event = NULL;
}

static void on_kill_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        Session *s = userdata;

        if (!s->abandoned && cxpc_reply_check(reply, NULL, NULL) < 0)
                (void) cli_error_reply(-EIO, "forwarding a signal", reply);
}

static int on_forward_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        Session *s = userdata;
        char name[32];
        int r;

        snprintf(name, sizeof name, "SIG%s", sigabbrev_np((int) si->ssi_signo) ?: "TERM");
        r = cli_request(s->runtime ? "runtime/kill" : APISERVER_ROUTE_KILL, s->id, &m);
        if (r >= 0)
                r = cxpc_dict_set_string(m, "signal", name);
        if (r >= 0)
                r = cxpc_connection_call_async(s->runtime ?: s->api, m, 0, on_kill_reply, s);
        if (r < 0)
                (void) cli_error(r, "forwarding a signal", "internalError", "%s", strerror(-r));
        return 0;
}

static void on_resize_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        /* A resize that did not take is cosmetic; the session goes on. */
}

/* Tells the runtime service's pty our terminal's size (run: through the API server; exec:
 * straight to the runtime service). */
static void session_resize(Session *s) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        struct winsize ws;
        int r;

        if (!s->tty ||
            (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0) ||
            ws.ws_col == 0 || ws.ws_row == 0)
                return;
        r = cli_request(s->runtime ? "runtime/resize" : APISERVER_ROUTE_RESIZE, s->id, &m);
        if (r >= 0)
                r = cxpc_dict_set_int64(m, "width", ws.ws_col);
        if (r >= 0)
                r = cxpc_dict_set_int64(m, "height", ws.ws_row);
        if (r >= 0)
                (void) cxpc_connection_call_async(s->runtime ?: s->api, m, 0, on_resize_reply, s);
}

static int on_winch(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        session_resize(userdata);
        return 0;
}

static void on_wait_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        Session *s = userdata;
        int64_t code = -1;
        int r;

        if (s->abandoned)
                return;
        r = cxpc_reply_check(reply, NULL, NULL);
        if (r < 0) {
                (void) cli_error_reply(r, "waiting for the container", reply);
                s->exit_code = CONTAINER_EXIT_TOOL_FAILED;
        } else if (cxpc_dict_get_int64(reply, "exitCode", &code) < 0 || code < 0 || code > 255) {
                (void) cli_error(-EIO, "waiting for the container", "unknown",
                                 "%s: exit status unknown (its runtime service was lost)", s->container);
                s->exit_code = CONTAINER_EXIT_TOOL_FAILED;
        } else
                s->exit_code = (int) code;
        (void) sd_event_exit(s->event, 0);
}

/* Sets up the event loop and signal forwarding; with a terminal, raw mode and resizes. */
static int session_init(Session *s, bool tty, bool interactive) {
        sigset_t ss;
        int r;

        s->exit_code = -1;
        s->tty = tty;
        r = sd_event_new(&s->event);
        if (r < 0)
                return r;
        sigemptyset(&ss);
        for (size_t i = 0; i < ELEMENTSOF(forwarded_signals); i++) {
                /* A shell starts background jobs with SIGINT ignored; an ignored signal never
                 * becomes pending, so it would never reach the signalfd. */
                (void) signal(forwarded_signals[i], SIG_DFL);
                sigaddset(&ss, forwarded_signals[i]);
        }
        sigaddset(&ss, SIGWINCH);
        (void) sigprocmask(SIG_BLOCK, &ss, NULL);
        for (size_t i = 0; i < ELEMENTSOF(forwarded_signals); i++) {
                r = sd_event_add_signal(s->event, NULL, forwarded_signals[i], on_forward_signal, s);
                if (r < 0)
                        return r;
        }
        if (!tty)
                return 0;
        r = sd_event_add_signal(s->event, NULL, SIGWINCH, on_winch, s);
        if (r < 0)
                return r;
        /* Our terminal passes every key through (^C included): the container's pty interprets
         * them. Restored on every way out of the session. */
        if (interactive && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &s->saved) >= 0) {
                struct termios raw = s->saved;
                cfmakeraw(&raw);
                if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) >= 0)
                        s->raw = true;
        }
        return 0;
}

/* ---- run / create ---- */

static int env_append(json_t *env, const char *kv) {
        const char *eq = strchr(kv, '=');

        if (eq == kv)
                return cli_error(-EINVAL, "--env", "invalidArgument", "\"%s\": missing variable name", kv);
        if (!eq) {
                /* docker: "-e NAME" takes the value from our environment, or drops it. */
                const char *v = getenv(kv);
                _cleanup_free_ char *s = NULL;
                if (!v)
                        return 0;
                if (asprintf(&s, "%s=%s", kv, v) < 0)
                        return -ENOMEM;
                return json_array_append_new(env, json_string(s)) < 0 ? -ENOMEM : 0;
        }
        /* A later value for the same name replaces the earlier one. */
        size_t n = (size_t) (eq - kv) + 1, i;
        json_t *v;
        json_array_foreach(env, i, v) if (strncmp(json_string_value(v), kv, n) ==
                                          0) return json_array_set_new(env, i, json_string(kv)) < 0
                ? -ENOMEM
                : 0;
        return json_array_append_new(env, json_string(kv)) < 0 ? -ENOMEM : 0;
}

static int env_file_load(json_t *env, const char *path) {
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        char line[CLI_ENV_FILE_LINE_MAX];
        int r;

        if (!f)
                return cli_error(negative_errno(), "--env-file", "notFound", "%s: %m", path);
        while (fgets(line, sizeof line, f)) {
                line[strcspn(line, "\r\n")] = 0;
                if (line[0] == 0 || line[0] == '#')
                        continue;
                r = env_append(env, line);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int volume_parse(json_t *mounts, const char *spec) {
        _cleanup_free_ char *copy = strdup(spec);
        char *src, *dst, *opts;
        json_t *m;

        if (!copy)
                return -ENOMEM;
        src = copy;
        dst = strchr(src, ':');
        if (!dst)
                return cli_error(-EINVAL, "--volume", "invalidArgument",
                                 "\"%s\": use HOST_DIR:CONTAINER_DIR[:ro]", spec);
        *dst++ = 0;
        opts = strchr(dst, ':');
        if (opts)
                *opts++ = 0;
        if (src[0] != '/')
                return cli_error(-EINVAL, "--volume", "unsupported",
                                 "\"%s\": named volumes are not supported; use an absolute host path", spec);
        if (dst[0] != '/')
                return cli_error(-EINVAL, "--volume", "invalidArgument",
                                 "\"%s\": the container path must be absolute", spec);
        if (opts && !streq(opts, "ro") && !streq(opts, "rw"))
                return cli_error(-EINVAL, "--volume", "invalidArgument", "\"%s\": options are ro or rw",
                                 spec);
        if (access(src, F_OK) < 0)
                return cli_error(negative_errno(), "--volume", "notFound", "%s: %m", src);
        m = json_pack("{s:s, s:s, s:s, s:b}", "type", "bind", "source", src, "destination", dst, "readonly",
                      opts && streq(opts, "ro"));
        return json_array_append_new(mounts, m) < 0 ? -ENOMEM : 0;
}

static int mount_parse(json_t *mounts, const char *spec) {
        _cleanup_free_ char *copy = strdup(spec);
        const char *type = "bind", *src = NULL, *dst = NULL, *size = NULL;
        bool ro = false;
        json_t *m;

        if (!copy)
                return -ENOMEM;
        for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *v = strchr(tok, '=');
                if (v)
                        *v++ = 0;
                if (streq(tok, "type") && v)
                        type = v;
                else if ((streq(tok, "source") || streq(tok, "src")) && v)
                        src = v;
                else if ((streq(tok, "destination") || streq(tok, "dst") || streq(tok, "target")) && v)
                        dst = v;
                else if (streq(tok, "readonly") || streq(tok, "ro"))
                        ro = !v || streq(v, "true") || streq(v, "1");
                else if (streq(tok, "tmpfs-size") && v)
                        size = v;
                else
                        return cli_error(-EINVAL, "--mount", "invalidArgument", "\"%s\": unknown option %s",
                                         spec, tok);
        }
        if (!dst || dst[0] != '/')
                return cli_error(-EINVAL, "--mount", "invalidArgument",
                                 "\"%s\": target must be an absolute path", spec);
        if (streq(type, "bind")) {
                if (!src || src[0] != '/')
                        return cli_error(-EINVAL, "--mount", "invalidArgument",
                                         "\"%s\": source must be an absolute path", spec);
                if (access(src, F_OK) < 0)
                        return cli_error(negative_errno(), "--mount", "notFound", "%s: %m", src);
                m = json_pack("{s:s, s:s, s:s, s:b}", "type", "bind", "source", src, "destination", dst,
                              "readonly", ro);
        } else if (streq(type, "tmpfs")) {
                _cleanup_free_ char *opt = NULL;
                if (size && asprintf(&opt, "size=%s", size) < 0)
                        return -ENOMEM;
                m = json_pack("{s:s, s:s, s:b}", "type", "tmpfs", "destination", dst, "readonly", ro);
                if (m && opt && json_object_set_new(m, "options", json_pack("[s]", opt)) < 0)
                        return -ENOMEM;
        } else
                return cli_error(-EINVAL, "--mount", "unsupported", "\"%s\": type must be bind or tmpfs",
                                 spec);
        return json_array_append_new(mounts, m) < 0 ? -ENOMEM : 0;
}

/* --runtime: a name as given, a path made absolute (the API server has another working directory);
 * symlinks are kept, as the user named them. NULL after reporting a failure. */
static char *oci_runtime_absolute(const char *value) {
        _cleanup_free_ char *cwd = NULL;
        char *p = NULL;

        if (!strchr(value, '/') || value[0] == '/')
                p = strdup(value);
        else {
                while (strncmp(value, "./", 2) == 0)
                        value += 2;
                cwd = getcwd(NULL, 0);
                if (cwd && asprintf(&p, "%s/%s", cwd, value) < 0)
                        p = NULL;
        }
        if (!p)
                (void) cli_error(-ENOMEM, "--runtime", "internalError", "%s: %m", value);
        return p;
}

static void run_help(bool create_only) {
        printf("Usage: container %s [OPTIONS] (--rootfs DIR | IMAGE) [COMMAND [ARG...]]\n"
               "  -d, --detach          run in the background and print the id\n"
               "  -i, --interactive     connect our stdin to the container\n"
               "  -t, --tty             give the process a terminal\n"
               "      --rm              remove the container when it exits\n"
               "      --name NAME       container name (default: 12 random hex characters)\n"
               "  -e, --env K=V         set an environment variable (repeatable)\n"
               "      --env-file FILE   read K=V lines\n"
               "  -v, --volume SRC:DST[:ro]  bind mount\n"
               "      --mount type=bind|tmpfs,source=..,target=..[,readonly]\n"
               "  -w, --workdir DIR     working directory\n"
               "  -u, --user USER[:GROUP]\n"
               "      --entrypoint CMD  replace the command's first word\n"
               "      --cpus N          CPU quota\n"
               "  -m, --memory SIZE     memory limit (k, m, g suffixes)\n"
               "      --read-only       read-only root filesystem\n"
               "      --init            run an init process that forwards signals and reaps\n"
               "  -l, --label K=V       label (repeatable)\n"
               "      --sysctl K=V      kernel parameter of the container's own namespaces (net.*,\n"
               "                        fs.mqueue.*, kernel.shm*, kernel.msg*, kernel.sem; repeatable)\n"
               "      --hostname NAME\n"
               "      --rootfs DIR      use DIR as the root filesystem\n"
               "      --runtime crun|runc|PATH\n"
               "                        OCI runtime (default: the API server's, crun unless set)\n"
               "      --stop-signal SIG signal that stop sends first (default: the image's, else TERM)\n"
               "      --cap-add CAP     add a capability to the default set (NET_ADMIN, ..., ALL)\n"
               "      --cap-drop CAP    drop a capability (ALL: every one)\n"
               "      --security-opt no-new-privileges[=true|false]\n"
               "                        (default true: setuid programs gain nothing)\n"
               "      --ulimit NAME=SOFT[:HARD]  resource limit (nofile, nproc, core, ...)\n"
               "      --pids-limit N    at most N processes (0 or -1: no limit)\n",
               create_only ? "create" : "run");
}

typedef struct AttachOptions {
        bool interactive;
        bool tty;
} AttachOptions;

static int start_attached(cxpc_connection *conn, const char *id, const AttachOptions *o);

int verb_run(int argc, char **argv, bool create_only) {
        enum {
                OPT_RM = 0x100,
                OPT_NAME,
                OPT_ENV_FILE,
                OPT_MOUNT,
                OPT_ENTRYPOINT,
                OPT_CPUS,
                OPT_READ_ONLY,
                OPT_INIT,
                OPT_ROOTFS,
                OPT_HOSTNAME,
                OPT_RUNTIME,
                OPT_STOP_SIGNAL,
                OPT_CAP_ADD,
                OPT_CAP_DROP,
                OPT_SECURITY_OPT,
                OPT_ULIMIT,
                OPT_PIDS_LIMIT,
                OPT_SYSCTL,
        };
        static const struct option options[] = {
                {"detach", no_argument, NULL, 'd'},
                {"interactive", no_argument, NULL, 'i'},
                {"tty", no_argument, NULL, 't'},
                {"rm", no_argument, NULL, OPT_RM},
                {"name", required_argument, NULL, OPT_NAME},
                {"env", required_argument, NULL, 'e'},
                {"env-file", required_argument, NULL, OPT_ENV_FILE},
                {"volume", required_argument, NULL, 'v'},
                {"mount", required_argument, NULL, OPT_MOUNT},
                {"workdir", required_argument, NULL, 'w'},
                {"user", required_argument, NULL, 'u'},
                {"entrypoint", required_argument, NULL, OPT_ENTRYPOINT},
                {"cpus", required_argument, NULL, OPT_CPUS},
                {"memory", required_argument, NULL, 'm'},
                {"read-only", no_argument, NULL, OPT_READ_ONLY},
                {"init", no_argument, NULL, OPT_INIT},
                {"label", required_argument, NULL, 'l'},
                {"rootfs", required_argument, NULL, OPT_ROOTFS},
                {"hostname", required_argument, NULL, OPT_HOSTNAME},
                {"runtime", required_argument, NULL, OPT_RUNTIME},
                {"stop-signal", required_argument, NULL, OPT_STOP_SIGNAL},
                {"cap-add", required_argument, NULL, OPT_CAP_ADD},
                {"cap-drop", required_argument, NULL, OPT_CAP_DROP},
                {"security-opt", required_argument, NULL, OPT_SECURITY_OPT},
                {"ulimit", required_argument, NULL, OPT_ULIMIT},
                {"pids-limit", required_argument, NULL, OPT_PIDS_LIMIT},
                {"sysctl", required_argument, NULL, OPT_SYSCTL},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(json_decrefp) json_t *cfg = NULL, *env = json_array(), *mounts = json_array(),
                                       *labels = json_object(), *args = json_array(),
                                       *resources = json_object(), *rlimits = json_array(),
                                       *sysctls = json_object();
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL, *config = NULL;
        _cleanup_free_ char *text = NULL, *rootfs = NULL, *id = NULL, *runtime = NULL;
        const char *name = NULL, *workdir = NULL, *user = NULL, *entrypoint = NULL, *image = NULL,
                   *hostname = NULL, *stop_signal = NULL;
        bool detach = false, auto_remove = false, read_only = false, init = false;
        RunSecurity security = RUN_SECURITY_INIT;
        AttachOptions ao = {};
        int c, r;

        if (!env || !mounts || !labels || !args || !resources || !rlimits || !sysctls)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (json_array_append_new(env, json_string(DEFAULT_PATH_ENV)) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;

        while ((c = getopt_long(argc, argv, "+dite:v:w:u:m:l:h", options, NULL)) >= 0) {
                r = 0;
                switch (c) {
                case 'd':
                        detach = true;
                        break;
                case 'i':
                        ao.interactive = true;
                        break;
                case 't':
                        ao.tty = true;
                        break;
                case OPT_RM:
                        auto_remove = true;
                        break;
                case OPT_NAME:
                        name = optarg;
                        if (!container_id_is_valid(name))
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--name", "invalidArgument",
                                                 "invalid container name \"%s\": must match "
                                                 "[A-Za-z0-9][A-Za-z0-9_.-]* (1-64 characters)",
                                                 name);
                        break;
                case 'e':
                        r = env_append(env, optarg);
                        break;
                case OPT_ENV_FILE:
                        r = env_file_load(env, optarg);
                        break;
                case 'v':
                        r = volume_parse(mounts, optarg);
                        break;
                case OPT_MOUNT:
                        r = mount_parse(mounts, optarg);
                        break;
                case 'w':
                        workdir = optarg;
                        if (workdir[0] != '/')
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--workdir", "invalidArgument",
                                                 "\"%s\": must be an absolute path", workdir);
                        break;
                case 'u':
                        user = optarg;
                        break;
                case OPT_ENTRYPOINT:
                        entrypoint = optarg;
                        break;
                case OPT_CPUS: {
                        double v;
                        if (cli_parse_cpus(optarg, &v) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        r = json_object_set_new(resources, "cpus", json_real(v));
                        break;
                }
                case 'm': {
                        int64_t v;
                        if (cli_parse_memory(optarg, &v) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        r = json_object_set_new(resources, "memoryBytes", json_integer(v));
                        break;
                }
                case OPT_READ_ONLY:
                        read_only = true;
                        break;
                case OPT_INIT:
                        init = true;
                        break;
                case 'l': {
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *k = NULL;
                        if (eq == optarg)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--label", "invalidArgument",
                                                 "\"%s\": missing key", optarg);
                        k = eq ? strndup(optarg, (size_t) (eq - optarg)) : strdup(optarg);
                        if (!k)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        r = json_object_set_new(labels, k, json_string(eq ? eq + 1 : ""));
                        break;
                }
                case OPT_SYSCTL: {
                        /* Only the syntax here: the API server decides which names a container may set. */
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *k = NULL;
                        if (!eq || eq == optarg)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--sysctl", "invalidArgument",
                                                 "\"%s\": expected NAME=VALUE", optarg);
                        k = strndup(optarg, (size_t) (eq - optarg));
                        if (!k)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        r = json_object_set_new(sysctls, k, json_string(eq + 1));
                        break;
                }
                case OPT_STOP_SIGNAL:
                        if (signal_from_string(optarg) < 0)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--stop-signal",
                                                 "invalidArgument", "unknown signal \"%s\"", optarg);
                        stop_signal = optarg;
                        break;
                case OPT_CAP_ADD:
                        r = run_security_cap_add(&security, optarg);
                        break;
                case OPT_CAP_DROP:
                        r = run_security_cap_drop(&security, optarg);
                        break;
                case OPT_SECURITY_OPT:
                        r = run_security_opt(&security, optarg);
                        break;
                case OPT_ULIMIT:
                        r = run_security_ulimit(&security, rlimits, optarg);
                        break;
                case OPT_PIDS_LIMIT:
                        r = run_security_pids_limit(&security, optarg);
                        break;
                case OPT_ROOTFS:
                        free(rootfs);
                        rootfs = realpath(optarg, NULL);
                        if (!rootfs)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--rootfs", "notFound",
                                                 "%s: %m", optarg);
                        break;
                case OPT_HOSTNAME:
                        hostname = optarg;
                        break;
                case OPT_RUNTIME: {
                        char err[512];
                        free(runtime);
                        runtime = oci_runtime_absolute(optarg);
                        if (!runtime)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        /* Refused before anything is created; the API server checks again. */
                        if (oci_runtime_check(runtime, err, sizeof err) < 0)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--runtime", "invalidArgument",
                                                 "%s", err);
                        break;
                }
                case 'h':
                        run_help(create_only);
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
                if (r < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
        }
        if (!rootfs) {
                struct stat st;
                if (optind >= argc)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[0], "invalidArgument",
                                         "give --rootfs DIR or an IMAGE (see container %s --help)", argv[0]);
                image = argv[optind++];
                /* An "image" that is a directory is a root filesystem (as --rootfs). */
                if ((strchr(image, '/') || streq(image, ".")) && stat(image, &st) >= 0 &&
                    S_ISDIR(st.st_mode)) {
                        rootfs = realpath(image, NULL);
                        image = NULL;
                        if (!rootfs)
                                return CONTAINER_EXIT_TOOL_FAILED;
                }
        }
        if (detach && create_only)
                detach = false;
        if (ao.tty && json_array_append_new(env, json_string("TERM=xterm")) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;

        /* With an image the API server merges the image's config with what we send (docs/images.md):
         * args are the image's Cmd override, env only our -e, cwd only an explicit -w. */
        if (image && json_array_size(env) > 0 &&
            streq(json_string_value(json_array_get(env, 0)), DEFAULT_PATH_ENV) &&
            json_array_remove(env, 0) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (!image && entrypoint && json_array_append_new(args, json_string(entrypoint)) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (int i = optind; i < argc; i++)
                if (json_array_append_new(args, json_string(argv[i])) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
        if (!image && json_array_size(args) == 0 && json_array_append_new(args, json_string("/bin/sh")) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (size_t i = 0; i < json_array_size(args); i++)
                if (!json_is_string(json_array_get(args, i)))
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[0], "invalidArgument",
                                         "arguments must be UTF-8");

        cfg = json_pack(
                "{s:s?, s:s?, s:s?, s:{s:O, s:O, s:s?, s:b}, s:O, s:O, s:O, s:b, s:b, s:b, s:b, s:s?, s:s?}",
                "id", name, "image", image, "rootfs", rootfs, "process", "args", args, "env", env, "cwd",
                workdir
                        ?: image ? NULL
                                 : "/",
                "terminal", ao.tty, "mounts", mounts, "resources", resources, "labels", labels,
                "readOnlyRoot", read_only, "init", init, "autoRemove", auto_remove, "tty", ao.tty,
                "hostname", hostname, "runtime", runtime);
        if (!cfg)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[0], "internalError",
                                 "building the configuration");
        if (user && json_object_set_new(json_object_get(cfg, "process"), "user", json_string(user)) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (run_security_apply(&security, json_object_get(cfg, "process"), json_object_get(cfg, "resources"),
                               rlimits) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (image && entrypoint && json_object_set_new(cfg, "entrypoint", json_string(entrypoint)) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (stop_signal && json_object_set_new(cfg, "stopSignal", json_string(stop_signal)) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (json_object_size(sysctls) > 0 && json_object_set(cfg, "sysctls", sysctls) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;

        text = json_dumps(cfg, JSON_COMPACT);
        r = text ? cxpc_object_from_json(text, &config) : -ENOMEM;
        if (r >= 0)
                r = cli_request(APISERVER_ROUTE_CREATE, NULL, &req);
        if (r >= 0)
                r = cxpc_dict_set(req, "configuration", config);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[0], "internalError", "%s", strerror(-r));

        r = cli_connect(true, &conn);
        if (r < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        r = cli_call(conn, req, 0, "creating the container", &reply);
        if (r < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        {
                const char *s = NULL;
                if (cxpc_dict_get_string(reply, "id", &s) < 0 || !(id = strdup(s)))
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "creating the container",
                                         "internalError", "reply without id");
        }
        if (create_only) {
                printf("%s\n", id);
                return 0;
        }
        if (detach) {
                int64_t code = CONTAINER_EXIT_TOOL_FAILED;

                cxpc_object_unref(req);
                req = NULL;
                cxpc_object_unref(reply);
                reply = NULL;
                r = cli_request(APISERVER_ROUTE_START, id, &req);
                if (r >= 0)
                        r = cxpc_connection_call(conn, req, CONTAINER_CALL_TIMEOUT_USEC, &reply);
                if (r >= 0)
                        r = cxpc_reply_check(reply, NULL, NULL);
                if (r < 0) {
                        (void) cli_error_reply(r, "starting the container", reply);
                        /* 126/127 of a failed start are the command's problem, reported as such. */
                        if (reply)
                                (void) cxpc_dict_get_int64(reply, "exitCode", &code);
                        return (int) code;
                }
                printf("%s\n", id);
                return 0;
        }
        return start_attached(conn, id, &ao);
}

/* Starts a created container with our stdio (or a pty) and waits for its exit. */
static int start_attached(cxpc_connection *conn, const char *id, const AttachOptions *o) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *wait = NULL, *start = NULL, *reply = NULL;
        Session s = {.id = id, .container = id};
        int r;

        r = session_init(&s, o->tty, o->interactive);
        if (r < 0) {
                session_done(&s);
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "attaching", "internalError", "%s",
                                 strerror(-r));
        }
        s.api = cxpc_connection_ref(conn);
        r = cxpc_connection_attach_event(conn, s.event, 0);
        /* The wait goes first on the same connection: it is parked before the start is handled,
         * so even an auto-removed container that exits at once reports its status. */
        if (r >= 0)
                r = cli_request(APISERVER_ROUTE_WAIT, id, &wait);
        if (r >= 0)
                r = cxpc_connection_call_async(conn, wait, CXPC_INFINITY, on_wait_reply, &s);
        if (r >= 0)
                r = cli_request(APISERVER_ROUTE_START, id, &start);
        if (r >= 0 && o->interactive)
                r = cxpc_dict_set_fd(start, "stdin", STDIN_FILENO);
        if (r >= 0)
                r = cxpc_dict_set_fd(start, "stdout", STDOUT_FILENO);
        if (r >= 0)
                r = cxpc_dict_set_fd(start, "stderr", STDERR_FILENO);
        if (r >= 0 && o->tty) {
                struct winsize ws;
                if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) >= 0 ||
                     ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0) &&
                    ws.ws_col > 0 && ws.ws_row > 0) {
                        r = cxpc_dict_set_int64(start, "width", ws.ws_col);
                        if (r >= 0)
                                r = cxpc_dict_set_int64(start, "height", ws.ws_row);
                }
        }
        if (r < 0) {
                session_done(&s);
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "starting the container", "internalError", "%s",
                                 strerror(-r));
        }
        r = cxpc_connection_call(conn, start, CONTAINER_CALL_TIMEOUT_USEC, &reply);
        if (r >= 0)
                r = cxpc_reply_check(reply, NULL, NULL);
        if (r < 0) {
                int64_t code = CONTAINER_EXIT_TOOL_FAILED;
                session_restore_terminal(&s);
                (void) cli_error_reply(r, "starting the container", reply);
                if (reply)
                        (void) cxpc_dict_get_int64(reply, "exitCode", &code);
                session_done(&s);
                return (int) code;
        }
        r = sd_event_loop(s.event);
        session_done(&s);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "waiting for the container", "internalError",
                                 "%s", strerror(-r));
        return s.exit_code < 0 ? CONTAINER_EXIT_TOOL_FAILED : s.exit_code;
}

int verb_start(int argc, char **argv) {
        static const struct option options[] = {
                {"attach", no_argument, NULL, 'a'},
                {"interactive", no_argument, NULL, 'i'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        AttachOptions ao = {};
        bool attach = false;
        int c, ret = 0;

        while ((c = getopt_long(argc, argv, "aih", options, NULL)) >= 0)
                switch (c) {
                case 'a':
                        attach = true;
                        break;
                case 'i':
                        ao.interactive = true;
                        break;
                case 'h':
                        printf("Usage: container start [-a] [-i] CONTAINER...\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (optind >= argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "start", "invalidArgument",
                                 "give at least one container");
        if (attach && argc - optind != 1)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "start", "invalidArgument",
                                 "--attach takes one container");
        if (cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (attach)
                return start_attached(conn, argv[optind], &ao);
        for (int i = optind; i < argc; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL;
                char what[128];

                snprintf(what, sizeof what, "starting %s", argv[i]);
                if (cli_request(APISERVER_ROUTE_START, argv[i], &req) < 0 ||
                    cli_call(conn, req, 0, what, NULL) < 0)
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                else
                        printf("%s\n", argv[i]);
        }
        return ret;
}

/* ---- exec ---- */

/* runtime/createProcess of the exec'd process, with our stdio unless detached. */
static int exec_create(cxpc_connection *rt, const char *pid, cxpc_object *process, bool interactive,
                       bool detach) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL;
        int r;

        r = cli_request("runtime/createProcess", pid, &req);
        if (r >= 0)
                r = cxpc_dict_set(req, "processConfig", process);
        if (r >= 0 && !detach && interactive)
                r = cxpc_dict_set_fd(req, "stdin", STDIN_FILENO);
        if (r >= 0 && !detach)
                r = cxpc_dict_set_fd(req, "stdout", STDOUT_FILENO);
        if (r >= 0 && !detach)
                r = cxpc_dict_set_fd(req, "stderr", STDERR_FILENO);
        if (r < 0)
                return cli_error(r, "exec", "internalError", "%s", strerror(-r));
        return cli_call_peer(rt, "the runtime service", req, 0, "exec", NULL);
}

/* The status of an exec'd process whose start failed: 127 not found, 126 not executable. */
static int exec_failed_status(cxpc_connection *rt, const char *pid) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        int64_t code;

        if (cli_request("runtime/wait", pid, &req) < 0 ||
            cxpc_connection_call(rt, req, 5 * USEC_PER_SEC, &reply) < 0 ||
            cxpc_reply_check(reply, NULL, NULL) < 0 || cxpc_dict_get_int64(reply, "exitCode", &code) < 0 ||
            code < 0 || code > 255)
                return CONTAINER_EXIT_TOOL_FAILED;
        return (int) code;
}

int verb_exec(int argc, char **argv) {
        static const struct option options[] = {
                {"detach", no_argument, NULL, 'd'},        {"interactive", no_argument, NULL, 'i'},
                {"tty", no_argument, NULL, 't'},           {"env", required_argument, NULL, 'e'},
                {"workdir", required_argument, NULL, 'w'}, {"user", required_argument, NULL, 'u'},
                {"help", no_argument, NULL, 'h'},          {},
        };
        _cleanup_(json_decrefp) json_t *env = json_array(), *args = json_array(), *pc = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *process = NULL, *wait = NULL, *start = NULL;
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *rt = NULL;
        _cleanup_free_ char *text = NULL;
        const char *workdir = "/", *user = NULL;
        char pid[32], suffix[CONTAINER_ID_GENERATED_LEN + 1];
        AttachOptions ao = {};
        bool detach = false;
        Session s = {};
        int c, r;

        if (!env || !args || json_array_append_new(env, json_string(DEFAULT_PATH_ENV)) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        while ((c = getopt_long(argc, argv, "+dite:w:u:h", options, NULL)) >= 0)
                switch (c) {
                case 'd':
                        detach = true;
                        break;
                case 'i':
                        ao.interactive = true;
                        break;
                case 't':
                        ao.tty = true;
                        break;
                case 'e':
                        if (env_append(env, optarg) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        break;
                case 'w':
                        workdir = optarg;
                        if (workdir[0] != '/')
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--workdir", "invalidArgument",
                                                 "\"%s\": must be an absolute path", workdir);
                        break;
                case 'u':
                        user = optarg;
                        break;
                case 'h':
                        printf("Usage: container exec [-d] [-i] [-t] [-e K=V] [-w DIR] [-u USER] CONTAINER "
                               "COMMAND [ARG...]\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (argc - optind < 2)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "exec", "invalidArgument",
                                 "give a container and a command");
        for (int i = optind + 1; i < argc; i++)
                if (json_array_append_new(args, json_string(argv[i])) < 0 ||
                    !json_array_get(args, json_array_size(args) - 1))
                        return CONTAINER_EXIT_TOOL_FAILED;
        if (ao.tty && json_array_append_new(env, json_string("TERM=xterm")) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        pc = json_pack("{s:O, s:O, s:s, s:b, s:s?}", "args", args, "env", env, "cwd", workdir, "terminal",
                       ao.tty, "user", user);
        text = pc ? json_dumps(pc, JSON_COMPACT) : NULL;
        if (!text || cxpc_object_from_json(text, &process) < 0 || container_id_generate(suffix) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        snprintf(pid, sizeof pid, "exec-%s", suffix);

        if (cli_runtime_connect(argv[optind], &rt) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;

        r = session_init(&s, ao.tty && !detach, ao.interactive && !detach);
        if (r < 0) {
                session_done(&s);
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "exec", "internalError", "%s", strerror(-r));
        }
        s.id = pid;
        s.container = argv[optind];
        r = exec_create(rt, pid, process, ao.interactive, detach);
        if (r >= 0 && ao.tty && !detach) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *resize = NULL, *reply = NULL;
                struct winsize ws;
                /* The first size goes before the start; the service keeps it for the pty. A resize
                 * that does not take is cosmetic. */
                if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) >= 0 ||
                     ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0) &&
                    ws.ws_col > 0 && ws.ws_row > 0 && cli_request("runtime/resize", pid, &resize) >= 0 &&
                    cxpc_dict_set_int64(resize, "width", ws.ws_col) >= 0 &&
                    cxpc_dict_set_int64(resize, "height", ws.ws_row) >= 0)
                        (void) cxpc_connection_call(rt, resize, CONTAINER_CALL_TIMEOUT_USEC, &reply);
        }
        if (r >= 0) {
                r = cli_request("runtime/start", pid, &start);
                if (r < 0)
                        (void) cli_error(r, "exec", "internalError", "%s", strerror(-r));
                else
                        r = cli_call_peer(rt, "the runtime service", start, 0, "exec", NULL);
        }
        if (r < 0) {
                /* Reported already. The failed start's status tells not-found (127) from
                 * not-executable (126). */
                session_restore_terminal(&s);
                r = exec_failed_status(rt, pid);
                session_done(&s);
                return r;
        }
        if (detach) {
                session_done(&s);
                return 0;
        }
        s.runtime = TAKE_PTR(rt);
        r = cxpc_connection_attach_event(s.runtime, s.event, 0);
        if (r >= 0)
                r = cli_request("runtime/wait", pid, &wait);
        if (r >= 0)
                r = cxpc_connection_call_async(s.runtime, wait, CXPC_INFINITY, on_wait_reply, &s);
        if (r >= 0)
                r = sd_event_loop(s.event);
        session_done(&s);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "exec", "internalError", "%s", strerror(-r));
        return s.exit_code < 0 ? CONTAINER_EXIT_TOOL_FAILED : s.exit_code;
}

/* ---- logs ---- */

/* The runtime service's log file (docs/runtime-io.md): the 8-byte magic "CXLOG1\n\0", then frames of
 * a packed little-endian header (u64 timestamp ns, u8 stream 1|2, u32 length) and the bytes. A file
 * without the magic is shown as raw bytes. */
#define LOG_MAGIC       "CXLOG1\n"
#define LOG_MAGIC_SIZE  8u
#define LOG_HEADER_SIZE 13u
#define LOG_FRAME_MAX   (64u * 1024u)

typedef struct LogReader {
        int fd;
        uint8_t *buf;
        size_t len, cap;
        int format; /* -1 unknown yet, 0 raw, 1 framed */
        long tail;  /* < 0: print everything; else only the last `tail` lines of what is there now */
} LogReader;

static int log_reader_fill(LogReader *lr) {
        for (;;) {
                ssize_t n;

                if (lr->cap - lr->len < RELAY_BUFFER_SIZE) {
                        uint8_t *p = realloc(lr->buf, lr->cap + RELAY_BUFFER_SIZE * 4);
                        if (!p)
                                return -ENOMEM;
                        lr->buf = p;
                        lr->cap += RELAY_BUFFER_SIZE * 4;
                }
                n = read(lr->fd, lr->buf + lr->len, lr->cap - lr->len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return 0;
                lr->len += (size_t) n;
        }
}

static uint64_t le64(const uint8_t *p) {
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* Walks complete frames from the start of the buffer; calls emit (may be NULL) for each.
 * Returns the bytes consumed, or -EBADMSG. */
static ssize_t log_frames(LogReader *lr, size_t limit,
                          int (*emit)(int stream, const uint8_t *p, size_t n, void *ud), void *ud) {
        size_t off = 0;

        while (limit - off >= LOG_HEADER_SIZE) {
                uint8_t stream = lr->buf[off + 8];
                uint32_t n = le32(lr->buf + off + 9);

                if ((stream != 1 && stream != 2) || n > LOG_FRAME_MAX)
                        return -EBADMSG;
                if (limit - off - LOG_HEADER_SIZE < n)
                        break;              /* a frame still being written */
                (void) le64(lr->buf + off); /* timestamp: not shown */
                if (emit) {
                        int r = emit(stream, lr->buf + off + LOG_HEADER_SIZE, n, ud);
                        if (r < 0)
                                return r;
                }
                off += LOG_HEADER_SIZE + n;
        }
        return (ssize_t) off;
}

static int emit_frame(int stream, const uint8_t *p, size_t n, void *ud) {
        return write_all(stream == 2 ? STDERR_FILENO : STDOUT_FILENO, p, n);
}

typedef struct TailState {
        long lines;     /* lines wanted */
        long remaining; /* newlines still to pass before printing starts */
} TailState;

typedef struct LineCount {
        long newlines;
        int last; /* last byte seen, -1 for none */
} LineCount;

static int count_frame_lines(int stream, const uint8_t *p, size_t n, void *ud) {
        LineCount *lc = ud;

        for (size_t i = 0; i < n; i++)
                if (p[i] == '\n')
                        lc->newlines++;
        if (n > 0)
                lc->last = p[n - 1];
        return 0;
}

static int emit_tail(int stream, const uint8_t *p, size_t n, void *ud) {
        TailState *t = ud;
        size_t i = 0;

        while (t->remaining > 0 && i < n)
                if (p[i++] == '\n')
                        t->remaining--;
        return i < n ? write_all(stream == 2 ? STDERR_FILENO : STDOUT_FILENO, p + i, n - i) : 0;
}

/* Prints what is complete in the buffer and keeps the rest for the next call. */
static int log_reader_print(LogReader *lr) {
        ssize_t used;
        int r;

        r = log_reader_fill(lr);
        if (r < 0)
                return r;
        if (lr->format < 0) {
                if (lr->len < LOG_MAGIC_SIZE && memcmp(lr->buf, LOG_MAGIC, lr->len) == 0)
                        return 0; /* the magic is still being written */
                if (lr->len >= LOG_MAGIC_SIZE && memcmp(lr->buf, LOG_MAGIC, LOG_MAGIC_SIZE) == 0) {
                        lr->format = 1;
                        memmove(lr->buf, lr->buf + LOG_MAGIC_SIZE, lr->len - LOG_MAGIC_SIZE);
                        lr->len -= LOG_MAGIC_SIZE;
                } else
                        lr->format = 0;
        }
        if (lr->format == 0) {
                r = write_all(STDOUT_FILENO, lr->buf, lr->len);
                lr->len = 0;
                return r;
        }
        if (lr->tail >= 0) {
                /* Count the lines present now, then skip all but the last `tail` of them. A final
                 * line without a newline counts as a line. */
                LineCount lc = {.last = -1};
                TailState t;
                long total;

                if (log_frames(lr, lr->len, count_frame_lines, &lc) < 0)
                        return -EBADMSG;
                /* An unterminated last line is a line too. */
                total = lc.newlines + (lc.last >= 0 && lc.last != '\n');
                t.lines = lr->tail;
                t.remaining = total > lr->tail ? total - lr->tail : 0;
                lr->tail = -1;
                if (t.lines == 0)
                        used = log_frames(lr, lr->len, NULL, NULL);
                else
                        used = log_frames(lr, lr->len, emit_tail, &t);
        } else
                used = log_frames(lr, lr->len, emit_frame, NULL);
        if (used < 0)
                return (int) used;
        memmove(lr->buf, lr->buf + used, lr->len - (size_t) used);
        lr->len -= (size_t) used;
        return 0;
}

typedef struct Follow {
        sd_event *event;
        LogReader *reader;
        int result;
} Follow;

static int on_log_modified(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Follow *f = userdata;
        char buf[4096];

        (void) read(fd, buf, sizeof buf); /* consume the events; what changed is the file */
        if (log_reader_print(f->reader) < 0)
                (void) sd_event_exit(f->event, 0);
        return 0;
}

static void on_follow_exit(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        Follow *f = userdata;
        cxpc_error_code code;

        (void) log_reader_print(f->reader);
        if (cxpc_reply_check(reply, &code, NULL) < 0 && code != CXPC_ERROR_NOT_FOUND) {
                (void) cli_error_reply(-EIO, "following the logs", reply);
                f->result = CONTAINER_EXIT_TOOL_FAILED;
        }
        (void) sd_event_exit(f->event, 0);
}

int verb_logs(int argc, char **argv) {
        static const struct option options[] = {
                {"follow", no_argument, NULL, 'f'},
                {"tail", required_argument, NULL, 'n'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL, *wait = NULL;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_close_ int fd = -EBADF, ino = -EBADF;
        bool follow = false, running = false;
        long lines = -1;
        char path[64];
        Follow f = {};
        LogReader lr;
        int c, r;

        while ((c = getopt_long(argc, argv, "fn:h", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        follow = true;
                        break;
                case 'n': {
                        char *end;
                        if (streq(optarg, "all"))
                                break;
                        lines = strtol(optarg, &end, 10);
                        if (*end || end == optarg || lines < 0)
                                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "--tail", "invalidArgument",
                                                 "\"%s\": a number of lines or all", optarg);
                        break;
                }
                case 'h':
                        printf("Usage: container logs [-f] [-n LINES] CONTAINER\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (argc - optind != 1)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "logs", "invalidArgument",
                                 "give one container");
        if (cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (cli_request(APISERVER_ROUTE_LOGS, argv[optind], &req) < 0 ||
            cli_call(conn, req, 0, "reading the logs", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        (void) cxpc_dict_get_bool(reply, "running", &running);
        r = cxpc_dict_dup_fd(reply, "fd", &fd);
        if (r == -ENOENT)
                return 0; /* nothing was ever written */
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "reading the logs", "internalError", "%s",
                                 strerror(-r));

        /* Watch before reading so that nothing written in between is missed. */
        if (follow && running) {
                ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
                snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
                if (ino < 0 || inotify_add_watch(ino, path, IN_MODIFY) < 0)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "following the logs", "internalError",
                                         "inotify: %m");
        }
        lr = (LogReader){.fd = fd, .format = -1, .tail = lines};
        r = log_reader_print(&lr);
        if (r < 0 && r != -EPIPE) {
                free(lr.buf);
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "reading the logs", "internalError", "%s",
                                 strerror(-r));
        }
        if (ino < 0) {
                free(lr.buf);
                return 0;
        }

        f = (Follow){.reader = &lr};
        r = sd_event_new(&event);
        f.event = event;
        if (r >= 0)
                r = sd_event_add_io(event, NULL, ino, EPOLLIN, on_log_modified, &f);
        if (r >= 0)
                r = cxpc_connection_attach_event(conn, event, 0);
        if (r >= 0)
                r = cli_request(APISERVER_ROUTE_WAIT, argv[optind], &wait);
        /* The exit ends the follow: no polling, no deadline (the user asked to wait). */
        if (r >= 0)
                r = cxpc_connection_call_async(conn, wait, CXPC_INFINITY, on_follow_exit, &f);
        if (r >= 0)
                r = sd_event_loop(event);
        free(lr.buf);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "following the logs", "internalError", "%s",
                                 strerror(-r));
        return f.result;
}

/* ---- wait ---- */

int verb_wait(int argc, char **argv) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        int ret = 0;

        if (cli_help_requested(argc, argv, "Usage: container wait CONTAINER...  (prints each exit code)"))
                return 0;
        if (argc < 2)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "wait", "invalidArgument",
                                 "give at least one container");
        if (cli_connect(true, &conn) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (int i = 1; i < argc; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
                int64_t code = -1;

                if (cli_request(APISERVER_ROUTE_WAIT, argv[i], &req) < 0 ||
                    cli_call(conn, req, CXPC_INFINITY, "waiting for the container", &reply) < 0) {
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                        continue;
                }
                if (cxpc_dict_get_int64(reply, "exitCode", &code) >= 0)
                        printf("%" PRId64 "\n", code);
                else
                        printf("unknown\n");
        }
        return ret;
}
