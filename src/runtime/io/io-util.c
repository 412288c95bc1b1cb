/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "io-util.h"
#include "stdio.h"

uint64_t now_realtime_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * NSEC_PER_SEC + (uint64_t) ts.tv_nsec;
}

int fd_set_nonblock(int fd, bool nonblock) {
        int flags, nflags;

        flags = fcntl(fd, F_GETFL);
        if (flags < 0)
                return negative_errno();
        nflags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        if (nflags != flags && fcntl(fd, F_SETFL, nflags) < 0)
                return negative_errno();
        return 0;
}

int client_fd_prepare(int fd, bool for_write, int *ret_fd, ClientFdKind *ret_kind) {
        _cleanup_close_ int owned = fd, reopened = -EBADF;
        char path[64];
        struct stat st;
        int r;

        assert_return(fd >= 0, -EBADF);
        assert_return(ret_fd && ret_kind, -EINVAL);

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISSOCK(st.st_mode)) {
                *ret_kind = CLIENT_FD_SOCKET;
                *ret_fd = TAKE_FD(owned);
                return 0;
        }
        /* Character devices other than terminals (/dev/null) cannot be polled: like files. */
        if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || (S_ISCHR(st.st_mode) && !isatty(fd))) {
                *ret_kind = CLIENT_FD_FILE;
                *ret_fd = TAKE_FD(owned);
                return 0;
        }

        /* Pipes and terminals: a fresh file description, so O_NONBLOCK stays ours and the
         * client's own terminal (or shell pipe) keeps blocking semantics. */
        (void) snprintf(path, sizeof(path), "/proc/self/fd/%i", fd);
        reopened = open(path, (for_write ? O_WRONLY : O_RDONLY) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (reopened < 0) {
                /* No /proc: fall back to the fd itself. */
                r = fd_set_nonblock(owned, true);
                if (r < 0)
                        return r;
                reopened = TAKE_FD(owned);
        }
        *ret_kind = S_ISFIFO(st.st_mode) ? CLIENT_FD_PIPE : CLIENT_FD_NONBLOCK;
        *ret_fd = TAKE_FD(reopened);
        return 0;
}

ssize_t client_fd_write(int fd, ClientFdKind kind, const void *buf, size_t len) {
        ssize_t n;

        for (;;) {
                if (kind == CLIENT_FD_SOCKET)
                        n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                else
                        n = write(fd, buf, len);
                if (n >= 0)
                        return n;
                if (errno != EINTR)
                        return negative_errno();
        }
}

ssize_t client_fd_read(int fd, ClientFdKind kind, void *buf, size_t len) {
        ssize_t n;

        for (;;) {
                if (kind == CLIENT_FD_SOCKET)
                        n = recv(fd, buf, len, MSG_DONTWAIT);
                else
                        n = read(fd, buf, len);
                if (n >= 0)
                        return n;
                if (errno != EINTR)
                        return negative_errno();
        }
}

int mkdir_parents_mode(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

/* ---- Pump -------------------------------------------------------------------------------- */

struct Pump {
        sd_event_source *src_source;
        sd_event_source *dst_source;
        int src_fd, dst_fd;
        ClientFdKind src_kind, dst_kind;
        StdioLog *log;
        int log_stream;
        bool src_eio_is_eof;
        bool src_eof;
        bool done;
        uint8_t *buf;
        size_t capacity, off, len;
        pump_done_t callback;
        void *userdata;
};

static void pump_finish(Pump *p, int error) {
        if (p->done)
                return;
        p->done = true;
        (void) sd_event_source_set_enabled(p->src_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(p->dst_source, SD_EVENT_OFF);
        if (p->callback)
                p->callback(p, error, p->userdata);
}

static void pump_close_destination(Pump *p) {
        p->dst_source = sd_event_source_disable_unref(p->dst_source);
        p->dst_fd = safe_close(p->dst_fd);
        p->off = p->len = 0;
}

void pump_drop_destination(Pump *p) {
        if (!p)
                return;
        pump_close_destination(p);
        if (p->done)
                return;
        if (p->src_eof)
                pump_finish(p, 0);
        else
                (void) sd_event_source_set_enabled(p->src_source, SD_EVENT_ON);
}

/* Writes what is buffered. Returns 1 when drained, 0 when the destination is full. */
static int pump_flush(Pump *p) {
        while (p->len > 0) {
                ssize_t n = client_fd_write(p->dst_fd, p->dst_kind, p->buf + p->off, p->len);
                if (n == -EAGAIN)
                        return 0;
                if (n <= 0) {
                        /* The client is gone (EPIPE, ECONNRESET, ...): keep logging without it. The
                         * caller decides what comes next (never finish from in here). */
                        pump_close_destination(p);
                        return 1;
                }
                p->off += (size_t) n;
                p->len -= (size_t) n;
        }
        p->off = 0;
        return 1;
}

static int pump_on_dst(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Pump *p = userdata;

        if (pump_flush(p) == 0)
                return 0;
        (void) sd_event_source_set_enabled(p->dst_source, SD_EVENT_OFF);
        if (p->src_eof)
                pump_finish(p, 0);
        else
                (void) sd_event_source_set_enabled(p->src_source, SD_EVENT_ON);
        return 0;
}

static int pump_on_src(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Pump *p = userdata;
        ssize_t n;
        int r;

        assert(p->len == 0);
        n = client_fd_read(p->src_fd, p->src_kind, p->buf, p->capacity);
        if (n == -EAGAIN)
                return 0;
        if (n == 0 || (n == -EIO && p->src_eio_is_eof) || n == -ECONNRESET) {
                p->src_eof = true;
                pump_finish(p, 0);
                return 0;
        }
        if (n < 0) {
                p->src_eof = true;
                pump_finish(p, (int) n);
                return 0;
        }
        if (p->log) {
                r = stdio_log_write(p->log, p->log_stream, p->buf, (size_t) n);
                if (r < 0) {
                        pump_finish(p, r);
                        return 0;
                }
        }
        if (p->dst_fd < 0)
                return 0;
        p->off = 0;
        p->len = (size_t) n;
        if (p->dst_kind == CLIENT_FD_FILE) {
                /* Regular files cannot be polled and do not block for long: write it all. */
                while (p->len > 0 && p->dst_fd >= 0)
                        (void) pump_flush(p);
                return 0;
        }
        if (pump_flush(p) == 0 && p->dst_source) {
                (void) sd_event_source_set_enabled(p->src_source, SD_EVENT_OFF);
                (void) sd_event_source_set_enabled(p->dst_source, SD_EVENT_ON);
        }
        return 0;
}

static int pump_on_src_defer(sd_event_source *s, void *userdata) {
        return pump_on_src(s, -1, 0, userdata);
}

int pump_new(sd_event *event, int src_fd, ClientFdKind src_kind, int dst_fd, ClientFdKind dst_kind,
             StdioLog *log, int log_stream, bool src_eio_is_eof, size_t capacity, pump_done_t cb,
             void *userdata, Pump **ret) {
        _cleanup_close_ int sfd = src_fd, dfd = dst_fd;
        _cleanup_(pump_freep) Pump *p = NULL;
        int r;

        assert_return(event && ret, -EINVAL);
        assert_return(sfd >= 0, -EBADF);
        assert_return(capacity > 0, -EINVAL);

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->src_fd = TAKE_FD(sfd);
        p->dst_fd = TAKE_FD(dfd);
        p->src_kind = src_kind;
        p->dst_kind = dst_kind;
        p->log = log ? stdio_log_ref(log) : NULL;
        p->log_stream = log_stream;
        p->src_eio_is_eof = src_eio_is_eof;
        p->capacity = capacity;
        p->callback = cb;
        p->userdata = userdata;
        p->buf = malloc(capacity);
        if (!p->buf)
                return -ENOMEM;

        if (src_kind == CLIENT_FD_FILE)
                r = sd_event_add_defer(event, &p->src_source, pump_on_src_defer, p);
        else {
                if (src_kind != CLIENT_FD_SOCKET) {
                        r = fd_set_nonblock(p->src_fd, true);
                        if (r < 0)
                                return r;
                }
                r = sd_event_add_io(event, &p->src_source, p->src_fd, EPOLLIN, pump_on_src, p);
        }
        if (r < 0)
                return r;
        if (src_kind == CLIENT_FD_FILE)
                (void) sd_event_source_set_enabled(p->src_source, SD_EVENT_ON);

        if (p->dst_fd >= 0 && dst_kind != CLIENT_FD_FILE) {
                r = sd_event_add_io(event, &p->dst_source, p->dst_fd, EPOLLOUT, pump_on_dst, p);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_enabled(p->dst_source, SD_EVENT_OFF);
        }
        *ret = TAKE_PTR(p);
        return 0;
}

bool pump_is_done(Pump *p) {
        return !p || p->done;
}

Pump *pump_free(Pump *p) {
        if (!p)
                return NULL;
        sd_event_source_disable_unref(p->src_source);
        sd_event_source_disable_unref(p->dst_source);
        safe_close(p->src_fd);
        safe_close(p->dst_fd);
        stdio_log_unref(p->log);
        free(p->buf);
        free(p);
        return NULL;
}
