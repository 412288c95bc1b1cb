/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * container-runtime: owns one container. Serves the runtime/<name> routes on the inherited first
 * connection, on $RUN/runtime/<id>.sock and on anonymous endpoints, and drives the OCI runtime
 * as asynchronous child processes. Subreaper of everything in its container: one SIGCHLD source
 * reaps every child and dispatches exits by pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "oci-runtime-dirs.h"
#include "sealed-exe.h"
#include "cgroup-util.h"
#include "proc-util.h"
#ifndef HAVE_RUNTIME_IO
#define HAVE_RUNTIME_IO 0
#endif
#if HAVE_RUNTIME_IO
#include "io/copy.h"
#include "io/dial.h"
#include "io/pty.h"
#include "io/stdio.h"
#endif
#include "macro.h"
#include "oci-spec.h"
#include "resource-limits.h"
#include "runtime.h"

typedef enum PendingKind {
        PENDING_WAIT, /* reply {exitCode, exitedAt} at exit */
        PENDING_KILL, /* reply {} at exit (SIGKILL) */
        PENDING_STOP, /* reply {} when stopped and cleaned up */
        PENDING_START,
        PENDING_UPDATE, /* reply {} when the OCI runtime's update has run */
        PENDING_PAUSE,  /* reply {} when frozen */
        PENDING_RESUME, /* reply {} when thawed */
} PendingKind;

typedef struct Pending {
        PendingKind kind;
        cxpc_connection *conn;
        cxpc_object *msg;
        struct Pending *next;
} Pending;

typedef struct Runtime Runtime;

typedef struct Proc {
        Runtime *rt;
        char *id;
        bool is_init;
        ProcessConfig *config;
        int stdio[3];
        ProcStatus status;
        pid_t pid;
        int pidfd;
        int exit_code;
        int64_t exited_at;
        /* Reaped, but its output is still draining (the exit is recorded once that is done). */
        bool exit_pending;
        int pending_exit_code;
        int64_t pending_exited_at;
        sd_event_source *drain_timer;
        unsigned seq;
        Pending *waiters;
        size_t n_waiters;
        bool terminal;
#if HAVE_RUNTIME_IO
        StdioRelay *relay;
        ConsoleSocket *console;
        PtyRelay *pty;
        unsigned width, height; /* a resize that came before the terminal */
#endif
        struct Proc *next;
} Proc;

typedef struct Child Child;
typedef void (*child_exit_t)(Runtime *rt, Child *ch, int status_code, const char *message);

struct Child {
        OciInvocation inv;
        child_exit_t cb;
        Proc *proc;
        Pending *request; /* the request the invocation answers, if any (cb takes it) */
        Child *next;
};

typedef struct OrphanExit {
        pid_t pid;
        int code;
} OrphanExit;

struct Runtime {
        sd_event *event;
        char *id;
        char *bundle;
        char *run_dir;
        char *runtime_bin;
        char *state_dir;   /* $RUN/runtime/<id>.d */
        char *crun_root;   /* state_dir/oci */
        char *socket_path; /* $RUN/runtime/<id>.sock */
        ContainerConfig *config;
        RuntimeState state;

        cxpc_router *router;
        cxpc_listener *listener;
        cxpc_listener *endpoints[RUNTIME_ENDPOINTS_MAX];
        size_t n_endpoints;
        cxpc_connection *first;

        Proc *procs;
        size_t n_procs;
        unsigned next_seq;
        Child *children;
        OrphanExit orphans[RUNTIME_ORPHAN_EXITS_MAX];
        size_t n_orphans;

        cxpc_object *networks;
        Pending *stop_waiters;
        sd_event_source *stop_timer;
        bool stop_killed;
        bool cleanup_running;
        bool oci_created;    /* the OCI runtime knows the container: delete it before exiting */
        bool exit_requested; /* SIGTERM: exit once the container is down */

        /* The freezer: what the container's cgroup should be, what the OCI runtime last made it,
         * the one pause/resume invocation that may run, and the client request it answers. */
        bool want_frozen;
        bool frozen;
        bool freezer_running;
        Pending *freeze_request;
        char *freezer_error; /* why the last invocation failed */

        pid_t reaper_pid;
        int reaper_fd;
        int log_fd; /* without the I/O module: raw log of init's output */
#if HAVE_RUNTIME_IO
        StdioLog *stdio_log;
#endif
};

static void log_msg(const char *fmt, ...) _printf_(1, 2);
static void log_msg(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fputs("container-runtime: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static int64_t now_realtime_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * (int64_t) NSEC_PER_SEC + ts.tv_nsec;
}

/* The one place that changes state. Returns -EINVAL for a transition the machine does not have. */
static int runtime_set_state(Runtime *rt, RuntimeState next) {
        static const unsigned allowed[_RUNTIME_STATE_MAX] = {
                [RUNTIME_CREATED] =
                        1u << RUNTIME_BOOTED | 1u << RUNTIME_STOPPED | 1u << RUNTIME_SHUTTING_DOWN,
                [RUNTIME_BOOTED] = 1u << RUNTIME_RUNNING | 1u << RUNTIME_STOPPED,
                [RUNTIME_RUNNING] = 1u << RUNTIME_PAUSED | 1u << RUNTIME_STOPPING | 1u << RUNTIME_STOPPED,
                /* A frozen init can still die (cgroup v2 delivers SIGKILL to frozen tasks). */
                [RUNTIME_PAUSED] = 1u << RUNTIME_RUNNING | 1u << RUNTIME_STOPPING | 1u << RUNTIME_STOPPED,
                [RUNTIME_STOPPING] = 1u << RUNTIME_STOPPED,
                [RUNTIME_STOPPED] = 1u << RUNTIME_SHUTTING_DOWN,
                [RUNTIME_SHUTTING_DOWN] = 0,
        };

        if (rt->state == next)
                return 0;
        if (!(allowed[rt->state] & (1u << next))) {
                log_msg("refusing state change %s → %s", runtime_state_to_string(rt->state),
                        runtime_state_to_string(next));
                return -EINVAL;
        }
        if (getenv("CONTAINER_RUNTIME_DEBUG"))
                log_msg("%s: %s → %s", rt->id, runtime_state_to_string(rt->state),
                        runtime_state_to_string(next));
        rt->state = next;
        return 0;
}

static int reply_invalid_state(Runtime *rt, cxpc_connection *c, cxpc_object *m) {
        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE, "container %s is %s", rt->id,
                                           runtime_state_to_string(rt->state));
}

static int reply_empty(cxpc_connection *c, cxpc_object *m) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        int r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, m, reply);
}

/* ---- processes ---- */

static Pending *pending_free(Pending *p) {
        if (!p)
                return NULL;
        cxpc_connection_unref(p->conn);
        cxpc_object_unref(p->msg);
        free(p);
        return NULL;
}

static int pending_add(Pending **list, PendingKind kind, cxpc_connection *c, cxpc_object *m) {
        Pending *p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        *p = (Pending){
                .kind = kind,
                .conn = cxpc_connection_ref(c),
                .msg = cxpc_object_ref(m),
                .next = *list,
        };
        *list = p;
        return 0;
}

static Proc *proc_free(Proc *p) {
        if (!p)
                return NULL;
        for (Pending *w = p->waiters, *n; w; w = n) {
                n = w->next;
                pending_free(w);
        }
        close_many(p->stdio, 3);
        safe_close(p->pidfd);
        sd_event_source_disable_unref(p->drain_timer);
#if HAVE_RUNTIME_IO
        stdio_relay_free(p->relay);
        console_socket_free(p->console);
        pty_relay_free(p->pty);
#endif
        process_config_free(p->config);
        free(p->id);
        free(p);
        return NULL;
}

static Proc *proc_find(Runtime *rt, const char *id) {
        for (Proc *p = rt->procs; p; p = p->next)
                if (streq(p->id, id))
                        return p;
        return NULL;
}

static Proc *proc_find_pid(Runtime *rt, pid_t pid) {
        for (Proc *p = rt->procs; p; p = p->next)
                if (p->pid == pid && p->status != PROC_EXITED && !p->exit_pending)
                        return p;
        return NULL;
}

static Proc *proc_init(Runtime *rt) {
        return proc_find(rt, rt->id);
}

static int proc_new(Runtime *rt, const char *id, ProcessConfig *config, int stdio[3], Proc **ret) {
        Proc *p;

        if (rt->n_procs >= RUNTIME_PROCESSES_MAX)
                return -ENOSPC;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->id = strdup(id);
        if (!p->id) {
                free(p);
                return -ENOMEM;
        }
        p->rt = rt;
        p->is_init = streq(id, rt->id);
        p->config = config;
        p->terminal = config ? config->terminal : rt->config->process.terminal;
        for (int i = 0; i < 3; i++) {
                p->stdio[i] = stdio[i];
                stdio[i] = -EBADF;
        }
        p->pidfd = -EBADF;
        p->status = PROC_REGISTERED;
        p->seq = rt->next_seq++;
        p->next = rt->procs;
        rt->procs = p;
        rt->n_procs++;
        *ret = p;
        return 0;
}

static void proc_reply_waiters(Proc *p) {
        Pending *list = TAKE_PTR(p->waiters);

        p->n_waiters = 0;
        while (list) {
                Pending *w = list;
                list = w->next;
                if (w->kind == PENDING_WAIT) {
                        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
                        if (cxpc_reply_new(&reply) >= 0 &&
                            cxpc_dict_set_int64(reply, "exitCode", p->exit_code) >= 0 &&
                            cxpc_dict_set_date(reply, "exitedAt", p->exited_at) >= 0)
                                (void) cxpc_connection_reply(w->conn, w->msg, reply);
                        else
                                (void) cxpc_connection_reply_error(
                                        w->conn, w->msg, CXPC_ERROR_INTERNAL_ERROR, "out of memory");
                } else
                        (void) reply_empty(w->conn, w->msg);
                pending_free(w);
        }
}

static void proc_fail_waiters(Proc *p, cxpc_error_code code, const char *why) {
        Pending *list = TAKE_PTR(p->waiters);

        p->n_waiters = 0;
        while (list) {
                Pending *w = list;
                list = w->next;
                (void) cxpc_connection_reply_error(w->conn, w->msg, code, "process %s: %s", p->id, why);
                pending_free(w);
        }
}

static int exit_code_from_siginfo(int code, int status) {
        if (code == CLD_EXITED)
                return status;
        return 128 + status;
}

static void runtime_begin_cleanup(Runtime *rt);
static void runtime_maybe_exit(Runtime *rt);

/* Records the exit and answers the waiters. */
static void proc_exit_finish(Runtime *rt, Proc *p, int code, int64_t exited_at) {
        p->exit_pending = false;
        p->drain_timer = sd_event_source_disable_unref(p->drain_timer);
        p->status = PROC_EXITED;
        p->exit_code = code;
        p->exited_at = exited_at;
        p->pidfd = safe_close(p->pidfd);
        close_many(p->stdio, 3);
        for (int i = 0; i < 3; i++)
                p->stdio[i] = -EBADF;
        if (p->is_init && rt->stop_killed)
                p->exit_code = 137;
        /* The replies go out first: starting the OCI runtime's delete below blocks this loop until
         * the runtime has been executed. */
        proc_reply_waiters(p);
        if (p->is_init) {
                rt->stop_timer = sd_event_source_disable_unref(rt->stop_timer);
                (void) runtime_set_state(rt, RUNTIME_STOPPED);
                /* Processes that were registered but never started can no longer run. */
                for (Proc *q = rt->procs; q; q = q->next)
                        if (q != p && q->status == PROC_REGISTERED)
                                proc_fail_waiters(q, CXPC_ERROR_INVALID_STATE, "the container has stopped");
                runtime_begin_cleanup(rt);
        }
}

/* Whether a relay still carries the process's output to the log or the client. */
static bool proc_output_open(Proc *p) {
#if HAVE_RUNTIME_IO
        /* A terminal whose master has not arrived yet counts: the OCI runtime sends it before the
         * process runs, but its SIGCHLD can be handled first, and the output is in the PTY. */
        return p->relay || p->pty || p->console;
#else
        return false;
#endif
}

static void proc_exit_pending_finish(Proc *p) {
        if (p->exit_pending)
                proc_exit_finish(p->rt, p, p->pending_exit_code, p->pending_exited_at);
}

static int on_drain_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Proc *p = userdata;

        log_msg("output of %s still open %u ms after its exit, not waiting for it", p->id,
                RUNTIME_OUTPUT_DRAIN_USEC / 1000U);
        proc_exit_pending_finish(p);
        return 0;
}

/* The process is gone. Its exit becomes visible (wait replies, state, cleanup) only once its
 * output reached EOF and was logged and relayed, so that `logs` right after `wait` is complete;
 * bounded by RUNTIME_OUTPUT_DRAIN_USEC for a grandchild that keeps the pipes open. */
static void proc_exited(Runtime *rt, Proc *p, int code) {
        int64_t now = now_realtime_ns();

        if (p->exit_pending || p->status == PROC_EXITED)
                return;
        if (!proc_output_open(p) ||
            sd_event_add_time_relative(rt->event, &p->drain_timer, CLOCK_MONOTONIC,
                                       RUNTIME_OUTPUT_DRAIN_USEC, 0, on_drain_timeout, p) < 0) {
                proc_exit_finish(rt, p, code, now);
                return;
        }
        (void) sd_event_source_set_description(p->drain_timer, "output-drain");
        p->exit_pending = true;
        p->pending_exit_code = code;
        p->pending_exited_at = now;
}

/* ---- children: the OCI runtime invocations ---- */

/* Runs the OCI runtime with argv; cb gets its exit. request (may be NULL) is what the invocation
 * answers: taken on success only. */
static int child_spawn(Runtime *rt, const char *const *argv, const int stdio[3], int pass_fd,
                       child_exit_t cb, Proc *proc, Pending *request) {
        Child *ch = calloc(1, sizeof(*ch));
        int r;

        if (!ch)
                return -ENOMEM;
        r = oci_runtime_spawn(rt->runtime_bin, rt->crun_root, argv, stdio, pass_fd, &ch->inv);
        if (r < 0) {
                free(ch);
                return r;
        }
        ch->cb = cb;
        ch->proc = proc;
        ch->request = request;
        ch->next = rt->children;
        rt->children = ch;
        return 0;
}

static void orphan_record(Runtime *rt, pid_t pid, int code) {
        if (rt->n_orphans == RUNTIME_ORPHAN_EXITS_MAX) {
                memmove(rt->orphans, rt->orphans + 1,
                        sizeof(rt->orphans[0]) * (RUNTIME_ORPHAN_EXITS_MAX - 1));
                rt->n_orphans--;
        }
        rt->orphans[rt->n_orphans++] = (OrphanExit){pid, code};
}

static bool orphan_take(Runtime *rt, pid_t pid, int *ret_code) {
        for (size_t i = 0; i < rt->n_orphans; i++)
                if (rt->orphans[i].pid == pid) {
                        *ret_code = rt->orphans[i].code;
                        memmove(rt->orphans + i, rt->orphans + i + 1,
                                sizeof(rt->orphans[0]) * (rt->n_orphans - i - 1));
                        rt->n_orphans--;
                        return true;
                }
        return false;
}

static void dispatch_exit(Runtime *rt, pid_t pid, int code) {
        for (Child **i = &rt->children; *i; i = &(*i)->next) {
                Child *ch = *i;
                if (ch->inv.pid != pid)
                        continue;
                *i = ch->next;
                _cleanup_free_ char *message = oci_invocation_finish(&ch->inv);
                ch->cb(rt, ch, code, message);
                pending_free(ch->request);
                free(ch);
                return;
        }
        Proc *p = proc_find_pid(rt, pid);
        if (p) {
                proc_exited(rt, p, code);
                return;
        }
        if (pid == rt->reaper_pid) {
                rt->reaper_pid = 0;
                return;
        }
        /* A container process we have not matched yet (its pid file is read after the OCI
         * runtime exits), or a grandchild we inherited. */
        orphan_record(rt, pid, code);
}

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Runtime *rt = userdata;

        for (;;) {
                siginfo_t info = {};
                if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) < 0) {
                        if (errno == EINTR)
                                continue;
                        break; /* ECHILD */
                }
                if (info.si_pid == 0)
                        break;
                dispatch_exit(rt, info.si_pid, exit_code_from_siginfo(info.si_code, info.si_status));
        }
        runtime_maybe_exit(rt);
        return 0;
}

static int read_pid_file(const char *path, pid_t *ret) {
        char buf[32] = {};
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;
        long v;

        if (fd < 0)
                return negative_errno();
        n = read(fd, buf, sizeof(buf) - 1);
        safe_close(fd);
        if (n <= 0)
                return -EIO;
        v = strtol(buf, NULL, 10);
        if (v <= 0)
                return -EIO;
        *ret = (pid_t) v;
        return 0;
}

/* state_dir/process-<seq>.<suffix> */
static char *state_file(Runtime *rt, const char *suffix, unsigned seq) {
        char *p = NULL;
        if (asprintf(&p, "%s/process-%u.%s", rt->state_dir, seq, suffix) < 0)
                return NULL;
        return p;
}

/* After the OCI runtime started a process: learn its pid and watch it. */
static int proc_attach_pid(Runtime *rt, Proc *p, const char *pid_path) {
        pid_t pid;
        int code, r;

        r = read_pid_file(pid_path, &pid);
        (void) unlink(pid_path);
        if (r < 0)
                return r;
        p->pid = pid;
        p->status = PROC_RUNNING;
        if (orphan_take(rt, pid, &code)) {
                proc_exited(rt, p, code);
                return 0;
        }
        /* A pidfd so that later signals cannot hit a recycled pid. */
        p->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        return 0;
}

/* Answers a start: the error, or {pid} of the process that now runs (a host pid). */
static void pending_reply_start(Pending **pp, const char *error, pid_t pid) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        Pending *s = TAKE_PTR(*pp);
        if (!s)
                return;
        if (error)
                (void) cxpc_connection_reply_error(s->conn, s->msg, CXPC_ERROR_INTERNAL_ERROR, "%s", error);
        else if (cxpc_reply_new(&reply) >= 0 && cxpc_dict_set_int64(reply, "pid", pid) >= 0)
                (void) cxpc_connection_reply(s->conn, s->msg, reply);
        else /* without memory: the start still succeeded, the pid is only informative */
                (void) reply_empty(s->conn, s->msg);
        pending_free(s);
}

/* Start requests are kept on the process's waiter list with kind PENDING_START. */
static Pending *proc_take_start(Proc *p) {
        for (Pending **i = &p->waiters; *i; i = &(*i)->next)
                if ((*i)->kind == PENDING_START) {
                        Pending *s = *i;
                        *i = s->next;
                        s->next = NULL;
                        p->n_waiters--;
                        return s;
                }
        return NULL;
}

/* crun: "executable file `x` not found in $PATH: No such file or directory"; runc (Go's exec
 * errors): "exec: \"x\": executable file not found in $PATH", "exec: \"/x\": stat /x: no such file
 * or directory", "exec: \"/etc\": permission denied". A missing cwd or mount source is not 127. */
static int start_failure_exit_code(const char *message) {
        if (message && strstr(message, "not found"))
                return 127;
        if (message && strstr(message, "exec: \"") && strstr(message, "no such file or directory"))
                return 127;
        if (message && (strstr(message, "ermission denied") || strstr(message, "not executable")))
                return 126;
        return 125;
}

static void on_run_done(Runtime *rt, Child *ch, int code, const char *message) {
        Proc *p = ch->proc;
        _cleanup_free_ char *pid_path = state_file(rt, "pid", p->seq);
        Pending *start = proc_take_start(p);
        int r = -EIO;

        if (code == 0 && pid_path)
                r = proc_attach_pid(rt, p, pid_path);
        if (r < 0) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "%s failed to start process %s: %s", rt->runtime_bin, p->id,
                             message ?: (code == 0 ? "no pid file" : "unknown error")) < 0)
                        msg = NULL;
                pending_reply_start(&start, msg ?: "failed to start", 0);
#if HAVE_RUNTIME_IO
                /* No terminal is coming for a process that did not start. */
                p->console = console_socket_free(p->console);
#endif
                if (p->is_init) {
                        /* A failed start leaves the container stopped, after cleanup. */
                        (void) runtime_set_state(rt, RUNTIME_STOPPED);
                        proc_exited(rt, p, start_failure_exit_code(message));
                } else
                        proc_exited(rt, p, start_failure_exit_code(message));
                return;
        }
        if (p->is_init && rt->state == RUNTIME_BOOTED)
                (void) runtime_set_state(rt, RUNTIME_RUNNING);
        pending_reply_start(&start, NULL, p->pid);
}

static int write_json_file(const char *path, json_t *j) {
        _cleanup_free_ char *tmp = NULL;

        if (asprintf(&tmp, "%s.tmp", path) < 0)
                return -ENOMEM;
        if (json_dump_file(j, tmp, JSON_COMPACT) < 0) {
                (void) unlink(tmp);
                return -EIO;
        }
        if (rename(tmp, path) < 0) {
                int r = negative_errno();
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

/* The document in a memfd, handed to the OCI runtime as "/proc/self/fd/N": nothing to create,
 * rename and remove in the state directory on the exec path. One write: json_dump_callback()
 * would make one per token. */
static int json_memfd(json_t *j, const char *name) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
        size_t left;

        if (!text)
                return -ENOMEM;
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        left = strlen(text);
        for (const char *s = text; left > 0;) {
                ssize_t n = write(fd, s, left);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                s += n;
                left -= (size_t) n;
        }
        return TAKE_FD(fd);
}

static void stdio_fill_defaults(Runtime *rt, Proc *p, int stdio[3]) {
        if (stdio[0] < 0)
                stdio[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        for (int i = 1; i < 3; i++)
                if (stdio[i] < 0)
                        stdio[i] = p->is_init && rt->log_fd >= 0 ? fcntl(rt->log_fd, F_DUPFD_CLOEXEC, 3)
                                                                 : open("/dev/null", O_WRONLY | O_CLOEXEC);
}

#if HAVE_RUNTIME_IO
/* The relays hold the client's fds until freed: free them when done, so the client sees EOF. */
static void on_pty_done(PtyRelay *relay, int error, void *userdata) {
        Proc *p = userdata;

        if (error < 0)
                log_msg("terminal relay of %s: %s", p->id, strerror(-error));
        p->pty = pty_relay_free(relay);
        if (!proc_output_open(p))
                proc_exit_pending_finish(p);
}

static void on_console(ConsoleSocket *cs, int error, int master_fd, void *userdata) {
        Proc *p = userdata;
        int r;

        p->console = console_socket_free(cs);
        if (error < 0) {
                log_msg("no terminal for %s: %s", p->id, strerror(-error));
                if (!proc_output_open(p))
                        proc_exit_pending_finish(p);
                return;
        }
        /* The relay owns the client's fds from here on. */
        r = pty_relay_new(p->rt->event, master_fd, p->stdio[0], p->stdio[1],
                          p->is_init ? p->rt->stdio_log : NULL, on_pty_done, p, &p->pty);
        p->stdio[0] = p->stdio[1] = -EBADF;
        p->stdio[2] = safe_close(p->stdio[2]);
        if (r < 0) {
                log_msg("terminal relay of %s: %s", p->id, strerror(-r));
                if (!proc_output_open(p))
                        proc_exit_pending_finish(p);
                return;
        }
        if (p->width > 0)
                (void) pty_relay_resize(p->pty, p->width, p->height);
}

static void on_relay_done(StdioRelay *relay, int error, void *userdata) {
        Proc *p = userdata;

        if (error < 0)
                log_msg("stdio of %s: %s", p->id, strerror(-error));
        p->relay = stdio_relay_free(relay);
        if (!proc_output_open(p))
                proc_exit_pending_finish(p);
}

/* Decides how the process's stdio is wired (docs/runtime.md) and returns the fds the OCI runtime
 * hands to the process, or leaves them -EBADF for a terminal (console socket in *ret_console). */
static int proc_wire_stdio(Runtime *rt, Proc *p, int ret_stdio[3]) {
        bool attached = p->stdio[0] >= 0 || p->stdio[1] >= 0 || p->stdio[2] >= 0;
        bool logging = p->is_init && rt->stdio_log;
        StdioMode mode = stdio_mode_pick(logging, p->terminal, attached);
        int r;

        if (p->terminal)
                return console_socket_new(rt->event, rt->state_dir, on_console, p, &p->console);

        if (mode == STDIO_MODE_DIRECT) {
                for (int i = 0; i < 3; i++) {
                        ret_stdio[i] = p->stdio[i];
                        p->stdio[i] = -EBADF;
                }
                stdio_fill_defaults(rt, p, ret_stdio);
                return 0;
        }

        int out[2] = {-EBADF, -EBADF}, err[2] = {-EBADF, -EBADF}, in[2] = {-EBADF, -EBADF};
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
            (p->stdio[0] >= 0 && pipe2(in, O_CLOEXEC) < 0)) {
                r = negative_errno();
                goto fail;
        }
        r = stdio_relay_new(rt->event, logging ? rt->stdio_log : NULL, on_relay_done, p, &p->relay);
        if (r < 0)
                goto fail;
        r = stdio_relay_add_output(p->relay, STDIO_STREAM_STDOUT, TAKE_FD(out[0]), TAKE_FD(p->stdio[1]));
        if (r >= 0)
                r = stdio_relay_add_output(p->relay, STDIO_STREAM_STDERR, TAKE_FD(err[0]),
                                           TAKE_FD(p->stdio[2]));
        if (r >= 0 && p->stdio[0] >= 0)
                r = stdio_relay_add_input(p->relay, TAKE_FD(p->stdio[0]), TAKE_FD(in[1]));
        if (r < 0)
                goto fail;
        ret_stdio[0] = in[0];
        ret_stdio[1] = out[1];
        ret_stdio[2] = err[1];
        stdio_fill_defaults(rt, p, ret_stdio);
        return 0;
fail:
        close_many(out, 2);
        close_many(err, 2);
        close_many(in, 2);
        p->relay = stdio_relay_free(p->relay);
        return r;
}
#else
static int proc_wire_stdio(Runtime *rt, Proc *p, int ret_stdio[3]) {
        if (p->terminal)
                return -EOPNOTSUPP;
        for (int i = 0; i < 3; i++) {
                ret_stdio[i] = p->stdio[i];
                p->stdio[i] = -EBADF;
        }
        stdio_fill_defaults(rt, p, ret_stdio);
        return 0;
}
#endif

#if HAVE_RUNTIME_IO
/* A size the client set before the terminal existed goes into the OCI process as consoleSize:
 * the runtime sets it on the PTY before the process runs. Applying it only when the master
 * arrives (on_console) races with the process's first TIOCGWINSZ ("stty size" saw 0x0). */
static int process_json_set_console_size(Proc *p, json_t *process) {
        if (!p->terminal || p->width == 0 || p->height == 0)
                return 0;
        if (!process || json_object_set_new(process, "consoleSize",
                                            json_pack("{s:I, s:I}", "height", (json_int_t) p->height,
                                                      "width", (json_int_t) p->width)) < 0)
                return -ENOMEM;
        return 0;
}

/* The init's process is in config.json, written at bootstrap: rewrite it with the size. */
static int init_config_set_console_size(Runtime *rt, Proc *p) {
        _cleanup_free_ char *path = NULL;
        json_t *spec = NULL;
        int r;

        if (!p->terminal || p->width == 0 || p->height == 0)
                return 0;
        if (asprintf(&path, "%s/config.json", rt->bundle) < 0)
                return -ENOMEM;
        r = oci_spec_new(rt->config, &spec);
        if (r < 0)
                return r;
        r = process_json_set_console_size(p, json_object_get(spec, "process"));
        if (r >= 0)
                r = write_json_file(path, spec);
        json_decref(spec);
        return r;
}
#endif

static int proc_start(Runtime *rt, Proc *p) {
        _cleanup_free_ char *pid_path = state_file(rt, "pid", p->seq);
        _cleanup_close_ int process_fd = -EBADF;
        int stdio[3] = {-EBADF, -EBADF, -EBADF};
        const char *console = NULL;
        const char *argv[16];
        char process_arg[32];
        size_t n = 0;
        int r;

        if (!pid_path)
                return -ENOMEM;
        r = proc_wire_stdio(rt, p, stdio);
        if (r < 0)
                return r;
#if HAVE_RUNTIME_IO
        if (p->console)
                console = console_socket_get_path(p->console);
#endif

        if (p->is_init) {
#if HAVE_RUNTIME_IO
                r = init_config_set_console_size(rt, p);
                if (r < 0) {
                        close_many(stdio, 3);
                        return r;
                }
#endif
                argv[n++] = "run";
                argv[n++] = "--detach";
        } else {
                json_t *j = NULL;
                r = oci_process_new(p->config, &j);
#if HAVE_RUNTIME_IO
                if (r >= 0)
                        r = process_json_set_console_size(p, j);
#endif
                if (r >= 0)
                        r = process_fd = json_memfd(j, "oci-process");
                json_decref(j);
                if (r < 0) {
                        close_many(stdio, 3);
                        return r;
                }
                snprintf(process_arg, sizeof(process_arg), "/proc/self/fd/%d", process_fd);
                argv[n++] = "exec";
                argv[n++] = "--detach";
                argv[n++] = "--process";
                argv[n++] = process_arg;
        }
        argv[n++] = "--pid-file";
        argv[n++] = pid_path;
        if (console) {
                argv[n++] = "--console-socket";
                argv[n++] = console;
        }
        if (p->is_init) {
                argv[n++] = "--bundle";
                argv[n++] = rt->bundle;
        }
        argv[n++] = rt->id;
        argv[n] = NULL;

        r = child_spawn(rt, argv, console ? NULL : stdio, process_fd, on_run_done, p, NULL);
        /* The container has its copies now; ours would hide EOF from the client. */
        close_many(stdio, 3);
        if (r < 0)
                return r;
        if (p->is_init)
                rt->oci_created = true;
        if (!p->terminal) {
                close_many(p->stdio, 3);
                for (int i = 0; i < 3; i++)
                        p->stdio[i] = -EBADF;
        }
        p->status = PROC_STARTING;
        return 0;
}

/* ---- the freezer: pause and resume ---- */

static void freezer_sync(Runtime *rt);

/* The freezer has nothing left to run: the state follows the cgroup, and the request waiting for
 * it is answered. */
static void freezer_settle(Runtime *rt) {
        Pending *w;

        if (rt->frozen && rt->state == RUNTIME_RUNNING)
                (void) runtime_set_state(rt, RUNTIME_PAUSED);
        else if (!rt->frozen && rt->state == RUNTIME_PAUSED)
                (void) runtime_set_state(rt, RUNTIME_RUNNING);
        w = TAKE_PTR(rt->freeze_request);
        if (!w)
                return;
        if (w->kind == PENDING_PAUSE ? rt->state == RUNTIME_PAUSED : !rt->frozen)
                (void) reply_empty(w->conn, w->msg);
        else if (rt->freezer_error)
                (void) cxpc_connection_reply_error(
                        w->conn, w->msg, CXPC_ERROR_INTERNAL_ERROR, "%s %s: %s", rt->runtime_bin,
                        w->kind == PENDING_PAUSE ? "pause" : "resume", rt->freezer_error);
        else if (rt->state == RUNTIME_RUNNING)
                /* A kill thawed it again before the pause was answered. */
                (void) cxpc_connection_reply_error(w->conn, w->msg, CXPC_ERROR_INVALID_STATE,
                                                   "container %s was signalled while being paused", rt->id);
        else
                (void) reply_invalid_state(rt, w->conn, w->msg);
        pending_free(w);
}

static void on_freezer_done(Runtime *rt, Child *ch, int code, const char *message) {
        rt->freezer_running = false;
        free(rt->freezer_error);
        rt->freezer_error = NULL;
        if (code == 0)
                rt->frozen = !rt->frozen;
        else {
                log_msg("%s %s %s failed: %s", rt->runtime_bin, rt->frozen ? "resume" : "pause", rt->id,
                        message ?: "unknown error");
                rt->freezer_error = strdup(message ?: "failed");
                /* Not again and again: the next request or stop asks anew. */
                rt->want_frozen = rt->frozen;
        }
        freezer_sync(rt);
}

/* Runs the OCI runtime's pause or resume until the cgroup is what want_frozen says, one invocation
 * at a time: a resume asked for while a pause runs follows it instead of racing it. */
static void freezer_sync(Runtime *rt) {
        const char *argv[] = {rt->want_frozen ? "pause" : "resume", rt->id, NULL};
        int r;

        if (rt->freezer_running)
                return;
        if (rt->frozen != rt->want_frozen && rt->oci_created) {
                r = child_spawn(rt, argv, NULL, -EBADF, on_freezer_done, NULL, NULL);
                if (r >= 0) {
                        rt->freezer_running = true;
                        return;
                }
                log_msg("cannot run %s %s: %s", rt->runtime_bin, argv[0], strerror(-r));
                free(rt->freezer_error);
                rt->freezer_error = strdup(strerror(-r));
                rt->want_frozen = rt->frozen;
        }
        freezer_settle(rt);
}

/* A signal for a paused container takes effect once it is thawed (cgroup v1's freezer holds even
 * SIGKILL back): the signal is queued first, then the container resumes. */
static void freezer_thaw_for_signal(Runtime *rt) {
        if (!rt->want_frozen && !rt->frozen)
                return;
        rt->want_frozen = false;
        freezer_sync(rt);
}

/* ---- cleanup and exit ---- */

static void reply_stop_waiters(Runtime *rt) {
        Pending *list = TAKE_PTR(rt->stop_waiters);
        while (list) {
                Pending *w = list;
                list = w->next;
                (void) reply_empty(w->conn, w->msg);
                pending_free(w);
        }
}

static void on_delete_done(Runtime *rt, Child *ch, int code, const char *message) {
        rt->cleanup_running = false;
        if (code != 0)
                log_msg("%s delete %s failed: %s", rt->runtime_bin, rt->id, message ?: "unknown error");
        rt->oci_created = false;
        reply_stop_waiters(rt);
        runtime_maybe_exit(rt);
}

/* The OCI runtime's delete runs off the client's path: wait replies went out already. */
static void runtime_begin_cleanup(Runtime *rt) {
        const char *argv[] = {"delete", "--force", rt->id, NULL};

        if (rt->cleanup_running)
                return;
        if (!rt->oci_created) {
                reply_stop_waiters(rt);
                return;
        }
        if (child_spawn(rt, argv, NULL, -EBADF, on_delete_done, NULL, NULL) < 0) {
                log_msg("cannot run %s delete", rt->runtime_bin);
                reply_stop_waiters(rt);
                return;
        }
        rt->cleanup_running = true;
}

static bool runtime_busy(Runtime *rt) {
        return rt->cleanup_running || rt->children;
}

static void runtime_maybe_exit(Runtime *rt) {
        if (rt->exit_requested && rt->state == RUNTIME_STOPPED)
                (void) runtime_set_state(rt, RUNTIME_SHUTTING_DOWN);
        if (rt->state == RUNTIME_SHUTTING_DOWN && !runtime_busy(rt))
                (void) sd_event_exit(rt->event, 0);
}

static void runtime_shutdown(Runtime *rt) {
        if (rt->state != RUNTIME_CREATED && rt->state != RUNTIME_STOPPED)
                return;
        (void) runtime_set_state(rt, RUNTIME_SHUTTING_DOWN);
        runtime_maybe_exit(rt);
}

/* ---- request helpers ---- */

static int get_stdio(cxpc_object *m, int stdio[3], cxpc_connection *c) {
        static const char *const keys[3] = {"stdin", "stdout", "stderr"};

        for (int i = 0; i < 3; i++) {
                int r = cxpc_dict_dup_fd(m, keys[i], &stdio[i]);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        close_many(stdio, (size_t) i);
                        for (int k = 0; k < 3; k++)
                                stdio[k] = -EBADF;
                        (void) cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "key %s must be a file descriptor", keys[i]);
                        return r;
                }
        }
        return 0;
}

static int get_id(Runtime *rt, cxpc_connection *c, cxpc_object *m, const char **ret) {
        const char *id;
        int r = cxpc_dict_get_string(m, "id", &id);

        if (r == -ENOENT)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "missing key id"),
                       -EINVAL;
        if (r < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key id must be a string"),
                       -EINVAL;
        if (!*id || strlen(id) > RUNTIME_PROCESS_ID_MAX || strchr(id, '/'))
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "bad process id"),
                       -EINVAL;
        *ret = id;
        return 0;
}

/* Looks up the process named by "id"; replies notFound itself. */
static Proc *get_proc(Runtime *rt, cxpc_connection *c, cxpc_object *m) {
        const char *id;
        Proc *p;

        if (get_id(rt, c, m, &id) < 0)
                return NULL;
        p = proc_find(rt, id);
        if (!p && streq(id, rt->id))
                /* The init process exists from bootstrap on. */
                (void) reply_invalid_state(rt, c, m);
        else if (!p)
                (void) cxpc_connection_reply_error(c, m, CXPC_ERROR_NOT_FOUND, "no process %s", id);
        return p;
}

/* ---- routes ---- */

static int route_create_endpoint(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        _cleanup_(cxpc_listener_unrefp) cxpc_listener *l = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *ep = NULL, *reply = NULL;
        int r;

        if (rt->n_endpoints >= RUNTIME_ENDPOINTS_MAX)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR, "too many endpoints");
        r = cxpc_listener_new_anonymous(rt->event, &l);
        if (r < 0)
                return r;
        r = cxpc_listener_set_router(l, rt->router);
        if (r < 0)
                return r;
        r = cxpc_listener_get_endpoint(l, &ep);
        if (r < 0)
                return r;
        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_dict_set(reply, "endpoint", ep);
        if (r < 0)
                return r;
        rt->endpoints[rt->n_endpoints++] = TAKE_PTR(l);
        return cxpc_connection_reply(c, m, reply);
}

static int strv_from_cxpc(cxpc_object *a, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t n = cxpc_array_get_count(a);

        if (cxpc_object_get_type(a) != CXPC_TYPE_ARRAY || n > PROCESS_ENV_MAX)
                return -EINVAL;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *s;
                if (cxpc_string_get(cxpc_array_get(a, i), &s) < 0 || !strchr(s, '='))
                        return -EINVAL;
                if (!(l[i] = strdup(s)))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int route_bootstrap(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        _cleanup_(process_config_freep) ProcessConfig *pc = NULL;
        _cleanup_(strv_freep) char **env = NULL;
        _cleanup_free_ char *config_path = NULL;
        int stdio[3] = {-EBADF, -EBADF, -EBADF};
        const char *err = NULL;
        cxpc_object *o;
        json_t *spec = NULL;
        Proc *p;
        int r;

        if (rt->state != RUNTIME_CREATED)
                return reply_invalid_state(rt, c, m);

        o = cxpc_dict_get(m, "env");
        if (o && strv_from_cxpc(o, &env) < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key env must be an array of \"KEY=VALUE\" strings");
        o = cxpc_dict_get(m, "networks");
        if (o) {
                cxpc_type t = cxpc_object_get_type(o);
                if (t != CXPC_TYPE_ARRAY && t != CXPC_TYPE_DICTIONARY)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "key networks must be an array or a dictionary");
        }
        if (get_stdio(m, stdio, c) < 0)
                return 0;

        /* The init process's configuration is the container's; copy it so that exec and init
         * share one representation. */
        pc = calloc(1, sizeof(*pc));
        if (!pc) {
                close_many(stdio, 3);
                return -ENOMEM;
        }
        *pc = rt->config->process;
        rt->config->process = (ProcessConfig){};
        r = process_config_merge_env(pc, env);
        if (r >= 0)
                r = process_config_resolve_user(pc, rt->config->rootfs, &err);
        if (r < 0) {
                int ret;
                close_many(stdio, 3);
                if (err && pc->user_name)
                        ret = cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                          "bootstrap: process.user %s: %s", pc->user_name,
                                                          err);
                else
                        ret = cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "bootstrap: %s",
                                                          err ?: strerror(-r));
                rt->config->process = *pc;
                *pc = (ProcessConfig){};
                return ret;
        }
        rt->config->process = *pc;
        *pc = (ProcessConfig){};

        r = oci_spec_new(rt->config, &spec);
        if (r < 0) {
                close_many(stdio, 3);
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "cannot build the OCI configuration: %s", strerror(-r));
        }
        if (asprintf(&config_path, "%s/config.json", rt->bundle) < 0) {
                json_decref(spec);
                close_many(stdio, 3);
                return -ENOMEM;
        }
        r = write_json_file(config_path, spec);
        json_decref(spec);
        if (r < 0) {
                close_many(stdio, 3);
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR, "cannot write %s: %s",
                                                   config_path, strerror(-r));
        }

        r = proc_new(rt, rt->id, NULL, stdio, &p);
        if (r < 0) {
                close_many(stdio, 3);
                return r;
        }
        p->config = NULL; /* init runs from config.json */

        o = cxpc_dict_get(m, "networks");
        if (o) {
                cxpc_object_unref(rt->networks);
                r = cxpc_object_copy(o, &rt->networks);
                if (r < 0)
                        rt->networks = NULL;
        }
        (void) runtime_set_state(rt, RUNTIME_BOOTED);
        return reply_empty(c, m);
}

static int route_start(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        Proc *p;
        int r;

        p = get_proc(rt, c, m);
        if (!p)
                return 0;
        if (p->is_init) {
                if (rt->state != RUNTIME_BOOTED)
                        return reply_invalid_state(rt, c, m);
        } else {
                if (rt->state != RUNTIME_RUNNING)
                        return reply_invalid_state(rt, c, m);
                if (rt->want_frozen)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE,
                                                           "container %s is paused", rt->id);
                if (p->status != PROC_REGISTERED)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE,
                                                           "process %s is %s", p->id,
                                                           proc_status_to_string(p->status));
        }
        r = proc_start(rt, p);
        if (r == -EOPNOTSUPP)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_UNSUPPORTED,
                                                   "terminals are not supported by this runtime build");
        if (r < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR, "cannot start %s: %s",
                                                   p->id, strerror(-r));
        r = pending_add(&p->waiters, PENDING_START, c, m);
        if (r < 0)
                return r;
        p->n_waiters++;
        return 0;
}

static int route_create_process(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        _cleanup_(process_config_freep) ProcessConfig *pc = NULL;
        _cleanup_free_ char *text = NULL;
        int stdio[3] = {-EBADF, -EBADF, -EBADF};
        const char *id, *err = NULL;
        cxpc_object *o;
        json_error_t jerr;
        json_t *j;
        Proc *p;
        int r, k;

        if (get_id(rt, c, m, &id) < 0)
                return 0;
        if (rt->state != RUNTIME_BOOTED && rt->state != RUNTIME_RUNNING)
                return reply_invalid_state(rt, c, m);
        if (rt->want_frozen)
                /* A process started into a frozen cgroup would hang in the OCI runtime. */
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE, "container %s is paused",
                                                   rt->id);
        if (proc_find(rt, id) || streq(id, rt->id))
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_EXISTS, "process %s exists", id);
        o = cxpc_dict_get(m, "processConfig");
        if (!o)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "missing key processConfig");
        if (cxpc_object_get_type(o) != CXPC_TYPE_DICTIONARY)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key processConfig must be a dictionary");
        r = cxpc_object_to_json(o, 0, &text);
        if (r < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "bad processConfig");
        j = json_loads(text, 0, &jerr);
        if (!j)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "bad processConfig");
        r = process_config_from_json(j, &pc, &err);
        if (r >= 0) {
                k = process_config_inherit_security(pc, &rt->config->process, j);
                if (k < 0) {
                        json_decref(j);
                        return k;
                }
        }
        json_decref(j);
        if (r < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "processConfig: %s",
                                                   err ?: strerror(-r));
        r = process_config_resolve_user(pc, rt->config->rootfs, &err);
        if (r < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "processConfig.user %s: %s", pc->user_name ?: "",
                                                   err ?: strerror(-r));
        if (get_stdio(m, stdio, c) < 0)
                return 0;
        r = proc_new(rt, id, pc, stdio, &p);
        if (r < 0) {
                close_many(stdio, 3);
                if (r == -ENOSPC)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE,
                                                           "too many processes");
                return r;
        }
        TAKE_PTR(pc);
        return reply_empty(c, m);
}

static int route_kill(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        cxpc_object *so;
        int64_t num;
        const char *name;
        int sig, r;
        Proc *p;

        p = get_proc(rt, c, m);
        if (!p)
                return 0;
        so = cxpc_dict_get(m, "signal");
        if (!so)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "missing key signal");
        if (cxpc_string_get(so, &name) >= 0)
                sig = signal_from_string(name);
        else if (cxpc_int64_get(so, &num) >= 0)
                sig = num >= 1 && num < SIGRTMIN ? (int) num : -EINVAL;
        else
                sig = -EINVAL;
        if (sig < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key signal must be a signal name (SIGTERM, TERM) or "
                                                   "number (1..%d)",
                                                   SIGRTMIN - 1);
        if (rt->state != RUNTIME_RUNNING && rt->state != RUNTIME_PAUSED && rt->state != RUNTIME_STOPPING)
                return reply_invalid_state(rt, c, m);
        if (p->status != PROC_RUNNING)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE, "process %s is %s", p->id,
                                                   proc_status_to_string(p->status));

        if (p->pidfd >= 0)
                r = (int) syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
        else
                r = kill(p->pid, sig);
        if (r < 0 && errno != ESRCH)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR, "kill %s: %m", p->id);
        freezer_thaw_for_signal(rt);
        if (sig == SIGKILL) {
                if (p->n_waiters >= RUNTIME_WAITERS_MAX)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR,
                                                           "too many waiters");
                r = pending_add(&p->waiters, PENDING_KILL, c, m);
                if (r < 0)
                        return r;
                p->n_waiters++;
                return 0;
        }
        return reply_empty(c, m);
}

static int route_wait(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        Proc *p;
        int r;

        p = get_proc(rt, c, m);
        if (!p)
                return 0;
        if (p->status == PROC_EXITED) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
                r = cxpc_reply_new(&reply);
                if (r < 0)
                        return r;
                r = cxpc_dict_set_int64(reply, "exitCode", p->exit_code);
                if (r >= 0)
                        r = cxpc_dict_set_date(reply, "exitedAt", p->exited_at);
                if (r < 0)
                        return r;
                return cxpc_connection_reply(c, m, reply);
        }
        if (p->status == PROC_REGISTERED && rt->state >= RUNTIME_STOPPING && !p->is_init)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE, "container %s is %s",
                                                   rt->id, runtime_state_to_string(rt->state));
        if (p->n_waiters >= RUNTIME_WAITERS_MAX)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR, "too many waiters");
        r = pending_add(&p->waiters, PENDING_WAIT, c, m);
        if (r < 0)
                return r;
        p->n_waiters++;
        return 0;
}

static int on_stop_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Runtime *rt = userdata;
        Proc *init = proc_init(rt);

        rt->stop_timer = sd_event_source_disable_unref(rt->stop_timer);
        rt->stop_killed = true;
        /* Thaws the cgroup too, so a paused container dies here even if its resume failed. */
        (void) cgroup_kill_all(rt->id);
        if (init && init->status == PROC_RUNNING) {
                if (init->pidfd >= 0)
                        (void) syscall(SYS_pidfd_send_signal, init->pidfd, SIGKILL, NULL, 0);
                else
                        (void) kill(init->pid, SIGKILL);
        }
        return 0;
}

static int route_stop(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        int64_t timeout = RUNTIME_DEFAULT_STOP_TIMEOUT_SEC;
        int sig = SIGTERM, r;
        cxpc_object *opts, *o;
        Proc *init = proc_init(rt);

        opts = cxpc_dict_get(m, "stopOptions");
        if (opts) {
                if (cxpc_object_get_type(opts) != CXPC_TYPE_DICTIONARY)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "key stopOptions must be a dictionary");
                o = cxpc_dict_get(opts, "timeout");
                if (o && ((cxpc_int64_get(o, &timeout) < 0 && cxpc_object_get_type(o) != CXPC_TYPE_DOUBLE) ||
                          timeout < 0 || timeout > RUNTIME_STOP_TIMEOUT_SEC_MAX))
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "stopOptions.timeout must be seconds (0..%d)",
                                                           RUNTIME_STOP_TIMEOUT_SEC_MAX);
                if (o && cxpc_object_get_type(o) == CXPC_TYPE_DOUBLE) {
                        double d;
                        (void) cxpc_double_get(o, &d);
                        if (d < 0 || d > RUNTIME_STOP_TIMEOUT_SEC_MAX)
                                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                                   "bad stopOptions.timeout");
                        timeout = (int64_t) (d * 1000) * -1; /* negative: milliseconds */
                }
                o = cxpc_dict_get(opts, "signal");
                if (o) {
                        const char *name;
                        int64_t num;
                        if (cxpc_string_get(o, &name) >= 0)
                                sig = signal_from_string(name);
                        else if (cxpc_int64_get(o, &num) >= 0)
                                sig = num >= 1 && num < SIGRTMIN ? (int) num : -EINVAL;
                        else
                                sig = -EINVAL;
                        if (sig < 0)
                                return cxpc_connection_reply_error(
                                        c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                        "stopOptions.signal must be a signal name (SIGTERM, TERM) or "
                                        "number (1..%d)",
                                        SIGRTMIN - 1);
                }
        }

        switch (rt->state) {
        case RUNTIME_CREATED:
        case RUNTIME_BOOTED:
                if (init && init->status == PROC_STARTING)
                        break; /* the OCI runtime is starting it: stop once it runs */
                (void) runtime_set_state(rt, RUNTIME_STOPPED);
                if (init && init->status == PROC_REGISTERED)
                        proc_exited(rt, init, 128 + SIGKILL);
                return reply_empty(c, m);
        case RUNTIME_STOPPED:
                if (!rt->cleanup_running)
                        return reply_empty(c, m);
                break;
        case RUNTIME_RUNNING:
        case RUNTIME_PAUSED: {
                uint64_t usec = timeout >= 0 ? (uint64_t) timeout * USEC_PER_SEC
                                             : (uint64_t) (-timeout) * USEC_PER_MSEC;
                (void) runtime_set_state(rt, RUNTIME_STOPPING);
                if (init->pidfd >= 0)
                        r = (int) syscall(SYS_pidfd_send_signal, init->pidfd, sig, NULL, 0);
                else
                        r = kill(init->pid, sig);
                (void) r;
                freezer_thaw_for_signal(rt);
                r = sd_event_add_time_relative(rt->event, &rt->stop_timer, CLOCK_MONOTONIC, usec, 0,
                                               on_stop_timeout, rt);
                if (r < 0)
                        (void) on_stop_timeout(NULL, 0, rt);
                break;
        }
        case RUNTIME_STOPPING:
                break;
        case RUNTIME_SHUTTING_DOWN:
        default:
                return reply_invalid_state(rt, c, m);
        }
        return pending_add(&rt->stop_waiters, PENDING_STOP, c, m);
}

static int route_state(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *snap = NULL, *procs = NULL, *nets = NULL;
        int r;

        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_dict_new(&snap);
        if (r < 0)
                return r;
        r = cxpc_array_new(&procs);
        if (r < 0)
                return r;
        r = cxpc_dict_set_string(snap, "id", rt->id);
        if (r >= 0)
                r = cxpc_dict_set_string(snap, "status", runtime_state_to_string(rt->state));
        if (r < 0)
                return r;
        if (rt->networks)
                r = cxpc_dict_set(snap, "networks", rt->networks);
        else {
                r = cxpc_array_new(&nets);
                if (r >= 0)
                        r = cxpc_dict_set(snap, "networks", nets);
        }
        if (r < 0)
                return r;
        for (Proc *p = rt->procs; p; p = p->next) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *d = NULL;
                r = cxpc_dict_new(&d);
                if (r < 0)
                        return r;
                r = cxpc_dict_set_string(d, "id", p->id);
                if (r >= 0)
                        r = cxpc_dict_set_int64(d, "pid", p->pid);
                if (r >= 0)
                        r = cxpc_dict_set_string(d, "status", proc_status_to_string(p->status));
                if (r >= 0 && p->status == PROC_EXITED) {
                        r = cxpc_dict_set_int64(d, "exitCode", p->exit_code);
                        if (r >= 0)
                                r = cxpc_dict_set_date(d, "exitedAt", p->exited_at);
                }
                if (r >= 0)
                        r = cxpc_array_append(procs, d);
                if (r < 0)
                        return r;
        }
        r = cxpc_dict_set(snap, "processes", procs);
        if (r >= 0)
                r = cxpc_dict_set(reply, "snapshot", snap);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, m, reply);
}

static int route_statistics(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *st = NULL;
        ContainerStatistics s;
        Proc *init = proc_init(rt);
        int r;

        if (rt->state != RUNTIME_RUNNING && rt->state != RUNTIME_PAUSED && rt->state != RUNTIME_STOPPING)
                return reply_invalid_state(rt, c, m);
        r = cgroup_read_statistics(rt->id, init ? init->pid : 0, &s);
        if (r < 0)
                return r;
        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_dict_new(&st);
        if (r < 0)
                return r;
        r = cxpc_dict_set_uint64(st, "cpuUsageNs", s.cpu_usage_ns);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "memoryUsageBytes", s.memory_usage_bytes);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "memoryLimitBytes", s.memory_limit_bytes);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "pidsCurrent", s.pids_current);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "pidsLimit", s.pids_limit);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "blockReadBytes", s.block_read_bytes);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "blockWriteBytes", s.block_write_bytes);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "networkRxBytes", s.network_rx_bytes);
        if (r >= 0)
                r = cxpc_dict_set_uint64(st, "networkTxBytes", s.network_tx_bytes);
        if (r >= 0)
                r = cxpc_dict_set(reply, "statistics", st);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, m, reply);
}

/* The processes of the container's cgroup (not the service, not the OCI runtime: they are outside
 * it), read from /proc. One that exits between the listing and the reading is left out. */
static int route_top(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *procs = NULL;
        _cleanup_free_ pid_t *pids = NULL;
        bool truncated = false;
        size_t n = 0;
        int r;

        if (rt->state != RUNTIME_RUNNING && rt->state != RUNTIME_PAUSED && rt->state != RUNTIME_STOPPING)
                return reply_invalid_state(rt, c, m);
        pids = calloc(PROC_TOP_PROCESSES_MAX, sizeof *pids);
        if (!pids)
                return -ENOMEM;
        r = cgroup_list_pids(rt->id, pids, PROC_TOP_PROCESSES_MAX, &n, &truncated);
        if (r < 0)
                return cxpc_connection_reply_error(c, m, cxpc_error_code_from_errno(-r),
                                                   "reading the processes of cgroup %s: %s", rt->id,
                                                   strerror(-r));
        if (truncated)
                log_msg("%s: top lists the first %u processes only", rt->id, PROC_TOP_PROCESSES_MAX);
        r = cxpc_array_new(&procs);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *d = NULL;
                char state[2];
                ProcInfo info;

                r = proc_info_read(pids[i], &info);
                if (r == -ESRCH)
                        continue;
                if (r < 0) {
                        log_msg("%s: reading /proc/%d: %s", rt->id, (int) pids[i], strerror(-r));
                        continue;
                }
                state[0] = info.state > ' ' && info.state < 0x7f ? info.state : '?';
                state[1] = 0;
                r = cxpc_dict_new(&d);
                if (r >= 0)
                        r = cxpc_dict_set_int64(d, "pid", info.pid);
                if (r >= 0)
                        r = cxpc_dict_set_int64(d, "containerPid", info.ns_pid);
                if (r >= 0)
                        r = cxpc_dict_set_int64(d, "ppid", info.ppid);
                if (r >= 0)
                        r = cxpc_dict_set_int64(d, "uid", info.uid);
                if (r >= 0)
                        r = cxpc_dict_set_string(d, "state", state);
                if (r >= 0)
                        r = cxpc_dict_set_date(d, "startedAt", info.started_at_ns);
                if (r >= 0)
                        r = cxpc_dict_set_uint64(d, "cpuTimeNs", info.cpu_time_ns);
                if (r >= 0)
                        r = cxpc_dict_set_string(d, "command", info.command);
                if (r >= 0)
                        r = cxpc_array_append(procs, d);
                if (r < 0)
                        return r;
        }
        r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_dict_set(reply, "processes", procs);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, m, reply);
}

static int route_resize(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        int64_t w, h;
        Proc *p;

        p = get_proc(rt, c, m);
        if (!p)
                return 0;
        if (cxpc_dict_get_int64(m, "width", &w) < 0 || cxpc_dict_get_int64(m, "height", &h) < 0 || w <= 0 ||
            h <= 0 || w > UINT16_MAX || h > UINT16_MAX)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "width and height must be integers in 1..65535");
        if (!p->terminal)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE,
                                                   "process %s has no terminal", p->id);
#if HAVE_RUNTIME_IO
        if (p->status == PROC_EXITED)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE, "process %s is exited",
                                                   p->id);
        p->width = (unsigned) w;
        p->height = (unsigned) h;
        if (p->pty) {
                int r = pty_relay_resize(p->pty, (unsigned) w, (unsigned) h);
                if (r < 0)
                        return cxpc_connection_reply_error(c, m, cxpc_error_code_from_errno(-r),
                                                           "resize %s: %s", p->id, strerror(-r));
        }
        return reply_empty(c, m);
#else
        return cxpc_connection_reply_error(c, m, CXPC_ERROR_UNSUPPORTED, "terminals are not supported yet");
#endif
}

#if HAVE_RUNTIME_IO
typedef struct IoRequest {
        Runtime *rt;
        cxpc_connection *conn;
        cxpc_object *msg;
        int netns_fd;
        char *root;
} IoRequest;

static IoRequest *io_request_free(IoRequest *q) {
        if (!q)
                return NULL;
        cxpc_connection_unref(q->conn);
        cxpc_object_unref(q->msg);
        safe_close(q->netns_fd);
        free(q->root);
        free(q);
        return NULL;
}

static IoRequest *io_request_new(Runtime *rt, cxpc_connection *c, cxpc_object *m) {
        IoRequest *q = calloc(1, sizeof(*q));
        if (!q)
                return NULL;
        *q = (IoRequest){
                .rt = rt, .conn = cxpc_connection_ref(c), .msg = cxpc_object_ref(m), .netns_fd = -EBADF};
        return q;
}

/* The copy refuses entries and paths that would leave the root with EPERM: the request asked
 * for something no container path can be, which is an invalid argument, not an internal error. */
static cxpc_error_code copy_error_code(int error) {
        if (error == -EPERM)
                return CXPC_ERROR_INVALID_ARGUMENT;
        return cxpc_error_code_from_errno(-error);
}

/* Whether the `..` components of path climb above the root ("/../x", "a/../../x"). Such a path
 * would stay inside the root anyway (the copy chroots), but it names nothing inside it. */
static bool path_leaves_root(const char *path) {
        long depth = 0;

        for (const char *s = path; *s;) {
                size_t n = strcspn(s, "/");
                if (n == 2 && s[0] == '.' && s[1] == '.') {
                        if (--depth < 0)
                                return true;
                } else if (n > 0 && !(n == 1 && s[0] == '.'))
                        depth++;
                s += n;
                s += strspn(s, "/");
        }
        return false;
}

static void on_copy_done(CopyJob *job, int error, const char *message, void *userdata) {
        IoRequest *q = userdata;

        if (error < 0)
                (void) cxpc_connection_reply_error(q->conn, q->msg, copy_error_code(error), "%s: %s",
                                                   cxpc_message_get_route(q->msg) ?: "copy",
                                                   message && *message ? message : strerror(-error));
        else
                (void) reply_empty(q->conn, q->msg);
        copy_job_free(job);
        io_request_free(q);
}

static int route_copy(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        bool in = streq_ptr(cxpc_message_get_route(m), RUNTIME_ROUTE_PREFIX "copyIn");
        const char *path;
        int64_t mode = 0;
        bool parents = false;
        _cleanup_close_ int fd = -EBADF;
        CopyJob *job = NULL;
        IoRequest *q;
        Proc *init = proc_init(rt);
        int r;

        if (rt->state == RUNTIME_SHUTTING_DOWN || rt->state == RUNTIME_STOPPING)
                return reply_invalid_state(rt, c, m);
        r = cxpc_dict_get_string(m, in ? "destinationPath" : "sourcePath", &path);
        if (r == -ENOENT)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "missing key %s",
                                                   in ? "destinationPath" : "sourcePath");
        if (r < 0 || !*path)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key %s must be a non-empty string",
                                                   in ? "destinationPath" : "sourcePath");
        if (path_leaves_root(path))
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "%s %s leaves the container's root",
                                                   in ? "destinationPath" : "sourcePath", path);
        r = cxpc_dict_get_int64(m, "fileMode", &mode);
        if ((r < 0 && r != -ENOENT) || mode < 0 || mode > 07777)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key fileMode must be an integer in 0..07777");
        r = cxpc_dict_get_bool(m, "createParents", &parents);
        if (r < 0 && r != -ENOENT)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key createParents must be a bool");
        r = cxpc_dict_dup_fd(m, "fd", &fd);
        if (r == -ENOENT)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "missing key fd");
        if (r < 0)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key fd must be a file descriptor");

        q = io_request_new(rt, c, m);
        if (!q)
                return -ENOMEM;
        /* A running container's root as its processes see it (with its mounts); else the rootfs. */
        if (init && init->status == PROC_RUNNING && init->pid > 0)
                r = asprintf(&q->root, "/proc/%d/root", (int) init->pid);
        else
                r = asprintf(&q->root, "%s", rt->config->rootfs);
        if (r < 0) {
                io_request_free(q);
                return -ENOMEM;
        }
        CopyOptions opts = {
                .root = q->root, .path = path, .file_mode = (uint32_t) mode, .create_parents = parents};
        r = copy_job_new(rt->event, in ? COPY_IN : COPY_OUT, &opts, fd, on_copy_done, q, &job);
        if (r < 0) {
                io_request_free(q);
                return cxpc_connection_reply_error(c, m, copy_error_code(r), "copy: %s", strerror(-r));
        }
        return 0;
}

static void on_dial_done(DialJob *job, int error, int fd, void *userdata) {
        IoRequest *q = userdata;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;

        if (error < 0)
                (void) cxpc_connection_reply_error(q->conn, q->msg, cxpc_error_code_from_errno(-error),
                                                   "dial: %s", strerror(-error));
        else if (cxpc_reply_new(&reply) < 0 || cxpc_dict_set_fd(reply, "fd", fd) < 0)
                (void) cxpc_connection_reply_error(q->conn, q->msg, CXPC_ERROR_INTERNAL_ERROR,
                                                   "out of memory");
        else
                (void) cxpc_connection_reply(q->conn, q->msg, reply);
        safe_close(fd);
        dial_job_free(job);
        io_request_free(q);
}

static int route_dial(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        Proc *init = proc_init(rt);
        DialJob *job = NULL;
        char path[64];
        int64_t port;
        IoRequest *q;
        int r;

        r = cxpc_dict_get_int64(m, "port", &port);
        if (r == -ENOENT)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT, "missing key port");
        if (r < 0 || port < 1 || port > 65535)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "key port must be an integer in 1..65535");
        if (rt->state != RUNTIME_RUNNING || !init || init->status != PROC_RUNNING)
                return reply_invalid_state(rt, c, m);
        q = io_request_new(rt, c, m);
        if (!q)
                return -ENOMEM;
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int) init->pid);
        q->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (q->netns_fd < 0) {
                r = negative_errno();
                io_request_free(q);
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INTERNAL_ERROR, "%s: %s", path,
                                                   strerror(-r));
        }
        r = dial_job_new(rt->event, q->netns_fd, (uint16_t) port, 0, on_dial_done, q, &job);
        if (r < 0) {
                io_request_free(q);
                return cxpc_connection_reply_error(c, m, cxpc_error_code_from_errno(-r), "dial: %s",
                                                   strerror(-r));
        }
        return 0;
}
#endif

static _unused_ int route_unsupported(cxpc_connection *c, cxpc_object *m, void *userdata) {
        return cxpc_connection_reply_error(c, m, CXPC_ERROR_UNSUPPORTED, "%s is not supported yet",
                                           cxpc_message_get_route(m) ?: "route");
}

static int route_shutdown(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        int r;

        if (rt->state != RUNTIME_CREATED && rt->state != RUNTIME_STOPPED)
                return reply_invalid_state(rt, c, m);
        r = reply_empty(c, m);
        (void) cxpc_connection_flush(c, USEC_PER_SEC);
        runtime_shutdown(rt);
        return r;
}

/* ---- update: the running container's resource limits ---- */

static void on_update_done(Runtime *rt, Child *ch, int code, const char *message) {
        Pending *w = TAKE_PTR(ch->request);
        int64_t pids;
        int r;

        if (code != 0)
                (void) cxpc_connection_reply_error(w->conn, w->msg, CXPC_ERROR_INTERNAL_ERROR,
                                                   "%s update: %s", rt->runtime_bin, message ?: "failed");
        else if (cxpc_dict_get_int64(w->msg, "pids", &pids) >= 0 && pids == 0 &&
                 (r = cgroup_pids_unlimit(rt->id)) < 0)
                (void) cxpc_connection_reply_error(w->conn, w->msg, CXPC_ERROR_INTERNAL_ERROR,
                                                   "lifting the process limit: %s", strerror(-r));
        else
                (void) reply_empty(w->conn, w->msg);
        pending_free(w);
}

/* {id, cpus?, memoryBytes?, pids?}: the OCI runtime's update, answered when it has run. pids 0
 * lifts the limit. */
static int route_update(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        char period[32], quota[32], memory[32], pids[32];
        const char *argv[12], *id;
        size_t n = 0;
        Pending *request = NULL;
        double cpus;
        int64_t v;
        int r;

        if (get_id(rt, c, m, &id) < 0)
                return 0;
        if (!streq(id, rt->id))
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_NOT_FOUND, "no container %s here", id);
        if (rt->state != RUNTIME_RUNNING && rt->state != RUNTIME_PAUSED)
                return reply_invalid_state(rt, c, m);
        argv[n++] = "update";
        if (cxpc_dict_get_double(m, "cpus", &cpus) >= 0) {
                if (!(cpus > 0) || cpus > CONTAINER_CPUS_MAX)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "cpus must be above 0 and at most %u",
                                                           CONTAINER_CPUS_MAX);
                snprintf(period, sizeof period, "%u", OCI_CPU_PERIOD_USEC);
                snprintf(quota, sizeof quota, "%" PRIi64, oci_cpu_quota_usec(cpus));
                argv[n++] = "--cpu-period";
                argv[n++] = period;
                argv[n++] = "--cpu-quota";
                argv[n++] = quota;
        }
        if (cxpc_dict_get_int64(m, "memoryBytes", &v) >= 0) {
                if (v < (int64_t) CONTAINER_MEMORY_MIN)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "memoryBytes must be at least %u",
                                                           CONTAINER_MEMORY_MIN);
                snprintf(memory, sizeof memory, "%" PRIi64, v);
                argv[n++] = "--memory";
                argv[n++] = memory;
        }
        if (cxpc_dict_get_int64(m, "pids", &v) >= 0) {
                if (v < 0)
                        return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "pids must be 0 (no limit) or more");
                if (v > 0) { /* 0: on_update_done() lifts it */
                        snprintf(pids, sizeof pids, "%" PRIi64, v);
                        argv[n++] = "--pids-limit";
                        argv[n++] = pids;
                }
        }
        if (n == 1 && !cxpc_dict_get(m, "pids"))
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "nothing to update: give cpus, memoryBytes or pids");
        argv[n++] = rt->id;
        argv[n] = NULL;

        r = pending_add(&request, PENDING_UPDATE, c, m);
        if (r < 0)
                return r;
        r = child_spawn(rt, argv, NULL, -EBADF, on_update_done, NULL, request);
        if (r < 0) {
                pending_free(request);
                return r;
        }
        return 0; /* answered when it has run */
}

/* ---- pause and resume: the OCI runtime freezes and thaws the container's cgroup ---- */

static int freeze_request_check(Runtime *rt, cxpc_connection *c, cxpc_object *m) {
        const char *id;

        if (get_id(rt, c, m, &id) < 0)
                return -EINVAL;
        if (!streq(id, rt->id))
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_NOT_FOUND, "no container %s here", id),
                       -ENOENT;
        if (rt->freeze_request)
                return cxpc_connection_reply_error(
                               c, m, CXPC_ERROR_INVALID_STATE, "container %s is being %s", rt->id,
                               rt->freeze_request->kind == PENDING_PAUSE ? "paused" : "unpaused"),
                       -EBUSY;
        return 0;
}

/* {id}: answered once the container is frozen. */
static int route_pause(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        int r;

        if (freeze_request_check(rt, c, m) < 0)
                return 0;
        if (rt->state == RUNTIME_PAUSED)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is already paused", rt->id);
        if (rt->state != RUNTIME_RUNNING)
                return reply_invalid_state(rt, c, m);
        r = pending_add(&rt->freeze_request, PENDING_PAUSE, c, m);
        if (r < 0)
                return r;
        rt->want_frozen = true;
        freezer_sync(rt);
        return 0;
}

/* {id}: answered once the container is thawed. */
static int route_resume(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Runtime *rt = userdata;
        int r;

        if (freeze_request_check(rt, c, m) < 0)
                return 0;
        if (rt->state != RUNTIME_PAUSED)
                return cxpc_connection_reply_error(c, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is not paused", rt->id);
        r = pending_add(&rt->freeze_request, PENDING_RESUME, c, m);
        if (r < 0)
                return r;
        rt->want_frozen = false;
        freezer_sync(rt);
        return 0;
}

static const struct {
        const char *name;
        cxpc_route_handler_t handler;
} route_table[] = {
        {"createEndpoint", route_create_endpoint},
        {"bootstrap", route_bootstrap},
        {"start", route_start},
        {"createProcess", route_create_process},
        {"kill", route_kill},
        {"resize", route_resize},
        {"update", route_update},
        {"pause", route_pause},
        {"resume", route_resume},
        {"wait", route_wait},
        {"stop", route_stop},
        {"state", route_state},
        {"statistics", route_statistics},
        {"top", route_top},
#if HAVE_RUNTIME_IO
        {"copyIn", route_copy},
        {"copyOut", route_copy},
        {"dial", route_dial},
#else
        {"copyIn", route_unsupported},
        {"copyOut", route_unsupported},
        {"dial", route_unsupported},
#endif
        {"shutdown", route_shutdown},
};

/* ---- setup ---- */

static void on_first_disconnect(cxpc_connection *c, void *userdata) {
        Runtime *rt = userdata;

        /* Whoever launched us is gone; with nothing running there is nothing left to own. */
        if (rt->state == RUNTIME_CREATED || rt->state == RUNTIME_STOPPED)
                runtime_shutdown(rt);
}

static int on_term(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Runtime *rt = userdata;
        Proc *init = proc_init(rt);

        /* Asked to go away: take the container down with us. */
        rt->exit_requested = true;
        if (init && init->status == PROC_RUNNING)
                (void) on_stop_timeout(NULL, 0, rt);
        freezer_thaw_for_signal(rt);
        if (rt->state == RUNTIME_CREATED || rt->state == RUNTIME_BOOTED)
                (void) runtime_set_state(rt, RUNTIME_STOPPED);
        runtime_maybe_exit(rt);
        return 0;
}

static int setup_mount_namespace(void) {
        /* crun refuses hybrid cgroups when the v2 side has controllers: hide it, privately. */
        if (unshare(CLONE_NEWNS) < 0)
                return negative_errno();
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return negative_errno();
        if (umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                return negative_errno();
        return 0;
}

/* The reaper: a child that holds the read end of a pipe. If the service dies without saying
 * goodbye (even by SIGKILL), the pipe closes and the reaper kills the container's cgroup and
 * has the OCI runtime delete it, so no container process outlives its service. */
static _noreturn_ void reaper_main(Runtime *rt, int fd) {
        char c = 0;
        ssize_t n;

        prctl(PR_SET_NAME, "runtime-reaper");
        do
                n = read(fd, &c, 1);
        while (n < 0 && errno == EINTR);
        if (n == 1 && c == 'q')
                _exit(EXIT_SUCCESS);

        /* Waits for the exits themselves (pidfds, cgroup.events), bounded. */
        (void) cgroup_kill_all_wait(rt->id, RUNTIME_REAPER_KILL_TIMEOUT_USEC);
        const char *argv[] = {"delete", "--force", rt->id, NULL};
        (void) oci_runtime_run_sync(rt->runtime_bin, rt->crun_root, argv);
        {
                char *cfg = NULL;
                if (asprintf(&cfg, "%s/config.json", rt->bundle) >= 0)
                        (void) unlink(cfg);
                free(cfg);
        }
        (void) unlink(rt->socket_path);
        (void) rmdir(rt->crun_root);
        (void) rmdir(rt->state_dir);
        _exit(EXIT_SUCCESS);
}

static int reaper_start(Runtime *rt) {
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                close_many(p, 2);
                return negative_errno();
        }
        if (pid == 0) {
                sigset_t ss;
                /* Keep only the pipe: a copy of the first connection's socket here would hide the
                 * service's death from its peer. */
                if (dup2(p[0], 3) < 0)
                        _exit(EXIT_FAILURE);
                p[0] = 3;
                (void) close_range(4, ~0u, 0);
                sigemptyset(&ss);
                sigprocmask(SIG_SETMASK, &ss, NULL);
                /* Ignore the signals a terminal or supervisor sends the group; only the pipe
                 * decides. */
                signal(SIGINT, SIG_IGN);
                signal(SIGTERM, SIG_IGN);
                signal(SIGHUP, SIG_IGN);
                reaper_main(rt, p[0]);
        }
        safe_close(p[0]);
        rt->reaper_pid = pid;
        rt->reaper_fd = p[1];
        return 0;
}

static void reaper_stop(Runtime *rt) {
        if (rt->reaper_fd >= 0) {
                (void) write(rt->reaper_fd, "q", 1);
                rt->reaper_fd = safe_close(rt->reaper_fd);
        }
        if (rt->reaper_pid > 0) {
                (void) waitpid(rt->reaper_pid, NULL, 0);
                rt->reaper_pid = 0;
        }
}

static int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

static void runtime_free(Runtime *rt) {
        for (Proc *p = rt->procs, *n; p; p = n) {
                n = p->next;
                proc_free(p);
        }
        for (Child *ch = rt->children, *n; ch; ch = n) {
                n = ch->next;
                safe_close(ch->inv.log_fd);
                pending_free(ch->request);
                free(ch);
        }
        for (Pending *w = rt->stop_waiters, *n; w; w = n) {
                n = w->next;
                pending_free(w);
        }
        pending_free(rt->freeze_request);
        free(rt->freezer_error);
        sd_event_source_disable_unref(rt->stop_timer);
        for (size_t i = 0; i < rt->n_endpoints; i++) {
                cxpc_listener_close(rt->endpoints[i]);
                cxpc_listener_unref(rt->endpoints[i]);
        }
        if (rt->listener) {
                cxpc_listener_close(rt->listener);
                cxpc_listener_unref(rt->listener);
        }
        cxpc_connection_close_unref(rt->first);
        cxpc_router_unref(rt->router);
        cxpc_object_unref(rt->networks);
        container_config_free(rt->config);
        safe_close(rt->log_fd);
#if HAVE_RUNTIME_IO
        stdio_log_unref(rt->stdio_log);
#endif
        sd_event_unref(rt->event);
        free(rt->id);
        free(rt->bundle);
        free(rt->run_dir);
        free(rt->runtime_bin);
        free(rt->state_dir);
        free(rt->crun_root);
        free(rt->socket_path);
}

static void help(void) {
        printf("container-runtime --id ID --root BUNDLE_DIR [--run-dir DIR] [--runtime crun|runc] "
               "[--listen-fd N] [--runtime-exe-fd N]\n"
               "Serves the runtime/* routes for one container (see docs/runtime.md).\n");
}

static bool id_valid(const char *id) {
        if (!id || !*id || strlen(id) > 128)
                return false;
        for (const char *s = id; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '-' || *s == '_' || *s == '.'))
                        return false;
        return id[0] != '.';
}

static char *find_runtime(const char *name) {
        char *p = NULL;

        if (strchr(name, '/'))
                return access(name, X_OK) == 0 ? realpath(name, NULL) : NULL;
        return oci_runtime_lookup(name, &p) >= 0 ? p : NULL;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"help", no_argument, NULL, 'h'},
                {"id", required_argument, NULL, 'i'},
                {"root", required_argument, NULL, 'r'},
                {"run-dir", required_argument, NULL, 'R'},
                {"runtime", required_argument, NULL, 'o'},
                {"listen-fd", required_argument, NULL, 'l'},
                {"runtime-exe-fd", required_argument, NULL, 'x'},
                {},
        };
        Runtime rt = {.reaper_fd = -EBADF, .log_fd = -EBADF, .state = RUNTIME_CREATED};
        const char *runtime_name = "crun", *err = NULL;
        _cleanup_free_ char *log_path = NULL;
        int listen_fd = -EBADF, c, r;
        sigset_t ss;

        /* One arena keeps the service small; it is single-threaded anyway. */
        mallopt(M_ARENA_MAX, 1);

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case 'i':
                        rt.id = strdup(optarg);
                        break;
                case 'r':
                        rt.bundle = realpath(optarg, NULL);
                        if (!rt.bundle) {
                                log_msg("bundle %s: %m", optarg);
                                return EXIT_FAILURE;
                        }
                        break;
                case 'R':
                        rt.run_dir = strdup(optarg);
                        break;
                case 'o':
                        runtime_name = optarg;
                        break;
                case 'l': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v < 0 || v > INT32_MAX) {
                                log_msg("bad --listen-fd %s", optarg);
                                return EXIT_FAILURE;
                        }
                        listen_fd = (int) v;
                        break;
                }
                case 'x': {
                        /* The API server's sealed copy of the OCI runtime's binary (sealed-exe.h).
                         * Optional: anything wrong with it and each call makes its own copy. */
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        int fd = (int) v;
                        if (*end || v < 3 || v > INT32_MAX || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                                log_msg("ignoring --runtime-exe-fd %s", optarg);
                        else if ((r = sealed_exe_check(fd)) < 0) {
                                log_msg("ignoring --runtime-exe-fd %s: %s", optarg, strerror(-r));
                                safe_close(fd);
                        } else
                                oci_runtime_set_exe_fd(fd);
                        break;
                }
                default:
                        return EXIT_FAILURE;
                }
        if (!id_valid(rt.id) || !rt.bundle) {
                log_msg("--id (letters, digits, '-', '_', '.') and --root are required");
                return EXIT_FAILURE;
        }
        if (listen_fd >= 0 && fcntl(listen_fd, F_SETFD, FD_CLOEXEC) < 0) {
                log_msg("--listen-fd %d: %m", listen_fd);
                return EXIT_FAILURE;
        }
        if (!rt.run_dir)
                rt.run_dir = strdup(getenv("CONTAINER_RUN_DIR") ?: RUNTIME_DEFAULT_RUN_DIR);
        if (!rt.run_dir)
                return EXIT_FAILURE;
        /* Every path the OCI runtime gets must be absolute: crun resolves --root and --pid-file
         * after changing into the bundle, runc relative to our directory. */
        if (rt.run_dir[0] != '/') {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                char *abs = NULL;
                if (!cwd || asprintf(&abs, "%s/%s", cwd, rt.run_dir) < 0) {
                        log_msg("cannot make --run-dir %s absolute", rt.run_dir);
                        return EXIT_FAILURE;
                }
                free(rt.run_dir);
                rt.run_dir = abs;
        }
        rt.runtime_bin = find_runtime(runtime_name);
        if (!rt.runtime_bin) {
                log_msg("OCI runtime %s not found", runtime_name);
                return EXIT_FAILURE;
        }
        if (asprintf(&rt.state_dir, "%s/runtime/%s.d", rt.run_dir, rt.id) < 0 ||
            asprintf(&rt.crun_root, "%s/oci", rt.state_dir) < 0 ||
            asprintf(&rt.socket_path, "%s/runtime/%s.sock", rt.run_dir, rt.id) < 0 ||
            asprintf(&log_path, "%s/container.log", rt.bundle) < 0)
                return EXIT_FAILURE;

        r = container_config_load(rt.bundle, &rt.config, &err);
        if (r < 0) {
                log_msg("%s/container.json: %s (%s)", rt.bundle, err ?: "invalid", strerror(-r));
                return EXIT_FAILURE;
        }
        if (rt.config->id && !streq(rt.config->id, rt.id)) {
                log_msg("container.json has id %s, not %s", rt.config->id, rt.id);
                return EXIT_FAILURE;
        }

        r = mkdir_p(rt.crun_root, 0700);
        if (r < 0) {
                log_msg("cannot create %s: %s", rt.crun_root, strerror(-r));
                return EXIT_FAILURE;
        }
        if (streq(rt.config->logging_driver, "file")) {
#if HAVE_RUNTIME_IO
                r = stdio_log_open(log_path, &rt.stdio_log);
                if (r < 0)
                        log_msg("cannot open %s: %s", log_path, strerror(-r));
#else
                rt.log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                if (rt.log_fd < 0)
                        log_msg("cannot open %s: %m", log_path);
#endif
        }

        /* Only crun needs the v2 side of the hybrid layout hidden; runc handles it (and creates its
         * cgroup there too, which its delete removes). */
        if (strstr(strrchr(rt.runtime_bin, '/') ? strrchr(rt.runtime_bin, '/') + 1 : rt.runtime_bin,
                   "crun")) {
                r = setup_mount_namespace();
                if (r < 0) {
                        log_msg("cannot set up a private mount namespace: %s", strerror(-r));
                        return EXIT_FAILURE;
                }
        }
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
                log_msg("cannot become a subreaper: %m");
                return EXIT_FAILURE;
        }
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigprocmask(SIG_BLOCK, &ss, NULL);

        r = reaper_start(&rt);
        if (r < 0) {
                log_msg("cannot start the reaper: %s", strerror(-r));
                return EXIT_FAILURE;
        }

        r = sd_event_new(&rt.event);
        if (r >= 0)
                r = sd_event_add_signal(rt.event, NULL, SIGCHLD, on_sigchld, &rt);
        if (r >= 0)
                r = sd_event_add_signal(rt.event, NULL, SIGTERM, on_term, &rt);
        if (r >= 0)
                r = sd_event_add_signal(rt.event, NULL, SIGINT, on_term, &rt);
        if (r >= 0)
                r = cxpc_router_new(&rt.router);
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(route_table); i++) {
                char name[64];
                snprintf(name, sizeof(name), RUNTIME_ROUTE_PREFIX "%s", route_table[i].name);
                r = cxpc_router_add(rt.router, name, route_table[i].handler, &rt);
        }
        if (r < 0) {
                log_msg("setup failed: %s", strerror(-r));
                goto finish;
        }

        r = cxpc_listener_new_for_path(rt.event, rt.socket_path, &rt.listener);
        if (r >= 0)
                r = cxpc_listener_set_router(rt.listener, rt.router);
        if (r < 0) {
                log_msg("cannot listen on %s: %s", rt.socket_path, strerror(-r));
                goto finish;
        }
        if (listen_fd >= 0) {
                r = cxpc_connection_new_from_fd(listen_fd, &rt.first);
                if (r >= 0)
                        r = cxpc_connection_attach_event(rt.first, rt.event, 0);
                if (r >= 0)
                        r = cxpc_connection_set_router(rt.first, rt.router);
                if (r >= 0)
                        r = cxpc_connection_add_disconnect_handler(rt.first, on_first_disconnect, &rt);
                if (r < 0) {
                        log_msg("cannot serve --listen-fd: %s", strerror(-r));
                        goto finish;
                }
        }

        r = sd_event_loop(rt.event);
        if (r < 0)
                log_msg("event loop failed: %s", strerror(-r));

finish:
        /* Never leave a container behind: if we got here in an odd state, clean up synchronously. */
        if (rt.state != RUNTIME_SHUTTING_DOWN || rt.oci_created) {
                Proc *init = proc_init(&rt);
                if (init && init->status == PROC_RUNNING)
                        (void) cgroup_kill_all(rt.id);
                if (rt.oci_created) {
                        const char *dargv[] = {"delete", "--force", rt.id, NULL};
                        (void) oci_runtime_run_sync(rt.runtime_bin, rt.crun_root, dargv);
                }
        }
        if (rt.listener)
                cxpc_listener_close(rt.listener);
        reaper_stop(&rt);
        {
                _cleanup_free_ char *cfg = NULL;
                if (asprintf(&cfg, "%s/config.json", rt.bundle) >= 0)
                        (void) unlink(cfg);
        }
        (void) rmdir(rt.crun_root);
        (void) rmdir(rt.state_dir);
        runtime_free(&rt);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
