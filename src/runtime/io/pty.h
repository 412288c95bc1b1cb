/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Terminals. crun (--console-socket PATH) creates the PTY inside the container and sends the
 * master fd over a Unix socket; ConsoleSocket is that listener. PtyRelay then copies between the
 * client's fds and the master with non-blocking I/O and bounded buffers, logging the output
 * (stream stdout, since a terminal merges both). */

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "stdio.h"

#define CONSOLE_SOCKET_BACKLOG 4
#define CONSOLE_SOCKET_NAME    "console.sock"
#define PTY_BUFFER_SIZE        (64U * 1024U) /* per direction */

typedef struct ConsoleSocket ConsoleSocket;
/* master_fd is CLOEXEC and now owned by the callee (error < 0: master_fd is -EBADF). Called
 * once; the listener is closed before the call. The callback may free the ConsoleSocket. */
typedef void (*console_socket_done_t)(ConsoleSocket *cs, int error, int master_fd, void *userdata);

/* Creates a private 0700 directory under parent_dir (NULL: $TMPDIR or /tmp) holding a listening
 * AF_UNIX SOCK_STREAM socket; pass console_socket_get_path() to crun --console-socket. */
int console_socket_new(sd_event *event, const char *parent_dir, console_socket_done_t callback,
                       void *userdata, ConsoleSocket **ret);
const char *console_socket_get_path(ConsoleSocket *cs);
/* Closes, unlinks the socket and removes the private directory. */
ConsoleSocket *console_socket_free(ConsoleSocket *cs);
static inline void console_socket_freep(ConsoleSocket **c) {
        if (*c)
                console_socket_free(*c);
}

/* Blocking client side of the protocol (what crun does; used by tests): connect to path and send
 * master_fd with SCM_RIGHTS. */
int console_socket_send(const char *path, int master_fd);

/* TIOCSWINSZ on a PTY master (or any terminal fd). width/height in columns/rows, 1..65535. */
int pty_resize(int tty_fd, unsigned width, unsigned height);

typedef struct PtyRelay PtyRelay;
/* Called once: the master reported EOF/EIO (all slave ends closed) and remaining output was
 * delivered, or error < 0. */
typedef void (*pty_relay_done_t)(PtyRelay *relay, int error, void *userdata);

/* Takes ownership of master_fd, client_in (-EBADF: no input) and client_out (-EBADF: detached,
 * output only logged) also on failure. log may be NULL. */
int pty_relay_new(sd_event *event, int master_fd, int client_in, int client_out, StdioLog *log,
                  pty_relay_done_t callback, void *userdata, PtyRelay **ret);
int pty_relay_resize(PtyRelay *relay, unsigned width, unsigned height);
/* Drops the client fds; the output keeps being read and logged. */
void pty_relay_detach_client(PtyRelay *relay);
PtyRelay *pty_relay_free(PtyRelay *relay);
static inline void pty_relay_freep(PtyRelay **r) {
        if (*r)
                pty_relay_free(*r);
}
