/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Image loads and saves, and the removal of container directories, off the loop. Reading or
 * writing an archive takes seconds, and so does deleting an upper layer of 20,000 files; run in a
 * route handler they held up every other client (ls, stop, ...) for as long. Each load or save
 * runs in a thread of its own with its own ImageStore handle on the same root: handles on one root
 * are safe together (ROOT/lock orders the index's mutations, image-store.h). Deletions go to one
 * deleter thread at a time, through a queue (a prune of a thousand containers is one thread). A
 * thread touches no libcxpc object and nothing of the Manager but the deletion queue, under its
 * lock; it reports through an eventfd, and the reply is built on the loop. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "apiserver.h"

typedef struct StoreJob StoreJob;
struct StoreJob {
        StoreJobKind kind;
        Manager *manager;
        cxpc_connection *conn; /* the client, answered by done() */
        cxpc_object *request;
        store_job_done_fn done;
        /* Input, owned by the job and read by the thread. */
        char *root;
        int fd;             /* the archive: read by a load, written by a save */
        char *default_name; /* load */
        char **refs;        /* save */
        /* Output, written by the thread before it signals. */
        int result;
        char **digests; /* load */
        ImageLoadStats stats;
        char error[512];
        /* The loop's side. */
        pthread_t thread;
        int event_fd;
        sd_event_source *event_source;
        StoreJob *next; /* the Manager's list of jobs in flight */
};

static void store_job_unlink(StoreJob *j) {
        for (StoreJob **p = &j->manager->store_jobs; *p; p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        break;
                }
}

static StoreJob *store_job_free(StoreJob *j) {
        if (!j)
                return NULL;
        sd_event_source_disable_unref(j->event_source);
        safe_close(j->event_fd);
        safe_close(j->fd);
        cxpc_connection_unref(j->conn);
        cxpc_object_unref(j->request);
        free(j->root);
        free(j->default_name);
        image_strv_free(j->refs);
        image_strv_free(j->digests);
        free(j);
        return NULL;
}

static void delete_paths(char **l) {
        /* Moved aside already (renamed), so nobody sees them meanwhile. */
        for (char **p = l; p && *p; p++) {
                int r = rm_rf(*p);
                if (r < 0)
                        fprintf(stderr, "container-apiserver: removing %s: %s\n", *p, strerror(-r));
        }
        image_strv_free(l);
}

/* Takes the queue's paths until it stays empty, then marks the deleter gone (under the lock, so a
 * path queued meanwhile is either taken here or starts a new deleter). */
static void delete_queue_drain(Manager *m) {
        for (;;) {
                char **l;

                pthread_mutex_lock(&m->delete_lock);
                l = TAKE_PTR(m->delete_pending);
                m->n_delete_pending = 0;
                if (!l)
                        m->deleter_running = false;
                pthread_mutex_unlock(&m->delete_lock);
                if (!l)
                        return;
                delete_paths(l);
        }
}

static void *store_job_thread(void *userdata) {
        StoreJob *j = userdata;
        ImageStore *s = NULL;
        uint64_t one = 1;

        if (j->kind == STORE_JOB_DELETE) {
                delete_queue_drain(j->manager);
                j->result = 0;
        } else
                j->result = image_store_open(j->root, &s);
        if (j->kind != STORE_JOB_DELETE && j->result >= 0) {
                if (j->kind == STORE_JOB_LOAD) {
                        ImageLoadOptions opts = {.stats = &j->stats, .default_name = j->default_name};
                        j->result = image_store_load(s, j->fd, &opts, &j->digests);
                } else
                        j->result = image_store_save(s, j->refs, j->fd);
                snprintf(j->error, sizeof j->error, "%s", image_store_last_error(s));
        }
        image_store_free(s);
        /* The archive is finished with: a client reading a save sees EOF now. */
        j->fd = safe_close(j->fd);
        while (write(j->event_fd, &one, sizeof one) < 0 && errno == EINTR)
                ;
        return NULL;
}

static int on_store_job_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        StoreJob *j = userdata;

        (void) pthread_join(j->thread, NULL);
        store_job_unlink(j);
        if (j->done)
                j->done(j->manager, j->conn, j->request, j->result, j->error, j->digests, &j->stats);
        store_job_free(j);
        return 0;
}

int store_job_start(Manager *m, StoreJobKind kind, cxpc_connection *conn, cxpc_object *request, int fd,
                    const char *default_name, char *const *refs, store_job_done_fn done) {
        StoreJob *j;
        int r;

        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        *j = (StoreJob){.kind = kind, .manager = m, .done = done, .fd = -EBADF, .event_fd = -EBADF};
        j->root = strdup(image_store_root(m->images));
        j->default_name = default_name ? strdup(default_name) : NULL;
        if (!j->root || (default_name && !j->default_name))
                goto nomem;
        if (refs) {
                size_t n = 0;
                while (refs[n])
                        n++;
                j->refs = calloc(n + 1, sizeof(char *));
                if (!j->refs)
                        goto nomem;
                for (size_t i = 0; i < n; i++)
                        if (!(j->refs[i] = strdup(refs[i])))
                                goto nomem;
        }
        j->fd = fd < 0 ? -EBADF : fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd >= 0 && j->fd < 0) {
                r = negative_errno();
                store_job_free(j);
                return r;
        }
        j->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->event_fd < 0) {
                r = negative_errno();
                store_job_free(j);
                return r;
        }
        r = sd_event_add_io(m->event, &j->event_source, j->event_fd, EPOLLIN, on_store_job_done, j);
        if (r < 0) {
                store_job_free(j);
                return r;
        }
        (void) sd_event_source_set_description(j->event_source, "image-store-job");
        j->conn = conn ? cxpc_connection_ref(conn) : NULL;
        j->request = request ? cxpc_object_ref(request) : NULL;
        r = -pthread_create(&j->thread, NULL, store_job_thread, j);
        if (r < 0) {
                store_job_free(j);
                return r;
        }
        j->next = m->store_jobs;
        m->store_jobs = j;
        return 0;

nomem:
        store_job_free(j);
        return -ENOMEM;
}

void store_jobs_finish(Manager *m) {
        struct timespec deadline;

        /* The process must not exit under a running job: exit handlers (OpenSSL's, ours) would tear
         * down what it uses. A load normally ends soon; one whose client stalls is cut short. */
        (void) clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += APISERVER_STORE_JOB_EXIT_WAIT_SEC;
        while (m->store_jobs) {
                StoreJob *j = m->store_jobs;
                if (pthread_timedjoin_np(j->thread, NULL, &deadline) != 0) {
                        fprintf(stderr,
                                "container-apiserver: %s still runs after %u s: exiting without it (an "
                                "interrupted load leaves nothing behind, the next image prune removes what "
                                "a "
                                "removal left)\n",
                                j->kind == STORE_JOB_LOAD   ? "an image load"
                                : j->kind == STORE_JOB_SAVE ? "an image save"
                                                            : "a container removal",
                                APISERVER_STORE_JOB_EXIT_WAIT_SEC);
                        fflush(stderr);
                        _exit(EXIT_SUCCESS);
                }
                m->store_jobs = j->next;
                /* Its client is answered as usual, if still there. */
                if (j->done)
                        j->done(j->manager, j->conn, j->request, j->result, j->error, j->digests, &j->stats);
                store_job_free(j);
        }
}

int store_delete_later(Manager *m, char *const *paths) {
        size_t n = 0;
        bool start;
        char **l;
        int r;

        while (paths[n])
                n++;
        pthread_mutex_lock(&m->delete_lock);
        l = reallocarray(m->delete_pending, m->n_delete_pending + n + 1, sizeof(char *));
        if (!l) {
                pthread_mutex_unlock(&m->delete_lock);
                return -ENOMEM;
        }
        m->delete_pending = l;
        for (size_t i = 0; i < n; i++) {
                l[m->n_delete_pending] = strdup(paths[i]);
                if (l[m->n_delete_pending])
                        m->n_delete_pending++;
        }
        l[m->n_delete_pending] = NULL;
        start = !m->deleter_running;
        m->deleter_running = true;
        pthread_mutex_unlock(&m->delete_lock);
        if (!start)
                return 0;
        r = store_job_start(m, STORE_JOB_DELETE, NULL, NULL, -EBADF, NULL, NULL, NULL);
        if (r < 0) {
                /* No thread: delete here, now. */
                pthread_mutex_lock(&m->delete_lock);
                l = TAKE_PTR(m->delete_pending);
                m->n_delete_pending = 0;
                m->deleter_running = false;
                pthread_mutex_unlock(&m->delete_lock);
                delete_paths(l);
        }
        return 0;
}
