/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>

#include "io-util.h"
#include "pty.h"

#define CONSOLE_SOCKET_FDS_MAX 4 /* crun sends one; accept a few to close the extras cleanly */

struct ConsoleSocket {
        sd_event_source *listen_source;
        sd_event_source *conn_source;
        int listen_fd;
        int conn_fd;
        char *dir;
        char *path;
        bool finished;
        console_socket_done_t callback;
        void *userdata;
};

static void console_socket_close(ConsoleSocket *cs) {
        cs->listen_source = sd_event_source_disable_unref(cs->listen_source);
        cs->conn_source = sd_event_source_disable_unref(cs->conn_source);
        cs->listen_fd = safe_close(cs->listen_fd);
        cs->conn_fd = safe_close(cs->conn_fd);
        if (cs->path) {
                (void) unlink(cs->path);
                cs->path = (free(cs->path), NULL);
        }
        if (cs->dir) {
                (void) rmdir(cs->dir);
                cs->dir = (free(cs->dir), NULL);
        }
}

static void console_socket_finish(ConsoleSocket *cs, int error, int master_fd) {
        assert(!cs->finished);
        cs->finished = true;
        console_socket_close(cs);
        cs->callback(cs, error, master_fd, cs->userdata); /* may free cs */
}

static int console_on_conn(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ConsoleSocket *cs = userdata;
        union {
                struct cmsghdr cmsghdr;
                uint8_t buf[CMSG_SPACE(sizeof(int) * CONSOLE_SOCKET_FDS_MAX)];
        } control = {};
        char name[256];
        struct iovec iov = {.iov_base = name, .iov_len = sizeof(name)};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        int fds[CONSOLE_SOCKET_FDS_MAX], n_fds = 0;
        ssize_t n;

        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n < 0) {
                console_socket_finish(cs, negative_errno(), -EBADF);
                return 0;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < k && n_fds < CONSOLE_SOCKET_FDS_MAX; i++)
                                memcpy(&fds[n_fds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                }
        if ((mh.msg_flags & MSG_CTRUNC) || n_fds != 1 || !isatty(fds[0])) {
                close_many(fds, (size_t) n_fds);
                console_socket_finish(cs, n == 0 && n_fds == 0 ? -ECONNRESET : -EBADMSG, -EBADF);
                return 0;
        }
        console_socket_finish(cs, 0, fds[0]);
        return 0;
}

static int console_on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        ConsoleSocket *cs = userdata;
        sd_event *event = sd_event_source_get_event(s); /* before s goes away below */
        int c, r;

        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) {
                if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                        return 0;
                console_socket_finish(cs, negative_errno(), -EBADF);
                return 0;
        }
        /* One sender is all we serve: stop listening. */
        cs->listen_source = sd_event_source_disable_unref(cs->listen_source);
        cs->listen_fd = safe_close(cs->listen_fd);
        cs->conn_fd = c;
        r = sd_event_add_io(event, &cs->conn_source, c, EPOLLIN, console_on_conn, cs);
        if (r < 0)
                console_socket_finish(cs, r, -EBADF);
        return 0;
}

int console_socket_new(sd_event *event, const char *parent_dir, console_socket_done_t callback,
                       void *userdata, ConsoleSocket **ret) {
        _cleanup_(console_socket_freep) ConsoleSocket *cs = NULL;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const char *parent;
        int r;

        assert_return(event && callback && ret, -EINVAL);

        parent = parent_dir ?: getenv("TMPDIR") ?: "/tmp";
        cs = calloc(1, sizeof(*cs));
        if (!cs)
                return -ENOMEM;
        cs->listen_fd = cs->conn_fd = -EBADF;
        cs->callback = callback;
        cs->userdata = userdata;

        if (asprintf(&cs->dir, "%s/console-XXXXXX", parent) < 0) {
                cs->dir = NULL;
                return -ENOMEM;
        }
        if (!mkdtemp(cs->dir)) { /* 0700: only we (and root) may connect */
                r = negative_errno();
                cs->dir = (free(cs->dir), NULL);
                return r;
        }
        if (asprintf(&cs->path, "%s/" CONSOLE_SOCKET_NAME, cs->dir) < 0) {
                cs->path = NULL;
                return -ENOMEM;
        }
        if (strlen(cs->path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, cs->path);

        cs->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (cs->listen_fd < 0)
                return negative_errno();
        if (bind(cs->listen_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();
        if (listen(cs->listen_fd, CONSOLE_SOCKET_BACKLOG) < 0)
                return negative_errno();
        r = sd_event_add_io(event, &cs->listen_source, cs->listen_fd, EPOLLIN, console_on_listen, cs);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(cs->listen_source, "console-socket");
        *ret = TAKE_PTR(cs);
        return 0;
}

const char *console_socket_get_path(ConsoleSocket *cs) {
        assert_return(cs, NULL);
        return cs->path;
}

ConsoleSocket *console_socket_free(ConsoleSocket *cs) {
        if (!cs)
                return NULL;
        console_socket_close(cs);
        free(cs);
        return NULL;
}

int console_socket_send(const char *path, int master_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        union {
                struct cmsghdr cmsghdr;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        char name[] = "/dev/ptmx";
        struct iovec iov = {.iov_base = name, .iov_len = sizeof(name) - 1};
        struct msghdr mh = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = &control,
                .msg_controllen = sizeof(control),
        };
        struct cmsghdr *c;

        assert_return(path, -EINVAL);
        assert_return(master_fd >= 0, -EBADF);
        assert_return(strlen(path) < sizeof(sa.sun_path), -ENAMETOOLONG);

        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return negative_errno();
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &master_fd, sizeof(int));
        if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
                return negative_errno();
        return 0;
}

int pty_resize(int tty_fd, unsigned width, unsigned height) {
        struct winsize ws = {};

        assert_return(tty_fd >= 0, -EBADF);
        assert_return(width > 0 && width <= UINT16_MAX && height > 0 && height <= UINT16_MAX, -EINVAL);

        ws.ws_col = (unsigned short) width;
        ws.ws_row = (unsigned short) height;
        if (ioctl(tty_fd, TIOCSWINSZ, &ws) < 0)
                return negative_errno();
        return 0;
}

struct PtyRelay {
        int master_fd; /* kept for resize; the pumps own their own duplicates */
        Pump *output;  /* master → client_out (+ log) */
        Pump *input;   /* client_in → master */
        bool done;
        pty_relay_done_t callback;
        void *userdata;
};

static void pty_on_output_done(Pump *p, int error, void *userdata) {
        PtyRelay *relay = userdata;

        relay->done = true;
        relay->input = pump_free(relay->input);
        if (relay->callback)
                relay->callback(relay, error, relay->userdata); /* may free relay */
}

static void pty_on_input_done(Pump *p, int error, void *userdata) {
        /* Client stdin ended. Do not close the terminal: the process may still write. */
}

int pty_relay_new(sd_event *event, int master_fd, int client_in, int client_out, StdioLog *log,
                  pty_relay_done_t callback, void *userdata, PtyRelay **ret) {
        _cleanup_close_ int mfd = master_fd, cin = client_in, cout = client_out, m_out = -EBADF,
                            m_in = -EBADF;
        _cleanup_(pty_relay_freep) PtyRelay *relay = NULL;
        ClientFdKind kind_out = CLIENT_FD_FILE, kind_in = CLIENT_FD_FILE;
        int r;

        assert_return(event && ret, -EINVAL);
        assert_return(mfd >= 0, -EBADF);
        if (!isatty(mfd))
                return -ENOTTY;

        relay = calloc(1, sizeof(*relay));
        if (!relay)
                return -ENOMEM;
        relay->master_fd = -EBADF;
        relay->callback = callback;
        relay->userdata = userdata;

        /* The master is ours alone: O_NONBLOCK on it is fine. */
        r = fd_set_nonblock(mfd, true);
        if (r < 0)
                return r;
        m_out = fcntl(mfd, F_DUPFD_CLOEXEC, 3);
        if (m_out < 0)
                return negative_errno();
        if (cout >= 0) {
                r = client_fd_prepare(TAKE_FD(cout), true, &cout, &kind_out);
                if (r < 0)
                        return r;
        }
        if (cin >= 0) {
                m_in = fcntl(mfd, F_DUPFD_CLOEXEC, 3);
                if (m_in < 0)
                        return negative_errno();
                r = client_fd_prepare(TAKE_FD(cin), false, &cin, &kind_in);
                if (r < 0)
                        return r;
                r = pump_new(event, TAKE_FD(cin), kind_in, TAKE_FD(m_in), CLIENT_FD_NONBLOCK, NULL, 0, false,
                             PTY_BUFFER_SIZE, pty_on_input_done, relay, &relay->input);
                if (r < 0)
                        return r;
        }
        /* A terminal merges both streams: everything is logged as stdout. */
        r = pump_new(event, TAKE_FD(m_out), CLIENT_FD_NONBLOCK, TAKE_FD(cout), kind_out, log,
                     STDIO_STREAM_STDOUT, true, PTY_BUFFER_SIZE, pty_on_output_done, relay, &relay->output);
        if (r < 0)
                return r;
        relay->master_fd = TAKE_FD(mfd);
        *ret = TAKE_PTR(relay);
        return 0;
}

int pty_relay_resize(PtyRelay *relay, unsigned width, unsigned height) {
        assert_return(relay, -EINVAL);
        return pty_resize(relay->master_fd, width, height);
}

void pty_relay_detach_client(PtyRelay *relay) {
        if (!relay)
                return;
        relay->input = pump_free(relay->input);
        pump_drop_destination(relay->output); /* last: may complete (and free) the relay */
}

PtyRelay *pty_relay_free(PtyRelay *relay) {
        if (!relay)
                return NULL;
        pump_free(relay->output);
        pump_free(relay->input);
        safe_close(relay->master_fd);
        free(relay);
        return NULL;
}
