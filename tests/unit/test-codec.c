/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Codec round trips over real SOCK_SEQPACKET socket pairs, limits and malformed input. */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fd-count.h"
#include "codec.h"
#include "macro.h"
#include "object-internal.h"

static void make_pair(int sv[2]) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        /* room for 64 MiB bodies is not needed: big bodies travel as memfds */
}

/* encode → sendmsg → recvmsg → decode */
static cxpc_object *roundtrip(const cxpc_object *m, unsigned flags, cxpc_frame_info *ret_info) {
        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        cxpc_recv_buffer b;
        cxpc_object *out = NULL;
        int sv[2];

        make_pair(sv);
        assert_int_equal(cxpc_frame_encode(m, 7, flags & CXPC_FRAME_REPLY ? 3 : 0, flags, &f), 0);
        assert_int_equal(cxpc_frame_send(sv[0], f), 0);
        assert_int_equal(cxpc_recv_buffer_init(&b), 0);
        assert_int_equal(cxpc_frame_receive(sv[1], &b, &out, ret_info), 1);
        cxpc_recv_buffer_done(&b);
        close(sv[0]);
        close(sv[1]);
        return out;
}

static cxpc_object *make_all_types(void) {
        static const uint8_t u[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
        cxpc_object *m, *a, *v;

        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_dict_set_null(m, "null"), 0);
        assert_int_equal(cxpc_dict_set_bool(m, "true", true), 0);
        assert_int_equal(cxpc_dict_set_bool(m, "false", false), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "i", INT64_MIN), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "zero", 0), 0);
        assert_int_equal(cxpc_dict_set_uint64(m, "u", UINT64_MAX), 0);
        assert_int_equal(cxpc_dict_set_double(m, "d", -1.5e300), 0);
        assert_int_equal(cxpc_dict_set_date(m, "date", 1700000000123456789LL), 0);
        assert_int_equal(cxpc_dict_set_data(m, "data", "\0\1\2", 3), 0);
        assert_int_equal(cxpc_dict_set_data(m, "empty", NULL, 0), 0);
        assert_int_equal(cxpc_dict_set_string(m, "s", "häll€ 𝄞"), 0);
        assert_int_equal(cxpc_dict_set_string(m, "es", ""), 0);
        assert_int_equal(cxpc_dict_set_uuid(m, "uuid", u), 0);
        assert_int_equal(cxpc_dict_set_fd(m, "fd", STDERR_FILENO), 0);
        assert_int_equal(cxpc_shmem_new("shared", 6, &v), 0);
        assert_int_equal(cxpc_dict_set(m, "shm", v), 0);
        cxpc_object_unref(v);
        assert_int_equal(cxpc_error_new(CXPC_ERROR_NOT_FOUND, "no such thing", &v), 0);
        assert_int_equal(cxpc_dict_set(m, "err", v), 0);
        cxpc_object_unref(v);
        assert_int_equal(cxpc_error_new(CXPC_ERROR_TIMEOUT, NULL, &v), 0);
        assert_int_equal(cxpc_dict_set(m, "err2", v), 0);
        cxpc_object_unref(v);
        assert_int_equal(cxpc_array_new(&a), 0);
        assert_int_equal(cxpc_int64_new(42, &v), 0);
        assert_int_equal(cxpc_array_append(a, v), 0);
        cxpc_object_unref(v);
        assert_int_equal(cxpc_dict_new(&v), 0);
        assert_int_equal(cxpc_array_append(a, v), 0);
        cxpc_object_unref(v);
        assert_int_equal(cxpc_dict_set(m, "arr", a), 0);
        cxpc_object_unref(a);
        return m;
}

static void test_all_types(void **state) {
        unsigned before = (unsigned) count_open_fds(0);
        cxpc_object *m = make_all_types();
        cxpc_frame_info info;
        cxpc_object *out = roundtrip(m, CXPC_FRAME_WANTS_REPLY, &info);
        assert_true(cxpc_object_equal(m, out));
        assert_int_equal(info.id, 7);
        assert_int_equal(info.reply_to, 0);
        assert_true(cxpc_message_expects_reply(out));
        assert_false(cxpc_message_expects_reply(m));

        /* absent vs zero vs wrong type */
        int64_t i = 1;
        assert_int_equal(cxpc_dict_get_int64(out, "zero", &i), 0);
        assert_int_equal(i, 0);
        assert_int_equal(cxpc_dict_get_int64(out, "nope", &i), -ENOENT);
        assert_int_equal(cxpc_dict_get_int64(out, "s", &i), -EMEDIUMTYPE);
        const void *p = (const void *) 1;
        size_t sz = 1;
        assert_int_equal(cxpc_dict_get_data(out, "empty", &p, &sz), 0);
        assert_int_equal(sz, 0);

        const void *sp;
        assert_int_equal(cxpc_shmem_map(cxpc_dict_get(out, "shm"), &sp, &sz), 0);
        assert_int_equal(sz, 6);
        assert_memory_equal(sp, "shared", 6);

        const char *msg;
        cxpc_error_code code;
        assert_int_equal(cxpc_error_get_message(cxpc_dict_get(out, "err2"), &msg), 0);
        assert_string_equal(msg, "");
        assert_int_equal(cxpc_error_get_code(cxpc_dict_get(out, "err"), &code), 0);
        assert_int_equal(code, CXPC_ERROR_NOT_FOUND);

        cxpc_object_unref(out);
        cxpc_object_unref(m);
        assert_int_equal((unsigned) count_open_fds(0), before);
}

static cxpc_object *nest(unsigned depth) {
        cxpc_object *top, *cur;
        assert_int_equal(cxpc_dict_new(&top), 0);
        cur = top;
        for (unsigned i = 1; i < depth; i++) {
                cxpc_object *a;
                assert_int_equal(cxpc_array_new(&a), 0);
                if (cur->type == CXPC_TYPE_ARRAY)
                        assert_int_equal(cxpc_array_append(cur, a), 0);
                else
                        assert_int_equal(cxpc_dict_set(cur, "x", a), 0);
                cxpc_object_unref(a);
                cur = a;
        }
        return top;
}

static void test_limits(void **state) {
        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        cxpc_object *m = nest(CXPC_DEPTH_MAX);
        cxpc_object *out = roundtrip(m, 0, NULL);
        assert_true(cxpc_object_equal(m, out));
        cxpc_object_unref(out);
        cxpc_object_unref(m);

        m = nest(CXPC_DEPTH_MAX + 1);
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), -ELOOP);
        cxpc_object_unref(m);

        unsigned before = (unsigned) count_open_fds(0);
        assert_int_equal(cxpc_dict_new(&m), 0);
        cxpc_object *a;
        assert_int_equal(cxpc_array_new(&a), 0);
        for (unsigned i = 0; i < CXPC_FDS_PER_MESSAGE_MAX + 1; i++) {
                cxpc_object *v;
                assert_int_equal(cxpc_fd_new(STDERR_FILENO, &v), 0);
                assert_int_equal(cxpc_array_append(a, v), 0);
                cxpc_object_unref(v);
        }
        assert_int_equal(cxpc_dict_set(m, "fds", a), 0);
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), -E2BIG);
        cxpc_object_unref(a);
        cxpc_object_unref(m);
        assert_int_equal((unsigned) count_open_fds(0), before);

        /* oversize */
        assert_int_equal(cxpc_dict_new(&m), 0);
        void *big = mmap(NULL, CXPC_MESSAGE_SIZE_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(big != MAP_FAILED);
        cxpc_object *d;
        assert_int_equal(cxpc_data_new_backed(big, CXPC_MESSAGE_SIZE_MAX, NULL, &d), 0);
        assert_int_equal(cxpc_dict_set(m, "big", d), 0);
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), -E2BIG);
        d->data.ptr = NULL; /* not ours: avoid free() of the mapping */
        d->data.size = 0;
        cxpc_object_unref(d);
        cxpc_object_unref(m);
        munmap(big, CXPC_MESSAGE_SIZE_MAX);
}

static double elapsed(const struct timespec *t0) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        return (double) (t1.tv_sec - t0->tv_sec) + (double) (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The frame header of a hand-made record of n bytes (header included). */
static void put_record_header(uint8_t *rec, size_t n) {
        cxpc_frame_header h = {
                .magic = CXPC_FRAME_MAGIC,
                .version = CXPC_PROTOCOL_VERSION,
                .id = 1,
                .body_size = (uint32_t) (n - CXPC_FRAME_HEADER_SIZE),
        };
        memcpy(rec, &h, sizeof(h));
}

static bool same_inode(int a, int b) {
        struct stat sa, sb;
        assert_int_equal(fstat(a, &sa), 0);
        assert_int_equal(fstat(b, &sb), 0);
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static uint8_t *pattern(size_t size, unsigned seed) {
        uint8_t *buf = malloc(size ? size : 1);
        assert_non_null(buf);
        for (size_t i = 0; i < size; i++)
                buf[i] = (uint8_t) (i * 31 + seed + (i >> 12));
        return buf;
}

/* A 64 MiB data value travels as its own sealed memfd, not in a body memfd; the receiver gets the
 * very same file, not mapped until first read. */
static void test_data_memfd_roundtrip(void **state) {
        size_t size = 64u * 1024u * 1024u;
        uint8_t *buf = pattern(size, 1);
        cxpc_object *m, *v;
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_data_new(buf, size, &v), 0);
        assert_true(v->data.memfd >= 0);
        assert_null(v->data.ptr); /* not mapped yet */
        int seals = fcntl(v->data.memfd, F_GET_SEALS);
        assert_int_equal(seals & CXPC_SHMEM_SEALS, CXPC_SHMEM_SEALS);
        assert_int_equal(cxpc_dict_set(m, "blob", v), 0);
        assert_int_equal(cxpc_dict_set_string(m, "name", "big"), 0);

        unsigned before = (unsigned) count_open_fds(0);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cxpc_frame_info info;
        cxpc_object *out = roundtrip(m, 0, &info);
        fprintf(stderr, "64 MiB data-memfd encode+send+receive+decode (fd passing, no copy): %.0f MB/s\n",
                (double) size / 1e6 / elapsed(&t0));
        assert_false(info.flags & CXPC_FRAME_BODY_MEMFD);

        cxpc_object *got = cxpc_dict_get(out, "blob");
        assert_non_null(got);
        assert_int_equal(cxpc_object_get_type(got), CXPC_TYPE_DATA);
        assert_true(got->data.memfd >= 0);
        assert_null(got->data.ptr);
        assert_null(got->data.backing);
        assert_true(same_inode(got->data.memfd, v->data.memfd));
        assert_true(cxpc_object_equal(m, out)); /* same file: decided without mapping */
        assert_null(got->data.ptr);

        const void *p;
        size_t sz;
        assert_int_equal(cxpc_data_get(got, &p, &sz), 0);
        assert_int_equal(sz, size);
        assert_non_null(got->data.ptr);
        assert_memory_equal(p, buf, size);
        const void *p2;
        assert_int_equal(cxpc_dict_get_data(out, "blob", &p2, NULL), 0);
        assert_ptr_equal(p, p2); /* mapped once */

        cxpc_object_unref(out);
        cxpc_object_unref(v);
        cxpc_object_unref(m);
        free(buf);
        assert_int_equal((unsigned) count_open_fds(0), before - 1); /* v's memfd is gone too */
}

/* Echo server in a child process: receives each message and sends it straight back. */
static _noreturn_ void echo_child(int fd) {
        cxpc_recv_buffer b;
        uint64_t id = 1;
        if (cxpc_recv_buffer_init(&b) < 0)
                _exit(2);
        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                if (poll(&pfd, 1, 10000) <= 0)
                        _exit(3);
                cxpc_object *m = NULL;
                cxpc_frame_info info;
                int r = cxpc_frame_receive(fd, &b, &m, &info);
                if (r == 0)
                        _exit(0);
                if (r == -EAGAIN)
                        continue;
                if (r < 0)
                        _exit(4);
                cxpc_frame *f = NULL;
                r = cxpc_frame_encode(m, id++, info.id, CXPC_FRAME_REPLY, &f);
                cxpc_object_unref(m);
                if (r < 0 || (f->header.flags & CXPC_FRAME_BODY_MEMFD))
                        _exit(5);
                for (;;) {
                        r = cxpc_frame_send(fd, f);
                        if (r != -EAGAIN)
                                break;
                        pfd.events = POLLOUT;
                        (void) poll(&pfd, 1, 1000);
                }
                cxpc_frame_free(f);
                if (r < 0)
                        _exit(6);
        }
}

static cxpc_object *receive_blocking(int fd, cxpc_recv_buffer *b, cxpc_frame_info *info) {
        cxpc_object *m = NULL;
        for (;;) {
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                assert_int_equal(poll(&pfd, 1, 10000), 1);
                int r = cxpc_frame_receive(fd, b, &m, info);
                if (r == -EAGAIN)
                        continue;
                assert_int_equal(r, 1);
                return m;
        }
}

/* Another process echoes a large value: it comes back as the same file, nothing was copied. */
static void test_data_memfd_echo(void **state) {
        size_t size = 8u * 1024u * 1024u;
        uint8_t *buf = pattern(size, 2);
        cxpc_object *m, *v;
        assert_int_equal(cxpc_message_new_request("echo", &m), 0);
        assert_int_equal(cxpc_data_new(buf, size, &v), 0);
        assert_int_equal(cxpc_dict_set(m, "blob", v), 0);

        unsigned before = (unsigned) count_open_fds(0);
        int sv[2];
        make_pair(sv);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* The child only echoes: drop the parent's copies so leak checkers stay quiet. */
                free(buf);
                cxpc_object_unref(v);
                cxpc_object_unref(m);
                close(sv[0]);
                echo_child(sv[1]);
        }
        close(sv[1]);

        cxpc_recv_buffer b;
        assert_int_equal(cxpc_recv_buffer_init(&b), 0);
        for (unsigned i = 0; i < 3; i++) {
                _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
                assert_int_equal(cxpc_frame_encode(m, 10 + i, 0, CXPC_FRAME_WANTS_REPLY, &f), 0);
                assert_int_equal(f->n_fds, 1);
                assert_true(same_inode(f->fds[0], v->data.memfd));   /* a dup, not a copy */
                assert_int_equal(f->body_size, f->header.body_size); /* inline body */
                assert_int_equal(cxpc_frame_send(sv[0], f), 0);

                cxpc_frame_info info;
                cxpc_object *echo = receive_blocking(sv[0], &b, &info);
                assert_int_equal(info.reply_to, 10 + i);
                assert_false(info.flags & CXPC_FRAME_BODY_MEMFD);
                cxpc_object *got = cxpc_dict_get(echo, "blob");
                assert_non_null(got);
                assert_true(got->data.memfd >= 0);
                assert_true(same_inode(got->data.memfd, v->data.memfd));
                assert_true(cxpc_object_equal(got, v));
                const void *p;
                size_t sz;
                assert_int_equal(cxpc_data_get(got, &p, &sz), 0);
                assert_int_equal(sz, size);
                assert_memory_equal(p, buf, size);
                cxpc_object_unref(echo);
        }
        cxpc_recv_buffer_done(&b);
        close(sv[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal((unsigned) count_open_fds(0), before);
        cxpc_object_unref(v);
        cxpc_object_unref(m);
        free(buf);
}

/* Sizes around the threshold: below it values stay in the body, from it on they get a memfd. */
static void test_data_sizes(void **state) {
        const size_t sizes[] = {0,
                                1,
                                CXPC_INLINE_BODY_MAX / 2,
                                CXPC_DATA_MEMFD_MIN - 1,
                                CXPC_DATA_MEMFD_MIN,
                                CXPC_DATA_MEMFD_MIN + 1};
        unsigned before = (unsigned) count_open_fds(0);
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                size_t size = sizes[i];
                bool big = size >= CXPC_DATA_MEMFD_MIN;
                uint8_t *buf = pattern(size, (unsigned) i);
                cxpc_object *m, *v;
                assert_int_equal(cxpc_dict_new(&m), 0);
                assert_int_equal(cxpc_data_new(size ? buf : NULL, size, &v), 0);
                assert_int_equal(v->data.memfd >= 0, big);
                assert_int_equal(cxpc_dict_set(m, "d", v), 0);

                cxpc_frame_info info;
                cxpc_object *out = roundtrip(m, 0, &info);
                cxpc_object *got = cxpc_dict_get(out, "d");
                assert_int_equal(got->data.memfd >= 0, big);
                /* Just below the threshold the body is big enough for a body memfd. */
                assert_int_equal(!!(info.flags & CXPC_FRAME_BODY_MEMFD),
                                 size > CXPC_INLINE_BODY_MAX && !big);
                assert_true(cxpc_object_equal(m, out));
                const void *p;
                size_t sz;
                assert_int_equal(cxpc_data_get(got, &p, &sz), 0);
                assert_int_equal(sz, size);
                assert_non_null(p);
                if (size > 0)
                        assert_memory_equal(p, buf, size);

                /* Copies share the sealed file. */
                cxpc_object *c;
                assert_int_equal(cxpc_object_copy(got, &c), 0);
                assert_true(cxpc_object_equal(c, got));
                if (big)
                        assert_true(same_inode(c->data.memfd, got->data.memfd));
                cxpc_object_unref(c);

                cxpc_object_unref(out);
                cxpc_object_unref(v);
                cxpc_object_unref(m);
                free(buf);
        }
        assert_int_equal((unsigned) count_open_fds(0), before);
}

/* Equality of memfd-backed values against other memfds and against plain bytes. */
static void test_data_memfd_equal(void **state) {
        size_t size = CXPC_DATA_MEMFD_MIN;
        uint8_t *buf = pattern(size, 3);
        cxpc_object *a, *b, *plain;
        assert_int_equal(cxpc_data_new(buf, size, &a), 0);
        assert_int_equal(cxpc_data_new(buf, size, &b), 0);
        assert_false(same_inode(a->data.memfd, b->data.memfd));
        assert_true(cxpc_object_equal(a, b)); /* different files, same bytes */

        uint8_t *copy = malloc(size);
        assert_non_null(copy);
        memcpy(copy, buf, size);
        assert_int_equal(cxpc_data_new_backed(copy, size, NULL, &plain), 0); /* owns copy */
        assert_true(cxpc_object_equal(a, plain));
        assert_true(cxpc_object_equal(plain, b));
        copy[size / 2] ^= 1;
        assert_false(cxpc_object_equal(a, plain));

        buf[size - 1] ^= 1;
        cxpc_object *c;
        assert_int_equal(cxpc_data_new(buf, size, &c), 0);
        assert_false(cxpc_object_equal(a, c));

        /* JSON sees the bytes. */
        char *json = NULL;
        assert_int_equal(cxpc_object_to_json(a, 0, &json), 0);
        assert_true(strlen(json) > size * 4 / 3);
        free(json);

        cxpc_object_unref(c);
        cxpc_object_unref(plain);
        cxpc_object_unref(b);
        cxpc_object_unref(a);
        free(buf);
}

/* Replaces fds[idx] of a frame by fd (taken) and expects the receiver to refuse the record
 * without leaking a single fd. */
static void expect_refused(cxpc_frame *f, size_t idx, int fd) {
        close(f->fds[idx]);
        f->fds[idx] = fd;
        unsigned before = (unsigned) count_open_fds(0);
        int sv[2];
        make_pair(sv);
        assert_int_equal(cxpc_frame_send(sv[0], f), 0);
        cxpc_recv_buffer b;
        cxpc_object *out = NULL;
        assert_int_equal(cxpc_recv_buffer_init(&b), 0);
        assert_int_equal(cxpc_frame_receive(sv[1], &b, &out, NULL), -EBADMSG);
        assert_null(out);
        cxpc_recv_buffer_done(&b);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal((unsigned) count_open_fds(0), before);
}

static int memfd_with(const uint8_t *p, size_t size, int seals) {
        int fd = memfd_create("tampered", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, size), (ssize_t) size);
        if (seals)
                assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
        return fd;
}

static void test_data_memfd_tampered(void **state) {
        size_t size = CXPC_DATA_MEMFD_MIN + 100;
        uint8_t *buf = pattern(size, 4);
        cxpc_object *m;
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_dict_set_fd(m, "fd", STDERR_FILENO), 0);
        assert_int_equal(cxpc_dict_set_data(m, "blob", buf, size), 0);
        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), 0);
        assert_int_equal(f->n_fds, 2);
        size_t idx = 1; /* the data memfd comes after the plain fd */

        unsigned before = (unsigned) count_open_fds(0);
        /* unsealed; writable; too short; not sealed against sealing; not a regular file */
        expect_refused(f, idx, memfd_with(buf, size, 0));
        expect_refused(f, idx, memfd_with(buf, size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
        expect_refused(f, idx, memfd_with(buf, size - 1, CXPC_SHMEM_SEALS));
        expect_refused(f, idx, memfd_with(buf, size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE));
        expect_refused(f, idx, open("/dev/null", O_RDONLY | O_CLOEXEC));
        int longer = memfd_with(buf, size, 0);
        assert_int_equal(write(longer, "x", 1), 1);
        assert_int_equal(fcntl(longer, F_ADD_SEALS, CXPC_SHMEM_SEALS), 0);
        expect_refused(f, idx, longer); /* too long */
        assert_int_equal((unsigned) count_open_fds(0), before);

        /* A data-memfd value below the threshold is not canonical: refused even when sealed. */
        cxpc_frame_free(TAKE_PTR(f));
        cxpc_object *small;
        assert_int_equal(cxpc_data_new(buf, CXPC_DATA_MEMFD_MIN, &small), 0);
        assert_int_equal(cxpc_dict_set(m, "blob", small), 0);
        cxpc_object_unref(small);
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), 0);
        /* patch the size field (u64 after the u32 fd index) of the last value in the body */
        uint8_t *body = f->body;
        size_t n = f->body_size;
        assert_int_equal(body[n - 13], CXPC_WIRE_TAG_DATA_MEMFD);
        uint64_t smaller = htole64(CXPC_DATA_MEMFD_MIN - 1);
        memcpy(body + n - 8, &smaller, 8);
        expect_refused(f, idx, memfd_with(buf, CXPC_DATA_MEMFD_MIN - 1, CXPC_SHMEM_SEALS));
        assert_int_equal((unsigned) count_open_fds(0), before);

        cxpc_object_unref(m);
        free(buf);
}

/* Every large data value takes one of the CXPC_FDS_PER_MESSAGE_MAX fds, like a body memfd. */
static void test_data_memfd_fd_limit(void **state) {
        size_t size = CXPC_DATA_MEMFD_MIN;
        uint8_t *buf = pattern(size, 5);
        cxpc_object *v, *m, *a;
        assert_int_equal(cxpc_data_new(buf, size, &v), 0);
        free(buf);
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_array_new(&a), 0);
        assert_int_equal(cxpc_dict_set(m, "a", a), 0);
        for (unsigned i = 0; i < CXPC_FDS_PER_MESSAGE_MAX; i++)
                assert_int_equal(cxpc_array_append(a, v), 0);

        unsigned before = (unsigned) count_open_fds(0);
        cxpc_frame_info info;
        cxpc_object *out = roundtrip(m, 0, &info);
        assert_false(info.flags & CXPC_FRAME_BODY_MEMFD);
        assert_int_equal(cxpc_array_get_count(cxpc_dict_get(out, "a")), CXPC_FDS_PER_MESSAGE_MAX);
        assert_true(cxpc_object_equal(m, out));
        cxpc_object_unref(out);
        assert_int_equal((unsigned) count_open_fds(0), before);

        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        assert_int_equal(cxpc_array_append(a, v), 0); /* one too many */
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), -E2BIG);
        assert_int_equal((unsigned) count_open_fds(0), before);

        /* 63 values plus a body memfd fit; 64 values plus a body memfd do not. */
        cxpc_object *b;
        assert_int_equal(cxpc_array_new(&b), 0);
        for (unsigned i = 0; i < CXPC_FDS_PER_MESSAGE_MAX - 1; i++)
                assert_int_equal(cxpc_array_append(b, v), 0);
        assert_int_equal(cxpc_dict_set(m, "a", b), 0);
        char *filler = malloc(CXPC_INLINE_BODY_MAX + 1);
        assert_non_null(filler);
        memset(filler, 'x', CXPC_INLINE_BODY_MAX);
        filler[CXPC_INLINE_BODY_MAX] = 0;
        assert_int_equal(cxpc_dict_set_string(m, "filler", filler), 0);
        free(filler);
        out = roundtrip(m, 0, &info);
        assert_true(info.flags & CXPC_FRAME_BODY_MEMFD);
        assert_true(cxpc_object_equal(m, out));
        cxpc_object_unref(out);
        assert_int_equal(cxpc_array_append(b, v), 0);
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), -E2BIG);
        assert_int_equal((unsigned) count_open_fds(0), before);

        cxpc_object_unref(b);
        cxpc_object_unref(a);
        cxpc_object_unref(v);
        cxpc_object_unref(m);
}

/* Bodies that stay large with many small values still travel in a body memfd, next to data
 * memfds. */
static void test_body_memfd_with_data_memfd(void **state) {
        cxpc_object *m, *a;
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_array_new(&a), 0);
        for (unsigned i = 0; i < 4000; i++) {
                cxpc_object *s;
                assert_int_equal(cxpc_string_newf(&s, "item-%u", i), 0);
                assert_int_equal(cxpc_array_append_take(a, s), 0);
        }
        assert_int_equal(cxpc_dict_set(m, "items", a), 0);
        cxpc_object_unref(a);
        uint8_t *buf = pattern(1u << 20, 6);
        assert_int_equal(cxpc_dict_set_data(m, "blob", buf, 1u << 20), 0);
        assert_int_equal(cxpc_dict_set_data(m, "mid", buf, 100000), 0); /* in the body */
        free(buf);

        unsigned before = (unsigned) count_open_fds(0);
        cxpc_frame_info info;
        cxpc_object *out = roundtrip(m, 0, &info);
        assert_true(info.flags & CXPC_FRAME_BODY_MEMFD);
        assert_true(cxpc_object_equal(m, out));
        assert_true(cxpc_dict_get(out, "blob")->data.memfd >= 0);
        assert_non_null(cxpc_dict_get(out, "mid")->data.backing);
        cxpc_object_unref(out);
        assert_int_equal((unsigned) count_open_fds(0), before);
        cxpc_object_unref(m);
}

/* A memfd body that is not sealed must be refused, and its fd closed. */
static void test_memfd_unsealed(void **state) {
        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        cxpc_object *m, *out = NULL;
        assert_int_equal(cxpc_dict_new(&m), 0);
        uint8_t *buf = calloc(1, 100000);
        assert_int_equal(cxpc_dict_set_data(m, "blob", buf, 100000), 0);
        free(buf);
        assert_int_equal(cxpc_frame_encode(m, 1, 0, 0, &f), 0);
        assert_int_equal(f->n_fds, 1);

        /* Replace the body memfd with an unsealed copy of it. */
        int plain = memfd_create("tampered", MFD_CLOEXEC);
        assert_true(plain >= 0);
        uint8_t tmp[65536];
        ssize_t n;
        off_t off = 0;
        while ((n = pread(f->fds[0], tmp, sizeof(tmp), off)) > 0) {
                assert_int_equal(write(plain, tmp, (size_t) n), n);
                off += n;
        }
        close(f->fds[0]);
        f->fds[0] = plain;

        unsigned before = (unsigned) count_open_fds(0);
        int sv[2];
        make_pair(sv);
        assert_int_equal(cxpc_frame_send(sv[0], f), 0);
        cxpc_recv_buffer b;
        assert_int_equal(cxpc_recv_buffer_init(&b), 0);
        assert_int_equal(cxpc_frame_receive(sv[1], &b, &out, NULL), -EBADMSG);
        assert_null(out);
        cxpc_recv_buffer_done(&b);
        close(sv[0]);
        close(sv[1]);
        assert_int_equal((unsigned) count_open_fds(0), before);
        cxpc_object_unref(m);
}

/* Truncations and corruptions of a valid record with fds: refused, fds closed. */
static void test_garbage(void **state) {
        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        cxpc_object *m = make_all_types();
        assert_int_equal(cxpc_frame_encode(m, 9, 0, 0, &f), 0);
        size_t size = CXPC_FRAME_HEADER_SIZE + f->body_size;
        uint8_t *rec = malloc(size);
        memcpy(rec, &f->header, CXPC_FRAME_HEADER_SIZE);
        memcpy(rec + CXPC_FRAME_HEADER_SIZE, f->body, f->body_size);

        unsigned before = (unsigned) count_open_fds(0);
        for (size_t cut = 0; cut < size; cut++) {
                int fds[CXPC_FDS_PER_MESSAGE_MAX];
                for (size_t i = 0; i < f->n_fds; i++)
                        fds[i] = fcntl(f->fds[i], F_DUPFD_CLOEXEC, 3);
                cxpc_object *out = NULL;
                assert_int_equal(cxpc_record_decode(rec, cut, fds, f->n_fds, &out, NULL), -EBADMSG);
                assert_null(out);
        }
        /* flip every byte; decoding may succeed for some values, but must never leak */
        for (size_t pos = 0; pos < size; pos++) {
                int fds[CXPC_FDS_PER_MESSAGE_MAX];
                for (size_t i = 0; i < f->n_fds; i++)
                        fds[i] = fcntl(f->fds[i], F_DUPFD_CLOEXEC, 3);
                rec[pos] ^= 0xff;
                cxpc_object *out = NULL;
                (void) cxpc_record_decode(rec, size, fds, f->n_fds, &out, NULL);
                cxpc_object_unref(out);
                rec[pos] ^= 0xff;
        }
        /* trailing garbage */
        uint8_t *longer = malloc(size + 1);
        memcpy(longer, rec, size);
        longer[size] = 0;
        cxpc_frame_header h;
        memcpy(&h, longer, sizeof(h));
        h.body_size++;
        memcpy(longer, &h, sizeof(h));
        int fds[CXPC_FDS_PER_MESSAGE_MAX];
        for (size_t i = 0; i < f->n_fds; i++)
                fds[i] = fcntl(f->fds[i], F_DUPFD_CLOEXEC, 3);
        cxpc_object *out = NULL;
        assert_int_equal(cxpc_record_decode(longer, size + 1, fds, f->n_fds, &out, NULL), -EBADMSG);
        /* an extra fd nobody references */
        for (size_t i = 0; i <= f->n_fds; i++)
                fds[i] = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        h.body_size--;
        h.n_fds++;
        memcpy(rec, &h, sizeof(h));
        assert_int_equal(cxpc_record_decode(rec, size, fds, f->n_fds + 1, &out, NULL), -EBADMSG);
        assert_int_equal((unsigned) count_open_fds(0), before);
        free(longer);
        free(rec);
        cxpc_object_unref(m);
}

static void test_bad_utf8(void **state) {
        static const char *const bad[] = {
                "\xc0\x80",         /* overlong NUL */
                "\xe0\x80\xaf",     /* overlong '/' */
                "\xed\xa0\x80",     /* surrogate */
                "\xf4\x90\x80\x80", /* > U+10FFFF */
                "\xff",
                "\xe2\x82", /* truncated */
        };
        cxpc_object *o;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(cxpc_string_new(bad[i], &o), -EILSEQ);
        assert_int_equal(cxpc_string_new_len("a\0b", 3, &o), -EILSEQ);

        /* the decoder refuses them too: hand-made record with a bad string */
        uint8_t rec[CXPC_FRAME_HEADER_SIZE + 64];
        size_t n = CXPC_FRAME_HEADER_SIZE;
        const uint8_t body[] = {CXPC_TYPE_DICTIONARY, 1, 0, 0, 0, 1,    0,   0, 0, 'k',
                                CXPC_TYPE_STRING,     2, 0, 0, 0, 0xc0, 0x80};
        memcpy(rec + n, body, sizeof(body));
        put_record_header(rec, n + sizeof(body));
        assert_int_equal(cxpc_record_decode(rec, n + sizeof(body), NULL, 0, &o, NULL), -EBADMSG);
        rec[n + sizeof(body) - 2] = 'o';
        rec[n + sizeof(body) - 1] = 'k';
        assert_int_equal(cxpc_record_decode(rec, n + sizeof(body), NULL, 0, &o, NULL), 0);
        assert_string_equal(cxpc_message_get_route(o) ?: "none", "none");
        cxpc_object_unref(o);
}

static void test_big_dict(void **state) {
        cxpc_object *m;
        char key[32];
        assert_int_equal(cxpc_dict_new(&m), 0);
        for (unsigned i = 0; i < 5000; i++) {
                snprintf(key, sizeof(key), "key-%u", i);
                assert_int_equal(cxpc_dict_set_uint64(m, key, i), 0);
        }
        cxpc_object *out = roundtrip(m, CXPC_FRAME_REPLY, NULL);
        assert_true(cxpc_object_equal(m, out));
        uint64_t v;
        assert_int_equal(cxpc_dict_get_uint64(out, "key-4321", &v), 0);
        assert_int_equal(v, 4321);
        const char *k;
        assert_int_equal(cxpc_dict_get_entry(out, 17, &k, NULL), 0);
        assert_string_equal(k, "key-17");
        cxpc_object_unref(out);
        cxpc_object_unref(m);
}

static void test_eof(void **state) {
        int sv[2];
        make_pair(sv);
        close(sv[0]);
        cxpc_recv_buffer b;
        cxpc_object *o = NULL;
        assert_int_equal(cxpc_recv_buffer_init(&b), 0);
        assert_int_equal(cxpc_frame_receive(sv[1], &b, &o, NULL), 0);
        close(sv[1]);
        make_pair(sv);
        assert_int_equal(cxpc_frame_receive(sv[1], &b, &o, NULL), -EAGAIN);
        cxpc_recv_buffer_done(&b);
        close(sv[0]);
        close(sv[1]);
}

/* Bodies around the size where the one-pass encoder (small frames) hands over to the sizing pass:
 * the same bytes either way, and every length round trips. */
static void test_small_frame_boundary(void **state) {
        char text[700];
        memset(text, 'x', sizeof(text));
        for (size_t len = 0; len < sizeof(text) - 1; len += (len > 300 && len < 420) ? 1 : 7) {
                cxpc_object *m, *s;
                text[len] = 0;
                assert_int_equal(cxpc_message_new_request("a/b", &m), 0);
                assert_int_equal(cxpc_dict_set_int64(m, "n", (int64_t) len), 0);
                assert_int_equal(cxpc_dict_set_string(m, "text", text), 0);
                assert_int_equal(cxpc_string_new(text, &s), 0);
                assert_int_equal(cxpc_dict_set(m, "copy", s), 0);
                cxpc_object_unref(s);
                text[len] = 'x';

                _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
                assert_int_equal(cxpc_frame_encode(m, 5, 0, CXPC_FRAME_WANTS_REPLY, &f), 0);
                /* dict: tag, count; route, n, text, copy entries */
                size_t body = 1 + 4 + (4 + 10 + 1 + 4 + 3) + (4 + 1 + 1 + 8) + 2 * (4 + 4 + 1 + 4 + len);
                assert_int_equal(f->body_size, body);
                assert_int_equal(f->record_size, CXPC_FRAME_HEADER_SIZE + body);
                assert_int_equal(f->sent_size, CXPC_FRAME_HEADER_SIZE + body);
                assert_int_equal(le32toh(f->header.body_size), body);
                assert_int_equal(f->n_fds, 0);

                cxpc_object *out = NULL;
                assert_int_equal(cxpc_record_decode(f->record, f->record_size, NULL, 0, &out, NULL), 0);
                assert_true(cxpc_object_equal(m, out));
                assert_string_equal(cxpc_message_get_route(out), "a/b");
                cxpc_object_unref(out);
                cxpc_object_unref(m);
        }
}

/* What the one-pass encoder does not handle goes the other way with the same results: fds, error
 * values, nesting just within and beyond the depth limit. */
static void test_small_frame_fallbacks(void **state) {
        cxpc_object *m, *e, *inner, *c;
        int64_t v;

        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_dict_set_fd(m, "fd", STDERR_FILENO), 0);
        assert_int_equal(cxpc_error_new(CXPC_ERROR_TIMEOUT, "slow", &e), 0);
        assert_int_equal(cxpc_dict_set(m, CXPC_KEY_ERROR, e), 0);
        cxpc_object_unref(e);
        cxpc_object *out = roundtrip(m, 0, NULL);
        assert_int_equal(cxpc_object_get_type(cxpc_dict_get(out, "fd")), CXPC_TYPE_FD);
        assert_true(cxpc_object_equal(cxpc_dict_get(m, CXPC_KEY_ERROR), cxpc_dict_get(out, CXPC_KEY_ERROR)));
        cxpc_object_unref(out);
        cxpc_object_unref(m);

        /* CXPC_DEPTH_MAX levels (the message is the first) encode; one more is -ELOOP */
        assert_int_equal(cxpc_dict_new(&inner), 0);
        assert_int_equal(cxpc_dict_set_int64(inner, "v", 42), 0);
        for (unsigned depth = 1; depth <= CXPC_DEPTH_MAX + 1; depth++) {
                _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
                assert_int_equal(cxpc_frame_encode(inner, 1, 0, 0, &f),
                                 depth <= CXPC_DEPTH_MAX ? 0 : -ELOOP);
                if (depth == CXPC_DEPTH_MAX) {
                        assert_int_equal(cxpc_record_decode(f->record, f->record_size, NULL, 0, &out, NULL),
                                         0);
                        assert_true(cxpc_object_equal(inner, out));
                        cxpc_object_unref(out);
                }
                assert_int_equal(cxpc_dict_new(&c), 0);
                assert_int_equal(cxpc_dict_set(c, "d", inner), 0);
                cxpc_object_unref(inner);
                inner = c;
        }
        for (c = inner; cxpc_dict_get(c, "d"); c = cxpc_dict_get(c, "d"))
                ;
        assert_int_equal(cxpc_dict_get_int64(c, "v", &v), 0);
        assert_int_equal(v, 42);
        cxpc_object_unref(inner);
}

/* Keys of every length around the short-key paths (4, 8, 16 and the inline size): set, replace,
 * look up, encode, decode; a duplicate of any of them in a record is refused. */
static void test_key_lengths(void **state) {
        char keys[40][41];
        cxpc_object *m;

        assert_int_equal(cxpc_dict_new(&m), 0);
        for (size_t len = 1; len <= 40; len++) {
                /* same first and last bytes, so that only the middle tells them apart */
                memset(keys[len - 1], 'k', len);
                keys[len - 1][len] = 0;
                if (len > 2)
                        keys[len - 1][len / 2] = (char) ('a' + len % 26);
                assert_int_equal(cxpc_dict_set_int64(m, keys[len - 1], -1), 0);
                assert_int_equal(cxpc_dict_set_int64(m, keys[len - 1], (int64_t) len), 0);
        }
        assert_int_equal(cxpc_dict_get_count(m), 40);
        for (size_t len = 1; len <= 40; len++) {
                int64_t v;
                assert_int_equal(cxpc_dict_get_int64(m, keys[len - 1], &v), 0);
                assert_int_equal(v, (int64_t) len);
        }
        assert_int_equal(cxpc_dict_get_int64(m, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", NULL), -ENOENT);
        cxpc_object *out = roundtrip(m, 0, NULL);
        assert_true(cxpc_object_equal(m, out));
        cxpc_object_unref(out);
        cxpc_object_unref(m);

        /* a record holding one key twice (inline and heap-sized keys) */
        for (size_t len = 1; len <= 40; len++) {
                uint8_t rec[CXPC_FRAME_HEADER_SIZE + 128];
                size_t n = CXPC_FRAME_HEADER_SIZE;
                uint32_t count = 3, klen = (uint32_t) len, other = 1;
                rec[n++] = CXPC_TYPE_DICTIONARY;
                memcpy(rec + n, &count, 4), n += 4;
                for (int i = 0; i < 3; i++) {
                        const char *k = i == 1 ? "z" : keys[len - 1];
                        uint32_t l = i == 1 ? other : klen;
                        memcpy(rec + n, &l, 4), n += 4;
                        memcpy(rec + n, k, l), n += l;
                        rec[n++] = CXPC_TYPE_NULL;
                }
                put_record_header(rec, n);
                cxpc_object *o = NULL;
                assert_int_equal(cxpc_record_decode(rec, n, NULL, 0, &o, NULL), -EBADMSG);
                assert_null(o);
        }
}

/* Short keys and strings take inline checks; non-ASCII and invalid ones still get the full one. */
static void test_short_utf8(void **state) {
        static const char *const good[] = {"é",
                                           "ké",
                                           "€uro",
                                           "ab\xc3\xa9"
                                           "cdefg",
                                           "0123456\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80"};
        static const char *const bad[] = {"\xc0\x80", "k\xff", "abc\xed\xa0\x80", "abcdefg\xc3",
                                          "abcdefghijklmn\x80"
                                          "o"};
        cxpc_object *m, *o;

        assert_int_equal(cxpc_dict_new(&m), 0);
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(cxpc_dict_set_bool(m, good[i], true), 0);
                assert_int_equal(cxpc_string_new(good[i], &o), 0);
                cxpc_object_unref(o);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(cxpc_dict_set_bool(m, bad[i], true), -EILSEQ);
                assert_int_equal(cxpc_dict_set_null(m, bad[i]), -EILSEQ);
                assert_int_equal(cxpc_string_new(bad[i], &o), -EILSEQ);
                assert_int_equal(cxpc_message_new_request(bad[i], &o), -EILSEQ);
        }
        assert_int_equal(cxpc_dict_get_count(m), ELEMENTSOF(good));
        cxpc_object *out = roundtrip(m, 0, NULL);
        assert_true(cxpc_object_equal(m, out));
        cxpc_object_unref(out);
        cxpc_object_unref(m);
}

/* Strings on both sides of the cached allocation size, made and dropped repeatedly. */
static void test_string_sizes(void **state) {
        char text[64];
        for (int round = 0; round < 3; round++)
                for (size_t len = 0; len < sizeof(text); len++) {
                        cxpc_object *o, *copy;
                        const char *p;
                        memset(text, 'a' + (char) (len % 26), len);
                        text[len] = 0;
                        assert_int_equal(cxpc_string_new(text, &o), 0);
                        assert_int_equal(cxpc_string_get(o, &p), 0);
                        assert_string_equal(p, text);
                        assert_int_equal(cxpc_object_copy(o, &copy), 0);
                        assert_true(cxpc_object_equal(o, copy));
                        cxpc_object_unref(o);
                        cxpc_object_unref(copy);
                        assert_int_equal(cxpc_string_newf(&o, "%s", text), 0);
                        assert_int_equal(cxpc_string_get(o, &p), 0);
                        assert_string_equal(p, text);
                        cxpc_object_unref(o);
                }
}

/* Short string values in a dictionary take inline paths when encoding, decoding and freeing:
 * lengths on both sides of CXPC_STRING_SHORT_MAX, as a dictionary entry (fast path) and as an
 * array item (generic path) must give the same bytes; a filler moves the string across the end
 * of the small frame's room; a value still referenced elsewhere survives its dictionary. */
static void test_short_string_values(void **state) {
        char text[CXPC_STRING_SHORT_MAX + 8], filler[600];
        memset(filler, 'f', sizeof(filler));
        for (size_t len = 0; len < sizeof(text) - 1; len++) {
                memset(text, 'a' + (char) (len % 26), len);
                text[len] = 0;
                for (size_t fill = 280; fill < 380; fill++) {
                        cxpc_object *m, *a, *s, *kept;
                        assert_int_equal(cxpc_dict_new(&m), 0);
                        filler[fill] = 0;
                        assert_int_equal(cxpc_dict_set_string(m, "f", filler), 0);
                        filler[fill] = 'f';
                        assert_int_equal(cxpc_dict_set_string(m, "s", text), 0);
                        assert_int_equal(cxpc_array_new(&a), 0);
                        assert_int_equal(cxpc_string_new(text, &s), 0);
                        assert_int_equal(cxpc_array_append(a, s), 0);
                        cxpc_object_unref(s);
                        assert_int_equal(cxpc_dict_set(m, "a", a), 0);
                        cxpc_object_unref(a);

                        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
                        assert_int_equal(cxpc_frame_encode(m, 5, 0, 0, &f), 0);
                        size_t body = 1 + 4 + (4 + 1 + 1 + 4 + fill) + (4 + 1 + 1 + 4 + len) +
                                      (4 + 1 + 1 + 4 + 1 + 4 + len);
                        assert_int_equal(f->body_size, body);
                        /* the entry ("s") and the array item encode the string alike */
                        const uint8_t *entry =
                                (const uint8_t *) f->body + 5 + (4 + 1 + 1 + 4 + fill) + 4 + 1;
                        const uint8_t *item = entry + 1 + 4 + len + 4 + 1 + 1 + 4;
                        assert_int_equal(entry[0], CXPC_TYPE_STRING);
                        assert_memory_equal(entry, item, 1 + 4 + len);

                        cxpc_object *out = NULL;
                        assert_int_equal(cxpc_record_decode(f->record, f->record_size, NULL, 0, &out, NULL),
                                         0);
                        assert_true(cxpc_object_equal(m, out));
                        kept = cxpc_object_ref(cxpc_dict_get(out, "s"));
                        cxpc_object_unref(out);
                        const char *p;
                        assert_int_equal(cxpc_string_get(kept, &p), 0);
                        assert_string_equal(p, text);
                        cxpc_object_unref(kept);
                        cxpc_object_unref(m);
                }
        }
}

/* A record of one dictionary holding the given entries (key, tag, value bytes), for decoding. */
static size_t make_record(uint8_t *rec, size_t n_entries, const char *const *keys, const uint8_t *tags,
                          const uint8_t (*values)[9], const size_t *value_sizes) {
        size_t n = CXPC_FRAME_HEADER_SIZE;
        uint32_t count = (uint32_t) n_entries;
        rec[n++] = CXPC_TYPE_DICTIONARY;
        memcpy(rec + n, &count, 4), n += 4;
        for (size_t i = 0; i < n_entries; i++) {
                uint32_t l = (uint32_t) strlen(keys[i]);
                memcpy(rec + n, &l, 4), n += 4;
                memcpy(rec + n, keys[i], l), n += l;
                rec[n++] = tags[i];
                memcpy(rec + n, values[i], value_sizes[i]), n += value_sizes[i];
        }
        put_record_header(rec, n);
        return n;
}

/* Scalars live in their dictionary entry (no object until one is asked for): every type, set by
 * the typed setters and as objects, ending exactly at the end of the one-pass buffer and beyond
 * it, encodes like the same value as an array item; decodes, compares, copies and converts alike;
 * the object cxpc_dict_get() makes stays the same until the entry changes; malformed and
 * duplicate scalar entries in a record are refused. */
static void test_inline_scalars(void **state) {
        static const struct {
                cxpc_type type;
                uint64_t bits;
                size_t size; /* value bytes after the tag */
        } values[] = {
                {CXPC_TYPE_NULL, 0, 0},
                {CXPC_TYPE_BOOL, 0, 1},
                {CXPC_TYPE_BOOL, 1, 1},
                {CXPC_TYPE_INT64, (uint64_t) INT64_MIN, 8},
                {CXPC_TYPE_INT64, 0, 8},
                {CXPC_TYPE_UINT64, UINT64_MAX, 8},
                {CXPC_TYPE_DOUBLE, 0x7ff8000000000001ull, 8}, /* a NaN: equal to itself bitwise */
                {CXPC_TYPE_DATE, 1700000000123456789ull, 8},
        };
        char filler[600];
        memset(filler, 'f', sizeof(filler));

        for (size_t t = 0; t < ELEMENTSOF(values); t++) {
                cxpc_type type = values[t].type;
                uint64_t bits = values[t].bits;
                double dbl;
                memcpy(&dbl, &bits, 8);
                for (size_t fill = 280; fill < 420; fill++) {
                        for (int as_object = 0; as_object < 2; as_object++) {
                                cxpc_object *m, *o, *a;
                                int r = 0;
                                assert_int_equal(cxpc_dict_new(&m), 0);
                                filler[fill] = 0;
                                assert_int_equal(cxpc_dict_set_string(m, "f", filler), 0);
                                filler[fill] = 'f';
                                switch (type) {
                                case CXPC_TYPE_NULL:
                                        r = cxpc_null_new(&o);
                                        break;
                                case CXPC_TYPE_BOOL:
                                        r = cxpc_bool_new(bits != 0, &o);
                                        break;
                                case CXPC_TYPE_INT64:
                                        r = cxpc_int64_new((int64_t) bits, &o);
                                        break;
                                case CXPC_TYPE_UINT64:
                                        r = cxpc_uint64_new(bits, &o);
                                        break;
                                case CXPC_TYPE_DOUBLE:
                                        r = cxpc_double_new(dbl, &o);
                                        break;
                                default:
                                        r = cxpc_date_new((int64_t) bits, &o);
                                        break;
                                }
                                assert_int_equal(r, 0);
                                if (as_object)
                                        assert_int_equal(cxpc_dict_set(m, "v", o), 0);
                                else
                                        switch (type) {
                                        case CXPC_TYPE_NULL:
                                                assert_int_equal(cxpc_dict_set_null(m, "v"), 0);
                                                break;
                                        case CXPC_TYPE_BOOL:
                                                assert_int_equal(cxpc_dict_set_bool(m, "v", bits != 0), 0);
                                                break;
                                        case CXPC_TYPE_INT64:
                                                assert_int_equal(cxpc_dict_set_int64(m, "v", (int64_t) bits),
                                                                 0);
                                                break;
                                        case CXPC_TYPE_UINT64:
                                                assert_int_equal(cxpc_dict_set_uint64(m, "v", bits), 0);
                                                break;
                                        case CXPC_TYPE_DOUBLE:
                                                assert_int_equal(cxpc_dict_set_double(m, "v", dbl), 0);
                                                break;
                                        default:
                                                assert_int_equal(cxpc_dict_set_date(m, "v", (int64_t) bits),
                                                                 0);
                                                break;
                                        }
                                assert_int_equal(cxpc_array_new(&a), 0);
                                assert_int_equal(cxpc_array_append(a, o), 0);

                                /* the entry "v" is last: at some fill it ends the one-pass buffer */
                                _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
                                assert_int_equal(cxpc_frame_encode(m, 5, 0, 0, &f), 0);
                                size_t body = 1 + 4 + (4 + 1 + 1 + 4 + fill) + (4 + 1 + 1 + values[t].size);
                                assert_int_equal(f->body_size, body);
                                const uint8_t *entry = (const uint8_t *) f->body + body - 1 - values[t].size;
                                assert_int_equal(entry[0], type);
                                _cleanup_(cxpc_frame_freep) cxpc_frame *fa = NULL;
                                cxpc_object *wrap;
                                assert_int_equal(cxpc_dict_new(&wrap), 0);
                                assert_int_equal(cxpc_dict_set(wrap, "a", a), 0);
                                assert_int_equal(cxpc_frame_encode(wrap, 5, 0, 0, &fa), 0);
                                assert_int_equal(fa->body_size, 1 + 4 + 4 + 1 + 1 + 4 + 1 + values[t].size);
                                assert_memory_equal(entry,
                                                    (const uint8_t *) fa->body + 1 + 4 + 4 + 1 + 1 + 4,
                                                    1 + values[t].size);
                                cxpc_object_unref(wrap);
                                cxpc_object_unref(a);

                                cxpc_object *out = NULL;
                                assert_int_equal(
                                        cxpc_record_decode(f->record, f->record_size, NULL, 0, &out, NULL),
                                        0);
                                assert_true(cxpc_object_equal(m, out));
                                assert_true(cxpc_object_equal(out, m));

                                /* typed getters: the value, or -EMEDIUMTYPE for any other type */
                                bool b;
                                int64_t i64;
                                uint64_t u64;
                                double d;
                                const char *str;
                                assert_int_equal(cxpc_dict_get_bool(out, "v", &b),
                                                 type == CXPC_TYPE_BOOL ? 0 : -EMEDIUMTYPE);
                                assert_int_equal(cxpc_dict_get_int64(out, "v", &i64),
                                                 type == CXPC_TYPE_INT64 ? 0 : -EMEDIUMTYPE);
                                assert_int_equal(cxpc_dict_get_uint64(out, "v", &u64),
                                                 type == CXPC_TYPE_UINT64 ? 0 : -EMEDIUMTYPE);
                                assert_int_equal(cxpc_dict_get_double(out, "v", &d),
                                                 type == CXPC_TYPE_DOUBLE ? 0 : -EMEDIUMTYPE);
                                assert_int_equal(cxpc_dict_get_date(out, "v", &i64),
                                                 type == CXPC_TYPE_DATE ? 0 : -EMEDIUMTYPE);
                                assert_int_equal(cxpc_dict_get_string(out, "v", &str), -EMEDIUMTYPE);
                                assert_int_equal(cxpc_dict_get_int64(out, "w", NULL), -ENOENT);
                                assert_int_equal(cxpc_dict_get_string(m, "v", &str), -EMEDIUMTYPE);

                                /* the object is made once and stays until the entry changes */
                                cxpc_object *v = cxpc_dict_get(out, "v");
                                assert_non_null(v);
                                assert_ptr_equal(cxpc_dict_get(out, "v"), v);
                                const char *key;
                                cxpc_object *ev;
                                assert_int_equal(cxpc_dict_get_entry(out, 1, &key, &ev), 0);
                                assert_string_equal(key, "v");
                                assert_ptr_equal(ev, v);
                                assert_int_equal(cxpc_object_get_type(v), type);
                                assert_true(cxpc_object_equal(v, o));

                                /* a copy and JSON see the same values */
                                cxpc_object *c;
                                assert_int_equal(cxpc_object_copy(out, &c), 0);
                                assert_true(cxpc_object_equal(c, m));
                                if (type != CXPC_TYPE_DOUBLE) { /* NaN has no JSON form */
                                        _cleanup_free_ char *j1 = NULL, *j2 = NULL;
                                        assert_int_equal(cxpc_object_to_json(m, 0, &j1), 0);
                                        assert_int_equal(cxpc_object_to_json(c, 0, &j2), 0);
                                        assert_string_equal(j1, j2);
                                }
                                cxpc_object_unref(c);

                                /* a reference taken on it outlives the dictionary */
                                cxpc_object *kept = cxpc_object_ref(v);
                                cxpc_object_unref(out);
                                assert_true(cxpc_object_equal(kept, o));
                                cxpc_object_unref(kept);
                                cxpc_object_unref(o);
                                cxpc_object_unref(m);
                        }
                }
        }

        /* replacing scalars with objects and back, removing, and a differing value */
        cxpc_object *m, *n, *s;
        int64_t i64;
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_dict_new(&n), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "k", 1), 0);
        assert_int_equal(cxpc_dict_set_int64(n, "k", 1), 0);
        assert_true(cxpc_object_equal(m, n));
        assert_non_null(cxpc_dict_get(m, "k")); /* one side has its object, the other not */
        assert_true(cxpc_object_equal(m, n));
        assert_int_equal(cxpc_dict_set_uint64(n, "k", 1), 0);
        assert_false(cxpc_object_equal(m, n)); /* same bits, another type */
        assert_int_equal(cxpc_dict_set_int64(n, "k", 2), 0);
        assert_false(cxpc_object_equal(m, n));
        assert_int_equal(cxpc_string_new("x", &s), 0);
        assert_int_equal(cxpc_dict_set(m, "k", s), 0);
        assert_false(cxpc_object_equal(m, n));
        assert_false(cxpc_object_equal(n, m));
        assert_int_equal(cxpc_dict_get_int64(m, "k", &i64), -EMEDIUMTYPE);
        assert_ptr_equal(cxpc_dict_get(m, "k"), s);
        assert_int_equal(cxpc_dict_set_bool(m, "k", true), 0);
        assert_int_equal(cxpc_object_get_type(cxpc_dict_get(m, "k")), CXPC_TYPE_BOOL);
        assert_int_equal(cxpc_dict_set(m, "k", s), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "k", 7), 0);
        assert_int_equal(cxpc_dict_get_int64(m, "k", &i64), 0);
        assert_int_equal(i64, 7);
        assert_int_equal(cxpc_dict_remove(m, "k"), 0);
        assert_int_equal(cxpc_dict_get_count(m), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "\xff", 7), -EILSEQ);
        assert_int_equal(cxpc_dict_set_null(m, "\xc3"), -EILSEQ);
        assert_int_equal(cxpc_dict_set_int64(s, "k", 7), -EMEDIUMTYPE);
        assert_int_equal(cxpc_dict_set_null(NULL, "k"), -EINVAL);
        assert_int_equal(cxpc_dict_get_int64(s, "k", &i64), -EMEDIUMTYPE);
        cxpc_object_unref(s);
        cxpc_object_unref(m);
        cxpc_object_unref(n);

        /* malformed scalar entries: a bool byte other than 0/1, a value cut short, a key twice */
        static const uint8_t zero[9], one[9] = {1}, two[9] = {2}, str1[9] = {1, 0, 0, 0, 'x'};
        uint8_t rec[CXPC_FRAME_HEADER_SIZE + 128];
        const char *keys[] = {"a", "b"};
        const char *same[] = {"a", "a"};
        const uint8_t(*vals[])[9] = {&zero, &one, &two, &str1};
        struct {
                const char *const *keys;
                uint8_t tags[2];
                int vals[2];
                size_t sizes[2];
                int result;
        } cases[] = {
                {keys, {CXPC_TYPE_BOOL, CXPC_TYPE_NULL}, {1, 0}, {1, 0}, 0},
                {keys, {CXPC_TYPE_BOOL, CXPC_TYPE_NULL}, {2, 0}, {1, 0}, -EBADMSG},
                {keys, {CXPC_TYPE_NULL, CXPC_TYPE_INT64}, {0, 0}, {0, 7}, -EBADMSG},
                {keys, {CXPC_TYPE_NULL, CXPC_TYPE_BOOL}, {0, 0}, {0, 0}, -EBADMSG},
                {same, {CXPC_TYPE_NULL, CXPC_TYPE_NULL}, {0, 0}, {0, 0}, -EBADMSG},
                {same, {CXPC_TYPE_INT64, CXPC_TYPE_DATE}, {0, 0}, {8, 8}, -EBADMSG},
                {same, {CXPC_TYPE_STRING, CXPC_TYPE_BOOL}, {3, 1}, {5, 1}, -EBADMSG},
                {same, {CXPC_TYPE_DOUBLE, CXPC_TYPE_STRING}, {0, 3}, {8, 5}, -EBADMSG},
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                uint8_t v[2][9];
                memcpy(v[0], *vals[cases[i].vals[0]], 9);
                memcpy(v[1], *vals[cases[i].vals[1]], 9);
                size_t size = make_record(rec, 2, cases[i].keys, cases[i].tags, (const uint8_t(*)[9]) v,
                                          cases[i].sizes);
                cxpc_object *o = NULL;
                assert_int_equal(cxpc_record_decode(rec, size, NULL, 0, &o, NULL), cases[i].result);
                if (cases[i].result == 0) {
                        bool b = false;
                        assert_int_equal(cxpc_dict_get_bool(o, "a", &b), 0);
                        assert_true(b);
                        assert_int_equal(cxpc_object_get_type(cxpc_dict_get(o, "b")), CXPC_TYPE_NULL);
                } else
                        assert_null(o);
                cxpc_object_unref(o);
        }
}

/* An entry of a hand-made dictionary record: a key and a null, int64 or string value. */
typedef struct DecodeEntry {
        const char *key;
        uint8_t tag; /* CXPC_TYPE_NULL, CXPC_TYPE_INT64 or CXPC_TYPE_STRING */
        int64_t i;
        const char *str;
} DecodeEntry;

/* The record of one dictionary of the given entries; returns its size (header included). */
static size_t make_dict_record(uint8_t *rec, size_t cap, const DecodeEntry *e, size_t n_entries) {
        size_t n = CXPC_FRAME_HEADER_SIZE;
        uint32_t count = (uint32_t) n_entries;
        rec[n++] = CXPC_TYPE_DICTIONARY;
        memcpy(rec + n, &count, 4), n += 4;
        for (size_t i = 0; i < n_entries; i++) {
                uint32_t l = (uint32_t) strlen(e[i].key);
                assert_true(n + 4 + l + 1 + 8 + 4 + (e[i].str ? strlen(e[i].str) : 0) <= cap);
                memcpy(rec + n, &l, 4), n += 4;
                memcpy(rec + n, e[i].key, l), n += l;
                rec[n++] = e[i].tag;
                if (e[i].tag == CXPC_TYPE_INT64)
                        memcpy(rec + n, &e[i].i, 8), n += 8;
                else if (e[i].tag == CXPC_TYPE_STRING) {
                        uint32_t sl = (uint32_t) strlen(e[i].str);
                        memcpy(rec + n, &sl, 4), n += 4;
                        memcpy(rec + n, e[i].str, sl), n += sl;
                }
        }
        put_record_header(rec, n);
        return n;
}

/* Decodes a record of the entries and checks every entry reads back. */
static void check_dict_record(const DecodeEntry *e, size_t n_entries) {
        uint8_t rec[4096];
        size_t n = make_dict_record(rec, sizeof(rec), e, n_entries);
        cxpc_object *o = NULL;
        assert_int_equal(cxpc_record_decode(rec, n, NULL, 0, &o, NULL), 0);
        assert_int_equal(cxpc_dict_get_count(o), n_entries);
        for (size_t i = 0; i < n_entries; i++) {
                cxpc_object *v = cxpc_dict_get(o, e[i].key);
                assert_non_null(v);
                assert_int_equal(cxpc_object_get_type(v), e[i].tag);
                if (e[i].tag == CXPC_TYPE_INT64) {
                        int64_t x;
                        assert_int_equal(cxpc_dict_get_int64(o, e[i].key, &x), 0);
                        assert_int_equal(x, e[i].i);
                } else if (e[i].tag == CXPC_TYPE_STRING) {
                        const char *p;
                        assert_int_equal(cxpc_string_get(v, &p), 0);
                        assert_string_equal(p, e[i].str);
                }
        }
        /* the keys are stored NUL-terminated: the encoder gives back the same bytes */
        _cleanup_(cxpc_frame_freep) cxpc_frame *f = NULL;
        assert_int_equal(cxpc_frame_encode(o, 1, 0, 0, &f), 0);
        assert_int_equal(f->record_size, n);
        assert_memory_equal(f->body, rec + CXPC_FRAME_HEADER_SIZE, n - CXPC_FRAME_HEADER_SIZE);
        cxpc_object_unref(o);
}

static void check_dict_record_refused(const DecodeEntry *e, size_t n_entries) {
        uint8_t rec[4096];
        size_t n = make_dict_record(rec, sizeof(rec), e, n_entries);
        cxpc_object *o = NULL;
        assert_int_equal(cxpc_record_decode(rec, n, NULL, 0, &o, NULL), -EBADMSG);
        assert_null(o);
}

/* Boundaries of the decoder's fast paths: keys of 1..24 bytes (the two-word copy covers up to 16
 * bytes, inline keys go up to 23) and short string values of 0..20 bytes (two words up to 16),
 * each ending the body (fewer than 16 bytes left from its start: the byte-wise copy) or followed
 * by more; first, middle or last of the dictionary; and each key repeated is refused. */
static void test_decode_boundary_keys(void **state) {
        char key[32], text[32];
        for (size_t len = 1; len <= 24; len++) {
                for (size_t i = 0; i < len; i++)
                        key[i] = (char) ('A' + (i * 7 + len) % 26);
                key[len] = 0;
                for (uint8_t tag = CXPC_TYPE_NULL; tag <= CXPC_TYPE_STRING; tag++) {
                        if (tag != CXPC_TYPE_NULL && tag != CXPC_TYPE_INT64 && tag != CXPC_TYPE_STRING)
                                continue;
                        for (size_t slen = 0; slen <= (tag == CXPC_TYPE_STRING ? 20u : 0u); slen++) {
                                memset(text, 'a' + (char) (slen % 26), slen);
                                text[slen] = 0;
                                DecodeEntry k = {key, tag, -(int64_t) len, text};
                                DecodeEntry a = {"a", CXPC_TYPE_INT64, 1, NULL};
                                DecodeEntry z = {"zz", CXPC_TYPE_STRING, 0, "route/x"};
                                DecodeEntry last[] = {a, z, k}, first[] = {k, a, z}, mid[] = {a, k, z},
                                            alone[] = {k};
                                check_dict_record(last, 3);
                                check_dict_record(first, 3);
                                check_dict_record(mid, 3);
                                check_dict_record(alone, 1);
                                DecodeEntry dup1[] = {k, k}, dup2[] = {k, a, k}, dup3[] = {a, k, z, k};
                                check_dict_record_refused(dup1, 2);
                                check_dict_record_refused(dup2, 3);
                                check_dict_record_refused(dup3, 4);
                        }
                }
        }
}

/* Duplicate keys are refused at every position of dictionaries of 1..20 entries (inline entries,
 * grown arrays, hashed ones), with keys whose cheap fingerprints differ and keys whose
 * fingerprints all collide (same length, first and last byte); distinct colliding keys are
 * accepted. Values alternate between inline scalars and strings (both insertion paths). */
static void test_decode_boundary_duplicates(void **state) {
        static const char *const distinct[] = {"a",  "b",   "c",   "route", "id",  "x1",      "x2",
                                               "y",  "foo", "bar", "baz",   "q",   "rr",      "sss",
                                               "tt", "u",   "v",   "wwww",  "xyz", "zzzzzzzz"};
        char colliding[20][8];
        for (size_t i = 0; i < 20; i++)
                snprintf(colliding[i], sizeof(colliding[i]), "k%c%ck", 'a' + (int) (i % 26),
                         'A' + (int) (i / 26));
        for (int set = 0; set < 2; set++)
                for (size_t n = 1; n <= 20; n++) {
                        DecodeEntry e[20];
                        for (size_t i = 0; i < n; i++)
                                e[i] = (DecodeEntry){
                                        .key = set == 0 ? distinct[i] : colliding[i],
                                        .tag = i % 2 ? CXPC_TYPE_STRING : CXPC_TYPE_INT64,
                                        .i = (int64_t) i,
                                        .str = "s",
                                };
                        check_dict_record(e, n);
                        for (size_t i = 0; i < n; i++)
                                for (size_t j = i + 1; j < n; j++) {
                                        DecodeEntry d[20];
                                        memcpy(d, e, sizeof(d[0]) * n);
                                        d[j].key = d[i].key;
                                        check_dict_record_refused(d, n);
                                }
                }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_all_types),
                cmocka_unit_test(test_limits),
                cmocka_unit_test(test_data_memfd_roundtrip),
                cmocka_unit_test(test_data_memfd_echo),
                cmocka_unit_test(test_data_sizes),
                cmocka_unit_test(test_data_memfd_equal),
                cmocka_unit_test(test_data_memfd_tampered),
                cmocka_unit_test(test_data_memfd_fd_limit),
                cmocka_unit_test(test_body_memfd_with_data_memfd),
                cmocka_unit_test(test_memfd_unsealed),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_bad_utf8),
                cmocka_unit_test(test_big_dict),
                cmocka_unit_test(test_eof),
                cmocka_unit_test(test_small_frame_boundary),
                cmocka_unit_test(test_small_frame_fallbacks),
                cmocka_unit_test(test_key_lengths),
                cmocka_unit_test(test_short_utf8),
                cmocka_unit_test(test_string_sizes),
                cmocka_unit_test(test_short_string_values),
                cmocka_unit_test(test_inline_scalars),
                cmocka_unit_test(test_decode_boundary_keys),
                cmocka_unit_test(test_decode_boundary_duplicates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
