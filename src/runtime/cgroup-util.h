/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The container's cgroup: OCI_CGROUP_PARENT/<id> in every v1 hierarchy (this machine's hybrid
 * layout) or in the unified hierarchy when /sys/fs/cgroup is cgroup2. */

typedef struct ContainerStatistics {
        uint64_t cpu_usage_ns;
        uint64_t memory_usage_bytes;
        uint64_t memory_limit_bytes; /* UINT64_MAX: none */
        uint64_t pids_current;
        uint64_t pids_limit; /* UINT64_MAX: none */
        uint64_t block_read_bytes;
        uint64_t block_write_bytes;
        uint64_t network_rx_bytes;
        uint64_t network_tx_bytes;
} ContainerStatistics;

bool cgroup_is_unified(void);
/* Reads what is available; missing files leave zeros. */
int cgroup_read_statistics(const char *id, pid_t init_pid, ContainerStatistics *ret);
/* Freezes the cgroup, SIGKILLs every member, thaws it. Returns the number of processes signalled. */
int cgroup_kill_all(const char *id);
/* cgroup_kill_all(), then waits until the members have exited: for pidfds to become readable
 * (v1) or cgroup.events to say "populated 0" (v2, POLLPRI), not on a timer. Repeats for members
 * it could not wait for in one round. 0 when the cgroup is empty (or gone), -ETIMEDOUT. */
int cgroup_kill_all_wait(const char *id, uint64_t timeout_usec);

/* The processes of the container's cgroup (cgroup.procs), at most max of them; *ret_truncated says
 * whether there were more. -ENOENT when the cgroup is gone. */
int cgroup_list_pids(const char *id, pid_t *pids, size_t max, size_t *ret_n, bool *ret_truncated);

/* Lifts the container's process limit (pids.max "max"): OCI runtimes' update takes only numbers
 * there (crun writes -1, which the kernel refuses). */
int cgroup_pids_unlimit(const char *id);
