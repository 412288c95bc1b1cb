/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <linux/magic.h>

#include "cgroup-util.h"
#include "macro.h"
#include "oci-spec.h"

#define CGROUP_ROOT          "/sys/fs/cgroup"
#define CGROUP_KILL_PIDS_MAX 65536u

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

int cgroup_kill_all(const char *id) {
        _cleanup_free_ char *line = NULL;
        char p[512];
        size_t sz = 0, count = 0;
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
                        if (pid > 1 && kill(pid, SIGKILL) == 0)
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
        return (int) MIN(count, (size_t) INT32_MAX);
}
