/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Signal names as users write them (docker's kill -s, --stop-signal): "KILL", "SIGKILL" or "9".
 * Shared by the runtime service, the API server and the CLI, so that all three accept the same. */

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* The signal number, or -EINVAL. Real-time signals are not nameable here (as in crun). */
static inline int signal_from_string(const char *s) {
        char *end;
        long v;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] >= '0' && s[0] <= '9') {
                errno = 0;
                v = strtol(s, &end, 10);
                if (errno || *end || v < 1 || v >= SIGRTMIN)
                        return -EINVAL;
                return (int) v;
        }
        if (strncmp(s, "SIG", 3) == 0)
                s += 3;
        for (int i = 1; i < SIGRTMIN; i++) {
                const char *abbrev = sigabbrev_np(i);
                if (abbrev && strcmp(abbrev, s) == 0)
                        return i;
        }
        return -EINVAL;
}
