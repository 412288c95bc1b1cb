/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Routes of container-apiserver (docs/apiserver.md). Handlers run serially on the event loop. */

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "signal-util.h"
#include "apiserver.h"
#include "sysctl.h"
#include "update-limits.h"
#include "resource-limits.h"

int pending_add_redispatch(Pending **list, size_t *n, cxpc_connection *conn, cxpc_object *request,
                           cxpc_route_handler_t handler) {
        Pending *a;

        if (*n >= APISERVER_PENDING_PER_CONTAINER_MAX)
                return -EBUSY;
        a = reallocarray(*list, *n + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        *list = a;
        a[(*n)++] = (Pending){cxpc_connection_ref(conn), cxpc_object_ref(request), handler};
        return 0;
}

int pending_add(Pending **list, size_t *n, cxpc_connection *conn, cxpc_object *request) {
        return pending_add_redispatch(list, n, conn, request, NULL);
}

void pending_redispatch_all(Pending **list, size_t *n, Manager *mgr) {
        Pending *l = TAKE_PTR(*list);
        size_t k = *n;

        *n = 0;
        for (size_t i = 0; i < k; i++) {
                int r = l[i].handler(l[i].conn, l[i].request, mgr);
                if (r < 0)
                        (void) cxpc_connection_reply_error(
                                l[i].conn, l[i].request, cxpc_error_code_from_errno(-r), "%s", strerror(-r));
                cxpc_connection_unref(l[i].conn);
                cxpc_object_unref(l[i].request);
        }
        free(l);
}

void pending_reply_all(Pending **list, size_t *n, cxpc_object *reply) {
        Pending *l = TAKE_PTR(*list);
        size_t k = *n;

        *n = 0;
        for (size_t i = 0; i < k; i++) {
                /* The client may be gone; that is its business. */
                (void) cxpc_connection_reply(l[i].conn, l[i].request, reply);
                cxpc_connection_unref(l[i].conn);
                cxpc_object_unref(l[i].request);
        }
        free(l);
}

/* Replies {key: j} (j is a jansson value, converted through the JSON bridge). */
int reply_json(cxpc_connection *conn, cxpc_object *m, const char *key, json_t *j) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *o = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        if (!text)
                return -ENOMEM;
        r = cxpc_object_from_json(text, &o);
        if (r >= 0)
                r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_dict_set(reply, key, o);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

int reply_empty(cxpc_connection *conn, cxpc_object *m) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        int r;

        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

/* A request forwarded to a container's runtime service without waiting for it: the loop goes on
 * serving everyone while the service (whose own loop may be busy with the OCI runtime) answers,
 * and the client is answered then. */
typedef struct ForwardCall {
        Container *container;
        cxpc_connection *conn; /* the client */
        cxpc_object *request;
        const char *what;      /* context for an error: "killing container" */
        const char *reply_key; /* the value of the service's reply that ours carries, or NULL */
        cxpc_type reply_type;
        /* Run when the service succeeded, before the client is answered; its failure is the
         * client's answer. */
        int (*on_success)(Container *c, cxpc_object *request);
} ForwardCall;

static void on_forward_reply(cxpc_connection *rconn, cxpc_object *reply, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *ours = NULL;
        ForwardCall *fc = userdata;
        const char *id = fc->container->id;
        cxpc_error_code code;
        const char *message = NULL;
        cxpc_object *value = fc->reply_key ? cxpc_dict_get(reply, fc->reply_key) : NULL;
        int r;

        /* The service's error code and message go to the client unchanged, with context. A lost
         * or silent service comes back as the library's interrupted/timeout reply. */
        if (cxpc_reply_check(reply, &code, &message) < 0)
                (void) cxpc_connection_reply_error(fc->conn, fc->request, code, "%s %s: %s", fc->what, id,
                                                   message ?: cxpc_error_code_to_string(code));
        else if (fc->reply_key && cxpc_object_get_type(value) != fc->reply_type)
                (void) cxpc_connection_reply_error(fc->conn, fc->request, CXPC_ERROR_INTERNAL_ERROR,
                                                   "%s %s: the runtime service's reply has no %s", fc->what,
                                                   id, fc->reply_key);
        else if (fc->on_success && !fc->container->removed &&
                 (r = fc->on_success(fc->container, fc->request)) < 0)
                (void) cxpc_connection_reply_error(fc->conn, fc->request, cxpc_error_code_from_errno(-r),
                                                   "%s %s: %s", fc->what, id, strerror(-r));
        else {
                r = cxpc_reply_new(&ours);
                if (r >= 0 && fc->reply_key)
                        r = cxpc_dict_set(ours, fc->reply_key, value);
                if (r >= 0)
                        (void) cxpc_connection_reply(fc->conn, fc->request, ours);
                else
                        (void) cxpc_connection_reply_error(fc->conn, fc->request,
                                                           cxpc_error_code_from_errno(-r), "%s %s: %s",
                                                           fc->what, id, strerror(-r));
        }
        container_unref(fc->container);
        cxpc_connection_unref(fc->conn);
        cxpc_object_unref(fc->request);
        free(fc);
}

/* Sends call to c's runtime service; m is answered when it replies (with its reply_key value of
 * type reply_type, if reply_key; after on_success, if given). Returns 0 (answered later) or
 * negative errno (not sent). */
static int forward_to_runtime_then(cxpc_connection *conn, cxpc_object *m, Container *c, cxpc_object *call,
                                   const char *what, const char *reply_key, cxpc_type reply_type,
                                   int (*on_success)(Container *c, cxpc_object *request)) {
        ForwardCall *fc;
        int r;

        fc = malloc(sizeof *fc);
        if (!fc)
                return -ENOMEM;
        *fc = (ForwardCall){
                .container = container_ref(c),
                .conn = cxpc_connection_ref(conn),
                .request = cxpc_object_ref(m),
                .what = what,
                .reply_key = reply_key,
                .reply_type = reply_type,
                .on_success = on_success,
        };
        /* The handler runs exactly once, also when the service goes away (interrupted). */
        r = cxpc_connection_call_async(runtime_client_get_connection(c->runtime), call,
                                       APISERVER_RUNTIME_TIMEOUT_USEC, on_forward_reply, fc);
        if (r < 0) {
                container_unref(fc->container);
                cxpc_connection_unref(fc->conn);
                cxpc_object_unref(fc->request);
                free(fc);
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r), "%s %s: %s",
                                                   what, c->id, strerror(-r));
        }
        return 0;
}

static int forward_to_runtime(cxpc_connection *conn, cxpc_object *m, Container *c, cxpc_object *call,
                              const char *what, const char *reply_key, cxpc_type reply_type) {
        return forward_to_runtime_then(conn, m, c, call, what, reply_key, reply_type, NULL);
}

/* Looks up the "id" of a request; replies itself (invalidArgument/notFound) when there is none. */
static Container *lookup(Manager *mgr, cxpc_connection *conn, cxpc_object *m) {
        const char *id = NULL;
        Container *c;

        if (cxpc_dict_get_string(m, "id", &id) < 0) {
                (void) cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "missing container id");
                return NULL;
        }
        if (!container_id_is_valid(id)) {
                (void) cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "invalid container name \"%.80s\": must match "
                                                   "[A-Za-z0-9][A-Za-z0-9_.-]* (1-64 characters)",
                                                   id);
                return NULL;
        }
        c = manager_find(mgr, id);
        if (!c)
                (void) cxpc_connection_reply_error(conn, m, CXPC_ERROR_NOT_FOUND, "no such container: %s",
                                                   id);
        return c;
}

/* Start, stop, kill and rm of a container whose start is in flight do not race the OCI runtime:
 * they are parked and handled, in the order they came, once the start has ended (either way), as
 * if they had come just then. */
static int defer_until_started(cxpc_connection *conn, cxpc_object *m, Container *c,
                               cxpc_route_handler_t handler) {
        return pending_add_redispatch(&c->after_start, &c->n_after_start, conn, m, handler);
}

static int refuse_broken(cxpc_connection *conn, cxpc_object *m, Container *c) {
        return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                           "container %s is broken (%s); only rm -f can remove it", c->id,
                                           c->broken_reason ?: "unreadable");
}

static bool is_string_array(json_t *a, bool nonempty) {
        size_t i;
        json_t *v;

        if (!json_is_array(a) || (nonempty && json_array_size(a) == 0))
                return false;
        json_array_foreach(a, i, v) if (!json_is_string(v)) return false;
        return true;
}

/* Checks what the API server itself interprets; the runtime service validates the rest at start. */
static int validate_config(json_t *cfg, bool check_rootfs, char *err, size_t errsize) {
        json_t *rootfs = json_object_get(cfg, "rootfs"), *image = json_object_get(cfg, "image");
        json_t *process = json_object_get(cfg, "process");
        struct stat st;

        if (!json_is_object(process) || !is_string_array(json_object_get(process, "args"), true)) {
                snprintf(err, errsize, "process.args must be a non-empty array of strings");
                return -EINVAL;
        }
        if (json_object_get(process, "env") && !is_string_array(json_object_get(process, "env"), false)) {
                snprintf(err, errsize, "process.env must be an array of \"KEY=VALUE\" strings");
                return -EINVAL;
        }
        json_t *stop_signal = json_object_get(cfg, "stopSignal");
        if (stop_signal && !json_is_null(stop_signal) &&
            (!json_is_string(stop_signal) || signal_from_string(json_string_value(stop_signal)) < 0)) {
                snprintf(err, errsize, "stopSignal: not a signal name or number");
                return -EINVAL;
        }
        json_t *sysctls = json_object_get(cfg, "sysctls");
        if (sysctls && !json_is_null(sysctls)) {
                const char *name, *reason;
                json_t *value;
                if (!json_is_object(sysctls) || json_object_size(sysctls) > CONTAINER_SYSCTLS_MAX) {
                        snprintf(err, errsize, "sysctls must be an object of at most %u strings",
                                 CONTAINER_SYSCTLS_MAX);
                        return -EINVAL;
                }
                json_object_foreach(sysctls, name, value) {
                        if (sysctl_check(name, json_string_value(value), &reason) < 0) {
                                snprintf(err, errsize, "sysctl %s: %s", name, reason);
                                return -EINVAL;
                        }
                }
        }
        if (!check_rootfs)
                return 0;
        if (!rootfs || json_is_null(rootfs)) {
                if (json_is_string(image)) {
                        snprintf(err, errsize, "image %s: image store not available yet (use --rootfs DIR)",
                                 json_string_value(image));
                        return -EOPNOTSUPP;
                }
                snprintf(err, errsize, "a root filesystem is required (--rootfs DIR)");
                return -EINVAL;
        }
        if (!json_is_string(rootfs) || json_string_value(rootfs)[0] != '/') {
                snprintf(err, errsize, "rootfs must be an absolute path");
                return -EINVAL;
        }
        if (stat(json_string_value(rootfs), &st) < 0) {
                int r = negative_errno();
                snprintf(err, errsize, "rootfs %s: %s", json_string_value(rootfs), strerror(-r));
                return r;
        }
        if (!S_ISDIR(st.st_mode)) {
                snprintf(err, errsize, "rootfs %s: not a directory", json_string_value(rootfs));
                return -ENOTDIR;
        }
        return 0;
}

static int route_create(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(container_unrefp) Container *c = NULL;
        _cleanup_(json_decrefp) json_t *cfg = NULL;
        _cleanup_free_ char *text = NULL, *bundle = NULL, *name = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        char idbuf[CONTAINER_ID_GENERATED_LEN + 1], err[512];
        cxpc_object *config = cxpc_dict_get(m, "configuration");
        const char *id;
        bool from_image;
        int r;

        if (cxpc_object_get_type(config) != CXPC_TYPE_DICTIONARY)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "missing configuration dictionary");
        r = cxpc_object_to_json(config, 0, &text);
        if (r < 0)
                return r;
        cfg = json_loads(text, 0, NULL);
        if (!json_is_object(cfg))
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "configuration is not an object");

        /* IMAGE instead of --rootfs: the store provides the root filesystem and the process. */
        from_image = json_is_string(json_object_get(cfg, "image")) &&
                     (!json_object_get(cfg, "rootfs") || json_is_null(json_object_get(cfg, "rootfs")));
        if (!from_image) {
                /* Only ours to set. */
                (void) json_object_del(cfg, "imageRootfs");
                (void) json_object_del(cfg, "imageDigest");
                (void) json_object_del(cfg, "entrypoint");
                r = validate_config(cfg, true, err, sizeof err);
                if (r < 0)
                        return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r), "%s",
                                                           err);
        }

        if (json_is_true(json_object_get(cfg, "init")) && !mgr->init_path)
                return cxpc_connection_reply_error(
                        conn, m, CXPC_ERROR_UNSUPPORTED,
                        "--init: container-init is not installed next to container-apiserver");

        /* The OCI runtime: the client's, else our default; stored, so that every start of this
         * container uses the same one whatever our default becomes. */
        if (!json_object_get(cfg, "runtime") || json_is_null(json_object_get(cfg, "runtime"))) {
                if (json_object_set_new(cfg, "runtime", json_string(mgr->oci_runtime)) < 0)
                        return -ENOMEM;
        } else if (!json_is_string(json_object_get(cfg, "runtime")))
                return cxpc_connection_reply_error(
                        conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                        "runtime must be a string: crun, runc or an absolute path");
        r = oci_runtime_check(json_string_value(json_object_get(cfg, "runtime")), err, sizeof err);
        if (r < 0)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT, "%s", err);

        id = json_string_value(json_object_get(cfg, "id"));
        if (json_object_get(cfg, "id") && !json_is_null(json_object_get(cfg, "id"))) {
                /* cfg's "id" is replaced below: keep our own copy. */
                if (id && !(name = strdup(id)))
                        return -ENOMEM;
                id = name;
                if (!container_id_is_valid(id))
                        return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                           "invalid container name \"%.80s\": must match "
                                                           "[A-Za-z0-9][A-Za-z0-9_.-]* (1-64 characters)",
                                                           id ?: "(not a string)");
                if (manager_find(mgr, id))
                        return cxpc_connection_reply_error(conn, m, CXPC_ERROR_EXISTS,
                                                           "container name %s is already in use", id);
        } else {
                for (int i = 0;; i++) {
                        if (i >= APISERVER_ID_ATTEMPTS)
                                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INTERNAL_ERROR,
                                                                   "cannot generate an unused id");
                        r = container_id_generate(idbuf);
                        if (r < 0)
                                return r;
                        if (!manager_find(mgr, idbuf))
                                break;
                }
                id = idbuf;
        }

        if (from_image) {
                r = image_prepare_config(mgr, id, cfg, err, sizeof err);
                if (r >= 0)
                        r = validate_config(cfg, false, err, sizeof err);
                if (r < 0)
                        return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r), "%s",
                                                           err);
        }

        r = container_new(mgr, id, &c);
        if (r < 0)
                return r;
        if (json_object_set_new(cfg, "id", json_string(id)) < 0)
                return -ENOMEM;
        if (!json_is_string(json_object_get(cfg, "hostname")) &&
            json_object_set_new(cfg, "hostname", json_string(strlen(id) > 63 ? idbuf : id)) < 0)
                return -ENOMEM;
        c->config = TAKE_PTR(cfg);
        c->created_at = now_nsec();

        /* mkdir is the atomic name reservation, also against a directory left on disk. */
        if (mkdir(c->dir, 0700) < 0) {
                if (errno == EEXIST)
                        return cxpc_connection_reply_error(conn, m, CXPC_ERROR_EXISTS,
                                                           "container name %s is already in use", id);
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(errno),
                                                   "creating %s: %m", c->dir);
        }
        /* A kept container must survive a power loss from the moment we answer: both files are
         * fsynced, and then the directory, once, for both renames (and the mkdir). A --rm one
         * would not outlive a reboot anyway (the next scan removes it): no fsync, and no state.json
         * until it starts (a missing one means "created"). The bundle is written at start. */
        if (container_is_kept(c)) {
                r = container_save_state(c, WRITE_SYNC_FILE);
                if (r >= 0)
                        r = container_save_config(c, WRITE_SYNC_FILE);
                if (r >= 0)
                        r = fsync_directory(c->dir);
        } else
                r = container_save_config(c, WRITE_SYNC_NONE);
        if (r >= 0 && from_image)
                r = container_mount_image_rootfs(c);
        if (r >= 0)
                r = manager_add_container(mgr, c);
        if (r < 0) {
                /* Nothing half-created stays behind: no mount, no image reference, no directory. */
                if (from_image) {
                        _cleanup_free_ char *target = NULL;
                        if (asprintf(&target, "%s/rootfs", c->dir) >= 0)
                                (void) image_store_umount_rootfs(mgr->images, c->id, target,
                                                                 IMAGE_UMOUNT_REMOVE);
                }
                (void) rm_rf(c->dir);
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                   "creating container %s: %s", id, strerror(-r));
        }

        r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_dict_set_string(reply, "id", c->id);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

static int dup_optional_fd(cxpc_object *m, const char *key, int *ret) {
        int r = cxpc_dict_dup_fd(m, key, ret);

        if (r == -ENOENT) {
                *ret = -EBADF;
                return 0;
        }
        return r;
}

/* A start that failed still has an exit status (127 not found, 126 not executable, else 125): it is
 * recorded (a --rm container goes) and the error reply carries it. */
static int reply_start_failed(cxpc_connection *conn, cxpc_object *m, Container *c, cxpc_error_code code,
                              int exit_code, const char *msg) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *error = NULL;
        int r;

        c->started_at = now_nsec();
        container_record_exit(c, exit_code, 0, msg);
        r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_error_newf(&error, code, "starting container %s: %s", c->id, msg);
        if (r >= 0)
                r = cxpc_dict_set(reply, CXPC_KEY_ERROR, error);
        if (r >= 0)
                r = cxpc_dict_set_int64(reply, "exitCode", exit_code);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

/* A start in flight. bootstrap (and resize, for a terminal) and start go to the new runtime
 * service back to back, which handles them in order; the client's request is answered when start
 * replies. The loop meanwhile serves everyone else: the OCI runtime may take seconds (a slow
 * runtime, a large root filesystem), and a synchronous call here made every client wait. */
typedef struct StartCall {
        Container *container;
        RuntimeClient *runtime; /* the service the calls went to */
        cxpc_connection *conn;  /* the client */
        cxpc_object *request;
        unsigned replies_due;
        pid_t init_pid; /* from the start's reply */
        bool failed;    /* the first failure's code and message: */
        cxpc_error_code code;
        char message[CXPC_ERROR_MESSAGE_SIZE_MAX];
} StartCall;

static void start_call_free(StartCall *sc) {
        sc->container->starting = false;
        pending_redispatch_all(&sc->container->after_start, &sc->container->n_after_start,
                               sc->container->manager);
        container_unref(sc->container);
        cxpc_connection_unref(sc->conn);
        cxpc_object_unref(sc->request);
        free(sc);
}

/* The service is gone or was let go of while starting (rm, API server shutdown). */
static bool start_call_orphaned(StartCall *sc) {
        return sc->container->removed || sc->container->runtime != sc->runtime;
}

static void on_failed_start_wait(cxpc_connection *rconn, cxpc_object *reply, void *userdata) {
        StartCall *sc = userdata;
        Container *c = sc->container;
        int64_t exit_code = CONTAINER_EXIT_TOOL_FAILED;

        /* A failed start still has an exit status: 127 not found, 126 not executable. */
        if (cxpc_reply_check(reply, NULL, NULL) >= 0)
                (void) cxpc_dict_get_int64(reply, "exitCode", &exit_code);
        if (start_call_orphaned(sc))
                (void) cxpc_connection_reply_error(sc->conn, sc->request, sc->code,
                                                   "starting container %s: %s", c->id, sc->message);
        else
                (void) reply_start_failed(sc->conn, sc->request, c, sc->code,
                                          exit_code >= 0 && exit_code <= 255 ? (int) exit_code
                                                                             : CONTAINER_EXIT_TOOL_FAILED,
                                          sc->message);
        start_call_free(sc);
}

static void start_call_finish(StartCall *sc) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *wait = NULL;
        Container *c = sc->container;
        int r;

        if (start_call_orphaned(sc)) {
                (void) cxpc_connection_reply_error(sc->conn, sc->request, CXPC_ERROR_INTERRUPTED,
                                                   "container %s was removed while starting", c->id);
                start_call_free(sc);
                return;
        }
        if (sc->failed) {
                r = runtime_client_id_request(c->runtime, "wait", c->id, &wait);
                if (r >= 0)
                        r = cxpc_connection_call_async(runtime_client_get_connection(c->runtime), wait,
                                                       5 * USEC_PER_SEC, on_failed_start_wait, sc);
                if (r < 0) {
                        (void) reply_start_failed(sc->conn, sc->request, c, sc->code,
                                                  CONTAINER_EXIT_TOOL_FAILED, sc->message);
                        start_call_free(sc);
                }
                return;
        }

        c->status = CONTAINER_STATUS_RUNNING;
        c->started_at = now_nsec();
        c->init_pid = sc->init_pid;
        c->exit_code = -1;
        c->exited_at = 0;
        free(c->last_error);
        c->last_error = NULL;
        r = container_watch_exit(c);
        if (r < 0)
                fprintf(stderr, "container-apiserver: %s: watching exit: %s\n", c->id, strerror(-r));
        (void) reply_empty(sc->conn, sc->request);
        /* After the reply, before any other request is handled: "running" tells the next API server
         * whom to re-attach to. A kept container's is fsynced too, so that after a power loss it
         * shows an unknown exit rather than the one of its previous run; a --rm one would be gone
         * after a reboot anyway. */
        r = container_save_state(c, container_is_kept(c) ? WRITE_SYNC_FULL : WRITE_SYNC_NONE);
        if (r < 0)
                fprintf(stderr, "container-apiserver: %s: saving state: %s\n", c->id, strerror(-r));
        start_call_free(sc);
}

static void on_start_step_reply(cxpc_connection *rconn, cxpc_object *reply, void *userdata) {
        StartCall *sc = userdata;
        cxpc_error_code code;
        const char *message = NULL;
        int64_t pid;

        if (cxpc_reply_check(reply, &code, &message) < 0) {
                /* bootstrap's error explains start's ("not bootstrapped"): the first one counts. */
                if (!sc->failed) {
                        sc->failed = true;
                        sc->code = code;
                        snprintf(sc->message, sizeof sc->message, "%s",
                                 message ?: cxpc_error_code_to_string(code));
                }
        } else if (cxpc_dict_get_int64(reply, "pid", &pid) >= 0 && pid_from_int64(pid) > 0)
                sc->init_pid = pid_from_int64(pid); /* only start's reply has one */
        assert(sc->replies_due > 0);
        if (--sc->replies_due == 0)
                start_call_finish(sc);
}

/* Sends bootstrap, resize (when the client gave a terminal size) and start. On failure nothing
 * is in flight. */
static int start_call_send(cxpc_connection *conn, cxpc_object *m, Container *c, const RuntimeStdio *stdio) {
        cxpc_connection *rconn = runtime_client_get_connection(c->runtime);
        _cleanup_(cxpc_object_unrefp) cxpc_object *bootstrap = NULL, *resize = NULL, *start = NULL;
        int64_t w = 0, h = 0;
        StartCall *sc;
        int r;

        r = runtime_client_bootstrap_request(c->runtime, stdio, NULL, NULL, &bootstrap);
        /* The terminal's first size, before the process can ask for it. */
        if (r >= 0 && cxpc_dict_get_int64(m, "width", &w) >= 0 &&
            cxpc_dict_get_int64(m, "height", &h) >= 0 && w > 0 && h > 0 && w <= 65535 && h <= 65535)
                r = runtime_client_resize_request(c->runtime, c->id, (unsigned) w, (unsigned) h, &resize);
        if (r >= 0)
                r = runtime_client_id_request(c->runtime, "start", c->id, &start);
        if (r < 0)
                return r;
        sc = malloc(sizeof *sc);
        if (!sc)
                return -ENOMEM;
        *sc = (StartCall){
                .container = container_ref(c),
                .runtime = c->runtime,
                .conn = cxpc_connection_ref(conn),
                .request = cxpc_object_ref(m),
        };
        c->starting = true;
        /* Each handler runs exactly once, also when the service goes away (interrupted). */
        cxpc_object *steps[] = {bootstrap, resize, start};
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                if (!steps[i])
                        continue;
                r = cxpc_connection_call_async(rconn, steps[i], APISERVER_RUNTIME_TIMEOUT_USEC,
                                               on_start_step_reply, sc);
                if (r < 0) {
                        if (sc->replies_due == 0) {
                                start_call_free(sc);
                                return r;
                        }
                        /* The calls sent are answered; the start then reports this. */
                        sc->failed = true;
                        sc->code = cxpc_error_code_from_errno(-r);
                        snprintf(sc->message, sizeof sc->message, "%s", strerror(-r));
                        return 0;
                }
                sc->replies_due++;
        }
        return 0;
}

static int route_start(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_close_ int in = -EBADF, out = -EBADF, err = -EBADF;
        char msg[CXPC_ERROR_MESSAGE_SIZE_MAX];
        Container *c;
        RuntimeStdio stdio;
        _cleanup_(container_unrefp) Container *keep = NULL;
        bool attach;
        int r;

        c = lookup(mgr, conn, m);
        if (!c)
                return 0;
        keep = container_ref(c); /* a failed start of an auto-remove container removes it */
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        if (dup_optional_fd(m, "stdin", &in) < 0 || dup_optional_fd(m, "stdout", &out) < 0 ||
            dup_optional_fd(m, "stderr", &err) < 0)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "stdio must be file descriptors");
        attach = in >= 0 || out >= 0 || err >= 0;
        if (c->starting)
                return defer_until_started(conn, m, c, route_start);
        if (c->remove_on_exit)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is being removed", c->id);
        if (c->paused)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is paused: unpause it instead", c->id);
        if (c->status == CONTAINER_STATUS_RUNNING || c->runtime) {
                if (attach || c->status != CONTAINER_STATUS_RUNNING)
                        return cxpc_connection_reply_error(
                                conn, m, CXPC_ERROR_INVALID_STATE, "container %s is %s", c->id,
                                c->runtime && c->status != CONTAINER_STATUS_RUNNING ? "stopping"
                                                                                    : "already running");
                return reply_empty(conn, m); /* docker start of a running container is a no-op */
        }

        if (c->retiring) {
                if (!c->retiring_gone)
                        /* Its predecessor still holds the socket name: answered once it exits. */
                        return pending_add_redispatch(&c->starters, &c->n_starters, conn, m, route_start);
                c->retiring = runtime_client_free(c->retiring);
        }

        /* Checked at create; a runtime uninstalled since is refused here, with a clearer message
         * than a runtime service that exits at once. */
        r = oci_runtime_check(container_oci_runtime(c), msg, sizeof msg);
        if (r < 0)
                return reply_start_failed(conn, m, c, cxpc_error_code_from_errno(-r),
                                          CONTAINER_EXIT_TOOL_FAILED, msg);

        if (container_uses_image(c)) {
                /* Gone after a reboot or an unmount by hand: mounted again before the runtime starts. */
                r = container_mount_image_rootfs(c);
                if (r < 0)
                        return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                           "mounting the root filesystem of %s: %s", c->id,
                                                           image_store_last_error(mgr->images)[0]
                                                                   ? image_store_last_error(mgr->images)
                                                                   : strerror(-r));
        }
        r = container_write_bundle(c);
        if (r < 0)
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                   "writing the bundle of %s: %s", c->id, strerror(-r));
        r = container_spawn_runtime(c);
        if (r < 0)
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                   "launching the runtime service of %s: %s", c->id,
                                                   strerror(-r));

        stdio = (RuntimeStdio){in, out, err};
        r = start_call_send(conn, m, c, &stdio);
        /* Our copies must go now: the client sees EOF only when every copy is closed. */
        in = safe_close(in);
        out = safe_close(out);
        err = safe_close(err);
        if (r < 0) {
                snprintf(msg, sizeof msg, "%s", strerror(-r));
                return reply_start_failed(conn, m, c, cxpc_error_code_from_errno(-r),
                                          CONTAINER_EXIT_TOOL_FAILED, msg);
        }
        return 0; /* answered when the runtime service has started the container */
}

void container_resume_starts(Container *c) {
        _cleanup_(container_unrefp) Container *keep = container_ref(c);

        pending_redispatch_all(&c->starters, &c->n_starters, c->manager);
}

static int route_list(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(json_decrefp) json_t *a = json_array();
        bool all = false;

        (void) cxpc_dict_get_bool(m, "all", &all);
        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < mgr->n_containers; i++) {
                Container *c = mgr->containers[i];
                if (!all && c->status != CONTAINER_STATUS_RUNNING)
                        continue;
                if (json_array_append_new(a, container_to_json(c)) < 0)
                        return -ENOMEM;
        }
        return reply_json(conn, m, "containers", a);
}

static int route_inspect(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        Container *c = lookup(userdata, conn, m);

        if (!c)
                return 0;
        j = container_to_json(c);
        return reply_json(conn, m, "container", j);
}

typedef struct StopCall {
        Container *container;
        cxpc_connection *conn;
        cxpc_object *request;
} StopCall;

static void on_stop_reply(cxpc_connection *rconn, cxpc_object *reply, void *userdata) {
        StopCall *s = userdata;
        cxpc_error_code code;
        const char *message = NULL;

        /* Success is answered by container_record_exit() once the exit is persisted. A failure
         * while the container still runs goes back to everyone waiting for the stop. */
        if (cxpc_reply_check(reply, &code, &message) < 0 && !s->container->removed &&
            s->container->status == CONTAINER_STATUS_RUNNING && s->container->n_stoppers > 0) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *err = NULL, *r = NULL;
                if (cxpc_reply_new(&r) >= 0 &&
                    cxpc_error_newf(&err, code, "stopping container %s: %s", s->container->id,
                                    message ?: "") >= 0 &&
                    cxpc_dict_set(r, CXPC_KEY_ERROR, err) >= 0) {
                        s->container->remove_on_exit = false;
                        pending_reply_all(&s->container->stoppers, &s->container->n_stoppers, r);
                }
        }
        container_unref(s->container);
        free(s);
}

static int stop_async(Container *c, int64_t timeout, const char *signal) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *opts = NULL;
        StopCall *s;
        int r;

        r = cxpc_message_new_request("runtime/stop", &req);
        if (r >= 0)
                r = cxpc_dict_new(&opts);
        if (r >= 0)
                r = cxpc_dict_set_int64(opts, "timeout", timeout);
        if (r >= 0 && signal)
                r = cxpc_dict_set_string(opts, "signal", signal);
        if (r >= 0)
                r = cxpc_dict_set(req, "stopOptions", opts);
        if (r < 0)
                return r;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->container = container_ref(c);
        r = cxpc_connection_call_async(runtime_client_get_connection(c->runtime), req,
                                       (uint64_t) timeout * USEC_PER_SEC + APISERVER_STOP_GRACE_USEC,
                                       on_stop_reply, s);
        if (r < 0) {
                container_unref(c);
                free(s);
                return r;
        }
        c->paused = false; /* the runtime service thaws it for the stop signal */
        return 0;
}

static int route_stop(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Container *c = lookup(userdata, conn, m);
        int64_t timeout = APISERVER_STOP_TIMEOUT_DEFAULT_SEC;
        const char *signal = NULL;
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        (void) cxpc_dict_get_int64(m, "timeout", &timeout);
        (void) cxpc_dict_get_string(m, "signal", &signal);
        if (!signal) /* --stop-signal, else the image's StopSignal, else the runtime's default */
                signal = json_string_value(json_object_get(c->config, "stopSignal"));
        if (timeout < 0 || timeout > 24 * 3600)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "stop timeout out of range");
        if (c->starting)
                return defer_until_started(conn, m, c, route_stop);
        if (c->status != CONTAINER_STATUS_RUNNING || !c->runtime)
                return reply_empty(conn, m); /* stopping a stopped container succeeds, as in docker */
        r = pending_add(&c->stoppers, &c->n_stoppers, conn, m);
        if (r < 0)
                return r;
        r = stop_async(c, timeout, signal);
        if (r < 0) {
                c->n_stoppers--;
                cxpc_connection_unref(c->stoppers[c->n_stoppers].conn);
                cxpc_object_unref(c->stoppers[c->n_stoppers].request);
                return r;
        }
        return 0; /* deferred */
}

static int mark_paused(Container *c, cxpc_object *request) {
        c->paused = true;
        return 0;
}

/* The runtime service resumes a paused container after delivering a signal, and after an unpause. */
static int mark_thawed(Container *c, cxpc_object *request) {
        c->paused = false;
        return 0;
}

static int route_kill(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *call = NULL;
        Container *c = lookup(userdata, conn, m);
        const char *signal = "SIGKILL";
        int64_t signum;
        char buf[16];
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        if (cxpc_dict_get_int64(m, "signal", &signum) >= 0) {
                snprintf(buf, sizeof buf, "%" PRIi64, signum);
                signal = buf;
        } else
                (void) cxpc_dict_get_string(m, "signal", &signal);
        if (c->starting)
                return defer_until_started(conn, m, c, route_kill);
        if (c->status != CONTAINER_STATUS_RUNNING || !c->runtime)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is not running", c->id);
        r = runtime_client_kill_request(c->runtime, c->id, signal, &call);
        if (r < 0)
                return r;
        return forward_to_runtime_then(conn, m, c, call, "killing container", NULL, CXPC_TYPE_NULL,
                                       mark_thawed);
}

/* container/pause and container/unpause: forwarded to the runtime service (runtime/pause,
 * runtime/resume), whose refusals (already paused, not paused, not running) reach the client. */
static int route_pause_unpause(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *call = NULL;
        Container *c = lookup(userdata, conn, m);
        bool pause = streq_ptr(cxpc_message_get_route(m), APISERVER_ROUTE_PAUSE);
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        if (c->starting)
                return defer_until_started(conn, m, c, route_pause_unpause);
        if (c->status != CONTAINER_STATUS_RUNNING || !c->runtime)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is not running", c->id);
        if (c->n_stoppers > 0)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is stopping", c->id);
        r = runtime_client_id_request(c->runtime, pause ? "pause" : "resume", c->id, &call);
        if (r < 0)
                return r;
        return forward_to_runtime_then(conn, m, c, call, pause ? "pausing container" : "unpausing container",
                                       NULL, CXPC_TYPE_NULL, pause ? mark_paused : mark_thawed);
}

static int route_resize(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *call = NULL;
        Container *c = lookup(userdata, conn, m);
        int64_t w = 0, h = 0;
        int r;

        if (!c)
                return 0;
        if (cxpc_dict_get_int64(m, "width", &w) < 0 || cxpc_dict_get_int64(m, "height", &h) < 0 || w < 1 ||
            h < 1 || w > 65535 || h > 65535)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "width and height: 1 to 65535");
        if (c->status != CONTAINER_STATUS_RUNNING || !c->runtime)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is not running", c->id);
        r = runtime_client_resize_request(c->runtime, c->id, (unsigned) w, (unsigned) h, &call);
        if (r < 0)
                return r;
        return forward_to_runtime(conn, m, c, call, "resizing the terminal of", NULL, CXPC_TYPE_NULL);
}

/* Parses and checks container/update's limits: NULL when they are fine, else why not. cpus may
 * be given as an integer too. */
static const char *update_limits_parse(cxpc_object *m, UpdateLimits *ret) {
        UpdateLimits l = {};
        int64_t whole;
        int r;

        r = cxpc_dict_get_double(m, "cpus", &l.cpus);
        if (r == -EMEDIUMTYPE && cxpc_dict_get_int64(m, "cpus", &whole) >= 0) {
                l.cpus = (double) whole;
                r = 0;
        }
        if (r != -ENOENT && (r < 0 || !(l.cpus > 0) || l.cpus > CONTAINER_CPUS_MAX))
                return "cpus: a number above 0, at most 1024";
        l.has_cpus = r >= 0;
        r = cxpc_dict_get_int64(m, "memoryBytes", &l.memory_bytes);
        if (r != -ENOENT && (r < 0 || l.memory_bytes < (int64_t) CONTAINER_MEMORY_MIN))
                return "memoryBytes: an integer of at least 4 MiB";
        l.has_memory = r >= 0;
        r = cxpc_dict_get_int64(m, "pids", &l.pids);
        if (r != -ENOENT && (r < 0 || l.pids < 0))
                return "pids: an integer, 0 for no limit";
        l.has_pids = r >= 0;
        if (!l.has_cpus && !l.has_memory && !l.has_pids)
                return "nothing to update: give cpus, memoryBytes or pids";
        *ret = l;
        return NULL;
}

/* The limits of an update into the configuration (which the next start uses), saved. */
static int update_apply(Container *c, cxpc_object *m) {
        json_t *res = json_object_get(c->config, "resources");
        UpdateLimits l;
        int r = 0;

        if (update_limits_parse(m, &l))
                return -EINVAL; /* checked before */
        if (!json_is_object(res)) {
                res = json_object();
                if (!res || json_object_set_new(c->config, "resources", res) < 0)
                        return -ENOMEM;
        }
        if (l.has_cpus)
                r = json_object_set_new(res, "cpus", json_real(l.cpus));
        if (r >= 0 && l.has_memory)
                r = json_object_set_new(res, "memoryBytes", json_integer(l.memory_bytes));
        if (r >= 0 && l.has_pids)
                r = l.pids > 0 ? json_object_set_new(res, "pids", json_integer(l.pids))
                               : (json_object_del(res, "pids"), 0);
        if (r < 0)
                return -ENOMEM;
        return container_save_config(c, WRITE_SYNC_FULL);
}

static int route_update(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *call = NULL;
        Container *c = lookup(userdata, conn, m);
        UpdateLimits l;
        const char *why;
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        why = update_limits_parse(m, &l);
        if (why)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT, "%s", why);
        if (c->starting)
                return defer_until_started(conn, m, c, route_update);
        if (c->status != CONTAINER_STATUS_RUNNING || !c->runtime) {
                r = update_apply(c, m);
                if (r < 0)
                        return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                           "updating %s: %s", c->id, strerror(-r));
                return reply_empty(conn, m);
        }
        /* Running: the OCI runtime changes the cgroup first; the configuration follows. */
        r = runtime_client_id_request(c->runtime, "update", c->id, &call);
        if (r >= 0)
                r = update_limits_to_request(&l, call);
        if (r < 0)
                return r;
        return forward_to_runtime_then(conn, m, c, call, "updating", NULL, CXPC_TYPE_NULL, update_apply);
}

static int route_delete(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        Container *c = lookup(mgr, conn, m);
        bool force = false;
        int r;

        if (!c)
                return 0;
        (void) cxpc_dict_get_bool(m, "force", &force);
        if (c->status == CONTAINER_STATUS_BROKEN && !force)
                return refuse_broken(conn, m, c);
        if (c->starting)
                return defer_until_started(conn, m, c, route_delete);
        if (c->status == CONTAINER_STATUS_RUNNING && c->runtime) {
                if (!force)
                        return cxpc_connection_reply_error(
                                conn, m, CXPC_ERROR_INVALID_STATE,
                                "container %s is running: stop it first or use rm -f", c->id);
                r = pending_add(&c->stoppers, &c->n_stoppers, conn, m);
                if (r < 0)
                        return r;
                c->remove_on_exit = true;
                r = stop_async(c, 0, "SIGKILL");
                if (r < 0)
                        return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                           "killing %s: %s", c->id, strerror(-r));
                return 0; /* answered once the exit is recorded and the directory removed */
        }
        container_release_runtime(c);
        r = manager_remove_container(mgr, c);
        if (r < 0)
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r),
                                                   "removing %s: %s", c->id, strerror(-r));
        return reply_empty(conn, m);
}

static int route_wait(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        Container *c = lookup(userdata, conn, m);
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        if (c->status == CONTAINER_STATUS_STOPPED && !c->runtime) {
                r = cxpc_reply_new(&reply);
                if (r >= 0)
                        r = c->exit_code >= 0 ? cxpc_dict_set_int64(reply, "exitCode", c->exit_code)
                                              : cxpc_dict_set_null(reply, "exitCode");
                if (r >= 0 && c->exited_at > 0)
                        r = cxpc_dict_set_date(reply, "exitedAt", c->exited_at);
                if (r < 0)
                        return r;
                return cxpc_connection_reply(conn, m, reply);
        }
        /* created or running: answered when it exits. */
        return pending_add(&c->waiters, &c->n_waiters, conn, m);
}

/* The routes that forward to a running container's runtime service as they are: runtime_route with
 * the container's id, its reply's key (of type) passed on. */
static int forward_when_running(cxpc_connection *conn, cxpc_object *m, Manager *mgr,
                                const char *runtime_route, const char *what, const char *key,
                                cxpc_type type) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *call = NULL;
        Container *c = lookup(mgr, conn, m);
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        if (c->status != CONTAINER_STATUS_RUNNING || !c->runtime)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "container %s is not running", c->id);
        r = runtime_client_id_request(c->runtime, runtime_route, NULL, &call);
        if (r < 0)
                return r;
        return forward_to_runtime(conn, m, c, call, what, key, type);
}

static int route_endpoint(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        return forward_when_running(conn, m, userdata, "createEndpoint", "reaching the runtime service of",
                                    "endpoint", CXPC_TYPE_ENDPOINT);
}

static int route_top(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        return forward_when_running(conn, m, userdata, "top", "listing the processes of", "processes",
                                    CXPC_TYPE_ARRAY);
}

static int route_logs(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_close_ int fd = -EBADF;
        Container *c = lookup(userdata, conn, m);
        int r;

        if (!c)
                return 0;
        if (c->status == CONTAINER_STATUS_BROKEN)
                return refuse_broken(conn, m, c);
        if (asprintf(&path, "%s/bundle/container.log", c->dir) < 0)
                return -ENOMEM;
        /* The client reads the file itself: an fd, not a copy through us. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno != ENOENT)
                return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(errno),
                                                   "opening %s: %m", path);
        r = cxpc_reply_new(&reply);
        if (r >= 0 && fd >= 0)
                r = cxpc_dict_set_fd(reply, "fd", fd);
        if (r >= 0)
                r = cxpc_dict_set_bool(reply, "running", c->status == CONTAINER_STATUS_RUNNING);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

static int route_prune(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(json_decrefp) json_t *removed = json_array();

        if (!removed)
                return -ENOMEM;
        for (size_t i = mgr->n_containers; i > 0; i--) {
                Container *c = mgr->containers[i - 1];
                /* Everything not running, as docker's prune; broken ones only go with rm -f. */
                if ((c->status != CONTAINER_STATUS_STOPPED && c->status != CONTAINER_STATUS_CREATED) ||
                    c->runtime || c->n_starters > 0)
                        continue;
                if (json_array_append_new(removed, json_string(c->id)) < 0)
                        return -ENOMEM;
                if (manager_remove_container(mgr, c) < 0)
                        json_array_remove(removed, json_array_size(removed) - 1);
        }
        return reply_json(conn, m, "removed", removed);
}

static int route_status(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(json_decrefp) json_t *j = NULL;
        size_t running = 0;

        for (size_t i = 0; i < mgr->n_containers; i++)
                if (mgr->containers[i]->status == CONTAINER_STATUS_RUNNING)
                        running++;
        j = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I, s:I}", "version", container_version(), "pid",
                      (json_int_t) getpid(), "root", mgr->root, "runDir", mgr->run_dir, "runtime",
                      mgr->runtime_path, "ociRuntime", mgr->oci_runtime, "containers",
                      (json_int_t) mgr->n_containers, "running", (json_int_t) running);
        return reply_json(conn, m, "status", j);
}

static int route_shutdown(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        int r;

        /* Containers keep running: their runtime services live in their own sessions and the
         * next API server re-attaches to them. */
        r = reply_empty(conn, m);
        (void) cxpc_connection_flush(conn, USEC_PER_SEC);
        (void) sd_event_exit(mgr->event, 0);
        return r;
}

int manager_setup_routes(Manager *mgr) {
        static const struct {
                const char *route;
                cxpc_route_handler_t handler;
        } table[] = {
                {APISERVER_ROUTE_CREATE, route_create},
                {APISERVER_ROUTE_START, route_start},
                {APISERVER_ROUTE_LIST, route_list},
                {APISERVER_ROUTE_INSPECT, route_inspect},
                {APISERVER_ROUTE_STOP, route_stop},
                {APISERVER_ROUTE_KILL, route_kill},
                {APISERVER_ROUTE_DELETE, route_delete},
                {APISERVER_ROUTE_WAIT, route_wait},
                {APISERVER_ROUTE_ENDPOINT, route_endpoint},
                {APISERVER_ROUTE_LOGS, route_logs},
                {APISERVER_ROUTE_RESIZE, route_resize},
                {APISERVER_ROUTE_TOP, route_top},
                {APISERVER_ROUTE_UPDATE, route_update},
                {APISERVER_ROUTE_PAUSE, route_pause_unpause},
                {APISERVER_ROUTE_UNPAUSE, route_pause_unpause},
                {APISERVER_ROUTE_PRUNE, route_prune},
                {APISERVER_ROUTE_SYSTEM_STATUS, route_status},
                {APISERVER_ROUTE_SYSTEM_SHUTDOWN, route_shutdown},
        };
        int r;

        r = cxpc_router_new(&mgr->router);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                r = cxpc_router_add(mgr->router, table[i].route, table[i].handler, mgr);
                if (r < 0)
                        return r;
        }
        return 0;
}
