/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* container-apiserver: the container registry and the supervisor of runtime services. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "apiserver.h"

static void manager_free(Manager *m) {
        for (size_t i = 0; i < m->n_containers; i++) {
                Container *c = m->containers[i];

                /* Leave runtime services running; only drop our connections (which also drops
                 * the references their disconnect handlers hold). */
                c->removed = true;
                c->runtime = runtime_client_free(c->runtime);
                c->retiring = runtime_client_free(c->retiring);
                container_unref(c);
        }
        free(m->containers);
        if (m->listener) {
                cxpc_listener_close(m->listener);
                cxpc_listener_unref(m->listener);
        }
        cxpc_router_unref(m->router);
        image_store_free(m->images);
        sd_event_unref(m->event);
        safe_close(m->lock_fd);
        free(m->root);
        free(m->run_dir);
        free(m->containers_dir);
        free(m->runtime_path);
        free(m->oci_runtime);
        free(m->init_path);
        manager_oci_exes_free(m);
        image_strv_free(m->delete_pending);
}

static int on_sigchld(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        manager_reap_children(userdata);
        return 0;
}

static void usage(FILE *f) {
        fprintf(f,
                "Usage: container-apiserver [--root DIR] [--run-dir DIR] [--runtime PATH] [--oci-runtime "
                "NAME|PATH]\n"
                "  --root DIR      registry directory (env CONTAINER_ROOT, default " CONTAINER_ROOT_DEFAULT
                ")\n"
                "  --run-dir DIR   sockets (env CONTAINER_RUN_DIR, default " CONTAINER_RUN_DIR_DEFAULT ")\n"
                "  --runtime PATH  the container-runtime binary (env CONTAINER_RUNTIME)\n"
                "  --oci-runtime NAME|PATH\n"
                "                  OCI runtime of containers created without run --runtime: crun, runc or\n"
                "                  an absolute path (env CONTAINER_OCI_RUNTIME, "
                "default " CONTAINER_OCI_RUNTIME_DEFAULT ")\n");
}

static int run(int argc, char **argv) {
        static const struct option options[] = {
                {"root", required_argument, NULL, 'r'},
                {"run-dir", required_argument, NULL, 'R'},
                {"runtime", required_argument, NULL, 'x'},
                {"oci-runtime", required_argument, NULL, 'O'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        _cleanup_free_ char *sock = NULL, *lock = NULL, *images = NULL;
        const char *root = NULL, *run_dir = NULL, *runtime = NULL, *oci_runtime = NULL;
        char err[512];
        Manager m = {.lock_fd = -EBADF, .delete_lock = PTHREAD_MUTEX_INITIALIZER};
        sigset_t ss;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'r':
                        root = optarg;
                        break;
                case 'R':
                        run_dir = optarg;
                        break;
                case 'x':
                        runtime = optarg;
                        break;
                case 'O':
                        oci_runtime = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("container-apiserver %s\n", container_version());
                        return 0;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        if (optind < argc) {
                usage(stderr);
                return -EINVAL;
        }

        r = container_root_dir(root, &m.root);
        if (r >= 0)
                r = container_run_dir(run_dir, &m.run_dir);
        if (r < 0)
                goto out;
        if (runtime)
                m.runtime_path = strdup(runtime);
        else if (find_helper_binary("CONTAINER_RUNTIME", "runtime", "container-runtime", &m.runtime_path) <
                 0) {
                fprintf(stderr,
                        "container-apiserver: container-runtime not found (set CONTAINER_RUNTIME)\n");
                r = -ENOENT;
                goto out;
        }
        /* The default OCI runtime: refused now rather than at every create when it is set and wrong. */
        if (!oci_runtime || !*oci_runtime)
                oci_runtime = getenv("CONTAINER_OCI_RUNTIME");
        if (oci_runtime && *oci_runtime) {
                r = oci_runtime_check(oci_runtime, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "container-apiserver: --oci-runtime: %s\n", err);
                        goto out;
                }
        } else
                oci_runtime = CONTAINER_OCI_RUNTIME_DEFAULT;
        m.oci_runtime = strdup(oci_runtime);
        if (!m.oci_runtime) {
                r = -ENOMEM;
                goto out;
        }
        /* Optional: only --init needs it. */
        (void) find_helper_binary("CONTAINER_INIT", "apiserver", "container-init", &m.init_path);
        if (!m.runtime_path || asprintf(&m.containers_dir, "%s/containers", m.root) < 0) {
                r = -ENOMEM;
                goto out;
        }
        r = mkdir_p(m.containers_dir, 0700);
        if (r >= 0)
                r = mkdir_p(m.run_dir, 0700);
        if (r < 0) {
                fprintf(stderr, "container-apiserver: creating %s and %s: %s\n", m.containers_dir, m.run_dir,
                        strerror(-r));
                goto out;
        }

        /* One API server per root: two would race on the registry. */
        if (asprintf(&lock, "%s/apiserver.lock", m.root) < 0) {
                r = -ENOMEM;
                goto out;
        }
        m.lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (m.lock_fd < 0 || flock(m.lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = negative_errno();
                fprintf(stderr, "container-apiserver: %s: %s\n", lock,
                        r == -EWOULDBLOCK ? "another container-apiserver uses this root" : strerror(-r));
                r = -EADDRINUSE;
                goto out;
        }

        if (asprintf(&images, "%s/images", m.root) < 0) {
                r = -ENOMEM;
                goto out;
        }
        r = image_store_open(images, &m.images);
        if (r < 0) {
                fprintf(stderr, "container-apiserver: opening the image store %s: %s\n", images,
                        strerror(-r));
                goto out;
        }

        sigemptyset(&ss);
        sigaddset(&ss, SIGCHLD);
        sigaddset(&ss, SIGTERM);
        sigaddset(&ss, SIGINT);
        sigaddset(&ss, SIGHUP);
        (void) sigprocmask(SIG_BLOCK, &ss, NULL);
        (void) signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&m.event);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGCHLD, on_sigchld, &m);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(m.event, NULL, SIGHUP, NULL, NULL);
        if (r >= 0)
                r = manager_setup_routes(&m);
        if (r >= 0)
                r = manager_setup_image_routes(&m);
        if (r < 0)
                goto out;

        r = manager_scan(&m);
        if (r < 0) {
                fprintf(stderr, "container-apiserver: scanning %s: %s\n", m.containers_dir, strerror(-r));
                goto out;
        }
        manager_reconcile(&m);

        if (asprintf(&sock, "%s/%s", m.run_dir, CONTAINER_APISERVER_SOCKET) < 0) {
                r = -ENOMEM;
                goto out;
        }
        r = cxpc_listener_new_for_path(m.event, sock, &m.listener);
        if (r >= 0)
                r = cxpc_listener_set_router(m.listener, m.router);
        if (r < 0) {
                fprintf(stderr, "container-apiserver: listening on %s: %s\n", sock, strerror(-r));
                goto out;
        }

        r = sd_event_loop(m.event);
        store_jobs_finish(&m);
out:
        manager_free(&m);
        return r;
}

int main(int argc, char **argv) {
        int r = run(argc, argv);

        return r < 0 ? 1 : 0;
}
