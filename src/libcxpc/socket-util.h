/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Socket helpers of the connection layer: record receive with caller-chosen blocking, waiting
 * with a deadline, peer identity. */

#include <poll.h>
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

/* poll() for events until the monotonic deadline: 1 ready, -ETIMEDOUT, other negative errno. */
int socket_wait(int fd, short events, uint64_t deadline);

/* A pidfd for the peer (SO_PEERPIDFD); -EOPNOTSUPP where the kernel lacks it. */
int socket_get_peer_pidfd(int fd, int *ret);

/* Sends one small record carrying exactly one fd (SCM_RIGHTS). */
int socket_send_fd_record(int sockfd, const void *data, size_t size, int fd);
/* Receives a small record that must carry exactly one fd; -EBADMSG otherwise (fds closed). */
int socket_receive_fd_record(int sockfd, void *buf, size_t size, size_t *ret_size, int *ret_fd);
