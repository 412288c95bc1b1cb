/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* cxpc_connection_run(): a connection served on a thread without an event loop. Each case forks
 * a server process that serves one end of a socketpair with cxpc_connection_run() and reports
 * what happened on a pipe; the test drives the other end as an ordinary client. Run one case:
 * test-run <name>; all: test-run. */

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "case-filter.h"
#include "fd-count.h"
#include "cxpc/cxpc.h"

#define IDLE_USEC       (200u * 1000u)
#define IDLE_SLACK_USEC (1500u * 1000u) /* shared 2-CPU machine: generous upper bound */
#define WAIT_USEC       (5u * 1000u * 1000u)
#define PIPELINE_CALLS  500

/* What the server process saw, written to the report pipe when it is done. */
typedef struct RunReport {
        int result;                            /* the last cxpc_connection_run()'s return value */
        unsigned timeouts;                     /* runs that returned -ETIMEDOUT before it */
        uint64_t min_idle_usec, max_idle_usec; /* how long those took */
        unsigned disconnects;                  /* disconnect handler calls */
        int fds_before, fds_after;             /* open fds around the serving (after the report pipe) */
        int busy_result;                       /* cxpc_connection_run() while attached to an event loop */
} RunReport;

typedef struct Server {
        pid_t pid;
        int report_fd; /* read end */
        cxpc_connection *client;
} Server;

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* ---- the server process ---- */

static cxpc_object *deferred; /* a request answered when the next "sum" is */

static int on_sum(cxpc_connection *c, cxpc_object *m, void *userdata) {
        int64_t a, b;
        int r = cxpc_dict_get_int64(m, "a", &a);
        if (r < 0)
                return r;
        if ((r = cxpc_dict_get_int64(m, "b", &b)) < 0)
                return r;
        cxpc_object *reply = NULL;
        if ((r = cxpc_reply_new(&reply)) < 0)
                return r;
        r = cxpc_dict_set_int64(reply, "sum", a + b);
        if (r >= 0)
                r = cxpc_connection_reply(c, m, reply);
        cxpc_object_unref(reply);
        if (r < 0 || !deferred)
                return r;
        /* After the sum: the deferred request's reply arrives second. */
        cxpc_object *late = NULL;
        if ((r = cxpc_reply_new(&late)) < 0)
                return r;
        r = cxpc_dict_set_string(late, "deferred", "yes");
        if (r >= 0)
                r = cxpc_connection_reply(c, deferred, late);
        cxpc_object_unref(late);
        deferred = cxpc_object_unref(deferred);
        return r;
}

static int on_defer(cxpc_connection *c, cxpc_object *m, void *userdata) {
        if (deferred)
                return -EBUSY;
        deferred = cxpc_object_ref(m);
        return 0;
}

static int on_close(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_object *reply = NULL;
        int r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        r = cxpc_connection_reply(c, m, reply);
        cxpc_object_unref(reply);
        cxpc_connection_close(c);
        return r;
}

static int on_nested(cxpc_connection *c, cxpc_object *m, void *userdata) {
        /* From a handler: refused, the connection is already being served. */
        int r = cxpc_connection_run(c, IDLE_USEC);
        cxpc_object *reply = NULL;
        int k = cxpc_reply_new(&reply);
        if (k < 0)
                return k;
        k = cxpc_dict_set_int64(reply, "result", r);
        if (k >= 0)
                k = cxpc_connection_reply(c, m, reply);
        cxpc_object_unref(reply);
        return k;
}

static void on_server_disconnect(cxpc_connection *c, void *userdata) {
        ((RunReport *) userdata)->disconnects++;
}

/* Serves fd until cxpc_connection_run() returns something other than -ETIMEDOUT, then reports. */
static _Noreturn void serve(int fd, int report_fd, uint64_t idle_usec) {
        RunReport rep = {.busy_result = 1};
        cxpc_router *router = NULL;
        cxpc_connection *c = NULL;
        sd_event *e = NULL;

        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (cxpc_router_new(&router) < 0 || cxpc_router_add(router, "sum", on_sum, NULL) < 0 ||
            cxpc_router_add(router, "defer", on_defer, NULL) < 0 ||
            cxpc_router_add(router, "close", on_close, NULL) < 0 ||
            cxpc_router_add(router, "nested", on_nested, NULL) < 0 ||
            cxpc_connection_new_from_fd(fd, &c) < 0 || cxpc_connection_set_router(c, router) < 0 ||
            cxpc_connection_add_disconnect_handler(c, on_server_disconnect, &rep) < 0)
                _exit(2);

        /* Attached to a loop, the connection is the loop's. */
        if (sd_event_new(&e) < 0 || cxpc_connection_attach_event(c, e, 0) < 0)
                _exit(3);
        rep.busy_result = cxpc_connection_run(c, idle_usec);
        if (cxpc_connection_detach_event(c) < 0)
                _exit(4);
        e = sd_event_unref(e);

        rep.fds_before = count_open_fds(0);
        rep.min_idle_usec = UINT64_MAX;
        for (;;) {
                uint64_t t0 = now_us();
                rep.result = cxpc_connection_run(c, idle_usec);
                if (rep.result != -ETIMEDOUT)
                        break;
                uint64_t dt = now_us() - t0;
                rep.timeouts++;
                rep.min_idle_usec = dt < rep.min_idle_usec ? dt : rep.min_idle_usec;
                rep.max_idle_usec = dt > rep.max_idle_usec ? dt : rep.max_idle_usec;
        }
        cxpc_connection_unref(c);
        cxpc_router_unref(router);
        deferred = cxpc_object_unref(deferred);
        rep.fds_after = count_open_fds(0);
        if (write(report_fd, &rep, sizeof(rep)) != (ssize_t) sizeof(rep))
                _exit(5);
        _exit(0);
}

/* ---- the test side ---- */

static Server start_server(uint64_t idle_usec) {
        int sv[2], rp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(pipe2(rp, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(sv[0]);
                close(rp[0]);
                serve(sv[1], rp[1], idle_usec);
        }
        close(sv[1]);
        close(rp[1]);
        Server s = {.pid = pid, .report_fd = rp[0]};
        assert_int_equal(cxpc_connection_new_from_fd(sv[0], &s.client), 0);
        return s;
}

/* Waits for the server's report and its clean exit. */
static RunReport finish_server(Server *s) {
        RunReport rep = {};
        int status = 0;
        assert_int_equal(read(s->report_fd, &rep, sizeof(rep)), (ssize_t) sizeof(rep));
        close(s->report_fd);
        assert_int_equal(waitpid(s->pid, &status, 0), s->pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(rep.busy_result, -EBUSY);
        return rep;
}

/* The end every case expects: run() returned 0 once the connection ended, after its disconnect
 * handler ran, and the only fd gone is the connection's socket (nothing received is left open). */
static void assert_ended_cleanly(const RunReport *rep) {
        assert_int_equal(rep->result, 0);
        assert_int_equal(rep->disconnects, 1);
        assert_int_equal(rep->fds_after, rep->fds_before - 1);
}

static int64_t call_sum(cxpc_connection *c, int64_t a, int64_t b) {
        cxpc_object *m = NULL, *reply = NULL;
        int64_t sum = 0;
        assert_int_equal(cxpc_message_new_request("sum", &m), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "a", a), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "b", b), 0);
        assert_int_equal(cxpc_connection_call(c, m, WAIT_USEC, &reply), 0);
        assert_int_equal(cxpc_dict_get_int64(reply, "sum", &sum), 0);
        cxpc_object_unref(m);
        cxpc_object_unref(reply);
        return sum;
}

static cxpc_object *call_route(cxpc_connection *c, const char *route) {
        cxpc_object *m = NULL, *reply = NULL;
        assert_int_equal(cxpc_message_new_request(route, &m), 0);
        assert_int_equal(cxpc_connection_call(c, m, WAIT_USEC, &reply), 0);
        cxpc_object_unref(m);
        return reply;
}

typedef struct AsyncReply {
        cxpc_object *reply;
        unsigned order; /* 1 + how many replies came before this one */
        unsigned *counter;
} AsyncReply;

static void on_async_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        AsyncReply *a = userdata;
        a->reply = cxpc_object_ref(reply);
        a->order = ++*a->counter;
}

/* Requests, errors and a deferred reply, then the client goes: run() returns 0 after the server's
 * disconnect handler ran, with no fd left behind. */
static void test_run_serves(void **state) {
        Server s = start_server(0);

        for (int64_t i = 0; i < 100; i++)
                assert_int_equal(call_sum(s.client, i, 1000), i + 1000);

        /* Unknown route: an unsupported error reply, and the server keeps serving. */
        cxpc_object *reply = call_route(s.client, "no/such/route");
        cxpc_error_code code = 0;
        assert_int_equal(cxpc_reply_check(reply, &code, NULL), -EOPNOTSUPP);
        assert_int_equal(code, CXPC_ERROR_UNSUPPORTED);
        cxpc_object_unref(reply);

        /* A handler's own error crosses as an error reply. */
        cxpc_object *m = NULL;
        assert_int_equal(cxpc_message_new_request("sum", &m), 0);
        assert_int_equal(cxpc_connection_call(s.client, m, WAIT_USEC, &reply), 0);
        assert_true(cxpc_reply_check(reply, &code, NULL) < 0);
        assert_int_equal(code, CXPC_ERROR_NOT_FOUND);
        cxpc_object_unref(reply);
        cxpc_object_unref(m);

        /* A deferred reply: held by the server until the next sum, then sent after it. */
        sd_event *e = NULL;
        unsigned counter = 0;
        AsyncReply later = {.counter = &counter}, sum = {.counter = &counter};
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(s.client, e, 0), 0);
        assert_int_equal(cxpc_message_new_request("defer", &m), 0);
        assert_int_equal(cxpc_connection_call_async(s.client, m, WAIT_USEC, on_async_reply, &later), 0);
        cxpc_object_unref(m);
        assert_int_equal(cxpc_message_new_request("sum", &m), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "a", 2), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "b", 3), 0);
        assert_int_equal(cxpc_connection_call_async(s.client, m, WAIT_USEC, on_async_reply, &sum), 0);
        cxpc_object_unref(m);
        uint64_t end = now_us() + WAIT_USEC;
        while (counter < 2 && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_int_equal(counter, 2);
        assert_int_equal(sum.order, 1);
        assert_int_equal(later.order, 2);
        int64_t v = 0;
        assert_int_equal(cxpc_dict_get_int64(sum.reply, "sum", &v), 0);
        assert_int_equal(v, 5);
        const char *str = NULL;
        assert_int_equal(cxpc_dict_get_string(later.reply, "deferred", &str), 0);
        assert_string_equal(str, "yes");
        cxpc_object_unref(sum.reply);
        cxpc_object_unref(later.reply);

        /* Called from one of its own handlers: -EBUSY, and serving goes on. */
        assert_int_equal(cxpc_connection_detach_event(s.client), 0);
        reply = call_route(s.client, "nested");
        assert_int_equal(cxpc_dict_get_int64(reply, "result", &v), 0);
        assert_int_equal(v, -EBUSY);
        cxpc_object_unref(reply);
        assert_int_equal(call_sum(s.client, 1, 1), 2);

        s.client = cxpc_connection_close_unref(s.client);
        sd_event_unref(e);
        RunReport rep = finish_server(&s);
        assert_int_equal(rep.timeouts, 0);
        assert_ended_cleanly(&rep);
}

typedef struct Pipeline {
        unsigned received, bad;
        int64_t next; /* the sum expected next: replies come in order */
} Pipeline;

static void on_pipelined_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        Pipeline *p = userdata;
        int64_t sum = -1;
        if (cxpc_dict_get_int64(reply, "sum", &sum) < 0 || sum != p->next)
                p->bad++;
        p->next++;
        p->received++;
}

/* A peer with many calls in flight: the server takes what is queued per wakeup and answers all,
 * in order. */
static void test_run_pipelined(void **state) {
        Server s = start_server(0);
        sd_event *e = NULL;
        Pipeline p = {.next = 1000};

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(s.client, e, 0), 0);
        for (int64_t i = 0; i < PIPELINE_CALLS; i++) {
                cxpc_object *m = NULL;
                assert_int_equal(cxpc_message_new_request("sum", &m), 0);
                assert_int_equal(cxpc_dict_set_int64(m, "a", i), 0);
                assert_int_equal(cxpc_dict_set_int64(m, "b", 1000), 0);
                assert_int_equal(cxpc_connection_call_async(s.client, m, WAIT_USEC, on_pipelined_reply, &p),
                                 0);
                cxpc_object_unref(m);
        }
        uint64_t end = now_us() + WAIT_USEC;
        while (p.received < PIPELINE_CALLS && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_int_equal(p.received, PIPELINE_CALLS);
        assert_int_equal(p.bad, 0);

        s.client = cxpc_connection_close_unref(s.client);
        sd_event_unref(e);
        RunReport rep = finish_server(&s);
        assert_ended_cleanly(&rep);
}

/* Silence: -ETIMEDOUT after the idle timeout, and the next run() carries on serving. */
static void test_run_idle_timeout(void **state) {
        Server s = start_server(IDLE_USEC);

        /* Nothing is sent for three idle timeouts. */
        usleep(3 * IDLE_USEC);
        assert_int_equal(call_sum(s.client, 20, 22), 42);
        cxpc_object_unref(call_route(s.client, "close"));
        s.client = cxpc_connection_unref(s.client);

        RunReport rep = finish_server(&s);
        /* At least one run timed out (the server may have started late), none early or much late. */
        assert_true(rep.timeouts >= 1 && rep.timeouts <= 3);
        assert_true(rep.min_idle_usec >= IDLE_USEC);
        assert_true(rep.max_idle_usec < IDLE_USEC + IDLE_SLACK_USEC);
        /* Closed by its own handler. */
        assert_ended_cleanly(&rep);
}

/* A malformed record with an fd in it: the fd is closed, the connection invalidated, run()
 * returns 0. */
static void test_run_protocol_error(void **state) {
        Server s = start_server(0);
        assert_int_equal(call_sum(s.client, 1, 2), 3);

        int fd = cxpc_connection_get_fd(s.client);
        int payload = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(payload >= 0);
        char junk[64];
        memset(junk, 0xa5, sizeof(junk));
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        struct iovec iov = {junk, sizeof(junk)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = &control,
                            .msg_controllen = sizeof(control)};
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &payload, sizeof(int));
        assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t) sizeof(junk));
        close(payload);

        RunReport rep = finish_server(&s);
        assert_int_equal(rep.timeouts, 0);
        assert_ended_cleanly(&rep); /* the received fd was closed too */
        cxpc_connection_unref(s.client);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_run_serves),
                cmocka_unit_test(test_run_pipelined),
                cmocka_unit_test(test_run_idle_timeout),
                cmocka_unit_test(test_run_protocol_error),
        };
        case_filter_from_args(argc, argv);
        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
