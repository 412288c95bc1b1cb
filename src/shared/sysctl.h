/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Which kernel parameters a container may set (run --sysctl, configuration "sysctls"). A container
 * has its own network, IPC and UTS namespaces, so only the parameters of those namespaces are
 * its own; any other would change the host. Checked by the API server at create and by the
 * runtime service when it reads a configuration. */

#define CONTAINER_SYSCTLS_MAX      128u
#define CONTAINER_SYSCTL_NAME_MAX  128u
#define CONTAINER_SYSCTL_VALUE_MAX 1024u

/* 0 when name=value may be set inside a container. Else -EINVAL for a malformed name or value, or
 * -EPERM for a parameter the container does not own; *ret_reason (static text) says which. */
int sysctl_check(const char *name, const char *value, const char **ret_reason);
