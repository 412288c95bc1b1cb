/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The binary wire format: encoding objects into frames, and receiving/decoding records. The
 * byte-level layout is documented in docs/protocol.md. */

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

/* Type tags on the wire are the cxpc_type values; they are part of the protocol. */
_Static_assert(CXPC_TYPE_NULL == 0 && CXPC_TYPE_ERROR == 14, "wire type tags are fixed");

/* In a memfd body, data/string payloads at least this big are written straight from the source
 * object (writev) and referenced from the mapping on receive, instead of being copied around. */
#define CODEC_EXTERNAL_MIN (16u * 1024u)
/* Seals a body memfd must carry. */
#define CODEC_BODY_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
/* Room for SCM_RIGHTS plus an SCM_CREDENTIALS the socket may add. */
#define CODEC_CMSG_SPACE \
        (CMSG_SPACE(sizeof(int) * CXPC_FDS_PER_MESSAGE_MAX) + CMSG_SPACE(sizeof(struct ucred)))

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
                if (depth >= CXPC_DEPTH_MAX)
                        return -ELOOP;
                s->size += 4;
                for (size_t i = 0; i < o->array.n; i++) {
                        int r = size_value(o->array.items[i], depth + 1, s);
                        if (r < 0)
                                return r;
                }
                break;
        case CXPC_TYPE_DICTIONARY:
                if (depth >= CXPC_DEPTH_MAX)
                        return -ELOOP;
                s->size += 4;
                for (size_t i = 0; i < o->dict.n; i++) {
                        s->size += 4 + (uint64_t) o->dict.entries[i].key_len;
                        int r = size_value(o->dict.entries[i].value, depth + 1, s);
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
        uint8_t *buf; /* sized exactly by the sizing pass */
        size_t pos;
        int *fds;     /* duplicates, in value order */
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
        w->iov[w->n_iov++] = (struct iovec) { .iov_base = (void *) p, .iov_len = len };
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

static int put_fd(writer *w, int fd) {
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return negative_errno();
        put_u32(w, (uint32_t) w->n_fds);
        w->fds[w->n_fds++] = copy;
        return 0;
}

static int write_value(writer *w, const cxpc_object *o) {
        int r;

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
                put_u32(w, (uint32_t) o->data.size);
                return put_bytes(w, o->data.ptr, o->data.size);
        case CXPC_TYPE_STRING:
                put_u32(w, (uint32_t) o->string.len);
                return put_bytes(w, o->string.ptr, o->string.len);
        case CXPC_TYPE_UUID:
                memcpy(w->buf + w->pos, o->uuid, 16);
                w->pos += 16;
                return 0;
        case CXPC_TYPE_ARRAY:
                put_u32(w, (uint32_t) o->array.n);
                for (size_t i = 0; i < o->array.n; i++) {
                        r = write_value(w, o->array.items[i]);
                        if (r < 0)
                                return r;
                }
                return 0;
        case CXPC_TYPE_DICTIONARY:
                put_u32(w, (uint32_t) o->dict.n);
                for (size_t i = 0; i < o->dict.n; i++) {
                        const cxpc_dict_entry *e = &o->dict.entries[i];
                        put_u32(w, (uint32_t) e->key_len);
                        memcpy(w->buf + w->pos, e->key, e->key_len);
                        w->pos += e->key_len;
                        r = write_value(w, e->value);
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
static int body_to_memfd(writer *w, size_t body_size, int *ret_fd) {
        int r;

        r = push_iov(w, w->buf + w->seg_start, w->pos - w->seg_start); /* the last segment */
        if (r < 0)
                return r;

        _cleanup_close_ int fd = memfd_create("cxpc-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        if (ftruncate(fd, (off_t) body_size) < 0) /* one allocation of the size up front */
                return negative_errno();
        r = write_all_iov(fd, w->iov, w->n_iov);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, CODEC_BODY_SEALS) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

_public_ cxpc_frame *cxpc_frame_free(cxpc_frame *f) {
        if (!f)
                return NULL;
        close_many(f->fds, f->n_fds);
        /* body and fds live in the same allocation as the frame */
        free(f);
        return NULL;
}

int cxpc_frame_encode(const cxpc_object *message, uint64_t id, uint64_t reply_to, unsigned flags,
                      cxpc_frame **ret) {
        size_state s = {};
        int r;

        if (!message || message->type != CXPC_TYPE_DICTIONARY || !ret)
                return -EINVAL;
        if (flags & ~(unsigned) _CXPC_FRAME_FLAGS_ALL)
                return -EINVAL;

        r = size_value(message, 1, &s);
        if (r < 0)
                return r;
        bool memfd = s.size > CXPC_INLINE_BODY_MAX;
        size_t n_fds_total = s.n_fds + (memfd ? 1 : 0);
        if (n_fds_total > CXPC_FDS_PER_MESSAGE_MAX)
                return -E2BIG;

        /* One allocation: frame, fd array, body buffer (for memfd bodies: everything except the
         * large payloads, which go straight from the source objects into the memfd). */
        size_t buf_size = (size_t) (memfd ? s.size - s.external : s.size);
        size_t fds_off = sizeof(cxpc_frame), body_off = fds_off + n_fds_total * sizeof(int);
        cxpc_frame *f = malloc(body_off + buf_size);
        if (!f)
                return -ENOMEM;
        *f = (cxpc_frame) {
                .fds = (int *) ((uint8_t *) f + fds_off),
        };
        _cleanup_(cxpc_frame_freep) cxpc_frame *frame = f;

        writer w = {
                .buf = (uint8_t *) f + body_off,
                .fds = f->fds,
                .external = memfd,
        };
        r = write_value(&w, message);
        f->n_fds = w.n_fds; /* the frame owns the duplicates made so far, also on failure */
        if (r < 0) {
                free(w.iov);
                return r;
        }

        if (memfd) {
                int bfd = -EBADF;
                r = body_to_memfd(&w, (size_t) s.size, &bfd);
                free(w.iov);
                if (r < 0)
                        return r;
                f->fds[f->n_fds++] = bfd;
                flags |= CXPC_FRAME_BODY_MEMFD;
                w.pos = 0; /* nothing inline */
        }

        f->header = (cxpc_frame_header) {
                .magic = htole32(CXPC_FRAME_MAGIC),
                .version = CXPC_PROTOCOL_VERSION,
                .flags = (uint8_t) flags,
                .n_fds = htole16((uint16_t) f->n_fds),
                .id = htole64(id),
                .reply_to = htole64(reply_to),
                .body_size = htole32((uint32_t) s.size),
        };
        f->body = memfd ? NULL : w.buf;
        f->iov[0] = (struct iovec) { .iov_base = &f->header, .iov_len = sizeof(f->header) };
        f->iov[1] = (struct iovec) { .iov_base = w.buf, .iov_len = w.pos };
        f->sent_size = sizeof(f->header) + (size_t) s.size;
        *ret = TAKE_PTR(frame);
        return 0;
}
