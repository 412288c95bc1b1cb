/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared bits of the runtime I/O tests (cmocka). */

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fd-count.h"
#include "macro.h"

static inline int rm_rf_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static inline void rm_rf(const char *path) {
        (void) nftw(path, rm_rf_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void write_file(const char *path, const char *content) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        close(fd);
}

/* Reads a small file into a static buffer ("" if missing). */
static inline const char *read_file(const char *path) {
        static char buf[4096];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        buf[0] = 0;
        if (fd < 0)
                return buf;
        n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = 0;
        close(fd);
        return buf;
}

static inline bool dir_is_empty(const char *path) {
        DIR *d = opendir(path);
        struct dirent *de;
        bool empty = true;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
                        empty = false;
        closedir(d);
        return empty;
}

static inline int count_fds(void) {
        return count_open_fds(0);
}
