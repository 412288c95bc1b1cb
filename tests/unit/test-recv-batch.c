/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The batched receive of the connection layer (socket-util.c): records drained from a real
 * socketpair by one recvmmsg(), decoded one by one, and the fds of records never taken closed. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fd-count.h"
#include "codec.h"
#include "cxpc/cxpc.h"
#include "socket-util.h"

/* Sends a request with an int and, when with_fd, a memfd. */
static void send_request(int fd, uint64_t id, int64_t value, bool with_fd) {
        cxpc_object *m = NULL;
        cxpc_frame *f = NULL;
        assert_int_equal(cxpc_message_new_request("test", &m), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "value", value), 0);
        if (with_fd) {
                int mfd = memfd_create("recv-batch", MFD_CLOEXEC);
                assert_true(mfd >= 0);
                assert_int_equal(cxpc_dict_set_fd(m, "fd", mfd), 0);
                close(mfd);
        }
        assert_int_equal(cxpc_frame_encode(m, id, 0, 0, &f), 0);
        assert_int_equal(cxpc_frame_send(fd, f), 0);
        cxpc_frame_free(f);
        cxpc_object_unref(m);
}

static void test_batch_order_and_limit(void **state) {
        int sv[2];
        RecvBatch *b = NULL;
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(recv_batch_new(&b), 0);
        unsigned before = (unsigned) count_open_fds(0);

        assert_int_equal(recv_batch_fill(sv[1], b, RECV_BATCH_MAX, false), -EAGAIN);
        for (int64_t i = 0; i < (int64_t) RECV_BATCH_MAX + 5; i++)
                send_request(sv[0], (uint64_t) i + 1, i, i % 3 == 0);

        /* One fill takes at most what was asked for, in order. */
        assert_int_equal(recv_batch_fill(sv[1], b, 4, false), 4);
        int64_t expect = 0;
        for (;;) {
                cxpc_object *m = NULL;
                cxpc_frame_info info;
                RecvError why = RECV_ERROR_NONE;
                int r = recv_batch_next(b, &m, &info, &why);
                if (r == -ENODATA)
                        break;
                assert_int_equal(r, 1);
                int64_t v = -1;
                assert_int_equal(cxpc_dict_get_int64(m, "value", &v), 0);
                assert_int_equal(v, expect);
                assert_int_equal(info.id, (uint64_t) expect + 1);
                expect++;
                cxpc_object_unref(m);
        }
        assert_int_equal(expect, 4);
        assert_int_equal(recv_batch_fill(sv[1], b, RECV_BATCH_MAX, false), (int) RECV_BATCH_MAX);
        /* Records not taken: discarding closes their fds. */
        recv_batch_discard(b);
        assert_int_equal(recv_batch_fill(sv[1], b, RECV_BATCH_MAX, false), 1);
        recv_batch_discard(b);
        assert_int_equal((unsigned) count_open_fds(0), before);

        /* The synchronous path's slot 0 is usable between batches. */
        cxpc_recv_buffer buf = recv_batch_buffer(b);
        assert_non_null(buf.data);
        assert_true(buf.size >= CXPC_FRAME_HEADER_SIZE + CXPC_INLINE_BODY_MAX);

        close(sv[0]);
        /* EOF after the peer closed. */
        assert_int_equal(recv_batch_fill(sv[1], b, RECV_BATCH_MAX, false) > 0, 1);
        cxpc_object *m = NULL;
        cxpc_frame_info info;
        assert_int_equal(recv_batch_next(b, &m, &info, NULL), 0);
        assert_int_equal(recv_batch_next(b, &m, &info, NULL), -ENODATA);
        close(sv[1]);
        recv_batch_free(b);
}

/* A malformed record in the middle of a batch: the ones before it decode, it is refused with a
 * reason, and the fds of the records behind it are closed when the batch is dropped. */
/* A waiting fill blocks for the first record only: it returns what is queued by then, and
 * -EAGAIN once SO_RCVTIMEO runs out with nothing queued. */
static void test_batch_wait(void **state) {
        int sv[2];
        RecvBatch *b = NULL;
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(recv_batch_new(&b), 0);
        struct timeval tv = {.tv_usec = 50 * 1000};
        assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);

        for (unsigned want = 1; want <= RECV_BATCH_MAX; want += RECV_BATCH_MAX - 1) {
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                assert_int_equal(recv_batch_fill(sv[1], b, want, true), -EAGAIN);
                clock_gettime(CLOCK_MONOTONIC, &t1);
                int64_t waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
                assert_true(waited_ms >= 40); /* it did wait (the kernel rounds to jiffies) */
        }

        for (int64_t i = 0; i < 3; i++)
                send_request(sv[0], (uint64_t) i + 1, i, false);
        /* Three are queued: a waiting fill of up to 16 takes the three without waiting for more. */
        assert_int_equal(recv_batch_fill(sv[1], b, RECV_BATCH_MAX, true), 3);
        for (int64_t i = 0; i < 3; i++) {
                cxpc_object *m = NULL;
                cxpc_frame_info info;
                RecvError why = RECV_ERROR_NONE;
                assert_int_equal(recv_batch_next(b, &m, &info, &why), 1);
                assert_int_equal(info.id, (uint64_t) i + 1);
                cxpc_object_unref(m);
        }
        recv_batch_discard(b);

        /* EOF while waiting: one empty record. */
        close(sv[0]);
        assert_int_equal(recv_batch_fill(sv[1], b, 1, true), 1);
        cxpc_object *m = NULL;
        cxpc_frame_info info;
        RecvError why = RECV_ERROR_NONE;
        assert_int_equal(recv_batch_next(b, &m, &info, &why), 0);
        recv_batch_free(b);
        close(sv[1]);
}

static void test_batch_bad_record(void **state) {
        int sv[2];
        RecvBatch *b = NULL;
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(recv_batch_new(&b), 0);
        unsigned before = (unsigned) count_open_fds(0);

        send_request(sv[0], 1, 1, true);
        uint8_t garbage[40];
        for (size_t i = 0; i < sizeof(garbage); i++)
                garbage[i] = (uint8_t) (i * 31 + 7);
        assert_int_equal(send(sv[0], garbage, sizeof(garbage), 0), (ssize_t) sizeof(garbage));
        for (uint64_t i = 0; i < 5; i++)
                send_request(sv[0], 10 + i, 2, true);
        assert_int_equal((unsigned) count_open_fds(0), before); /* in flight: in no fd table */

        assert_int_equal(recv_batch_fill(sv[1], b, RECV_BATCH_MAX, false), 7);
        assert_int_equal((unsigned) count_open_fds(0), before + 6); /* received: installed in ours */
        cxpc_object *m = NULL;
        cxpc_frame_info info;
        RecvError why = RECV_ERROR_NONE;
        assert_int_equal(recv_batch_next(b, &m, &info, &why), 1);
        cxpc_object_unref(m);
        m = NULL;
        assert_int_equal(recv_batch_next(b, &m, &info, &why), -EBADMSG);
        assert_int_equal(why, RECV_ERROR_DECODE);
        assert_null(m);
        assert_int_equal((unsigned) count_open_fds(0), before + 5);
        recv_batch_free(b); /* drops the five records behind, with their fds */
        close(sv[0]);
        close(sv[1]);
        assert_int_equal((unsigned) count_open_fds(0), before - 2);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_batch_order_and_limit),
                cmocka_unit_test(test_batch_bad_record),
                cmocka_unit_test(test_batch_wait),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
