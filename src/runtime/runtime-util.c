/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "runtime.h"

static const char *const runtime_state_table[_RUNTIME_STATE_MAX] = {
        [RUNTIME_CREATED] = "created",
        [RUNTIME_BOOTED] = "booted",
        [RUNTIME_RUNNING] = "running",
        [RUNTIME_PAUSED] = "paused",
        [RUNTIME_STOPPING] = "stopping",
        [RUNTIME_STOPPED] = "stopped",
        [RUNTIME_SHUTTING_DOWN] = "shuttingDown",
};

static const char *const proc_status_table[_PROC_STATUS_MAX] = {
        [PROC_REGISTERED] = "created",
        [PROC_STARTING] = "starting",
        [PROC_RUNNING] = "running",
        [PROC_EXITED] = "exited",
};

const char *runtime_state_to_string(RuntimeState s) {
        return s >= 0 && s < _RUNTIME_STATE_MAX ? runtime_state_table[s] : NULL;
}

const char *proc_status_to_string(ProcStatus s) {
        return s >= 0 && s < _PROC_STATUS_MAX ? proc_status_table[s] : NULL;
}
