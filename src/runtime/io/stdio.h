/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Stdio of a container process as the runtime service sees it: the process writes into pipes the
 * service owns; the service appends every chunk to a framed log file in the bundle and copies the
 * same bytes to an attached client's fds. Pipe clients get tee(2) (process pipe → client pipe)
 * + splice(2) (process pipe → log file), so bytes are never copied through user space; other
 * clients (sockets, ttys, files) get non-blocking read/write with one bounded buffer per stream.
 * A client that does not keep up stops us reading the process pipe (back-pressure on the
 * process, never unbounded memory); a client that goes away is dropped and logging goes on.
 *
 * Requirement on the caller: SIGPIPE must be ignored in the service (splice/tee to a pipe
 * without readers raise it; we handle the EPIPE).
 *
 * Log format (docs/runtime-io.md): a sequence of frames, each a packed little-endian header
 *      u64 timestamp (CLOCK_REALTIME, ns since the epoch) | u8 stream (1 stdout, 2 stderr) |
 *      u32 length
 * followed by `length` bytes of output. A file starts with the 8-byte magic "CXLOG1\n\0". */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#define STDIO_LOG_MAGIC       "CXLOG1\n" /* 8 bytes with the terminating NUL */
#define STDIO_LOG_MAGIC_SIZE  8U
#define STDIO_LOG_HEADER_SIZE 13U           /* 8 + 1 + 4, packed */
#define STDIO_CHUNK_MAX       (64U * 1024U) /* max bytes per frame and per relay buffer */

typedef enum StdioStream {
        STDIO_STREAM_STDIN = 0,
        STDIO_STREAM_STDOUT = 1,
        STDIO_STREAM_STDERR = 2,
        _STDIO_STREAM_MAX,
        _STDIO_STREAM_INVALID = -EINVAL,
} StdioStream;

const char *stdio_stream_to_string(StdioStream s);

/* How a process's stdio is wired, decided once per process (stdio_mode_pick()):
 *   LOG_RELAY  log driver on, client attached: pipes to the service, log + relay.
 *   LOG_ONLY   log driver on, detached: pipes to the service, log only.
 *   DIRECT     log driver off and no terminal: the client's fds go straight to the process
 *              (no copy through the service at all; docker --log-driver none). The service
 *              must then not create a StdioRelay. With a terminal the PTY relay is used. */
typedef enum StdioMode {
        STDIO_MODE_LOG_RELAY,
        STDIO_MODE_LOG_ONLY,
        STDIO_MODE_DIRECT,
        _STDIO_MODE_MAX,
        _STDIO_MODE_INVALID = -EINVAL,
} StdioMode;

const char *stdio_mode_to_string(StdioMode m);
StdioMode stdio_mode_pick(bool logging, bool terminal, bool client_attached);

/* ---- log file ---------------------------------------------------------------------------- */

/* Reference counted, shared by the stdio relay and the PTY relay of one process. Writes go at an
 * explicit offset (splice(2) refuses O_APPEND files). */
typedef struct StdioLog StdioLog;

/* Opens (creating 0640, O_CLOEXEC) and appends to path; writes the magic to a new file. */
int stdio_log_open(const char *path, StdioLog **ret);
StdioLog *stdio_log_ref(StdioLog *l);
StdioLog *stdio_log_unref(StdioLog *l);
static inline void stdio_log_unrefp(StdioLog **l) {
        if (*l)
                stdio_log_unref(*l);
}
/* Appends one frame (len ≤ STDIO_CHUNK_MAX; longer data is split). */
int stdio_log_write(StdioLog *l, StdioStream stream, const void *data, size_t len);
/* Appends one frame whose payload is spliced from pipe_fd (exactly len bytes, which the caller
 * knows are in the pipe). */
int stdio_log_splice(StdioLog *l, StdioStream stream, int pipe_fd, size_t len);

/* Reading, for `logs`. The callback gets each frame; a negative return stops the read and is
 * returned. stdio_log_read() reads all frames present; with follow=true it then waits for the
 * file to change (inotify IN_MODIFY/IN_CLOSE_WRITE, no timer) and reads on, until the callback
 * returns 1 or stop_fd (optional, -EBADF for none) becomes readable (returns 0). A frame whose
 * bytes are not all written yet is waited for. Blocks the calling thread. */
typedef int (*stdio_log_frame_t)(uint64_t timestamp_nsec, StdioStream stream, const void *data, size_t len,
                                 void *userdata);
int stdio_log_read(int log_fd, bool follow, int stop_fd, stdio_log_frame_t callback, void *userdata);

/* ---- relay ------------------------------------------------------------------------------- */

typedef struct StdioRelay StdioRelay;
/* Called once, when every output stream added has reached EOF and everything read was logged
 * and delivered (or the client dropped). error is 0 or the first fatal error (log write). */
typedef void (*stdio_relay_done_t)(StdioRelay *relay, int error, void *userdata);

/* log may be NULL (no logging). */
int stdio_relay_new(sd_event *event, StdioLog *log, stdio_relay_done_t callback, void *userdata,
                    StdioRelay **ret);
/* Takes ownership of both fds (also on failure). process_fd: read end of the process's
 * stdout/stderr pipe. client_fd: where to copy to, or -EBADF for none (log only). */
int stdio_relay_add_output(StdioRelay *relay, StdioStream stream, int process_fd, int client_fd);
/* Takes ownership of both fds. Copies client_fd → process_fd (write end of the process's stdin
 * pipe) and closes process_fd at the client's EOF, so the process sees EOF. */
int stdio_relay_add_input(StdioRelay *relay, int client_fd, int process_fd);
/* The client went away or detached: stop relaying, keep logging. */
void stdio_relay_detach_client(StdioRelay *relay);
bool stdio_relay_is_done(StdioRelay *relay);
StdioRelay *stdio_relay_free(StdioRelay *relay);
static inline void stdio_relay_freep(StdioRelay **r) {
        if (*r)
                stdio_relay_free(*r);
}
