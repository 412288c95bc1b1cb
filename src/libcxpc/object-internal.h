/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Library-internal view of objects: the layout the codec walks, constructors that take ownership
 * without copying, and the metadata the connection layer attaches to received messages. */

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "cxpc/cxpc.h"

/* For the few helpers on the path of every dictionary entry, where a call costs as much as the
 * work. */
#define _always_inline_ inline __attribute__((always_inline))

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

/* scalar_type of an entry whose value is an object (not an inline scalar). */
#define DICT_ENTRY_OBJECT UINT8_MAX

/* Scalar values (null, bool, int64, uint64, double, date) live in their entry: setting, encoding,
 * decoding and the typed getters need no object for them. The object that cxpc_dict_get() and
 * friends return is made on first demand and kept in value until the entry goes away. */
typedef struct cxpc_dict_entry {
        char *heap_key; /* NULL when the key is inline */
        uint32_t key_len;
        uint32_t hash;
        /* An object entry: never NULL. An inline scalar: its object once asked for, else NULL
         * (set atomically: concurrent readers of one dictionary may race to make it). */
        cxpc_object *value;
        uint64_t scalar;     /* inline scalar: u64 bits of the 8-byte ones, 0/1 for bool, 0 for null */
        uint8_t scalar_type; /* inline scalar: its cxpc_type; else DICT_ENTRY_OBJECT */
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
        OBJECT_CLASS_PLAIN,  /* an object without extra bytes: scalars, fds, ... */
        OBJECT_CLASS_DICT,   /* a dictionary with its inline entries */
        OBJECT_CLASS_STRING, /* a string with room for CXPC_STRING_INLINE_CACHED bytes after it */
        OBJECT_CLASS_FRAME,  /* a small encoded frame (CXPC_FRAME_SMALL_ALLOC bytes, codec.c) */
        _OBJECT_CLASS_MAX,
        _OBJECT_CLASS_NONE = -1,
} ObjectClass;

/* Strings up to this many bytes (with their NUL) share one allocation size, so that the usual
 * short ones (routes, names) are recycled like the other objects. */
#define CXPC_STRING_INLINE_CACHED 48u

#define OBJECT_CACHE_MAX 64u

typedef struct ObjectCache {
        void *free[_OBJECT_CLASS_MAX][OBJECT_CACHE_MAX];
        unsigned n[_OBJECT_CLASS_MAX];
} ObjectCache;

/* The calling thread's cache, NULL until something was first put into it (object.c). One pointer
 * of static TLS (initial-exec: no __tls_get_addr() call per object). */
extern __thread ObjectCache *object_cache_tls __attribute__((tls_model("initial-exec")));

/* Slow path of object_cache_put(): sets up the thread's cache first. */
bool object_cache_put_slow(ObjectClass k, void *p);

/* A cached block of class k, or NULL. Inline: this is on the path of every object. */
static inline void *object_cache_get(ObjectClass k) {
        ObjectCache *c = object_cache_tls;
        return c && c->n[k] > 0 ? c->free[k][--c->n[k]] : NULL;
}

/* Keeps p for reuse; false when the cache is full (the caller frees it). */
static inline bool object_cache_put(ObjectClass k, void *p) {
        ObjectCache *c = object_cache_tls;
        if (!c)
                return object_cache_put_slow(k, p);
        if (c->n[k] >= OBJECT_CACHE_MAX)
                return false;
        c->free[k][c->n[k]++] = p;
        return true;
}

/* The scalars whose value is 8 bytes (int64, uint64, double, date): they hold nothing to free,
 * and codec fast paths move their bits as one u64. */
static inline bool type_is_scalar64(cxpc_type t) {
        return t >= CXPC_TYPE_INT64 && t <= CXPC_TYPE_DATE;
}

/* The types a dictionary entry holds inline (cxpc_dict_entry). */
static inline bool type_is_inline_scalar(cxpc_type t) {
        return t >= CXPC_TYPE_NULL && t <= CXPC_TYPE_DATE;
}

/* A new object of a cached class (with the class's extra bytes after it), zeroed but for n_ref
 * and type; NULL without memory. Inline for the decoder and the constructors; the slow path
 * allocates. */
static inline cxpc_object *object_init(cxpc_object *o, cxpc_type type) {
        memset(o, 0, sizeof(*o));
        o->n_ref = 1;
        o->type = type;
        return o;
}
cxpc_object *object_new_slow(cxpc_type type, ObjectClass k);
static inline cxpc_object *object_new(cxpc_type type, ObjectClass k) {
        cxpc_object *o = object_cache_get(k);
        if (!o)
                return object_new_slow(type, k);
        return object_init(o, type);
}

/* ---- short byte runs (keys, routes) ----
 *
 * Keys and routes are a few bytes long: for those, fixed-size loads (which compile to single
 * moves) beat calls into memcpy()/memcmp(). Never reads outside [p, p + n). */

static inline uint64_t load_u64(const void *p) {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
}

static inline uint32_t load_u32(const void *p) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
}

static inline void bytes_copy_short(void *dst, const void *src, size_t n) {
        uint8_t *d = dst;
        const uint8_t *s = src;
        if (n >= 8 && n <= 16) { /* two overlapping words */
                uint64_t a = load_u64(s), b = load_u64(s + n - 8);
                memcpy(d, &a, 8);
                memcpy(d + n - 8, &b, 8);
        } else if (n >= 4 && n < 8) {
                uint32_t a = load_u32(s), b = load_u32(s + n - 4);
                memcpy(d, &a, 4);
                memcpy(d + n - 4, &b, 4);
        } else if (n > 0 && n < 4) { /* first, middle and last byte cover 1..3 */
                uint8_t a = s[0], b = s[n / 2], c = s[n - 1];
                d[0] = a;
                d[n / 2] = b;
                d[n - 1] = c;
        } else if (n == 0)
                return;
        else
                memcpy(d, s, n);
}

static inline bool bytes_equal_short(const void *a, const void *b, size_t n) {
        const uint8_t *x = a, *y = b;
        if (n >= 8 && n <= 16)
                return load_u64(x) == load_u64(y) && load_u64(x + n - 8) == load_u64(y + n - 8);
        if (n >= 4 && n < 8)
                return load_u32(x) == load_u32(y) && load_u32(x + n - 4) == load_u32(y + n - 4);
        if (n < 4) {
                for (size_t i = 0; i < n; i++)
                        if (x[i] != y[i])
                                return false;
                return true;
        }
        return memcmp(x, y, n) == 0;
}

/* True when none of the 8 bytes is NUL or has its high bit set. */
static inline bool ascii_word_nonzero(uint64_t v) {
        return !((v & 0x8080808080808080ull) | ((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull));
}

/* Strings up to this many bytes are copied with bytes_copy_short() (routes, names). */
#define CXPC_STRING_SHORT_MAX 16u
_Static_assert(CXPC_STRING_SHORT_MAX < CXPC_STRING_INLINE_CACHED, "short strings use the string class");

/* A string of len <= CXPC_STRING_SHORT_MAX bytes the caller already checked (UTF-8, no NUL), in
 * the cached string class; NULL without memory. What cxpc_string_new_checked() does for them,
 * inline for the decoder. */
static inline cxpc_object *string_new_short(const char *s, size_t len) {
        cxpc_object *o = object_new(CXPC_TYPE_STRING, OBJECT_CLASS_STRING);
        if (!o)
                return NULL;
        o->string.ptr = (char *) (o + 1);
        bytes_copy_short(o->string.ptr, s, len);
        o->string.ptr[len] = 0;
        o->string.len = len;
        return o;
}

cxpc_backing *cxpc_backing_new(void *map, size_t size);
cxpc_backing *cxpc_backing_ref(cxpc_backing *b);
cxpc_backing *cxpc_backing_unref(cxpc_backing *b);

bool cxpc_utf8_is_valid(const char *s, size_t len);

/* cxpc_utf8_is_valid() with the answer for short ASCII runs (keys, routes) computed inline; any
 * other input goes to the full check. */
static inline bool utf8_is_valid_short(const char *s, size_t len) {
        if (len >= 8 && len <= 16) {
                if (ascii_word_nonzero(load_u64(s)) && ascii_word_nonzero(load_u64(s + len - 8)))
                        return true;
        } else if (len < 8) {
                size_t i = 0;
                while (i < len && (uint8_t) (s[i] - 1) < 0x7f) /* 0x01..0x7f */
                        i++;
                if (i == len)
                        return true;
        }
        return cxpc_utf8_is_valid(s, len);
}

/* ASCII bytes of a key measured inline before the general path takes over. */
#define KEY_SCAN_ASCII_MAX 32u

/* The length of a key from an API caller, which must be valid UTF-8: false otherwise. Short ASCII
 * keys are measured and checked in one pass. */
static inline bool key_length_valid(const char *key, size_t *ret_len) {
        size_t i = 0;
        /* One compare per byte: NUL and non-ASCII both wrap to >= 0x7f; sort them out after. */
        while (i < KEY_SCAN_ASCII_MAX && (uint8_t) ((uint8_t) key[i] - 1) < 0x7f)
                i++;
        if (i < KEY_SCAN_ASCII_MAX && key[i] == 0) {
                *ret_len = i;
                return true;
        }
        size_t len = i + strlen(key + i);
        if (!cxpc_utf8_is_valid(key, len))
                return false;
        *ret_len = len;
        return true;
}

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
/* Adds a key the dictionary must not have yet (decoding): -EEXIST if it has, -EINVAL/-E2BIG for a
 * bad length, -ENOMEM. Takes the value's reference in every case. */
int cxpc_dict_add_take_len(cxpc_object *dict, const char *key, size_t key_len, cxpc_object *value);
/* Lookup with the key's length known (library constants such as CXPC_KEY_ROUTE). */
cxpc_object *cxpc_dict_get_len(const cxpc_object *dict, const char *key, size_t key_len);

/* ---- dictionary fast paths ----
 *
 * Messages are small dictionaries (no hash index, entries inline, short keys): adding to those is
 * done inline; everything else goes through cxpc_dict_set_take_len()/cxpc_dict_add_take_len(),
 * which handle every case. */

static inline cxpc_dict_entry *dict_inline_entries(cxpc_object *o) {
        return (cxpc_dict_entry *) (o + 1);
}

/* An empty dictionary; NULL without memory. */
static inline cxpc_object *dict_new(void) {
        cxpc_object *o = object_new(CXPC_TYPE_DICTIONARY, OBJECT_CLASS_DICT);
        if (o) {
                o->dict.entries = dict_inline_entries(o);
                o->dict.allocated = CXPC_DICT_INLINE_ENTRIES;
        }
        return o;
}

/* Position of a key in a dictionary without hash index, or -1. */
static inline ssize_t dict_find_linear(const cxpc_object *d, const char *key, size_t len) {
        for (size_t i = 0; i < d->dict.n; i++) {
                const cxpc_dict_entry *e = &d->dict.entries[i];
                if (e->key_len != len)
                        continue;
                const char *k = dict_entry_key(e);
                /* the first byte settles most mismatches of short keys */
                if (k[0] == key[0] && bytes_equal_short(k, key, len))
                        return (ssize_t) i;
        }
        return -1;
}

/* The inline form of a scalar object's value (cxpc_dict_entry.scalar). */
static inline uint64_t object_scalar_bits(const cxpc_object *o) {
        if (type_is_scalar64(o->type))
                return o->u64;
        return o->type == CXPC_TYPE_BOOL ? o->boolean : 0;
}

/* Stores a value in an entry: scalar objects are kept inline as well (value stays their cached
 * object), so that every scalar entry takes the inline paths. */
static inline void dict_entry_set_object(cxpc_dict_entry *e, cxpc_object *value) {
        e->value = value;
        if (type_is_inline_scalar(value->type)) {
                e->scalar_type = (uint8_t) value->type;
                e->scalar = object_scalar_bits(value);
        } else
                e->scalar_type = DICT_ENTRY_OBJECT;
}

static inline void dict_entry_set_scalar(cxpc_dict_entry *e, cxpc_type type, uint64_t bits) {
        e->value = NULL;
        e->scalar_type = (uint8_t) type;
        e->scalar = bits;
}

static inline bool dict_entry_is_scalar(const cxpc_dict_entry *e) {
        return e->scalar_type != DICT_ENTRY_OBJECT;
}

/* The entry's value as an object, made on first demand for an inline scalar (object.c); NULL
 * without memory. Valid until the entry is replaced or removed, or the dictionary freed. */
cxpc_object *dict_entry_value_slow(const cxpc_dict_entry *e);
static inline cxpc_object *dict_entry_value(const cxpc_dict_entry *e) {
        cxpc_object *v = __atomic_load_n(&e->value, __ATOMIC_ACQUIRE);
        return v ?: dict_entry_value_slow(e);
}

/* For read-only walks (encoder sizing, JSON, equality): the entry's value, or an inline scalar
 * built in *tmp, which must not outlive the call nor be referenced. Never fails. */
static inline const cxpc_object *dict_entry_peek(const cxpc_dict_entry *e, cxpc_object *tmp) {
        const cxpc_object *v = __atomic_load_n(&e->value, __ATOMIC_ACQUIRE);
        if (v)
                return v;
        object_init(tmp, (cxpc_type) e->scalar_type);
        if (e->scalar_type == CXPC_TYPE_BOOL)
                tmp->boolean = e->scalar != 0;
        else
                tmp->u64 = e->scalar;
        return tmp;
}

/* Drops what an entry's value holds (not its key). */
static inline void dict_entry_release(cxpc_dict_entry *e) {
        cxpc_object_unref(e->value);
        e->value = NULL;
}

/* The fast path of dict_put_take()/dict_put_scalar(): the position for a new key in a small
 * dictionary, the existing key's position as -1 - i, or SSIZE_MAX when the slow path must decide
 * (index, full inline entries, long or empty key). */
static _always_inline_ ssize_t dict_put_slot(cxpc_object *d, const char *key, size_t len) {
        if (d->dict.index || d->dict.n >= d->dict.allocated || d->dict.n >= CXPC_DICT_LINEAR_MAX ||
            len == 0 || len >= CXPC_DICT_KEY_INLINE)
                return SSIZE_MAX;
        ssize_t i = dict_find_linear(d, key, len);
        if (i >= 0)
                return -1 - i;
        /* Every key field but the unused tail of inline_key is written. Without an index no hash
         * is kept. */
        cxpc_dict_entry *e = &d->dict.entries[d->dict.n];
        e->heap_key = NULL;
        e->key_len = (uint32_t) len;
        e->hash = 0;
        bytes_copy_short(e->inline_key, key, len);
        e->inline_key[len] = 0;
        return (ssize_t) d->dict.n;
}

/* Sets a key (replace) or adds one the dictionary must not have yet (-EEXIST); takes the value's
 * reference in every case. Same results as cxpc_dict_set_take_len()/cxpc_dict_add_take_len(). */
static inline int dict_put_take(cxpc_object *d, const char *key, size_t len, cxpc_object *value,
                                bool replace) {
        ssize_t i = dict_put_slot(d, key, len);
        if (i == SSIZE_MAX)
                return replace ? cxpc_dict_set_take_len(d, key, len, value)
                               : cxpc_dict_add_take_len(d, key, len, value);
        if (i < 0) {
                if (!replace) {
                        cxpc_object_unref(value);
                        return -EEXIST;
                }
                cxpc_dict_entry *e = &d->dict.entries[-1 - i];
                cxpc_object *old = e->value;
                dict_entry_set_object(e, value);
                cxpc_object_unref(old);
                return 0;
        }
        dict_entry_set_object(&d->dict.entries[d->dict.n++], value);
        return 0;
}

/* dict_put_take() for an inline scalar of a type type_is_inline_scalar() accepts (bits as in
 * cxpc_dict_entry.scalar): no object is made. */
int dict_put_scalar_slow(cxpc_object *d, const char *key, size_t len, cxpc_type type, uint64_t bits,
                         bool replace);
static _always_inline_ int dict_put_scalar(cxpc_object *d, const char *key, size_t len, cxpc_type type,
                                           uint64_t bits, bool replace) {
        ssize_t i = dict_put_slot(d, key, len);
        if (i == SSIZE_MAX)
                return dict_put_scalar_slow(d, key, len, type, bits, replace);
        if (i < 0) {
                if (!replace)
                        return -EEXIST;
                cxpc_dict_entry *e = &d->dict.entries[-1 - i];
                dict_entry_release(e);
                dict_entry_set_scalar(e, type, bits);
                return 0;
        }
        dict_entry_set_scalar(&d->dict.entries[d->dict.n++], type, bits);
        return 0;
}

/* cxpc_object_get_type() == CXPC_TYPE_DICTIONARY, inline for the per-message argument checks. */
static inline bool object_is_dict(const cxpc_object *o) {
        return o && o->type == CXPC_TYPE_DICTIONARY;
}

/* The position of a key in any dictionary, or -1 (object.c). */
ssize_t dict_find_any(const cxpc_object *d, const char *key, size_t len);

/* cxpc_dict_get_len() with the search of small dictionaries inline. */
static inline cxpc_object *dict_get_len_inline(const cxpc_object *d, const char *key, size_t len) {
        if (!object_is_dict(d))
                return NULL;
        ssize_t i = d->dict.index ? dict_find_any(d, key, len) : dict_find_linear(d, key, len);
        return i < 0 ? NULL : dict_entry_value(&d->dict.entries[i]);
}

/* Metadata a received message carries so that a (possibly deferred) reply can find its request.
 * Set by the connection on every incoming dictionary. Inline: each is used once or twice per
 * message. */
static inline void cxpc_message_set_received(cxpc_object *m, uint64_t id, unsigned frame_flags) {
        if (!m || m->type != CXPC_TYPE_DICTIONARY)
                return;
        m->dict.received = true;
        m->dict.msg_id = id;
        m->dict.msg_flags = frame_flags;
        m->dict.replied = false;
}

/* false when the message was not received from a peer. */
static inline bool cxpc_message_get_received(const cxpc_object *m, uint64_t *ret_id,
                                             unsigned *ret_frame_flags) {
        if (!m || m->type != CXPC_TYPE_DICTIONARY || !m->dict.received)
                return false;
        if (ret_id)
                *ret_id = m->dict.msg_id;
        if (ret_frame_flags)
                *ret_frame_flags = m->dict.msg_flags;
        return true;
}

/* -EALREADY when a reply was already sent for this request. */
static inline int cxpc_message_mark_replied(cxpc_object *m) {
        if (!m || m->type != CXPC_TYPE_DICTIONARY)
                return -EINVAL;
        if (m->dict.replied)
                return -EALREADY;
        m->dict.replied = true;
        return 0;
}

#define CXPC_KEY_ROUTE_LEN (sizeof(CXPC_KEY_ROUTE) - 1)
/* The route string of a message and its length; -ENOENT when there is none (or not a string).
 * Inline: the router asks for every message. */
static inline int message_get_route(const cxpc_object *message, const char **ret, size_t *ret_len) {
        const cxpc_object *o = dict_get_len_inline(message, CXPC_KEY_ROUTE, CXPC_KEY_ROUTE_LEN);
        if (!o || o->type != CXPC_TYPE_STRING)
                return -ENOENT;
        if (ret)
                *ret = o->string.ptr;
        if (ret_len)
                *ret_len = o->string.len;
        return 0;
}

/* Endpoint objects wrap the connector socket of an anonymous listener (docs/libcxpc.md). */
int cxpc_endpoint_new_take_fd(int fd, cxpc_object **ret);
/* Borrowed fd, or -EMEDIUMTYPE / -EINVAL. */
int cxpc_endpoint_get_fd(const cxpc_object *o);
/* Borrowed fd of an fd, endpoint or shmem object. */
int cxpc_object_get_fd_borrowed(const cxpc_object *o);

/* Seals a shmem region or a data memfd carries: the receiver refuses anything less. */
#define CXPC_SHMEM_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
