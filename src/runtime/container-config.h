/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The container configuration (container.json) and the process configuration (the "process"
 * object, also sent as processConfig by createProcess). Schema: docs/runtime.md. */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTAINER_CONFIG_SIZE_MAX (1024u * 1024u)
#define PROCESS_ARGS_MAX          4096u
#define PROCESS_ENV_MAX           4096u
#define PROCESS_GROUPS_MAX        64u
#define PROCESS_RLIMITS_MAX       32u
#define CONTAINER_MOUNTS_MAX      256u

typedef struct ProcessRlimit {
        char *type; /* "RLIMIT_NOFILE" */
        uint64_t soft;
        uint64_t hard;
} ProcessRlimit;

typedef struct ProcessConfig {
        char **args; /* NULL-terminated; args[0] is the executable */
        char **env;  /* NULL-terminated "K=V" */
        char *cwd;
        bool terminal;
        char *user_name; /* resolved against the rootfs' /etc/passwd when set */
        uid_t uid;
        gid_t gid;
        gid_t *groups;
        size_t n_groups;
        ProcessRlimit *rlimits;
        size_t n_rlimits;
        char **capabilities; /* NULL: the default set */
        bool no_new_privileges;
} ProcessConfig;

typedef struct ContainerMount {
        char *type; /* bind, tmpfs */
        char *source;
        char *destination;
        char **options;
        bool readonly;
} ContainerMount;

typedef struct ContainerConfig {
        char *id;
        char *rootfs;
        ProcessConfig process;
        ContainerMount *mounts;
        size_t n_mounts;
        double cpus;           /* 0: unlimited */
        uint64_t memory_bytes; /* 0: unlimited */
        int64_t pids;          /* 0: unlimited */
        char *hostname;
        bool read_only_root;
        json_t *sysctls;      /* object of strings, or NULL */
        json_t *labels;       /* object, or NULL */
        json_t *dns;          /* {nameservers, search, options}, or NULL */
        char *logging_driver; /* "file" (default) or "none" */
} ContainerConfig;

void process_config_done(ProcessConfig *p);
ProcessConfig *process_config_free(ProcessConfig *p);
void container_config_done(ContainerConfig *c);
ContainerConfig *container_config_free(ContainerConfig *c);

static inline void process_config_freep(ProcessConfig **p) {
        if (*p)
                process_config_free(*p);
}
static inline void container_config_freep(ContainerConfig **c) {
        if (*c)
                container_config_free(*c);
}

/* Parses a process object. On error returns -EINVAL and, if ret_error is given, a static-ish
 * description of the offending key (valid until the next call). */
int process_config_from_json(json_t *j, ProcessConfig **ret, const char **ret_error);
int container_config_from_json(json_t *j, const char *bundle, ContainerConfig **ret, const char **ret_error);
int container_config_load(const char *bundle, ContainerConfig **ret, const char **ret_error);

/* Resolves user_name (and "uid[:gid]" strings) against rootfs/etc/passwd and /etc/group, without
 * following symlinks out of the rootfs. */
int process_config_resolve_user(ProcessConfig *p, const char *rootfs, const char **ret_error);

/* What an exec'd process j (its JSON) does not set of its capabilities and no-new-privileges
 * comes from the container's init process, as in docker: --cap-drop cannot be undone by exec. */
int process_config_inherit_security(ProcessConfig *p, const ProcessConfig *init, json_t *j);

/* Appends "K=V" entries from env (overriding equal keys). */
int process_config_merge_env(ProcessConfig *p, char *const *env);

char **strv_free(char **l);
size_t strv_length(char *const *l);
static inline void strv_freep(char ***l) {
        if (*l)
                strv_free(*l);
}
