/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Library-internal view of objects: the layout the codec walks, constructors that take ownership
 * without copying, and the metadata the connection layer attaches to received messages. */

#include <stdbool.h>
#include <stdint.h>

#include "cxpc/cxpc.h"

/* Dictionaries up to this many keys are searched linearly; larger ones get a hash index. */
#define CXPC_DICT_LINEAR_MAX 16u

/* A read-only mapping shared by the data values decoded from one memfd body, so that large
 * values are not copied out of it. */
typedef struct cxpc_backing {
        unsigned n_ref;
        void *map;
        size_t size;
} cxpc_backing;

/* Keys shorter than this live inside their entry: no allocation for the usual short keys. */
#define CXPC_DICT_KEY_INLINE 24u
/* Entries a dictionary holds in its own allocation before it needs an array of its own. */
#define CXPC_DICT_INLINE_ENTRIES 4u

typedef struct cxpc_dict_entry {
        char *heap_key; /* NULL when the key is inline */
        uint32_t key_len;
        uint32_t hash;
        cxpc_object *value;
        char inline_key[CXPC_DICT_KEY_INLINE]; /* NUL-terminated, when used */
} cxpc_dict_entry;

/* The entry's key: valid until the dictionary is next modified (entries move). */
static inline const char *dict_entry_key(const cxpc_dict_entry *e) {
        return e->heap_key ? e->heap_key : e->inline_key;
}

struct cxpc_object {
        unsigned n_ref; /* not atomic: an object belongs to one thread at a time */
        cxpc_type type;
        union {
                bool boolean;
                int64_t i64; /* int64 and date */
                uint64_t u64;
                double dbl;
                /* Data has three storage kinds:
                 *  - owned: ptr is malloc'd (NULL when size is 0), backing NULL, memfd < 0;
                 *  - body-backed: ptr points into a received memfd body mapping (backing);
                 *  - memfd-backed (size >= CXPC_DATA_MEMFD_MIN, from cxpc_data_new() or received
                 *    as a data-memfd value): the bytes live in memfd, sealed like shmem; ptr is a
                 *    read-only MAP_SHARED mapping made on first access (cxpc_data_map()), so that
                 *    forwarding a received value never touches its pages. The encoder passes a
                 *    dup of memfd instead of copying the bytes; copies share a dup of it too. */
                struct {
                        uint8_t *ptr; /* set atomically by cxpc_data_map() for memfd-backed data */
                        size_t size;
                        cxpc_backing *backing;
                        int memfd;
                } data;
                struct {
                        char *ptr; /* NUL-terminated; usually right after the object */
                        size_t len;
                } string;
                uint8_t uuid[16];
                struct {
                        cxpc_object **items;
                        size_t n, allocated;
                } array;
                struct {
                        cxpc_dict_entry *entries; /* first the inline ones after the object */
                        size_t n, allocated;
                        uint32_t *index; /* open addressing: entry position + 1, 0 = empty */
                        size_t index_size;
                        /* Set on messages received from a peer. */
                        uint64_t msg_id;
                        unsigned msg_flags;
                        bool received;
                        bool replied;
                } dict;
                int fd; /* fd and endpoint */
                struct {
                        int fd;
                        size_t size;
                        void *map;
                } shmem;
                struct {
                        cxpc_error_code code;
                        char *message;
                } error;
        };
};

/* Per-thread caches of freed blocks of fixed size (object.c): every message makes and drops a
 * handful of objects and one frame. */
typedef enum ObjectClass {
        OBJECT_CLASS_PLAIN, /* an object without extra bytes: scalars, fds, ... */
        OBJECT_CLASS_DICT,  /* a dictionary with its inline entries */
        OBJECT_CLASS_FRAME, /* a small encoded frame (CXPC_FRAME_SMALL_ALLOC bytes, codec.c) */
        _OBJECT_CLASS_MAX,
        _OBJECT_CLASS_NONE = -1,
} ObjectClass;

/* A cached block of class k, or NULL. */
void *object_cache_get(ObjectClass k);
/* Keeps p for reuse; false when the cache is full (the caller frees it). */
bool object_cache_put(ObjectClass k, void *p);

cxpc_backing *cxpc_backing_new(void *map, size_t size);
cxpc_backing *cxpc_backing_ref(cxpc_backing *b);
cxpc_backing *cxpc_backing_unref(cxpc_backing *b);

bool cxpc_utf8_is_valid(const char *s, size_t len);

/* Constructors that take ownership of what they are given (also on failure). */
int cxpc_string_new_take(char *s, size_t len, cxpc_object **ret);
/* A string from bytes the caller already checked (length bound, UTF-8 without NUL). */
int cxpc_string_new_checked(const char *s, size_t len, cxpc_object **ret);
int cxpc_data_new_backed(const void *p, size_t size, cxpc_backing *backing, cxpc_object **ret);
/* Takes a memfd the caller checked (CXPC_SHMEM_SEALS, exactly size bytes, size > 0). */
int cxpc_data_new_memfd_take(int memfd, size_t size, cxpc_object **ret);
/* The bytes of any data value, mapping a memfd-backed one on first use (thread-safe: the object
 * stays logically const). NULL with size 0. */
int cxpc_data_map(const cxpc_object *o, const uint8_t **ret);
int cxpc_fd_new_take(int fd, cxpc_object **ret);
int cxpc_shmem_new_take(int memfd, size_t size, cxpc_object **ret);
int cxpc_error_new_take(cxpc_error_code code, char *message, cxpc_object **ret);
/* Appends without taking a new reference (the caller's reference moves in). */
int cxpc_array_append_take(cxpc_object *array, cxpc_object *value);
/* Sets without taking a new reference; the key bytes are copied. */
int cxpc_dict_set_take_len(cxpc_object *dict, const char *key, size_t key_len, cxpc_object *value);

/* Metadata a received message carries so that a (possibly deferred) reply can find its request.
 * Set by the connection on every incoming dictionary. */
void cxpc_message_set_received(cxpc_object *message, uint64_t id, unsigned frame_flags);
/* false when the message was not received from a peer. */
bool cxpc_message_get_received(const cxpc_object *message, uint64_t *ret_id, unsigned *ret_frame_flags);
/* -EALREADY when a reply was already sent for this request. */
int cxpc_message_mark_replied(cxpc_object *message);

/* Endpoint objects wrap the connector socket of an anonymous listener (docs/libcxpc.md). */
int cxpc_endpoint_new_take_fd(int fd, cxpc_object **ret);
/* Borrowed fd, or -EMEDIUMTYPE / -EINVAL. */
int cxpc_endpoint_get_fd(const cxpc_object *o);
/* Borrowed fd of an fd, endpoint or shmem object. */
int cxpc_object_get_fd_borrowed(const cxpc_object *o);

/* Seals a shmem region or a data memfd carries: the receiver refuses anything less. */
#define CXPC_SHMEM_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
