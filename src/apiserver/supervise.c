/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runtime services: launching, exit tracking, re-attaching after a restart. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "apiserver.h"

/* fd number of the first connection in the runtime service (--listen-fd). */
#define RUNTIME_LISTEN_FD 3
#define RUNTIME_EXE_FD    4 /* the sealed copy of the OCI runtime (oci-exe-cache.c) */

static void on_runtime_disconnect(cxpc_connection *conn, void *userdata) {
        Container *c = userdata;

        /* The retiring service exited: its socket name is free, parked starts can go on. */
        if (c->retiring && runtime_client_get_connection(c->retiring) == conn) {
                c->retiring_gone = true;
                container_resume_starts(c);
        }
        container_unref(c);
}

static int watch_disconnect(Container *c, RuntimeClient *rc) {
        int r;

        r = cxpc_connection_add_disconnect_handler(runtime_client_get_connection(rc), on_runtime_disconnect,
                                                   c);
        if (r >= 0)
                container_ref(c);
        return r;
}

/* posix_spawn (a vfork, not a copy of our page tables) of container-runtime with the socket as its
 * first connection on RUNTIME_LISTEN_FD, in its own session (it must outlive us) with the default
 * signal state. */
static int spawn_runtime(Container *c, const char *bundle, int sock, int devnull, int logfd, int exe_fd,
                         pid_t *ret) {
        char fdbuf[16], exe_fdbuf[16];
        const char *argv[] = {
                "container-runtime",
                "--id",
                c->id,
                "--root",
                bundle,
                "--run-dir",
                c->manager->run_dir,
                "--runtime",
                container_oci_runtime(c),
                "--listen-fd",
                fdbuf,
                exe_fd >= 0 ? "--runtime-exe-fd" : NULL,
                exe_fdbuf,
                NULL,
        };
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, dfl;
        int r;

        (void) snprintf(fdbuf, sizeof fdbuf, "%d", RUNTIME_LISTEN_FD);
        (void) snprintf(exe_fdbuf, sizeof exe_fdbuf, "%d", RUNTIME_EXE_FD);
        sigemptyset(&none);
        sigemptyset(&dfl);
        sigaddset(&dfl, SIGPIPE); /* we ignore it; an exec keeps ignored signals ignored */
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        r = posix_spawnattr_init(&attr);
        if (r != 0) {
                posix_spawn_file_actions_destroy(&fa);
                return -r;
        }
        /* sock, devnull and logfd are >= 3 (0-2 are open), so the order cannot clobber one of them.
         * dup2 onto the same number clears FD_CLOEXEC (glibc >= 2.29, POSIX 2024). */
        if ((r = posix_spawn_file_actions_adddup2(&fa, devnull, STDIN_FILENO)) == 0 &&
            (r = posix_spawn_file_actions_adddup2(&fa, logfd, STDOUT_FILENO)) == 0 &&
            (r = posix_spawn_file_actions_adddup2(&fa, logfd, STDERR_FILENO)) == 0 &&
            (r = posix_spawn_file_actions_adddup2(&fa, sock, RUNTIME_LISTEN_FD)) == 0 &&
            (exe_fd < 0 || (r = posix_spawn_file_actions_adddup2(&fa, exe_fd, RUNTIME_EXE_FD)) == 0) &&
            (r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
                                                         POSIX_SPAWN_SETSIGDEF)) == 0 &&
            (r = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
            (r = posix_spawnattr_setsigdefault(&attr, &dfl)) == 0)
                r = posix_spawn(ret, c->manager->runtime_path, &fa, &attr, (char *const *) argv, environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        return -r;
}

int container_spawn_runtime(Container *c) {
        _cleanup_free_ char *bundle = container_bundle_path(c), *logpath = NULL;
        _cleanup_close_ int devnull = -EBADF, logfd = -EBADF, ours = -EBADF, theirs = -EBADF;
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        RuntimeClient *rc = NULL;
        int sv[2], r;
        pid_t pid;

        assert(!c->runtime);
        if (!bundle || asprintf(&logpath, "%s/runtime.log", bundle) < 0)
                return -ENOMEM;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return negative_errno();
        ours = sv[0];
        theirs = sv[1];
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0)
                return negative_errno();
        /* Its diagnostics: runtime.log in the bundle, or for a --rm container (whose bundle goes when
         * it exits) our own stderr, where they outlive it. */
        if (container_is_kept(c))
                logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
        else
                logfd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        if (logfd < 0)
                return negative_errno();

        /* Without a copy (unreadable binary, no memory) the service makes its own per call. */
        int exe_fd = manager_oci_exe_fd(c->manager, container_oci_runtime(c));
        if (exe_fd < 0)
                fprintf(stderr, "container-apiserver: no sealed copy of OCI runtime %s: %s\n",
                        container_oci_runtime(c), strerror(-exe_fd));
        r = spawn_runtime(c, bundle, theirs, devnull, logfd, exe_fd, &pid);
        if (r < 0) {
                fprintf(stderr, "container-apiserver: executing %s: %s\n", c->manager->runtime_path,
                        strerror(-r));
                return r;
        }

        theirs = safe_close(theirs);
        r = cxpc_connection_new_from_fd(ours, &conn);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                return r;
        }
        ours = -EBADF; /* owned by conn now */
        r = cxpc_connection_attach_event(conn, c->manager->event, 0);
        if (r >= 0)
                r = runtime_client_new_from_connection(conn, &rc);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                return r;
        }
        /* rc holds its own reference now; ours must not close the connection on return. */
        cxpc_connection_unref(TAKE_PTR(conn));
        runtime_client_set_timeout(rc, APISERVER_RUNTIME_TIMEOUT_USEC);
        (void) watch_disconnect(c, rc);
        c->runtime = rc;
        c->pid = pid;
        return 0;
}

static void on_shutdown_reply(cxpc_connection *conn, cxpc_object *reply, void *userdata) {
        /* A service that does not even answer shutdown is cut off; the disconnect handler then
         * releases whatever waits for it. */
        if (cxpc_reply_check(reply, NULL, NULL) < 0)
                cxpc_connection_close(conn);
}

/* Asks the runtime service to exit (the container is stopped). It stays "retiring" until its
 * connection drops, because its named socket is busy until then. */
void container_release_runtime(Container *c) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        RuntimeClient *rc = TAKE_PTR(c->runtime);

        if (!rc)
                return;
        runtime_client_free(TAKE_PTR(c->retiring));
        c->retiring_gone = false;
        if (cxpc_connection_get_state(runtime_client_get_connection(rc)) != CXPC_CONNECTION_CONNECTED ||
            cxpc_message_new_request("runtime/shutdown", &m) < 0 ||
            cxpc_connection_call_async(runtime_client_get_connection(rc), m, 5 * USEC_PER_SEC,
                                       on_shutdown_reply, NULL) < 0) {
                runtime_client_free(rc);
                return;
        }
        c->retiring = rc;
}

static int exit_reply_new(Container *c, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        int r;

        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        if (c->exit_code >= 0)
                r = cxpc_dict_set_int64(reply, "exitCode", c->exit_code);
        else
                r = cxpc_dict_set_null(reply, "exitCode");
        if (r >= 0 && c->exited_at > 0)
                r = cxpc_dict_set_date(reply, "exitedAt", c->exited_at);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(reply);
        return 0;
}

void container_record_exit(Container *c, int exit_code, int64_t exited_at, const char *reason) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        _cleanup_(container_unrefp) Container *keep = container_ref(c);
        bool remove;
        int r;

        container_release_runtime(c);
        c->paused = false;
        if (c->removed)
                return;
        c->status = CONTAINER_STATUS_STOPPED;
        c->exit_code = exit_code;
        c->exited_at = exited_at > 0 ? exited_at : now_nsec();
        c->pid = 0;
        c->init_pid = 0;
        free(c->last_error);
        c->last_error = reason ? strdup(reason) : NULL;
        remove = c->remove_on_exit || !container_is_kept(c);

        /* A container that stays: its exit is persisted (and survives a power loss) before anyone
         * hears of it. One that goes (--rm, rm -f): its state is not worth a write; everyone
         * waiting is answered first and it is removed right after, in this same callback, so no
         * request handled after the answer still sees it. */
        if (!remove) {
                r = container_save_state(c, WRITE_SYNC_FULL);
                if (r < 0)
                        fprintf(stderr, "container-apiserver: %s: saving state: %s\n", c->id, strerror(-r));
        }
        if (exit_reply_new(c, &reply) >= 0) {
                pending_reply_all(&c->waiters, &c->n_waiters, reply);
                pending_reply_all(&c->stoppers, &c->n_stoppers, reply);
        }
        if (remove) {
                r = manager_remove_container(c->manager, c);
                if (r < 0) {
                        fprintf(stderr, "container-apiserver: %s: removing: %s\n", c->id, strerror(-r));
                        /* It stays listed: at least with its exit. */
                        (void) container_save_state(c, WRITE_SYNC_FULL);
                }
        }
}

typedef struct WaitCall {
        Container *container;
        RuntimeClient *runtime; /* the service this wait was sent to */
} WaitCall;

static void on_wait_reply(cxpc_connection *conn, cxpc_object *reply, void *userdata) {
        WaitCall *w = userdata;
        Container *c = w->container;
        cxpc_error_code code;
        const char *message = NULL;
        int64_t exit_code = -1, exited_at = 0;

        /* A late reply from a service we already let go of. */
        if (c->runtime != w->runtime || c->removed)
                goto done;
        if (cxpc_reply_check(reply, &code, &message) < 0) {
                _cleanup_free_ char *reason = NULL;
                if (asprintf(&reason, "runtime service lost: %s: %s",
                             cxpc_error_code_to_string(code) ?: "unknown", message ?: "") < 0)
                        reason = NULL;
                container_record_exit(c, -1, 0, reason);
                goto done;
        }
        (void) cxpc_dict_get_int64(reply, "exitCode", &exit_code);
        (void) cxpc_dict_get_date(reply, "exitedAt", &exited_at);
        container_record_exit(c, exit_code >= 0 && exit_code <= 255 ? (int) exit_code : -1, exited_at, NULL);
done:
        container_unref(c);
        free(w);
}

/* Deferred runtime/wait with no deadline: the reply is the exit, or "interrupted" when the service
 * goes away. */
int container_watch_exit(Container *c) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        WaitCall *w;
        int r;

        r = cxpc_message_new_request("runtime/wait", &m);
        if (r >= 0)
                r = cxpc_dict_set_string(m, "id", c->id);
        if (r < 0)
                return r;
        w = malloc(sizeof *w);
        if (!w)
                return -ENOMEM;
        *w = (WaitCall){.container = container_ref(c), .runtime = c->runtime};
        r = cxpc_connection_call_async(runtime_client_get_connection(c->runtime), m, CXPC_INFINITY,
                                       on_wait_reply, w);
        if (r < 0) {
                container_unref(c);
                free(w);
        }
        return r;
}

static bool snapshot_status_is(cxpc_object *snapshot, const char *status) {
        const char *s = NULL;
        return cxpc_dict_get_string(snapshot, "status", &s) >= 0 && streq(s, status);
}

/* The pid of the container's init in a runtime/state snapshot ({processes: [{id, pid, ...}]}), or 0. */
static pid_t snapshot_init_pid(cxpc_object *snapshot, const char *id) {
        cxpc_object *procs = cxpc_dict_get(snapshot, "processes");
        size_t n = cxpc_array_get_count(procs);

        for (size_t i = 0; i < n; i++) {
                cxpc_object *p = cxpc_array_get(procs, i);
                const char *pid_id;
                int64_t pid;
                if (cxpc_dict_get_string(p, "id", &pid_id) >= 0 && streq(pid_id, id) &&
                    cxpc_dict_get_int64(p, "pid", &pid) >= 0 && pid_from_int64(pid) > 0)
                        return pid_from_int64(pid);
        }
        return 0;
}

/* After our own restart: find the runtime service of a container that was running. */
int container_reattach(Container *c) {
        _cleanup_free_ char *path = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *snapshot = NULL;
        RuntimeClient *rc = NULL;
        int r;

        if (asprintf(&path, "%s/runtime/%s.sock", c->manager->run_dir, c->id) < 0)
                return -ENOMEM;
        r = runtime_client_connect_path(path, &rc);
        if (r >= 0)
                r = cxpc_connection_attach_event(runtime_client_get_connection(rc), c->manager->event, 0);
        if (r >= 0) {
                runtime_client_set_timeout(rc, APISERVER_RUNTIME_TIMEOUT_USEC);
                r = runtime_client_state(rc, &snapshot);
        }
        if (r < 0) {
                runtime_client_free(rc);
                container_record_exit(c, -1, 0,
                                      "the runtime service was gone when the API server restarted");
                return 0;
        }
        (void) watch_disconnect(c, rc);
        c->runtime = rc;
        /* Paused before our restart: the runtime service still has it frozen. */
        c->paused = snapshot_status_is(snapshot, "paused");
        c->init_pid = snapshot_init_pid(snapshot, c->id);
        r = container_watch_exit(c);
        if (r < 0)
                container_record_exit(c, -1, 0, "cannot watch the runtime service");
        return 0;
}

void manager_reconcile(Manager *m) {
        /* Backwards: removing a container shifts the ones after it. */
        for (size_t i = m->n_containers; i > 0; i--) {
                Container *c = m->containers[i - 1];

                if (c->status == CONTAINER_STATUS_RUNNING)
                        /* A --rm container whose runtime service is gone is removed here. */
                        (void) container_reattach(c);
                else if (c->status == CONTAINER_STATUS_STOPPED && !container_is_kept(c)) {
                        /* Exited while nobody could remove it (our crash, a power loss), as docker
                         * does with its AutoRemove containers at startup. */
                        int r = manager_remove_container(m, c);
                        if (r < 0)
                                fprintf(stderr, "container-apiserver: %s: removing: %s\n", c->id,
                                        strerror(-r));
                }
        }
}

void manager_reap_children(Manager *m) {
        /* Runtime services are our children until we restart; their exit statuses are not
         * interesting (the container's come through runtime/wait), but zombies are. */
        for (;;) {
                siginfo_t si = {};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                        break;
        }
}
