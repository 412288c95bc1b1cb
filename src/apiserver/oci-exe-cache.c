/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Sealed copies of the OCI runtime binaries (sealed-exe.h), one per binary, handed to every
 * container-runtime we start: copying crun (~0.5 MB) into a memfd costs ~0.4 ms here, and each
 * container's service would otherwise pay it for every OCI runtime call (run, exec, kill, delete).
 * A copy is made again when its file changes (a package upgrade replaces the inode). */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apiserver.h"
#include "sealed-exe.h"

#define OCI_EXE_FD_MIN 16

static bool same_file(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void oci_exe_clear(OciExeCopy *e) {
        if (!e->path) /* unused: fd is not set (a zeroed Manager) */
                return;
        free(e->path);
        safe_close(e->fd);
        *e = (OciExeCopy){.fd = -EBADF};
}

int manager_oci_exe_fd(Manager *m, const char *runtime) {
        _cleanup_free_ char *path = NULL;
        OciExeCopy *slot = NULL;
        struct stat st;
        int fd, r;

        r = oci_runtime_resolve(runtime, &path);
        if (r < 0)
                return r;
        if (stat(path, &st) < 0)
                return negative_errno();
        for (size_t i = 0; i < ELEMENTSOF(m->oci_exes); i++) {
                OciExeCopy *e = &m->oci_exes[i];
                if (e->path && streq(e->path, path)) {
                        if (same_file(&e->st, &st))
                                return e->fd;
                        slot = e; /* changed: replace this copy */
                        break;
                }
                if (!slot && !e->path)
                        slot = e;
        }
        if (!slot) /* all taken by other binaries: make room (rare: crun, runc and custom paths) */
                slot = &m->oci_exes[0];
        r = sealed_exe_copy(path, &fd);
        if (r < 0)
                return r;
        /* Above the numbers spawn_runtime() moves fds to, so that none of its dup2s clobbers it. */
        if (fd < OCI_EXE_FD_MIN) {
                int high = fcntl(fd, F_DUPFD_CLOEXEC, OCI_EXE_FD_MIN);
                safe_close(fd);
                if (high < 0)
                        return negative_errno();
                fd = high;
        }
        oci_exe_clear(slot);
        *slot = (OciExeCopy){.path = TAKE_PTR(path), .st = st, .fd = fd};
        return fd;
}

void manager_oci_exes_free(Manager *m) {
        for (size_t i = 0; i < ELEMENTSOF(m->oci_exes); i++)
                oci_exe_clear(&m->oci_exes[i]);
}
