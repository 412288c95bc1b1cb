/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include "dial.h"
#include "io-util.h"

typedef struct DialStart {
        int netns_fd;
        uint16_t port;
        int fd;       /* out: the socket, connect started or done */
        bool pending; /* out: EINPROGRESS */
        int error;    /* out */
} DialStart;

/* Runs in a thread of its own: setns() changes only this thread's namespace, and the thread ends
 * right after, so nothing else ever runs inside the container's network namespace. */
static void *dial_thread(void *userdata) {
        DialStart *d = userdata;
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons(d->port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        int fd;

        if (setns(d->netns_fd, CLONE_NEWNET) < 0) {
                d->error = negative_errno();
                return NULL;
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                d->error = negative_errno();
                return NULL;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno != EINPROGRESS) {
                        d->error = negative_errno();
                        safe_close(fd);
                        return NULL;
                }
                d->pending = true;
        }
        d->fd = fd;
        return NULL;
}

static int dial_begin(int netns_fd, uint16_t port, int *ret_fd, bool *ret_pending) {
        DialStart d = {.netns_fd = netns_fd, .port = port, .fd = -EBADF};
        pthread_t t;
        int r;

        r = pthread_create(&t, NULL, dial_thread, &d);
        if (r != 0)
                return -r;
        (void) pthread_join(t, NULL);
        if (d.error < 0)
                return d.error;
        *ret_fd = d.fd;
        *ret_pending = d.pending;
        return 0;
}

static int dial_complete(int fd) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                return negative_errno();
        if (err != 0)
                return -err;
        return fd_set_nonblock(fd, false);
}

int dial_netns(int netns_fd, uint16_t port, uint64_t timeout_usec, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        bool pending = false;
        int r;

        assert_return(netns_fd >= 0, -EBADF);
        assert_return(port > 0, -EINVAL);
        assert_return(ret_fd, -EINVAL);

        if (timeout_usec == 0)
                timeout_usec = DIAL_TIMEOUT_USEC_DEFAULT;
        r = dial_begin(netns_fd, port, &fd, &pending);
        if (r < 0)
                return r;
        if (pending) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                struct timespec ts = {
                        .tv_sec = (time_t) (timeout_usec / USEC_PER_SEC),
                        .tv_nsec = (long) (timeout_usec % USEC_PER_SEC * NSEC_PER_USEC),
                };
                int n;

                do
                        n = ppoll(&pfd, 1, &ts, NULL);
                while (n < 0 && errno == EINTR);
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        return -ETIMEDOUT;
        }
        r = dial_complete(fd);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

struct DialJob {
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *defer; /* reports an immediate result from the loop, not from _new() */
        int fd;
        int error;
        bool finished;
        dial_done_t callback;
        void *userdata;
};

static void dial_job_finish(DialJob *j, int error) {
        int fd = -EBADF;

        j->finished = true;
        (void) sd_event_source_set_enabled(j->io, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(j->timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(j->defer, SD_EVENT_OFF);
        if (error == 0)
                error = dial_complete(j->fd);
        if (error == 0)
                fd = TAKE_FD(j->fd);
        else
                j->fd = safe_close(j->fd);
        j->callback(j, error, fd, j->userdata); /* may free j */
}

static int dial_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        dial_job_finish(userdata, 0);
        return 0;
}

static int dial_on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        dial_job_finish(userdata, -ETIMEDOUT);
        return 0;
}

static int dial_on_defer(sd_event_source *s, void *userdata) {
        DialJob *j = userdata;
        dial_job_finish(j, j->error);
        return 0;
}

int dial_job_new(sd_event *event, int netns_fd, uint16_t port, uint64_t timeout_usec, dial_done_t callback,
                 void *userdata, DialJob **ret) {
        _cleanup_(dial_job_freep) DialJob *j = NULL;
        bool pending = false;
        uint64_t now;
        int r;

        assert_return(event && callback && ret, -EINVAL);
        assert_return(netns_fd >= 0, -EBADF);
        assert_return(port > 0, -EINVAL);

        if (timeout_usec == 0)
                timeout_usec = DIAL_TIMEOUT_USEC_DEFAULT;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->fd = -EBADF;
        j->callback = callback;
        j->userdata = userdata;

        r = dial_begin(netns_fd, port, &j->fd, &pending);
        if (r < 0 && r != -ECONNREFUSED)
                return r;
        if (r < 0 || !pending) {
                /* Loopback often answers at once (connected or refused): report from the loop. */
                j->error = r;
                r = sd_event_add_defer(event, &j->defer, dial_on_defer, j);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(j);
                return 0;
        }
        r = sd_event_add_io(event, &j->io, j->fd, EPOLLOUT, dial_on_io, j);
        if (r < 0)
                return r;
        r = sd_event_now(event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &j->timer, CLOCK_MONOTONIC, now + timeout_usec, 0, dial_on_timer, j);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(j);
        return 0;
}

DialJob *dial_job_free(DialJob *job) {
        if (!job)
                return NULL;
        sd_event_source_disable_unref(job->io);
        sd_event_source_disable_unref(job->timer);
        sd_event_source_disable_unref(job->defer);
        safe_close(job->fd);
        free(job);
        return NULL;
}
