/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What runtime/top reports of one process, read from /proc/<pid>/{stat,status,cmdline}. The
 * parsers take text and its length (no NUL needed) and never read past it. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Processes listed by one runtime/top; the rest of a larger cgroup is left out. */
#define PROC_TOP_PROCESSES_MAX 4096u
/* Bytes read of /proc/<pid>/stat: a comm of at most 64 bytes plus 50 numbers fit many times. */
#define PROC_STAT_READ_MAX 4096u
/* Bytes read of /proc/<pid>/status: Uid comes early, NSpid after Groups (which can be long). */
#define PROC_STATUS_READ_MAX (64u * 1024u)
/* Bytes of a command line kept (raw, before formatting). */
#define PROC_CMDLINE_MAX 4096u
/* comm: TASK_COMM_LEN (16) for tasks; kernel threads' names can be up to 64. */
#define PROC_COMM_MAX 64u

typedef struct ProcStatInfo {
        char comm[PROC_COMM_MAX + 1];
        char state;
        pid_t ppid;
        uint64_t utime_ticks;
        uint64_t stime_ticks;
        uint64_t start_ticks; /* since boot */
} ProcStatInfo;

typedef struct ProcStatusInfo {
        uid_t uid;    /* real */
        pid_t ns_pid; /* in the innermost pid namespace (NSpid's last field); 0: not reported */
} ProcStatusInfo;

typedef struct ProcInfo {
        pid_t pid; /* host */
        pid_t ns_pid;
        pid_t ppid; /* host */
        uid_t uid;
        char state;
        int64_t started_at_ns; /* since the epoch */
        uint64_t cpu_time_ns;  /* utime + stime */
        char command[PROC_CMDLINE_MAX + 1];
} ProcInfo;

/* /proc/<pid>/stat: comm is taken up to the LAST ')', since it may itself contain ") ".
 * -EBADMSG when malformed. */
int proc_stat_parse(const char *text, size_t len, ProcStatInfo *ret);
/* /proc/<pid>/status: "Uid:" (its first field, the real uid) is required; -EBADMSG without it. */
int proc_status_parse(const char *text, size_t len, ProcStatusInfo *ret);
/* /proc/<pid>/cmdline → one line: NULs become spaces, trailing ones dropped; control characters
 * and bytes that are not valid UTF-8 become '?'. Writes at most size - 1 bytes plus NUL (cut at a
 * character boundary). Returns the length written. */
size_t proc_cmdline_format(const char *raw, size_t len, char *buf, size_t size);

/* Reads everything about pid. -ESRCH when it is gone (or went while being read). */
int proc_info_read(pid_t pid, ProcInfo *ret);
