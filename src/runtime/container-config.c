/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container-config.h"
#include "macro.h"
#include "sysctl.h"

static const char *const default_env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        NULL,
};

char **strv_free(char **l) {
        if (!l)
                return NULL;
        for (char **i = l; *i; i++)
                free(*i);
        free(l);
        return NULL;
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

static int strv_from_json(json_t *a, size_t max, char ***ret) {
        _cleanup_(strv_freep) char **l = NULL;
        size_t i;
        json_t *v;

        if (!json_is_array(a) || json_array_size(a) > max)
                return -EINVAL;
        l = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v))
                        return -EINVAL;
                l[i] = strdup(json_string_value(v));
                if (!l[i])
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static char **strv_copy(const char *const *src) {
        size_t n = 0;
        char **l;

        while (src[n])
                n++;
        l = calloc(n + 1, sizeof(char *));
        if (!l)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(l[i] = strdup(src[i])))
                        return strv_free(l);
        return l;
}

void process_config_done(ProcessConfig *p) {
        if (!p)
                return;
        p->args = strv_free(p->args);
        p->env = strv_free(p->env);
        free(p->cwd);
        free(p->user_name);
        free(p->groups);
        for (size_t i = 0; i < p->n_rlimits; i++)
                free(p->rlimits[i].type);
        free(p->rlimits);
        p->capabilities = strv_free(p->capabilities);
        *p = (ProcessConfig){};
}

ProcessConfig *process_config_free(ProcessConfig *p) {
        process_config_done(p);
        free(p);
        return NULL;
}

void container_config_done(ContainerConfig *c) {
        if (!c)
                return;
        free(c->id);
        free(c->rootfs);
        process_config_done(&c->process);
        for (size_t i = 0; i < c->n_mounts; i++) {
                free(c->mounts[i].type);
                free(c->mounts[i].source);
                free(c->mounts[i].destination);
                strv_free(c->mounts[i].options);
        }
        free(c->mounts);
        free(c->hostname);
        json_decref(c->sysctls);
        json_decref(c->labels);
        json_decref(c->dns);
        free(c->logging_driver);
        *c = (ContainerConfig){};
}

ContainerConfig *container_config_free(ContainerConfig *c) {
        container_config_done(c);
        free(c);
        return NULL;
}

static int get_string_dup(json_t *o, const char *key, char **ret) {
        json_t *v = json_object_get(o, key);
        char *s;

        if (!v || json_is_null(v))
                return 0;
        if (!json_is_string(v))
                return -EINVAL;
        s = strdup(json_string_value(v));
        if (!s)
                return -ENOMEM;
        free(*ret);
        *ret = s;
        return 1;
}

static int parse_id(json_t *v, uint32_t *ret) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX - 1)
                return -EINVAL;
        *ret = (uint32_t) json_integer_value(v);
        return 0;
}

static int parse_process(json_t *j, ProcessConfig *p, const char **err) {
        json_t *v;
        int r;

        if (!json_is_object(j)) {
                *err = "process must be an object";
                return -EINVAL;
        }

        v = json_object_get(j, "args");
        if (v) {
                r = strv_from_json(v, PROCESS_ARGS_MAX, &p->args);
                if (r < 0) {
                        *err = "process.args must be an array of strings";
                        return r;
                }
        }
        v = json_object_get(j, "executable");
        if (v) {
                char *e;
                if (!json_is_string(v) || json_string_length(v) == 0) {
                        *err = "process.executable must be a non-empty string";
                        return -EINVAL;
                }
                e = strdup(json_string_value(v));
                if (!e)
                        return -ENOMEM;
                if (!p->args || !p->args[0]) {
                        p->args = strv_free(p->args);
                        p->args = calloc(2, sizeof(char *));
                        if (!p->args) {
                                free(e);
                                return -ENOMEM;
                        }
                        p->args[0] = e;
                } else {
                        /* executable replaces argv[0], docker's entrypoint style. */
                        free(p->args[0]);
                        p->args[0] = e;
                }
        }
        if (!p->args || !p->args[0]) {
                *err = "process needs args or executable";
                return -EINVAL;
        }

        v = json_object_get(j, "env");
        if (v) {
                r = strv_from_json(v, PROCESS_ENV_MAX, &p->env);
                if (r < 0) {
                        *err = "process.env must be an array of strings";
                        return r;
                }
        } else {
                p->env = strv_copy(default_env);
                if (!p->env)
                        return -ENOMEM;
        }

        r = get_string_dup(j, "cwd", &p->cwd);
        if (r < 0 || (p->cwd && p->cwd[0] != '/')) {
                *err = "process.cwd must be an absolute path";
                return -EINVAL;
        }
        if (!p->cwd && !(p->cwd = strdup("/")))
                return -ENOMEM;

        v = json_object_get(j, "terminal");
        if (v) {
                if (!json_is_boolean(v)) {
                        *err = "process.terminal must be a boolean";
                        return -EINVAL;
                }
                p->terminal = json_is_true(v);
        }

        p->no_new_privileges = true;
        v = json_object_get(j, "noNewPrivileges");
        if (v) {
                if (!json_is_boolean(v)) {
                        *err = "process.noNewPrivileges must be a boolean";
                        return -EINVAL;
                }
                p->no_new_privileges = json_is_true(v);
        }

        v = json_object_get(j, "user");
        if (json_is_string(v)) {
                p->user_name = strdup(json_string_value(v));
                if (!p->user_name)
                        return -ENOMEM;
        } else if (json_is_object(v)) {
                json_t *u = json_object_get(v, "uid"), *g = json_object_get(v, "gid"),
                       *n = json_object_get(v, "name");
                if (n) {
                        if (!json_is_string(n)) {
                                *err = "process.user.name must be a string";
                                return -EINVAL;
                        }
                        p->user_name = strdup(json_string_value(n));
                        if (!p->user_name)
                                return -ENOMEM;
                }
                if ((u && parse_id(u, &p->uid) < 0) || (g && parse_id(g, &p->gid) < 0)) {
                        *err = "process.user.uid/gid must be integers";
                        return -EINVAL;
                }
                if (u && !g)
                        p->gid = p->uid;
        } else if (v && !json_is_null(v)) {
                *err = "process.user must be an object or a string";
                return -EINVAL;
        }

        v = json_object_get(j, "supplementaryGroups");
        if (v) {
                size_t i;
                json_t *g;
                if (!json_is_array(v) || json_array_size(v) > PROCESS_GROUPS_MAX) {
                        *err = "process.supplementaryGroups must be an array of gids";
                        return -EINVAL;
                }
                p->groups = calloc(json_array_size(v) + 1, sizeof(gid_t));
                if (!p->groups)
                        return -ENOMEM;
                json_array_foreach(v, i, g) {
                        if (parse_id(g, &p->groups[i]) < 0) {
                                *err = "process.supplementaryGroups must be an array of gids";
                                return -EINVAL;
                        }
                }
                p->n_groups = json_array_size(v);
        }

        v = json_object_get(j, "rlimits");
        if (v) {
                size_t i;
                json_t *rl;
                if (!json_is_array(v) || json_array_size(v) > PROCESS_RLIMITS_MAX) {
                        *err = "process.rlimits must be an array";
                        return -EINVAL;
                }
                p->rlimits = calloc(json_array_size(v) + 1, sizeof(ProcessRlimit));
                if (!p->rlimits)
                        return -ENOMEM;
                json_array_foreach(v, i, rl) {
                        json_t *t = json_object_get(rl, "type"), *s = json_object_get(rl, "soft"),
                               *h = json_object_get(rl, "hard");
                        if (!json_is_string(t) || strncmp(json_string_value(t), "RLIMIT_", 7) != 0 ||
                            !json_is_integer(s) || !json_is_integer(h) || json_integer_value(s) < 0 ||
                            json_integer_value(h) < json_integer_value(s)) {
                                *err = "process.rlimits entries need type RLIMIT_*, soft <= hard";
                                return -EINVAL;
                        }
                        p->rlimits[i].type = strdup(json_string_value(t));
                        if (!p->rlimits[i].type)
                                return -ENOMEM;
                        p->rlimits[i].soft = (uint64_t) json_integer_value(s);
                        p->rlimits[i].hard = (uint64_t) json_integer_value(h);
                        p->n_rlimits = i + 1;
                }
        }

        v = json_object_get(j, "capabilities");
        if (v) {
                r = strv_from_json(v, 64, &p->capabilities);
                if (r < 0) {
                        *err = "process.capabilities must be an array of CAP_* names";
                        return r;
                }
                for (char **c = p->capabilities; *c; c++)
                        if (strncmp(*c, "CAP_", 4) != 0) {
                                *err = "process.capabilities must be an array of CAP_* names";
                                return -EINVAL;
                        }
        }
        return 0;
}

int process_config_inherit_security(ProcessConfig *p, const ProcessConfig *init, json_t *j) {
        if (!json_object_get(j, "capabilities") && init->capabilities) {
                p->capabilities = strv_free(p->capabilities);
                p->capabilities = strv_copy((const char *const *) init->capabilities);
                if (!p->capabilities)
                        return -ENOMEM;
        }
        if (!json_object_get(j, "noNewPrivileges"))
                p->no_new_privileges = init->no_new_privileges;
        return 0;
}

int process_config_from_json(json_t *j, ProcessConfig **ret, const char **ret_error) {
        _cleanup_(process_config_freep) ProcessConfig *p = NULL;
        const char *err = "bad process configuration";
        int r;

        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        r = parse_process(j, p, &err);
        if (r < 0) {
                if (ret_error)
                        *ret_error = err;
                return r;
        }
        *ret = TAKE_PTR(p);
        return 0;
}

static int parse_mounts(json_t *a, ContainerConfig *c, const char **err) {
        size_t i;
        json_t *m;

        if (!json_is_array(a) || json_array_size(a) > CONTAINER_MOUNTS_MAX) {
                *err = "mounts must be an array";
                return -EINVAL;
        }
        c->mounts = calloc(json_array_size(a) + 1, sizeof(ContainerMount));
        if (!c->mounts)
                return -ENOMEM;
        json_array_foreach(a, i, m) {
                ContainerMount *cm = &c->mounts[i];
                json_t *o;
                c->n_mounts = i + 1;
                if (get_string_dup(m, "type", &cm->type) <= 0 ||
                    get_string_dup(m, "destination", &cm->destination) <= 0 ||
                    get_string_dup(m, "source", &cm->source) < 0) {
                        *err = "mounts[] need string type and destination";
                        return -EINVAL;
                }
                if (!streq(cm->type, "bind") && !streq(cm->type, "tmpfs")) {
                        *err = "mounts[].type must be bind or tmpfs";
                        return -EINVAL;
                }
                if (cm->destination[0] != '/' ||
                    (streq(cm->type, "bind") && (!cm->source || cm->source[0] != '/'))) {
                        *err = "mounts[] need an absolute destination (and source for bind)";
                        return -EINVAL;
                }
                o = json_object_get(m, "options");
                if (o && strv_from_json(o, 64, &cm->options) < 0) {
                        *err = "mounts[].options must be an array of strings";
                        return -EINVAL;
                }
                o = json_object_get(m, "readonly");
                if (o && !json_is_boolean(o)) {
                        *err = "mounts[].readonly must be a boolean";
                        return -EINVAL;
                }
                cm->readonly = json_is_true(o);
        }
        return 0;
}

static int container_config_parse(json_t *j, const char *bundle, ContainerConfig *c, const char **err) {
        json_t *v, *res;
        int r;

        if (!json_is_object(j)) {
                *err = "container configuration must be a JSON object";
                return -EINVAL;
        }
        if (get_string_dup(j, "id", &c->id) < 0) {
                *err = "id must be a string";
                return -EINVAL;
        }
        r = get_string_dup(j, "rootfs", &c->rootfs);
        if (r < 0) {
                *err = "rootfs must be a string";
                return -EINVAL;
        }
        if (r == 0 || c->rootfs[0] != '/') {
                /* Relative paths are relative to the bundle. */
                char *p = NULL;
                if (asprintf(&p, "%s/%s", bundle, c->rootfs ?: "rootfs") < 0)
                        return -ENOMEM;
                free(c->rootfs);
                c->rootfs = p;
        }

        r = parse_process(json_object_get(j, "process") ?: json_object_get(j, "init"), &c->process, err);
        if (r < 0)
                return r;

        v = json_object_get(j, "mounts");
        if (v) {
                r = parse_mounts(v, c, err);
                if (r < 0)
                        return r;
        }

        res = json_object_get(j, "resources");
        if (res) {
                if (!json_is_object(res)) {
                        *err = "resources must be an object";
                        return -EINVAL;
                }
                v = json_object_get(res, "cpus");
                if (v && (!json_is_number(v) || json_number_value(v) < 0)) {
                        *err = "resources.cpus must be a non-negative number";
                        return -EINVAL;
                }
                c->cpus = v ? json_number_value(v) : 0;
                v = json_object_get(res, "memoryBytes");
                if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
                        *err = "resources.memoryBytes must be a non-negative integer";
                        return -EINVAL;
                }
                c->memory_bytes = v ? (uint64_t) json_integer_value(v) : 0;
                v = json_object_get(res, "pids");
                if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) {
                        *err = "resources.pids must be a non-negative integer";
                        return -EINVAL;
                }
                c->pids = v ? json_integer_value(v) : 0;
        }

        if (get_string_dup(j, "hostname", &c->hostname) < 0) {
                *err = "hostname must be a string";
                return -EINVAL;
        }
        v = json_object_get(j, "readOnlyRoot");
        if (v && !json_is_boolean(v)) {
                *err = "readOnlyRoot must be a boolean";
                return -EINVAL;
        }
        c->read_only_root = json_is_true(v);

        v = json_object_get(j, "sysctls");
        if (v) {
                const char *k;
                json_t *s;
                if (!json_is_object(v)) {
                        *err = "sysctls must be an object of strings";
                        return -EINVAL;
                }
                if (json_object_size(v) > CONTAINER_SYSCTLS_MAX) {
                        *err = "sysctls: too many";
                        return -EINVAL;
                }
                json_object_foreach(v, k, s) {
                        if (!json_is_string(s)) {
                                *err = "sysctls must be an object of strings";
                                return -EINVAL;
                        }
                        /* Again here: a configuration on disk may not have come through the API server. */
                        if (sysctl_check(k, json_string_value(s), err) < 0)
                                return -EINVAL;
                }
                c->sysctls = json_incref(v);
        }
        v = json_object_get(j, "labels");
        if (v) {
                if (!json_is_object(v)) {
                        *err = "labels must be an object";
                        return -EINVAL;
                }
                c->labels = json_incref(v);
        }
        v = json_object_get(j, "dns");
        if (v) {
                if (!json_is_object(v)) {
                        *err = "dns must be an object";
                        return -EINVAL;
                }
                c->dns = json_incref(v);
        }
        v = json_object_get(j, "logging");
        if (v) {
                if (!json_is_object(v) || get_string_dup(v, "driver", &c->logging_driver) < 0 ||
                    (c->logging_driver && !streq(c->logging_driver, "file") &&
                     !streq(c->logging_driver, "none"))) {
                        *err = "logging.driver must be \"file\" or \"none\"";
                        return -EINVAL;
                }
        }
        if (!c->logging_driver && !(c->logging_driver = strdup("file")))
                return -ENOMEM;
        return 0;
}

int container_config_from_json(json_t *j, const char *bundle, ContainerConfig **ret,
                               const char **ret_error) {
        _cleanup_(container_config_freep) ContainerConfig *c = NULL;
        const char *err = "bad container configuration";
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        r = container_config_parse(j, bundle, c, &err);
        if (r < 0) {
                if (ret_error)
                        *ret_error = err;
                return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

int container_config_load(const char *bundle, ContainerConfig **ret, const char **ret_error) {
        _cleanup_free_ char *path = NULL;
        json_error_t jerr;
        json_t *j;
        int r;

        if (asprintf(&path, "%s/container.json", bundle) < 0)
                return -ENOMEM;
        j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!j) {
                if (ret_error)
                        *ret_error = "cannot read or parse container.json";
                return access(path, R_OK) < 0 ? negative_errno() : -EINVAL;
        }
        r = container_config_from_json(j, bundle, ret, ret_error);
        json_decref(j);
        return r;
}

int process_config_merge_env(ProcessConfig *p, char *const *env) {
        size_t n = strv_length(p->env), m = strv_length(env);
        char **l;

        if (m == 0)
                return 0;
        if (n + m > PROCESS_ENV_MAX)
                return -E2BIG;
        l = realloc(p->env, (n + m + 1) * sizeof(char *));
        if (!l)
                return -ENOMEM;
        p->env = l;
        for (size_t i = 0; i < m; i++) {
                const char *eq = strchr(env[i], '=');
                size_t klen = eq ? (size_t) (eq - env[i]) : strlen(env[i]);
                char *copy = strdup(env[i]);
                size_t k;
                if (!copy)
                        return -ENOMEM;
                for (k = 0; k < n; k++)
                        if (strncmp(p->env[k], env[i], klen) == 0 && p->env[k][klen] == '=')
                                break;
                if (k < n) {
                        free(p->env[k]);
                        p->env[k] = copy;
                } else
                        p->env[n++] = copy;
                p->env[n] = NULL;
        }
        return 0;
}

/* Opens a file inside rootfs as if rootfs were "/": symlinks and ".." cannot leave it. */
static FILE *fopen_in_root(const char *rootfs, const char *path) {
        struct open_how how = {
                .flags = O_RDONLY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        _cleanup_close_ int dfd = -EBADF, fd = -EBADF;
        FILE *f;

        dfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return NULL;
        fd = (int) syscall(SYS_openat2, dfd, path, &how, sizeof(how));
        if (fd < 0)
                return NULL;
        f = fdopen(fd, "re");
        if (f)
                TAKE_FD(fd);
        return f;
}

/* Looks up name (or a numeric string) in a passwd/group style file; field 2 (uid/gid) and
 * field 3 (gid, passwd only). */
static int lookup_db(const char *rootfs, const char *file, const char *name, uint32_t *ret_id,
                     uint32_t *ret_gid) {
        _cleanup_free_ char *line = NULL;
        size_t sz = 0;
        FILE *f;
        int r = -ESRCH;

        f = fopen_in_root(rootfs, file);
        if (!f)
                return -ESRCH;
        while (getline(&line, &sz, f) > 0) {
                char *save = NULL, *n, *pw, *id, *gid;
                n = strtok_r(line, ":", &save);
                pw = strtok_r(NULL, ":", &save);
                id = strtok_r(NULL, ":\n", &save);
                gid = strtok_r(NULL, ":\n", &save);
                if (!n || !pw || !id || !streq(n, name))
                        continue;
                *ret_id = (uint32_t) strtoul(id, NULL, 10);
                if (ret_gid)
                        *ret_gid = gid ? (uint32_t) strtoul(gid, NULL, 10) : *ret_id;
                r = 0;
                break;
        }
        fclose(f);
        return r;
}

static bool parse_uint32(const char *s, uint32_t *ret) {
        char *end;
        unsigned long v;

        if (!s || !*s || *s == '-')
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || v >= UINT32_MAX)
                return false;
        *ret = (uint32_t) v;
        return true;
}

int process_config_resolve_user(ProcessConfig *p, const char *rootfs, const char **ret_error) {
        _cleanup_free_ char *u = NULL;
        char *g;
        uint32_t uid, gid;

        if (!p->user_name || !*p->user_name)
                return 0;
        /* Accepts "name", "uid", "name:group", "uid:gid". */
        u = strdup(p->user_name);
        if (!u)
                return -ENOMEM;
        g = strchr(u, ':');
        if (g)
                *g++ = 0;
        if (parse_uint32(u, &uid)) {
                gid = uid;
                (void) lookup_db(rootfs, "/etc/passwd", u, &uid, &gid);
        } else if (lookup_db(rootfs, "/etc/passwd", u, &uid, &gid) < 0) {
                if (ret_error)
                        *ret_error = "user not found in the container's /etc/passwd";
                return -ESRCH;
        }
        if (g && !parse_uint32(g, &gid) && lookup_db(rootfs, "/etc/group", g, &gid, NULL) < 0) {
                if (ret_error)
                        *ret_error = "group not found in the container's /etc/group";
                return -ESRCH;
        }
        p->uid = uid;
        p->gid = gid;
        return 0;
}
