/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "container-config.h"

/* Limits applied when the configuration says nothing, and the parent of every container cgroup. */
#define OCI_DEFAULT_NOFILE  1024u
#define OCI_CGROUP_PARENT   "/container"
#define OCI_CPU_PERIOD_USEC 100000u
/* The kernel's smallest CFS quota. */
#define OCI_CPU_QUOTA_MIN_USEC 1000u

/* The CFS quota per OCI_CPU_PERIOD_USEC for a number of CPUs (at create and at update). */
static inline int64_t oci_cpu_quota_usec(double cpus) {
        int64_t quota = (int64_t) (cpus * OCI_CPU_PERIOD_USEC + 0.5);
        return quota < (int64_t) OCI_CPU_QUOTA_MIN_USEC ? (int64_t) OCI_CPU_QUOTA_MIN_USEC : quota;
}

/* The OCI process object for p. rlimits are clamped to our own hard limits, because nothing
 * in this process tree may raise them (no CAP_SYS_RESOURCE): asking for more makes the OCI
 * runtime fail the container. */
int oci_process_new(const ProcessConfig *p, json_t **ret);
/* The full config.json for c (namespaces pid/ipc/uts/mount/network, cgroupsPath
 * OCI_CGROUP_PARENT/<id>, default mounts, masked and read-only paths). */
int oci_spec_new(const ContainerConfig *c, json_t **ret);
