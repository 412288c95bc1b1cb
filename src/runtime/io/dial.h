/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* dial: a TCP socket connected to 127.0.0.1:port inside a container's network namespace.
 * setns(CLONE_NEWNET) is per thread, so a short-lived thread enters the namespace and creates
 * the socket there; a socket stays in the namespace it was created in, wherever it is used. */

#include <stdint.h>

#include <systemd/sd-event.h>

#define DIAL_TIMEOUT_USEC_DEFAULT (5U * 1000U * 1000U)

/* Blocking: connect with a timeout (0 = DIAL_TIMEOUT_USEC_DEFAULT). netns_fd is borrowed
 * (open("/proc/<pid>/ns/net", O_RDONLY|O_CLOEXEC)). Returns 0 and a blocking CLOEXEC socket.
 * Errors: -ECONNREFUSED, -ETIMEDOUT, -EINVAL (bad port/fd), setns errors. */
int dial_netns(int netns_fd, uint16_t port, uint64_t timeout_usec, int *ret_fd);

/* Non-blocking for an event loop: the thread only creates the socket and starts the connect to
 * loopback (quick); completion is waited for with an sd-event io source plus a timer. The
 * callback gets a connected blocking CLOEXEC socket it owns, or error < 0 and -EBADF.
 * The callback may free the DialJob. Freeing an unfinished job cancels it. */
typedef struct DialJob DialJob;
typedef void (*dial_done_t)(DialJob *job, int error, int fd, void *userdata);
int dial_job_new(sd_event *event, int netns_fd, uint16_t port, uint64_t timeout_usec, dial_done_t callback,
                 void *userdata, DialJob **ret);
DialJob *dial_job_free(DialJob *job);
static inline void dial_job_freep(DialJob **j) {
        if (*j)
                dial_job_free(*j);
}
