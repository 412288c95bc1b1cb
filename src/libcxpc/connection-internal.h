/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Connection internals shared by connection.c, listener.c and router.c (docs/libcxpc.md). */

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "codec.h"
#include "object-internal.h"
#include "socket-util.h"
#include "cxpc/cxpc.h"

/* Queued messages dispatched per deferred-source run before yielding (fairness). */
#define CONNECTION_READ_BATCH_MAX 32u
/* Batched receives (up to RECV_BATCH_MAX records each) per io wakeup before yielding. */
#define CONNECTION_READ_ROUNDS_MAX 2u
/* A peer that waits for each reply sends one record at a time: then receive one per wakeup (a
 * second slot only costs the kernel a failed read), and every this many wakeups look for more. */
#define CONNECTION_READ_PROBE_INTERVAL 16u
/* Messages held back while a synchronous call waits for its reply. */
#define CONNECTION_INBOUND_QUEUE_MAX 4096u
/* Finished pending-call records a connection keeps for reuse. */
#define CONNECTION_PENDING_SPARE_MAX 64u
/* Buckets of the pending-reply table (chained; a power of two). */
#define CONNECTION_PENDING_BUCKETS 64u
/* Deadline timers may fire this late: keep it tight, deadlines are user-visible. */
#define CONNECTION_TIMER_ACCURACY_USEC 1000u

/* Finer than the public state: the public one is derived by connection_public_state(). */
typedef enum ConnectionState {
        CONNECTION_RUNNING,     /* connected, I/O possible */
        CONNECTION_INTERRUPTED, /* peer went away (EOF, ECONNRESET, EPIPE) */
        CONNECTION_INVALIDATED, /* protocol error or refused by policy */
        CONNECTION_CLOSED,      /* closed locally */
        _CONNECTION_STATE_MAX,
        _CONNECTION_STATE_INVALID = -EINVAL,
} ConnectionState;

#define CONNECTION_STATE_IS_ALIVE(s) ((s) == CONNECTION_RUNNING)

typedef struct PendingCall PendingCall;
struct PendingCall {
        cxpc_connection *connection;
        uint64_t id;
        cxpc_reply_handler_t handler;
        void *userdata;
        uint64_t deadline;              /* CXPC_INFINITY: not in the deadline list */
        PendingCall *next;              /* bucket chain */
        PendingCall *dl_prev, *dl_next; /* deadline list, earliest first */
};

typedef struct InboundItem InboundItem;
struct InboundItem {
        InboundItem *next;
        cxpc_object *message;
        cxpc_frame_info info;
};

typedef struct DisconnectHandler {
        cxpc_disconnect_handler_t handler;
        void *userdata;
} DisconnectHandler;

struct cxpc_connection {
        unsigned n_ref;
        ConnectionState state;
        int fd;

        uint64_t next_id;
        RecvBatch *rbatch;
        /* SO_RCVTIMEO currently set on the socket (µs, CXPC_INFINITY = none), to skip redundant
         * setsockopt() calls on the synchronous path. */
        uint64_t rcvtimeo;

        struct ucred peer;
        bool have_peer;
        uid_t euid;     /* ours, cached for the per-message default policy */
        int peer_pidfd; /* fetched lazily; -EOPNOTSUPP when the kernel lacks it */

        sd_event *event;
        int64_t priority;
        bool priority_set;
        sd_event_source *io_source;
        sd_event_source *defer_source; /* drains the inbound queue, finishes a disconnect */
        uint32_t io_events;

        cxpc_frame *out_head, *out_tail; /* linked through queue_next */
        size_t n_out, out_bytes;

        InboundItem *in_head, *in_tail;
        size_t n_in;

        PendingCall *pending[CONNECTION_PENDING_BUCKETS];
        size_t n_pending;
        /* Finished calls kept for reuse (a pipelining client makes one per message). */
        PendingCall *pending_spare;
        unsigned n_pending_spare;
        /* One timer for all calls, armed at (or before) the earliest deadline. It is not moved
         * when calls complete: an early wakeup just re-arms it, which is far cheaper than
         * re-programming the timerfd on every reply. */
        PendingCall *dl_head, *dl_tail;
        sd_event_source *deadline_timer;
        uint64_t timer_armed_at; /* CXPC_INFINITY when disarmed */

        cxpc_message_handler_t handler;
        void *handler_userdata;
        cxpc_router *router;
        cxpc_policy_t policy;
        void *policy_userdata;
        void *userdata;

        DisconnectHandler *disconnect_handlers;
        size_t n_disconnect_handlers;
        unsigned dispatching;    /* > 0 while a handler of ours runs */
        bool disconnect_pending; /* state left RUNNING; cleanup not yet run */
        bool disconnect_done;
        cxpc_error_code disconnect_code; /* for the synthesized replies of pending calls */

        /* Accepted connections: owned by themselves until they disconnect, tracked weakly by
         * the listener for the per-uid cap. */
        cxpc_listener *listener;
        cxpc_connection *listener_prev, *listener_next;
        bool self_ref;

        /* > 0 while the event loop dispatches what it read: frames sent meanwhile are queued and
         * go out together (sendmmsg) when the batch is done, or whenever a send batch is full. */
        unsigned cork;
        /* Records per receive: RECV_BATCH_MAX while the peer pipelines, else 1 (with a probe). */
        bool pipelining;
        unsigned reads_since_probe;
};

/* A connection around a connected socket (ownership taken, also on failure). */
int connection_new(int fd, cxpc_connection **ret);
/* Dispatches a message through the router or handler of c (the router's entry point). */
int connection_reply_errno(cxpc_connection *c, cxpc_object *request, int error);
static inline bool message_is_replied(const cxpc_object *message) {
        return message && message->type == CXPC_TYPE_DICTIONARY && message->dict.replied;
}

/* Is this record the "connect" record a client sends over an endpoint? */
bool connection_is_endpoint_connect(const void *buf, size_t size);

/* listener.c: an accepted connection disconnected. */
void listener_connection_gone(cxpc_listener *l, cxpc_connection *c);
