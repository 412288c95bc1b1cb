/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include "cgroup-util.h"
#include "macro.h"
#include "oci-spec.h"

#define CGROUP_ROOT          "/sys/fs/cgroup"
#define CGROUP_KILL_PIDS_MAX 65536u
#define CGROUP_KILL_WAIT_MAX 256u /* pidfds waited for per round */

bool cgroup_is_unified(void) {
        struct statfs fs;
        return statfs(CGROUP_ROOT, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

static void cgroup_path(char *buf, size_t size, const char *controller, const char *id, const char *file) {
        if (cgroup_is_unified())
                snprintf(buf, size, CGROUP_ROOT OCI_CGROUP_PARENT "/%s/%s", id, file);
        else
                snprintf(buf, size, CGROUP_ROOT "/%s" OCI_CGROUP_PARENT "/%s/%s", controller, id, file);
}

static int read_u64(const char *path, uint64_t *ret) {
        char buf[64];
        FILE *f = fopen(path, "re");
        int r = -ENOENT;

        if (!f)
                return negative_errno();
        if (fgets(buf, sizeof(buf), f)) {
                if (strncmp(buf, "max", 3) == 0)
                        *ret = UINT64_MAX;
                else
                        *ret = strtoull(buf, NULL, 10);
                r = 0;
        }
        fclose(f);
        return r;
}

/* Sums "<key> <value>" (v1 blkio) or "key=value" (v2 io.stat, cpu.stat) fields. */
static uint64_t sum_keyed(const char *path, const char *key) {
        _cleanup_free_ char *line = NULL;
        size_t sz = 0, klen = strlen(key);
        uint64_t sum = 0;
        FILE *f = fopen(path, "re");

        if (!f)
                return 0;
        while (getline(&line, &sz, f) > 0) {
                for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
                        if (strncmp(tok, key, klen) != 0)
                                continue;
                        if (tok[klen] == '=')
                                sum += strtoull(tok + klen + 1, NULL, 10);
                        else if (tok[klen] == 0) {
                                char *v = strtok(NULL, " \n");
                                if (v)
                                        sum += strtoull(v, NULL, 10);
                        }
                }
        }
        fclose(f);
        return sum;
}

static void read_net_dev(pid_t pid, uint64_t *rx, uint64_t *tx) {
        _cleanup_free_ char *line = NULL;
        char path[64];
        size_t sz = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/net/dev", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return;
        while (getline(&line, &sz, f) > 0) {
                char *colon = strchr(line, ':');
                unsigned long long v[9];
                if (!colon)
                        continue;
                if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                           &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) == 9) {
                        *rx += v[0];
                        *tx += v[8];
                }
        }
        fclose(f);
}

int cgroup_read_statistics(const char *id, pid_t init_pid, ContainerStatistics *ret) {
        ContainerStatistics s = {.memory_limit_bytes = UINT64_MAX, .pids_limit = UINT64_MAX};
        char p[512];

        assert_return(id && ret, -EINVAL);

        if (cgroup_is_unified()) {
                cgroup_path(p, sizeof(p), "", id, "cpu.stat");
                s.cpu_usage_ns = sum_keyed(p, "usage_usec") * 1000;
                cgroup_path(p, sizeof(p), "", id, "memory.current");
                (void) read_u64(p, &s.memory_usage_bytes);
                cgroup_path(p, sizeof(p), "", id, "memory.max");
                (void) read_u64(p, &s.memory_limit_bytes);
                cgroup_path(p, sizeof(p), "", id, "io.stat");
                s.block_read_bytes = sum_keyed(p, "rbytes");
                s.block_write_bytes = sum_keyed(p, "wbytes");
        } else {
                cgroup_path(p, sizeof(p), "cpuacct", id, "cpuacct.usage");
                (void) read_u64(p, &s.cpu_usage_ns);
                cgroup_path(p, sizeof(p), "memory", id, "memory.usage_in_bytes");
                (void) read_u64(p, &s.memory_usage_bytes);
                cgroup_path(p, sizeof(p), "memory", id, "memory.limit_in_bytes");
                (void) read_u64(p, &s.memory_limit_bytes);
                /* v1 reports "no limit" as a huge page-aligned number. */
                if (s.memory_limit_bytes >= (UINT64_MAX >> 2))
                        s.memory_limit_bytes = UINT64_MAX;
                cgroup_path(p, sizeof(p), "blkio", id, "blkio.throttle.io_service_bytes");
                /* Lines "MAJ:MIN Read N"; the "Total" lines are skipped by summing per key. */
                s.block_read_bytes = sum_keyed(p, "Read");
                s.block_write_bytes = sum_keyed(p, "Write");
        }
        cgroup_path(p, sizeof(p), "pids", id, "pids.current");
        (void) read_u64(p, &s.pids_current);
        cgroup_path(p, sizeof(p), "pids", id, "pids.max");
        (void) read_u64(p, &s.pids_limit);
        if (init_pid > 0)
                read_net_dev(init_pid, &s.network_rx_bytes, &s.network_tx_bytes);

        *ret = s;
        return 0;
}

static int write_string(const char *path, const char *s) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return negative_errno();
        n = write(fd, s, strlen(s));
        safe_close(fd);
        return n < 0 ? negative_errno() : 0;
}

int cgroup_list_pids(const char *id, pid_t *pids, size_t max, size_t *ret_n, bool *ret_truncated) {
        char p[512], line[32];
        size_t n = 0;
        bool truncated = false;
        FILE *f;

        assert_return(id && (pids || max == 0) && ret_n, -EINVAL);

        cgroup_path(p, sizeof(p), cgroup_is_unified() ? "" : "pids", id, "cgroup.procs");
        f = fopen(p, "re");
        if (!f)
                return negative_errno();
        /* One pid a line; a line that does not fit the buffer is no pid. */
        while (fgets(line, sizeof line, f)) {
                char *end;
                long v = strtol(line, &end, 10);

                if (end == line || (*end != '\n' && *end != 0) || v <= 0 || v > INT32_MAX)
                        continue;
                if (n >= max) {
                        truncated = true;
                        break;
                }
                pids[n++] = (pid_t) v;
        }
        fclose(f);
        *ret_n = n;
        if (ret_truncated)
                *ret_truncated = truncated;
        return 0;
}

int cgroup_pids_unlimit(const char *id) {
        char p[512];

        assert_return(id, -EINVAL);
        cgroup_path(p, sizeof(p), "pids", id, "pids.max");
        return write_string(p, "max");
}

/* Kills the members of the cgroup; with pidfds, keeps a pidfd per process signalled (up to max),
 * through which it was signalled (no recycled pid can be hit) and which becomes readable when the
 * process has exited. Returns the number of processes signalled (cgroup.kill: 1). */
static int kill_members(const char *id, int *pidfds, size_t max, size_t *ret_n) {
        _cleanup_free_ char *line = NULL;
        char p[512];
        size_t sz = 0, count = 0, n = 0;
        bool unified = cgroup_is_unified();
        bool frozen;
        FILE *f;

        assert_return(id, -EINVAL);

        if (unified) {
                cgroup_path(p, sizeof(p), "", id, "cgroup.kill");
                if (write_string(p, "1") == 0)
                        return 1;
                cgroup_path(p, sizeof(p), "", id, "cgroup.freeze");
                frozen = write_string(p, "1") == 0;
        } else {
                /* Freezing first means nothing can fork while we walk the list. */
                cgroup_path(p, sizeof(p), "freezer", id, "freezer.state");
                frozen = write_string(p, "FROZEN") == 0;
        }

        cgroup_path(p, sizeof(p), unified ? "" : "pids", id, "cgroup.procs");
        f = fopen(p, "re");
        if (f) {
                while (count < CGROUP_KILL_PIDS_MAX && getline(&line, &sz, f) > 0) {
                        pid_t pid = (pid_t) strtol(line, NULL, 10);
                        int fd = -EBADF;

                        if (pid <= 1)
                                continue;
                        if (pidfds && n < max)
                                fd = (int) syscall(SYS_pidfd_open, pid, 0);
                        if (fd >= 0) {
                                if (syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) == 0) {
                                        pidfds[n++] = fd;
                                        count++;
                                } else
                                        safe_close(fd);
                        } else if (kill(pid, SIGKILL) == 0)
                                count++;
                }
                fclose(f);
        }

        if (frozen) {
                if (unified) {
                        cgroup_path(p, sizeof(p), "", id, "cgroup.freeze");
                        (void) write_string(p, "0");
                } else {
                        cgroup_path(p, sizeof(p), "freezer", id, "freezer.state");
                        (void) write_string(p, "THAWED");
                }
        }
        if (ret_n)
                *ret_n = n;
        return (int) MIN(count, (size_t) INT32_MAX);
}

int cgroup_kill_all(const char *id) {
        return kill_members(id, NULL, 0, NULL);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static int remaining_msec(uint64_t deadline) {
        uint64_t now = now_usec();
        return now >= deadline ? 0
                               : (int) MIN((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC,
                                           (uint64_t) INT32_MAX);
}

/* cgroup2: the kernel notifies a change of cgroup.events ("populated 0" when empty) as POLLPRI. */
static int wait_unpopulated(const char *id, uint64_t deadline) {
        _cleanup_close_ int fd = -EBADF;
        char p[512];

        cgroup_path(p, sizeof(p), "", id, "cgroup.events");
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        for (;;) {
                char buf[256];
                struct pollfd pfd = {.fd = fd, .events = POLLPRI};
                ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
                int k;

                if (n < 0)
                        return errno == ENODEV ? 0 : negative_errno(); /* removed meanwhile */
                buf[n] = 0;
                if (strstr(buf, "populated 0"))
                        return 0;
                k = poll(&pfd, 1, remaining_msec(deadline));
                if (k < 0 && errno != EINTR)
                        return negative_errno();
                if (k == 0)
                        return -ETIMEDOUT;
        }
}

/* Until every pidfd is readable (its process exited) or the deadline. Closes them. */
static int wait_pidfds(int *fds, size_t n, uint64_t deadline) {
        struct pollfd pfd[CGROUP_KILL_WAIT_MAX];
        size_t left = n;
        int r = 0;

        for (size_t i = 0; i < n; i++)
                pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        while (left > 0) {
                int k = poll(pfd, n, remaining_msec(deadline));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        r = k < 0 ? negative_errno() : -ETIMEDOUT;
                        break;
                }
                for (size_t i = 0; i < n; i++)
                        if (pfd[i].fd >= 0 && pfd[i].revents != 0) {
                                pfd[i].fd = -1; /* poll ignores negative fds */
                                left--;
                        }
        }
        close_many(fds, n);
        return r;
}

int cgroup_kill_all_wait(const char *id, uint64_t timeout_usec) {
        uint64_t deadline = now_usec() + timeout_usec;

        assert_return(id, -EINVAL);

        /* More than one round only for members beyond CGROUP_KILL_WAIT_MAX, or ones that joined
         * while the list was read without a freezer. */
        for (unsigned round = 0; round < 16; round++) {
                int fds[CGROUP_KILL_WAIT_MAX];
                size_t n = 0;
                int r = kill_members(id, fds, ELEMENTSOF(fds), &n);

                if (r <= 0)
                        return r;
                if (cgroup_is_unified() && n == 0)
                        return wait_unpopulated(id, deadline);
                r = wait_pidfds(fds, n, deadline);
                if (r < 0)
                        return r;
        }
        return -EBUSY;
}
