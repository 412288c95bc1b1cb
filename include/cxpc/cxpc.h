/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef CXPC_CXPC_H
#define CXPC_CXPC_H

/*
 * libcxpc: typed XPC-style IPC for Linux.
 *
 * Conventions (as in sd-bus / sd-varlink):
 *  - Functions return 0 (or a positive value) on success and a negative errno on failure.
 *  - Out-parameters (ret_*) are written only on success.
 *  - Objects are reference counted; every *_unref() accepts NULL and returns NULL.
 *  - Every file descriptor the library creates or hands out is O_CLOEXEC.
 *  - Getters tell "absent" (-ENOENT) from "present with another type" (-EMEDIUMTYPE)
 *    and from a present zero/false value (returns 0).
 *
 * The wire contract is described in docs/protocol.md.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Limits (the codec and the connection enforce these; see docs/protocol.md) ---- */

#define CXPC_PROTOCOL_VERSION         1
#define CXPC_FRAME_HEADER_SIZE        32u
#define CXPC_INLINE_BODY_MAX          (48u * 1024u)          /* larger bodies travel in a sealed memfd */
#define CXPC_MESSAGE_SIZE_MAX         (256u * 1024u * 1024u) /* encoded body, inline or memfd */
#define CXPC_DEPTH_MAX                32u                    /* nesting of arrays/dictionaries */
#define CXPC_FDS_PER_MESSAGE_MAX      64u            /* fd/endpoint/shmem/large data values + body memfd */
#define CXPC_DATA_MEMFD_MIN           (256u * 1024u) /* data this large lives in its own sealed memfd */
#define CXPC_DICT_KEYS_MAX            65536u
#define CXPC_ARRAY_ITEMS_MAX          (1024u * 1024u)
#define CXPC_KEY_SIZE_MAX             1024u /* bytes of one dictionary key */
#define CXPC_STRING_SIZE_MAX          (64u * 1024u * 1024u)
#define CXPC_ERROR_MESSAGE_SIZE_MAX   4096u
#define CXPC_OUTBOUND_QUEUE_MAX       4096u /* queued frames per connection */
#define CXPC_OUTBOUND_QUEUE_BYTES_MAX (512u * 1024u * 1024u)
#define CXPC_PENDING_REPLIES_MAX      4096u /* outstanding calls per connection */
#define CXPC_CONNECTIONS_PER_UID_MAX  4096u /* per listener */
#define CXPC_DEFAULT_TIMEOUT_USEC     (25ull * 1000000ull)
#define CXPC_INFINITY                 UINT64_MAX

/* Fixed message keys. */
#define CXPC_KEY_ROUTE        "cxpc.route"
#define CXPC_KEY_ERROR        "cxpc.error"
#define CXPC_ROUTE_INTROSPECT "cxpc.routes" /* reply: { "routes": [ string... ] } */

/* ---- Types ---- */

typedef enum cxpc_type {
        CXPC_TYPE_NULL,
        CXPC_TYPE_BOOL,
        CXPC_TYPE_INT64,
        CXPC_TYPE_UINT64,
        CXPC_TYPE_DOUBLE,
        CXPC_TYPE_DATE, /* int64 nanoseconds since the Unix epoch */
        CXPC_TYPE_DATA,
        CXPC_TYPE_STRING, /* validated UTF-8, no embedded NUL */
        CXPC_TYPE_UUID,
        CXPC_TYPE_ARRAY,
        CXPC_TYPE_DICTIONARY,
        CXPC_TYPE_FD,
        CXPC_TYPE_ENDPOINT,
        CXPC_TYPE_SHMEM, /* sealed memfd region */
        CXPC_TYPE_ERROR,
        _CXPC_TYPE_MAX,
        _CXPC_TYPE_INVALID = -22, /* -EINVAL */
} cxpc_type;

/* Error codes that cross process boundaries; the names travel on the wire. */
typedef enum cxpc_error_code {
        CXPC_ERROR_UNKNOWN,
        CXPC_ERROR_INVALID_ARGUMENT,
        CXPC_ERROR_INTERNAL_ERROR,
        CXPC_ERROR_EXISTS,
        CXPC_ERROR_NOT_FOUND,
        CXPC_ERROR_CANCELLED,
        CXPC_ERROR_INVALID_STATE,
        CXPC_ERROR_EMPTY,
        CXPC_ERROR_TIMEOUT,
        CXPC_ERROR_UNSUPPORTED,
        CXPC_ERROR_INTERRUPTED,
        _CXPC_ERROR_CODE_MAX,
        _CXPC_ERROR_CODE_INVALID = -22,
} cxpc_error_code;

typedef struct cxpc_object cxpc_object;
typedef struct cxpc_connection cxpc_connection;
typedef struct cxpc_listener cxpc_listener;
typedef struct cxpc_router cxpc_router;
typedef struct sd_event sd_event;

/* ---- Error codes ---- */

/* "invalidArgument" etc.; NULL for out-of-range values. */
const char *cxpc_error_code_to_string(cxpc_error_code code);
/* Unknown names (from a newer peer) map to CXPC_ERROR_UNKNOWN, never fail. */
cxpc_error_code cxpc_error_code_from_string(const char *name);
/* ENOENT → notFound, EEXIST → exists, EINVAL → invalidArgument, ETIMEDOUT → timeout, ... */
cxpc_error_code cxpc_error_code_from_errno(int error);
/* The inverse, for typed clients that want an errno back (returns a positive errno). */
int cxpc_error_code_to_errno(cxpc_error_code code);

/* ---- Objects: common ---- */

cxpc_object *cxpc_object_ref(cxpc_object *o);
cxpc_object *cxpc_object_unref(cxpc_object *o);
cxpc_type cxpc_object_get_type(const cxpc_object *o);
const char *cxpc_type_to_string(cxpc_type t);
/* Deep structural equality. fds compare equal when they refer to the same open file (kcmp or
 * st_dev/st_ino + flags); NULL == NULL. */
bool cxpc_object_equal(const cxpc_object *a, const cxpc_object *b);
/* Deep copy; fd values are duplicated (CLOEXEC). */
int cxpc_object_copy(const cxpc_object *o, cxpc_object **ret);

/* ---- Scalars ---- */

int cxpc_null_new(cxpc_object **ret);
int cxpc_bool_new(bool v, cxpc_object **ret);
int cxpc_int64_new(int64_t v, cxpc_object **ret);
int cxpc_uint64_new(uint64_t v, cxpc_object **ret);
int cxpc_double_new(double v, cxpc_object **ret);
int cxpc_date_new(int64_t nsec_since_epoch, cxpc_object **ret);
/* Copies the bytes; size 0 is a valid, distinct value. From CXPC_DATA_MEMFD_MIN bytes on, the copy
 * goes into a sealed memfd (one fd per value) that later sends pass along without copying. */
int cxpc_data_new(const void *p, size_t size, cxpc_object **ret);
/* Validates UTF-8 (-EILSEQ) and length (-E2BIG). */
int cxpc_string_new(const char *s, cxpc_object **ret);
int cxpc_string_new_len(const char *s, size_t len, cxpc_object **ret);
int cxpc_string_newf(cxpc_object **ret, const char *format, ...) __attribute__((format(printf, 2, 3)));
int cxpc_uuid_new(const uint8_t uuid[16], cxpc_object **ret);
/* Duplicates fd (F_DUPFD_CLOEXEC); the caller keeps its own fd. */
int cxpc_fd_new(int fd, cxpc_object **ret);
/* Creates a sealed memfd with a copy of the bytes. */
int cxpc_shmem_new(const void *p, size_t size, cxpc_object **ret);
/* Wraps an existing memfd (duplicated); it is sealed (write/grow/shrink/seal) if not yet. */
int cxpc_shmem_new_fd(int memfd, cxpc_object **ret);
/* message may be NULL; it is truncated to CXPC_ERROR_MESSAGE_SIZE_MAX. */
int cxpc_error_new(cxpc_error_code code, const char *message, cxpc_object **ret);
int cxpc_error_newf(cxpc_object **ret, cxpc_error_code code, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Value getters: -EINVAL for NULL, -EMEDIUMTYPE for another type. Borrowed pointers live as
 * long as the object. */
int cxpc_bool_get(const cxpc_object *o, bool *ret);
int cxpc_int64_get(const cxpc_object *o, int64_t *ret);
int cxpc_uint64_get(const cxpc_object *o, uint64_t *ret);
int cxpc_double_get(const cxpc_object *o, double *ret);
int cxpc_date_get(const cxpc_object *o, int64_t *ret);
/* Large (memfd-backed) values are mapped read-only on first use: this may fail with -ENOMEM. */
int cxpc_data_get(const cxpc_object *o, const void **ret_ptr, size_t *ret_size);
int cxpc_string_get(const cxpc_object *o, const char **ret);
int cxpc_uuid_get(const cxpc_object *o, const uint8_t **ret);
/* Returns a new CLOEXEC duplicate that the caller owns. */
int cxpc_fd_dup(const cxpc_object *o, int *ret_fd);
/* Read-only mapping of the region, valid for the object's lifetime. */
int cxpc_shmem_map(cxpc_object *o, const void **ret_ptr, size_t *ret_size);
int cxpc_shmem_dup_fd(const cxpc_object *o, int *ret_fd);
int cxpc_error_get_code(const cxpc_object *o, cxpc_error_code *ret);
int cxpc_error_get_message(const cxpc_object *o, const char **ret);

/* ---- Arrays ---- */

int cxpc_array_new(cxpc_object **ret);
size_t cxpc_array_get_count(const cxpc_object *array); /* 0 for non-arrays */
/* Takes its own reference to value. */
int cxpc_array_append(cxpc_object *array, cxpc_object *value);
/* Borrowed; NULL when out of range. */
cxpc_object *cxpc_array_get(const cxpc_object *array, size_t index);

/* ---- Dictionaries (keys are UTF-8 strings; insertion order is kept) ---- */

int cxpc_dict_new(cxpc_object **ret);
size_t cxpc_dict_get_count(const cxpc_object *dict);
/* Takes its own reference to value; replaces an existing key. */
int cxpc_dict_set(cxpc_object *dict, const char *key, cxpc_object *value);
int cxpc_dict_remove(cxpc_object *dict, const char *key); /* -ENOENT when absent */
/* Borrowed; NULL when absent. */
cxpc_object *cxpc_dict_get(const cxpc_object *dict, const char *key);
/* Iteration by index (insertion order). */
int cxpc_dict_get_entry(const cxpc_object *dict, size_t index, const char **ret_key,
                        cxpc_object **ret_value);

/* Typed convenience setters. */
int cxpc_dict_set_null(cxpc_object *dict, const char *key);
int cxpc_dict_set_bool(cxpc_object *dict, const char *key, bool v);
int cxpc_dict_set_int64(cxpc_object *dict, const char *key, int64_t v);
int cxpc_dict_set_uint64(cxpc_object *dict, const char *key, uint64_t v);
int cxpc_dict_set_double(cxpc_object *dict, const char *key, double v);
int cxpc_dict_set_date(cxpc_object *dict, const char *key, int64_t nsec);
int cxpc_dict_set_data(cxpc_object *dict, const char *key, const void *p, size_t size);
int cxpc_dict_set_string(cxpc_object *dict, const char *key, const char *s);
int cxpc_dict_set_uuid(cxpc_object *dict, const char *key, const uint8_t uuid[16]);
int cxpc_dict_set_fd(cxpc_object *dict, const char *key, int fd); /* duplicates fd */

/* Typed convenience getters: -ENOENT absent, -EMEDIUMTYPE wrong type, 0 found. */
int cxpc_dict_get_bool(const cxpc_object *dict, const char *key, bool *ret);
int cxpc_dict_get_int64(const cxpc_object *dict, const char *key, int64_t *ret);
int cxpc_dict_get_uint64(const cxpc_object *dict, const char *key, uint64_t *ret);
int cxpc_dict_get_double(const cxpc_object *dict, const char *key, double *ret);
int cxpc_dict_get_date(const cxpc_object *dict, const char *key, int64_t *ret);
int cxpc_dict_get_data(const cxpc_object *dict, const char *key, const void **ret_ptr, size_t *ret_size);
int cxpc_dict_get_string(const cxpc_object *dict, const char *key, const char **ret);
int cxpc_dict_get_uuid(const cxpc_object *dict, const char *key, const uint8_t **ret);
int cxpc_dict_dup_fd(const cxpc_object *dict, const char *key, int *ret_fd);

/* ---- JSON bridge (jansson) ---- */

enum {
        CXPC_JSON_PRETTY = 1u << 0,
};
/* fd/endpoint/shmem become placeholder objects {"$fd": N} / {"$endpoint": true} / {"$shmem": size};
 * data becomes {"$data": "<base64>"}, uuid {"$uuid": "..."}, date {"$date": "<RFC 3339>"},
 * error {"$error": {"code": ..., "message": ...}}, uint64 above INT64_MAX a number. */
int cxpc_object_to_json(const cxpc_object *o, unsigned flags, char **ret);
/* JSON objects → dictionaries, arrays → arrays, integers → int64 (uint64 when above INT64_MAX),
 * reals → double, strings → string, true/false → bool, null → null. The "$data", "$uuid",
 * "$date" forms are accepted; "$fd", "$endpoint", "$shmem" are refused (-EINVAL). */
int cxpc_object_from_json(const char *text, cxpc_object **ret);

/* ---- Messages ---- */

/* A new dictionary with CXPC_KEY_ROUTE set. */
int cxpc_message_new_request(const char *route, cxpc_object **ret);
/* NULL when the message has no route. */
const char *cxpc_message_get_route(const cxpc_object *message);
/* The error object of an error reply, or NULL. */
cxpc_object *cxpc_message_get_error(const cxpc_object *message);
/* Convenience for typed clients: 0 for a normal reply; for an error reply returns
 * -cxpc_error_code_to_errno(code) and stores the code and message (borrowed) if asked. */
int cxpc_reply_check(const cxpc_object *reply, cxpc_error_code *ret_code, const char **ret_message);

/* ---- Connections ---- */

typedef enum cxpc_connection_state {
        CXPC_CONNECTION_CONNECTED,
        CXPC_CONNECTION_INTERRUPTED, /* peer went away; no more I/O */
        CXPC_CONNECTION_INVALIDATED, /* closed locally or after a protocol error */
        _CXPC_CONNECTION_STATE_MAX,
        _CXPC_CONNECTION_STATE_INVALID = -22,
} cxpc_connection_state;

/* Called for every incoming message that is not a reply. Return < 0 to have the library send an
 * error reply derived from the errno (if the peer wants a reply and none was sent). Returning
 * >= 0 without replying defers the reply: keep a reference to the message and call
 * cxpc_connection_reply() later. */
typedef int (*cxpc_message_handler_t)(cxpc_connection *c, cxpc_object *message, void *userdata);
/* reply is never NULL: local failures arrive as error replies (timeout, interrupted). */
typedef void (*cxpc_reply_handler_t)(cxpc_connection *c, cxpc_object *reply, void *userdata);
/* Runs once when the connection is interrupted or invalidated, after in-flight work. */
typedef void (*cxpc_disconnect_handler_t)(cxpc_connection *c, void *userdata);
/* Return 0 to accept a message from this peer, < 0 to refuse it. Checked per message. */
typedef int (*cxpc_policy_t)(cxpc_connection *c, cxpc_object *message, void *userdata);

/* Client side. Connecting does not need an event loop: synchronous calls work without one. */
int cxpc_connection_new_for_path(const char *path, cxpc_connection **ret);
int cxpc_connection_new_for_endpoint(const cxpc_object *endpoint, cxpc_connection **ret);
/* Takes ownership of a connected SOCK_SEQPACKET fd (e.g. the socket a supervisor handed us). */
int cxpc_connection_new_from_fd(int fd, cxpc_connection **ret);

cxpc_connection *cxpc_connection_ref(cxpc_connection *c);
cxpc_connection *cxpc_connection_unref(cxpc_connection *c);
/* Stops I/O, fails pending calls with "interrupted"/"cancelled", runs disconnect handlers once.
 * Idempotent. Returns NULL-safe unref for convenience. */
void cxpc_connection_close(cxpc_connection *c);
cxpc_connection *cxpc_connection_close_unref(cxpc_connection *c);

int cxpc_connection_attach_event(cxpc_connection *c, sd_event *event, int64_t priority);
int cxpc_connection_detach_event(cxpc_connection *c);
sd_event *cxpc_connection_get_event(cxpc_connection *c);

int cxpc_connection_set_message_handler(cxpc_connection *c, cxpc_message_handler_t handler, void *userdata);
int cxpc_connection_set_router(cxpc_connection *c, cxpc_router *router);
int cxpc_connection_add_disconnect_handler(cxpc_connection *c, cxpc_disconnect_handler_t handler,
                                           void *userdata);
/* Default policy: the peer's uid equals our euid, or is 0. NULL restores it. */
int cxpc_connection_set_policy(cxpc_connection *c, cxpc_policy_t policy, void *userdata);
void *cxpc_connection_set_userdata(cxpc_connection *c, void *userdata);
void *cxpc_connection_get_userdata(cxpc_connection *c);
cxpc_connection_state cxpc_connection_get_state(const cxpc_connection *c);
int cxpc_connection_get_fd(const cxpc_connection *c);

int cxpc_connection_get_peer_uid(cxpc_connection *c, uid_t *ret);
int cxpc_connection_get_peer_gid(cxpc_connection *c, gid_t *ret);
int cxpc_connection_get_peer_pid(cxpc_connection *c, pid_t *ret);
/* -EOPNOTSUPP where the kernel lacks SO_PEERPIDFD. The pidfd stays owned by the connection. */
int cxpc_connection_get_peer_pidfd(cxpc_connection *c, int *ret);

/* One-way message: no reply is expected. Queues when the socket is full (bounded: -ENOBUFS). */
int cxpc_connection_send(cxpc_connection *c, cxpc_object *message);
/* Asynchronous call; needs an attached event loop. timeout_usec: 0 = default, CXPC_INFINITY = none. */
int cxpc_connection_call_async(cxpc_connection *c, cxpc_object *message, uint64_t timeout_usec,
                               cxpc_reply_handler_t handler, void *userdata);
/* Synchronous call. Returns 0 with the reply (which may be an error reply from the peer), or
 * -ETIMEDOUT when the deadline passes, -ECONNRESET when the peer goes away mid-call,
 * -ENOTCONN on a closed connection. Other messages that arrive meanwhile are dispatched later by
 * the event loop, in order. */
int cxpc_connection_call(cxpc_connection *c, cxpc_object *message, uint64_t timeout_usec,
                         cxpc_object **ret_reply);
/* Reply to a request (now, or later for a deferred reply). Exactly one reply per request:
 * -EALREADY for a second one. Replying on a dead connection returns -ENOTCONN. */
int cxpc_connection_reply(cxpc_connection *c, cxpc_object *request, cxpc_object *reply);
int cxpc_connection_reply_error(cxpc_connection *c, cxpc_object *request, cxpc_error_code code,
                                const char *format, ...) __attribute__((format(printf, 4, 5)));
/* Creates an empty reply dictionary for convenience (no metadata needed). */
int cxpc_reply_new(cxpc_object **ret);
/* True when the sender of this incoming message waits for a reply. */
bool cxpc_message_expects_reply(const cxpc_object *message);

/* Blocks until everything queued has been written (or timeout). */
int cxpc_connection_flush(cxpc_connection *c, uint64_t timeout_usec);

/* Serves c on the calling thread without an event loop (a thread per connection, an agent with a
 * single peer): waits in recvmsg() for each message and dispatches it as an attached connection
 * would (policy, router or message handler, error replies, deferred replies). Returns 0 once the
 * connection is no longer connected (its disconnect handlers have run), -ETIMEDOUT after
 * idle_timeout_usec without a message (0 or CXPC_INFINITY: never; signals do not end the wait),
 * -EBUSY when c is attached to an event loop or when called from one of its handlers. A call
 * after -ETIMEDOUT carries on where the last one stopped. Another thread stops it with
 * shutdown(cxpc_connection_get_fd(c), SHUT_RDWR), which ends the connection. */
int cxpc_connection_run(cxpc_connection *c, uint64_t idle_timeout_usec);

/* ---- Listeners ---- */

/* Called for each accepted connection (already attached to the listener's event loop, with the
 * listener's router if one is set). Return < 0 to refuse (the connection is closed). */
typedef int (*cxpc_connection_accept_handler_t)(cxpc_listener *l, cxpc_connection *c, void *userdata);

/* Binds path with mode 0600; the parent directory is created with mode 0700 if missing.
 * A stale socket at path (nobody listening) is replaced; a live one gives -EADDRINUSE. */
int cxpc_listener_new_for_path(sd_event *event, const char *path, cxpc_listener **ret);
/* Socket activation: the first LISTEN_FDS socket (sd_listen_fds()); -ENOENT when none. */
int cxpc_listener_new_activated(sd_event *event, cxpc_listener **ret);
/* Wraps an already listening SOCK_SEQPACKET socket (ownership taken). */
int cxpc_listener_new_from_fd(sd_event *event, int fd, cxpc_listener **ret);
/* A listener with no filesystem name, reachable only through its endpoint. */
int cxpc_listener_new_anonymous(sd_event *event, cxpc_listener **ret);
/* A new reference to the endpoint of an anonymous listener (-EOPNOTSUPP for others). */
int cxpc_listener_get_endpoint(cxpc_listener *l, cxpc_object **ret);

cxpc_listener *cxpc_listener_ref(cxpc_listener *l);
cxpc_listener *cxpc_listener_unref(cxpc_listener *l);
/* Stops accepting; removes the socket file it created. Existing connections live on. */
void cxpc_listener_close(cxpc_listener *l);

int cxpc_listener_set_accept_handler(cxpc_listener *l, cxpc_connection_accept_handler_t handler,
                                     void *userdata);
int cxpc_listener_set_router(cxpc_listener *l, cxpc_router *router);
int cxpc_listener_set_policy(cxpc_listener *l, cxpc_policy_t policy, void *userdata);
int cxpc_listener_get_fd(const cxpc_listener *l);

/* ---- Router ---- */

typedef int (*cxpc_route_handler_t)(cxpc_connection *c, cxpc_object *message, void *userdata);

int cxpc_router_new(cxpc_router **ret);
cxpc_router *cxpc_router_ref(cxpc_router *r);
cxpc_router *cxpc_router_unref(cxpc_router *r);
/* -EEXIST if the route is taken. Route names are non-empty UTF-8, at most CXPC_KEY_SIZE_MAX. */
int cxpc_router_add(cxpc_router *r, const char *route, cxpc_route_handler_t handler, void *userdata);
/* Message handler that routes by CXPC_KEY_ROUTE: unknown route → "unsupported" error reply;
 * handler < 0 without a reply → error reply from the errno; CXPC_ROUTE_INTROSPECT lists routes. */
int cxpc_router_dispatch(cxpc_router *r, cxpc_connection *c, cxpc_object *message);
/* A new array of route names (strings), in registration order. */
int cxpc_router_list(cxpc_router *r, cxpc_object **ret_array);

/* ---- Cleanup helpers ---- */

#define _CXPC_DEFINE_POINTER_CLEANUP_FUNC(type, func) \
        static inline void func##p(type **p) {        \
                if (*p)                               \
                        *p = func(*p);                \
        }

_CXPC_DEFINE_POINTER_CLEANUP_FUNC(cxpc_object, cxpc_object_unref)
_CXPC_DEFINE_POINTER_CLEANUP_FUNC(cxpc_connection, cxpc_connection_unref)
_CXPC_DEFINE_POINTER_CLEANUP_FUNC(cxpc_connection, cxpc_connection_close_unref)
_CXPC_DEFINE_POINTER_CLEANUP_FUNC(cxpc_listener, cxpc_listener_unref)
_CXPC_DEFINE_POINTER_CLEANUP_FUNC(cxpc_router, cxpc_router_unref)

#ifdef __cplusplus
}
#endif

#endif
