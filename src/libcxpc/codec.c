/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The binary wire format: encoding objects into frames, and receiving/decoding records. The
 * byte-level layout is documented in docs/protocol.md. */

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "codec.h"
#include "macro.h"
#include "object-internal.h"
#include "socket-util.h"

/* Type tags on the wire are the cxpc_type values; they are part of the protocol. Tags past them
 * are other encodings of those types. */
_Static_assert(CXPC_TYPE_NULL == 0 && CXPC_TYPE_ERROR == 14, "wire type tags are fixed");
_Static_assert(CXPC_WIRE_TAG_DATA_MEMFD >= _CXPC_TYPE_MAX, "wire tags do not collide");
_Static_assert(CXPC_DATA_MEMFD_MIN >= CXPC_INLINE_BODY_MAX, "memfd data never fits inline anyway");

/* In a memfd body, data/string payloads at least this big are written straight from the source
 * object (writev) and referenced from the mapping on receive, instead of being copied around. */
#define CODEC_EXTERNAL_MIN (16u * 1024u)
/* Seals a body memfd must carry. */
#define CODEC_BODY_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
/* ---- sizing pass ---- */

typedef struct size_state {
        uint64_t size;     /* total encoded body bytes */
        uint64_t external; /* of which large payloads that may be written from the source */
        size_t n_fds;
} size_state;

static int size_value(const cxpc_object *o, unsigned depth, size_state *s) {
        s->size += 1; /* tag */
        switch (o->type) {
        case CXPC_TYPE_NULL:
                break;
        case CXPC_TYPE_BOOL:
                s->size += 1;
                break;
        case CXPC_TYPE_INT64:
        case CXPC_TYPE_UINT64:
        case CXPC_TYPE_DOUBLE:
        case CXPC_TYPE_DATE:
                s->size += 8;
                break;
        case CXPC_TYPE_DATA:
                if (o->data.memfd >= 0) { /* passed as its own fd: not part of the body */
                        s->size += 4 + 8;
                        s->n_fds++;
                        break;
                }
                s->size += 4 + (uint64_t) o->data.size;
                if (o->data.size >= CODEC_EXTERNAL_MIN)
                        s->external += o->data.size;
                break;
        case CXPC_TYPE_STRING:
                s->size += 4 + (uint64_t) o->string.len;
                if (o->string.len >= CODEC_EXTERNAL_MIN)
                        s->external += o->string.len;
                break;
        case CXPC_TYPE_UUID:
                s->size += 16;
                break;
        case CXPC_TYPE_ARRAY:
                if (depth > CXPC_DEPTH_MAX) /* the message itself is depth 1 */
                        return -ELOOP;
                s->size += 4;
                for (size_t i = 0; i < o->array.n; i++) {
                        int r = size_value(o->array.items[i], depth + 1, s);
                        if (r < 0)
                                return r;
                }
                break;
        case CXPC_TYPE_DICTIONARY:
                if (depth > CXPC_DEPTH_MAX) /* the message itself is depth 1 */
                        return -ELOOP;
                s->size += 4;
                for (size_t i = 0; i < o->dict.n; i++) {
                        const cxpc_dict_entry *e = &o->dict.entries[i];
                        s->size += 4 + (uint64_t) e->key_len;
                        cxpc_object tmp;
                        int r = size_value(dict_entry_peek(e, &tmp), depth + 1, s);
                        if (r < 0)
                                return r;
                }
                break;
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                s->size += 4;
                s->n_fds++;
                break;
        case CXPC_TYPE_SHMEM:
                s->size += 4 + 8;
                s->n_fds++;
                break;
        case CXPC_TYPE_ERROR: {
                const char *name = cxpc_error_code_to_string(o->error.code) ?: "unknown";
                s->size += 4 + strlen(name) + 4 + (o->error.message ? strlen(o->error.message) : 0);
                break;
        }
        default:
                return -EINVAL;
        }
        if (s->size > CXPC_MESSAGE_SIZE_MAX || s->n_fds > CXPC_FDS_PER_MESSAGE_MAX)
                return -E2BIG;
        return 0;
}

/* ---- writing pass ---- */

typedef struct writer {
        uint8_t *buf; /* sized exactly by the sizing pass, or a small frame's room (one pass) */
        size_t pos, cap;
        int *fds; /* duplicates, in value order; NULL in the one-pass attempt (no fds there) */
        size_t n_fds;
        /* Memfd bodies only: the body as a sequence of buffer segments and source payloads. */
        bool external;
        struct iovec *iov;
        size_t n_iov, allocated_iov;
        size_t seg_start;
} writer;

static void put_u8(writer *w, uint8_t v) {
        w->buf[w->pos++] = v;
}

static void put_u32(writer *w, uint32_t v) {
        v = htole32(v);
        memcpy(w->buf + w->pos, &v, 4);
        w->pos += 4;
}

static void put_u64(writer *w, uint64_t v) {
        v = htole64(v);
        memcpy(w->buf + w->pos, &v, 8);
        w->pos += 8;
}

static int push_iov(writer *w, const void *p, size_t len) {
        if (len == 0)
                return 0;
        if (w->n_iov == w->allocated_iov) {
                size_t n = MAX(w->allocated_iov * 2, (size_t) 16);
                struct iovec *iov = realloc(w->iov, n * sizeof(*iov));
                if (!iov)
                        return -ENOMEM;
                w->iov = iov;
                w->allocated_iov = n;
        }
        w->iov[w->n_iov++] = (struct iovec){.iov_base = (void *) p, .iov_len = len};
        return 0;
}

/* In a memfd body, a large payload ends the current buffer segment and is referenced in place
 * (the buffer never moves: it was sized by the sizing pass). */
static int put_bytes(writer *w, const void *p, size_t len) {
        if (w->external && len >= CODEC_EXTERNAL_MIN) {
                int r = push_iov(w, w->buf + w->seg_start, w->pos - w->seg_start);
                if (r < 0)
                        return r;
                r = push_iov(w, p, len);
                if (r < 0)
                        return r;
                w->seg_start = w->pos;
                return 0;
        }
        if (len > 0)
                memcpy(w->buf + w->pos, p, len);
        w->pos += len;
        return 0;
}

/* The tag and the fixed-size part of a value; variable parts are checked where they are written. */
static size_t fixed_size(const cxpc_object *o) {
        switch (o->type) {
        case CXPC_TYPE_BOOL:
                return 1 + 1;
        case CXPC_TYPE_INT64:
        case CXPC_TYPE_UINT64:
        case CXPC_TYPE_DOUBLE:
        case CXPC_TYPE_DATE:
                return 1 + 8;
        case CXPC_TYPE_DATA:
        case CXPC_TYPE_STRING:
        case CXPC_TYPE_ARRAY:
        case CXPC_TYPE_DICTIONARY:
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                return 1 + 4;
        case CXPC_TYPE_UUID:
                return 1 + 16;
        case CXPC_TYPE_SHMEM:
                return 1 + 4 + 8;
        default:
                return 1;
        }
}

/* Room for n more bytes in the buffer? Always true after the sizing pass; in the one-pass attempt
 * "no" sends the message down the two-pass path. */
static bool room(const writer *w, size_t n) {
        return w->cap - w->pos >= n;
}

/* The buffer bytes a string or data payload takes (large ones in a memfd body stay outside). */
static size_t payload_room(const writer *w, size_t len) {
        return w->external && len >= CODEC_EXTERNAL_MIN ? 0 : len;
}

static int put_fd(writer *w, int fd) {
        if (!w->fds)
                return -ENOBUFS;
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return negative_errno();
        put_u32(w, (uint32_t) w->n_fds);
        w->fds[w->n_fds++] = copy;
        return 0;
}

/* The usual dictionary entry (a short key with an inline scalar or a short string) in one go, all
 * of it read into locals first: stores into the buffer may alias the writer and the entry, which
 * would otherwise be reloaded after each. false (nothing written) when the entry needs the general
 * path, or does not fit (the general path then says so). */
static inline bool write_entry_short(writer *w, const cxpc_dict_entry *e) {
        size_t klen = e->key_len, vlen;
        const char *key = dict_entry_key(e), *str = NULL;
        uint8_t tag = e->scalar_type;
        uint64_t bits;

        if (klen > CXPC_STRING_SHORT_MAX)
                return false;
        if (dict_entry_is_scalar(e)) {
                bits = e->scalar;
                vlen = type_is_scalar64(tag) ? 8 : tag == CXPC_TYPE_BOOL ? 1 : 0;
        } else {
                const cxpc_object *v = e->value;
                if (v->type != CXPC_TYPE_STRING || v->string.len > CXPC_STRING_SHORT_MAX)
                        return false;
                tag = CXPC_TYPE_STRING;
                str = v->string.ptr;
                bits = v->string.len;
                vlen = 4 + v->string.len;
        }
        size_t n = 4 + klen + 1 + vlen;
        if (!room(w, n))
                return false;

        uint8_t *p = w->buf + w->pos;
        uint32_t le = htole32((uint32_t) klen);
        memcpy(p, &le, 4);
        bytes_copy_short(p + 4, key, klen);
        p += 4 + klen;
        *p++ = tag;
        if (str) {
                le = htole32((uint32_t) bits);
                memcpy(p, &le, 4);
                bytes_copy_short(p + 4, str, (size_t) bits);
        } else if (vlen == 8) {
                uint64_t x = htole64(bits);
                memcpy(p, &x, 8);
        } else if (vlen == 1)
                *p = (uint8_t) bits;
        w->pos += n;
        return true;
}

/* Writes one value. The one-pass attempt relies on the checks here: -ENOBUFS when something does
 * not fit or needs an fd, -ELOOP when too deep (the two-pass path then gives the real answer). */
static int write_value(writer *w, const cxpc_object *o, unsigned depth) {
        int r;

        if (o->type == CXPC_TYPE_DATA && o->data.memfd >= 0) {
                if (!room(w, 1 + 4 + 8))
                        return -ENOBUFS;
                /* Sealed, hence immutable: the peer gets the same file, nothing is copied. */
                put_u8(w, CXPC_WIRE_TAG_DATA_MEMFD);
                r = put_fd(w, o->data.memfd);
                if (r < 0)
                        return r;
                put_u64(w, (uint64_t) o->data.size);
                return 0;
        }

        /* Room for the tag and any fixed-size part (at most a uuid); variable parts check again. */
        if (!room(w, 1 + 16) && !room(w, fixed_size(o)))
                return -ENOBUFS;
        put_u8(w, (uint8_t) o->type);
        switch (o->type) {
        case CXPC_TYPE_NULL:
                return 0;
        case CXPC_TYPE_BOOL:
                put_u8(w, o->boolean ? 1 : 0);
                return 0;
        case CXPC_TYPE_INT64:
        case CXPC_TYPE_DATE:
                put_u64(w, (uint64_t) o->i64);
                return 0;
        case CXPC_TYPE_UINT64:
                put_u64(w, o->u64);
                return 0;
        case CXPC_TYPE_DOUBLE: {
                uint64_t bits;
                memcpy(&bits, &o->dbl, 8);
                put_u64(w, bits);
                return 0;
        }
        case CXPC_TYPE_DATA:
                if (!room(w, 4 + payload_room(w, o->data.size)))
                        return -ENOBUFS;
                put_u32(w, (uint32_t) o->data.size);
                return put_bytes(w, o->data.ptr, o->data.size);
        case CXPC_TYPE_STRING:
                if (!room(w, 4 + payload_room(w, o->string.len)))
                        return -ENOBUFS;
                put_u32(w, (uint32_t) o->string.len);
                if (o->string.len <= 16) {
                        bytes_copy_short(w->buf + w->pos, o->string.ptr, o->string.len);
                        w->pos += o->string.len;
                        return 0;
                }
                return put_bytes(w, o->string.ptr, o->string.len);
        case CXPC_TYPE_UUID:
                memcpy(w->buf + w->pos, o->uuid, 16);
                w->pos += 16;
                return 0;
        case CXPC_TYPE_ARRAY:
                if (depth > CXPC_DEPTH_MAX) /* the message itself is depth 1 */
                        return -ELOOP;
                put_u32(w, (uint32_t) o->array.n);
                for (size_t i = 0; i < o->array.n; i++) {
                        r = write_value(w, o->array.items[i], depth + 1);
                        if (r < 0)
                                return r;
                }
                return 0;
        case CXPC_TYPE_DICTIONARY:
                if (depth > CXPC_DEPTH_MAX)
                        return -ELOOP;
                put_u32(w, (uint32_t) o->dict.n);
                for (size_t i = 0; i < o->dict.n; i++) {
                        const cxpc_dict_entry *e = &o->dict.entries[i];
                        if (write_entry_short(w, e))
                                continue;
                        if (!room(w, 4 + (size_t) e->key_len))
                                return -ENOBUFS;
                        put_u32(w, (uint32_t) e->key_len);
                        bytes_copy_short(w->buf + w->pos, dict_entry_key(e), e->key_len);
                        w->pos += e->key_len;
                        if (dict_entry_is_scalar(e)) {
                                /* the usual values, from the entry, without the call */
                                if (type_is_scalar64(e->scalar_type)) {
                                        if (!room(w, 1 + 8))
                                                return -ENOBUFS;
                                        put_u8(w, e->scalar_type);
                                        put_u64(w, e->scalar);
                                } else {
                                        bool is_bool = e->scalar_type == CXPC_TYPE_BOOL;
                                        if (!room(w, 1 + (size_t) is_bool))
                                                return -ENOBUFS;
                                        put_u8(w, e->scalar_type);
                                        if (is_bool)
                                                put_u8(w, (uint8_t) e->scalar);
                                }
                                continue;
                        }
                        const cxpc_object *v = e->value;
                        if (v->type == CXPC_TYPE_STRING && v->string.len <= CXPC_STRING_SHORT_MAX &&
                            room(w, 1 + 4 + CXPC_STRING_SHORT_MAX)) {
                                put_u8(w, CXPC_TYPE_STRING);
                                put_u32(w, (uint32_t) v->string.len);
                                bytes_copy_short(w->buf + w->pos, v->string.ptr, v->string.len);
                                w->pos += v->string.len;
                                continue;
                        }
                        r = write_value(w, e->value, depth + 1);
                        if (r < 0)
                                return r;
                }
                return 0;
        case CXPC_TYPE_FD:
        case CXPC_TYPE_ENDPOINT:
                return put_fd(w, o->fd);
        case CXPC_TYPE_SHMEM:
                r = put_fd(w, o->shmem.fd);
                if (r < 0)
                        return r;
                put_u64(w, (uint64_t) o->shmem.size);
                return 0;
        case CXPC_TYPE_ERROR: {
                const char *name = cxpc_error_code_to_string(o->error.code) ?: "unknown";
                size_t n = strlen(name), m = o->error.message ? strlen(o->error.message) : 0;
                if (!room(w, 4 + n + 4 + m))
                        return -ENOBUFS;
                put_u32(w, (uint32_t) n);
                memcpy(w->buf + w->pos, name, n);
                w->pos += n;
                put_u32(w, (uint32_t) m);
                if (m > 0)
                        memcpy(w->buf + w->pos, o->error.message, m);
                w->pos += m;
                return 0;
        }
        default:
                return -EINVAL;
        }
}

static int write_all_iov(int fd, struct iovec *iov, size_t n) {
        while (n > 0) {
                ssize_t k = writev(fd, iov, (int) MIN(n, (size_t) IOV_MAX));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                size_t done = (size_t) k;
                while (n > 0 && done >= iov->iov_len) {
                        done -= iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0 && done > 0) {
                        iov->iov_base = (uint8_t *) iov->iov_base + done;
                        iov->iov_len -= done;
                }
        }
        return 0;
}

/* Writes the body (buffer segments interleaved with source payloads) into a new sealed memfd. */
static int body_to_memfd(writer *w, int *ret_fd) {
        int r;

        r = push_iov(w, w->buf + w->seg_start, w->pos - w->seg_start); /* the last segment */
        if (r < 0)
                return r;

        _cleanup_close_ int fd = memfd_create("cxpc-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        r = write_all_iov(fd, w->iov, w->n_iov);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, CODEC_BODY_SEALS) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

cxpc_frame *cxpc_frame_free(cxpc_frame *f) {
        if (!f)
                return NULL;
        close_many(f->fds, f->n_fds);
        /* body and fds live in the same allocation as the frame */
        if (!f->small || !object_cache_put(OBJECT_CLASS_FRAME, f))
                free(f);
        return NULL;
}

/* Fills in the header and the sizes of a frame whose body was written (inline: body_size bytes
 * at body; memfd body: the memfd is the frame's last fd). */
static void frame_finish(cxpc_frame *f, uint64_t id, uint64_t reply_to, unsigned flags, void *body,
                         size_t body_size, size_t inline_size) {
        f->header = (cxpc_frame_header){
                .magic = htole32(CXPC_FRAME_MAGIC),
                .version = CXPC_PROTOCOL_VERSION,
                .flags = (uint8_t) flags,
                .n_fds = htole16((uint16_t) f->n_fds),
                .id = htole64(id),
                .reply_to = htole64(reply_to),
                .body_size = htole32((uint32_t) body_size),
        };
        memcpy(f->record, &f->header, CXPC_FRAME_HEADER_SIZE);
        f->body = body;
        f->body_size = inline_size;
        f->record_size = CXPC_FRAME_HEADER_SIZE + inline_size;
        f->sent_size = sizeof(f->header) + body_size;
}

/* Where the parts of a frame start in its allocation, for n_fds fds. */
static size_t frame_record_offset(size_t n_fds) {
        return ALIGN_TO(sizeof(cxpc_frame) + n_fds * sizeof(int), sizeof(uint64_t));
}

/* Small frame without fds: record_off and body_off are constants. */
#define FRAME_SMALL_BODY_OFFSET (ALIGN_TO(sizeof(cxpc_frame), sizeof(uint64_t)) + CXPC_FRAME_HEADER_SIZE)
_Static_assert(FRAME_SMALL_BODY_OFFSET < CXPC_FRAME_SMALL_ALLOC, "small frames have room for a body");

/* Most messages are small and carry no fds: write them in one pass into a small frame, without
 * the sizing pass. 0 on success; otherwise nothing is kept and the caller takes the two-pass path,
 * which gives the authoritative answer (-ENOBUFS: too big or needs fds; -ELOOP: too deep). */
static int frame_encode_small(const cxpc_object *message, uint64_t id, uint64_t reply_to, unsigned flags,
                              cxpc_frame **ret) {
        cxpc_frame *f = object_cache_get(OBJECT_CLASS_FRAME);
        if (!f) {
                f = malloc(CXPC_FRAME_SMALL_ALLOC);
                if (!f)
                        return -ENOMEM;
        }
        /* Only what frame_finish() does not write (no zeroing of the whole frame). */
        f->fds = (int *) (f + 1); /* room for none */
        f->n_fds = 0;
        f->record = (uint8_t *) f + frame_record_offset(0);
        f->queue_next = NULL;
        f->small = true;
        writer w = {
                .buf = (uint8_t *) f + FRAME_SMALL_BODY_OFFSET,
                .cap = CXPC_FRAME_SMALL_ALLOC - FRAME_SMALL_BODY_OFFSET,
        };
        int r = write_value(&w, message, 1);
        if (r < 0) {
                cxpc_frame_free(f); /* holds nothing: no fds were taken */
                return r;
        }
        /* The small buffer is far below the limits the sizing pass checks. */
        assert(w.pos <= CXPC_INLINE_BODY_MAX);
        frame_finish(f, id, reply_to, flags, w.buf, w.pos, w.pos);
        *ret = f;
        return 0;
}

int cxpc_frame_encode(const cxpc_object *message, uint64_t id, uint64_t reply_to, unsigned flags,
                      cxpc_frame **ret) {
        size_state s = {};
        int r;

        if (!message || message->type != CXPC_TYPE_DICTIONARY || !ret)
                return -EINVAL;
        if (flags & ~(unsigned) _CXPC_FRAME_FLAGS_ALL)
                return -EINVAL;

        r = frame_encode_small(message, id, reply_to, flags, ret);
        if (r >= 0 || r == -ENOMEM)
                return r;

        r = size_value(message, 1, &s);
        if (r < 0)
                return r;
        bool memfd = s.size > CXPC_INLINE_BODY_MAX;
        size_t n_fds_total = s.n_fds + (memfd ? 1 : 0);
        if (n_fds_total > CXPC_FDS_PER_MESSAGE_MAX)
                return -E2BIG;

        /* One allocation: frame, fd array, record (header, then the inline body; for memfd
         * bodies the buffer holds everything except the large payloads, which go straight from
         * the source objects into the memfd). */
        size_t buf_size = (size_t) (memfd ? s.size - s.external : s.size);
        size_t record_off = frame_record_offset(n_fds_total);
        size_t body_off = record_off + CXPC_FRAME_HEADER_SIZE;
        bool small = body_off + buf_size <= CXPC_FRAME_SMALL_ALLOC;
        cxpc_frame *f = small ? object_cache_get(OBJECT_CLASS_FRAME) : NULL;
        if (!f)
                f = malloc(small ? CXPC_FRAME_SMALL_ALLOC : body_off + buf_size);
        if (!f)
                return -ENOMEM;
        *f = (cxpc_frame){
                .fds = (int *) (f + 1),
                .record = (uint8_t *) f + record_off,
                .small = small,
        };
        _cleanup_(cxpc_frame_freep) cxpc_frame *frame = f;

        writer w = {
                .buf = (uint8_t *) f + body_off,
                .cap = buf_size,
                .fds = f->fds,
                .external = memfd,
        };
        r = write_value(&w, message, 1);
        f->n_fds = w.n_fds; /* the frame owns the duplicates made so far, also on failure */
        if (r < 0) {
                free(w.iov);
                return r;
        }

        if (memfd) {
                int bfd = -EBADF;
                r = body_to_memfd(&w, &bfd);
                free(w.iov);
                if (r < 0)
                        return r;
                f->fds[f->n_fds++] = bfd;
                flags |= CXPC_FRAME_BODY_MEMFD;
                frame_finish(f, id, reply_to, flags, NULL, (size_t) s.size, 0);
        } else
                frame_finish(f, id, reply_to, flags, w.buf, (size_t) s.size, w.pos);
        *ret = TAKE_PTR(frame);
        return 0;
}

typedef union frame_control {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(int) * CXPC_FDS_PER_MESSAGE_MAX)];
} frame_control;

/* Fills mh (and control, when the frame carries fds) for sendmsg()/sendmmsg(). */
static void frame_to_msghdr(const cxpc_frame *f, struct iovec *iov, frame_control *control,
                            struct msghdr *mh) {
        *iov = (struct iovec){.iov_base = f->record, .iov_len = f->record_size};
        *mh = (struct msghdr){.msg_iov = iov, .msg_iovlen = 1};
        if (f->n_fds == 0)
                return;
        memset(control, 0, CMSG_SPACE(sizeof(int) * f->n_fds));
        mh->msg_control = control;
        mh->msg_controllen = CMSG_SPACE(sizeof(int) * f->n_fds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(mh);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * f->n_fds);
        memcpy(CMSG_DATA(cmsg), f->fds, sizeof(int) * f->n_fds);
}

int cxpc_frame_send(int sockfd, const cxpc_frame *f) {
        if (sockfd < 0 || !f || f->n_fds > CXPC_FDS_PER_MESSAGE_MAX)
                return -EINVAL;

        for (;;) {
                ssize_t n;
                if (f->n_fds == 0)
                        /* send() skips the kernel's msghdr and iovec import: measurably cheaper */
                        n = send(sockfd, f->record, f->record_size, MSG_DONTWAIT | MSG_NOSIGNAL);
                else {
                        struct iovec iov;
                        frame_control control;
                        struct msghdr mh;
                        frame_to_msghdr(f, &iov, &control, &mh);
                        n = sendmsg(sockfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
                }
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                /* SEQPACKET records are atomic; anything else means a misuse of the socket. */
                return (size_t) n == f->record_size ? 0 : -EIO;
        }
}

int cxpc_frames_send(int sockfd, cxpc_frame *const *frames, size_t n) {
        if (sockfd < 0 || !frames || n == 0)
                return -EINVAL;
        if (n == 1) {
                int r = cxpc_frame_send(sockfd, frames[0]);
                return r < 0 ? r : 1;
        }

        n = MIN(n, (size_t) CXPC_SEND_BATCH_MAX);
        struct mmsghdr msgs[CXPC_SEND_BATCH_MAX];
        struct iovec iov[CXPC_SEND_BATCH_MAX];
        /* Control buffers only for the frames that carry fds (rare), in one array. */
        size_t n_control = 0;
        for (size_t i = 0; i < n; i++) {
                if (frames[i]->n_fds > CXPC_FDS_PER_MESSAGE_MAX)
                        return -EINVAL;
                n_control += frames[i]->n_fds > 0;
        }
        _cleanup_free_ frame_control *control = NULL;
        if (n_control > 0) {
                control = malloc(n_control * sizeof(*control));
                if (!control)
                        return -ENOMEM;
        }
        for (size_t i = 0, k = 0; i < n; i++) {
                frame_to_msghdr(frames[i], &iov[i], frames[i]->n_fds > 0 ? &control[k] : NULL,
                                &msgs[i].msg_hdr);
                k += frames[i]->n_fds > 0;
                msgs[i].msg_len = 0;
        }
        for (;;) {
                int k = sendmmsg(sockfd, msgs, (unsigned) n, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                for (int i = 0; i < k; i++)
                        if (msgs[i].msg_len != frames[i]->record_size)
                                return -EIO;
                return k > 0 ? k : -EAGAIN;
        }
}

/* ---- decoding ---- */

typedef struct reader {
        const uint8_t *p;
        size_t pos, size;
        int *fds;              /* owned; consumed entries are set to -EBADF */
        size_t n_fds;          /* value fds (the body memfd is not among them) */
        cxpc_backing *backing; /* memfd body mapping, or NULL for inline bodies */
} reader;

static bool have(const reader *r, size_t n) {
        return r->size - r->pos >= n;
}

static int get_u8(reader *r, uint8_t *ret) {
        if (!have(r, 1))
                return -EBADMSG;
        *ret = r->p[r->pos++];
        return 0;
}

static int get_u32(reader *r, uint32_t *ret) {
        uint32_t v;
        if (!have(r, 4))
                return -EBADMSG;
        memcpy(&v, r->p + r->pos, 4);
        r->pos += 4;
        *ret = le32toh(v);
        return 0;
}

static int get_u64(reader *r, uint64_t *ret) {
        uint64_t v;
        if (!have(r, 8))
                return -EBADMSG;
        memcpy(&v, r->p + r->pos, 8);
        r->pos += 8;
        *ret = le64toh(v);
        return 0;
}

/* A length-prefixed byte run, bounded by max; returns a pointer into the body. */
static int get_blob(reader *r, uint32_t max, const uint8_t **ret, size_t *ret_len) {
        uint32_t len;
        int k = get_u32(r, &len);
        if (k < 0)
                return k;
        if (len > max || !have(r, len))
                return -EBADMSG;
        *ret = r->p + r->pos;
        *ret_len = len;
        r->pos += len;
        return 0;
}

static int take_fd(reader *r, int *ret) {
        uint32_t idx;
        int k = get_u32(r, &idx);
        if (k < 0)
                return k;
        /* Each fd may be referenced once: a second reference finds -EBADF. */
        if (idx >= r->n_fds || r->fds[idx] < 0)
                return -EBADMSG;
        *ret = r->fds[idx];
        r->fds[idx] = -EBADF;
        return 0;
}

static int read_value(reader *r, unsigned depth, cxpc_object **ret);

/* Takes the fd of a shmem or data-memfd value with its u64 size, and checks that the region is
 * what it claims and immutable: otherwise a writer could change or shrink it under the reader's
 * mapping (SIGBUS). Nothing is mapped here. */
static int take_sealed_memfd(reader *r, uint64_t min_size, int *ret_fd, size_t *ret_size) {
        struct stat st;
        uint64_t size;
        int fd, k;

        k = take_fd(r, &fd);
        if (k < 0)
                return k;
        k = get_u64(r, &size);
        if (k < 0 || size < min_size || size > CXPC_MESSAGE_SIZE_MAX || fstat(fd, &st) < 0 ||
            !S_ISREG(st.st_mode) || (uint64_t) st.st_size != size) {
                safe_close(fd);
                return -EBADMSG;
        }
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & CXPC_SHMEM_SEALS) != CXPC_SHMEM_SEALS) {
                safe_close(fd);
                return -EBADMSG;
        }
        *ret_fd = fd;
        *ret_size = (size_t) size;
        return 0;
}

static int read_string(reader *r, uint32_t max, char **ret, size_t *ret_len) {
        const uint8_t *b;
        size_t len;
        int k = get_blob(r, max, &b, &len);
        if (k < 0)
                return k;
        if (!cxpc_utf8_is_valid((const char *) b, len))
                return -EBADMSG;
        char *s = malloc(len + 1);
        if (!s)
                return -ENOMEM;
        memcpy(s, b, len);
        s[len] = 0;
        *ret = s;
        *ret_len = len;
        return 0;
}

/* A scalar of an 8-byte value: the common case, made without a call. */
static int read_scalar64(reader *r, cxpc_type type, cxpc_object **ret) {
        uint64_t u;
        int k = get_u64(r, &u);
        if (k < 0)
                return k;
        cxpc_object *o = object_new(type, OBJECT_CLASS_PLAIN);
        if (!o)
                return -ENOMEM;
        o->u64 = u; /* the bits of any of them */
        *ret = o;
        return 0;
}

/* Decoding fills a fresh dictionary and must refuse duplicate keys. Each key sets one bit of a
 * 64-bit set by a cheap fingerprint: a key whose bit no earlier key set cannot be one of them, so
 * the usual entry skips the search; only a fingerprint collision takes the searching path. */
static _always_inline_ uint64_t key_fingerprint_bit(const char *key, size_t len) {
        return UINT64_C(1) << ((len + (uint8_t) key[0] + 3u * (uint8_t) key[len - 1]) & 63u);
}

/* Keys and short strings of at most this many bytes are copied as two words when the body has
 * that many bytes from their start (the bytes past them land in unused room). */
#define DECODE_COPY_WORDS_MAX 16u
_Static_assert(DECODE_COPY_WORDS_MAX < CXPC_DICT_KEY_INLINE, "key words and NUL fit inline");
_Static_assert(DECODE_COPY_WORDS_MAX < CXPC_STRING_INLINE_CACHED, "string words and NUL fit");

static _always_inline_ void copy_two_words(void *dst, const void *src) {
        uint64_t a = load_u64(src), b = load_u64((const uint8_t *) src + 8);
        memcpy(dst, &a, 8);
        memcpy((uint8_t *) dst + 8, &b, 8);
}

/* A string value (after its tag). */
static _always_inline_ int read_string_value(reader *r, cxpc_object **ret) {
        const uint8_t *b;
        size_t len;
        int k = get_blob(r, CXPC_STRING_SIZE_MAX, &b, &len);
        if (k < 0)
                return k;
        if (!utf8_is_valid_short((const char *) b, len))
                return -EBADMSG;
        if (len > CXPC_STRING_SHORT_MAX)
                return cxpc_string_new_checked((const char *) b, len, ret);
        if (r->size - (size_t) (b - r->p) < DECODE_COPY_WORDS_MAX) {
                cxpc_object *o = string_new_short((const char *) b, len);
                if (!o)
                        return -ENOMEM;
                *ret = o;
                return 0;
        }
        /* string_new_short() with the bytes moved as two words */
        cxpc_object *o = object_new(CXPC_TYPE_STRING, OBJECT_CLASS_STRING);
        if (!o)
                return -ENOMEM;
        o->string.ptr = (char *) (o + 1);
        copy_two_words(o->string.ptr, b);
        o->string.ptr[len] = 0;
        o->string.len = len;
        *ret = o;
        return 0;
}

/* The entry for a key (1 <= len, checked) known not to be in the decoded dictionary d yet, with
 * the key written: what dict_put_slot() does without the search. NULL when d needs the general
 * path (index, no inline room left, long key). avail: body bytes from key on. */
static _always_inline_ cxpc_dict_entry *dict_append_fresh(cxpc_object *d, const char *key, size_t len,
                                                          size_t avail) {
        if (d->dict.index || d->dict.n >= d->dict.allocated || d->dict.n >= CXPC_DICT_LINEAR_MAX ||
            len >= CXPC_DICT_KEY_INLINE)
                return NULL;
        cxpc_dict_entry *e = &d->dict.entries[d->dict.n];
        e->heap_key = NULL;
        e->key_len = (uint32_t) len;
        e->hash = 0;
        if (len <= DECODE_COPY_WORDS_MAX && avail >= DECODE_COPY_WORDS_MAX)
                copy_two_words(e->inline_key, key);
        else
                bytes_copy_short(e->inline_key, key, len);
        e->inline_key[len] = 0;
        return e;
}

static int read_container(reader *r, cxpc_type type, unsigned depth, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *c = NULL;
        uint32_t n;
        int k;

        if (depth > CXPC_DEPTH_MAX)
                return -EBADMSG;
        k = get_u32(r, &n);
        if (k < 0)
                return k;
        if (type == CXPC_TYPE_ARRAY) {
                /* Every value takes at least one byte: a count beyond the rest is a lie. */
                if (n > CXPC_ARRAY_ITEMS_MAX || !have(r, n))
                        return -EBADMSG;
                k = cxpc_array_new(&c);
                if (k < 0)
                        return k;
                for (uint32_t i = 0; i < n; i++) {
                        cxpc_object *v = NULL;
                        k = read_value(r, depth + 1, &v);
                        if (k < 0)
                                return k;
                        k = cxpc_array_append_take(c, v);
                        if (k < 0)
                                return k;
                }
        } else {
                /* Key length, one key byte and a tag: at least 6 bytes per entry. */
                if (n > CXPC_DICT_KEYS_MAX || r->size - r->pos < (uint64_t) n * 6)
                        return -EBADMSG;
                c = dict_new();
                if (!c)
                        return -ENOMEM;
                /* The body and the position are kept in locals: stores into the dictionary may
                 * alias the reader, which would otherwise be reloaded after each. */
                const uint8_t *p = r->p;
                size_t size = r->size;
                uint64_t seen = 0; /* key_fingerprint_bit() of the keys so far */
                for (uint32_t i = 0; i < n; i++) {
                        size_t pos = r->pos;
                        if (size - pos < 4)
                                return -EBADMSG;
                        size_t key_len = le32toh(load_u32(p + pos));
                        pos += 4;
                        if (key_len > CXPC_KEY_SIZE_MAX || size - pos < key_len)
                                return -EBADMSG;
                        const char *key = (const char *) p + pos;
                        size_t key_avail = size - pos;
                        pos += key_len;
                        if (key_len == 0 || !utf8_is_valid_short(key, key_len))
                                return -EBADMSG;
                        uint64_t fp = key_fingerprint_bit(key, key_len);
                        bool fresh = !(seen & fp);
                        seen |= fp;
                        cxpc_object *v = NULL;
                        uint8_t tag = pos < size ? p[pos] : UINT8_MAX;
                        if (type_is_inline_scalar(tag)) {
                                /* the usual values: into the entry, no object */
                                pos++;
                                uint64_t bits = 0;
                                if (type_is_scalar64(tag)) {
                                        if (size - pos < 8)
                                                return -EBADMSG;
                                        bits = le64toh(load_u64(p + pos));
                                        pos += 8;
                                } else if (tag == CXPC_TYPE_BOOL) {
                                        if (pos >= size || p[pos] > 1)
                                                return -EBADMSG;
                                        bits = p[pos++];
                                }
                                r->pos = pos;
                                cxpc_dict_entry *e =
                                        fresh ? dict_append_fresh(c, key, key_len, key_avail) : NULL;
                                if (e) {
                                        dict_entry_set_scalar(e, tag, bits);
                                        c->dict.n++;
                                        continue;
                                }
                                k = dict_put_scalar(c, key, key_len, tag, bits, /* replace= */ false);
                                if (k == -EEXIST) /* duplicate key: ambiguous, refuse */
                                        return -EBADMSG;
                                if (k < 0)
                                        return k;
                                continue;
                        }
                        r->pos = pos;
                        if (tag == CXPC_TYPE_STRING) {
                                r->pos++;
                                k = read_string_value(r, &v);
                        } else
                                k = read_value(r, depth + 1, &v);
                        if (k < 0)
                                return k;
                        cxpc_dict_entry *e = fresh ? dict_append_fresh(c, key, key_len, key_avail) : NULL;
                        if (e) {
                                dict_entry_set_object(e, v);
                                c->dict.n++;
                                continue;
                        }
                        k = dict_put_take(c, key, key_len, v, /* replace= */ false);
                        if (k == -EEXIST) /* duplicate key: ambiguous, refuse */
                                return -EBADMSG;
                        if (k < 0)
                                return k;
                }
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static int read_value(reader *r, unsigned depth, cxpc_object **ret) {
        uint8_t tag;
        int k, fd;

        k = get_u8(r, &tag);
        if (k < 0)
                return k;
        switch (tag) {
        case CXPC_TYPE_NULL:
                return cxpc_null_new(ret);
        case CXPC_TYPE_BOOL: {
                uint8_t b;
                k = get_u8(r, &b);
                if (k < 0)
                        return k;
                if (b > 1)
                        return -EBADMSG;
                return cxpc_bool_new(b, ret);
        }
        case CXPC_TYPE_INT64:
        case CXPC_TYPE_DATE:
        case CXPC_TYPE_UINT64:
        case CXPC_TYPE_DOUBLE:
                return read_scalar64(r, tag, ret);
        case CXPC_TYPE_DATA: {
                const uint8_t *b;
                size_t len;
                k = get_blob(r, CXPC_MESSAGE_SIZE_MAX, &b, &len);
                if (k < 0)
                        return k;
                /* Large values point into the memfd mapping instead of being copied. */
                if (r->backing && len >= CODEC_EXTERNAL_MIN)
                        return cxpc_data_new_backed(b, len, r->backing, ret);
                return cxpc_data_new(b, len, ret);
        }
        case CXPC_TYPE_STRING:
                return read_string_value(r, ret);
        case CXPC_TYPE_UUID:
                if (!have(r, 16))
                        return -EBADMSG;
                r->pos += 16;
                return cxpc_uuid_new(r->p + r->pos - 16, ret);
        case CXPC_TYPE_ARRAY:
        case CXPC_TYPE_DICTIONARY:
                return read_container(r, tag, depth, ret);
        case CXPC_TYPE_FD:
                k = take_fd(r, &fd);
                if (k < 0)
                        return k;
                return cxpc_fd_new_take(fd, ret);
        case CXPC_TYPE_ENDPOINT: {
                struct stat st;
                k = take_fd(r, &fd);
                if (k < 0)
                        return k;
                if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                        safe_close(fd);
                        return -EBADMSG;
                }
                return cxpc_endpoint_new_take_fd(fd, ret);
        }
        case CXPC_TYPE_SHMEM: {
                size_t size;
                k = take_sealed_memfd(r, 0, &fd, &size);
                if (k < 0)
                        return k;
                return cxpc_shmem_new_take(fd, size, ret);
        }
        case CXPC_WIRE_TAG_DATA_MEMFD: {
                /* Only large values travel this way: smaller ones would be canonically inline. */
                size_t size;
                k = take_sealed_memfd(r, CXPC_DATA_MEMFD_MIN, &fd, &size);
                if (k < 0)
                        return k;
                return cxpc_data_new_memfd_take(fd, size, ret);
        }
        case CXPC_TYPE_ERROR: {
                const uint8_t *name;
                size_t name_len;
                char *msg = NULL, code_name[64];
                size_t msg_len;
                k = get_blob(r, sizeof(code_name) - 1, &name, &name_len);
                if (k < 0)
                        return k;
                if (!cxpc_utf8_is_valid((const char *) name, name_len))
                        return -EBADMSG;
                memcpy(code_name, name, name_len);
                code_name[name_len] = 0;
                k = read_string(r, CXPC_ERROR_MESSAGE_SIZE_MAX, &msg, &msg_len);
                if (k < 0)
                        return k;
                if (msg_len == 0) { /* "no message" and "" are the same value */
                        free(msg);
                        msg = NULL;
                }
                return cxpc_error_new_take(cxpc_error_code_from_string(code_name), msg, ret);
        }
        default:
                return -EBADMSG;
        }
}

/* Inline: the record decoder's call of it is on the path of every message. */
static _always_inline_ int body_decode(const void *body, size_t size, int *fds, size_t n_fds,
                                       cxpc_backing *backing, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *o = NULL;
        reader r = {
                .p = body,
                .size = size,
                .fds = fds,
                .n_fds = n_fds,
                .backing = backing,
        };
        int k;

        if (n_fds > CXPC_FDS_PER_MESSAGE_MAX) {
                k = -EBADMSG;
                goto fail;
        }
        uint8_t tag;
        k = get_u8(&r, &tag);
        if (k < 0)
                goto fail;
        if (tag != CXPC_TYPE_DICTIONARY) {
                k = -EBADMSG;
                goto fail;
        }
        k = read_container(&r, CXPC_TYPE_DICTIONARY, 1, &o);
        if (k < 0)
                goto fail;
        if (r.pos != r.size) { /* trailing garbage */
                k = -EBADMSG;
                goto fail;
        }
        for (size_t i = 0; i < n_fds; i++)
                if (fds[i] >= 0) { /* an fd no value refers to: the sender is confused */
                        k = -EBADMSG;
                        goto fail;
                }
        *ret = TAKE_PTR(o);
        return 0;

fail:
        for (size_t i = 0; i < n_fds; i++)
                fds[i] = safe_close(fds[i]);
        return k == -ENOMEM ? k : -EBADMSG;
}

int cxpc_body_decode(const void *body, size_t size, int *fds, size_t n_fds, cxpc_object **ret) {
        if ((!body && size > 0) || (!fds && n_fds > 0) || !ret) {
                if (fds)
                        close_many(fds, n_fds);
                return -EINVAL;
        }
        return body_decode(body, size, fds, n_fds, NULL, ret);
}

/* Maps a body memfd after checking that it is sealed and exactly body_size long. Takes fd. */
static int map_body_memfd(int fd, size_t body_size, cxpc_backing **ret) {
        _cleanup_close_ int bfd = fd;
        struct stat st;

        if (body_size == 0 || fstat(bfd, &st) < 0 || !S_ISREG(st.st_mode) ||
            (uint64_t) st.st_size != body_size)
                return -EBADMSG;
        int seals = fcntl(bfd, F_GET_SEALS);
        if (seals < 0 || (seals & CODEC_BODY_SEALS) != CODEC_BODY_SEALS)
                return -EBADMSG;
        void *p = mmap(NULL, body_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, bfd, 0);
        if (p == MAP_FAILED)
                return negative_errno();
        cxpc_backing *b = cxpc_backing_new(p, body_size);
        if (!b) {
                (void) munmap(p, body_size);
                return -ENOMEM;
        }
        *ret = b;
        return 0;
}

int cxpc_record_decode(const void *record, size_t size, int *fds, size_t n_fds, cxpc_object **ret,
                       cxpc_frame_info *ret_info) {
        cxpc_frame_header h;
        cxpc_backing *backing = NULL;
        cxpc_object *o = NULL;
        int k;

        if ((!record && size > 0) || (!fds && n_fds > 0) || !ret) {
                k = -EINVAL;
                goto fail;
        }
        if (size < sizeof(h) || n_fds > CXPC_FDS_PER_MESSAGE_MAX) {
                k = -EBADMSG;
                goto fail;
        }
        memcpy(&h, record, sizeof(h));
        uint8_t flags = h.flags;
        uint64_t id = le64toh(h.id), reply_to = le64toh(h.reply_to);
        uint32_t body_size = le32toh(h.body_size);
        if (le32toh(h.magic) != CXPC_FRAME_MAGIC || h.version != CXPC_PROTOCOL_VERSION ||
            (flags & ~(unsigned) _CXPC_FRAME_FLAGS_ALL) || le16toh(h.n_fds) != n_fds || id == 0 ||
            h.reserved != 0 || body_size > CXPC_MESSAGE_SIZE_MAX ||
            /* a reply names its request; nothing else does; a reply is never itself a request */
            !!(flags & CXPC_FRAME_REPLY) != (reply_to != 0) ||
            ((flags & CXPC_FRAME_REPLY) && (flags & CXPC_FRAME_WANTS_REPLY))) {
                k = -EBADMSG;
                goto fail;
        }

        if (flags & CXPC_FRAME_BODY_MEMFD) {
                if (n_fds == 0 || size != sizeof(h)) {
                        k = -EBADMSG;
                        goto fail;
                }
                int bfd = fds[n_fds - 1];
                fds[n_fds - 1] = -EBADF;
                k = map_body_memfd(bfd, body_size, &backing);
                if (k < 0)
                        goto fail;
                k = body_decode(backing->map, body_size, fds, n_fds - 1, backing, &o);
                cxpc_backing_unref(backing); /* data values hold their own references */
        } else {
                if (body_size > CXPC_INLINE_BODY_MAX || size - sizeof(h) != body_size) {
                        k = -EBADMSG;
                        goto fail;
                }
                k = body_decode((const uint8_t *) record + sizeof(h), body_size, fds, n_fds, NULL, &o);
        }
        if (k < 0)
                return k; /* body_decode() closed the fds */

        cxpc_message_set_received(o, id, flags);
        if (ret_info)
                *ret_info = (cxpc_frame_info){.id = id, .reply_to = reply_to, .flags = flags};
        *ret = o;
        return 0;

fail:
        if (fds)
                for (size_t i = 0; i < n_fds; i++)
                        fds[i] = safe_close(fds[i]);
        return k == -EINVAL || k == -ENOMEM ? k : -EBADMSG;
}

int cxpc_recv_buffer_init(cxpc_recv_buffer *b) {
        if (!b)
                return -EINVAL;
        size_t size = CXPC_FRAME_HEADER_SIZE + CXPC_INLINE_BODY_MAX;
        uint8_t *p = malloc(size);
        if (!p)
                return -ENOMEM;
        *b = (cxpc_recv_buffer){.data = p, .size = size};
        return 0;
}

void cxpc_recv_buffer_done(cxpc_recv_buffer *b) {
        if (!b)
                return;
        free(b->data);
        *b = (cxpc_recv_buffer){};
}

int cxpc_frame_receive(int sockfd, cxpc_recv_buffer *b, cxpc_object **ret_message,
                       cxpc_frame_info *ret_info) {
        if (sockfd < 0 || !b || !b->data || b->size < CXPC_FRAME_HEADER_SIZE + CXPC_INLINE_BODY_MAX ||
            !ret_message)
                return -EINVAL;
        /* One receive path for the library: the connection layer's, which also says why a record
         * was refused. */
        return socket_receive_message(sockfd, b, MSG_DONTWAIT, ret_message, ret_info, NULL);
}
