/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* copyIn / copyOut for the runtime service: tar streams between an fd and a path inside a
 * container root, done in a forked child that chroot()s into the root, so that neither `..` nor
 * a symlink (even one planted by the container while we work) can reach outside of it, and so
 * that the service's event loop never blocks on the file system.
 *
 * The child executes the container-runtime-copy helper (found next to the service's executable,
 * or at $CONTAINER_RUNTIME_COPY), so that the service itself does not link libarchive.
 *
 * Completion is signalled through a result pipe, not through waitpid(): the child writes one
 * CopyResult record and exits, the parent sees the record and then EOF. The service, being a
 * subreaper that reaps with waitid(P_ALL), reaps the child itself; these functions never call
 * wait*(). EOF without a record means the child died (reported as -EIO / "copy helper died").
 *
 * Stream shape (the same as the client library's, like `cp`/`docker cp`):
 *   copyOut  entries are named relative to the parent of sourcePath: "name", "name/a", ...
 *   copyIn   if destinationPath is an existing directory, the entries land inside it; otherwise
 *            the first path component of every entry is replaced by destinationPath's base name,
 *            so a single file or a single tree becomes destinationPath itself.
 *            Entries that are absolute or contain a `..` component are refused (EPERM) and so
 *            are entries that would be written through a symlink (libarchive SECURE_* flags);
 *            even if one slipped through, the chroot keeps it inside the root.
 *
 * User and group names are never looked up (no NSS inside a container's root): ownership is
 * numeric. Ownership is not restored on copyIn (files belong to the service's uid). */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

#define COPY_MESSAGE_MAX 256U /* bytes of error text carried in a CopyResult, NUL included */
#define COPY_BUFFER_SIZE (64U * 1024U)

typedef enum CopyDirection {
        COPY_IN,  /* tar stream read from tar_fd is extracted at `path` inside the root */
        COPY_OUT, /* `path` inside the root is written as a tar stream to tar_fd */
        _COPY_DIRECTION_MAX,
        _COPY_DIRECTION_INVALID = -EINVAL,
} CopyDirection;

typedef struct CopyOptions {
        const char *root;    /* bundle rootfs, or /proc/<pid>/root of a running container */
        const char *path;    /* copyIn: destinationPath; copyOut: sourcePath. Relative = from "/" */
        uint32_t file_mode;  /* copyIn: permission bits (07777) for the destination entry; 0 = keep */
        bool create_parents; /* copyIn: create missing parent directories of destinationPath (0755) */
} CopyOptions;

/* Record the child writes to the result pipe (native endianness: same machine). */
typedef struct CopyResult {
        int32_t error; /* 0 or a negative errno */
        char message[COPY_MESSAGE_MAX];
} CopyResult;

/* Forks the worker. tar_fd is borrowed (the child gets its own copy; close yours once this
 * returns, so that EOF/EPIPE propagate). On success returns 0, *ret_pid is the child (reap it
 * in your SIGCHLD handler) and *ret_result_fd is the CLOEXEC, O_NONBLOCK read end of the result
 * pipe; read it with copy_result_read(). */
int copy_start(CopyDirection direction, const CopyOptions *options, int tar_fd, pid_t *ret_pid,
               int *ret_result_fd);

/* Reads what is available on the result fd. Returns -EAGAIN while the child is still working,
 * 0 once the outcome is known, with *ret the child's record (or -EIO "copy helper died" on EOF
 * without one). Safe to call on a blocking fd, then it waits. */
int copy_result_read(int result_fd, CopyResult *ret);

/* sd-event convenience around copy_start(): callback once, with error 0 or negative errno and a
 * message (never NULL; "" on success). The job keeps the result fd; freeing an unfinished job
 * SIGKILLs the child (still not reaped here). The callback may free the job. */
typedef struct CopyJob CopyJob;
typedef void (*copy_done_t)(CopyJob *job, int error, const char *message, void *userdata);

int copy_job_new(sd_event *event, CopyDirection direction, const CopyOptions *options, int tar_fd,
                 copy_done_t callback, void *userdata, CopyJob **ret);
pid_t copy_job_get_pid(CopyJob *job);
CopyJob *copy_job_free(CopyJob *job);
static inline void copy_job_freep(CopyJob **j) {
        if (*j)
                copy_job_free(*j);
}

/* The in-process workers (blocking). copy_start()'s child runs these after chroot("root").
 * They are also the client-side helpers: tar a host path into an fd, extract a stream into a
 * host path (same shape rules as above; SECURE_* flags protect the host without a chroot).
 * On failure *ret_message (optional) gets a newly allocated text. */
int copy_extract_stream(int tar_fd, const char *destination, uint32_t file_mode, bool create_parents,
                        char **ret_message);
int copy_archive_path(const char *source, int tar_fd, char **ret_message);

/* The body of the container-runtime-copy helper (copy-helper.c): chroot into options->root, run
 * the worker for the direction, write one CopyResult to result_fd, exit. */
__attribute__((noreturn)) void copy_worker_main(CopyDirection direction, const CopyOptions *options,
                                                int tar_fd, int result_fd);
