/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* Capability names as the OCI runtime spec writes them ("CAP_CHOWN"). Shared by the runtime
 * service, which gives a process the default set unless its configuration lists its own, and by
 * the CLI, which turns --cap-add/--cap-drop into such a list. */

/* Docker's default set, NULL-terminated. */
extern const char *const capability_default_set[];

/* Every capability of Linux up to CAP_CHECKPOINT_RESTORE (40), in number order. */
extern const char *const capability_all[];
extern const size_t capability_all_count;

/* The number of a capability given as "NET_ADMIN", "CAP_NET_ADMIN" or in lower case (its index in
 * capability_all), or -EINVAL for a name Linux does not know. */
int capability_from_name(const char *name);
