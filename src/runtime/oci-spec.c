/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "capabilities.h"
#include "macro.h"
#include "oci-spec.h"

/* crun's defaults. */
static const char *const masked_paths[] = {
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
        NULL,
};
static const char *const readonly_paths[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

static const struct {
        const char *name;
        int resource;
} rlimit_table[] = {
        {"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
        {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
        {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
        {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
        {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
        {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

static json_t *json_strv(const char *const *l) {
        json_t *a = json_array();
        if (!a)
                return NULL;
        for (; l && *l; l++)
                if (json_array_append_new(a, json_string(*l)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

static int rlimit_resource(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(rlimit_table); i++)
                if (streq(rlimit_table[i].name, name))
                        return rlimit_table[i].resource;
        return -EINVAL;
}

static json_t *rlimit_json(const char *type, uint64_t soft, uint64_t hard) {
        int res = rlimit_resource(type);
        struct rlimit our;

        if (res >= 0 && getrlimit(res, &our) == 0 && our.rlim_max != RLIM_INFINITY) {
                hard = MIN(hard, (uint64_t) our.rlim_max);
                soft = MIN(soft, hard);
        }
        return json_pack("{s:s, s:I, s:I}", "type", type, "soft", (json_int_t) soft, "hard",
                         (json_int_t) hard);
}

int oci_process_new(const ProcessConfig *p, json_t **ret) {
        json_t *caps, *rl, *user, *proc;
        bool have_nofile = false;
        const char *const *cl;

        assert_return(p && p->args && ret, -EINVAL);

        cl = p->capabilities ? (const char *const *) p->capabilities : capability_default_set;
        caps = json_pack("{s:o, s:o, s:o, s:o}", "bounding", json_strv(cl), "effective", json_strv(cl),
                         "permitted", json_strv(cl), "inheritable", json_array());
        rl = json_array();
        user = json_pack("{s:i, s:i}", "uid", (int) p->uid, "gid", (int) p->gid);
        if (!caps || !rl || !user)
                goto oom;
        if (p->n_groups > 0) {
                json_t *g = json_array();
                if (!g || json_object_set_new(user, "additionalGids", g) < 0)
                        goto oom;
                for (size_t i = 0; i < p->n_groups; i++)
                        if (json_array_append_new(g, json_integer(p->groups[i])) < 0)
                                goto oom;
        }
        for (size_t i = 0; i < p->n_rlimits; i++) {
                if (rlimit_resource(p->rlimits[i].type) < 0) {
                        json_decref(caps);
                        json_decref(rl);
                        json_decref(user);
                        return -EINVAL;
                }
                if (streq(p->rlimits[i].type, "RLIMIT_NOFILE"))
                        have_nofile = true;
                if (json_array_append_new(
                            rl, rlimit_json(p->rlimits[i].type, p->rlimits[i].soft, p->rlimits[i].hard)) < 0)
                        goto oom;
        }
        if (!have_nofile && json_array_append_new(rl, rlimit_json("RLIMIT_NOFILE", OCI_DEFAULT_NOFILE,
                                                                  OCI_DEFAULT_NOFILE)) < 0)
                goto oom;

        proc = json_pack("{s:b, s:o, s:o, s:o, s:s, s:o, s:o, s:b}", "terminal", p->terminal, "user", user,
                         "args", json_strv((const char *const *) p->args), "env",
                         json_strv((const char *const *) p->env), "cwd", p->cwd ?: "/", "capabilities", caps,
                         "rlimits", rl, "noNewPrivileges", p->no_new_privileges);
        if (!proc)
                return -ENOMEM;
        *ret = proc;
        return 0;
oom:
        json_decref(caps);
        json_decref(rl);
        json_decref(user);
        return -ENOMEM;
}

static int add_mount(json_t *mounts, const char *dest, const char *type, const char *src, json_t *options) {
        json_t *m = json_pack("{s:s, s:s, s:s}", "destination", dest, "type", type, "source", src);
        if (!m) {
                json_decref(options);
                return -ENOMEM;
        }
        if (options && json_object_set_new(m, "options", options) < 0) {
                json_decref(m);
                return -ENOMEM;
        }
        return json_array_append_new(mounts, m) < 0 ? -ENOMEM : 0;
}

#define OPTS(...) json_strv((const char *const[]){__VA_ARGS__, NULL})

static int build_mounts(const ContainerConfig *c, json_t *mounts) {
        int r = 0;

        r = r ?: add_mount(mounts, "/proc", "proc", "proc", NULL);
        r = r
                    ?: add_mount(mounts, "/dev", "tmpfs", "tmpfs",
                                 OPTS("nosuid", "strictatime", "mode=755", "size=65536k"));
        r = r
                    ?: add_mount(mounts, "/dev/pts", "devpts", "devpts",
                                 OPTS("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                                      "gid=5"));
        r = r
                    ?: add_mount(mounts, "/dev/shm", "tmpfs", "shm",
                                 OPTS("nosuid", "noexec", "nodev", "mode=1777", "size=65536k"));
        r = r ?: add_mount(mounts, "/dev/mqueue", "mqueue", "mqueue", OPTS("nosuid", "noexec", "nodev"));
        r = r ?: add_mount(mounts, "/sys", "sysfs", "sysfs", OPTS("nosuid", "noexec", "nodev", "ro"));
        r = r
                    ?: add_mount(mounts, "/sys/fs/cgroup", "cgroup", "cgroup",
                                 OPTS("nosuid", "noexec", "nodev", "relatime", "ro"));
        if (r < 0)
                return r;

        for (size_t i = 0; i < c->n_mounts; i++) {
                const ContainerMount *m = &c->mounts[i];
                bool bind = streq(m->type, "bind");
                json_t *o = m->options ? json_strv((const char *const *) m->options) : json_array();

                if (!o)
                        return -ENOMEM;
                if (bind && json_array_append_new(o, json_string("rbind")) < 0)
                        goto oom;
                if (m->readonly && json_array_append_new(o, json_string("ro")) < 0)
                        goto oom;
                if (!bind && !m->options && json_array_append_new(o, json_string("nosuid")) < 0)
                        goto oom;
                r = add_mount(mounts, m->destination, bind ? "bind" : "tmpfs", bind ? m->source : "tmpfs",
                              o);
                if (r < 0)
                        return r;
                continue;
        oom:
                json_decref(o);
                return -ENOMEM;
        }
        return 0;
}

static int build_resources(const ContainerConfig *c, json_t **ret) {
        json_t *res = json_pack("{s:[{s:b, s:s}]}", "devices", "allow", false, "access", "rwm");
        if (!res)
                return -ENOMEM;
        if (c->cpus > 0) {
                if (json_object_set_new(res, "cpu",
                                        json_pack("{s:I, s:I}", "quota",
                                                  (json_int_t) oci_cpu_quota_usec(c->cpus), "period",
                                                  (json_int_t) OCI_CPU_PERIOD_USEC)) < 0)
                        goto oom;
        }
        if (c->memory_bytes > 0 &&
            json_object_set_new(res, "memory", json_pack("{s:I}", "limit", (json_int_t) c->memory_bytes)) <
                    0)
                goto oom;
        if (c->pids > 0 &&
            json_object_set_new(res, "pids", json_pack("{s:I}", "limit", (json_int_t) c->pids)) < 0)
                goto oom;
        *ret = res;
        return 0;
oom:
        json_decref(res);
        return -ENOMEM;
}

int oci_spec_new(const ContainerConfig *c, json_t **ret) {
        _cleanup_free_ char *cgpath = NULL;
        json_t *spec = NULL, *proc = NULL, *mounts = NULL, *res = NULL, *linux_ = NULL;
        int r;

        assert_return(c && c->id && ret, -EINVAL);

        if (asprintf(&cgpath, OCI_CGROUP_PARENT "/%s", c->id) < 0)
                return -ENOMEM;
        r = oci_process_new(&c->process, &proc);
        if (r < 0)
                return r;
        mounts = json_array();
        if (!mounts) {
                r = -ENOMEM;
                goto fail;
        }
        r = build_mounts(c, mounts);
        if (r < 0)
                goto fail;
        r = build_resources(c, &res);
        if (r < 0)
                goto fail;

        linux_ = json_pack("{s:o, s:s, s:[{s:s},{s:s},{s:s},{s:s},{s:s}], s:o, s:o}", "resources", res,
                           "cgroupsPath", cgpath, "namespaces", "type", "pid", "type", "network", "type",
                           "ipc", "type", "uts", "type", "mount", "maskedPaths", json_strv(masked_paths),
                           "readonlyPaths", json_strv(readonly_paths));
        res = NULL;
        if (!linux_) {
                r = -ENOMEM;
                goto fail;
        }
        if (c->sysctls && json_object_set(linux_, "sysctl", c->sysctls) < 0) {
                r = -ENOMEM;
                goto fail;
        }

        spec = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.0", "process", proc,
                         "root", "path", c->rootfs, "readonly", c->read_only_root, "hostname",
                         c->hostname ?: c->id, "mounts", mounts, "linux", linux_);
        proc = mounts = linux_ = NULL;
        if (!spec)
                return -ENOMEM;
        if (c->labels && json_object_set_new(spec, "annotations", json_deep_copy(c->labels)) < 0) {
                json_decref(spec);
                return -ENOMEM;
        }
        *ret = spec;
        return 0;
fail:
        json_decref(proc);
        json_decref(mounts);
        json_decref(res);
        json_decref(linux_);
        return r;
}
