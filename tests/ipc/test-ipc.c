/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Real-process IPC tests: every case starts ipc-server in its own process on a socket in a fresh
 * mkdtemp() directory, talks to it over real sockets, and stops it (checking its exit status,
 * which also catches sanitizer reports). Run one case: test-ipc <name>; all: test-ipc. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "case-filter.h"
#include "fd-count.h"
#include "codec.h"
#include "cxpc/cxpc.h"

#define SERVER_START_TIMEOUT_MS 10000
#define MANY_CONNECTIONS        1000
#define DEADLINE_USEC           (200u * 1000u)
#define DEADLINE_SLACK_USEC     (1500u * 1000u) /* shared 2-CPU machine: generous upper bound */

typedef struct Fixture {
        char dir[64];
        char path[128];
        pid_t pid;
        bool expect_killed;
} Fixture;

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Starts ipc-server with the given extra fd setup; waits for its "R". */
static pid_t spawn_server(const char *path, int activation_fd) {
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);

        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* Never outlive the test, even when it is killed on timeout. */
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                /* fd 3 is the activation socket (if any), fd 4 the ready pipe */
                if (activation_fd >= 0) {
                        /* dup2() onto itself would keep O_CLOEXEC: clear it explicitly */
                        if (dup2(activation_fd, 3) < 0 || fcntl(3, F_SETFD, 0) < 0)
                                _exit(127);
                        char pidstr[32];
                        snprintf(pidstr, sizeof(pidstr), "%d", (int) getpid());
                        setenv("LISTEN_FDS", "1", 1);
                        setenv("LISTEN_PID", pidstr, 1);
                } else {
                        unsetenv("LISTEN_FDS");
                        unsetenv("LISTEN_PID");
                }
                if (dup2(p[1], 4) < 0 || fcntl(4, F_SETFD, 0) < 0)
                        _exit(127);
                if (path)
                        execl(IPC_SERVER, IPC_SERVER, "--path", path, "--ready-fd", "4", (char *) NULL);
                else
                        execl(IPC_SERVER, IPC_SERVER, "--activated", "--ready-fd", "4", (char *) NULL);
                _exit(127);
        }
        close(p[1]);
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        char c = 0;
        bool ready = poll(&pfd, 1, SERVER_START_TIMEOUT_MS) == 1 && read(p[0], &c, 1) == 1 && c == 'R';
        close(p[0]);
        if (!ready) {
                fprintf(stderr, "ipc-server did not start\n");
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                return -1;
        }
        return pid;
}

/* Stops a server; it must exit cleanly (0) unless it was expected to die by SIGKILL. */
static void stop_server(pid_t pid, bool expect_killed) {
        int status = 0;
        if (!expect_killed)
                (void) kill(pid, SIGTERM);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (expect_killed) {
                assert_true(WIFSIGNALED(status));
                assert_int_equal(WTERMSIG(status), SIGKILL);
        } else {
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
}

static void fixture_dir(Fixture *f) {
        strcpy(f->dir, "/tmp/cxpc-ipc-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/srv/server.sock", f->dir);
}

static void fixture_rmdir(Fixture *f) {
        DIR *d = opendir(f->dir);
        if (d) {
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_name[0] != '.') {
                                char p[512];
                                snprintf(p, sizeof(p), "%s/%s", f->dir, de->d_name);
                                /* the socket directory and what the listener left */
                                char sock[600];
                                snprintf(sock, sizeof(sock), "%s/server.sock", p);
                                (void) unlink(sock);
                                snprintf(sock, sizeof(sock), "%s/relay.sock", p);
                                (void) unlink(sock);
                                if (rmdir(p) < 0)
                                        (void) unlink(p);
                        }
                closedir(d);
        }
        assert_int_equal(rmdir(f->dir), 0);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        assert_non_null(f);
        fixture_dir(f);
        *state = f;
        f->pid = spawn_server(f->path, -1);
        if (f->pid < 0) {
                fixture_rmdir(f);
                free(f);
                return -1;
        }
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        if (f->pid > 0)
                stop_server(f->pid, f->expect_killed);
        fixture_rmdir(f);
        free(f);
        return 0;
}

static cxpc_connection *connect_to(const Fixture *f) {
        cxpc_connection *c = NULL;
        assert_int_equal(cxpc_connection_new_for_path(f->path, &c), 0);
        return c;
}

static cxpc_object *request(const char *route) {
        cxpc_object *m = NULL;
        assert_int_equal(cxpc_message_new_request(route, &m), 0);
        return m;
}

static int call_route(cxpc_connection *c, const char *route, uint64_t timeout, cxpc_object **ret) {
        cxpc_object *m = request(route);
        int r = cxpc_connection_call(c, m, timeout, ret);
        cxpc_object_unref(m);
        return r;
}

static cxpc_object *call_ok(cxpc_connection *c, const char *route) {
        cxpc_object *reply = NULL;
        assert_int_equal(call_route(c, route, 0, &reply), 0);
        assert_int_equal(cxpc_reply_check(reply, NULL, NULL), 0);
        return reply;
}

static uint64_t stats_get(cxpc_connection *c, const char *key) {
        cxpc_object *reply = call_ok(c, "stats");
        uint64_t v = 0;
        assert_int_equal(cxpc_dict_get_uint64(reply, key, &v), 0);
        cxpc_object_unref(reply);
        return v;
}

static void run_until(sd_event *e, const bool *flag, uint64_t timeout_usec) {
        uint64_t end = now_us() + timeout_usec;
        while (!*flag && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_true(*flag);
}

/* ---- cases ---- */

static void test_request_reply(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        cxpc_object *m = request("echo"), *reply = NULL;
        const char *s = NULL;
        int64_t pid = 0;
        pid_t peer = 0;

        assert_int_equal(cxpc_dict_set_string(m, "value", "hello"), 0);
        assert_int_equal(cxpc_connection_call(c, m, 0, &reply), 0);
        assert_int_equal(cxpc_reply_check(reply, NULL, NULL), 0);
        assert_int_equal(cxpc_dict_get_string(reply, "value", &s), 0);
        assert_string_equal(s, "hello");
        assert_int_equal(cxpc_dict_get_int64(reply, "pid", &pid), 0);
        assert_int_equal(pid, f->pid);
        cxpc_object_unref(reply);

        /* Many round trips on one connection keep their ids straight. */
        for (int i = 0; i < 200; i++) {
                assert_int_equal(cxpc_dict_set_int64(m, "value", i), 0);
                assert_int_equal(cxpc_connection_call(c, m, 0, &reply), 0);
                int64_t v = -1;
                assert_int_equal(cxpc_dict_get_int64(reply, "value", &v), 0);
                assert_int_equal(v, i);
                cxpc_object_unref(reply);
        }
        cxpc_object_unref(m);

        assert_int_equal(cxpc_connection_get_peer_pid(c, &peer), 0);
        assert_int_equal(peer, f->pid);
        uid_t uid = 1;
        assert_int_equal(cxpc_connection_get_peer_uid(c, &uid), 0);
        assert_int_equal(uid, geteuid());
        int pidfd = -1;
        int r = cxpc_connection_get_peer_pidfd(c, &pidfd);
        assert_true(r == 0 || r == -EOPNOTSUPP);
        if (r == 0)
                assert_true(pidfd >= 0);
        assert_int_equal(cxpc_connection_get_state(c), CXPC_CONNECTION_CONNECTED);
        cxpc_connection_unref(c);
}

static void test_error_reply(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        cxpc_object *reply = NULL;
        cxpc_error_code code = CXPC_ERROR_UNKNOWN;
        const char *msg = NULL;

        assert_int_equal(call_route(c, "fail", 0, &reply), 0);
        assert_int_equal(cxpc_reply_check(reply, &code, &msg), -ENOENT);
        assert_int_equal(code, CXPC_ERROR_NOT_FOUND);
        assert_non_null(msg);
        assert_string_equal(msg, strerror(ENOENT));
        cxpc_object_unref(reply);
        cxpc_connection_unref(c);
}

static void test_oneway(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);

        for (int i = 0; i < 10; i++) {
                cxpc_object *m = request("oneway");
                assert_int_equal(cxpc_connection_send(c, m), 0);
                cxpc_object_unref(m);
        }
        /* Ordered on one connection: the call is handled after the ten messages. */
        assert_int_equal(stats_get(c, "oneway"), 10);
        cxpc_connection_unref(c);
}

typedef struct AsyncResult {
        bool done;
        cxpc_object *reply;
        uint64_t at;
        unsigned calls;
} AsyncResult;

static void on_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        AsyncResult *a = userdata;
        a->calls++;
        a->done = true;
        a->at = now_us();
        cxpc_object_unref(a->reply);
        a->reply = cxpc_object_ref(reply);
}

static void test_async_call(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        sd_event *e = NULL;
        AsyncResult a = {};

        /* Without a loop nothing could deliver the reply. */
        cxpc_object *m = request("echo");
        assert_int_equal(cxpc_connection_call_async(c, m, 0, on_reply, &a), -ENXIO);

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        assert_ptr_equal(cxpc_connection_get_event(c), e);
        assert_int_equal(cxpc_dict_set_string(m, "value", "async"), 0);
        assert_int_equal(cxpc_connection_call_async(c, m, 0, on_reply, &a), 0);
        cxpc_object_unref(m);
        run_until(e, &a.done, 5 * 1000000u);
        assert_int_equal(a.calls, 1);
        const char *s = NULL;
        assert_int_equal(cxpc_dict_get_string(a.reply, "value", &s), 0);
        assert_string_equal(s, "async");
        cxpc_object_unref(a.reply);

        cxpc_connection_unref(c);
        sd_event_unref(e);
}

static void test_deferred_reply(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        bool b = false;

        uint64_t t0 = now_us();
        cxpc_object *reply = call_ok(c, "defer");
        assert_true(now_us() - t0 >= 40 * 1000);
        assert_int_equal(cxpc_dict_get_bool(reply, "deferred", &b), 0);
        assert_true(b);
        cxpc_object_unref(reply);

        /* The server tried a second reply to the same request: refused with -EALREADY. */
        reply = call_ok(c, "stats");
        int64_t v = 0;
        assert_int_equal(cxpc_dict_get_int64(reply, "doubleReply", &v), 0);
        assert_int_equal(v, -EALREADY);
        cxpc_object_unref(reply);
        cxpc_connection_unref(c);
}

static void test_fd_passing(void **state) {
        static const char text[] = "content written by the client";
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        const void *p = NULL;
        size_t size = 0;
        char buf[128] = {};

        /* client → server: a memfd with known content */
        int mfd = memfd_create("ipc-test", MFD_CLOEXEC);
        assert_true(mfd >= 0);
        assert_int_equal(write(mfd, text, strlen(text)), (ssize_t) strlen(text));
        cxpc_object *m = request("fd/read"), *reply = NULL;
        assert_int_equal(cxpc_dict_set_fd(m, "fd", mfd), 0);
        close(mfd);
        assert_int_equal(cxpc_connection_call(c, m, 0, &reply), 0);
        cxpc_object_unref(m);
        assert_int_equal(cxpc_reply_check(reply, NULL, NULL), 0);
        assert_int_equal(cxpc_dict_get_data(reply, "data", &p, &size), 0);
        assert_int_equal(size, strlen(text));
        assert_memory_equal(p, text, size);
        cxpc_object_unref(reply);

        /* server → client: the read end of a pipe */
        reply = call_ok(c, "fd/make");
        int fd = -1;
        assert_int_equal(cxpc_dict_dup_fd(reply, "fd", &fd), 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        assert_int_equal(n, (ssize_t) strlen("hello from the server"));
        assert_string_equal(buf, "hello from the server");
        close(fd);
        cxpc_object_unref(reply);
        cxpc_connection_unref(c);
}

static void test_endpoint_third_process(void **state) {
        Fixture *f = *state;
        char relay_path[192];
        int64_t pid = 0, relay_pid = 0;

        snprintf(relay_path, sizeof(relay_path), "%s/relay/relay.sock", f->dir);
        pid_t relay = spawn_server(relay_path, -1);
        assert_true(relay > 0);

        /* The server makes an anonymous listener and hands out its endpoint. */
        cxpc_connection *c = connect_to(f);
        cxpc_object *reply = call_ok(c, "endpoint/new");
        cxpc_object *ep = cxpc_object_ref(cxpc_dict_get(reply, "endpoint"));
        assert_int_equal(cxpc_object_get_type(ep), CXPC_TYPE_ENDPOINT);
        cxpc_object_unref(reply);

        /* A third process receives the endpoint, connects through it and reaches the server. */
        cxpc_connection *r = NULL;
        assert_int_equal(cxpc_connection_new_for_path(relay_path, &r), 0);
        cxpc_object *m = request("relay");
        assert_int_equal(cxpc_dict_set(m, "endpoint", ep), 0);
        assert_int_equal(cxpc_connection_call(r, m, 0, &reply), 0);
        cxpc_object_unref(m);
        assert_int_equal(cxpc_reply_check(reply, NULL, NULL), 0);
        assert_int_equal(cxpc_dict_get_int64(reply, "pid", &pid), 0);
        assert_int_equal(cxpc_dict_get_int64(reply, "relayPid", &relay_pid), 0);
        assert_int_equal(pid, f->pid);
        assert_int_equal(relay_pid, relay);

        /* The endpoint came back through the relay: still reaches the same listener. */
        cxpc_object *ep2 = cxpc_dict_get(reply, "endpoint");
        assert_int_equal(cxpc_object_get_type(ep2), CXPC_TYPE_ENDPOINT);
        cxpc_connection *d = NULL;
        assert_int_equal(cxpc_connection_new_for_endpoint(ep2, &d), 0);
        cxpc_object *r2 = call_ok(d, "echo");
        assert_int_equal(cxpc_dict_get_int64(r2, "pid", &pid), 0);
        assert_int_equal(pid, f->pid);
        cxpc_object_unref(r2);
        cxpc_object_unref(reply);

        cxpc_connection_unref(d);
        cxpc_connection_unref(r);
        cxpc_connection_unref(c);
        cxpc_object_unref(ep);
        stop_server(relay, false);
}

static void test_deadline_sync(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        cxpc_object *reply = NULL;

        uint64_t t0 = now_us();
        assert_int_equal(call_route(c, "silent", DEADLINE_USEC, &reply), -ETIMEDOUT);
        uint64_t dt = now_us() - t0;
        assert_true(dt >= DEADLINE_USEC - 10000);
        assert_true(dt <= DEADLINE_USEC + DEADLINE_SLACK_USEC);
        assert_null(reply);

        /* The connection stays usable. */
        cxpc_object_unref(call_ok(c, "echo"));
        cxpc_connection_unref(c);
}

static void test_deadline_async(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        sd_event *e = NULL;
        AsyncResult a = {};
        cxpc_error_code code = CXPC_ERROR_UNKNOWN;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        cxpc_object *m = request("silent");
        uint64_t t0 = now_us();
        assert_int_equal(cxpc_connection_call_async(c, m, DEADLINE_USEC, on_reply, &a), 0);
        cxpc_object_unref(m);
        run_until(e, &a.done, 5 * 1000000u);
        uint64_t dt = a.at - t0;
        assert_true(dt >= DEADLINE_USEC - 10000);
        assert_true(dt <= DEADLINE_USEC + DEADLINE_SLACK_USEC);
        assert_int_equal(cxpc_reply_check(a.reply, &code, NULL), -ETIMEDOUT);
        assert_int_equal(code, CXPC_ERROR_TIMEOUT);
        assert_int_equal(a.calls, 1);
        cxpc_object_unref(a.reply);

        cxpc_connection_unref(c);
        sd_event_unref(e);
}

static void test_peer_killed_sync(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        cxpc_object *reply = NULL;

        f->expect_killed = true;
        assert_int_equal(call_route(c, "suicide", 10 * 1000000u, &reply), -ECONNRESET);
        assert_int_equal(cxpc_connection_get_state(c), CXPC_CONNECTION_INTERRUPTED);
        assert_int_equal(call_route(c, "echo", 0, &reply), -ENOTCONN);
        cxpc_connection_unref(c);
}

static void on_disconnect_count(cxpc_connection *c, void *userdata) {
        (*(unsigned *) userdata)++;
}

static void test_peer_killed_async(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        sd_event *e = NULL;
        AsyncResult a = {};
        unsigned disconnects = 0;
        cxpc_error_code code = CXPC_ERROR_UNKNOWN;

        f->expect_killed = true;
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        assert_int_equal(cxpc_connection_add_disconnect_handler(c, on_disconnect_count, &disconnects), 0);
        cxpc_object *m = request("suicide");
        assert_int_equal(cxpc_connection_call_async(c, m, 10 * 1000000u, on_reply, &a), 0);
        cxpc_object_unref(m);
        run_until(e, &a.done, 5 * 1000000u);
        assert_int_equal(cxpc_reply_check(a.reply, &code, NULL),
                         -cxpc_error_code_to_errno(CXPC_ERROR_INTERRUPTED));
        assert_int_equal(code, CXPC_ERROR_INTERRUPTED);
        assert_int_equal(disconnects, 1);
        assert_int_equal(cxpc_connection_get_state(c), CXPC_CONNECTION_INTERRUPTED);
        cxpc_object_unref(a.reply);

        cxpc_connection_unref(c);
        assert_int_equal(disconnects, 1); /* once, not again on the last unref */
        sd_event_unref(e);
}

/* Sends one raw record on a fresh socket and expects the server to hang up on it. */
static void send_bad_record(const Fixture *f, const void *data, size_t size, const int *fds, size_t n_fds) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, f->path);
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        assert_int_equal(connect(s, (struct sockaddr *) &sa, sizeof(sa)), 0);

        union {
                struct cmsghdr align;
                uint8_t buf[CMSG_SPACE(sizeof(int) * 250)];
        } control = {};
        struct iovec iov = {.iov_base = (void *) data, .iov_len = size};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (n_fds > 0) {
                assert_true(n_fds <= 250);
                mh.msg_control = &control;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
        }
        assert_int_equal(sendmsg(s, &mh, MSG_NOSIGNAL), (ssize_t) size);

        struct timeval tv = {.tv_sec = 5};
        assert_int_equal(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        char buf[64];
        ssize_t n = recv(s, buf, sizeof(buf), 0);
        assert_true(n == 0 || (n < 0 && errno == ECONNRESET)); /* closed by the server, no reply */
        close(s);
}

static void test_malformed_frames(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        cxpc_frame_header h;
        static uint8_t big[100 * 1024];
        uint8_t rec[CXPC_FRAME_HEADER_SIZE + 16];

        cxpc_object_unref(call_ok(c, "echo"));
        unsigned baseline = (unsigned) count_open_fds(f->pid);

        /* bad magic */
        h = (cxpc_frame_header){.magic = 0xdeadbeef, .version = CXPC_PROTOCOL_VERSION, .id = 1};
        send_bad_record(f, &h, sizeof(h), NULL, 0);
        /* truncated header */
        h = (cxpc_frame_header){.magic = CXPC_FRAME_MAGIC, .version = CXPC_PROTOCOL_VERSION, .id = 1};
        send_bad_record(f, &h, 10, NULL, 0);
        /* body size lies */
        h = (cxpc_frame_header){
                .magic = CXPC_FRAME_MAGIC, .version = CXPC_PROTOCOL_VERSION, .id = 1, .body_size = 4096};
        memcpy(rec, &h, sizeof(h));
        memset(rec + sizeof(h), 0x11, 16);
        send_bad_record(f, rec, sizeof(rec), NULL, 0);
        /* MSG_CTRUNC flood: more fds than the receiver has room for */
        int fds[200];
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(devnull >= 0);
        for (size_t i = 0; i < 200; i++)
                fds[i] = devnull;
        h = (cxpc_frame_header){
                .magic = CXPC_FRAME_MAGIC, .version = CXPC_PROTOCOL_VERSION, .id = 1, .n_fds = 200};
        send_bad_record(f, &h, sizeof(h), fds, 200);
        /* fds the header does not announce */
        h = (cxpc_frame_header){.magic = CXPC_FRAME_MAGIC, .version = CXPC_PROTOCOL_VERSION, .id = 1};
        send_bad_record(f, &h, sizeof(h), fds, 3);
        close(devnull);
        /* garbage */
        for (size_t i = 0; i < sizeof(rec); i++)
                rec[i] = (uint8_t) (i * 37 + 11);
        send_bad_record(f, rec, sizeof(rec), NULL, 0);
        /* oversized record */
        memset(big, 0x5a, sizeof(big));
        h = (cxpc_frame_header){.magic = CXPC_FRAME_MAGIC,
                                .version = CXPC_PROTOCOL_VERSION,
                                .id = 1,
                                .body_size = sizeof(big) - sizeof(h)};
        memcpy(big, &h, sizeof(h));
        send_bad_record(f, big, sizeof(big), NULL, 0);

        /* Still serving, on the old connection and on new ones. */
        cxpc_object_unref(call_ok(c, "echo"));
        cxpc_connection *c2 = connect_to(f);
        cxpc_object_unref(call_ok(c2, "echo"));
        cxpc_connection_unref(c2);

        /* No fd leaked: the count returns to the baseline (disconnects are processed async). */
        unsigned n = 0;
        for (int i = 0; i < 100; i++) {
                n = (unsigned) count_open_fds(f->pid);
                if (n == baseline)
                        break;
                usleep(20 * 1000);
        }
        assert_int_equal(n, baseline);
        cxpc_connection_unref(c);
}

/* Many calls in flight at once, so that the server reads them in batches (recvmmsg) and answers
 * in batches (sendmmsg); some carry fds. Every reply must reach the call it answers, with the
 * right content; a request that closes the connection after replying still gets its reply. */
#define PIPELINED_CALLS 300

typedef struct PipelinedCall {
        int64_t value; /* or -1 for an fd/read call */
        char text[32];
        bool done, ok;
} PipelinedCall;

static cxpc_object *last_reply_seen;

static void on_pipelined_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        PipelinedCall *p = userdata;
        p->done = true;
        if (p->value == -2) { /* the closing call: keep its reply for a look */
                cxpc_object_unref(last_reply_seen);
                last_reply_seen = cxpc_object_ref(reply);
        }
        if (cxpc_reply_check(reply, NULL, NULL) < 0)
                return;
        if (p->value >= 0) {
                int64_t v = -1;
                p->ok = cxpc_dict_get_int64(reply, "value", &v) >= 0 && v == p->value;
        } else {
                const void *d = NULL;
                size_t n = 0;
                p->ok = cxpc_dict_get_data(reply, "data", &d, &n) >= 0 && n == strlen(p->text) &&
                        memcmp(d, p->text, n) == 0;
        }
}

static void test_pipelined_batches(void **state) {
        Fixture *f = *state;
        static PipelinedCall calls[PIPELINED_CALLS + 1];
        cxpc_connection *c = connect_to(f);
        sd_event *e = NULL;
        bool closed = false;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        cxpc_object_unref(call_ok(c, "echo")); /* the server has accepted us */
        unsigned baseline = (unsigned) count_open_fds(f->pid);

        for (size_t i = 0; i < PIPELINED_CALLS; i++) {
                PipelinedCall *p = &calls[i];
                *p = (PipelinedCall){.value = (int64_t) i};
                cxpc_object *m = NULL;
                if (i % 7 == 3) {
                        p->value = -1;
                        snprintf(p->text, sizeof(p->text), "fd number %zu", i);
                        int mfd = memfd_create("ipc-pipelined", MFD_CLOEXEC);
                        assert_true(mfd >= 0);
                        assert_int_equal(write(mfd, p->text, strlen(p->text)), (ssize_t) strlen(p->text));
                        m = request("fd/read");
                        assert_int_equal(cxpc_dict_set_fd(m, "fd", mfd), 0);
                        close(mfd);
                } else {
                        m = request("echo");
                        assert_int_equal(cxpc_dict_set_int64(m, "value", (int64_t) i), 0);
                }
                assert_int_equal(cxpc_connection_call_async(c, m, 0, on_pipelined_reply, p), 0);
                cxpc_object_unref(m);
        }
        /* The last one closes the server side right after replying. 300 replies overflow our
         * receive buffer while we are not reading yet, so the server must wait for us to drain
         * them ("close" flushes, then closes); "close-now" is checked below with a short
         * pipeline. */
        PipelinedCall *last = &calls[PIPELINED_CALLS];
        *last = (PipelinedCall){.value = -2};
        cxpc_object *m = request("close");
        assert_int_equal(cxpc_connection_call_async(c, m, 0, on_pipelined_reply, last), 0);
        cxpc_object_unref(m);

        uint64_t end = now_us() + 20 * 1000000u;
        while (!last->done && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        for (size_t i = 0; i < PIPELINED_CALLS; i++) {
                assert_true(calls[i].done);
                if (!calls[i].ok)
                        fail_msg("call %zu got a wrong reply", i);
        }
        assert_true(last->done);
        assert_int_equal(cxpc_reply_check(last_reply_seen, NULL, NULL), 0); /* not "interrupted" */

        /* Then the connection goes away, and the server holds no fd of ours. */
        end = now_us() + 5 * 1000000u;
        while (!closed && now_us() < end) {
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
                closed = cxpc_connection_get_state(c) != CXPC_CONNECTION_CONNECTED;
        }
        assert_true(closed);
        unsigned n = 0;
        for (int i = 0; i < 100 && (n = (unsigned) count_open_fds(f->pid)) > baseline - 1; i++)
                usleep(20 * 1000);
        assert_int_equal(n, baseline - 1); /* our connection's socket is gone too */
        cxpc_connection_unref(c);

        /* A short pipeline ending in "close-now" (reply, then close without a flush): every
         * reply, the last one included, still arrives, also when the server read them all in one
         * batch and corked its replies. */
        c = connect_to(f);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        for (size_t i = 0; i < 8; i++) {
                calls[i] = (PipelinedCall){.value = (int64_t) i};
                m = request("echo");
                assert_int_equal(cxpc_dict_set_int64(m, "value", (int64_t) i), 0);
                assert_int_equal(cxpc_connection_call_async(c, m, 0, on_pipelined_reply, &calls[i]), 0);
                cxpc_object_unref(m);
        }
        *last = (PipelinedCall){.value = -2};
        m = request("close-now");
        assert_int_equal(cxpc_connection_call_async(c, m, 0, on_pipelined_reply, last), 0);
        cxpc_object_unref(m);
        end = now_us() + 20 * 1000000u;
        while (!last->done && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        for (size_t i = 0; i < 8; i++)
                assert_true(calls[i].done && calls[i].ok);
        assert_true(last->done);
        assert_int_equal(cxpc_reply_check(last_reply_seen, NULL, NULL), 0);
        last_reply_seen = cxpc_object_unref(last_reply_seen);
        cxpc_connection_unref(c);
        sd_event_unref(e);
}

/* Sends records back to back on a raw socket, so that the server is likely to read them in one
 * batch: valid requests, one malformed record, then valid requests that carry fds. The first ones
 * are answered, then the connection is dropped, and the fds of the records behind the bad one are
 * closed by the server (its fd count returns to the baseline). */
static void test_bad_record_in_batch(void **state) {
        Fixture *f = *state;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cxpc_connection *probe = connect_to(f);
        cxpc_object_unref(call_ok(probe, "echo"));
        unsigned baseline = (unsigned) count_open_fds(f->pid);

        strcpy(sa.sun_path, f->path);
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        assert_int_equal(connect(s, (struct sockaddr *) &sa, sizeof(sa)), 0);

        uint64_t id = 1;
        for (size_t i = 0; i < 3; i++) {
                cxpc_object *m = request("echo");
                cxpc_frame *fr = NULL;
                assert_int_equal(cxpc_dict_set_int64(m, "value", (int64_t) i), 0);
                assert_int_equal(cxpc_frame_encode(m, id++, 0, 1u /* wants reply */, &fr), 0);
                assert_int_equal(cxpc_frame_send(s, fr), 0);
                cxpc_frame_free(fr);
                cxpc_object_unref(m);
        }
        uint8_t garbage[48];
        for (size_t i = 0; i < sizeof(garbage); i++)
                garbage[i] = (uint8_t) (i * 29 + 5);
        assert_int_equal(send(s, garbage, sizeof(garbage), MSG_NOSIGNAL), (ssize_t) sizeof(garbage));
        for (size_t i = 0; i < 5; i++) {
                int mfd = memfd_create("ipc-behind-bad", MFD_CLOEXEC);
                assert_true(mfd >= 0);
                cxpc_object *m = request("fd/read");
                cxpc_frame *fr = NULL;
                assert_int_equal(cxpc_dict_set_fd(m, "fd", mfd), 0);
                close(mfd);
                assert_int_equal(cxpc_frame_encode(m, id++, 0, 1u, &fr), 0);
                int r = cxpc_frame_send(s, fr);
                assert_true(r == 0 || r == -EPIPE || r == -ECONNRESET); /* may already be closed */
                cxpc_frame_free(fr);
                cxpc_object_unref(m);
        }

        /* Three replies, in order, then EOF. */
        struct timeval tv = {.tv_sec = 5};
        assert_int_equal(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
        cxpc_recv_buffer b = {};
        assert_int_equal(cxpc_recv_buffer_init(&b), 0);
        bool reset_seen = false;
        for (int64_t i = 0; i < 3; i++) {
                cxpc_object *reply = NULL;
                cxpc_frame_info info;
                int r;
                struct pollfd pfd = {.fd = s, .events = POLLIN};
                assert_int_equal(poll(&pfd, 1, 5000), 1);
                r = cxpc_frame_receive(s, &b, &reply, &info);
                if (r == -ECONNRESET && !reset_seen) {
                        /* The server closed with our later records unread: the kernel reports
                         * that once, ahead of the replies still queued for us. */
                        reset_seen = true;
                        i--;
                        continue;
                }
                assert_int_equal(r, 1);
                assert_int_equal(info.reply_to, (uint64_t) i + 1);
                int64_t v = -1;
                assert_int_equal(cxpc_dict_get_int64(reply, "value", &v), 0);
                assert_int_equal(v, i);
                cxpc_object_unref(reply);
        }
        char buf[64];
        ssize_t n = recv(s, buf, sizeof(buf), 0);
        if (n < 0 && errno == ECONNRESET && !reset_seen)
                n = recv(s, buf, sizeof(buf), 0);
        assert_int_equal(n, 0);
        cxpc_recv_buffer_done(&b);
        close(s);

        unsigned now = 0;
        for (int i = 0; i < 100 && (now = (unsigned) count_open_fds(f->pid)) != baseline; i++)
                usleep(20 * 1000);
        assert_int_equal(now, baseline);
        cxpc_object_unref(call_ok(probe, "echo")); /* still serving */
        cxpc_connection_unref(probe);
}

static void copy_executable(const char *from, const char *to) {
        int in = open(from, O_RDONLY | O_CLOEXEC), out;
        struct stat st;

        assert_true(in >= 0);
        assert_int_equal(fstat(in, &st), 0);
        out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
        assert_true(out >= 0);
        for (off_t off = 0; off < st.st_size;)
                assert_true(sendfile(out, in, &off, (size_t) (st.st_size - off)) > 0);
        close(in);
        close(out);
}

static void test_policy_other_uid(void **state) {
        Fixture *f = *state;
        char dir[160], out[1024] = {};
        int p[2];

        /* Let uid 65534 reach the socket, so that the policy (not the file mode) decides. */
        snprintf(dir, sizeof(dir), "%s/srv", f->dir);
        assert_int_equal(chmod(f->dir, 0711), 0);
        assert_int_equal(chmod(dir, 0711), 0);
        assert_int_equal(chmod(f->path, 0666), 0);
        /* A copy of the client uid 65534 can run: the build tree may be out of its reach. */
        char client[160];
        snprintf(client, sizeof(client), "%s/ipc-client", f->dir);
        copy_executable(IPC_CLIENT, client);

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                dup2(p[1], STDOUT_FILENO);
                execlp("setpriv", "setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                       client, f->path, "echo", (char *) NULL);
                _exit(127);
        }
        close(p[1]);
        size_t n = 0;
        for (ssize_t k; n < sizeof(out) - 1 && (k = read(p[0], out + n, sizeof(out) - 1 - n)) > 0;)
                n += (size_t) k;
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_non_null(strstr(out, "error-reply: unsupported: permission denied: uid 65534 not allowed"));
        assert_non_null(strstr(out, "closed: "));

        /* Our own uid is still welcome. */
        cxpc_connection *c = connect_to(f);
        cxpc_object_unref(call_ok(c, "echo"));
        cxpc_connection_unref(c);
}

static void on_many_reply(cxpc_connection *c, cxpc_object *reply, void *userdata) {
        unsigned *n = userdata;
        if (cxpc_reply_check(reply, NULL, NULL) == 0)
                (*n)++;
}

static void test_many_connections(void **state) {
        Fixture *f = *state;
        cxpc_connection **cs = calloc(MANY_CONNECTIONS, sizeof(cxpc_connection *));
        sd_event *e = NULL;
        struct rlimit rl;
        unsigned ok = 0;

        assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = rl.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        assert_true(rl.rlim_cur >= 2 * MANY_CONNECTIONS + 64);

        assert_int_equal(sd_event_new(&e), 0);
        for (size_t i = 0; i < MANY_CONNECTIONS; i++) {
                cs[i] = connect_to(f);
                assert_int_equal(cxpc_connection_attach_event(cs[i], e, 0), 0);
        }
        /* All in flight at once. */
        for (size_t i = 0; i < MANY_CONNECTIONS; i++) {
                cxpc_object *m = request("echo");
                assert_int_equal(cxpc_connection_call_async(cs[i], m, 20 * 1000000u, on_many_reply, &ok), 0);
                cxpc_object_unref(m);
        }
        uint64_t end = now_us() + 60 * 1000000u;
        while (ok < MANY_CONNECTIONS && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_int_equal(ok, MANY_CONNECTIONS);
        assert_true(stats_get(cs[0], "accepted") >= MANY_CONNECTIONS);

        for (size_t i = 0; i < MANY_CONNECTIONS; i++)
                cxpc_connection_unref(cs[i]);
        free(cs);
        sd_event_unref(e);
}

static void test_unknown_route(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        cxpc_object *reply = NULL;
        cxpc_error_code code = CXPC_ERROR_UNKNOWN;
        const char *msg = NULL;

        assert_int_equal(call_route(c, "no/such/route", 0, &reply), 0);
        assert_true(cxpc_reply_check(reply, &code, &msg) < 0);
        assert_int_equal(code, CXPC_ERROR_UNSUPPORTED);
        assert_non_null(strstr(msg, "no/such/route"));
        cxpc_object_unref(reply);

        /* A message without any route is refused the same way. */
        cxpc_object *m = NULL;
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_connection_call(c, m, 0, &reply), 0);
        assert_true(cxpc_reply_check(reply, &code, NULL) < 0);
        assert_int_equal(code, CXPC_ERROR_UNSUPPORTED);
        cxpc_object_unref(reply);
        cxpc_object_unref(m);
        cxpc_connection_unref(c);
}

static void test_introspection(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        static const char *const expected[] = {"echo",   "oneway",       "fail",    "silent",  "suicide",
                                               "close",  "defer",        "fd/read", "fd/make", "stats",
                                               "notify", "endpoint/new", "relay",   "exit",    "close-now"};

        cxpc_object *reply = call_ok(c, CXPC_ROUTE_INTROSPECT);
        cxpc_object *routes = cxpc_dict_get(reply, "routes");
        assert_int_equal(cxpc_object_get_type(routes), CXPC_TYPE_ARRAY);
        assert_int_equal(cxpc_array_get_count(routes), sizeof(expected) / sizeof(expected[0]));
        for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
                const char *s = NULL;
                assert_int_equal(cxpc_string_get(cxpc_array_get(routes, i), &s), 0);
                assert_string_equal(s, expected[i]);
        }
        cxpc_object_unref(reply);
        cxpc_connection_unref(c);
}

static void test_socket_activation(void **state) {
        Fixture f = {};
        struct sockaddr_un sa = {.sun_family = AF_UNIX};

        fixture_dir(&f);
        snprintf(f.path, sizeof(f.path), "%s/server.sock", f.dir);
        strcpy(sa.sun_path, f.path);
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        assert_true(s >= 0);
        assert_int_equal(bind(s, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(s, 16), 0);

        f.pid = spawn_server(NULL, s);
        close(s);
        assert_true(f.pid > 0);

        cxpc_connection *c = connect_to(&f);
        cxpc_object *reply = call_ok(c, "echo");
        int64_t pid = 0;
        assert_int_equal(cxpc_dict_get_int64(reply, "pid", &pid), 0);
        assert_int_equal(pid, f.pid);
        cxpc_object_unref(reply);
        cxpc_connection_unref(c);

        stop_server(f.pid, false);
        assert_int_equal(unlink(f.path), 0);
        assert_int_equal(rmdir(f.dir), 0);
}

static void test_outbound_queue_bound(void **state) {
        cxpc_connection *c = NULL;
        int sp[2];
        int r = 0;
        size_t sent = 0;

        /* The peer (sp[1]) never reads. */
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        assert_int_equal(cxpc_connection_new_from_fd(sp[0], &c), 0);
        cxpc_object *m = request("oneway");
        while (sent < 1000000) {
                r = cxpc_connection_send(c, m);
                if (r < 0)
                        break;
                sent++;
        }
        assert_int_equal(r, -ENOBUFS);
        assert_true(sent > CXPC_OUTBOUND_QUEUE_MAX);
        /* Still bounded on the next try, and the connection is still alive. */
        assert_int_equal(cxpc_connection_send(c, m), -ENOBUFS);
        assert_int_equal(cxpc_connection_get_state(c), CXPC_CONNECTION_CONNECTED);
        assert_int_equal(cxpc_connection_flush(c, 50 * 1000), -ETIMEDOUT);
        cxpc_object_unref(m);
        cxpc_connection_unref(c);
        close(sp[1]);
}

static void test_disconnect_handlers(void **state) {
        Fixture *f = *state;
        sd_event *e = NULL;
        unsigned client_disconnects = 0;
        bool flag = false;

        cxpc_connection *probe = connect_to(f);
        uint64_t before = stats_get(probe, "disconnects");

        /* Server closes: the client's handler runs once. */
        cxpc_connection *c = connect_to(f);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        assert_int_equal(cxpc_connection_add_disconnect_handler(c, on_disconnect_count, &client_disconnects),
                         0);
        cxpc_object_unref(call_ok(c, "close"));
        uint64_t end = now_us() + 5 * 1000000u;
        while (client_disconnects == 0 && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_int_equal(client_disconnects, 1);
        assert_int_equal(cxpc_connection_get_state(c), CXPC_CONNECTION_INTERRUPTED);
        cxpc_connection_unref(c);
        assert_int_equal(client_disconnects, 1);

        /* Client closes: the server's handler runs (for both connections). */
        c = connect_to(f);
        cxpc_object_unref(call_ok(c, "echo"));
        cxpc_connection_close(c);
        assert_int_equal(cxpc_connection_get_state(c), CXPC_CONNECTION_INVALIDATED);
        cxpc_connection_unref(c);
        end = now_us() + 5 * 1000000u;
        while (!flag && now_us() < end) {
                flag = stats_get(probe, "disconnects") >= before + 2;
                if (!flag)
                        usleep(10 * 1000);
        }
        assert_true(flag);
        cxpc_connection_unref(probe);
        sd_event_unref(e);
}

static int on_event_message(cxpc_connection *c, cxpc_object *m, void *userdata) {
        const char *route = cxpc_message_get_route(m);
        if (route && strcmp(route, "event") == 0)
                (*(unsigned *) userdata)++;
        return 0;
}

static void test_event_during_sync_call(void **state) {
        Fixture *f = *state;
        cxpc_connection *c = connect_to(f);
        sd_event *e = NULL;
        unsigned events = 0;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(cxpc_connection_attach_event(c, e, 0), 0);
        assert_int_equal(cxpc_connection_set_message_handler(c, on_event_message, &events), 0);

        /* The server sends an event before its reply: the event waits for the loop. */
        cxpc_object_unref(call_ok(c, "notify"));
        assert_int_equal(events, 0);
        uint64_t end = now_us() + 5 * 1000000u;
        while (events == 0 && now_us() < end)
                assert_true(sd_event_run(e, 100 * 1000) >= 0);
        assert_int_equal(events, 1);

        cxpc_connection_unref(c);
        sd_event_unref(e);
}

static void test_stale_and_live_socket(void **state) {
        Fixture *f = *state;
        cxpc_listener *l = NULL;
        sd_event *e = NULL;
        struct stat st;

        assert_int_equal(sd_event_new(&e), 0);
        /* The server is alive at f->path: refuse to steal its socket. */
        assert_int_equal(cxpc_listener_new_for_path(e, f->path, &l), -EADDRINUSE);

        /* A stale socket file (nobody listening) is replaced; modes are 0600 / 0700. */
        char path[192], dir[160];
        snprintf(dir, sizeof(dir), "%s/stale", f->dir);
        snprintf(path, sizeof(path), "%s/server.sock", dir);
        assert_int_equal(mkdir(dir, 0700), 0);
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(s, (struct sockaddr *) &sa, sizeof(sa)), 0);
        close(s);
        assert_int_equal(cxpc_listener_new_for_path(e, path, &l), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        char srvdir[160];
        snprintf(srvdir, sizeof(srvdir), "%s/srv", f->dir);
        assert_int_equal(stat(srvdir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);

        /* Closing removes the socket file. */
        cxpc_listener_close(l);
        assert_int_equal(stat(path, &st), -1);
        cxpc_listener_unref(l);
        sd_event_unref(e);
}

int main(int argc, char **argv) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_request_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_error_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_oneway, setup, teardown),
                cmocka_unit_test_setup_teardown(test_async_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred_reply, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fd_passing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_endpoint_third_process, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deadline_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deadline_async, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peer_killed_sync, setup, teardown),
                cmocka_unit_test_setup_teardown(test_peer_killed_async, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed_frames, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pipelined_batches, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_record_in_batch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policy_other_uid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_route, setup, teardown),
                cmocka_unit_test_setup_teardown(test_introspection, setup, teardown),
                cmocka_unit_test(test_socket_activation),
                cmocka_unit_test(test_outbound_queue_bound),
                cmocka_unit_test_setup_teardown(test_disconnect_handlers, setup, teardown),
                cmocka_unit_test_setup_teardown(test_event_during_sync_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stale_and_live_socket, setup, teardown),
        };
        case_filter_from_args(argc, argv);
        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
