/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <endian.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "io-util.h"
#include "stdio.h"

static const char *const stdio_stream_table[_STDIO_STREAM_MAX] = {
        [STDIO_STREAM_STDIN] = "stdin",
        [STDIO_STREAM_STDOUT] = "stdout",
        [STDIO_STREAM_STDERR] = "stderr",
};

const char *stdio_stream_to_string(StdioStream s) {
        return s >= 0 && s < _STDIO_STREAM_MAX ? stdio_stream_table[s] : NULL;
}

static const char *const stdio_mode_table[_STDIO_MODE_MAX] = {
        [STDIO_MODE_LOG_RELAY] = "log-relay",
        [STDIO_MODE_LOG_ONLY] = "log-only",
        [STDIO_MODE_DIRECT] = "direct",
};

const char *stdio_mode_to_string(StdioMode m) {
        return m >= 0 && m < _STDIO_MODE_MAX ? stdio_mode_table[m] : NULL;
}

StdioMode stdio_mode_pick(bool logging, bool terminal, bool client_attached) {
        if (!logging && !terminal)
                return STDIO_MODE_DIRECT;
        /* A terminal always goes through the service (the PTY lives in the container). */
        return client_attached ? STDIO_MODE_LOG_RELAY : STDIO_MODE_LOG_ONLY;
}

/* ---- log --------------------------------------------------------------------------------- */

struct StdioLog {
        unsigned n_ref;
        int fd;
        off_t offset; /* where the next frame goes; explicit because splice() refuses O_APPEND */
};

static void log_header(uint8_t h[STDIO_LOG_HEADER_SIZE], uint64_t ts, StdioStream stream, uint32_t len) {
        uint64_t ts_le = htole64(ts);
        uint32_t len_le = htole32(len);

        memcpy(h, &ts_le, 8);
        h[8] = (uint8_t) stream;
        memcpy(h + 9, &len_le, 4);
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off) {
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                off += n;
        }
        return 0;
}

int stdio_log_open(const char *path, StdioLog **ret) {
        _cleanup_close_ int fd = -EBADF;
        char magic[STDIO_LOG_MAGIC_SIZE];
        struct stat st;
        StdioLog *l;
        int r;

        assert_return(path && ret, -EINVAL);

        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0640);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0) {
                r = pwrite_all(fd, STDIO_LOG_MAGIC, STDIO_LOG_MAGIC_SIZE, 0);
                if (r < 0)
                        return r;
                st.st_size = STDIO_LOG_MAGIC_SIZE;
        } else if (pread(fd, magic, sizeof(magic), 0) != (ssize_t) sizeof(magic) ||
                   memcmp(magic, STDIO_LOG_MAGIC, STDIO_LOG_MAGIC_SIZE) != 0)
                return -EBADMSG;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->n_ref = 1;
        l->fd = TAKE_FD(fd);
        l->offset = st.st_size;
        *ret = l;
        return 0;
}

StdioLog *stdio_log_ref(StdioLog *l) {
        if (l)
                l->n_ref++;
        return l;
}

StdioLog *stdio_log_unref(StdioLog *l) {
        if (!l)
                return NULL;
        assert(l->n_ref > 0);
        if (--l->n_ref > 0)
                return NULL;
        safe_close(l->fd);
        free(l);
        return NULL;
}

int stdio_log_write(StdioLog *l, StdioStream stream, const void *data, size_t len) {
        const uint8_t *p = data;

        assert_return(l, -EINVAL);
        assert_return(stream == STDIO_STREAM_STDOUT || stream == STDIO_STREAM_STDERR, -EINVAL);
        assert_return(data || len == 0, -EINVAL);

        while (len > 0) {
                uint32_t n = (uint32_t) MIN(len, (size_t) STDIO_CHUNK_MAX);
                uint8_t h[STDIO_LOG_HEADER_SIZE];
                struct iovec iov[2] = {
                        {.iov_base = h, .iov_len = sizeof(h)},
                        {.iov_base = (void *) p, .iov_len = n},
                };
                ssize_t k;

                log_header(h, now_realtime_nsec(), stream, n);
                k = pwritev(l->fd, iov, 2, l->offset);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return negative_errno();
                if ((size_t) k != sizeof(h) + n) {
                        /* Rare short write: finish the rest of the frame the plain way. */
                        size_t done = (size_t) k;
                        int r;
                        if (done < sizeof(h)) {
                                r = pwrite_all(l->fd, h + done, sizeof(h) - done, l->offset + (off_t) done);
                                if (r < 0)
                                        return r;
                                done = sizeof(h);
                        }
                        r = pwrite_all(l->fd, p + (done - sizeof(h)), n - (done - sizeof(h)),
                                       l->offset + (off_t) done);
                        if (r < 0)
                                return r;
                }
                l->offset += (off_t) (sizeof(h) + n);
                p += n;
                len -= n;
        }
        return 0;
}

int stdio_log_splice(StdioLog *l, StdioStream stream, int pipe_fd, size_t len) {
        uint8_t h[STDIO_LOG_HEADER_SIZE];
        off_t off;
        int r;

        assert_return(l, -EINVAL);
        assert_return(stream == STDIO_STREAM_STDOUT || stream == STDIO_STREAM_STDERR, -EINVAL);
        assert_return(pipe_fd >= 0, -EBADF);
        assert_return(len > 0 && len <= STDIO_CHUNK_MAX, -EINVAL);

        log_header(h, now_realtime_nsec(), stream, (uint32_t) len);
        r = pwrite_all(l->fd, h, sizeof(h), l->offset);
        if (r < 0)
                return r;
        off = l->offset + (off_t) sizeof(h);
        for (size_t left = len; left > 0;) {
                ssize_t n = splice(pipe_fd, NULL, l->fd, &off, left, SPLICE_F_MOVE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EIO; /* the caller promised len bytes in the pipe */
                left -= (size_t) n;
        }
        l->offset = off;
        return 0;
}

/* Reads exactly len bytes at off; 0 when complete, -EAGAIN when the file is shorter (yet). */
static int pread_exact(int fd, void *buf, size_t len, off_t off) {
        uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pread(fd, p, len, off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -EAGAIN;
                p += n;
                len -= (size_t) n;
                off += n;
        }
        return 0;
}

/* Follow mode waits for the writer, not for a timer: an inotify watch on the log file (IN_MODIFY
 * for every write, splice and pwritev; IN_CLOSE_WRITE when a writer is done) and stop_fd, in one
 * poll() without a timeout. */
static int follow_watch(int log_fd) {
        _cleanup_close_ int fd = -EBADF;
        char path[64];

        fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        /* The magic link resolves to the open file, even if its name changed or is gone. */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", log_fd);
        if (inotify_add_watch(fd, path, IN_MODIFY | IN_CLOSE_WRITE) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* Discards the queued events: whatever they announced is read next from the file itself. */
static int follow_drain(int inotify_fd) {
        _Alignas(struct inotify_event) uint8_t buf[4096];

        for (;;) {
                ssize_t n = read(inotify_fd, buf, sizeof(buf));
                if (n > 0)
                        continue;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                return n < 0 ? negative_errno() : -EIO;
        }
}

/* Waits until the log changed. Returns 1 to read on, 0 if stop_fd fired. */
static int follow_wait(int inotify_fd, int stop_fd) {
        struct pollfd pfd[2] = {
                {.fd = inotify_fd, .events = POLLIN},
                {.fd = stop_fd, .events = POLLIN},
        };

        for (;;) {
                int n = poll(pfd, stop_fd >= 0 ? 2 : 1, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (stop_fd >= 0 && pfd[1].revents != 0)
                        return 0;
                if (pfd[0].revents & (POLLERR | POLLNVAL))
                        return -EIO;
                if (pfd[0].revents & POLLIN) {
                        int r = follow_drain(inotify_fd);
                        return r < 0 ? r : 1;
                }
        }
}

int stdio_log_read(int log_fd, bool follow, int stop_fd, stdio_log_frame_t callback, void *userdata) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int inotify_fd = -EBADF;
        char magic[STDIO_LOG_MAGIC_SIZE];
        off_t off = STDIO_LOG_MAGIC_SIZE;
        int r;

        assert_return(log_fd >= 0, -EBADF);
        assert_return(callback, -EINVAL);

        r = pread_exact(log_fd, magic, sizeof(magic), 0);
        if (r == -EAGAIN)
                return -EBADMSG;
        if (r < 0)
                return r;
        if (memcmp(magic, STDIO_LOG_MAGIC, STDIO_LOG_MAGIC_SIZE) != 0)
                return -EBADMSG;
        data = malloc(STDIO_CHUNK_MAX);
        if (!data)
                return -ENOMEM;

        for (;;) {
                uint8_t h[STDIO_LOG_HEADER_SIZE];
                uint64_t ts = 0;
                uint32_t len = 0;

                r = pread_exact(log_fd, h, sizeof(h), off);
                if (r == 0) {
                        memcpy(&ts, h, 8);
                        memcpy(&len, h + 9, 4);
                        ts = le64toh(ts);
                        len = le32toh(len);
                        if (len > STDIO_CHUNK_MAX ||
                            (h[8] != STDIO_STREAM_STDOUT && h[8] != STDIO_STREAM_STDERR))
                                return -EBADMSG;
                        r = pread_exact(log_fd, data, len, off + (off_t) sizeof(h));
                }
                if (r == -EAGAIN) {
                        /* End of what is written (possibly in the middle of a frame). */
                        if (!follow)
                                return 0;
                        if (inotify_fd < 0) {
                                /* First time at the end: watch, then look again, because the
                                 * writer may have appended between our read and the watch. */
                                inotify_fd = follow_watch(log_fd);
                                if (inotify_fd < 0)
                                        return inotify_fd;
                                continue;
                        }
                        r = follow_wait(inotify_fd, stop_fd);
                        if (r <= 0)
                                return r;
                        continue;
                }
                if (r < 0)
                        return r;

                r = callback(ts, (StdioStream) h[8], data, len, userdata);
                if (r < 0)
                        return r;
                if (r > 0)
                        return 0;
                off += (off_t) (sizeof(h) + len);
        }
}

/* ---- relay ------------------------------------------------------------------------------- */

typedef struct OutputStream {
        StdioRelay *relay;
        StdioStream stream;
        bool used;
        bool eof;
        /* Fast path (client is a pipe or there is no client): tee + splice. */
        int process_fd;
        int client_fd;
        sd_event_source *process_source;
        sd_event_source *client_source;
        /* Fallback path: a read/write pump. */
        Pump *pump;
} OutputStream;

struct StdioRelay {
        sd_event *event;
        StdioLog *log;
        OutputStream out[2]; /* stdout, stderr */
        Pump *input;
        stdio_relay_done_t callback;
        void *userdata;
        int error;
        bool done;
        bool detaching; /* hold off the callback until detach has touched everything */
};

static void relay_check_done(StdioRelay *r) {
        if (r->done || r->detaching)
                return;
        for (size_t i = 0; i < ELEMENTSOF(r->out); i++)
                if (r->out[i].used && !r->out[i].eof)
                        return;
        r->done = true;
        /* Last thing we do: the callback may free the relay. */
        if (r->callback)
                r->callback(r, r->error, r->userdata);
}

static void output_set_eof(OutputStream *o, int error) {
        StdioRelay *r = o->relay;

        o->eof = true;
        if (error < 0 && r->error == 0)
                r->error = error;
        (void) sd_event_source_set_enabled(o->process_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(o->client_source, SD_EVENT_OFF);
        relay_check_done(r);
}

static void output_drop_client(OutputStream *o) {
        o->client_source = sd_event_source_disable_unref(o->client_source);
        o->client_fd = safe_close(o->client_fd);
        if (!o->eof)
                (void) sd_event_source_set_enabled(o->process_source, SD_EVENT_ON);
}

static int pipe_available(int fd, size_t *ret) {
        int n;

        if (ioctl(fd, FIONREAD, &n) < 0)
                return negative_errno();
        *ret = (size_t) MAX(n, 0);
        return 0;
}

static int output_on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        OutputStream *o = userdata;

        /* Room again (or the reader is gone, which the next tee reports as EPIPE). */
        (void) sd_event_source_set_enabled(o->client_source, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(o->process_source, SD_EVENT_ON);
        return 0;
}

static int output_on_process(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        OutputStream *o = userdata;
        StdioLog *log = o->relay->log;
        size_t avail;
        ssize_t n;
        int r;

        if (o->client_fd >= 0) {
                if (log)
                        n = tee(o->process_fd, o->client_fd, STDIO_CHUNK_MAX, SPLICE_F_NONBLOCK);
                else
                        n = splice(o->process_fd, NULL, o->client_fd, NULL, STDIO_CHUNK_MAX,
                                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
                if (n == 0) {
                        output_set_eof(o, 0);
                        return 0;
                }
                if (n < 0 && errno == EAGAIN) {
                        /* Either side: nothing to read, or the client's pipe is full. */
                        r = pipe_available(o->process_fd, &avail);
                        if (r < 0) {
                                output_set_eof(o, r);
                                return 0;
                        }
                        if (avail > 0) {
                                (void) sd_event_source_set_enabled(o->process_source, SD_EVENT_OFF);
                                (void) sd_event_source_set_enabled(o->client_source, SD_EVENT_ON);
                        }
                        return 0;
                }
                if (n < 0 && errno == EINTR)
                        return 0;
                if (n < 0) {
                        /* EPIPE & co: the client went away; log on without it. */
                        output_drop_client(o);
                        return 0;
                }
                if (log) {
                        r = stdio_log_splice(log, o->stream, o->process_fd, (size_t) n);
                        if (r < 0)
                                output_set_eof(o, r);
                }
                return 0;
        }

        /* No client. */
        r = pipe_available(o->process_fd, &avail);
        if (r < 0) {
                output_set_eof(o, r);
                return 0;
        }
        if (avail == 0) {
                if (revents & (EPOLLHUP | EPOLLERR))
                        output_set_eof(o, 0);
                return 0;
        }
        if (log) {
                r = stdio_log_splice(log, o->stream, o->process_fd, MIN(avail, (size_t) STDIO_CHUNK_MAX));
                if (r < 0)
                        output_set_eof(o, r);
        } else {
                /* Neither log nor client (detached from an unlogged stream): drain so the process
                 * never blocks on a full pipe. */
                uint8_t buf[4096];
                (void) !read(o->process_fd, buf, sizeof(buf));
        }
        return 0;
}

static void output_on_pump_done(Pump *p, int error, void *userdata) {
        output_set_eof(userdata, error);
}

static void input_on_pump_done(Pump *p, int error, void *userdata) {
        /* Client EOF: close the process's stdin so it sees EOF too. */
        pump_drop_destination(p);
}

int stdio_relay_new(sd_event *event, StdioLog *log, stdio_relay_done_t callback, void *userdata,
                    StdioRelay **ret) {
        StdioRelay *r;

        assert_return(event && ret, -EINVAL);

        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);
        r->log = stdio_log_ref(log);
        r->callback = callback;
        r->userdata = userdata;
        for (size_t i = 0; i < ELEMENTSOF(r->out); i++)
                r->out[i] = (OutputStream){
                        .relay = r,
                        .stream = (StdioStream) (i + 1),
                        .process_fd = -EBADF,
                        .client_fd = -EBADF,
                };
        *ret = r;
        return 0;
}

int stdio_relay_add_output(StdioRelay *relay, StdioStream stream, int process_fd, int client_fd) {
        _cleanup_close_ int pfd = process_fd, cfd = client_fd;
        ClientFdKind kind = CLIENT_FD_PIPE;
        OutputStream *o;
        struct stat st;
        int r;

        assert_return(relay, -EINVAL);
        assert_return(stream == STDIO_STREAM_STDOUT || stream == STDIO_STREAM_STDERR, -EINVAL);
        assert_return(pfd >= 0, -EBADF);
        o = &relay->out[stream - 1];
        assert_return(!o->used, -EBUSY);
        assert_return(!relay->done, -ESTALE);

        if (fstat(pfd, &st) < 0)
                return negative_errno();
        if (!S_ISFIFO(st.st_mode))
                return -EBADFD; /* we hand out the pipes, so this is always one */
        r = fd_set_nonblock(pfd, true);
        if (r < 0)
                return r;

        if (cfd >= 0) {
                r = client_fd_prepare(TAKE_FD(cfd), true, &cfd, &kind);
                if (r < 0)
                        return r;
        }

        if (cfd < 0 || kind == CLIENT_FD_PIPE) {
                r = sd_event_add_io(relay->event, &o->process_source, pfd, EPOLLIN, output_on_process, o);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(o->process_source, "stdio-process");
                if (cfd >= 0) {
                        r = sd_event_add_io(relay->event, &o->client_source, cfd, EPOLLOUT, output_on_client,
                                            o);
                        if (r < 0) {
                                o->process_source = sd_event_source_disable_unref(o->process_source);
                                return r;
                        }
                        (void) sd_event_source_set_enabled(o->client_source, SD_EVENT_OFF);
                }
                o->process_fd = TAKE_FD(pfd);
                o->client_fd = TAKE_FD(cfd);
        } else {
                r = pump_new(relay->event, TAKE_FD(pfd), CLIENT_FD_PIPE, TAKE_FD(cfd), kind, relay->log,
                             stream, false, STDIO_CHUNK_MAX, output_on_pump_done, o, &o->pump);
                if (r < 0)
                        return r;
        }
        o->used = true;
        return 0;
}

int stdio_relay_add_input(StdioRelay *relay, int client_fd, int process_fd) {
        _cleanup_close_ int cfd = client_fd, pfd = process_fd;
        ClientFdKind kind;
        int r;

        assert_return(relay, -EINVAL);
        assert_return(cfd >= 0 && pfd >= 0, -EBADF);
        assert_return(!relay->input, -EBUSY);

        r = fd_set_nonblock(pfd, true);
        if (r < 0)
                return r;
        r = client_fd_prepare(TAKE_FD(cfd), false, &cfd, &kind);
        if (r < 0)
                return r;
        return pump_new(relay->event, TAKE_FD(cfd), kind, TAKE_FD(pfd), CLIENT_FD_PIPE, NULL, 0, false,
                        STDIO_CHUNK_MAX, input_on_pump_done, relay, &relay->input);
}

void stdio_relay_detach_client(StdioRelay *relay) {
        if (!relay)
                return;
        relay->input = pump_free(relay->input);
        relay->detaching = true;
        for (size_t i = 0; i < ELEMENTSOF(relay->out); i++) {
                OutputStream *o = &relay->out[i];
                if (o->pump)
                        pump_drop_destination(o->pump);
                else if (o->used)
                        output_drop_client(o);
        }
        relay->detaching = false;
        relay_check_done(relay); /* may free the relay */
}

bool stdio_relay_is_done(StdioRelay *relay) {
        return !relay || relay->done;
}

StdioRelay *stdio_relay_free(StdioRelay *relay) {
        if (!relay)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(relay->out); i++) {
                OutputStream *o = &relay->out[i];
                sd_event_source_disable_unref(o->process_source);
                sd_event_source_disable_unref(o->client_source);
                safe_close(o->process_fd);
                safe_close(o->client_fd);
                pump_free(o->pump);
        }
        pump_free(relay->input);
        stdio_log_unref(relay->log);
        sd_event_unref(relay->event);
        free(relay);
        return NULL;
}
