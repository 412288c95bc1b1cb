/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Connections: one AF_UNIX SOCK_SEQPACKET socket, one record per message (docs/libcxpc.md).
 *
 * The socket stays blocking: the synchronous call path uses a plain blocking recvmsg() bounded by
 * SO_RCVTIMEO (one syscall per reply), while the event-loop paths pass MSG_DONTWAIT. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "codec.h"
#include "connection-internal.h"
#include "cxpc/cxpc.h"
#include "macro.h"
#include "object-internal.h"
#include "socket-util.h"

/* The record a client sends over an endpoint's connector socket, with its socket as the only fd. */
#define ENDPOINT_CONNECT_MAGIC "CXPC-CONNECT-1"

static const char *const connection_state_table[_CONNECTION_STATE_MAX] = {
        [CONNECTION_RUNNING] = "running",
        [CONNECTION_INTERRUPTED] = "interrupted",
        [CONNECTION_INVALIDATED] = "invalidated",
        [CONNECTION_CLOSED] = "closed",
};

static bool debug_enabled(void) {
        static int cached = -1;
        if (cached < 0)
                cached = getenv("CXPC_DEBUG") != NULL;
        return cached > 0;
}

/* cxpc_connection_unref() for the temporary references of the per-message paths: dropping one
 * that is not the last is done inline. */
static inline void connection_unref_tempp(cxpc_connection **c) {
        if (*c && (*c)->n_ref > 1)
                (*c)->n_ref--;
        else
                cxpc_connection_unref(*c);
}

static void connection_disconnect(cxpc_connection *c, ConnectionState state);
static int connection_write_queue(cxpc_connection *c);
static void connection_finish_disconnect(cxpc_connection *c);
static int connection_dispatch_message(cxpc_connection *c, cxpc_object *m, const cxpc_frame_info *info);

/* ---- state ---- */

/* The only place the state changes. Leaving RUNNING stops all I/O at once: the socket is closed
 * and queued output dropped; what remains (failing pending calls, disconnect handlers) runs from
 * connection_finish_disconnect() once no handler of ours is on the stack. */
static void connection_set_state(cxpc_connection *c, ConnectionState state) {
        assert(c);
        assert(state >= 0 && state < _CONNECTION_STATE_MAX);

        if (c->state == state)
                return;
        /* Dead states are final. */
        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return;

        if (debug_enabled())
                fprintf(stderr, "cxpc: connection fd %d: %s -> %s\n", c->fd,
                        connection_state_table[c->state], connection_state_table[state]);
        c->state = state;

        /* What a handler queued before the end (a last reply, an error reply to a refused
         * request) still goes out if the socket takes it without waiting. */
        if (c->out_head && c->fd >= 0)
                (void) connection_write_queue(c);
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->fd = safe_close(c->fd);
        for (cxpc_frame *f = c->out_head, *next; f; f = next) {
                next = f->queue_next;
                cxpc_frame_free(f);
        }
        c->out_head = c->out_tail = NULL;
        c->n_out = c->out_bytes = 0;

        c->disconnect_pending = true;
        c->disconnect_code = state == CONNECTION_CLOSED ? CXPC_ERROR_CANCELLED : CXPC_ERROR_INTERRUPTED;
}

static cxpc_connection_state connection_public_state(ConnectionState s) {
        switch (s) {
        case CONNECTION_RUNNING:
                return CXPC_CONNECTION_CONNECTED;
        case CONNECTION_INTERRUPTED:
                return CXPC_CONNECTION_INTERRUPTED;
        case CONNECTION_INVALIDATED:
        case CONNECTION_CLOSED:
                return CXPC_CONNECTION_INVALIDATED;
        default:
                return _CXPC_CONNECTION_STATE_INVALID;
        }
}

/* ---- construction ---- */

int connection_new(int fd, cxpc_connection **ret) {
        _cleanup_close_ int sfd = fd;
        int r;

        assert(fd >= 0);
        assert(ret);

        cxpc_connection *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *c = (cxpc_connection){
                .n_ref = 1,
                .state = CONNECTION_RUNNING,
                .fd = -EBADF,
                .next_id = 1,
                .rcvtimeo = CXPC_INFINITY,
                .timer_armed_at = CXPC_INFINITY,
                .peer_pidfd = -EBADF,
                .euid = geteuid(),
        };
        r = recv_batch_new(&c->rbatch);
        if (r < 0) {
                free(c);
                return r;
        }
        c->fd = TAKE_FD(sfd);

        socklen_t len = sizeof(c->peer);
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &c->peer, &len) >= 0 && len == sizeof(c->peer))
                c->have_peer = true;

        *ret = c;
        return 0;
}

_public_ int cxpc_connection_new_from_fd(int fd, cxpc_connection **ret) {
        _cleanup_close_ int sfd = fd;

        assert_return(fd >= 0, -EBADF);
        assert_return(ret, -EINVAL);

        int r = sd_is_socket(fd, AF_UNIX, SOCK_SEQPACKET, 0);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOTSOCK;
        /* The synchronous paths block in recvmsg() (the others pass MSG_DONTWAIT). */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || ((flags & O_NONBLOCK) && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0))
                return negative_errno();

        return connection_new(TAKE_FD(sfd), ret);
}

_public_ int cxpc_connection_new_for_path(const char *path, cxpc_connection **ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};

        assert_return(path && path[0], -EINVAL);
        assert_return(ret, -EINVAL);

        size_t l = strlen(path);
        if (l >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, l);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                if (connect(fd, (struct sockaddr *) &sa,
                            (socklen_t) (offsetof(struct sockaddr_un, sun_path) + l + 1)) >= 0)
                        break;
                if (errno == EINTR)
                        continue;
                return negative_errno();
        }
        return connection_new(TAKE_FD(fd), ret);
}

_public_ int cxpc_connection_new_for_endpoint(const cxpc_object *endpoint, cxpc_connection **ret) {
        int pair[2];

        assert_return(cxpc_object_get_type(endpoint) == CXPC_TYPE_ENDPOINT, -EINVAL);
        assert_return(ret, -EINVAL);

        int efd = cxpc_endpoint_get_fd(endpoint);
        if (efd < 0)
                return -EBADF;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return negative_errno();
        _cleanup_close_ int ours = pair[0], theirs = pair[1];

        /* The connector socket may be shared by many holders of the endpoint and is never ours
         * to make non-blocking, so bound the wait for the listener to drain it. */
        uint64_t deadline = deadline_from_timeout(0);
        for (;;) {
                int r = socket_send_fd_record(efd, ENDPOINT_CONNECT_MAGIC, sizeof(ENDPOINT_CONNECT_MAGIC),
                                              theirs);
                if (r >= 0)
                        break;
                if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
                        return -ECONNREFUSED; /* the listener is gone */
                if (r != -EAGAIN)
                        return r;
                r = socket_wait(efd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        theirs = safe_close(theirs);
        return connection_new(TAKE_FD(ours), ret);
}

bool connection_is_endpoint_connect(const void *buf, size_t size) {
        return size == sizeof(ENDPOINT_CONNECT_MAGIC) && memcmp(buf, ENDPOINT_CONNECT_MAGIC, size) == 0;
}

/* ---- pending replies ---- */

static PendingCall **pending_bucket(cxpc_connection *c, uint64_t id) {
        return &c->pending[id & (CONNECTION_PENDING_BUCKETS - 1)];
}

static void deadline_list_remove(cxpc_connection *c, PendingCall *p) {
        if (p->deadline == CXPC_INFINITY)
                return;
        if (p->dl_prev)
                p->dl_prev->dl_next = p->dl_next;
        else
                c->dl_head = p->dl_next;
        if (p->dl_next)
                p->dl_next->dl_prev = p->dl_prev;
        else
                c->dl_tail = p->dl_prev;
        p->dl_prev = p->dl_next = NULL;
}

static void deadline_list_insert(cxpc_connection *c, PendingCall *p) {
        if (p->deadline == CXPC_INFINITY)
                return;
        /* Calls mostly share one timeout, so the new one usually goes last: scan from the tail. */
        PendingCall *after = c->dl_tail;
        while (after && after->deadline > p->deadline)
                after = after->dl_prev;
        p->dl_prev = after;
        p->dl_next = after ? after->dl_next : c->dl_head;
        if (p->dl_next)
                p->dl_next->dl_prev = p;
        else
                c->dl_tail = p;
        if (after)
                after->dl_next = p;
        else
                c->dl_head = p;
}

static PendingCall *pending_unlink(cxpc_connection *c, PendingCall **slot) {
        PendingCall *found = *slot;
        *slot = found->next;
        found->next = NULL;
        c->n_pending--;
        deadline_list_remove(c, found);
        return found;
}

static PendingCall *pending_remove(cxpc_connection *c, uint64_t id) {
        for (PendingCall **p = pending_bucket(c, id); *p; p = &(*p)->next)
                if ((*p)->id == id)
                        return pending_unlink(c, p);
        return NULL;
}

static PendingCall *pending_free(PendingCall *p) {
        cxpc_connection *c = p->connection;
        if (c->n_pending_spare < CONNECTION_PENDING_SPARE_MAX) {
                p->next = c->pending_spare;
                c->pending_spare = p;
                c->n_pending_spare++;
        } else
                free(p);
        return NULL;
}

static PendingCall *pending_alloc(cxpc_connection *c) {
        PendingCall *p = c->pending_spare;
        if (p) {
                c->pending_spare = p->next;
                c->n_pending_spare--;
                *p = (PendingCall){};
                return p;
        }
        return calloc(1, sizeof(*p));
}

static int synthesize_error_reply(cxpc_error_code code, const char *text, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *e = NULL;
        int r;

        r = cxpc_dict_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_error_new(code, text, &e);
        if (r < 0)
                return r;
        r = cxpc_dict_set(reply, CXPC_KEY_ERROR, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(reply);
        return 0;
}

/* Hands a reply (real or synthesized) to a pending call and forgets the call. */
static void pending_complete(cxpc_connection *c, PendingCall *p, cxpc_object *reply) {
        c->dispatching++;
        p->handler(c, reply, p->userdata);
        c->dispatching--;
        pending_free(p);
}

static void pending_fail(cxpc_connection *c, PendingCall *p, cxpc_error_code code, const char *text) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;

        /* Without memory for the error object there is nothing to hand over: the handler is still
         * called exactly once, with an empty (error-less) dictionary if even that works. */
        if (synthesize_error_reply(code, text, &reply) < 0 && cxpc_dict_new(&reply) < 0) {
                pending_free(p);
                return;
        }
        pending_complete(c, p, reply);
}

static int deadline_timer_cb(sd_event_source *s, uint64_t usec, void *userdata);

/* Makes sure the timer fires no later than the earliest deadline. */
static int deadline_timer_arm(cxpc_connection *c) {
        int r;

        if (!c->dl_head || !c->event)
                return 0;
        uint64_t when = c->dl_head->deadline;
        if (c->deadline_timer && c->timer_armed_at <= when)
                return 0;
        if (!c->deadline_timer) {
                r = sd_event_add_time(c->event, &c->deadline_timer, CLOCK_MONOTONIC, when,
                                      CONNECTION_TIMER_ACCURACY_USEC, deadline_timer_cb, c);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_priority(c->deadline_timer, c->priority);
                (void) sd_event_source_set_description(c->deadline_timer, "cxpc-call-deadlines");
        } else {
                r = sd_event_source_set_time(c->deadline_timer, when);
                if (r < 0)
                        return r;
                r = sd_event_source_set_enabled(c->deadline_timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        return r;
        }
        c->timer_armed_at = when;
        return 0;
}

static int deadline_timer_cb(sd_event_source *s, uint64_t usec, void *userdata) {
        _cleanup_(cxpc_connection_unrefp) cxpc_connection *c = cxpc_connection_ref(userdata);
        uint64_t now = 0;

        c->timer_armed_at = CXPC_INFINITY;
        if (sd_event_now(c->event, CLOCK_MONOTONIC, &now) < 0)
                now = now_usec();
        /* Forget each expired call first: a reply arriving later finds nothing and is dropped. */
        while (c->dl_head && c->dl_head->deadline <= now) {
                PendingCall *p = pending_remove(c, c->dl_head->id);
                assert(p);
                pending_fail(c, p, CXPC_ERROR_TIMEOUT, "call timed out");
        }
        if (c->dl_head && deadline_timer_arm(c) < 0)
                /* cannot wait any more: fail now rather than never */
                while (c->dl_head) {
                        PendingCall *p = pending_remove(c, c->dl_head->id);
                        pending_fail(c, p, CXPC_ERROR_TIMEOUT, "call deadline could not be armed");
                }
        return 0;
}

static void connection_fail_all_pending(cxpc_connection *c, cxpc_error_code code, const char *text) {
        while (c->n_pending > 0)
                for (size_t b = 0; b < CONNECTION_PENDING_BUCKETS; b++) {
                        if (!c->pending[b])
                                continue;
                        PendingCall *p = pending_unlink(c, &c->pending[b]);
                        pending_fail(c, p, code, text);
                        break;
                }
}

/* ---- inbound queue (messages received while a synchronous call waited) ---- */

static int inbound_enqueue(cxpc_connection *c, cxpc_object *m, const cxpc_frame_info *info) {
        if (c->n_in >= CONNECTION_INBOUND_QUEUE_MAX) {
                cxpc_object_unref(m);
                return -ENOBUFS;
        }
        InboundItem *i = malloc(sizeof(*i));
        if (!i) {
                cxpc_object_unref(m);
                return -ENOMEM;
        }
        *i = (InboundItem){.message = m, .info = *info};
        if (c->in_tail)
                c->in_tail->next = i;
        else
                c->in_head = i;
        c->in_tail = i;
        c->n_in++;
        if (c->defer_source)
                (void) sd_event_source_set_enabled(c->defer_source, SD_EVENT_ON);
        return 0;
}

static InboundItem *inbound_pop(cxpc_connection *c) {
        InboundItem *i = c->in_head;
        if (!i)
                return NULL;
        c->in_head = i->next;
        if (!c->in_head)
                c->in_tail = NULL;
        c->n_in--;
        return i;
}

static void inbound_clear(cxpc_connection *c) {
        InboundItem *i;
        while ((i = inbound_pop(c))) {
                cxpc_object_unref(i->message);
                free(i);
        }
}

/* Dispatches queued messages in arrival order; returns the number dispatched. */
static size_t inbound_dispatch(cxpc_connection *c, size_t max) {
        size_t n = 0;
        InboundItem *i;

        while (n < max && (i = inbound_pop(c))) {
                cxpc_object *m = i->message;
                cxpc_frame_info info = i->info;
                free(i);
                n++;
                (void) connection_dispatch_message(c, m, &info);
        }
        return n;
}

/* ---- disconnect ---- */

/* Runs once, with no handler of this connection on the stack. */
static void connection_finish_disconnect(cxpc_connection *c) {
        assert(c);
        assert(!CONNECTION_STATE_IS_ALIVE(c->state));

        if (c->disconnect_done || c->dispatching > 0)
                return;
        c->disconnect_done = true;
        c->disconnect_pending = false;

        _cleanup_(cxpc_connection_unrefp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);

        inbound_clear(c);
        if (c->defer_source)
                (void) sd_event_source_set_enabled(c->defer_source, SD_EVENT_OFF);
        connection_fail_all_pending(c, c->disconnect_code,
                                    c->disconnect_code == CXPC_ERROR_CANCELLED ? "connection closed"
                                                                               : "connection interrupted");

        c->dispatching++;
        for (size_t i = 0; i < c->n_disconnect_handlers; i++)
                c->disconnect_handlers[i].handler(c, c->disconnect_handlers[i].userdata);
        c->dispatching--;

        if (c->listener)
                listener_connection_gone(c->listener, c);
        if (c->self_ref) {
                c->self_ref = false;
                cxpc_connection_unref(c);
        }
}

/* After the state left RUNNING: finish now, or once queued messages and the running handler are
 * done (through the defer source when an event loop is attached). */
static void connection_schedule_finish(cxpc_connection *c) {
        if (!c->disconnect_pending || c->dispatching > 0)
                return;
        if (c->defer_source && c->in_head) {
                (void) sd_event_source_set_enabled(c->defer_source, SD_EVENT_ON);
                return;
        }
        connection_finish_disconnect(c);
}

static void connection_disconnect(cxpc_connection *c, ConnectionState state) {
        connection_set_state(c, state);
        connection_schedule_finish(c);
}

static void connection_protocol_error(cxpc_connection *c, RecvError why) {
        fprintf(stderr, "cxpc: protocol error from peer pid %d uid %u: %s; closing connection\n",
                c->have_peer ? (int) c->peer.pid : -1, c->have_peer ? (unsigned) c->peer.uid : (unsigned) -1,
                recv_error_to_string(why) ?: "invalid record");
        connection_disconnect(c, CONNECTION_INVALIDATED);
}

static bool errno_is_disconnect(int r) {
        return r == -ECONNRESET || r == -EPIPE || r == -ENOTCONN || r == -ESHUTDOWN || r == -ECONNABORTED;
}

/* ---- output ---- */

static void connection_update_io_events(cxpc_connection *c) {
        if (!c->io_source)
                return;
        uint32_t want = EPOLLIN | (c->out_head ? EPOLLOUT : 0);
        if (want == c->io_events)
                return;
        if (sd_event_source_set_io_events(c->io_source, want) >= 0)
                c->io_events = want;
}

/* Writes queued frames, a send batch per syscall, until the socket is full. 0 when something
 * remains, 1 when empty. */
static int connection_write_queue(cxpc_connection *c) {
        while (c->out_head) {
                cxpc_frame *frames[CXPC_SEND_BATCH_MAX];
                size_t n = 0;
                for (cxpc_frame *f = c->out_head; f && n < CXPC_SEND_BATCH_MAX; f = f->queue_next)
                        frames[n++] = f;
                int r = cxpc_frames_send(c->fd, frames, n);
                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                for (int k = 0; k < r; k++) {
                        cxpc_frame *f = c->out_head;
                        c->out_head = f->queue_next;
                        c->n_out--;
                        c->out_bytes -= f->sent_size;
                        cxpc_frame_free(f);
                }
                if (!c->out_head)
                        c->out_tail = NULL;
        }
        return 1;
}

/* Sends now if nothing is queued, else queues (bounded). Takes ownership of the frame. */
static int connection_send_frame(cxpc_connection *c, cxpc_frame *f) {
        _cleanup_(cxpc_frame_freep) cxpc_frame *frame = f;
        int r;

        if (!c->out_head && c->cork == 0) {
                r = cxpc_frame_send(c->fd, frame);
                if (r >= 0)
                        return 0;
                if (errno_is_disconnect(r)) {
                        connection_disconnect(c, CONNECTION_INTERRUPTED);
                        return -ECONNRESET;
                }
                if (r != -EAGAIN)
                        return r;
        }

        if (c->n_out >= CXPC_OUTBOUND_QUEUE_MAX ||
            frame->sent_size > CXPC_OUTBOUND_QUEUE_BYTES_MAX - c->out_bytes)
                return -ENOBUFS;
        cxpc_frame *q = TAKE_PTR(frame);
        q->queue_next = NULL;
        if (c->out_tail)
                c->out_tail->queue_next = q;
        else
                c->out_head = q;
        c->out_tail = q;
        c->n_out++;
        c->out_bytes += q->sent_size;
        if (c->cork > 0 && c->n_out >= CXPC_SEND_BATCH_MAX) {
                /* a full batch: send it now rather than hold it for the end of the dispatch */
                r = connection_write_queue(c);
                if (errno_is_disconnect(r)) {
                        connection_disconnect(c, CONNECTION_INTERRUPTED);
                        return 0; /* queued before the peer went: like a send into a dead socket */
                }
                if (r < 0)
                        return r;
        }
        if (c->cork == 0)
                connection_update_io_events(c);
        return 0;
}

static void connection_cork(cxpc_connection *c) {
        c->cork++;
}

/* Sends what was queued while corked. */
static void connection_uncork(cxpc_connection *c) {
        assert(c->cork > 0);
        if (--c->cork > 0 || !CONNECTION_STATE_IS_ALIVE(c->state))
                return;
        if (c->out_head) {
                int r = connection_write_queue(c);
                if (r < 0) {
                        connection_disconnect(c, errno_is_disconnect(r) ? CONNECTION_INTERRUPTED
                                                                        : CONNECTION_INVALIDATED);
                        return;
                }
        }
        connection_update_io_events(c);
}

static int connection_send_message(cxpc_connection *c, cxpc_object *m, uint64_t id, uint64_t reply_to,
                                   unsigned flags) {
        cxpc_frame *f = NULL;
        int r = cxpc_frame_encode(m, id, reply_to, flags, &f);
        if (r < 0)
                return r;
        return connection_send_frame(c, f);
}

/* Writes the whole queue, waiting for writability until the deadline. */
static int connection_flush_until(cxpc_connection *c, uint64_t deadline) {
        for (;;) {
                if (!CONNECTION_STATE_IS_ALIVE(c->state))
                        return -ENOTCONN;
                int r = connection_write_queue(c);
                if (errno_is_disconnect(r)) {
                        connection_disconnect(c, CONNECTION_INTERRUPTED);
                        return -ECONNRESET;
                }
                if (r < 0)
                        return r;
                if (r > 0) {
                        connection_update_io_events(c);
                        return 0;
                }
                r = socket_wait(c->fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
}

/* ---- input ---- */

static int default_policy(cxpc_connection *c) {
        if (!c->have_peer)
                return -EPERM;
        return c->peer.uid == c->euid || c->peer.uid == 0 ? 0 : -EPERM;
}

/* Takes ownership of m. */
static int connection_dispatch_message(cxpc_connection *c, cxpc_object *m, const cxpc_frame_info *info) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *message = m;
        int r;

        if (info->flags & CXPC_FRAME_REPLY) {
                PendingCall *p = pending_remove(c, info->reply_to);
                if (p)
                        pending_complete(c, p, message);
                /* else: a late reply to a call that timed out or was cancelled */
                return 0;
        }

        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return 0;

        bool wants_reply = info->flags & CXPC_FRAME_WANTS_REPLY;

        r = c->policy ? c->policy(c, message, c->policy_userdata) : default_policy(c);
        if (r < 0) {
                unsigned uid = c->have_peer ? (unsigned) c->peer.uid : (unsigned) -1;
                fprintf(stderr, "cxpc: refusing message from peer uid %u (policy); closing connection\n",
                        uid);
                if (wants_reply)
                        (void) cxpc_connection_reply_error(c, message, CXPC_ERROR_UNSUPPORTED,
                                                           "permission denied: uid %u not allowed", uid);
                connection_disconnect(c, CONNECTION_INVALIDATED);
                return r;
        }

        c->dispatching++;
        if (c->router)
                r = cxpc_router_dispatch(c->router, c, message);
        else if (c->handler)
                r = c->handler(c, message, c->handler_userdata);
        else
                r = -EOPNOTSUPP;
        if (r < 0 && wants_reply && !message_is_replied(message) && CONNECTION_STATE_IS_ALIVE(c->state))
                (void) connection_reply_errno(c, message, r);
        c->dispatching--;

        connection_schedule_finish(c);
        return r;
}

/* How many records to ask for: a full batch while the peer pipelines; one for a peer that waits
 * for each reply, with a full batch every CONNECTION_READ_PROBE_INTERVAL wakeups to notice when
 * it starts pipelining. */
static size_t connection_read_size(cxpc_connection *c) {
        if (c->pipelining)
                return RECV_BATCH_MAX;
        if (++c->reads_since_probe >= CONNECTION_READ_PROBE_INTERVAL) {
                c->reads_since_probe = 0;
                return RECV_BATCH_MAX;
        }
        return 1;
}

/* Receives one batch, blocking for its first record when wait, and dispatches it. -EAGAIN when
 * nothing came; 0 when more may be queued; 1 when the socket was drained or the connection ended
 * (a batch smaller than asked for means drained: no read that would only say EAGAIN). */
static int connection_read_batch(cxpc_connection *c, bool wait) {
        size_t want = connection_read_size(c);
        int r = recv_batch_fill(c->fd, c->rbatch, want, wait);
        if (r == -EAGAIN)
                return r;
        if (errno_is_disconnect(r)) {
                connection_disconnect(c, CONNECTION_INTERRUPTED);
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "cxpc: failed to receive message: %s; closing connection\n", strerror(-r));
                connection_disconnect(c, CONNECTION_INVALIDATED);
                return 1;
        }
        if (want > 1)
                c->pipelining = r > 1;
        bool drained = (size_t) r < want || want == 1;

        /* Replies to a batch go out together; a lone request's reply goes out at once, before the
         * request is even freed: the peer is waiting for it. */
        bool cork = r > 1;
        if (cork)
                connection_cork(c);
        while (CONNECTION_STATE_IS_ALIVE(c->state)) {
                cxpc_object *m = NULL;
                cxpc_frame_info info;
                RecvError why = RECV_ERROR_NONE;

                r = recv_batch_next(c->rbatch, &m, &info, &why);
                if (r == -ENODATA)
                        break;
                if (r == 0) {
                        connection_disconnect(c, CONNECTION_INTERRUPTED);
                        break;
                }
                if (r == -EBADMSG) {
                        connection_protocol_error(c, why);
                        break;
                }
                if (r < 0) {
                        fprintf(stderr, "cxpc: failed to receive message: %s; closing connection\n",
                                strerror(-r));
                        connection_disconnect(c, CONNECTION_INVALIDATED);
                        break;
                }
                (void) connection_dispatch_message(c, m, &info);
        }
        recv_batch_discard(c->rbatch); /* what a dead connection left unread */
        if (cork)
                connection_uncork(c);
        return drained || !CONNECTION_STATE_IS_ALIVE(c->state);
}

/* Reads and dispatches what is queued, a batch per syscall, a bounded number of batches (epoll is
 * level-triggered, so anything arriving later wakes us again, and so does a record left behind by
 * a one-record read). */
static void connection_read(cxpc_connection *c) {
        for (unsigned round = 0; round < CONNECTION_READ_ROUNDS_MAX && CONNECTION_STATE_IS_ALIVE(c->state);
             round++)
                if (connection_read_batch(c, /* wait= */ false) != 0)
                        return;
}

static int connection_io_cb(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        _cleanup_(connection_unref_tempp) cxpc_connection *c = cxpc_connection_ref(userdata);

        /* Messages held back by a synchronous call come first. */
        if (c->in_head) {
                connection_cork(c);
                (void) inbound_dispatch(c, SIZE_MAX);
                connection_uncork(c);
        }

        if ((revents & EPOLLOUT) && CONNECTION_STATE_IS_ALIVE(c->state)) {
                int r = connection_write_queue(c);
                if (r < 0) {
                        connection_disconnect(c, errno_is_disconnect(r) ? CONNECTION_INTERRUPTED
                                                                        : CONNECTION_INVALIDATED);
                        return 0;
                }
                connection_update_io_events(c);
        }

        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && CONNECTION_STATE_IS_ALIVE(c->state))
                connection_read(c);
        return 0;
}

static int connection_defer_cb(sd_event_source *s, void *userdata) {
        _cleanup_(cxpc_connection_unrefp) cxpc_connection *c = cxpc_connection_ref(userdata);

        connection_cork(c);
        (void) inbound_dispatch(c, CONNECTION_READ_BATCH_MAX);
        connection_uncork(c);
        if (c->in_head)
                return 0; /* stays enabled: more next iteration */
        (void) sd_event_source_set_enabled(s, SD_EVENT_OFF);
        if (c->disconnect_pending)
                connection_finish_disconnect(c);
        return 0;
}

/* ---- lifetime ---- */

static cxpc_connection *connection_free(cxpc_connection *c) {
        assert(c);

        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->defer_source = sd_event_source_disable_unref(c->defer_source);
        c->deadline_timer = sd_event_source_disable_unref(c->deadline_timer);
        for (size_t b = 0; b < CONNECTION_PENDING_BUCKETS; b++)
                for (PendingCall *p = c->pending[b], *next; p; p = next) {
                        next = p->next;
                        pending_free(p);
                }
        for (PendingCall *p = c->pending_spare, *next; p; p = next) {
                next = p->next;
                free(p);
        }
        inbound_clear(c);
        for (cxpc_frame *f = c->out_head, *next; f; f = next) {
                next = f->queue_next;
                cxpc_frame_free(f);
        }
        c->event = sd_event_unref(c->event);
        c->fd = safe_close(c->fd);
        c->peer_pidfd = safe_close(c->peer_pidfd);
        c->rbatch = recv_batch_free(c->rbatch);
        cxpc_router_unref(c->router);
        free(c->disconnect_handlers);
        free(c);
        return NULL;
}

_public_ cxpc_connection *cxpc_connection_ref(cxpc_connection *c) {
        if (!c)
                return NULL;
        assert(c->n_ref > 0);
        c->n_ref++;
        return c;
}

_public_ cxpc_connection *cxpc_connection_unref(cxpc_connection *c) {
        if (!c)
                return NULL;
        assert(c->n_ref > 0);
        if (c->n_ref > 1) {
                c->n_ref--;
                return NULL;
        }
        /* Last reference: close (pending calls get "cancelled", disconnect handlers run) with
         * the reference still held, so that handlers may ref/unref without a double free. */
        if (!c->disconnect_done) {
                cxpc_connection_close(c);
                if (c->n_ref > 1) {
                        c->n_ref--;
                        return NULL;
                }
        }
        return connection_free(c);
}

_public_ void cxpc_connection_close(cxpc_connection *c) {
        if (!c)
                return;
        connection_set_state(c, CONNECTION_CLOSED);
        /* Called by the user: finish synchronously, unless one of our handlers is running. */
        if (c->disconnect_pending && c->dispatching == 0) {
                _cleanup_(cxpc_connection_unrefp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);
                connection_finish_disconnect(c);
        }
}

_public_ cxpc_connection *cxpc_connection_close_unref(cxpc_connection *c) {
        cxpc_connection_close(c);
        return cxpc_connection_unref(c);
}

/* ---- event loop ---- */

_public_ int cxpc_connection_attach_event(cxpc_connection *c, sd_event *event, int64_t priority) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        int r;

        assert_return(c, -EINVAL);
        assert_return(!c->event, -EBUSY);
        assert_return(CONNECTION_STATE_IS_ALIVE(c->state), -ENOTCONN);

        if (event)
                e = sd_event_ref(event);
        else {
                r = sd_event_default(&e);
                if (r < 0)
                        return r;
        }

        _cleanup_(sd_event_source_disable_unrefp) sd_event_source *io = NULL, *defer = NULL;
        uint32_t events = EPOLLIN | (c->out_head ? EPOLLOUT : 0);
        r = sd_event_add_io(e, &io, c->fd, events, connection_io_cb, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_priority(io, priority);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(io, "cxpc-connection");

        r = sd_event_add_defer(e, &defer, connection_defer_cb, c);
        if (r < 0)
                return r;
        r = sd_event_source_set_priority(defer, priority);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(defer, c->in_head ? SD_EVENT_ON : SD_EVENT_OFF);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(defer, "cxpc-connection-defer");

        c->event = TAKE_PTR(e);
        c->io_source = TAKE_PTR(io);
        c->io_events = events;
        c->defer_source = TAKE_PTR(defer);
        c->priority = priority;
        return 0;
}

_public_ int cxpc_connection_detach_event(cxpc_connection *c) {
        assert_return(c, -EINVAL);

        if (!c->event)
                return 0;
        /* Async calls cannot complete without the loop. */
        _cleanup_(cxpc_connection_unrefp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);
        connection_fail_all_pending(c, CXPC_ERROR_CANCELLED, "event loop detached");
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->defer_source = sd_event_source_disable_unref(c->defer_source);
        c->deadline_timer = sd_event_source_disable_unref(c->deadline_timer);
        c->timer_armed_at = CXPC_INFINITY;
        c->event = sd_event_unref(c->event);
        c->io_events = 0;
        return 0;
}

_public_ sd_event *cxpc_connection_get_event(cxpc_connection *c) {
        return c ? c->event : NULL;
}

/* ---- configuration ---- */

_public_ int cxpc_connection_set_message_handler(cxpc_connection *c, cxpc_message_handler_t handler,
                                                 void *userdata) {
        assert_return(c, -EINVAL);
        c->handler = handler;
        c->handler_userdata = userdata;
        return 0;
}

_public_ int cxpc_connection_set_router(cxpc_connection *c, cxpc_router *router) {
        assert_return(c, -EINVAL);
        cxpc_router_ref(router);
        cxpc_router_unref(c->router);
        c->router = router;
        return 0;
}

_public_ int cxpc_connection_add_disconnect_handler(cxpc_connection *c, cxpc_disconnect_handler_t handler,
                                                    void *userdata) {
        assert_return(c, -EINVAL);
        assert_return(handler, -EINVAL);
        assert_return(!c->disconnect_done, -ENOTCONN);

        DisconnectHandler *n =
                reallocarray(c->disconnect_handlers, c->n_disconnect_handlers + 1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n[c->n_disconnect_handlers++] = (DisconnectHandler){handler, userdata};
        c->disconnect_handlers = n;
        return 0;
}

_public_ int cxpc_connection_set_policy(cxpc_connection *c, cxpc_policy_t policy, void *userdata) {
        assert_return(c, -EINVAL);
        c->policy = policy;
        c->policy_userdata = policy ? userdata : NULL;
        return 0;
}

_public_ void *cxpc_connection_set_userdata(cxpc_connection *c, void *userdata) {
        if (!c)
                return NULL;
        void *old = c->userdata;
        c->userdata = userdata;
        return old;
}

_public_ void *cxpc_connection_get_userdata(cxpc_connection *c) {
        return c ? c->userdata : NULL;
}

_public_ cxpc_connection_state cxpc_connection_get_state(const cxpc_connection *c) {
        assert_return(c, _CXPC_CONNECTION_STATE_INVALID);
        return connection_public_state(c->state);
}

_public_ int cxpc_connection_get_fd(const cxpc_connection *c) {
        assert_return(c, -EINVAL);
        return c->fd;
}

/* ---- peer identity ---- */

_public_ int cxpc_connection_get_peer_uid(cxpc_connection *c, uid_t *ret) {
        assert_return(c, -EINVAL);
        assert_return(ret, -EINVAL);
        if (!c->have_peer)
                return -ENODATA;
        *ret = c->peer.uid;
        return 0;
}

_public_ int cxpc_connection_get_peer_gid(cxpc_connection *c, gid_t *ret) {
        assert_return(c, -EINVAL);
        assert_return(ret, -EINVAL);
        if (!c->have_peer)
                return -ENODATA;
        *ret = c->peer.gid;
        return 0;
}

_public_ int cxpc_connection_get_peer_pid(cxpc_connection *c, pid_t *ret) {
        assert_return(c, -EINVAL);
        assert_return(ret, -EINVAL);
        if (!c->have_peer)
                return -ENODATA;
        *ret = c->peer.pid;
        return 0;
}

_public_ int cxpc_connection_get_peer_pidfd(cxpc_connection *c, int *ret) {
        assert_return(c, -EINVAL);
        assert_return(ret, -EINVAL);

        /* Fetched on first use: the kernel pins the peer's pid at connect time, so asking later
         * names the same process, and connections that never ask pay nothing. */
        if (c->peer_pidfd == -EBADF) {
                if (c->fd < 0)
                        return -ENOTCONN;
                int fd = -EBADF;
                int r = socket_get_peer_pidfd(c->fd, &fd);
                if (r == -EOPNOTSUPP) {
                        c->peer_pidfd = -EOPNOTSUPP;
                        return r;
                }
                if (r < 0)
                        return r;
                c->peer_pidfd = fd;
        }
        if (c->peer_pidfd < 0)
                return c->peer_pidfd;
        *ret = c->peer_pidfd;
        return 0;
}

/* ---- messaging ---- */

_public_ int cxpc_connection_send(cxpc_connection *c, cxpc_object *message) {
        assert_return(c, -EINVAL);
        assert_return(object_is_dict(message), -EINVAL);

        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return -ENOTCONN;
        return connection_send_message(c, message, c->next_id++, 0, 0);
}

_public_ int cxpc_connection_call_async(cxpc_connection *c, cxpc_object *message, uint64_t timeout_usec,
                                        cxpc_reply_handler_t handler, void *userdata) {
        int r;

        assert_return(c, -EINVAL);
        assert_return(object_is_dict(message), -EINVAL);
        assert_return(handler, -EINVAL);

        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return -ENOTCONN;
        if (!c->event)
                return -ENXIO; /* nothing would ever deliver the reply */
        if (c->n_pending >= CXPC_PENDING_REPLIES_MAX)
                return -EBUSY;

        PendingCall *p = pending_alloc(c);
        if (!p)
                return -ENOMEM;
        *p = (PendingCall){
                .connection = c,
                .id = c->next_id++,
                .handler = handler,
                .userdata = userdata,
                .deadline = deadline_from_timeout(timeout_usec),
        };
        r = connection_send_message(c, message, p->id, 0, CXPC_FRAME_WANTS_REPLY);
        if (r < 0) {
                pending_free(p);
                return r;
        }
        PendingCall **b = pending_bucket(c, p->id);
        p->next = *b;
        *b = p;
        c->n_pending++;
        deadline_list_insert(c, p);
        r = deadline_timer_arm(c);
        if (r < 0) {
                /* The message is out; without a deadline timer the call must not linger forever. */
                pending_fail(c, pending_remove(c, p->id), CXPC_ERROR_INTERNAL_ERROR,
                             "cannot arm deadline timer");
                return 0;
        }
        return 0;
}

/* Sets SO_RCVTIMEO unless it already has this value. */
static int connection_set_rcvtimeo(cxpc_connection *c, uint64_t usec) {
        if (usec == c->rcvtimeo)
                return 0;
        struct timeval tv = {};
        if (usec != CXPC_INFINITY) {
                usec = MAX(usec, (uint64_t) 1); /* 0 would mean "forever" */
                tv.tv_sec = (time_t) (usec / USEC_PER_SEC);
                tv.tv_usec = (suseconds_t) (usec % USEC_PER_SEC);
        }
        if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
                return negative_errno();
        c->rcvtimeo = usec;
        return 0;
}

_public_ int cxpc_connection_call(cxpc_connection *c, cxpc_object *message, uint64_t timeout_usec,
                                  cxpc_object **ret_reply) {
        cxpc_frame *f = NULL;
        int r;

        assert_return(c, -EINVAL);
        assert_return(object_is_dict(message), -EINVAL);
        assert_return(ret_reply, -EINVAL);

        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return -ENOTCONN;

        _cleanup_(connection_unref_tempp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);
        if (timeout_usec == 0)
                timeout_usec = CXPC_DEFAULT_TIMEOUT_USEC;
        uint64_t deadline = deadline_from_timeout(timeout_usec);
        uint64_t id = c->next_id++;

        r = cxpc_frame_encode(message, id, 0, CXPC_FRAME_WANTS_REPLY, &f);
        if (r < 0)
                return r;
        _cleanup_(cxpc_frame_freep) cxpc_frame *frame = f;

        if (c->out_head) {
                r = connection_flush_until(c, deadline);
                if (r < 0)
                        return r;
        }
        for (;;) {
                r = cxpc_frame_send(c->fd, frame);
                if (r >= 0)
                        break;
                if (errno_is_disconnect(r)) {
                        connection_disconnect(c, CONNECTION_INTERRUPTED);
                        return -ECONNRESET;
                }
                if (r != -EAGAIN)
                        return r;
                r = socket_wait(c->fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        frame = cxpc_frame_free(frame);

        /* The first wait uses the caller's timeout as is, so that repeated calls with the same
         * timeout find SO_RCVTIMEO already set; later rounds use what is left. */
        uint64_t wait = timeout_usec;
        for (;;) {
                cxpc_object *m = NULL;
                cxpc_frame_info info;
                RecvError why = RECV_ERROR_NONE;

                r = connection_set_rcvtimeo(c, wait);
                if (r < 0)
                        return r;
                cxpc_recv_buffer buf = recv_batch_buffer(c->rbatch);
                r = socket_receive_message(c->fd, &buf, 0, &m, &info, &why);
                if (r == -EAGAIN) {
                        uint64_t n = now_usec();
                        if (n >= deadline)
                                return -ETIMEDOUT;
                        wait = deadline - n;
                        continue;
                }
                if (r == 0 || errno_is_disconnect(r)) {
                        connection_disconnect(c, CONNECTION_INTERRUPTED);
                        return -ECONNRESET;
                }
                if (r == -EBADMSG) {
                        connection_protocol_error(c, why);
                        return -EBADMSG;
                }
                if (r < 0)
                        return r;

                if ((info.flags & CXPC_FRAME_REPLY) && info.reply_to == id) {
                        *ret_reply = m;
                        return 0;
                }

                r = inbound_enqueue(c, m, &info);
                if (r < 0) {
                        fprintf(stderr, "cxpc: too many messages queued during a synchronous call; closing "
                                        "connection\n");
                        connection_disconnect(c, CONNECTION_INVALIDATED);
                        return r;
                }
                if (deadline != CXPC_INFINITY) {
                        uint64_t n = now_usec();
                        if (n >= deadline)
                                return -ETIMEDOUT;
                        wait = deadline - n;
                }
        }
}

_public_ int cxpc_connection_reply(cxpc_connection *c, cxpc_object *request, cxpc_object *reply) {
        uint64_t id;
        unsigned flags;
        int r;

        assert_return(c, -EINVAL);
        assert_return(object_is_dict(reply), -EINVAL);
        assert_return(cxpc_message_get_received(request, &id, &flags), -EINVAL);
        assert_return(flags & CXPC_FRAME_WANTS_REPLY, -EINVAL);

        if (message_is_replied(request))
                return -EALREADY;
        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return -ENOTCONN;

        r = connection_send_message(c, reply, c->next_id++, id, CXPC_FRAME_REPLY);
        if (r < 0)
                return r;
        return cxpc_message_mark_replied(request);
}

static int connection_reply_errorv(cxpc_connection *c, cxpc_object *request, cxpc_error_code code,
                                   const char *format, va_list ap) _printf_(4, 0);
static int connection_reply_errorv(cxpc_connection *c, cxpc_object *request, cxpc_error_code code,
                                   const char *format, va_list ap) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *e = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (format && vasprintf(&text, format, ap) < 0)
                return -ENOMEM;
        r = cxpc_dict_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_error_new(code, text, &e);
        if (r < 0)
                return r;
        r = cxpc_dict_set(reply, CXPC_KEY_ERROR, e);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, request, reply);
}

_public_ int cxpc_connection_reply_error(cxpc_connection *c, cxpc_object *request, cxpc_error_code code,
                                         const char *format, ...) {
        va_list ap;

        assert_return(c, -EINVAL);
        assert_return(code >= 0 && code < _CXPC_ERROR_CODE_MAX, -EINVAL);

        va_start(ap, format);
        int r = connection_reply_errorv(c, request, code, format, ap);
        va_end(ap);
        return r;
}

int connection_reply_errno(cxpc_connection *c, cxpc_object *request, int error) {
        error = abs(error);
        return cxpc_connection_reply_error(c, request, cxpc_error_code_from_errno(error), "%s",
                                           strerror(error));
}

/* ---- serving without an event loop ---- */

/* One turn of cxpc_connection_run(): writes what is queued, or waits for and dispatches a batch
 * of messages (one, unless the peer pipelines: then what is queued, like the event-loop path).
 * 1 when something was done, 0 when the connection is gone, -ETIMEDOUT after idle_usec without a
 * message, other errors as they come. */
static int connection_run_once(cxpc_connection *c, uint64_t idle_usec) {
        int r;

        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return 0;
        /* Messages held back by a synchronous call a handler made come first. */
        if (c->in_head) {
                (void) inbound_dispatch(c, SIZE_MAX);
                return 1;
        }
        /* Replies the socket did not take: no new request is read until they are out, so that a
         * peer that stops reading stalls only itself (backpressure, not memory). */
        if (c->out_head) {
                r = connection_flush_until(c, deadline_from_timeout(idle_usec));
                if (r == -ECONNRESET || r == -ENOTCONN)
                        return 0;
                return r < 0 ? r : 1;
        }

        r = connection_set_rcvtimeo(c, idle_usec);
        if (r < 0)
                return r;
        r = connection_read_batch(c, /* wait= */ true);
        if (r == -EAGAIN) /* SO_RCVTIMEO ran out */
                return -ETIMEDOUT;
        return 1;
}

_public_ int cxpc_connection_run(cxpc_connection *c, uint64_t idle_timeout_usec) {
        int r;

        assert_return(c, -EINVAL);
        if (c->event || c->dispatching > 0)
                return -EBUSY;

        _cleanup_(cxpc_connection_unrefp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);
        if (idle_timeout_usec == 0)
                idle_timeout_usec = CXPC_INFINITY;
        do
                r = connection_run_once(c, idle_timeout_usec);
        while (r > 0);
        if (r < 0)
                return r;
        /* Gone: pending work and the disconnect handlers run here, before we return. */
        if (c->disconnect_pending)
                connection_finish_disconnect(c);
        return 0;
}

_public_ int cxpc_connection_flush(cxpc_connection *c, uint64_t timeout_usec) {
        assert_return(c, -EINVAL);

        if (!CONNECTION_STATE_IS_ALIVE(c->state))
                return -ENOTCONN;
        if (!c->out_head)
                return 0;
        _cleanup_(cxpc_connection_unrefp) _unused_ cxpc_connection *ref = cxpc_connection_ref(c);
        return connection_flush_until(c, deadline_from_timeout(timeout_usec));
}
