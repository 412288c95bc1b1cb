/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Listeners: a bound/activated/inherited listening socket, or the connector socket of an anonymous
 * endpoint (docs/libcxpc.md). Accepted connections own themselves until they disconnect; the
 * listener tracks them for the per-uid cap and closes the remaining ones when it is freed. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "connection-internal.h"
#include "cxpc/cxpc.h"
#include "macro.h"
#include "object-internal.h"
#include "socket-util.h"

/* Connections accepted per wakeup before other event sources get a turn. */
#define LISTENER_ACCEPT_BATCH_MAX   64u
#define LISTENER_BACKLOG            4096
#define LISTENER_CONNECT_RECORD_MAX 64u

typedef enum ListenerKind {
        LISTENER_PATH,
        LISTENER_FD, /* inherited or socket-activated */
        LISTENER_ANONYMOUS,
        _LISTENER_KIND_MAX,
} ListenerKind;

typedef struct UidCount {
        uid_t uid;
        unsigned count;
} UidCount;

struct cxpc_listener {
        unsigned n_ref;
        ListenerKind kind;
        int fd;     /* listening socket, or our end of the connector socketpair */
        char *path; /* the socket file we created, removed on close */
        cxpc_object *endpoint;

        sd_event *event;
        sd_event_source *io_source;

        cxpc_connection_accept_handler_t accept_handler;
        void *accept_userdata;
        cxpc_router *router;
        cxpc_policy_t policy;
        void *policy_userdata;

        cxpc_connection *connections;
        size_t n_connections;
        UidCount *uids;
        size_t n_uids;
};

static UidCount *listener_uid(cxpc_listener *l, uid_t uid, bool create) {
        for (size_t i = 0; i < l->n_uids; i++)
                if (l->uids[i].uid == uid)
                        return &l->uids[i];
        if (!create)
                return NULL;
        UidCount *n = reallocarray(l->uids, l->n_uids + 1, sizeof(*n));
        if (!n)
                return NULL;
        l->uids = n;
        n[l->n_uids] = (UidCount){.uid = uid};
        return &n[l->n_uids++];
}

void listener_connection_gone(cxpc_listener *l, cxpc_connection *c) {
        assert(l);
        assert(c && c->listener == l);

        if (c->listener_prev)
                c->listener_prev->listener_next = c->listener_next;
        else
                l->connections = c->listener_next;
        if (c->listener_next)
                c->listener_next->listener_prev = c->listener_prev;
        c->listener_prev = c->listener_next = NULL;
        c->listener = NULL;
        l->n_connections--;

        if (c->have_peer) {
                UidCount *u = listener_uid(l, c->peer.uid, false);
                if (u && u->count > 0)
                        u->count--;
        }
}

/* Turns a connected socket into an accepted connection (fd ownership taken). */
static void listener_add_connection(cxpc_listener *l, int fd) {
        cxpc_connection *c = NULL;
        int r;

        r = connection_new(fd, &c);
        if (r < 0) {
                fprintf(stderr, "cxpc: failed to set up accepted connection: %s\n", strerror(-r));
                return;
        }
        /* From here on the connection owns itself until it disconnects. */
        c->self_ref = true;

        if (c->have_peer) {
                UidCount *u = listener_uid(l, c->peer.uid, true);
                if (!u || u->count >= CXPC_CONNECTIONS_PER_UID_MAX) {
                        fprintf(stderr, "cxpc: refusing connection from uid %u: %s\n",
                                (unsigned) c->peer.uid, u ? "too many connections" : "out of memory");
                        cxpc_connection_close(c);
                        return;
                }
                u->count++;
        }
        c->listener = l;
        c->listener_next = l->connections;
        if (l->connections)
                l->connections->listener_prev = c;
        l->connections = c;
        l->n_connections++;

        (void) cxpc_connection_set_policy(c, l->policy, l->policy_userdata);
        if (l->router)
                (void) cxpc_connection_set_router(c, l->router);
        r = cxpc_connection_attach_event(c, l->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                fprintf(stderr, "cxpc: failed to attach accepted connection: %s\n", strerror(-r));
                cxpc_connection_close(c);
                return;
        }

        if (l->accept_handler) {
                _cleanup_(cxpc_connection_unrefp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);
                r = l->accept_handler(l, c, l->accept_userdata);
                if (r < 0)
                        cxpc_connection_close(c);
        }
}

static int listener_accept_one(cxpc_listener *l) {
        if (l->kind == LISTENER_ANONYMOUS) {
                uint8_t buf[LISTENER_CONNECT_RECORD_MAX];
                size_t size = 0;
                int fd = -EBADF;

                int r = socket_receive_fd_record(l->fd, buf, sizeof(buf), &size, &fd);
                if (r <= 0)
                        return r == 0 ? -EAGAIN : r; /* EOF cannot happen: we hold the other end */
                _cleanup_close_ int sfd = fd;
                /* Anyone holding the endpoint can write here: accept only a well-formed connect
                 * record whose fd is a connected AF_UNIX SEQPACKET socket. */
                if (!connection_is_endpoint_connect(buf, size) ||
                    sd_is_socket(sfd, AF_UNIX, SOCK_SEQPACKET, 0) <= 0) {
                        fprintf(stderr, "cxpc: ignoring malformed connect record on endpoint\n");
                        return 0;
                }
                listener_add_connection(l, TAKE_FD(sfd));
                return 0;
        }

        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                        return -EAGAIN;
                /* the client gave up between connect and accept: not our problem */
                if (errno == ECONNABORTED || errno == EINTR || errno == EPROTO)
                        return 0;
                return negative_errno();
        }
        listener_add_connection(l, fd);
        return 0;
}

static int listener_io_cb(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        cxpc_listener *l = cxpc_listener_ref(userdata);

        for (unsigned i = 0; i < LISTENER_ACCEPT_BATCH_MAX && l->fd >= 0; i++) {
                int r = listener_accept_one(l);
                if (r == -EAGAIN)
                        break;
                if (r < 0) {
                        /* e.g. EMFILE: stop for this round rather than spin */
                        fprintf(stderr, "cxpc: accept failed: %s\n", strerror(-r));
                        break;
                }
        }
        cxpc_listener_unref(l);
        return 0;
}

static int listener_new(sd_event *event, ListenerKind kind, int fd, cxpc_listener **ret) {
        _cleanup_close_ int sfd = fd;
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        int r;

        if (event)
                e = sd_event_ref(event);
        else {
                r = sd_event_default(&e);
                if (r < 0)
                        return r;
        }

        cxpc_listener *l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        *l = (cxpc_listener){
                .n_ref = 1,
                .kind = kind,
                .fd = -EBADF,
        };
        _cleanup_(cxpc_listener_unrefp) cxpc_listener *listener = l;

        r = sd_event_add_io(e, &l->io_source, sfd, EPOLLIN, listener_io_cb, l);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(l->io_source, "cxpc-listener");
        l->fd = TAKE_FD(sfd);
        l->event = TAKE_PTR(e);
        *ret = TAKE_PTR(listener);
        return 0;
}

static int fd_set_nonblock_cloexec(int fd) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return negative_errno();
        flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
                return negative_errno();
        return 0;
}

static int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;

        char *slash = strrchr(p, '/');
        if (!slash || slash == p)
                return 0;
        *slash = '\0';

        /* Create every missing component, outermost first. */
        for (char *s = p + 1;; s++) {
                bool last = *s == '\0';
                if (*s == '/' || last) {
                        char saved = *s;
                        *s = '\0';
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *s = saved;
                }
                if (last)
                        return 0;
        }
}

/* Is someone accepting on this socket path? */
static bool socket_path_is_live(const struct sockaddr_un *sa, socklen_t salen) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return true; /* cannot tell: do not remove it */
        if (connect(fd, (const struct sockaddr *) sa, salen) >= 0)
                return true;
        /* EAGAIN: backlog full, still alive. ECONNREFUSED: nobody listens, stale. */
        return errno != ECONNREFUSED && errno != ENOENT;
}

_public_ int cxpc_listener_new_for_path(sd_event *event, const char *path, cxpc_listener **ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int r;

        assert_return(path && path[0], -EINVAL);
        assert_return(ret, -EINVAL);

        size_t len = strlen(path);
        if (len >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, len);
        socklen_t salen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1);

        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        r = mkdir_parents(path, 0700);
        if (r < 0)
                return r;

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        /* Linux creates the socket file with the socket inode's mode (minus umask): setting it
         * first means the file is never more open than 0600, whatever the umask. */
        if (fchmod(fd, 0600) < 0)
                return negative_errno();

        if (bind(fd, (struct sockaddr *) &sa, salen) < 0) {
                if (errno != EADDRINUSE)
                        return negative_errno();
                if (socket_path_is_live(&sa, salen))
                        return -EADDRINUSE;
                if (unlink(path) < 0 && errno != ENOENT)
                        return negative_errno();
                if (bind(fd, (struct sockaddr *) &sa, salen) < 0)
                        return negative_errno();
        }
        if (chmod(path, 0600) < 0 || listen(fd, LISTENER_BACKLOG) < 0) {
                r = negative_errno();
                (void) unlink(path);
                return r;
        }

        cxpc_listener *l = NULL;
        r = listener_new(event, LISTENER_PATH, TAKE_FD(fd), &l);
        if (r < 0) {
                (void) unlink(path);
                return r;
        }
        l->path = TAKE_PTR(p);
        *ret = l;
        return 0;
}

_public_ int cxpc_listener_new_from_fd(sd_event *event, int fd, cxpc_listener **ret) {
        _cleanup_close_ int sfd = fd;
        int r;

        assert_return(fd >= 0, -EBADF);
        assert_return(ret, -EINVAL);

        r = sd_is_socket(fd, AF_UNIX, SOCK_SEQPACKET, 1);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOTSOCK;
        r = fd_set_nonblock_cloexec(fd);
        if (r < 0)
                return r;
        return listener_new(event, LISTENER_FD, TAKE_FD(sfd), ret);
}

_public_ int cxpc_listener_new_activated(sd_event *event, cxpc_listener **ret) {
        assert_return(ret, -EINVAL);

        int n = sd_listen_fds(true);
        if (n < 0)
                return n;
        if (n == 0)
                return -ENOENT;
        return cxpc_listener_new_from_fd(event, SD_LISTEN_FDS_START, ret);
}

_public_ int cxpc_listener_new_anonymous(sd_event *event, cxpc_listener **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *endpoint = NULL;
        int pair[2], r;

        assert_return(ret, -EINVAL);

        /* Our end is non-blocking (we drain it from the loop); the endpoint end stays blocking,
         * as it travels to other processes that may not expect O_NONBLOCK. */
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return negative_errno();
        _cleanup_close_ int ours = pair[0];
        r = cxpc_endpoint_new_take_fd(pair[1], &endpoint);
        if (r < 0)
                return r;
        r = fd_set_nonblock_cloexec(ours);
        if (r < 0)
                return r;

        cxpc_listener *l = NULL;
        r = listener_new(event, LISTENER_ANONYMOUS, TAKE_FD(ours), &l);
        if (r < 0)
                return r;
        l->endpoint = TAKE_PTR(endpoint);
        *ret = l;
        return 0;
}

_public_ int cxpc_listener_get_endpoint(cxpc_listener *l, cxpc_object **ret) {
        assert_return(l, -EINVAL);
        assert_return(ret, -EINVAL);

        if (l->kind != LISTENER_ANONYMOUS)
                return -EOPNOTSUPP;
        if (!l->endpoint)
                return -ENOTCONN;
        *ret = cxpc_object_ref(l->endpoint);
        return 0;
}

_public_ cxpc_listener *cxpc_listener_ref(cxpc_listener *l) {
        if (!l)
                return NULL;
        assert(l->n_ref > 0);
        l->n_ref++;
        return l;
}

_public_ void cxpc_listener_close(cxpc_listener *l) {
        if (!l)
                return;
        l->io_source = sd_event_source_disable_unref(l->io_source);
        l->fd = safe_close(l->fd);
        if (l->path) {
                (void) unlink(l->path);
                free(l->path);
                l->path = NULL;
        }
        /* Holders of the endpoint now get ECONNREFUSED when they connect. */
        l->endpoint = cxpc_object_unref(l->endpoint);
}

_public_ cxpc_listener *cxpc_listener_unref(cxpc_listener *l) {
        if (!l)
                return NULL;
        assert(l->n_ref > 0);
        if (--l->n_ref > 0)
                return NULL;

        cxpc_listener_close(l);
        /* Connections still alive die with the listener that owns them. */
        l->n_ref = 1;
        while (l->connections) {
                cxpc_connection *c = l->connections;
                listener_connection_gone(l, c);
                /* may free c: it drops its own reference once disconnected */
                cxpc_connection_close(c);
        }
        l->n_ref = 0;

        l->event = sd_event_unref(l->event);
        cxpc_router_unref(l->router);
        free(l->uids);
        free(l);
        return NULL;
}

_public_ int cxpc_listener_set_accept_handler(cxpc_listener *l, cxpc_connection_accept_handler_t handler,
                                              void *userdata) {
        assert_return(l, -EINVAL);
        l->accept_handler = handler;
        l->accept_userdata = userdata;
        return 0;
}

_public_ int cxpc_listener_set_router(cxpc_listener *l, cxpc_router *router) {
        assert_return(l, -EINVAL);
        cxpc_router_ref(router);
        cxpc_router_unref(l->router);
        l->router = router;
        return 0;
}

_public_ int cxpc_listener_set_policy(cxpc_listener *l, cxpc_policy_t policy, void *userdata) {
        assert_return(l, -EINVAL);
        l->policy = policy;
        l->policy_userdata = policy ? userdata : NULL;
        return 0;
}

_public_ int cxpc_listener_get_fd(const cxpc_listener *l) {
        assert_return(l, -EINVAL);
        return l->fd;
}
