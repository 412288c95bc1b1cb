/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "codec.h"
#include "macro.h"
#include "socket-util.h"

uint64_t now_usec(void) {
        struct timespec ts;
        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

uint64_t deadline_from_timeout(uint64_t timeout_usec) {
        if (timeout_usec == 0)
                timeout_usec = CXPC_DEFAULT_TIMEOUT_USEC;
        if (timeout_usec == CXPC_INFINITY)
                return CXPC_INFINITY;
        uint64_t n = now_usec();
        return timeout_usec >= CXPC_INFINITY - n ? CXPC_INFINITY : n + timeout_usec;
}

static const char *const recv_error_table[_RECV_ERROR_MAX] = {
        [RECV_ERROR_NONE] = "no error",
        [RECV_ERROR_CTRUNC] = "control data truncated (too many fds)",
        [RECV_ERROR_TRUNC] = "record larger than the receive buffer",
        [RECV_ERROR_FDS] = "unexpected ancillary data",
        [RECV_ERROR_DECODE] = "malformed frame (header or body)",
};

const char *recv_error_to_string(RecvError e) {
        return e >= 0 && e < _RECV_ERROR_MAX ? recv_error_table[e] : NULL;
}

static size_t collect_fds(struct msghdr *mh, int *fds, size_t max, bool *ret_surplus) {
        size_t n_fds = 0;
        bool surplus = false;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                const uint8_t *data = CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, data + i * sizeof(int), sizeof(int));
                        if (n_fds < max)
                                fds[n_fds++] = fd;
                        else {
                                surplus = true;
                                (void) safe_close(fd);
                        }
                }
        }
        *ret_surplus = surplus;
        return n_fds;
}

/* Checks a received record (flags, fds) and decodes it: 1 with a message, 0 at EOF, -EBADMSG
 * with *ret_error set; the fds are consumed in every case. */
static int record_finish(struct msghdr *mh, const void *data, size_t n, cxpc_object **ret_message,
                         cxpc_frame_info *ret_info, RecvError *ret_error) {
        int fds[CXPC_FDS_PER_MESSAGE_MAX];
        RecvError why = RECV_ERROR_NONE;

        bool surplus = false;
        /* Most records carry no fds: then there is no control message to walk. */
        size_t n_fds = mh->msg_controllen >= sizeof(struct cmsghdr)
                               ? collect_fds(mh, fds, ELEMENTSOF(fds), &surplus)
                               : 0;
        if (n == 0 && n_fds == 0)
                return 0; /* EOF: SEQPACKET peers never send empty records */

        if (mh->msg_flags & MSG_CTRUNC)
                why = RECV_ERROR_CTRUNC;
        else if (mh->msg_flags & MSG_TRUNC)
                why = RECV_ERROR_TRUNC;
        else if (surplus)
                why = RECV_ERROR_FDS;
        if (why != RECV_ERROR_NONE) {
                close_many(fds, n_fds);
                if (ret_error)
                        *ret_error = why;
                return -EBADMSG;
        }

        int r = cxpc_record_decode(data, n, fds, n_fds, ret_message, ret_info);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                if (ret_error)
                        *ret_error = RECV_ERROR_DECODE;
                return -EBADMSG;
        }
        return 1;
}

int socket_receive_message(int fd, cxpc_recv_buffer *b, int flags, cxpc_object **ret_message,
                           cxpc_frame_info *ret_info, RecvError *ret_error) {
        union {
                struct cmsghdr align;
                uint8_t buf[RECV_CMSG_SPACE];
        } control;
        ssize_t n;

        assert(fd >= 0 && b && b->data && ret_message);

        struct iovec iov = {.iov_base = b->data, .iov_len = b->size};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        do
                n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();

        return record_finish(&mh, b->data, (size_t) n, ret_message, ret_info, ret_error);
}

/* ---- batched receive ---- */

int recv_batch_new(RecvBatch **ret) {
        RecvBatch *b = malloc(sizeof(*b));
        if (!b)
                return -ENOMEM;
        void *p = mmap(NULL, (size_t) RECV_BATCH_MAX * RECV_SLOT_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
                free(b);
                return -ENOMEM;
        }
        b->data = p;
        b->n = b->next = 0;
        for (size_t i = 0; i < RECV_BATCH_MAX; i++) {
                b->iov[i] =
                        (struct iovec){.iov_base = b->data + i * RECV_SLOT_SIZE, .iov_len = RECV_SLOT_SIZE};
                b->msgs[i] = (struct mmsghdr){
                        .msg_hdr =
                                {
                                        .msg_iov = &b->iov[i],
                                        .msg_iovlen = 1,
                                        .msg_control = &b->control[i],
                                        .msg_controllen = sizeof(b->control[i]),
                                },
                };
        }
        *ret = b;
        return 0;
}

RecvBatch *recv_batch_free(RecvBatch *b) {
        if (!b)
                return NULL;
        recv_batch_discard(b);
        (void) munmap(b->data, (size_t) RECV_BATCH_MAX * RECV_SLOT_SIZE);
        free(b);
        return NULL;
}

cxpc_recv_buffer recv_batch_buffer(RecvBatch *b) {
        /* Handlers run after their record was decoded: slot 0 is free whenever one runs. */
        assert(b && (b->next > 0 || b->n == 0));
        return (cxpc_recv_buffer){.data = b->data, .size = RECV_SLOT_SIZE};
}

int recv_batch_fill(int fd, RecvBatch *b, size_t max, bool wait) {
        int n;

        assert(fd >= 0 && b && b->next == b->n);
        assert(max > 0 && max <= RECV_BATCH_MAX);

        /* The kernel wrote back the control length of the slots it filled last time. */
        for (size_t i = 0; i < b->n; i++)
                b->msgs[i].msg_hdr.msg_controllen = sizeof(b->control[i]);
        b->n = b->next = 0;
        do
                if (max == 1) { /* recvmsg() is a little cheaper than a one-slot recvmmsg() */
                        ssize_t k = recvmsg(fd, &b->msgs[0].msg_hdr,
                                            (wait ? 0 : MSG_DONTWAIT) | MSG_CMSG_CLOEXEC);
                        if (k >= 0)
                                b->msgs[0].msg_len = (unsigned) k;
                        n = k < 0 ? -1 : 1;
                } else /* MSG_WAITFORONE: block for the first record only */
                        n = recvmmsg(fd, b->msgs, (unsigned) max,
                                     (wait ? MSG_WAITFORONE : MSG_DONTWAIT) | MSG_CMSG_CLOEXEC, NULL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();
        if (n == 0)
                return -EAGAIN;
        b->n = (size_t) n;
        return n;
}

int recv_batch_next(RecvBatch *b, cxpc_object **ret_message, cxpc_frame_info *ret_info,
                    RecvError *ret_error) {
        assert(b && ret_message);

        if (b->next >= b->n)
                return -ENODATA;
        size_t i = b->next++;
        int r = record_finish(&b->msgs[i].msg_hdr, b->data + i * RECV_SLOT_SIZE, b->msgs[i].msg_len,
                              ret_message, ret_info, ret_error);
        if (r == 0)
                recv_batch_discard(b); /* nothing follows an EOF but more EOFs */
        return r;
}

static void recv_batch_discard_rest(RecvBatch *b) {
        int fds[CXPC_FDS_PER_MESSAGE_MAX];
        bool surplus;

        for (; b->next < b->n; b->next++)
                close_many(fds, collect_fds(&b->msgs[b->next].msg_hdr, fds, ELEMENTSOF(fds), &surplus));
}

void recv_batch_discard(RecvBatch *b) {
        /* Called after every batch, which was usually consumed: skip the fd buffer's setup. */
        if (b->next < b->n)
                recv_batch_discard_rest(b);
}

int socket_wait(int fd, short events, uint64_t deadline) {
        for (;;) {
                int timeout_ms = -1;
                if (deadline != CXPC_INFINITY) {
                        uint64_t n = now_usec();
                        if (n >= deadline)
                                return -ETIMEDOUT;
                        /* round up, so that we never spin on a sub-millisecond remainder */
                        uint64_t ms = (deadline - n + USEC_PER_MSEC - 1) / USEC_PER_MSEC;
                        timeout_ms = ms > INT32_MAX ? INT32_MAX : (int) ms;
                }
                struct pollfd p = {.fd = fd, .events = events};
                int k = poll(&p, 1, timeout_ms);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k > 0)
                        return 1;
        }
}

int socket_get_peer_pidfd(int fd, int *ret) {
        int pidfd = -EBADF;
        socklen_t len = sizeof(pidfd);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
                if (errno == ENOPROTOOPT || errno == EINVAL)
                        return -EOPNOTSUPP;
                return negative_errno();
        }
        if (pidfd < 0 || len != sizeof(pidfd))
                return -EOPNOTSUPP;
        *ret = pidfd;
        return 0;
}

int socket_send_fd_record(int sockfd, const void *data, size_t size, int fd) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = {.iov_base = (void *) data, .iov_len = size};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));

        for (;;) {
                ssize_t n = sendmsg(sockfd, &mh, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                return (size_t) n == size ? 0 : -EIO;
        }
}

int socket_receive_fd_record(int sockfd, void *buf, size_t size, size_t *ret_size, int *ret_fd) {
        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control;
        int fds[1];
        struct iovec iov = {.iov_base = buf, .iov_len = size};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        ssize_t n;

        do
                n = recvmsg(sockfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : negative_errno();

        bool surplus;
        size_t n_fds = collect_fds(&mh, fds, ELEMENTSOF(fds), &surplus);
        if (n == 0 && n_fds == 0)
                return 0;
        if (surplus || n_fds != 1 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) {
                close_many(fds, n_fds);
                return -EBADMSG;
        }
        *ret_size = (size_t) n;
        *ret_fd = fds[0];
        return 1;
}
