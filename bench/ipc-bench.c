/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libcxpc against a raw AF_UNIX SOCK_SEQPACKET ping-pong, measured in one run (run it through
 * bench/ipc, which pins everything to one CPU). Prints the figures and, last, exactly:
 *   p50_ratio=X tput_ratio=Y data_mb_s=Z
 * The libcxpc server of the last line serves its connection the way the raw server does, blocking
 * in recvmsg() (cxpc_connection_run()); the same server on an sd-event loop is measured and printed
 * beside it, with the floor of any sd-event server (an io source answering with recvmsg()/send(),
 * no codec).
 * X: libcxpc p50 round trip / raw p50 round trip (request: dict{route, a, b}; reply: dict{sum}),
 *    the median over BENCH_ROUNDS rounds of each round's ratio; within a round all kinds are
 *    measured in interleaved blocks against servers that stay up.
 * Y: libcxpc pipelined throughput (64 in flight) / raw pipelined throughput, the median of the
 *    rounds' ratios.
 * Z: MB/s (10^6 bytes) of a 64 MiB data value created from a malloc'd buffer, sent and echoed
 *    back, counting the value once per round trip (the conservative reading). Creating the value
 *    is inside the timing: it is the one copy a sender pays (large values then travel as sealed
 *    memfds and are never copied again). The forwarding cost of an existing value is printed too. */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "cxpc/cxpc.h"
#include "macro.h"

#define BENCH_ROUNDS            7 /* interleaved; the VM wakes tasks bimodally, so medians need several */
#define BENCH_WARMUP            2000
#define BENCH_PINGS             20000
#define BENCH_BLOCK             100 /* pings of one kind before the next kind's turn */
#define BENCH_PIPELINE_DEPTH    64
#define BENCH_PIPELINE_MESSAGES 100000
#define BENCH_DATA_SIZE         (64u * 1024u * 1024u)
#define BENCH_DATA_ROUNDS       5
#define RAW_REQUEST_SIZE        96 /* about the size of the encoded libcxpc request */
#define RAW_REPLY_SIZE          48

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_u64);
        return v[n / 2];
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Sorts v: the rounds' ratios are printed before this is called. */
static double median_double(double *v, size_t n) {
        qsort(v, n, sizeof(*v), cmp_double);
        return v[n / 2];
}

static _noreturn_ void die(const char *what, int r) {
        fprintf(stderr, "ipc-bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(EXIT_FAILURE);
}

/* ---- raw SEQPACKET ---- */

static _noreturn_ void raw_server(int fd) {
        char buf[RAW_REQUEST_SIZE], reply[RAW_REPLY_SIZE] = {};
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        _exit(0);
                if (send(fd, reply, sizeof(reply), MSG_NOSIGNAL) < 0)
                        _exit(1);
        }
}

static pid_t fork_server(_noreturn_ void (*serve)(int fd), int *ret_fd) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair", errno);
        pid_t pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                close(sv[0]);
                serve(sv[1]);
        }
        close(sv[1]);
        *ret_fd = sv[0];
        return pid;
}

/* One round trip on fd in ns: send() the request, then recv(), or recvmsg() with room for fds as
 * libcxpc's client does (with_control). */
static uint64_t raw_ping(int fd, bool with_control) {
        char req[RAW_REQUEST_SIZE] = {}, buf[RAW_REPLY_SIZE * 2], control[CMSG_SPACE(sizeof(int) * 64)];
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};

        uint64_t t0 = now_ns();
        if (send(fd, req, sizeof(req), MSG_NOSIGNAL) < 0 ||
            (with_control ? recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) : recv(fd, buf, sizeof(buf), 0)) <= 0)
                die("ping", errno);
        return now_ns() - t0;
}

static double raw_throughput(void) {
        int fd;
        pid_t pid = fork_server(raw_server, &fd);
        char req[RAW_REQUEST_SIZE] = {}, buf[RAW_REPLY_SIZE];
        size_t sent = 0, received = 0;

        uint64_t t0 = now_ns();
        while (sent < BENCH_PIPELINE_DEPTH) {
                if (send(fd, req, sizeof(req), MSG_NOSIGNAL) < 0)
                        die("raw send", errno);
                sent++;
        }
        while (received < BENCH_PIPELINE_MESSAGES) {
                if (recv(fd, buf, sizeof(buf), 0) <= 0)
                        die("raw recv", errno);
                received++;
                if (sent < BENCH_PIPELINE_MESSAGES) {
                        if (send(fd, req, sizeof(req), MSG_NOSIGNAL) < 0)
                                die("raw send", errno);
                        sent++;
                }
        }
        uint64_t dt = now_ns() - t0;
        close(fd);
        waitpid(pid, NULL, 0);
        return (double) BENCH_PIPELINE_MESSAGES / ((double) dt / 1e9);
}

/* ---- the floor of any sd-event server: an io source that answers with recvmsg()/send(), no
 * codec, against the same client calls libcxpc makes (send(), recvmsg() with room for fds) ---- */

static int on_floor_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        static char buf[RAW_REQUEST_SIZE * 2];
        char control[CMSG_SPACE(sizeof(int) * 64)];
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control)};
        static const char reply[RAW_REPLY_SIZE];

        if (recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0) {
                sd_event_exit(sd_event_source_get_event(s), 0);
                return 0;
        }
        (void) send(fd, reply, sizeof(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
        return 0;
}

static _noreturn_ void floor_server(int fd) {
        sd_event *e = NULL;

        if (sd_event_new(&e) < 0 || sd_event_add_io(e, NULL, fd, EPOLLIN, on_floor_io, NULL) < 0)
                _exit(1);
        _exit(sd_event_loop(e) < 0 ? 1 : 0);
}

/* ---- libcxpc ---- */

static int on_ping(cxpc_connection *c, cxpc_object *m, void *userdata) {
        int64_t a, b;
        int r = cxpc_dict_get_int64(m, "a", &a);
        if (r < 0)
                return r;
        r = cxpc_dict_get_int64(m, "b", &b);
        if (r < 0)
                return r;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_dict_set_int64(reply, "sum", a + b);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, m, reply);
}

static int on_echo(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *data = cxpc_dict_get(m, "data");
        if (!data)
                return -EINVAL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        int r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_dict_set(reply, "data", data);
        if (r < 0)
                return r;
        return cxpc_connection_reply(c, m, reply);
}

static void on_server_disconnect(cxpc_connection *c, void *userdata) {
        sd_event_exit(cxpc_connection_get_event(c), 0);
}

/* The server end of a bench connection: fd wrapped, the bench's routes set. Dies on failure. */
static cxpc_connection *bench_server_connection(int fd) {
        _cleanup_(cxpc_router_unrefp) cxpc_router *router = NULL;
        cxpc_connection *c = NULL;
        int r;

        if ((r = cxpc_router_new(&router)) < 0 ||
            (r = cxpc_router_add(router, "bench/ping", on_ping, NULL)) < 0 ||
            (r = cxpc_router_add(router, "bench/echo", on_echo, NULL)) < 0 ||
            (r = cxpc_connection_new_from_fd(fd, &c)) < 0 || (r = cxpc_connection_set_router(c, router)) < 0)
                die("server setup", r);
        return c;
}

static _noreturn_ void cxpc_server(int fd) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *c = bench_server_connection(fd);
        int r;

        if ((r = sd_event_new(&e)) < 0 ||
            (r = cxpc_connection_add_disconnect_handler(c, on_server_disconnect, NULL)) < 0 ||
            (r = cxpc_connection_attach_event(c, e, 0)) < 0)
                die("server setup", r);
        r = sd_event_loop(e);
        _exit(r < 0 ? 1 : 0);
}

/* The same routes served without an event loop, blocking in recvmsg() like raw_server(). */
static _noreturn_ void cxpc_run_server(int fd) {
        _cleanup_(cxpc_connection_unrefp) cxpc_connection *c = bench_server_connection(fd);
        _exit(cxpc_connection_run(c, CXPC_INFINITY) < 0 ? 1 : 0);
}

static pid_t fork_cxpc_server(_noreturn_ void (*serve)(int fd), cxpc_connection **ret) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair", errno);
        pid_t pid = fork();
        if (pid < 0)
                die("fork", errno);
        if (pid == 0) {
                close(sv[0]);
                serve(sv[1]);
        }
        close(sv[1]);
        int r = cxpc_connection_new_from_fd(sv[0], ret);
        if (r < 0)
                die("client connection", r);
        return pid;
}

static int make_ping(int64_t i, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r = cxpc_message_new_request("bench/ping", &m);
        if (r < 0)
                return r;
        if ((r = cxpc_dict_set_int64(m, "a", i)) < 0 || (r = cxpc_dict_set_int64(m, "b", 1)) < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

/* One libcxpc round trip in ns: build the request, call, read the reply. */
static uint64_t cxpc_ping(cxpc_connection *c, int64_t i) {
        uint64_t t0 = now_ns();
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL, *reply = NULL;
        int64_t sum;
        int r = make_ping(i, &m);
        if (r < 0)
                die("request", r);
        r = cxpc_connection_call(c, m, CXPC_DEFAULT_TIMEOUT_USEC, &reply);
        if (r < 0)
                die("call", r);
        r = cxpc_dict_get_int64(reply, "sum", &sum);
        if (r < 0 || sum != i + 1)
                die("reply", r < 0 ? r : -EBADMSG);
        return now_ns() - t0;
}

typedef enum PingKind {
        PING_RAW,      /* raw_server, recv() */
        PING_FLOOR,    /* floor_server, recvmsg() with room for fds */
        PING_CXPC,     /* cxpc_server(): an sd-event loop */
        PING_CXPC_RUN, /* cxpc_run_server(): cxpc_connection_run() */
        _PING_KIND_MAX,
} PingKind;

typedef struct p50_result {
        uint64_t p50[_PING_KIND_MAX];
} p50_result;

/* The p50 round trip of each kind, against servers that all stay up, in blocks of BENCH_BLOCK
 * pings taken in turn (the order rotating): the VM changes speed in phases that last longer than
 * a block, and interleaving makes each phase weigh the same in every kind. only_kind limits the
 * run to one kind (profiling), or is _PING_KIND_MAX. */
static p50_result p50_interleaved(PingKind only_kind) {
        static uint64_t samples[_PING_KIND_MAX][BENCH_PINGS];
        int raw_fd, floor_fd;
        cxpc_connection *c;
        pid_t raw_pid = fork_server(raw_server, &raw_fd);
        pid_t floor_pid = fork_server(floor_server, &floor_fd);
        pid_t cxpc_pid = fork_cxpc_server(cxpc_server, &c);
        cxpc_connection *c_run;
        pid_t run_pid = fork_cxpc_server(cxpc_run_server, &c_run);
        size_t n_blocks = (BENCH_WARMUP + BENCH_PINGS) / BENCH_BLOCK;
        int64_t cxpc_i = 0;

        for (size_t block = 0; block < n_blocks; block++)
                for (size_t turn = 0; turn < _PING_KIND_MAX; turn++) {
                        PingKind kind = (PingKind) ((block + turn) % _PING_KIND_MAX);
                        if (only_kind != _PING_KIND_MAX && kind != only_kind)
                                continue;
                        for (size_t i = 0; i < BENCH_BLOCK; i++) {
                                uint64_t dt = kind == PING_RAW     ? raw_ping(raw_fd, false)
                                              : kind == PING_FLOOR ? raw_ping(floor_fd, true)
                                              : kind == PING_CXPC  ? cxpc_ping(c, cxpc_i++)
                                                                   : cxpc_ping(c_run, cxpc_i++);
                                size_t sample = block * BENCH_BLOCK + i;
                                if (sample >= BENCH_WARMUP)
                                        samples[kind][sample - BENCH_WARMUP] = dt;
                        }
                }
        close(raw_fd);
        close(floor_fd);
        cxpc_connection_close_unref(c);
        cxpc_connection_close_unref(c_run);
        waitpid(raw_pid, NULL, 0);
        waitpid(floor_pid, NULL, 0);
        waitpid(cxpc_pid, NULL, 0);
        waitpid(run_pid, NULL, 0);

        p50_result result = {};
        for (size_t kind = 0; kind < _PING_KIND_MAX; kind++)
                if (only_kind == _PING_KIND_MAX || kind == only_kind)
                        result.p50[kind] = median(samples[kind], BENCH_PINGS);
        return result;
}

typedef struct pipeline {
        cxpc_connection *c;
        size_t sent, received;
        int error;
} pipeline;

static int pipeline_send(pipeline *p);

static void on_pipeline_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        pipeline *p = userdata;
        int64_t sum;
        if (cxpc_dict_get_int64(reply, "sum", &sum) < 0) {
                p->error = -EBADMSG;
                sd_event_exit(cxpc_connection_get_event(c), 1);
                return;
        }
        p->received++;
        if (p->received == BENCH_PIPELINE_MESSAGES) {
                sd_event_exit(cxpc_connection_get_event(c), 0);
                return;
        }
        if (p->sent < BENCH_PIPELINE_MESSAGES) {
                int r = pipeline_send(p);
                if (r < 0) {
                        p->error = r;
                        sd_event_exit(cxpc_connection_get_event(c), 1);
                }
        }
}

static int pipeline_send(pipeline *p) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r = make_ping((int64_t) p->sent, &m);
        if (r < 0)
                return r;
        r = cxpc_connection_call_async(p->c, m, CXPC_DEFAULT_TIMEOUT_USEC, on_pipeline_reply, p);
        if (r < 0)
                return r;
        p->sent++;
        return 0;
}

/* Pipelined calls against a server of the given kind (cxpc_server or cxpc_run_server). */
static double cxpc_throughput(_noreturn_ void (*serve)(int fd)) {
        _cleanup_(sd_event_unrefp) sd_event *e = NULL;
        pipeline p = {};
        pid_t pid = fork_cxpc_server(serve, &p.c);
        int r;

        if ((r = sd_event_new(&e)) < 0 || (r = cxpc_connection_attach_event(p.c, e, 0)) < 0)
                die("client loop", r);
        uint64_t t0 = now_ns();
        for (size_t i = 0; i < BENCH_PIPELINE_DEPTH; i++)
                if ((r = pipeline_send(&p)) < 0)
                        die("async call", r);
        r = sd_event_loop(e);
        uint64_t dt = now_ns() - t0;
        if (r != 0 || p.error < 0)
                die("pipeline", p.error < 0 ? p.error : -EIO);
        cxpc_connection_close_unref(p.c);
        waitpid(pid, NULL, 0);
        return (double) BENCH_PIPELINE_MESSAGES / ((double) dt / 1e9);
}

/* The one copy any sender of new bytes pays here: a new memfd filled by one write() and sealed,
 * without IPC. On this kind of VM the kernel's page allocation dominates it. */
static uint64_t memfd_fill_ns(const uint8_t *payload) {
        uint64_t t0 = now_ns();
        int fd = memfd_create("bench-floor", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                die("memfd_create", errno);
        for (size_t done = 0; done < BENCH_DATA_SIZE;) {
                ssize_t n = write(fd, payload + done, BENCH_DATA_SIZE - done);
                if (n <= 0)
                        die("memfd write", n < 0 ? errno : EIO);
                done += (size_t) n;
        }
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
                die("seals", errno);
        uint64_t dt = now_ns() - t0;
        close(fd);
        return dt;
}

typedef struct data_result {
        double created_mb_s;  /* the target's figure: value created, sent and echoed */
        double existing_mb_s; /* an existing value sent and echoed: its sealed memfd is passed along */
        double floor_mb_s;    /* memfd_fill_ns() alone */
} data_result;

static data_result cxpc_data_mb_s(void) {
        cxpc_connection *c;
        pid_t pid = fork_cxpc_server(cxpc_run_server, &c);
        uint64_t samples[BENCH_DATA_ROUNDS], existing[BENCH_DATA_ROUNDS], floor_ns[BENCH_DATA_ROUNDS];
        _cleanup_free_ uint8_t *payload = malloc(BENCH_DATA_SIZE);
        if (!payload)
                die("malloc", ENOMEM);
        for (size_t i = 0; i < BENCH_DATA_SIZE; i++)
                payload[i] = (uint8_t) (i * 7u + 3u);

        for (size_t round = 0; round < BENCH_DATA_ROUNDS + 1; round++) {
                /* Interleaved with the others, so that drift in the machine hits all alike. */
                uint64_t fill = memfd_fill_ns(payload);
                if (round > 0) /* the first round warms up */
                        floor_ns[round - 1] = fill;
                for (int mode = 0; mode < 2; mode++) {
                        /* mode 0: create + send + echo; mode 1: send + echo of an existing value */
                        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL, *reply = NULL, *data = NULL;
                        int r;
                        uint64_t t0 = now_ns();
                        r = cxpc_data_new(payload, BENCH_DATA_SIZE, &data);
                        if (r < 0)
                                die("data", r);
                        if (mode == 1)
                                t0 = now_ns();
                        if ((r = cxpc_message_new_request("bench/echo", &m)) < 0 ||
                            (r = cxpc_dict_set(m, "data", data)) < 0)
                                die("request", r);
                        r = cxpc_connection_call(c, m, 60 * USEC_PER_SEC, &reply);
                        if (r < 0)
                                die("echo call", r);
                        const void *p;
                        size_t size;
                        r = cxpc_dict_get_data(reply, "data", &p, &size);
                        if (r < 0 || size != BENCH_DATA_SIZE)
                                die("echo reply", r < 0 ? r : -EBADMSG);
                        uint64_t dt = now_ns() - t0;
                        /* Check content outside the timed part. */
                        if (memcmp(p, payload, BENCH_DATA_SIZE) != 0)
                                die("echo content", EBADMSG);
                        if (round > 0)
                                (mode == 0 ? samples : existing)[round - 1] = dt;
                }
        }
        cxpc_connection_close_unref(c);
        waitpid(pid, NULL, 0);
        double mb = (double) BENCH_DATA_SIZE / 1e6;
        return (data_result){
                .created_mb_s = mb / ((double) median(samples, BENCH_DATA_ROUNDS) / 1e9),
                .existing_mb_s = mb / ((double) median(existing, BENCH_DATA_ROUNDS) / 1e9),
                .floor_mb_s = mb / ((double) median(floor_ns, BENCH_DATA_ROUNDS) / 1e9),
        };
}

int main(void) {
        signal(SIGPIPE, SIG_IGN);

        /* For profiling one part at a time:
         * IPC_BENCH_ONLY=raw-tput|cxpc-tput|cxpc-run-tput|raw-p50|floor-p50|cxpc-p50|cxpc-run-p50|data */
        const char *only = getenv("IPC_BENCH_ONLY");
        if (only) {
                if (streq(only, "raw-tput"))
                        printf("%.0f msg/s\n", raw_throughput());
                else if (streq(only, "cxpc-tput"))
                        printf("%.0f msg/s\n", cxpc_throughput(cxpc_server));
                else if (streq(only, "cxpc-run-tput"))
                        printf("%.0f msg/s\n", cxpc_throughput(cxpc_run_server));
                else if (streq(only, "raw-p50"))
                        printf("%.2f us\n", (double) p50_interleaved(PING_RAW).p50[PING_RAW] / 1e3);
                else if (streq(only, "floor-p50"))
                        printf("%.2f us\n", (double) p50_interleaved(PING_FLOOR).p50[PING_FLOOR] / 1e3);
                else if (streq(only, "cxpc-p50"))
                        printf("%.2f us\n", (double) p50_interleaved(PING_CXPC).p50[PING_CXPC] / 1e3);
                else if (streq(only, "cxpc-run-p50"))
                        printf("%.2f us\n",
                               (double) p50_interleaved(PING_CXPC_RUN).p50[PING_CXPC_RUN] / 1e3);
                else if (streq(only, "data")) {
                        data_result d = cxpc_data_mb_s();
                        printf("%.0f MB/s (memfd fill floor %.0f MB/s)\n", d.created_mb_s, d.floor_mb_s);
                } else
                        return EXIT_FAILURE;
                return 0;
        }

        /* Each round measures libcxpc and its baseline side by side (the p50s in interleaved
         * blocks), and the figures are the medians of the rounds' ratios: the VM's speed changes
         * between rounds, but within one round it is the same for both. */
        double p50_ratio[BENCH_ROUNDS], event_ratio[BENCH_ROUNDS], floor_ratio[BENCH_ROUNDS],
                tput_ratio[BENCH_ROUNDS], event_tput_ratio[BENCH_ROUNDS];
        for (size_t i = 0; i < BENCH_ROUNDS; i++) {
                p50_result p50 = p50_interleaved(_PING_KIND_MAX);
                double raw_tp = raw_throughput(), lib_tp = cxpc_throughput(cxpc_run_server),
                       event_tp = cxpc_throughput(cxpc_server);
                double raw = (double) p50.p50[PING_RAW];
                p50_ratio[i] = (double) p50.p50[PING_CXPC_RUN] / raw;
                event_ratio[i] = (double) p50.p50[PING_CXPC] / raw;
                floor_ratio[i] = (double) p50.p50[PING_FLOOR] / raw;
                tput_ratio[i] = lib_tp / raw_tp;
                event_tput_ratio[i] = event_tp / raw_tp;
                printf("round %zu: raw p50 %.2f us, pipelined %.0f msg/s; libcxpc p50 %.2f us (%.3f x), "
                       "pipelined %.0f msg/s (%.3f x); on sd-event: floor p50 %.2f us (%.3f x), libcxpc "
                       "p50 %.2f us (%.3f x), pipelined %.0f msg/s (%.3f x)\n",
                       i, raw / 1e3, raw_tp, (double) p50.p50[PING_CXPC_RUN] / 1e3, p50_ratio[i], lib_tp,
                       tput_ratio[i], (double) p50.p50[PING_FLOOR] / 1e3, floor_ratio[i],
                       (double) p50.p50[PING_CXPC] / 1e3, event_ratio[i], event_tp, event_tput_ratio[i]);
                fflush(stdout);
        }
        data_result d = cxpc_data_mb_s();

        /* Not targets: the same server on an sd-event loop, and what any server on an sd-event loop
         * pays here before it decodes anything. */
        printf("libcxpc server on an sd-event loop: p50 %.3f x raw, pipelined %.3f x raw; sd-event floor "
               "(io source answering with recvmsg/send, no codec): p50 %.3f x raw\n",
               median_double(event_ratio, BENCH_ROUNDS), median_double(event_tput_ratio, BENCH_ROUNDS),
               median_double(floor_ratio, BENCH_ROUNDS));
        printf("64 MiB value created, sent and echoed: %.0f MB/s\n", d.created_mb_s);
        printf("64 MiB existing value sent and echoed (no copy: sealed memfd passed along): %.0f MB/s\n",
               d.existing_mb_s);
        /* Not a target: the one copy into a new memfd that any sender of new bytes pays here. */
        printf("memfd fill floor (memfd_create + one write() of 64 MiB + seals, no IPC): %.0f MB/s\n",
               d.floor_mb_s);
        printf("p50_ratio=%.3f tput_ratio=%.3f data_mb_s=%.0f\n", median_double(p50_ratio, BENCH_ROUNDS),
               median_double(tput_ratio, BENCH_ROUNDS), d.created_mb_s);
        return 0;
}
