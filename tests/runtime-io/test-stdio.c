/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stdio relay: 100 MB through tee/splice with the client and the log byte-identical (sha256),
 * stdout/stderr distinguished in the log, the read/write fallback (socket client), log-only,
 * stdin, follow-mode reader (and that it waits for an event, not a timer). */
#include <openssl/evp.h>
#include <pthread.h>
#include <endian.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "io-test-util.h"
#include "io/stdio.h"

#define BIG_SIZE   (100U * 1024U * 1024U)
#define SMALL_SIZE (8U * 1024U * 1024U)

static char T[] = "/tmp/test-stdio-XXXXXX";
static char log_path[128];
static int fds_before;

/* Deterministic bytes (xorshift), so the producer and the checker agree without sharing memory. */
static void fill(uint8_t *buf, size_t len, uint64_t *state) {
        for (size_t i = 0; i < len; i++) {
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                buf[i] = (uint8_t) *state;
        }
}

static void expected_digest(size_t total, uint8_t md[32]) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint64_t st = 0x1234567;
        uint8_t buf[65536];

        assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
        for (size_t done = 0; done < total;) {
                size_t n = MIN(sizeof(buf), total - done);
                fill(buf, n, &st);
                EVP_DigestUpdate(ctx, buf, n);
                done += n;
        }
        EVP_DigestFinal_ex(ctx, md, NULL);
        EVP_MD_CTX_free(ctx);
}

/* The "container process": writes total bytes to out_fd and a marker to err_fd, then exits. */
static pid_t spawn_producer(int out_fd, int err_fd, size_t total) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                uint64_t st = 0x1234567;
                uint8_t buf[65536];

                for (size_t done = 0; done < total;) {
                        size_t n = MIN(sizeof(buf), total - done);
                        fill(buf, n, &st);
                        for (size_t w = 0; w < n;) {
                                ssize_t k = write(out_fd, buf + w, n - w);
                                if (k <= 0)
                                        _exit(2);
                                w += (size_t) k;
                        }
                        done += n;
                }
                if (err_fd >= 0 && write(err_fd, "oops on stderr\n", 15) != 15)
                        _exit(3);
                _exit(0);
        }
        return pid;
}

typedef struct Reader {
        int fd;
        size_t total;
        uint8_t md[32];
} Reader;

static void *reader_thread(void *userdata) {
        Reader *r = userdata;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t buf[65536];
        ssize_t n;

        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        while ((n = read(r->fd, buf, sizeof(buf))) > 0) {
                EVP_DigestUpdate(ctx, buf, (size_t) n);
                r->total += (size_t) n;
        }
        EVP_DigestFinal_ex(ctx, r->md, NULL);
        EVP_MD_CTX_free(ctx);
        return NULL;
}

typedef struct LogDigest {
        EVP_MD_CTX *ctx;
        size_t out_bytes, err_bytes, frames;
        char err[64];
        uint64_t last_ts;
        bool ts_monotonic;
} LogDigest;

static int log_frame(uint64_t ts, StdioStream stream, const void *data, size_t len, void *userdata) {
        LogDigest *d = userdata;

        d->frames++;
        if (ts < d->last_ts)
                d->ts_monotonic = false;
        d->last_ts = ts;
        if (stream == STDIO_STREAM_STDOUT) {
                EVP_DigestUpdate(d->ctx, data, len);
                d->out_bytes += len;
        } else {
                assert_int_equal(stream, STDIO_STREAM_STDERR);
                memcpy(d->err + d->err_bytes, data, MIN(len, sizeof(d->err) - 1 - d->err_bytes));
                d->err_bytes += len;
        }
        return 0;
}

static void check_log(size_t expect_out, const uint8_t md[32], bool expect_err) {
        LogDigest d = {.ctx = EVP_MD_CTX_new(), .ts_monotonic = true};
        uint8_t got[32];
        int fd = open(log_path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL);
        assert_int_equal(stdio_log_read(fd, false, -EBADF, log_frame, &d), 0);
        EVP_DigestFinal_ex(d.ctx, got, NULL);
        EVP_MD_CTX_free(d.ctx);
        close(fd);
        assert_int_equal(d.out_bytes, expect_out);
        assert_memory_equal(got, md, 32);
        assert_true(d.ts_monotonic);
        assert_true(d.last_ts > 1600000000ULL * NSEC_PER_SEC);
        if (expect_err) {
                assert_int_equal(d.err_bytes, 15);
                assert_string_equal(d.err, "oops on stderr\n");
        } else
                assert_int_equal(d.err_bytes, 0);
}

static void on_done(StdioRelay *relay, int error, void *userdata) {
        int *done = userdata;
        *done = error < 0 ? error : 1;
}

/* Runs the relay of one producer; client_kind: 0 none, 1 pipe (tee/splice), 2 socket (fallback). */
static void run_relay(int client_kind, size_t total, bool with_log, Reader *reader) {
        _cleanup_(stdio_log_unrefp) StdioLog *log = NULL;
        sd_event *e = NULL;
        StdioRelay *relay = NULL;
        int out[2], err[2], cl[2] = {-EBADF, -EBADF}, done = 0, status;
        pthread_t t;
        pid_t pid;

        if (with_log)
                assert_int_equal(stdio_log_open(log_path, &log), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
        if (client_kind == 1)
                assert_int_equal(pipe2(cl, O_CLOEXEC), 0);
        else if (client_kind == 2)
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cl), 0);

        pid = spawn_producer(out[1], err[1], total);
        close(out[1]);
        close(err[1]);

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(stdio_relay_new(e, log, on_done, &done, &relay), 0);
        assert_int_equal(stdio_relay_add_output(relay, STDIO_STREAM_STDOUT, out[0], cl[1]), 0);
        /* stderr goes to the log only here, so the client stream stays comparable. */
        assert_int_equal(stdio_relay_add_output(relay, STDIO_STREAM_STDERR, err[0], -EBADF), 0);
        if (client_kind) {
                reader->fd = cl[0];
                assert_int_equal(pthread_create(&t, NULL, reader_thread, reader), 0);
        }
        while (done == 0)
                assert_true(sd_event_run(e, 30 * USEC_PER_SEC) > 0);
        assert_int_equal(done, 1);
        assert_true(stdio_relay_is_done(relay));
        stdio_relay_free(relay); /* closes the client's write end: the reader sees EOF */
        if (client_kind) {
                pthread_join(t, NULL);
                close(cl[0]);
        }
        sd_event_unref(e);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int setup(void **state) {
        strcpy(T, "/tmp/test-stdio-XXXXXX");
        assert_non_null(mkdtemp(T));
        snprintf(log_path, sizeof(log_path), "%s/container.log", T);
        fds_before = count_fds();
        return 0;
}

static int teardown(void **state) {
        assert_int_equal(count_fds(), fds_before);
        rm_rf(T);
        return 0;
}

static void test_relay_100mb_pipe(void **state) {
        Reader rd = {};
        uint8_t md[32];

        expected_digest(BIG_SIZE, md);
        run_relay(1, BIG_SIZE, true, &rd);
        assert_int_equal(rd.total, BIG_SIZE);
        assert_memory_equal(rd.md, md, 32);
        check_log(BIG_SIZE, md, true);
}

static void test_relay_socket_fallback(void **state) {
        Reader rd = {};
        uint8_t md[32];

        expected_digest(SMALL_SIZE, md);
        run_relay(2, SMALL_SIZE, true, &rd);
        assert_int_equal(rd.total, SMALL_SIZE);
        assert_memory_equal(rd.md, md, 32);
        check_log(SMALL_SIZE, md, true);
}

static void test_relay_pipe_no_log(void **state) {
        Reader rd = {};
        uint8_t md[32];

        expected_digest(SMALL_SIZE, md);
        run_relay(1, SMALL_SIZE, false, &rd);
        assert_int_equal(rd.total, SMALL_SIZE);
        assert_memory_equal(rd.md, md, 32);
        assert_int_equal(access(log_path, F_OK), -1);
}

static void test_log_only_and_append(void **state) {
        uint8_t md[32];
        LogDigest d = {.ctx = EVP_MD_CTX_new(), .ts_monotonic = true};
        int fd;

        expected_digest(SMALL_SIZE, md);
        run_relay(0, SMALL_SIZE, true, NULL);
        check_log(SMALL_SIZE, md, true);
        /* A second run appends (the service reopens the log after a restart). */
        run_relay(0, SMALL_SIZE, true, NULL);
        fd = open(log_path, O_RDONLY | O_CLOEXEC);
        EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL);
        assert_int_equal(stdio_log_read(fd, false, -EBADF, log_frame, &d), 0);
        EVP_MD_CTX_free(d.ctx);
        close(fd);
        assert_int_equal(d.out_bytes, 2 * SMALL_SIZE);
        assert_int_equal(d.err_bytes, 30);
}

static int stop_after_two(uint64_t ts, StdioStream stream, const void *data, size_t len, void *userdata) {
        int *n = userdata;
        return ++*n == 2 ? 1 : 0;
}

static void test_log_follow(void **state) {
        _cleanup_(stdio_log_unrefp) StdioLog *log = NULL;
        int fd, n = 0, stop[2];

        assert_int_equal(stdio_log_open(log_path, &log), 0);
        assert_int_equal(stdio_log_write(log, STDIO_STREAM_STDOUT, "one", 3), 0);
        fd = open(log_path, O_RDONLY | O_CLOEXEC);
        /* Follow: the second frame does not exist yet; write it from a child while we wait. */
        pid_t pid = fork();
        if (pid == 0) {
                usleep(150 * 1000);
                _exit(stdio_log_write(log, STDIO_STREAM_STDERR, "two", 3) < 0);
        }
        assert_int_equal(stdio_log_read(fd, true, -EBADF, stop_after_two, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(waitpid(pid, NULL, 0), pid);
        /* stop_fd ends following. */
        assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
        assert_int_equal(write(stop[1], "x", 1), 1);
        /* The child appended through its copy: reopen to learn the new end. */
        log = stdio_log_unref(log);
        assert_int_equal(stdio_log_open(log_path, &log), 0);
        assert_int_equal(stdio_log_write(log, STDIO_STREAM_STDOUT, "three", 5), 0);
        n = -2; /* would stop at the 4th frame, which never comes: stop_fd must end it */
        assert_int_equal(stdio_log_read(fd, true, stop[0], stop_after_two, &n), 0);
        assert_int_equal(n, 1);
        close(stop[0]);
        close(stop[1]);
        close(fd);
        /* Not a log: refused. */
        fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
        assert_int_equal(stdio_log_read(fd, false, -EBADF, stop_after_two, &n), -EBADMSG);
        close(fd);
}

/* ---- follow without a timer ---- */

typedef struct Follower {
        int log_fd;
        int stop_fd;
        int note_fd; /* 'f' per frame, 'e' when stdio_log_read() returned */
        pid_t tid;
        int r;
        int frames;
        char last[16];
} Follower;

static int follower_frame(uint64_t ts, StdioStream stream, const void *data, size_t len, void *userdata) {
        Follower *fl = userdata;
        size_t n = MIN(len, sizeof(fl->last) - 1);

        memcpy(fl->last, data, n);
        fl->last[n] = 0;
        fl->frames++;
        assert_int_equal(write(fl->note_fd, "f", 1), 1);
        return 0;
}

static void *follower_main(void *userdata) {
        Follower *fl = userdata;

        __atomic_store_n(&fl->tid, gettid(), __ATOMIC_RELEASE);
        fl->r = stdio_log_read(fl->log_fd, true, fl->stop_fd, follower_frame, fl);
        assert_int_equal(write(fl->note_fd, "e", 1), 1);
        return NULL;
}

/* Waits (up to 5 s) until thread tid sleeps in poll() without a timeout, as the kernel shows it
 * in /proc/self/task/TID/syscall: "NR fds nfds timeout ..." for poll (timeout -1), or ppoll with
 * a NULL timespec. That is the proof that nothing but an event can wake the follower. */
static void wait_blocked_in_poll(pid_t tid) {
        char path[64], buf[256] = "";

        snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int) tid);
        for (int i = 0; i < 500; i++) {
                unsigned long a[4] = {};
                long nr = -1;
                FILE *f = fopen(path, "re");

                assert_non_null(f);
                if (!fgets(buf, sizeof(buf), f))
                        buf[0] = 0;
                fclose(f);
                if (sscanf(buf, "%ld %lx %lx %lx %lx", &nr, &a[0], &a[1], &a[2], &a[3]) == 5) {
#ifdef SYS_poll
                        if (nr == SYS_poll && (uint32_t) a[2] == UINT32_MAX)
                                return;
#endif
                        if (nr == SYS_ppoll && a[2] == 0)
                                return;
                }
                usleep(10 * 1000);
        }
        fail_msg("the follower is not waiting in poll() without a timeout: syscall %s", buf);
}

/* The next note from the follower, within 1 s (far less than a human notices; the follower itself
 * has no timer at all). */
static char next_note(int fd) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char c = 0;

        if (poll(&pfd, 1, 1000) != 1)
                fail_msg("no frame from the follower within 1 s");
        assert_int_equal(read(fd, &c, 1), 1);
        return c;
}

static void test_log_follow_event(void **state) {
        _cleanup_(stdio_log_unrefp) StdioLog *log = NULL;
        /* Static: a failed assertion leaves this function while the thread may still use it. */
        static Follower fl;
        int note[2], stop[2], p[2];
        uint8_t h[STDIO_LOG_HEADER_SIZE] = {};
        uint32_t len_le = htole32(4);
        struct stat st;
        pthread_t t;

        assert_int_equal(stdio_log_open(log_path, &log), 0);
        assert_int_equal(stdio_log_write(log, STDIO_STREAM_STDOUT, "one", 3), 0);
        fl = (Follower){.r = 1};
        assert_int_equal(pipe2(note, O_CLOEXEC), 0);
        assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
        fl.log_fd = open(log_path, O_RDONLY | O_CLOEXEC);
        assert_true(fl.log_fd >= 0);
        fl.stop_fd = stop[0];
        fl.note_fd = note[1];
        assert_int_equal(pthread_create(&t, NULL, follower_main, &fl), 0);
        assert_int_equal(next_note(note[0]), 'f');
        while (__atomic_load_n(&fl.tid, __ATOMIC_ACQUIRE) == 0)
                usleep(1000);

        /* A frame written (pwritev) while the follower waits. */
        wait_blocked_in_poll(fl.tid);
        assert_int_equal(stdio_log_write(log, STDIO_STREAM_STDERR, "two", 3), 0);
        assert_int_equal(next_note(note[0]), 'f');
        assert_string_equal(fl.last, "two");

        /* One spliced from a pipe, as the relay logs. */
        wait_blocked_in_poll(fl.tid);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(write(p[1], "three", 5), 5);
        assert_int_equal(stdio_log_splice(log, STDIO_STREAM_STDOUT, p[0], 5), 0);
        close(p[0]);
        close(p[1]);
        assert_int_equal(next_note(note[0]), 'f');
        assert_string_equal(fl.last, "three");

        /* A header whose data comes later: the follower waits for the rest, again without a timer. */
        assert_int_equal(fstat(fl.log_fd, &st), 0);
        h[8] = STDIO_STREAM_STDOUT;
        memcpy(h + 9, &len_le, 4);
        {
                int wfd = open(log_path, O_WRONLY | O_CLOEXEC);
                assert_true(wfd >= 0);
                assert_int_equal(pwrite(wfd, h, sizeof(h), st.st_size), (ssize_t) sizeof(h));
                wait_blocked_in_poll(fl.tid);
                assert_int_equal(fl.frames, 3);
                assert_int_equal(pwrite(wfd, "four", 4, st.st_size + (off_t) sizeof(h)), 4);
                close(wfd);
        }
        assert_int_equal(next_note(note[0]), 'f');
        assert_string_equal(fl.last, "four");

        /* stop_fd ends the wait. */
        wait_blocked_in_poll(fl.tid);
        assert_int_equal(write(stop[1], "x", 1), 1);
        assert_int_equal(next_note(note[0]), 'e');
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(fl.r, 0);
        assert_int_equal(fl.frames, 4);
        close(fl.log_fd);
        close_many(note, 2);
        close_many(stop, 2);
}

static void test_stdin(void **state) {
        sd_event *e = NULL;
        StdioRelay *relay = NULL;
        int cin[2], pin[2], out[2], done = 0;
        char buf[64] = {};
        ssize_t n, total = 0;

        assert_int_equal(pipe2(cin, O_CLOEXEC), 0);
        assert_int_equal(pipe2(pin, O_CLOEXEC), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(stdio_relay_new(e, NULL, on_done, &done, &relay), 0);
        assert_int_equal(stdio_relay_add_input(relay, cin[0], pin[1]), 0);
        assert_int_equal(stdio_relay_add_output(relay, STDIO_STREAM_STDOUT, out[0], -EBADF), 0);
        assert_int_equal(write(cin[1], "typed input", 11), 11);
        close(cin[1]); /* client EOF → the process's stdin must see EOF */
        for (int i = 0; i < 50; i++)
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        while ((n = read(pin[0], buf + total, sizeof(buf) - 1 - (size_t) total)) > 0)
                total += n;
        assert_int_equal(n, 0); /* EOF, not EAGAIN: the write end was closed */
        assert_string_equal(buf, "typed input");
        close(pin[0]);
        close(out[1]);
        while (done == 0)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        stdio_relay_free(relay);
        sd_event_unref(e);
}

static void test_detach_keeps_logging(void **state) {
        _cleanup_(stdio_log_unrefp) StdioLog *log = NULL;
        sd_event *e = NULL;
        StdioRelay *relay = NULL;
        int out[2], cl[2], done = 0;
        char buf[16];
        LogDigest d = {.ctx = EVP_MD_CTX_new(), .ts_monotonic = true};
        int fd;

        assert_int_equal(stdio_log_open(log_path, &log), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(pipe2(cl, O_CLOEXEC), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(stdio_relay_new(e, log, on_done, &done, &relay), 0);
        assert_int_equal(stdio_relay_add_output(relay, STDIO_STREAM_STDOUT, out[0], cl[1]), 0);
        assert_int_equal(fcntl(cl[0], F_SETFL, O_NONBLOCK), 0);
        assert_int_equal(write(out[1], "before", 6), 6);
        while (read(cl[0], buf, sizeof(buf)) <= 0)
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        close(cl[0]); /* the client goes away without telling */
        assert_int_equal(write(out[1], "after1", 6), 6);
        for (int i = 0; i < 10; i++)
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        stdio_relay_detach_client(relay);
        assert_int_equal(write(out[1], "after2", 6), 6);
        close(out[1]);
        while (done == 0)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        stdio_relay_free(relay);
        sd_event_unref(e);

        fd = open(log_path, O_RDONLY | O_CLOEXEC);
        EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL);
        assert_int_equal(stdio_log_read(fd, false, -EBADF, log_frame, &d), 0);
        EVP_MD_CTX_free(d.ctx);
        close(fd);
        assert_int_equal(d.out_bytes, 18);
}

static void test_mode_pick(void **state) {
        assert_int_equal(stdio_mode_pick(false, false, true), STDIO_MODE_DIRECT);
        assert_int_equal(stdio_mode_pick(false, false, false), STDIO_MODE_DIRECT);
        assert_int_equal(stdio_mode_pick(true, false, true), STDIO_MODE_LOG_RELAY);
        assert_int_equal(stdio_mode_pick(true, false, false), STDIO_MODE_LOG_ONLY);
        assert_int_equal(stdio_mode_pick(false, true, true), STDIO_MODE_LOG_RELAY);
        assert_string_equal(stdio_mode_to_string(STDIO_MODE_DIRECT), "direct");
        assert_string_equal(stdio_stream_to_string(STDIO_STREAM_STDERR), "stderr");
        assert_null(stdio_stream_to_string(_STDIO_STREAM_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_relay_100mb_pipe, setup, teardown),
                cmocka_unit_test_setup_teardown(test_relay_socket_fallback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_relay_pipe_no_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_only_and_append, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_follow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_log_follow_event, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stdin, setup, teardown),
                cmocka_unit_test_setup_teardown(test_detach_keeps_logging, setup, teardown),
                cmocka_unit_test_setup_teardown(test_mode_pick, setup, teardown),
        };

        (void) signal(SIGPIPE, SIG_IGN); /* as the service does */
        if (getenv("TEST_FILTER"))
                cmocka_set_test_filter(getenv("TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
