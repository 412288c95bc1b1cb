/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Typed, reference-counted values: the vocabulary of every message. */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cxpc/cxpc.h"
#include "macro.h"
#include "object-internal.h"

static const char *const type_names[_CXPC_TYPE_MAX] = {
        [CXPC_TYPE_NULL] = "null",
        [CXPC_TYPE_BOOL] = "bool",
        [CXPC_TYPE_INT64] = "int64",
        [CXPC_TYPE_UINT64] = "uint64",
        [CXPC_TYPE_DOUBLE] = "double",
        [CXPC_TYPE_DATE] = "date",
        [CXPC_TYPE_DATA] = "data",
        [CXPC_TYPE_STRING] = "string",
        [CXPC_TYPE_UUID] = "uuid",
        [CXPC_TYPE_ARRAY] = "array",
        [CXPC_TYPE_DICTIONARY] = "dictionary",
        [CXPC_TYPE_FD] = "fd",
        [CXPC_TYPE_ENDPOINT] = "endpoint",
        [CXPC_TYPE_SHMEM] = "shmem",
        [CXPC_TYPE_ERROR] = "error",
};

_public_ const char *cxpc_type_to_string(cxpc_type t) {
        if (t < 0 || t >= _CXPC_TYPE_MAX)
                return NULL;
        return type_names[t];
}

/* ---- backing mappings ---- */

cxpc_backing *cxpc_backing_new(void *map, size_t size) {
        cxpc_backing *b = malloc(sizeof(*b));
        if (!b)
                return NULL;
        *b = (cxpc_backing){.n_ref = 1, .map = map, .size = size};
        return b;
}

cxpc_backing *cxpc_backing_ref(cxpc_backing *b) {
        if (b)
                b->n_ref++;
        return b;
}

cxpc_backing *cxpc_backing_unref(cxpc_backing *b) {
        if (!b || --b->n_ref > 0)
                return NULL;
        if (b->map && b->size > 0)
                (void) munmap(b->map, b->size);
        free(b);
        return NULL;
}

/* ---- UTF-8 ---- */

bool cxpc_utf8_is_valid(const char *s, size_t len) {
        const uint8_t *p = (const uint8_t *) s, *end = p + len;

        while (p < end) {
                /* Keys and most strings are ASCII: eight bytes per step while no byte has its
                 * high bit set and none is NUL. */
                while (end - p >= 8) {
                        uint64_t v;
                        memcpy(&v, p, 8);
                        if ((v & 0x8080808080808080ull) ||
                            ((v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull))
                                break;
                        p += 8;
                }
                if (p >= end)
                        break;
                uint8_t c = *p;
                if (c < 0x80) {
                        if (c == 0) /* no embedded NUL: strings are C strings too */
                                return false;
                        p++;
                        continue;
                }
                size_t n;
                uint32_t cp, min;
                if ((c & 0xe0) == 0xc0) {
                        n = 2, cp = c & 0x1f, min = 0x80;
                } else if ((c & 0xf0) == 0xe0) {
                        n = 3, cp = c & 0x0f, min = 0x800;
                } else if ((c & 0xf8) == 0xf0) {
                        n = 4, cp = c & 0x07, min = 0x10000;
                } else
                        return false;
                if ((size_t) (end - p) < n)
                        return false;
                for (size_t i = 1; i < n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += n;
        }
        return true;
}

/* ---- allocation and lifetime ---- */

/* Freed scalars, short strings and dictionaries are kept per thread for reuse: every message makes
 * and drops a handful of each, and a pop from this list is far cheaper than malloc() and free().
 * Bounded; emptied when the thread exits. */
#define DICT_ALLOC_EXTRA (CXPC_DICT_INLINE_ENTRIES * sizeof(cxpc_dict_entry))

/* The cache itself is allocated on first use and freed at thread exit. */
__thread ObjectCache *object_cache_tls __attribute__((tls_model("initial-exec")));
static pthread_key_t object_cache_key;
static pthread_once_t object_cache_once = PTHREAD_ONCE_INIT;
static bool object_cache_key_ok;

static void object_cache_free(void *userdata) {
        ObjectCache *c = userdata;
        if (!c)
                return;
        for (size_t k = 0; k < _OBJECT_CLASS_MAX; k++)
                while (c->n[k] > 0)
                        free(c->free[k][--c->n[k]]);
        free(c);
        if (object_cache_tls == c)
                object_cache_tls = NULL;
}

static void object_cache_key_init(void) {
        object_cache_key_ok = pthread_key_create(&object_cache_key, object_cache_free) == 0;
}

/* The main thread runs no key destructors at exit: free its cache here (leak checkers stay
 * quiet). */
__attribute__((destructor)) static void object_cache_free_at_exit(void) {
        object_cache_free(object_cache_tls);
}

bool object_cache_put_slow(ObjectClass k, void *p) {
        ObjectCache *c = object_cache_tls;
        if (!c) {
                /* Without the thread-exit hook, caching would leak at thread exit: don't. */
                (void) pthread_once(&object_cache_once, object_cache_key_init);
                if (!object_cache_key_ok)
                        return false;
                c = calloc(1, sizeof(*c));
                if (!c)
                        return false;
                if (pthread_setspecific(object_cache_key, c) != 0) {
                        free(c);
                        return false;
                }
                object_cache_tls = c;
        }
        if (c->n[k] >= OBJECT_CACHE_MAX)
                return false;
        c->free[k][c->n[k]++] = p;
        return true;
}

/* The allocation size of each cached class of objects. */
static const size_t object_class_size[] = {
        [OBJECT_CLASS_PLAIN] = sizeof(cxpc_object),
        [OBJECT_CLASS_DICT] = sizeof(cxpc_object) + DICT_ALLOC_EXTRA,
        [OBJECT_CLASS_STRING] = sizeof(cxpc_object) + CXPC_STRING_INLINE_CACHED,
};

cxpc_object *object_new_slow(cxpc_type type, ObjectClass k) {
        assert(k >= 0 && (size_t) k < ELEMENTSOF(object_class_size) && object_class_size[k] > 0);
        cxpc_object *o = malloc(object_class_size[k]);
        return o ? object_init(o, type) : NULL;
}

/* An object with extra bytes after it that fit no cached class. */
static cxpc_object *object_alloc_extra(cxpc_type type, size_t extra) {
        if (extra > SIZE_MAX - sizeof(cxpc_object))
                return NULL;
        cxpc_object *o = malloc(sizeof(*o) + extra);
        return o ? object_init(o, type) : NULL;
}

static inline cxpc_object *object_alloc(cxpc_type type) {
        return object_new(type, OBJECT_CLASS_PLAIN);
}

static char *string_inline_bytes(cxpc_object *o) {
        return (char *) (o + 1);
}

/* Which cache a string's allocation goes back to, by how it was made: bytes after the object
 * (cached size, or its own size) or a separate buffer (a plain object). */
static ObjectClass string_class(cxpc_object *o) {
        if (o->string.ptr != string_inline_bytes(o))
                return OBJECT_CLASS_PLAIN;
        return o->string.len < CXPC_STRING_INLINE_CACHED ? OBJECT_CLASS_STRING : _OBJECT_CLASS_NONE;
}

static void object_free(cxpc_object *o);

/* The cache class of a value that owns nothing but its own block, or _OBJECT_CLASS_NONE. */
static inline ObjectClass leaf_cache_class(cxpc_object *v) {
        if (type_is_scalar64(v->type))
                return OBJECT_CLASS_PLAIN;
        if (v->type == CXPC_TYPE_STRING && v->string.len <= CXPC_STRING_SHORT_MAX &&
            v->string.ptr == string_inline_bytes(v))
                return OBJECT_CLASS_STRING;
        return _OBJECT_CLASS_NONE;
}

static void dict_free_contents(cxpc_object *o) {
        for (size_t i = 0; i < o->dict.n; i++) {
                cxpc_dict_entry *e = &o->dict.entries[i];
                if (e->heap_key)
                        free(e->heap_key);
                cxpc_object *v = e->value;
                if (!v || --v->n_ref > 0) /* NULL: an inline scalar never asked for */
                        continue;
                /* The usual values (scalars, short strings) hold nothing else: straight back to
                 * their cache, without the call. */
                ObjectClass k = leaf_cache_class(v);
                if (k < 0 || !object_cache_put(k, v))
                        object_free(v);
        }
        if (o->dict.entries != dict_inline_entries(o))
                free(o->dict.entries);
        if (o->dict.index)
                free(o->dict.index);
}

static void object_free(cxpc_object *o) {
        ObjectClass k = OBJECT_CLASS_PLAIN;

        switch (o->type) {
        case CXPC_TYPE_DATA:
                if (o->data.memfd >= 0) {
                        if (o->data.ptr)
                                (void) munmap(o->data.ptr, o->data.size);
                        safe_close(o->data.memfd);
                } else if (o->data.backing)
                        cxpc_backing_unref(o->data.backing);
                else
                        free(o->data.ptr);
                break;
        case CXPC_TYPE_STRING:
                k = string_class(o);
                if (k == OBJECT_CLASS_PLAIN)
                        free(o->string.ptr);
                break;
        case CXPC_TYPE_ARRAY:
                for (size_t i = 0; i < o->array.n; i++)
                        cxpc_object_unref(o->array.items[i]);
                free(o->array.items);
                break;
        case CXPC_TYPE_DICTIONARY:
                dict_free_contents(o);
                k = OBJECT_CLASS_DICT;
                break;
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                safe_close(o->fd);
                break;
        case CXPC_TYPE_SHMEM:
                if (o->shmem.map && o->shmem.size > 0)
                        (void) munmap(o->shmem.map, o->shmem.size);
                safe_close(o->shmem.fd);
                break;
        case CXPC_TYPE_ERROR:
                free(o->error.message);
                break;
        default:
                break;
        }
        if (k < 0 || !object_cache_put(k, o))
                free(o);
}

_public_ cxpc_object *cxpc_object_ref(cxpc_object *o) {
        if (o)
                o->n_ref++;
        return o;
}

_public_ cxpc_object *cxpc_object_unref(cxpc_object *o) {
        if (!o)
                return NULL;
        if (--o->n_ref == 0) {
                /* Deep trees are freed iteratively enough: depth is bounded by CXPC_DEPTH_MAX for
                 * decoded objects, and callers building deeper trees own that recursion. */
                object_free(o);
        }
        return NULL;
}

_public_ cxpc_type cxpc_object_get_type(const cxpc_object *o) {
        if (!o)
                return _CXPC_TYPE_INVALID;
        return o->type;
}

/* ---- scalars ---- */

#define DEFINE_SCALAR_NEW(name, ctype, ttype, field)                 \
        _public_ int cxpc_##name##_new(ctype v, cxpc_object **ret) { \
                assert_return(ret, -EINVAL);                         \
                cxpc_object *o = object_alloc(ttype);                \
                if (!o)                                              \
                        return -ENOMEM;                              \
                o->field = v;                                        \
                *ret = o;                                            \
                return 0;                                            \
        }

DEFINE_SCALAR_NEW(bool, bool, CXPC_TYPE_BOOL, boolean)
DEFINE_SCALAR_NEW(int64, int64_t, CXPC_TYPE_INT64, i64)
DEFINE_SCALAR_NEW(uint64, uint64_t, CXPC_TYPE_UINT64, u64)
DEFINE_SCALAR_NEW(double, double, CXPC_TYPE_DOUBLE, dbl)
DEFINE_SCALAR_NEW(date, int64_t, CXPC_TYPE_DATE, i64)

_public_ int cxpc_null_new(cxpc_object **ret) {
        assert_return(ret, -EINVAL);
        cxpc_object *o = object_alloc(CXPC_TYPE_NULL);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

static cxpc_object *data_alloc(void) {
        cxpc_object *o = object_alloc(CXPC_TYPE_DATA);
        if (o)
                o->data.memfd = -EBADF;
        return o;
}

/* A new memfd holding a copy of the bytes, sealed with CXPC_SHMEM_SEALS. One write() call where
 * possible: on this kind of machine the cost is the page allocation, and small chunks only add
 * syscalls. */
static int memfd_new_sealed(const char *name, const void *p, size_t size, int *ret_fd) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        size_t done = 0;
        while (done < size) {
                ssize_t n = write(fd, (const uint8_t *) p + done, size - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                done += (size_t) n;
        }
        if (fcntl(fd, F_ADD_SEALS, CXPC_SHMEM_SEALS) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

_public_ int cxpc_data_new(const void *p, size_t size, cxpc_object **ret) {
        assert_return(ret, -EINVAL);
        assert_return(p || size == 0, -EINVAL);
        assert_return(size <= CXPC_MESSAGE_SIZE_MAX, -E2BIG);

        /* Large values are copied once, into their own sealed memfd, right away: every later
         * send (and every copy, forward or echo by a peer) then passes the fd instead of the
         * bytes. Doing it lazily at first encode would cost a malloc copy on top. */
        if (size >= CXPC_DATA_MEMFD_MIN) {
                int fd = -EBADF;
                int r = memfd_new_sealed("cxpc-data", p, size, &fd);
                if (r < 0)
                        return r;
                return cxpc_data_new_memfd_take(fd, size, ret);
        }

        _cleanup_free_ uint8_t *copy = NULL;
        if (size > 0) {
                copy = malloc(size);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, p, size);
        }
        cxpc_object *o = data_alloc();
        if (!o)
                return -ENOMEM;
        o->data.ptr = TAKE_PTR(copy);
        o->data.size = size;
        *ret = o;
        return 0;
}

int cxpc_data_new_backed(const void *p, size_t size, cxpc_backing *backing, cxpc_object **ret) {
        cxpc_object *o = data_alloc();
        if (!o)
                return -ENOMEM;
        o->data.ptr = (uint8_t *) p;
        o->data.size = size;
        o->data.backing = cxpc_backing_ref(backing);
        *ret = o;
        return 0;
}

int cxpc_data_new_memfd_take(int memfd, size_t size, cxpc_object **ret) {
        if (memfd < 0 || size == 0) {
                safe_close(memfd);
                return -EINVAL;
        }
        cxpc_object *o = data_alloc();
        if (!o) {
                safe_close(memfd);
                return -ENOMEM;
        }
        o->data.memfd = memfd;
        o->data.size = size;
        *ret = o;
        return 0;
}

int cxpc_data_map(const cxpc_object *o, const uint8_t **ret) {
        if (!o || !ret)
                return -EINVAL;
        if (o->type != CXPC_TYPE_DATA)
                return -EMEDIUMTYPE;
        uint8_t *p = __atomic_load_n(&o->data.ptr, __ATOMIC_ACQUIRE);
        if (!p && o->data.memfd >= 0) {
                /* No MAP_POPULATE: readers usually touch part of it, forwarders none. */
                void *m = mmap(NULL, o->data.size, PROT_READ, MAP_SHARED, o->data.memfd, 0);
                if (m == MAP_FAILED)
                        return negative_errno();
                /* The mapping is a cache; the value stays const. Two threads reading one shared
                 * value may race here: the loser drops its mapping. */
                uint8_t *expected = NULL;
                if (__atomic_compare_exchange_n((uint8_t **) &o->data.ptr, &expected, (uint8_t *) m, false,
                                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                        p = m;
                else {
                        (void) munmap(m, o->data.size);
                        p = expected;
                }
        }
        *ret = p;
        return 0;
}

int cxpc_string_new_take(char *s, size_t len, cxpc_object **ret) {
        if (len > CXPC_STRING_SIZE_MAX) {
                free(s);
                return -E2BIG;
        }
        if (!cxpc_utf8_is_valid(s, len)) {
                free(s);
                return -EILSEQ;
        }
        cxpc_object *o = object_alloc(CXPC_TYPE_STRING);
        if (!o) {
                free(s);
                return -ENOMEM;
        }
        o->string.ptr = s;
        o->string.len = len;
        *ret = o;
        return 0;
}

int cxpc_string_new_checked(const char *s, size_t len, cxpc_object **ret) {
        cxpc_object *o;
        if (len <= CXPC_STRING_SHORT_MAX) {
                o = string_new_short(s, len);
                if (!o)
                        return -ENOMEM;
                *ret = o;
                return 0;
        }
        /* string_class() tells the two sizes apart by the length. */
        o = len < CXPC_STRING_INLINE_CACHED ? object_new(CXPC_TYPE_STRING, OBJECT_CLASS_STRING)
                                            : object_alloc_extra(CXPC_TYPE_STRING, len + 1);
        if (!o)
                return -ENOMEM;
        o->string.ptr = string_inline_bytes(o);
        memcpy(o->string.ptr, s, len);
        o->string.ptr[len] = 0;
        o->string.len = len;
        *ret = o;
        return 0;
}

_public_ int cxpc_string_new_len(const char *s, size_t len, cxpc_object **ret) {
        assert_return(s || len == 0, -EINVAL);
        assert_return(ret, -EINVAL);
        if (len > CXPC_STRING_SIZE_MAX)
                return -E2BIG;
        if (!utf8_is_valid_short(s, len))
                return -EILSEQ;
        return cxpc_string_new_checked(s, len, ret);
}

_public_ int cxpc_string_new(const char *s, cxpc_object **ret) {
        assert_return(s, -EINVAL);
        return cxpc_string_new_len(s, strlen(s), ret);
}

_public_ int cxpc_string_newf(cxpc_object **ret, const char *format, ...) {
        assert_return(ret, -EINVAL);
        assert_return(format, -EINVAL);
        char *s = NULL;
        va_list ap;
        va_start(ap, format);
        int n = vasprintf(&s, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return cxpc_string_new_take(s, (size_t) n, ret);
}

_public_ int cxpc_uuid_new(const uint8_t uuid[16], cxpc_object **ret) {
        assert_return(uuid, -EINVAL);
        assert_return(ret, -EINVAL);
        cxpc_object *o = object_alloc(CXPC_TYPE_UUID);
        if (!o)
                return -ENOMEM;
        memcpy(o->uuid, uuid, 16);
        *ret = o;
        return 0;
}

int cxpc_fd_new_take(int fd, cxpc_object **ret) {
        cxpc_object *o = object_alloc(CXPC_TYPE_FD);
        if (!o) {
                safe_close(fd);
                return -ENOMEM;
        }
        o->fd = fd;
        *ret = o;
        return 0;
}

_public_ int cxpc_fd_new(int fd, cxpc_object **ret) {
        assert_return(fd >= 0, -EBADF);
        assert_return(ret, -EINVAL);
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return negative_errno();
        return cxpc_fd_new_take(copy, ret);
}

int cxpc_endpoint_new_take_fd(int fd, cxpc_object **ret) {
        int r = cxpc_fd_new_take(fd, ret);
        if (r < 0)
                return r;
        (*ret)->type = CXPC_TYPE_ENDPOINT;
        return 0;
}

int cxpc_endpoint_get_fd(const cxpc_object *o) {
        if (!o)
                return -EINVAL;
        if (o->type != CXPC_TYPE_ENDPOINT)
                return -EMEDIUMTYPE;
        return o->fd;
}

int cxpc_object_get_fd_borrowed(const cxpc_object *o) {
        if (!o)
                return -EINVAL;
        switch (o->type) {
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                return o->fd;
        case CXPC_TYPE_SHMEM:
                return o->shmem.fd;
        default:
                return -EMEDIUMTYPE;
        }
}

int cxpc_shmem_new_take(int memfd, size_t size, cxpc_object **ret) {
        cxpc_object *o = object_alloc(CXPC_TYPE_SHMEM);
        if (!o) {
                safe_close(memfd);
                return -ENOMEM;
        }
        o->shmem.fd = memfd;
        o->shmem.size = size;
        *ret = o;
        return 0;
}

static int shmem_seal(int fd) {
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return negative_errno();
        if ((seals & CXPC_SHMEM_SEALS) == CXPC_SHMEM_SEALS)
                return 0;
        if (seals & F_SEAL_SEAL)
                return -EPERM; /* sealed against sealing, but not fully: we cannot trust it */
        if (fcntl(fd, F_ADD_SEALS, CXPC_SHMEM_SEALS) < 0)
                return negative_errno();
        return 0;
}

_public_ int cxpc_shmem_new(const void *p, size_t size, cxpc_object **ret) {
        assert_return(p || size == 0, -EINVAL);
        assert_return(ret, -EINVAL);
        assert_return(size <= CXPC_MESSAGE_SIZE_MAX, -E2BIG);

        int fd = -EBADF;
        int r = memfd_new_sealed("cxpc-shmem", p, size, &fd);
        if (r < 0)
                return r;
        return cxpc_shmem_new_take(fd, size, ret);
}

_public_ int cxpc_shmem_new_fd(int memfd, cxpc_object **ret) {
        assert_return(memfd >= 0, -EBADF);
        assert_return(ret, -EINVAL);
        struct stat st;
        if (fstat(memfd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t) st.st_size > CXPC_MESSAGE_SIZE_MAX)
                return -EINVAL;
        _cleanup_close_ int fd = fcntl(memfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        int r = shmem_seal(fd);
        if (r < 0)
                return r;
        return cxpc_shmem_new_take(TAKE_FD(fd), (size_t) st.st_size, ret);
}

int cxpc_error_new_take(cxpc_error_code code, char *message, cxpc_object **ret) {
        if (message && strlen(message) > CXPC_ERROR_MESSAGE_SIZE_MAX)
                message[CXPC_ERROR_MESSAGE_SIZE_MAX] = 0;
        if (code < 0 || code >= _CXPC_ERROR_CODE_MAX)
                code = CXPC_ERROR_UNKNOWN;
        cxpc_object *o = object_alloc(CXPC_TYPE_ERROR);
        if (!o) {
                free(message);
                return -ENOMEM;
        }
        o->error.code = code;
        o->error.message = message;
        *ret = o;
        return 0;
}

_public_ int cxpc_error_new(cxpc_error_code code, const char *message, cxpc_object **ret) {
        assert_return(ret, -EINVAL);
        char *copy = NULL;
        if (message) {
                copy = strndup(message, CXPC_ERROR_MESSAGE_SIZE_MAX);
                if (!copy)
                        return -ENOMEM;
        }
        return cxpc_error_new_take(code, copy, ret);
}

_public_ int cxpc_error_newf(cxpc_object **ret, cxpc_error_code code, const char *format, ...) {
        assert_return(ret, -EINVAL);
        assert_return(format, -EINVAL);
        char *s = NULL;
        va_list ap;
        va_start(ap, format);
        int n = vasprintf(&s, format, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return cxpc_error_new_take(code, s, ret);
}

/* ---- getters ---- */

#define CHECK_TYPE(o, t)                     \
        do {                                 \
                if (!(o))                    \
                        return -EINVAL;      \
                if ((o)->type != (t))        \
                        return -EMEDIUMTYPE; \
        } while (false)

_public_ int cxpc_bool_get(const cxpc_object *o, bool *ret) {
        CHECK_TYPE(o, CXPC_TYPE_BOOL);
        if (ret)
                *ret = o->boolean;
        return 0;
}

_public_ int cxpc_int64_get(const cxpc_object *o, int64_t *ret) {
        CHECK_TYPE(o, CXPC_TYPE_INT64);
        if (ret)
                *ret = o->i64;
        return 0;
}

_public_ int cxpc_uint64_get(const cxpc_object *o, uint64_t *ret) {
        CHECK_TYPE(o, CXPC_TYPE_UINT64);
        if (ret)
                *ret = o->u64;
        return 0;
}

_public_ int cxpc_double_get(const cxpc_object *o, double *ret) {
        CHECK_TYPE(o, CXPC_TYPE_DOUBLE);
        if (ret)
                *ret = o->dbl;
        return 0;
}

_public_ int cxpc_date_get(const cxpc_object *o, int64_t *ret) {
        CHECK_TYPE(o, CXPC_TYPE_DATE);
        if (ret)
                *ret = o->i64;
        return 0;
}

_public_ int cxpc_data_get(const cxpc_object *o, const void **ret_ptr, size_t *ret_size) {
        static const uint8_t empty[1];
        CHECK_TYPE(o, CXPC_TYPE_DATA);
        if (ret_ptr) {
                const uint8_t *p;
                int r = cxpc_data_map(o, &p);
                if (r < 0)
                        return r;
                *ret_ptr = o->data.size > 0 ? (const void *) p : (const void *) empty;
        }
        if (ret_size)
                *ret_size = o->data.size;
        return 0;
}

_public_ int cxpc_string_get(const cxpc_object *o, const char **ret) {
        CHECK_TYPE(o, CXPC_TYPE_STRING);
        if (ret)
                *ret = o->string.ptr;
        return 0;
}

_public_ int cxpc_uuid_get(const cxpc_object *o, const uint8_t **ret) {
        CHECK_TYPE(o, CXPC_TYPE_UUID);
        if (ret)
                *ret = o->uuid;
        return 0;
}

_public_ int cxpc_fd_dup(const cxpc_object *o, int *ret_fd) {
        CHECK_TYPE(o, CXPC_TYPE_FD);
        assert_return(ret_fd, -EINVAL);
        int fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

_public_ int cxpc_shmem_map(cxpc_object *o, const void **ret_ptr, size_t *ret_size) {
        static const uint8_t empty[1];
        CHECK_TYPE(o, CXPC_TYPE_SHMEM);
        if (!o->shmem.map && o->shmem.size > 0) {
                void *p = mmap(NULL, o->shmem.size, PROT_READ, MAP_SHARED, o->shmem.fd, 0);
                if (p == MAP_FAILED)
                        return negative_errno();
                o->shmem.map = p;
        }
        if (ret_ptr)
                *ret_ptr = o->shmem.size > 0 ? o->shmem.map : (const void *) empty;
        if (ret_size)
                *ret_size = o->shmem.size;
        return 0;
}

_public_ int cxpc_shmem_dup_fd(const cxpc_object *o, int *ret_fd) {
        CHECK_TYPE(o, CXPC_TYPE_SHMEM);
        assert_return(ret_fd, -EINVAL);
        int fd = fcntl(o->shmem.fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        return 0;
}

_public_ int cxpc_error_get_code(const cxpc_object *o, cxpc_error_code *ret) {
        CHECK_TYPE(o, CXPC_TYPE_ERROR);
        if (ret)
                *ret = o->error.code;
        return 0;
}

_public_ int cxpc_error_get_message(const cxpc_object *o, const char **ret) {
        CHECK_TYPE(o, CXPC_TYPE_ERROR);
        if (ret)
                *ret = o->error.message ?: "";
        return 0;
}

/* ---- arrays ---- */

_public_ int cxpc_array_new(cxpc_object **ret) {
        assert_return(ret, -EINVAL);
        cxpc_object *o = object_alloc(CXPC_TYPE_ARRAY);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

_public_ size_t cxpc_array_get_count(const cxpc_object *array) {
        if (!array || array->type != CXPC_TYPE_ARRAY)
                return 0;
        return array->array.n;
}

int cxpc_array_append_take(cxpc_object *array, cxpc_object *value) {
        if (array->array.n >= CXPC_ARRAY_ITEMS_MAX) {
                cxpc_object_unref(value);
                return -E2BIG;
        }
        if (array->array.n == array->array.allocated) {
                size_t n = MAX(array->array.allocated * 2, (size_t) 4);
                cxpc_object **items = realloc(array->array.items, n * sizeof(*items));
                if (!items) {
                        cxpc_object_unref(value);
                        return -ENOMEM;
                }
                array->array.items = items;
                array->array.allocated = n;
        }
        array->array.items[array->array.n++] = value;
        return 0;
}

_public_ int cxpc_array_append(cxpc_object *array, cxpc_object *value) {
        CHECK_TYPE(array, CXPC_TYPE_ARRAY);
        assert_return(value, -EINVAL);
        assert_return(value != array, -ELOOP);
        return cxpc_array_append_take(array, cxpc_object_ref(value));
}

_public_ cxpc_object *cxpc_array_get(const cxpc_object *array, size_t index) {
        if (!array || array->type != CXPC_TYPE_ARRAY || index >= array->array.n)
                return NULL;
        return array->array.items[index];
}

/* ---- dictionaries ---- */

static uint32_t key_hash(const char *key, size_t len) {
        /* FNV-1a: keys are short and local; this only indexes, it does not defend. Large
         * dictionaries from a peer are bounded by CXPC_DICT_KEYS_MAX. */
        uint32_t h = 2166136261u;
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t) key[i];
                h *= 16777619u;
        }
        return h;
}

static int dict_rebuild_index(cxpc_object *d) {
        if (d->dict.n <= CXPC_DICT_LINEAR_MAX) {
                free(d->dict.index);
                d->dict.index = NULL;
                d->dict.index_size = 0;
                return 0;
        }
        size_t size = 64;
        while (size < d->dict.n * 2)
                size *= 2;
        uint32_t *index = calloc(size, sizeof(uint32_t));
        if (!index)
                return -ENOMEM;
        for (size_t i = 0; i < d->dict.n; i++) {
                cxpc_dict_entry *e = &d->dict.entries[i];
                if (!d->dict.index) /* hashes are kept only while there is an index */
                        e->hash = key_hash(dict_entry_key(e), e->key_len);
                size_t slot = e->hash & (size - 1);
                while (index[slot] != 0)
                        slot = (slot + 1) & (size - 1);
                index[slot] = (uint32_t) (i + 1);
        }
        free(d->dict.index);
        d->dict.index = index;
        d->dict.index_size = size;
        return 0;
}

static ssize_t dict_find_indexed(const cxpc_object *d, const char *key, size_t len, uint32_t hash) {
        size_t mask = d->dict.index_size - 1;
        for (size_t slot = hash & mask;; slot = (slot + 1) & mask) {
                uint32_t v = d->dict.index[slot];
                if (v == 0)
                        return -1;
                const cxpc_dict_entry *e = &d->dict.entries[v - 1];
                if (e->hash == hash && e->key_len == len && bytes_equal_short(dict_entry_key(e), key, len))
                        return (ssize_t) (v - 1);
        }
}

/* hash: key_hash() of the key when the dictionary has an index, else unused. */
static inline ssize_t dict_find(const cxpc_object *d, const char *key, size_t len, uint32_t hash) {
        if (d->dict.index)
                return dict_find_indexed(d, key, len, hash);
        return dict_find_linear(d, key, len);
}

_public_ int cxpc_dict_new(cxpc_object **ret) {
        assert_return(ret, -EINVAL);
        cxpc_object *o = dict_new();
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

_public_ size_t cxpc_dict_get_count(const cxpc_object *dict) {
        if (!dict || dict->type != CXPC_TYPE_DICTIONARY)
                return 0;
        return dict->dict.n;
}

/* Sets a key, or with replace == false adds one it must not have yet (-EEXIST). Takes the value's
 * reference in every case; with value NULL, sets the inline scalar of type scalar_type and bits
 * instead. Handles every case (dict_put_take()/dict_put_scalar() only the common ones). */
static int dict_put(cxpc_object *d, const char *key, size_t len, cxpc_object *value, cxpc_type scalar_type,
                    uint64_t bits, bool replace) {
        int r;

        if (len == 0 || len > CXPC_KEY_SIZE_MAX) {
                cxpc_object_unref(value);
                return len == 0 ? -EINVAL : -E2BIG;
        }
        /* Small dictionaries are searched linearly and need no hash. */
        uint32_t hash = d->dict.index ? key_hash(key, len) : 0;
        ssize_t i = dict_find(d, key, len, hash);
        if (i >= 0) {
                if (!replace) {
                        cxpc_object_unref(value);
                        return -EEXIST;
                }
                cxpc_dict_entry *e = &d->dict.entries[i];
                cxpc_object *old = e->value;
                if (value)
                        dict_entry_set_object(e, value);
                else
                        dict_entry_set_scalar(e, scalar_type, bits);
                cxpc_object_unref(old);
                return 0;
        }
        if (d->dict.n >= CXPC_DICT_KEYS_MAX) {
                cxpc_object_unref(value);
                return -E2BIG;
        }
        if (d->dict.n == d->dict.allocated) {
                size_t n = d->dict.allocated * 2;
                cxpc_dict_entry *entries;
                if (d->dict.entries == dict_inline_entries(d)) {
                        entries = malloc(n * sizeof(*entries));
                        if (entries)
                                memcpy(entries, d->dict.entries, d->dict.n * sizeof(*entries));
                } else
                        entries = realloc(d->dict.entries, n * sizeof(*entries));
                if (!entries) {
                        cxpc_object_unref(value);
                        return -ENOMEM;
                }
                d->dict.entries = entries;
                d->dict.allocated = n;
        }
        cxpc_dict_entry *e = &d->dict.entries[d->dict.n];
        /* Every field but the unused tail of inline_key is written. */
        e->key_len = (uint32_t) len;
        e->hash = hash;
        if (value)
                dict_entry_set_object(e, value);
        else
                dict_entry_set_scalar(e, scalar_type, bits);
        if (len < CXPC_DICT_KEY_INLINE) {
                e->heap_key = NULL;
                bytes_copy_short(e->inline_key, key, len);
                e->inline_key[len] = 0;
        } else {
                e->heap_key = malloc(len + 1);
                if (!e->heap_key) {
                        cxpc_object_unref(value);
                        return -ENOMEM;
                }
                memcpy(e->heap_key, key, len);
                e->heap_key[len] = 0;
        }
        d->dict.n++;

        if (d->dict.n > CXPC_DICT_LINEAR_MAX) {
                if (!d->dict.index || d->dict.n * 2 > d->dict.index_size) {
                        r = dict_rebuild_index(d);
                        if (r < 0) {
                                /* Keep the dictionary consistent: take the entry back out. */
                                d->dict.n--;
                                free(e->heap_key);
                                cxpc_object_unref(value);
                                return r;
                        }
                } else {
                        size_t mask = d->dict.index_size - 1, slot = hash & mask;
                        while (d->dict.index[slot] != 0)
                                slot = (slot + 1) & mask;
                        d->dict.index[slot] = (uint32_t) d->dict.n;
                }
        }
        return 0;
}

int cxpc_dict_set_take_len(cxpc_object *d, const char *key, size_t len, cxpc_object *value) {
        return dict_put(d, key, len, value, _CXPC_TYPE_INVALID, 0, true);
}

int cxpc_dict_add_take_len(cxpc_object *d, const char *key, size_t len, cxpc_object *value) {
        return dict_put(d, key, len, value, _CXPC_TYPE_INVALID, 0, false);
}

int dict_put_scalar_slow(cxpc_object *d, const char *key, size_t len, cxpc_type type, uint64_t bits,
                         bool replace) {
        assert(type_is_inline_scalar(type));
        return dict_put(d, key, len, NULL, type, bits, replace);
}

cxpc_object *dict_entry_value_slow(const cxpc_dict_entry *e) {
        cxpc_object *v = __atomic_load_n(&e->value, __ATOMIC_ACQUIRE);
        if (v)
                return v; /* made meanwhile, or an object entry */
        cxpc_object *o = object_alloc((cxpc_type) e->scalar_type);
        if (!o)
                return NULL;
        if (e->scalar_type == CXPC_TYPE_BOOL)
                o->boolean = e->scalar != 0;
        else
                o->u64 = e->scalar;
        /* The entry is logically const: the object is a cache. Concurrent readers may race here;
         * the loser drops its own. */
        cxpc_object *expected = NULL;
        if (__atomic_compare_exchange_n((cxpc_object **) &e->value, &expected, o, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
                return o;
        cxpc_object_unref(o);
        return expected;
}

_public_ int cxpc_dict_set(cxpc_object *dict, const char *key, cxpc_object *value) {
        size_t len;
        CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);
        assert_return(key, -EINVAL);
        assert_return(value, -EINVAL);
        assert_return(value != dict, -ELOOP);
        if (!key_length_valid(key, &len))
                return -EILSEQ;
        return dict_put_take(dict, key, len, cxpc_object_ref(value), true);
}

_public_ int cxpc_dict_remove(cxpc_object *dict, const char *key) {
        CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);
        assert_return(key, -EINVAL);
        size_t len = strlen(key);
        ssize_t i = dict_find(dict, key, len, dict->dict.index ? key_hash(key, len) : 0);
        if (i < 0)
                return -ENOENT;
        free(dict->dict.entries[i].heap_key);
        dict_entry_release(&dict->dict.entries[i]);
        memmove(dict->dict.entries + i, dict->dict.entries + i + 1,
                (dict->dict.n - (size_t) i - 1) * sizeof(cxpc_dict_entry));
        dict->dict.n--;
        if (dict->dict.index) {
                /* Rebuilding cannot leave a stale index behind: on failure drop it (linear
                 * search still works). */
                if (dict_rebuild_index(dict) < 0) {
                        free(dict->dict.index);
                        dict->dict.index = NULL;
                        dict->dict.index_size = 0;
                }
        }
        return 0;
}

ssize_t dict_find_any(const cxpc_object *d, const char *key, size_t len) {
        return dict_find(d, key, len, d->dict.index ? key_hash(key, len) : 0);
}

cxpc_object *cxpc_dict_get_len(const cxpc_object *dict, const char *key, size_t len) {
        if (!dict || dict->type != CXPC_TYPE_DICTIONARY)
                return NULL;
        ssize_t i = dict_find(dict, key, len, dict->dict.index ? key_hash(key, len) : 0);
        return i < 0 ? NULL : dict_entry_value(&dict->dict.entries[i]);
}

_public_ cxpc_object *cxpc_dict_get(const cxpc_object *dict, const char *key) {
        if (!key)
                return NULL;
        return cxpc_dict_get_len(dict, key, strlen(key));
}

_public_ int cxpc_dict_get_entry(const cxpc_object *dict, size_t index, const char **ret_key,
                                 cxpc_object **ret_value) {
        CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);
        if (index >= dict->dict.n)
                return -ENOENT;
        if (ret_value) {
                cxpc_object *v = dict_entry_value(&dict->dict.entries[index]);
                if (!v)
                        return -ENOMEM;
                *ret_value = v;
        }
        if (ret_key)
                *ret_key = dict_entry_key(&dict->dict.entries[index]);
        return 0;
}

/* Typed setters: construct, then hand our reference to the dictionary. */
#define DEFINE_DICT_SET(name, ctype)                                                     \
        _public_ int cxpc_dict_set_##name(cxpc_object *dict, const char *key, ctype v) { \
                CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);                                  \
                assert_return(key, -EINVAL);                                             \
                cxpc_object *o;                                                          \
                int r = cxpc_##name##_new(v, &o);                                        \
                if (r < 0)                                                               \
                        return r;                                                        \
                size_t len;                                                              \
                if (!key_length_valid(key, &len)) {                                      \
                        cxpc_object_unref(o);                                            \
                        return -EILSEQ;                                                  \
                }                                                                        \
                return dict_put_take(dict, key, len, o, true);                           \
        }

DEFINE_DICT_SET(string, const char *)
DEFINE_DICT_SET(fd, int)

_public_ int cxpc_dict_set_uuid(cxpc_object *dict, const char *key, const uint8_t uuid[16]) {
        CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);
        assert_return(key, -EINVAL);
        _cleanup_(cxpc_object_unrefp) cxpc_object *o = NULL;
        int r = cxpc_uuid_new(uuid, &o);
        if (r < 0)
                return r;
        return cxpc_dict_set(dict, key, o);
}

/* Scalars go into their entry: no object is made (cxpc_dict_entry). */
static _always_inline_ int dict_set_scalar(cxpc_object *dict, const char *key, cxpc_type type,
                                           uint64_t bits) {
        CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);
        assert_return(key, -EINVAL);
        size_t len;
        if (!key_length_valid(key, &len))
                return -EILSEQ;
        return dict_put_scalar(dict, key, len, type, bits, /* replace= */ true);
}

_public_ int cxpc_dict_set_null(cxpc_object *dict, const char *key) {
        return dict_set_scalar(dict, key, CXPC_TYPE_NULL, 0);
}

_public_ int cxpc_dict_set_bool(cxpc_object *dict, const char *key, bool v) {
        return dict_set_scalar(dict, key, CXPC_TYPE_BOOL, v ? 1 : 0);
}

_public_ int cxpc_dict_set_int64(cxpc_object *dict, const char *key, int64_t v) {
        return dict_set_scalar(dict, key, CXPC_TYPE_INT64, (uint64_t) v);
}

_public_ int cxpc_dict_set_uint64(cxpc_object *dict, const char *key, uint64_t v) {
        return dict_set_scalar(dict, key, CXPC_TYPE_UINT64, v);
}

_public_ int cxpc_dict_set_double(cxpc_object *dict, const char *key, double v) {
        uint64_t bits;
        memcpy(&bits, &v, sizeof(bits));
        return dict_set_scalar(dict, key, CXPC_TYPE_DOUBLE, bits);
}

_public_ int cxpc_dict_set_date(cxpc_object *dict, const char *key, int64_t nsec) {
        return dict_set_scalar(dict, key, CXPC_TYPE_DATE, (uint64_t) nsec);
}

_public_ int cxpc_dict_set_data(cxpc_object *dict, const char *key, const void *p, size_t size) {
        CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);
        assert_return(key, -EINVAL);
        _cleanup_(cxpc_object_unrefp) cxpc_object *o = NULL;
        int r = cxpc_data_new(p, size, &o);
        if (r < 0)
                return r;
        return cxpc_dict_set(dict, key, o);
}

/* strlen() for keys: the usual short ones are measured inline. */
static inline size_t key_length(const char *key) {
        for (size_t i = 0; i < 16; i++)
                if (key[i] == 0)
                        return i;
        return 16 + strlen(key + 16);
}

/* Keys up to this long are looked up by the typed getters without any call. */
#define DICT_LOOKUP_SHORT_MAX 16u

/* The general lookup of the typed getters: the entry of key, or NULL. Out of line, so that the
 * inline fast path needs no stack frame. */
static __attribute__((noinline)) const cxpc_dict_entry *dict_lookup_slow(const cxpc_object *dict,
                                                                         const char *key) {
        size_t len = key_length(key);
        ssize_t i = dict->dict.index ? dict_find_any(dict, key, len) : dict_find_linear(dict, key, len);
        return i < 0 ? NULL : &dict->dict.entries[i];
}

/* The entry of key, or NULL. Handlers read a few short keys of small dictionaries per message:
 * those are measured and compared inline. */
static _always_inline_ const cxpc_dict_entry *dict_lookup(const cxpc_object *dict, const char *key) {
        size_t len = 0;
        while (key[len] != 0)
                if (++len > DICT_LOOKUP_SHORT_MAX)
                        return dict_lookup_slow(dict, key);
        if (dict->dict.index)
                return dict_lookup_slow(dict, key);
        ssize_t i = dict_find_linear(dict, key, len);
        return i < 0 ? NULL : &dict->dict.entries[i];
}

/* The typed getters look up directly (the type and key checks are done once, here). */
#define DICT_LOOKUP(dict, key, e)                                   \
        do {                                                        \
                CHECK_TYPE(dict, CXPC_TYPE_DICTIONARY);             \
                assert_return(key, -EINVAL);                        \
                const cxpc_dict_entry *_f = dict_lookup(dict, key); \
                if (!_f)                                            \
                        return -ENOENT;                             \
                e = _f;                                             \
        } while (false)

/* Scalars are read from their entry; object entries never hold a scalar (dict_entry_set_object()),
 * nor inline entries anything else. */
#define DICT_LOOKUP_OBJECT(dict, key, o)      \
        do {                                  \
                const cxpc_dict_entry *_e;    \
                DICT_LOOKUP(dict, key, _e);   \
                if (dict_entry_is_scalar(_e)) \
                        return -EMEDIUMTYPE;  \
                o = _e->value;                \
        } while (false)

static inline int dict_get_scalar(const cxpc_object *dict, const char *key, cxpc_type type, uint64_t *ret) {
        const cxpc_dict_entry *e;
        DICT_LOOKUP(dict, key, e);
        if (e->scalar_type != type)
                return -EMEDIUMTYPE;
        *ret = e->scalar;
        return 0;
}

_public_ int cxpc_dict_get_bool(const cxpc_object *dict, const char *key, bool *ret) {
        uint64_t bits;
        int r = dict_get_scalar(dict, key, CXPC_TYPE_BOOL, &bits);
        if (r >= 0 && ret)
                *ret = bits != 0;
        return r;
}

_public_ int cxpc_dict_get_int64(const cxpc_object *dict, const char *key, int64_t *ret) {
        uint64_t bits;
        int r = dict_get_scalar(dict, key, CXPC_TYPE_INT64, &bits);
        if (r >= 0 && ret)
                *ret = (int64_t) bits;
        return r;
}

_public_ int cxpc_dict_get_uint64(const cxpc_object *dict, const char *key, uint64_t *ret) {
        uint64_t bits;
        int r = dict_get_scalar(dict, key, CXPC_TYPE_UINT64, &bits);
        if (r >= 0 && ret)
                *ret = bits;
        return r;
}

_public_ int cxpc_dict_get_double(const cxpc_object *dict, const char *key, double *ret) {
        uint64_t bits;
        int r = dict_get_scalar(dict, key, CXPC_TYPE_DOUBLE, &bits);
        if (r >= 0 && ret)
                memcpy(ret, &bits, sizeof(*ret));
        return r;
}

_public_ int cxpc_dict_get_date(const cxpc_object *dict, const char *key, int64_t *ret) {
        uint64_t bits;
        int r = dict_get_scalar(dict, key, CXPC_TYPE_DATE, &bits);
        if (r >= 0 && ret)
                *ret = (int64_t) bits;
        return r;
}

_public_ int cxpc_dict_get_data(const cxpc_object *dict, const char *key, const void **ret_ptr,
                                size_t *ret_size) {
        const cxpc_object *o;
        DICT_LOOKUP_OBJECT(dict, key, o);
        return cxpc_data_get(o, ret_ptr, ret_size);
}

_public_ int cxpc_dict_get_string(const cxpc_object *dict, const char *key, const char **ret) {
        const cxpc_object *o;
        DICT_LOOKUP_OBJECT(dict, key, o);
        return cxpc_string_get(o, ret);
}

_public_ int cxpc_dict_get_uuid(const cxpc_object *dict, const char *key, const uint8_t **ret) {
        const cxpc_object *o;
        DICT_LOOKUP_OBJECT(dict, key, o);
        return cxpc_uuid_get(o, ret);
}

_public_ int cxpc_dict_dup_fd(const cxpc_object *dict, const char *key, int *ret_fd) {
        const cxpc_object *o;
        DICT_LOOKUP_OBJECT(dict, key, o);
        return cxpc_fd_dup(o, ret_fd);
}

/* ---- equality and copy ---- */

static bool fd_same_file(int a, int b) {
        if (a == b)
                return true;
        long r = syscall(SYS_kcmp, (pid_t) getpid(), (pid_t) getpid(), KCMP_FILE, (unsigned long) a,
                         (unsigned long) b);
        if (r >= 0)
                return r == 0;
        /* kcmp may be compiled out: fall back to the inode, which is weaker (two opens of the
         * same file compare equal) but never says "equal" for different files. */
        struct stat sa, sb;
        if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
                return false;
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Inline scalars compare by type and bits (bitwise for doubles, like the objects). */
static bool dict_entry_equal(const cxpc_dict_entry *a, const cxpc_dict_entry *b) {
        if (dict_entry_is_scalar(a) || dict_entry_is_scalar(b))
                return a->scalar_type == b->scalar_type && a->scalar == b->scalar;
        return cxpc_object_equal(a->value, b->value);
}

_public_ bool cxpc_object_equal(const cxpc_object *a, const cxpc_object *b) {
        if (a == b)
                return true;
        if (!a || !b || a->type != b->type)
                return false;

        switch (a->type) {
        case CXPC_TYPE_NULL:
                return true;
        case CXPC_TYPE_BOOL:
                return a->boolean == b->boolean;
        case CXPC_TYPE_INT64:
        case CXPC_TYPE_DATE:
                return a->i64 == b->i64;
        case CXPC_TYPE_UINT64:
                return a->u64 == b->u64;
        case CXPC_TYPE_DOUBLE:
                /* Bitwise, so that NaN equals itself and a round trip is "equal". */
                return memcmp(&a->dbl, &b->dbl, sizeof(double)) == 0;
        case CXPC_TYPE_DATA: {
                if (a->data.size != b->data.size)
                        return false;
                if (a->data.size == 0)
                        return true;
                /* Two views of one sealed memfd hold the same bytes: no need to map them. */
                if (a->data.memfd >= 0 && b->data.memfd >= 0 && fd_same_file(a->data.memfd, b->data.memfd))
                        return true;
                const uint8_t *pa, *pb;
                if (cxpc_data_map(a, &pa) < 0 || cxpc_data_map(b, &pb) < 0)
                        return false;
                return memcmp(pa, pb, a->data.size) == 0;
        }
        case CXPC_TYPE_STRING:
                return a->string.len == b->string.len &&
                       memcmp(a->string.ptr, b->string.ptr, a->string.len) == 0;
        case CXPC_TYPE_UUID:
                return memcmp(a->uuid, b->uuid, 16) == 0;
        case CXPC_TYPE_ARRAY:
                if (a->array.n != b->array.n)
                        return false;
                for (size_t i = 0; i < a->array.n; i++)
                        if (!cxpc_object_equal(a->array.items[i], b->array.items[i]))
                                return false;
                return true;
        case CXPC_TYPE_DICTIONARY:
                if (a->dict.n != b->dict.n)
                        return false;
                for (size_t i = 0; i < a->dict.n; i++) {
                        const cxpc_dict_entry *e = &a->dict.entries[i];
                        ssize_t j = dict_find(b, dict_entry_key(e), e->key_len,
                                              b->dict.index ? key_hash(dict_entry_key(e), e->key_len) : 0);
                        if (j < 0 || !dict_entry_equal(e, &b->dict.entries[j]))
                                return false;
                }
                return true;
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                return fd_same_file(a->fd, b->fd);
        case CXPC_TYPE_SHMEM:
                return a->shmem.size == b->shmem.size && fd_same_file(a->shmem.fd, b->shmem.fd);
        case CXPC_TYPE_ERROR:
                return a->error.code == b->error.code &&
                       streq(a->error.message ?: "", b->error.message ?: "");
        default:
                return false;
        }
}

static int object_copy(const cxpc_object *o, unsigned depth, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *c = NULL;
        int r, fd;

        if (depth > CXPC_DEPTH_MAX)
                return -ELOOP;

        switch (o->type) {
        case CXPC_TYPE_DATA:
                /* Sealed memfds and body mappings are immutable: share them. */
                if (o->data.memfd >= 0) {
                        fd = fcntl(o->data.memfd, F_DUPFD_CLOEXEC, 3);
                        if (fd < 0)
                                return negative_errno();
                        return cxpc_data_new_memfd_take(fd, o->data.size, ret);
                }
                if (o->data.backing)
                        return cxpc_data_new_backed(o->data.ptr, o->data.size, o->data.backing, ret);
                return cxpc_data_new(o->data.ptr, o->data.size, ret);
        case CXPC_TYPE_STRING:
                return cxpc_string_new_len(o->string.ptr, o->string.len, ret);
        case CXPC_TYPE_ARRAY:
                r = cxpc_array_new(&c);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < o->array.n; i++) {
                        cxpc_object *item;
                        r = object_copy(o->array.items[i], depth + 1, &item);
                        if (r < 0)
                                return r;
                        r = cxpc_array_append_take(c, item);
                        if (r < 0)
                                return r;
                }
                break;
        case CXPC_TYPE_DICTIONARY:
                r = cxpc_dict_new(&c);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < o->dict.n; i++) {
                        const cxpc_dict_entry *e = &o->dict.entries[i];
                        cxpc_object *value = NULL;
                        if (!dict_entry_is_scalar(e)) {
                                r = object_copy(e->value, depth + 1, &value);
                                if (r < 0)
                                        return r;
                        }
                        /* value NULL: the inline scalar is copied as it is */
                        r = dict_put(c, dict_entry_key(e), e->key_len, value, (cxpc_type) e->scalar_type,
                                     e->scalar, /* replace= */ true);
                        if (r < 0)
                                return r;
                }
                break;
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return negative_errno();
                r = cxpc_fd_new_take(fd, &c);
                if (r < 0)
                        return r;
                c->type = o->type;
                break;
        case CXPC_TYPE_SHMEM:
                fd = fcntl(o->shmem.fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return negative_errno();
                return cxpc_shmem_new_take(fd, o->shmem.size, ret);
        case CXPC_TYPE_ERROR:
                return cxpc_error_new(o->error.code, o->error.message, ret);
        default:
                /* Plain scalars: a bitwise copy of the value. */
                c = object_alloc(o->type);
                if (!c)
                        return -ENOMEM;
                memcpy(&c->uuid, &o->uuid, sizeof(c->uuid));
                break;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

_public_ int cxpc_object_copy(const cxpc_object *o, cxpc_object **ret) {
        assert_return(o, -EINVAL);
        assert_return(ret, -EINVAL);
        return object_copy(o, 0, ret);
}
