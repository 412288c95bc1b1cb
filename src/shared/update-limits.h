/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The limits of a container/update (docs/apiserver.md): the CLI sends them, the API server checks
 * them and passes the same keys on to runtime/update. One shape and one writer for both. */

#include <stdbool.h>
#include <stdint.h>

#include "cxpc/cxpc.h"

typedef struct UpdateLimits {
        bool has_cpus, has_memory, has_pids;
        double cpus;
        int64_t memory_bytes;
        int64_t pids; /* 0: no limit */
} UpdateLimits;

/* Sets the keys of the limits given (cpus as a double) in a request. */
static inline int update_limits_to_request(const UpdateLimits *l, cxpc_object *request) {
        int r = 0;

        if (l->has_cpus)
                r = cxpc_dict_set_double(request, "cpus", l->cpus);
        if (r >= 0 && l->has_memory)
                r = cxpc_dict_set_int64(request, "memoryBytes", l->memory_bytes);
        if (r >= 0 && l->has_pids)
                r = cxpc_dict_set_int64(request, "pids", l->pids);
        return r;
}
