/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Console socket (master fd over SCM_RIGHTS, as crun sends it) and the PTY relay end to end:
 * openpty, bytes both ways, output logged, resize read back with TIOCGWINSZ, EOF on hangup. */
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "io-test-util.h"
#include "io/pty.h"

static char T[] = "/tmp/test-pty-XXXXXX";
static int fds_before;

static int setup(void **state) {
        strcpy(T, "/tmp/test-pty-XXXXXX");
        assert_non_null(mkdtemp(T));
        fds_before = count_fds();
        return 0;
}

static int teardown(void **state) {
        assert_int_equal(count_fds(), fds_before);
        rm_rf(T);
        return 0;
}

typedef struct Got {
        bool called;
        int error;
        int master;
        bool relay_done;
} Got;

static void on_console(ConsoleSocket *cs, int error, int master_fd, void *userdata) {
        Got *g = userdata;
        g->called = true;
        g->error = error;
        g->master = master_fd;
}

static void on_relay_done(PtyRelay *relay, int error, void *userdata) {
        Got *g = userdata;
        g->relay_done = true;
        g->error = error;
}

static int frame_collect(uint64_t ts, StdioStream stream, const void *data, size_t len, void *userdata) {
        char *s = userdata;
        assert_int_equal(stream, STDIO_STREAM_STDOUT);
        strncat(s, data, MIN(len, 255 - strlen(s)));
        return 0;
}

/* Reads from a non-blocking fd while running the loop, until `want` has been seen. */
static void expect_read(sd_event *e, int fd, const char *want) {
        char buf[256] = {};
        size_t have = 0;

        for (int i = 0; i < 500 && !strstr(buf, want); i++) {
                ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
                if (n > 0)
                        have += (size_t) n;
                (void) sd_event_run(e, 10 * USEC_PER_MSEC);
        }
        assert_non_null(strstr(buf, want));
}

static void test_console_and_relay(void **state) {
        _cleanup_(stdio_log_unrefp) StdioLog *log = NULL;
        ConsoleSocket *cs = NULL;
        PtyRelay *relay = NULL;
        sd_event *e = NULL;
        Got g = {.master = -EBADF};
        int master, slave, cin[2], cout[2], lfd;
        struct termios tio;
        struct winsize ws = {};
        char path[512], logged[256] = {};
        const char *sock;

        snprintf(path, sizeof(path), "%s/container.log", T);
        assert_int_equal(stdio_log_open(path, &log), 0);
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(console_socket_new(e, T, on_console, &g, &cs), 0);
        sock = console_socket_get_path(cs);
        assert_non_null(strstr(sock, T));

        /* What crun does: create the PTY and send the master. */
        assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
        assert_int_equal(fcntl(master, F_SETFD, FD_CLOEXEC), 0);
        assert_int_equal(fcntl(slave, F_SETFD, FD_CLOEXEC), 0);
        assert_int_equal(tcgetattr(slave, &tio), 0);
        cfmakeraw(&tio);
        assert_int_equal(tcsetattr(slave, TCSANOW, &tio), 0);
        assert_int_equal(console_socket_send(sock, master), 0);
        close(master);
        while (!g.called)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        assert_int_equal(g.error, 0);
        assert_true(g.master >= 0);
        assert_true(isatty(g.master));
        assert_true(fcntl(g.master, F_GETFD) & FD_CLOEXEC);
        /* The private directory is gone once the fd has arrived. */
        assert_int_equal(access(sock, F_OK), -1);
        cs = console_socket_free(cs);
        assert_true(dir_is_empty(T) == false); /* only the log is left */

        assert_int_equal(pipe2(cin, O_CLOEXEC), 0);
        assert_int_equal(pipe2(cout, O_CLOEXEC | O_NONBLOCK), 0);
        assert_int_equal(pty_relay_new(e, g.master, cin[0], cout[1], log, on_relay_done, &g, &relay), 0);
        assert_int_equal(fcntl(slave, F_SETFL, O_NONBLOCK), 0);

        /* client → terminal */
        assert_int_equal(write(cin[1], "typed\n", 6), 6);
        expect_read(e, slave, "typed");
        /* process → client (+ log) */
        assert_int_equal(write(slave, "hello from tty", 14), 14);
        expect_read(e, cout[0], "hello from tty");

        /* resize, read back on the process side */
        assert_int_equal(pty_relay_resize(relay, 132, 43), 0);
        assert_int_equal(ioctl(slave, TIOCGWINSZ, &ws), 0);
        assert_int_equal(ws.ws_col, 132);
        assert_int_equal(ws.ws_row, 43);
        assert_int_equal(pty_relay_resize(relay, 0, 43), -EINVAL);

        /* the process side hangs up: the relay reports EOF */
        close(slave);
        while (!g.relay_done)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        assert_int_equal(g.error, 0);
        pty_relay_free(relay);
        close(cin[1]);
        close(cout[0]);
        sd_event_unref(e);

        lfd = open(path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(stdio_log_read(lfd, false, -EBADF, frame_collect, logged), 0);
        close(lfd);
        assert_non_null(strstr(logged, "hello from tty"));
}

static void test_console_rejects_non_tty(void **state) {
        ConsoleSocket *cs = NULL;
        sd_event *e = NULL;
        Got g = {.master = -EBADF};
        int p[2];

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(console_socket_new(e, T, on_console, &g, &cs), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(console_socket_send(console_socket_get_path(cs), p[0]), 0);
        while (!g.called)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        assert_int_equal(g.error, -EBADMSG);
        assert_int_equal(g.master, -EBADF);
        close(p[0]);
        close(p[1]);
        console_socket_free(cs);
        sd_event_unref(e);
        assert_true(dir_is_empty(T));
}

static void test_detached_pty(void **state) {
        PtyRelay *relay = NULL;
        sd_event *e = NULL;
        Got g = {};
        int master, slave;

        /* No client at all: output is drained (and would be logged), EOF still reported. */
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
        assert_int_equal(pty_relay_new(e, master, -EBADF, -EBADF, NULL, on_relay_done, &g, &relay), 0);
        assert_int_equal(write(slave, "x", 1), 1);
        close(slave);
        while (!g.relay_done)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        pty_relay_free(relay);
        sd_event_unref(e);
        assert_int_equal(pty_relay_new(NULL, -1, -1, -1, NULL, NULL, NULL, &relay), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_console_and_relay, setup, teardown),
                cmocka_unit_test_setup_teardown(test_console_rejects_non_tty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_detached_pty, setup, teardown),
        };

        (void) signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
