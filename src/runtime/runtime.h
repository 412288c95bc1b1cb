/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "signal-util.h"

/* Internal interfaces of the container-runtime service (src/runtime/runtime-service.c). */

#include <cxpc/cxpc.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "container-config.h"
#include "oci-runtime.h"

#define RUNTIME_ROUTE_PREFIX             "runtime/"
#define RUNTIME_DEFAULT_RUN_DIR          "/run/container"
#define RUNTIME_DEFAULT_STOP_TIMEOUT_SEC 10
#define RUNTIME_STOP_TIMEOUT_SEC_MAX     (24 * 3600)
#define RUNTIME_PROCESSES_MAX            1024u /* registered exec processes, exited ones included */
#define RUNTIME_WAITERS_MAX              1024u /* deferred replies per process */
#define RUNTIME_ORPHAN_EXITS_MAX         64u   /* exits reaped before we learnt the pid */
/* After a process exits, how long its exit waits for its output to reach EOF and the log (a
 * grandchild may keep the pipes open). */
#define RUNTIME_OUTPUT_DRAIN_USEC (2U * 1000U * 1000U)
/* How long the reaper waits for the container's processes to die after its SIGKILL. */
#define RUNTIME_REAPER_KILL_TIMEOUT_USEC (5U * 1000U * 1000U)
#define RUNTIME_PROCESS_ID_MAX           256u
#define RUNTIME_ENDPOINTS_MAX            256u /* anonymous listeners kept alive */

typedef enum RuntimeState {
        RUNTIME_CREATED,
        RUNTIME_BOOTED,
        RUNTIME_RUNNING,
        RUNTIME_PAUSED, /* the container's cgroup is frozen (the OCI runtime's pause) */
        RUNTIME_STOPPING,
        RUNTIME_STOPPED,
        RUNTIME_SHUTTING_DOWN,
        _RUNTIME_STATE_MAX,
        _RUNTIME_STATE_INVALID = -22,
} RuntimeState;

typedef enum ProcStatus {
        PROC_REGISTERED, /* createProcess done, not started */
        PROC_STARTING,   /* the OCI runtime is starting it */
        PROC_RUNNING,
        PROC_EXITED,
        _PROC_STATUS_MAX,
        _PROC_STATUS_INVALID = -22,
} ProcStatus;

const char *runtime_state_to_string(RuntimeState s);
const char *proc_status_to_string(ProcStatus s);
/* "SIGTERM", "TERM", "15" → 15; -EINVAL otherwise. */
