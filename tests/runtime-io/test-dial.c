/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dial into a network namespace: a forked server unshares a netns, brings up lo and listens on
 * 127.0.0.1:PORT; we connect through its /proc/<pid>/ns/net (blocking and sd-event variants) and
 * exchange data; the port is not reachable from our own namespace, which stays unchanged. */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "io-test-util.h"
#include "io/dial.h"

#define PORT        47123
#define CONNECTIONS 2

static int fds_before;

static void echo_server(int ready_fd) {
        struct sockaddr_in sa = {
                .sin_family = AF_INET, .sin_port = htons(PORT), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        struct ifreq ifr = {};
        int s, l;

        /* Never outlive the test. */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void) alarm(30);
        if (unshare(CLONE_NEWNET) < 0)
                _exit(10);
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                _exit(11);
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                _exit(12);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || bind(l, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(l, 4) < 0)
                _exit(13);
        if (write(ready_fd, "r", 1) != 1)
                _exit(14);
        for (int i = 0; i < CONNECTIONS; i++) {
                char buf[64] = "pong:";
                int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                ssize_t n;

                if (c < 0)
                        _exit(15);
                n = read(c, buf + 5, sizeof(buf) - 6);
                if (n <= 0 || write(c, buf, 5 + (size_t) n) != 5 + n)
                        _exit(16);
                close(c);
        }
        _exit(0);
}

static pid_t start_server(void) {
        int p[2];
        char c;
        pid_t pid;

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                echo_server(p[1]);
        close(p[1]);
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        return pid;
}

static void exchange(int fd, const char *msg) {
        char buf[64] = {};
        size_t len = strlen(msg);
        ssize_t n, have = 0;

        assert_int_equal(write(fd, msg, len), (ssize_t) len);
        while ((n = read(fd, buf + have, sizeof(buf) - 1 - (size_t) have)) > 0)
                have += n;
        assert_memory_equal(buf, "pong:", 5);
        assert_string_equal(buf + 5, msg);
}

static ino_t netns_inode(const char *path) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        return st.st_ino;
}

typedef struct Got {
        bool called;
        int error;
        int fd;
} Got;

static void on_dial(DialJob *job, int error, int fd, void *userdata) {
        Got *g = userdata;
        g->called = true;
        g->error = error;
        g->fd = fd;
}

static void test_dial(void **state) {
        char path[64];
        ino_t self_before = netns_inode("/proc/self/ns/net");
        struct sockaddr_in sa = {
                .sin_family = AF_INET, .sin_port = htons(PORT), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        DialJob *job = NULL;
        sd_event *e = NULL;
        Got g = {.fd = -EBADF};
        int ns, fd, status, host;
        pid_t pid;

        fds_before = count_fds();
        pid = start_server();
        snprintf(path, sizeof(path), "/proc/%i/ns/net", (int) pid);
        ns = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(ns >= 0);
        assert_true(netns_inode(path) != self_before);

        /* Blocking variant. */
        fd = -EBADF;
        assert_int_equal(dial_netns(ns, PORT, 2 * USEC_PER_SEC, &fd), 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
        exchange(fd, "blocking");
        close(fd);

        /* Event-loop variant. */
        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(dial_job_new(e, ns, PORT, 0, on_dial, &g, &job), 0);
        while (!g.called)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        assert_int_equal(g.error, 0);
        exchange(g.fd, "async");
        close(g.fd);
        dial_job_free(job);

        /* Nothing listens on that port in our namespace, and we are still in it. */
        host = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(host, (struct sockaddr *) &sa, sizeof(sa)), -1);
        assert_int_equal(errno, ECONNREFUSED);
        close(host);
        assert_int_equal(netns_inode("/proc/self/ns/net"), self_before);

        /* The server has served both and exited; its namespace lives on through our fd, with
         * the port now closed: refused, in both variants. */
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        fd = -EBADF;
        assert_int_equal(dial_netns(ns, PORT, 0, &fd), -ECONNREFUSED);
        assert_int_equal(fd, -EBADF);
        g = (Got){.fd = -EBADF};
        assert_int_equal(dial_job_new(e, ns, PORT, 0, on_dial, &g, &job), 0);
        while (!g.called)
                assert_true(sd_event_run(e, 5 * USEC_PER_SEC) > 0);
        assert_int_equal(g.error, -ECONNREFUSED);
        assert_int_equal(g.fd, -EBADF);
        dial_job_free(job);

        /* Bad arguments. */
        assert_int_equal(dial_netns(-1, PORT, 0, &fd), -EBADF);
        assert_int_equal(dial_netns(ns, 0, 0, &fd), -EINVAL);
        host = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_int_equal(dial_netns(host, PORT, 0, &fd), -EINVAL); /* not a namespace */
        close(host);

        close(ns);
        sd_event_unref(e);
        assert_int_equal(count_fds(), fds_before);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dial),
        };

        (void) signal(SIGPIPE, SIG_IGN);
        if (geteuid() != 0) {
                fprintf(stderr, "needs root (network namespaces)\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
