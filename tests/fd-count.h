/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The fd-leak checks of the tests: how many fds a process has open. */

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/types.h>

/* Open fds of pid (0: this process, not counting the one used to look), or -errno. */
static inline int count_open_fds(pid_t pid) {
        char path[64];
        int n = 0;

        if (pid == 0)
                snprintf(path, sizeof(path), "/proc/self/fd");
        else
                snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return pid == 0 ? n - 1 : n;
}
