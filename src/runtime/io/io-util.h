/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Internal helpers of the runtime I/O modules. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#include "macro.h"

uint64_t now_realtime_nsec(void);
int fd_set_nonblock(int fd, bool nonblock);

/* Returns a write (or read) fd for relaying to/from a client fd without blocking and without
 * changing the client's own file description: sockets and pipes are used as they are (send with
 * MSG_DONTWAIT / splice with SPLICE_F_NONBLOCK), terminals and other character devices are
 * reopened through /proc/self/fd with O_NONBLOCK; regular files are used as they are (they never
 * block). Takes ownership of fd. *ret_kind tells which. */
typedef enum ClientFdKind {
        CLIENT_FD_PIPE,
        CLIENT_FD_SOCKET,
        CLIENT_FD_NONBLOCK, /* reopened or otherwise already ours to set O_NONBLOCK on */
        CLIENT_FD_FILE,
        _CLIENT_FD_KIND_MAX,
} ClientFdKind;
int client_fd_prepare(int fd, bool for_write, int *ret_fd, ClientFdKind *ret_kind);

/* Non-blocking single read/write honoring the kind; return bytes or negative errno (-EAGAIN). */
ssize_t client_fd_write(int fd, ClientFdKind kind, const void *buf, size_t len);
ssize_t client_fd_read(int fd, ClientFdKind kind, void *buf, size_t len);

/* Bounded byte pump src → dst through one buffer of `capacity` bytes, driven by sd-event io
 * sources. Optional log: every chunk read is appended before it is written. Stops reading while
 * the buffer is full (back-pressure). */
typedef struct StdioLog StdioLog;
typedef struct Pump Pump;
typedef void (*pump_done_t)(Pump *p, int error, void *userdata);

/* src_fd is owned and must be our own (set O_NONBLOCK); dst_fd owned, prepared by
 * client_fd_prepare() or -EBADF (then bytes are only logged). src_eio_is_eof: PTY masters
 * report EIO once every slave is closed. */
int pump_new(sd_event *event, int src_fd, ClientFdKind src_kind, int dst_fd, ClientFdKind dst_kind,
             StdioLog *log, int log_stream, bool src_eio_is_eof, size_t capacity, pump_done_t cb,
             void *userdata, Pump **ret);
/* Closes dst and keeps draining src (into the log). */
void pump_drop_destination(Pump *p);
bool pump_is_done(Pump *p);
Pump *pump_free(Pump *p);
static inline void pump_freep(Pump **p) {
        if (*p)
                pump_free(*p);
}

int mkdir_parents_mode(const char *path, mode_t mode);
