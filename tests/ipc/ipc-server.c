/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Test service for tests/ipc: a real libcxpc server in its own process.
 *
 *   ipc-server --path PATH [--ready-fd N]
 *   ipc-server --activated [--ready-fd N]      (LISTEN_FDS/LISTEN_PID)
 *
 * Writes "R" to the ready fd once it accepts connections. Routes are listed in main(). */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "fd-count.h"
#include "cxpc/cxpc.h"

#define DEFER_USEC         (50u * 1000u)
#define MAX_ANON_LISTENERS 16

static sd_event *event;
static cxpc_router *router;
static unsigned n_oneway, n_disconnects, n_accepted;
static int double_reply_result = 1;
static cxpc_listener *anon[MAX_ANON_LISTENERS];
static size_t n_anon;

static int reply_dict(cxpc_connection *c, cxpc_object *m, cxpc_object *reply) {
        int r = cxpc_connection_reply(c, m, reply);
        cxpc_object_unref(reply);
        return r;
}

static int route_echo(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *reply = NULL;
        int r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        cxpc_object *v = cxpc_dict_get(m, "value");
        if (v)
                (void) cxpc_dict_set(reply, "value", v);
        (void) cxpc_dict_set_int64(reply, "pid", getpid());
        return reply_dict(c, m, reply);
}

static int route_oneway(cxpc_connection *c, cxpc_object *m, void *userdata) {
        n_oneway++;
        return 0;
}

static int route_fail(cxpc_connection *c, cxpc_object *m, void *userdata) {
        return -ENOENT;
}

static int route_silent(cxpc_connection *c, cxpc_object *m, void *userdata) {
        return 0; /* never replies */
}

static int route_suicide(cxpc_connection *c, cxpc_object *m, void *userdata) {
        (void) raise(SIGKILL);
        return 0;
}

static int route_close(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *reply = NULL;
        if (cxpc_reply_new(&reply) >= 0)
                (void) reply_dict(c, m, reply);
        (void) cxpc_connection_flush(c, 0);
        cxpc_connection_close(c);
        return 0;
}

/* Replies and closes at once, without flushing: the reply must still leave (corked or not). */
static int route_close_now(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *reply = NULL;
        if (cxpc_reply_new(&reply) >= 0)
                (void) reply_dict(c, m, reply);
        cxpc_connection_close(c);
        return 0;
}

typedef struct Deferred {
        cxpc_connection *connection;
        cxpc_object *request;
} Deferred;

static int deferred_cb(sd_event_source *s, uint64_t usec, void *userdata) {
        Deferred *d = userdata;
        cxpc_object *reply = NULL;

        if (cxpc_reply_new(&reply) >= 0) {
                (void) cxpc_dict_set_bool(reply, "deferred", true);
                (void) cxpc_connection_reply(d->connection, d->request, reply);
                double_reply_result = cxpc_connection_reply(d->connection, d->request, reply);
                cxpc_object_unref(reply);
        }
        cxpc_object_unref(d->request);
        cxpc_connection_unref(d->connection);
        free(d);
        sd_event_source_disable_unref(s);
        return 0;
}

static int route_defer(cxpc_connection *c, cxpc_object *m, void *userdata) {
        Deferred *d = malloc(sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (Deferred){cxpc_connection_ref(c), cxpc_object_ref(m)};
        int r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC, DEFER_USEC, 0, deferred_cb, d);
        if (r < 0) {
                cxpc_object_unref(d->request);
                cxpc_connection_unref(d->connection);
                free(d);
        }
        return r;
}

/* Reads everything from the fd the client sent and returns it. */
static int route_fd_read(cxpc_connection *c, cxpc_object *m, void *userdata) {
        char buf[4096];
        int fd = -1, r;
        ssize_t n;

        r = cxpc_dict_dup_fd(m, "fd", &fd);
        if (r < 0)
                return r;
        (void) lseek(fd, 0, SEEK_SET);
        n = read(fd, buf, sizeof(buf));
        r = n < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return r;

        cxpc_object *reply = NULL;
        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        (void) cxpc_dict_set_data(reply, "data", buf, (size_t) n);
        return reply_dict(c, m, reply);
}

/* Returns the read end of a pipe holding a known text. */
static int route_fd_make(cxpc_connection *c, cxpc_object *m, void *userdata) {
        static const char text[] = "hello from the server";
        int p[2], r;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        if (write(p[1], text, sizeof(text) - 1) != (ssize_t) sizeof(text) - 1) {
                close(p[0]);
                close(p[1]);
                return -EIO;
        }
        close(p[1]);

        cxpc_object *reply = NULL;
        r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_dict_set_fd(reply, "fd", p[0]);
        close(p[0]);
        if (r < 0) {
                cxpc_object_unref(reply);
                return r;
        }
        return reply_dict(c, m, reply);
}

static int route_stats(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *reply = NULL;
        int r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        (void) cxpc_dict_set_uint64(reply, "oneway", n_oneway);
        (void) cxpc_dict_set_uint64(reply, "disconnects", n_disconnects);
        (void) cxpc_dict_set_uint64(reply, "accepted", n_accepted);
        (void) cxpc_dict_set_int64(reply, "doubleReply", double_reply_result);
        (void) cxpc_dict_set_int64(reply, "fds", count_open_fds(0));
        return reply_dict(c, m, reply);
}

/* Sends a one-way "event" to the caller before replying. */
static int route_notify(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *ev = NULL, *reply = NULL;
        int r = cxpc_message_new_request("event", &ev);
        if (r < 0)
                return r;
        (void) cxpc_dict_set_int64(ev, "n", 1);
        r = cxpc_connection_send(c, ev);
        cxpc_object_unref(ev);
        if (r < 0)
                return r;
        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        return reply_dict(c, m, reply);
}

static void on_disconnect(cxpc_connection *c, void *userdata) {
        n_disconnects++;
}

static int on_accept(cxpc_listener *l, cxpc_connection *c, void *userdata) {
        n_accepted++;
        return cxpc_connection_add_disconnect_handler(c, on_disconnect, NULL);
}

static int route_endpoint_new(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *ep = NULL, *reply = NULL;
        int r;

        if (n_anon >= MAX_ANON_LISTENERS)
                return -EBUSY;
        r = cxpc_listener_new_anonymous(event, &anon[n_anon]);
        if (r < 0)
                return r;
        cxpc_listener *l = anon[n_anon++];
        (void) cxpc_listener_set_router(l, router);
        (void) cxpc_listener_set_accept_handler(l, on_accept, NULL);
        r = cxpc_listener_get_endpoint(l, &ep);
        if (r < 0)
                return r;
        r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_dict_set(reply, "endpoint", ep);
        cxpc_object_unref(ep);
        if (r < 0) {
                cxpc_object_unref(reply);
                return r;
        }
        return reply_dict(c, m, reply);
}

/* Connects to the endpoint in the request (it passed through us), calls "echo" there, and returns
 * the pid that answered plus the endpoint itself (passing it on once more). */
static int route_relay(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_connection *peer = NULL;
        cxpc_object *req = NULL, *rep = NULL, *reply = NULL;
        int64_t pid = 0;
        int r;

        cxpc_object *ep = cxpc_dict_get(m, "endpoint");
        if (!ep)
                return -EINVAL;
        r = cxpc_connection_new_for_endpoint(ep, &peer);
        if (r < 0)
                return r;
        r = cxpc_message_new_request("echo", &req);
        if (r >= 0)
                r = cxpc_connection_call(peer, req, 5 * 1000000ull, &rep);
        if (r >= 0)
                r = cxpc_dict_get_int64(rep, "pid", &pid);
        cxpc_object_unref(req);
        cxpc_object_unref(rep);
        cxpc_connection_close_unref(peer);
        if (r < 0)
                return r;

        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        (void) cxpc_dict_set_int64(reply, "pid", pid);
        (void) cxpc_dict_set_int64(reply, "relayPid", getpid());
        (void) cxpc_dict_set(reply, "endpoint", ep);
        return reply_dict(c, m, reply);
}

static int route_exit(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *reply = NULL;
        if (cxpc_reply_new(&reply) >= 0)
                (void) reply_dict(c, m, reply);
        (void) cxpc_connection_flush(c, 0);
        return sd_event_exit(event, 0);
}

int main(int argc, char **argv) {
        static const struct option options[] = {{"path", required_argument, NULL, 'p'},
                                                {"activated", no_argument, NULL, 'a'},
                                                {"ready-fd", required_argument, NULL, 'r'},
                                                {}};
        const char *path = NULL;
        bool activated = false;
        int ready_fd = -1, c, r;
        cxpc_listener *listener = NULL;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        path = optarg;
                        break;
                case 'a':
                        activated = true;
                        break;
                case 'r':
                        ready_fd = atoi(optarg);
                        break;
                default:
                        return 2;
                }
        if (!path == !activated) {
                fprintf(stderr, "need exactly one of --path, --activated\n");
                return 2;
        }

        /* Many concurrent clients: use what the hard limit allows. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) >= 0) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        r = sd_event_default(&event);
        if (r < 0)
                goto fail;
        r = cxpc_router_new(&router);
        if (r < 0)
                goto fail;
        static const struct {
                const char *name;
                cxpc_route_handler_t handler;
        } routes[] = {
                {"echo", route_echo},     {"oneway", route_oneway},   {"fail", route_fail},
                {"silent", route_silent}, {"suicide", route_suicide}, {"close", route_close},
                {"defer", route_defer},   {"fd/read", route_fd_read}, {"fd/make", route_fd_make},
                {"stats", route_stats},   {"notify", route_notify},   {"endpoint/new", route_endpoint_new},
                {"relay", route_relay},   {"exit", route_exit},       {"close-now", route_close_now},
        };
        for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
                r = cxpc_router_add(router, routes[i].name, routes[i].handler, NULL);
                if (r < 0)
                        goto fail;
        }

        r = path ? cxpc_listener_new_for_path(event, path, &listener)
                 : cxpc_listener_new_activated(event, &listener);
        if (r < 0)
                goto fail;
        (void) cxpc_listener_set_router(listener, router);
        (void) cxpc_listener_set_accept_handler(listener, on_accept, NULL);

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (ready_fd >= 0) {
                (void) write(ready_fd, "R", 1);
                close(ready_fd);
        }

        r = sd_event_loop(event);

        for (size_t i = 0; i < n_anon; i++)
                cxpc_listener_unref(anon[i]);
        cxpc_listener_unref(listener);
        cxpc_router_unref(router);
        sd_event_unref(event);
        return r < 0 ? 1 : 0;

fail:
        fprintf(stderr, "ipc-server: %s\n", strerror(-r));
        return 1;
}
