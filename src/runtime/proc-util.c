/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "proc-util.h"

/* Skips blanks, then reads one decimal number. -EBADMSG for none or an overflow. */
static int parse_u64(const char **p, const char *end, uint64_t *ret) {
        const char *s = *p;
        uint64_t v = 0;

        while (s < end && (*s == ' ' || *s == '\t'))
                s++;
        if (s >= end || *s < '0' || *s > '9')
                return -EBADMSG;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *p = s;
        *ret = v;
        return 0;
}

/* Skips blanks and one token of anything else (fields we do not use may be negative). */
static int skip_token(const char **p, const char *end) {
        const char *s = *p;

        while (s < end && *s == ' ')
                s++;
        if (s >= end)
                return -EBADMSG;
        while (s < end && *s != ' ' && *s != '\n')
                s++;
        *p = s;
        return 0;
}

int proc_stat_parse(const char *text, size_t len, ProcStatInfo *ret) {
        ProcStatInfo st = {};
        const char *open, *close = NULL, *p, *end = text + len;
        uint64_t v;
        int r;

        assert_return(text && ret, -EINVAL);

        open = memchr(text, '(', len);
        for (const char *q = end; q > text; q--)
                if (q[-1] == ')') {
                        close = q - 1;
                        break;
                }
        if (!open || !close || close < open)
                return -EBADMSG;
        memcpy(st.comm, open + 1, MIN((size_t) (close - open - 1), (size_t) PROC_COMM_MAX));

        /* After ") ": field 3 (state), 4 (ppid), …, 14 utime, 15 stime, …, 22 starttime. */
        p = close + 1;
        while (p < end && *p == ' ')
                p++;
        if (p >= end)
                return -EBADMSG;
        st.state = *p++;
        r = parse_u64(&p, end, &v);
        if (r < 0 || v > INT32_MAX)
                return -EBADMSG;
        st.ppid = (pid_t) v;
        for (unsigned field = 5; field <= 22; field++) {
                if (field == 14 || field == 15 || field == 22) {
                        r = parse_u64(&p, end, &v);
                        if (r < 0)
                                return r;
                        if (field == 14)
                                st.utime_ticks = v;
                        else if (field == 15)
                                st.stime_ticks = v;
                        else
                                st.start_ticks = v;
                } else if (skip_token(&p, end) < 0)
                        return -EBADMSG;
        }
        *ret = st;
        return 0;
}

int proc_status_parse(const char *text, size_t len, ProcStatusInfo *ret) {
        ProcStatusInfo st = {};
        const char *line = text, *end = text + len;
        bool have_uid = false;

        assert_return(text && ret, -EINVAL);

        while (line < end) {
                const char *eol = memchr(line, '\n', (size_t) (end - line)) ?: end;
                size_t n = (size_t) (eol - line);
                const char *p;
                uint64_t v;

                if (n > 4 && memcmp(line, "Uid:", 4) == 0) {
                        p = line + 4;
                        if (parse_u64(&p, eol, &v) < 0 || v > UINT32_MAX)
                                return -EBADMSG;
                        st.uid = (uid_t) v;
                        have_uid = true;
                } else if (n > 6 && memcmp(line, "NSpid:", 6) == 0) {
                        /* One pid per nested namespace, outermost first: ours is the last. */
                        p = line + 6;
                        while (parse_u64(&p, eol, &v) >= 0)
                                if (v > 0 && v <= INT32_MAX)
                                        st.ns_pid = (pid_t) v;
                }
                line = eol + 1;
        }
        if (!have_uid)
                return -EBADMSG;
        *ret = st;
        return 0;
}

/* Length of the valid UTF-8 character at s (strict: no overlong forms, no surrogates, at most
 * U+10FFFF), or 0. */
static size_t utf8_char_len(const unsigned char *s, size_t left) {
        uint32_t cp;
        size_t n;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, cp = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, cp = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, cp = s[0] & 0x07;
        else
                return 0;
        if (left < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return n;
}

size_t proc_cmdline_format(const char *raw, size_t len, char *buf, size_t size) {
        const unsigned char *s = (const unsigned char *) raw;
        size_t i = 0, o = 0;

        assert(buf && size > 0);

        /* A command line ends in NUL; what a process rewrote may end in several. */
        while (len > 0 && raw[len - 1] == 0)
                len--;
        while (i < len) {
                size_t n = utf8_char_len(s + i, len - i);

                if (o + MAX(n, (size_t) 1) >= size)
                        break;
                if (n == 0) {
                        buf[o++] = '?';
                        i++;
                } else if (n == 1) {
                        buf[o++] = s[i] == 0 ? ' ' : (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char) s[i];
                        i++;
                } else {
                        memcpy(buf + o, s + i, n);
                        o += n;
                        i += n;
                }
        }
        buf[o] = 0;
        return o;
}

/* Reads up to max bytes of dir/name; -ESRCH when the process is gone. */
static int read_proc_file(int dir_fd, const char *name, char *buf, size_t max, size_t *ret_len) {
        _cleanup_close_ int fd = -EBADF;
        size_t n = 0;

        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();
        while (n < max) {
                ssize_t k = read(fd, buf + n, max - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return errno == ENOENT ? -ESRCH : negative_errno();
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        *ret_len = n;
        return 0;
}

/* CLOCK_REALTIME at boot: stat's starttime counts from boot in clock ticks (CLOCK_BOOTTIME, which
 * goes on during suspend). */
static int64_t boot_time_ns(void) {
        struct timespec rt, bt;

        clock_gettime(CLOCK_REALTIME, &rt);
        clock_gettime(CLOCK_BOOTTIME, &bt);
        return ((int64_t) rt.tv_sec - (int64_t) bt.tv_sec) * (int64_t) NSEC_PER_SEC +
               ((int64_t) rt.tv_nsec - (int64_t) bt.tv_nsec);
}

static uint64_t ticks_to_ns(uint64_t ticks, uint64_t hz) {
        return ticks / hz * NSEC_PER_SEC + ticks % hz * NSEC_PER_SEC / hz;
}

int proc_info_read(pid_t pid, ProcInfo *ret) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_close_ int dir_fd = -EBADF;
        char path[32], stat_text[PROC_STAT_READ_MAX];
        ProcStatInfo st;
        ProcStatusInfo status;
        ProcInfo info;
        long hz = sysconf(_SC_CLK_TCK);
        size_t n;
        int r;

        assert_return(pid > 0 && ret, -EINVAL);
        if (hz <= 0)
                return -EINVAL;

        /* The three files through one directory fd: all of one process, even if the pid is
         * reused meanwhile (then reads fail with ESRCH). */
        snprintf(path, sizeof path, "/proc/%d", (int) pid);
        dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return errno == ENOENT ? -ESRCH : negative_errno();

        r = read_proc_file(dir_fd, "stat", stat_text, sizeof stat_text, &n);
        if (r < 0)
                return r;
        r = proc_stat_parse(stat_text, n, &st);
        if (r < 0)
                return r;

        buf = malloc(PROC_STATUS_READ_MAX);
        if (!buf)
                return -ENOMEM;
        r = read_proc_file(dir_fd, "status", buf, PROC_STATUS_READ_MAX, &n);
        if (r < 0)
                return r;
        r = proc_status_parse(buf, n, &status);
        if (r < 0)
                return r;

        info = (ProcInfo){
                .pid = pid,
                .ns_pid = status.ns_pid,
                .ppid = st.ppid,
                .uid = status.uid,
                .state = st.state,
                .started_at_ns = boot_time_ns() + (int64_t) ticks_to_ns(st.start_ticks, (uint64_t) hz),
                .cpu_time_ns = ticks_to_ns(st.utime_ticks + st.stime_ticks, (uint64_t) hz),
        };

        r = read_proc_file(dir_fd, "cmdline", buf, PROC_CMDLINE_MAX, &n);
        if (r < 0)
                return r;
        if (proc_cmdline_format(buf, n, info.command, sizeof info.command) == 0) {
                /* Kernel threads and zombies have none: ps shows "[comm]". */
                char comm[PROC_COMM_MAX + 1];
                (void) proc_cmdline_format(st.comm, strlen(st.comm), comm, sizeof comm);
                snprintf(info.command, sizeof info.command, "[%s]", comm);
        }
        *ret = info;
        return 0;
}
