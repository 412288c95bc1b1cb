/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "sysctl.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "macro.h"

/* The IPC namespace's parameters besides fs.mqueue.* (ipc/ipc_sysctl.c in Linux), and the UTS
 * namespace's domain name. kernel.hostname is the UTS namespace's too, but --hostname sets it. */
static const char *const sysctl_namespaced[] = {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",          "kernel.sem",        "kernel.shmall",
        "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.domainname",
};

/* Whole subtrees the container owns: its network namespace and its POSIX message queues. */
static const char *const sysctl_namespaced_prefix[] = {"net.", "fs.mqueue."};

/* Dot-separated components of letters, digits, '_' and '-': no '/', no "..", nothing that could
 * name another file below /proc/sys. */
static bool sysctl_name_is_valid(const char *name) {
        size_t len = strnlen(name, CONTAINER_SYSCTL_NAME_MAX + 1);
        if (len == 0 || len > CONTAINER_SYSCTL_NAME_MAX || name[0] == '.' || name[len - 1] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = name[i];
                if (c == '.') {
                        if (name[i + 1] == '.')
                                return false;
                } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                             c == '_' || c == '-'))
                        return false;
        }
        return true;
}

/* A value is one line: /proc/sys takes the first and ignores the rest, which would hide a mistake. */
static bool sysctl_value_is_valid(const char *value) {
        size_t len = strnlen(value, CONTAINER_SYSCTL_VALUE_MAX + 1);
        if (len == 0 || len > CONTAINER_SYSCTL_VALUE_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) value[i] < 0x20 && value[i] != '\t')
                        return false;
        return true;
}

int sysctl_check(const char *name, const char *value, const char **ret_reason) {
        if (!name || !sysctl_name_is_valid(name)) {
                *ret_reason = "not a sysctl name (dot-separated letters, digits, '_' and '-')";
                return -EINVAL;
        }
        if (!value || !sysctl_value_is_valid(value)) {
                *ret_reason = "the value must be one non-empty line of at most 1024 bytes";
                return -EINVAL;
        }
        for (size_t i = 0; i < ELEMENTSOF(sysctl_namespaced); i++)
                if (streq(name, sysctl_namespaced[i]))
                        return 0;
        for (size_t i = 0; i < ELEMENTSOF(sysctl_namespaced_prefix); i++) {
                const char *p = sysctl_namespaced_prefix[i];
                if (strncmp(name, p, strlen(p)) == 0)
                        return 0;
        }
        *ret_reason =
                streq(name, "kernel.hostname")
                        ? "set the host name with --hostname"
                        : "not a parameter of the container's own namespaces: it would change the host";
        return -EPERM;
}
