/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The binary wire format (docs/protocol.md): one SOCK_SEQPACKET record per frame, a fixed
 * 32-byte header followed by a TLV body (inline) or by nothing (body in a sealed memfd that is
 * the last fd of the record). fd, endpoint, shmem and large data values refer to the record's fds
 * by index. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "cxpc/cxpc.h"
#include "macro.h"

#define CXPC_FRAME_MAGIC 0x43505843u /* the bytes "CXPC" when stored little endian */

/* Wire tag of a data value of at least CXPC_DATA_MEMFD_MIN bytes that travels as its own sealed
 * memfd (u32 fd index + u64 size); it decodes as CXPC_TYPE_DATA. Tags 0..14 are the cxpc_type
 * values. */
#define CXPC_WIRE_TAG_DATA_MEMFD 15u

enum {
        CXPC_FRAME_WANTS_REPLY = 1u << 0, /* a request; the sender waits for a reply */
        CXPC_FRAME_REPLY = 1u << 1,       /* reply_to names the request */
        CXPC_FRAME_BODY_MEMFD = 1u << 2,  /* body is in the last fd, a sealed memfd */
        _CXPC_FRAME_FLAGS_ALL = (1u << 3) - 1,
};

/* On the wire, little endian, packed, 32 bytes. */
typedef struct cxpc_frame_header {
        uint32_t magic;
        uint8_t version;
        uint8_t flags;
        uint16_t n_fds;     /* fds in SCM_RIGHTS, including the body memfd */
        uint64_t id;        /* sender's message id, never 0 */
        uint64_t reply_to;  /* id of the request this replies to, or 0 */
        uint32_t body_size; /* bytes of body (inline or in the memfd) */
        uint32_t reserved;  /* must be 0 */
} __attribute__((packed)) cxpc_frame_header;

_Static_assert(sizeof(cxpc_frame_header) == CXPC_FRAME_HEADER_SIZE, "frame header size");

/* An encoded frame ready to send. Owns its record buffer and its fds (duplicates). The record is
 * the header followed by the inline body, contiguous, so that a frame without fds goes out with
 * a plain send(). */
typedef struct cxpc_frame {
        cxpc_frame_header header; /* a copy of the record's header, for inspection */
        uint8_t *record;          /* header + inline body */
        size_t record_size;
        void *body;       /* inline body (record + header size), or NULL for a memfd body */
        size_t body_size; /* bytes of inline body (0 with a memfd body) */
        int *fds;
        size_t n_fds;
        size_t sent_size;              /* accounting for the outbound queue */
        struct cxpc_frame *queue_next; /* a connection's outbound queue */
        bool small;                    /* allocated as CXPC_FRAME_SMALL_ALLOC bytes (cached) */
} cxpc_frame;

/* Frames that fit this allocation (most requests and replies) come from a per-thread cache. */
#define CXPC_FRAME_SMALL_ALLOC 512u

/* Encodes a message (a dictionary) into a frame. Bodies above CXPC_INLINE_BODY_MAX are written
 * into a sealed memfd appended to the fds. Errors: -EINVAL (not a dictionary), -E2BIG (over
 * CXPC_MESSAGE_SIZE_MAX / too many fds), -ELOOP (deeper than CXPC_DEPTH_MAX), -ENOMEM. */
int cxpc_frame_encode(const cxpc_object *message, uint64_t id, uint64_t reply_to, unsigned flags,
                      cxpc_frame **ret);
cxpc_frame *cxpc_frame_free(cxpc_frame *f);
static inline void cxpc_frame_freep(cxpc_frame **f) {
        if (*f)
                *f = cxpc_frame_free(*f);
}

/* Sends one frame (send(), or sendmsg() with SCM_RIGHTS; MSG_DONTWAIT|MSG_NOSIGNAL). -EAGAIN when
 * the socket is full (nothing sent: SEQPACKET records are atomic). */
int cxpc_frame_send(int sockfd, const cxpc_frame *f);

/* Frames sent by one cxpc_frames_send() call at most. */
#define CXPC_SEND_BATCH_MAX 16u

/* Sends up to CXPC_SEND_BATCH_MAX frames in order with one syscall (sendmmsg() when more than
 * one). Returns how many went out (> 0), or a negative errno when none did (-EAGAIN: full). */
int cxpc_frames_send(int sockfd, cxpc_frame *const *frames, size_t n);

/* Received frame metadata. */
typedef struct cxpc_frame_info {
        uint64_t id;
        uint64_t reply_to;
        unsigned flags;
} cxpc_frame_info;

/* Receive buffer owned by a connection: large enough for header + CXPC_INLINE_BODY_MAX. */
typedef struct cxpc_recv_buffer {
        uint8_t *data;
        size_t size;
} cxpc_recv_buffer;

int cxpc_recv_buffer_init(cxpc_recv_buffer *b);
void cxpc_recv_buffer_done(cxpc_recv_buffer *b);

/* Receives and decodes one record (recvmsg, MSG_DONTWAIT|MSG_CMSG_CLOEXEC).
 * Returns 1 with a message, -EAGAIN when nothing is queued, 0 at EOF (peer closed),
 * -EBADMSG for any protocol error (bad magic/version/flags/sizes, MSG_CTRUNC, MSG_TRUNC,
 * malformed body, bad seals, unreferenced or surplus fds); every received fd is closed on
 * failure. Other negative errnos come from the socket. */
int cxpc_frame_receive(int sockfd, cxpc_recv_buffer *b, cxpc_object **ret_message,
                       cxpc_frame_info *ret_info);

/* Decodes a body (what follows the header) with the record's fds; takes ownership of all fds
 * (closes them on failure, and closes any that no value references). Exposed for the fuzzer. */
int cxpc_body_decode(const void *body, size_t size, int *fds, size_t n_fds, cxpc_object **ret);
/* Decodes header + body of an inline record (fuzzer entry). */
int cxpc_record_decode(const void *record, size_t size, int *fds, size_t n_fds, cxpc_object **ret,
                       cxpc_frame_info *ret_info);
