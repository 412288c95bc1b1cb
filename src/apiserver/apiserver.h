/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* container-apiserver internals (docs/apiserver.md). */

#include <cxpc/cxpc.h>
#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "container-common.h"
#include "image-store.h"
#include "macro.h"
#include "runtime-client.h"

/* A pid read from a peer or from disk: a positive int32, else 0 ("none"). Never a group or
 * "every process" value that kill() would act on. */
static inline pid_t pid_from_int64(int64_t v) {
        return v > 0 && v <= INT32_MAX ? (pid_t) v : 0;
}

/* Containers the registry keeps in memory; also bounds what one scan loads. */
#define APISERVER_CONTAINERS_MAX 4096u
/* Requests parked on one container (wait, stop, rm -f) before new ones are refused. */
#define APISERVER_PENDING_PER_CONTAINER_MAX 1024u
/* Attempts at finding an unused generated id. */
#define APISERVER_ID_ATTEMPTS 8
/* How long the API server gives a runtime service for quick calls and for a stop beyond its own timeout. */
#define APISERVER_RUNTIME_TIMEOUT_USEC     (30ull * 1000000ull)
#define APISERVER_STOP_GRACE_USEC          (30ull * 1000000ull)
#define APISERVER_STOP_TIMEOUT_DEFAULT_SEC 10
/* Where --init puts container-init inside the container (/dev is a tmpfs, writable even with --read-only). */
#define CONTAINER_INIT_PATH "/dev/init"

typedef struct Manager Manager;
typedef struct Container Container;

typedef struct Pending {
        cxpc_connection *conn;
        cxpc_object *request;
        cxpc_route_handler_t handler; /* for requests handled again later (pending_redispatch_all) */
} Pending;

struct Container {
        unsigned n_ref;
        Manager *manager;
        char *id;
        char *dir;      /* $ROOT/containers/<id> */
        json_t *config; /* the container configuration; NULL when broken */
        ContainerStatus status;
        char *broken_reason;
        int64_t created_at; /* ns since the epoch; 0 = unset */
        int64_t started_at;
        int64_t exited_at;
        int exit_code;    /* -1: none yet, or unknown (the runtime service vanished) */
        pid_t pid;        /* the runtime service's pid; 0 = none */
        pid_t init_pid;   /* the container's init process (host pid) while running; 0 = none or unknown */
        char *last_error; /* why the last start failed, or why the exit is unknown */
        RuntimeClient *runtime;
        RuntimeClient *retiring; /* told to shut down; its socket name is busy until it exits */
        bool retiring_gone;
        Pending *starters; /* starts parked until the retiring service is gone */
        size_t n_starters;
        Pending *after_start; /* start, stop, kill and rm that came during a start, in order */
        size_t n_after_start;
        Pending *waiters;
        size_t n_waiters;
        Pending *stoppers; /* stop and rm -f requests answered when the exit is recorded */
        size_t n_stoppers;
        bool starting;       /* a start in flight: its runtime service is starting the container */
        bool remove_on_exit; /* rm -f of a running container in flight */
        bool removed;        /* gone from the registry; late callbacks only clean up */
        /* Running, with its cgroup frozen (container/pause). Not a status of its own: everything
         * that applies to a running container (stop, kill, rm -f, re-attach) applies; its runtime
         * service is the truth, asked again at re-attach. */
        bool paused;
};

/* A sealed copy of an OCI runtime's binary (oci-exe-cache.c). */
typedef struct OciExeCopy {
        char *path; /* NULL: unused (and fd unset) */
        struct stat st;
        int fd;
} OciExeCopy;

#define APISERVER_OCI_EXE_COPIES_MAX 4u
/* How long an exiting API server waits for image loads and saves still running. */
#define APISERVER_STORE_JOB_EXIT_WAIT_SEC 10u

struct Manager {
        sd_event *event;
        cxpc_listener *listener;
        cxpc_router *router;
        char *root;
        char *run_dir;
        char *containers_dir;
        char *runtime_path;
        char *oci_runtime;  /* the OCI runtime of containers created without one (--oci-runtime) */
        char *init_path;    /* container-init for --init; NULL when not installed */
        ImageStore *images; /* $ROOT/images */
        int lock_fd;
        Container **containers;
        size_t n_containers;
        OciExeCopy oci_exes[APISERVER_OCI_EXE_COPIES_MAX];
        struct StoreJob *store_jobs; /* image loads and saves in flight (store-jobs.c) */
        /* Directories waiting for the deleter thread; it and the loop share them under the lock. */
        pthread_mutex_t delete_lock;
        char **delete_pending;
        size_t n_delete_pending;
        bool deleter_running;
};

/* oci-exe-cache.c: the sealed copy of the binary a runtime value (crun, runc, a path) resolves to,
 * made on first use and again when the file changes; a borrowed fd or a negative errno. */
int manager_oci_exe_fd(Manager *m, const char *runtime);
void manager_oci_exes_free(Manager *m);

/* store-jobs.c: an image load or save in a thread of its own (the loop keeps serving); done() runs
 * on the loop with the result (count of images or 0, else a negative errno), the store's
 * explanation of a failure ("" if none) and, for a load, the digests loaded and its timings. fd is
 * duplicated; refs (save) are copied. */
typedef enum StoreJobKind {
        STORE_JOB_LOAD,
        STORE_JOB_SAVE,
        STORE_JOB_DELETE, /* the deleter: drains the deletion queue (store_delete_later()); no client */
} StoreJobKind;
typedef void (*store_job_done_fn)(Manager *m, cxpc_connection *conn, cxpc_object *request, int result,
                                  const char *error, char *const *digests, const ImageLoadStats *stats);
int store_job_start(Manager *m, StoreJobKind kind, cxpc_connection *conn, cxpc_object *request, int fd,
                    const char *default_name, char *const *refs, store_job_done_fn done);
/* Deletes the paths (directories moved aside already, so nobody sees them) in the deleter thread,
 * started when none runs; without a thread, here. The paths are copied. */
int store_delete_later(Manager *m, char *const *paths);
/* At exit: waits for the jobs still running, up to APISERVER_STORE_JOB_EXIT_WAIT_SEC, and answers
 * their clients; past that the process exits at once (_exit), without them. */
void store_jobs_finish(Manager *m);

/* registry.c */
Container *container_ref(Container *c);
Container *container_unref(Container *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Container *, container_unref);
int container_new(Manager *m, const char *id, Container **ret);
/* Registry writes (docs/apiserver.md, "Durability"): sync says which fsyncs they need. */
int container_save_state(Container *c, WriteSync sync);
int container_save_config(Container *c, WriteSync sync);
int container_write_bundle(Container *c);
/* Its record is kept after it exits (no --rm): only then must it survive a power loss. */
bool container_is_kept(Container *c);
/* The configuration's "runtime": what container-runtime gets as --runtime. */
const char *container_oci_runtime(Container *c);
char *container_bundle_path(Container *c);
int container_load(Manager *m, const char *id, Container **ret);
int manager_add_container(Manager *m, Container *c);
Container *manager_find(Manager *m, const char *id);
/* Takes the container out of the registry and removes its directory. */
int manager_remove_container(Manager *m, Container *c);
int manager_scan(Manager *m);
/* The stable JSON shape of `inspect` and `ls --format json` (docs/apiserver.md). */
json_t *container_to_json(Container *c);
/* The status clients see: a paused container is "paused", otherwise its ContainerStatus. */
const char *container_display_status(Container *c);

/* The container runs from an image of the store (its "image" is set and "rootfs" is ours). */
bool container_uses_image(Container *c);
/* Mounts the image's overlay at the container's rootfs directory unless already mounted. */
int container_mount_image_rootfs(Container *c);
/* routes.c: replies {key: j}, converting the jansson value through the JSON bridge. */
int reply_json(cxpc_connection *conn, cxpc_object *m, const char *key, json_t *j);
/* Replies with an empty dictionary (success, nothing to say). */
int reply_empty(cxpc_connection *conn, cxpc_object *m);

/* supervise.c */
int container_spawn_runtime(Container *c);
int container_watch_exit(Container *c);
void container_record_exit(Container *c, int exit_code, int64_t exited_at, const char *reason);
void container_release_runtime(Container *c);
int container_reattach(Container *c);
/* After a scan: re-attaches to the running containers, removes the --rm ones that are not running. */
void manager_reconcile(Manager *m);
void manager_reap_children(Manager *m);

/* routes-images.c */
int manager_setup_image_routes(Manager *m);
/* For route_create: resolves cfg's "image", merges its config with the CLI's overrides into
 * "process" and points "rootfs" at the container's mount point. */
int image_prepare_config(Manager *m, const char *id, json_t *cfg, char *err, size_t errsize);

/* routes.c */
int manager_setup_routes(Manager *m);
/* Handles the start requests parked while the previous runtime service was exiting. */
void container_resume_starts(Container *c);
int pending_add(Pending **list, size_t *n, cxpc_connection *conn, cxpc_object *request);
/* Parks a request to be handled again by handler (pending_redispatch_all()). */
int pending_add_redispatch(Pending **list, size_t *n, cxpc_connection *conn, cxpc_object *request,
                           cxpc_route_handler_t handler);
/* Empties the list first, then hands each request to its handler again, in order: a handler may
 * park its request anew. Handler failures are answered as the router answers them. */
void pending_redispatch_all(Pending **list, size_t *n, Manager *mgr);
void pending_reply_all(Pending **list, size_t *n, cxpc_object *reply);
