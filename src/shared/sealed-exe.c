/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "sealed-exe.h"

static int check_elf(int fd, struct stat *ret_st) {
        unsigned char magic[4];
        struct stat st;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode) || pread(fd, magic, sizeof(magic), 0) != (ssize_t) sizeof(magic) ||
            memcmp(magic, "\177ELF", 4) != 0)
                return -ENOEXEC;
        if (ret_st)
                *ret_st = st;
        return 0;
}

int sealed_exe_copy(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF, copy = -EBADF;
        struct stat st;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = check_elf(fd, &st);
        if (r < 0)
                return r;
        copy = memfd_create("oci-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (copy < 0)
                return negative_errno();
        for (off_t off = 0; off < st.st_size;) {
                ssize_t n = sendfile(copy, fd, &off, (size_t) (st.st_size - off));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? negative_errno() : -EIO;
        }
        if (fcntl(copy, F_ADD_SEALS, SEALED_EXE_SEALS) < 0)
                return negative_errno();
        *ret_fd = TAKE_FD(copy);
        return 0;
}

int sealed_exe_check(int fd) {
        int seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return negative_errno();
        if ((seals & SEALED_EXE_SEALS) != SEALED_EXE_SEALS)
                return -EPERM;
        return check_elf(fd, NULL);
}
