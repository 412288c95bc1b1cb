/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Socket helpers of the connection layer: record receive with caller-chosen blocking, waiting
 * with a deadline, peer identity. */

#include <poll.h>
#include <sys/socket.h>
#include <stdint.h>
#include <time.h>

#include "codec.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Monotonic time in µs. */
uint64_t now_usec(void);
/* now + timeout, saturating; 0 = default timeout, CXPC_INFINITY = no deadline. */
uint64_t deadline_from_timeout(uint64_t timeout_usec);

/* Why the last receive was refused, for the one-line protocol error log. */
typedef enum RecvError {
        RECV_ERROR_NONE,
        RECV_ERROR_CTRUNC,
        RECV_ERROR_TRUNC,
        RECV_ERROR_FDS,
        RECV_ERROR_DECODE,
        _RECV_ERROR_MAX,
} RecvError;

const char *recv_error_to_string(RecvError e);

/* Like cxpc_frame_receive(), but with the recvmsg() flags chosen by the caller (0 for a blocking
 * receive bounded by SO_RCVTIMEO, MSG_DONTWAIT from the event loop). Returns 1 with a message, 0 at
 * EOF, -EAGAIN, -EBADMSG (protocol error, *ret_error says why; all received fds are closed). */
int socket_receive_message(int fd, cxpc_recv_buffer *b, int flags, cxpc_object **ret_message,
                           cxpc_frame_info *ret_info, RecvError *ret_error);

/* Records one recvmmsg() may return. Each slot holds the largest inline record. */
#define RECV_BATCH_MAX 16u
#define RECV_SLOT_SIZE (CXPC_FRAME_HEADER_SIZE + CXPC_INLINE_BODY_MAX)
/* Room for the most fds a message may carry; anything above is MSG_CTRUNC, a protocol error. */
#define RECV_CMSG_SPACE CMSG_SPACE(sizeof(int) * CXPC_FDS_PER_MESSAGE_MAX)

/* Receive slots of a connection: the event loop drains up to RECV_BATCH_MAX records per syscall
 * into them; slot 0 doubles as the buffer of the synchronous call path. The slots are one
 * anonymous mapping, so untouched ones cost no memory. */
typedef struct RecvBatch {
        uint8_t *data; /* RECV_BATCH_MAX slots of RECV_SLOT_SIZE */
        struct mmsghdr msgs[RECV_BATCH_MAX];
        struct iovec iov[RECV_BATCH_MAX];
        union {
                struct cmsghdr align;
                uint8_t buf[RECV_CMSG_SPACE];
        } control[RECV_BATCH_MAX];
        size_t n, next; /* records received, next one to decode */
} RecvBatch;

int recv_batch_new(RecvBatch **ret);
/* Closes the fds of records not decoded yet. */
RecvBatch *recv_batch_free(RecvBatch *b);
/* The synchronous path's buffer (slot 0, free once the batch's first record was decoded). */
cxpc_recv_buffer recv_batch_buffer(RecvBatch *b);
/* Receives up to max (≤ RECV_BATCH_MAX) queued records: > 0 records, -EAGAIN, or another negative
 * errno. Without wait it never blocks; with wait it blocks for the first record (up to the socket's
 * SO_RCVTIMEO, then -EAGAIN) and takes only what is queued after it. Every record of the previous
 * fill must have been taken or discarded. */
int recv_batch_fill(int fd, RecvBatch *b, size_t max, bool wait);
/* Decodes the next record of the batch: 1 with a message, 0 for EOF, -ENODATA when the batch is
 * used up, -EBADMSG (protocol error, *ret_error says why; the record's fds are closed). */
int recv_batch_next(RecvBatch *b, cxpc_object **ret_message, cxpc_frame_info *ret_info,
                    RecvError *ret_error);
/* Drops the records not taken (their fds are closed). */
void recv_batch_discard(RecvBatch *b);

/* poll() for events until the monotonic deadline: 1 ready, -ETIMEDOUT, other negative errno. */
int socket_wait(int fd, short events, uint64_t deadline);

/* A pidfd for the peer (SO_PEERPIDFD); -EOPNOTSUPP where the kernel lacks it. */
int socket_get_peer_pidfd(int fd, int *ret);

/* Sends one small record carrying exactly one fd (SCM_RIGHTS). */
int socket_send_fd_record(int sockfd, const void *data, size_t size, int fd);
/* Receives a small record that must carry exactly one fd; -EBADMSG otherwise (fds closed). */
int socket_receive_fd_record(int sockfd, void *buf, size_t size, size_t *ret_size, int *ret_fd);
