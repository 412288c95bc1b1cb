/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The container registry on disk: $ROOT/containers/<id>/{config.json,state.json,bundle/}. */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apiserver.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

static void pending_free_all(Pending **list, size_t *n) {
        for (size_t i = 0; i < *n; i++) {
                cxpc_connection_unref((*list)[i].conn);
                cxpc_object_unref((*list)[i].request);
        }
        free(*list);
        *list = NULL;
        *n = 0;
}

Container *container_ref(Container *c) {
        if (c)
                c->n_ref++;
        return c;
}

Container *container_unref(Container *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        runtime_client_free(c->runtime);
        runtime_client_free(c->retiring);
        pending_free_all(&c->waiters, &c->n_waiters);
        pending_free_all(&c->starters, &c->n_starters);
        pending_free_all(&c->after_start, &c->n_after_start);
        pending_free_all(&c->stoppers, &c->n_stoppers);
        json_decref(c->config);
        free(c->id);
        free(c->dir);
        free(c->broken_reason);
        free(c->last_error);
        free(c);
        return NULL;
}

int container_new(Manager *m, const char *id, Container **ret) {
        _cleanup_(container_unrefp) Container *c = NULL;

        if (!container_id_is_valid(id))
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->n_ref = 1;
        c->manager = m;
        c->exit_code = -1;
        c->status = CONTAINER_STATUS_CREATED;
        c->id = strdup(id);
        if (!c->id || asprintf(&c->dir, "%s/%s", m->containers_dir, id) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

char *container_bundle_path(Container *c) {
        char *p;

        if (asprintf(&p, "%s/bundle", c->dir) < 0)
                return NULL;
        return p;
}

static json_t *date_or_null(int64_t nsec) {
        char buf[64];

        if (nsec <= 0 || format_rfc3339(nsec, buf, sizeof buf) < 0)
                return json_null();
        return json_string(buf);
}

static int64_t date_from_json(json_t *j) {
        int64_t v = 0;

        if (json_is_string(j) && parse_rfc3339(json_string_value(j), &v) >= 0)
                return v;
        return 0;
}

bool container_is_kept(Container *c) {
        return !json_is_true(json_object_get(c->config, "autoRemove"));
}

const char *container_oci_runtime(Container *c) {
        return json_string_value(json_object_get(c->config, "runtime")) ?: CONTAINER_OCI_RUNTIME_LEGACY;
}

int container_save_state(Container *c, WriteSync sync) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        _cleanup_free_ char *path = NULL;

        if (c->status == CONTAINER_STATUS_BROKEN || c->removed)
                return 0;
        j = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "status",
                      container_status_to_string(c->status), "createdAt", date_or_null(c->created_at),
                      "startedAt", date_or_null(c->started_at), "exitCode",
                      c->exit_code >= 0 ? json_integer(c->exit_code) : json_null(), "exitedAt",
                      date_or_null(c->exited_at), "pid", c->pid > 0 ? json_integer(c->pid) : json_null(),
                      "initPid", c->init_pid > 0 ? json_integer(c->init_pid) : json_null(), "error",
                      c->last_error ? json_string(c->last_error) : json_null());
        if (!j)
                return -ENOMEM;
        if (asprintf(&path, "%s/state.json", c->dir) < 0)
                return -ENOMEM;
        return json_write_atomic_full(path, j, sync);
}

int container_save_config(Container *c, WriteSync sync) {
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/config.json", c->dir) < 0)
                return -ENOMEM;
        return json_write_atomic_full(path, c->config, sync);
}

/* The runtime service's container.json (docs/runtime.md): the configuration minus what only the
 * API server interprets (image, autoRemove, init). Derived data, written before each start: never
 * fsynced (a lost one is written again by the next start). */
int container_write_bundle(Container *c) {
        static const char *const keys[] = {
                "id",           "rootfs",  "process", "mounts", "resources", "hostname",
                "readOnlyRoot", "sysctls", "labels",  "dns",    "logging",
        };
        _cleanup_(json_decrefp) json_t *j = json_object();
        _cleanup_free_ char *bundle = container_bundle_path(c), *path = NULL;

        if (!j || !bundle)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(c->config, keys[i]);
                if (v && json_object_set(j, keys[i], v) < 0)
                        return -ENOMEM;
        }
        if (json_is_true(json_object_get(c->config, "init"))) {
                /* --init: our static init becomes PID 1 and runs the command. */
                json_t *process = json_deep_copy(json_object_get(c->config, "process"));
                json_t *args = json_pack("[s, s]", CONTAINER_INIT_PATH, "--");
                json_t *mounts = json_deep_copy(json_object_get(c->config, "mounts")) ?: json_array();

                if (!c->manager->init_path) {
                        json_decref(process);
                        json_decref(args);
                        json_decref(mounts);
                        return -ENOPKG;
                }
                if (!process || !args || !mounts ||
                    json_array_extend(args, json_object_get(process, "args")) < 0 ||
                    json_object_set_new(process, "args", args) < 0 ||
                    json_array_append_new(mounts, json_pack("{s:s, s:s, s:s, s:b}", "type", "bind", "source",
                                                            c->manager->init_path, "destination",
                                                            CONTAINER_INIT_PATH, "readonly", true)) < 0 ||
                    json_object_set_new(j, "process", process) < 0 ||
                    json_object_set_new(j, "mounts", mounts) < 0)
                        return -ENOMEM;
        }
        if (mkdir(bundle, 0700) < 0 && errno != EEXIST)
                return negative_errno();
        if (asprintf(&path, "%s/container.json", bundle) < 0)
                return -ENOMEM;
        return json_write_atomic_full(path, j, WRITE_SYNC_NONE);
}

static void container_mark_broken(Container *c, const char *what, int error) {
        free(c->broken_reason);
        if (asprintf(&c->broken_reason, "%s: %s", what, strerror(error)) < 0)
                c->broken_reason = NULL;
        c->status = CONTAINER_STATUS_BROKEN;
        json_decref(c->config);
        c->config = NULL;
}

static json_t *load_json(const char *dir, const char *name, int *ret_error) {
        _cleanup_free_ char *path = NULL;
        json_error_t err;
        json_t *j;

        if (asprintf(&path, "%s/%s", dir, name) < 0) {
                *ret_error = ENOMEM;
                return NULL;
        }
        j = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                *ret_error = access(path, R_OK) < 0 ? errno : EBADMSG;
        else if (!json_is_object(j)) {
                json_decref(j);
                *ret_error = EBADMSG;
                return NULL;
        }
        return j;
}

/* Never fails for an unreadable directory: that container is loaded as broken. */
int container_load(Manager *m, const char *id, Container **ret) {
        _cleanup_(container_unrefp) Container *c = NULL;
        _cleanup_(json_decrefp) json_t *state = NULL;
        ContainerStatus s;
        json_t *v;
        int r, error = 0;

        r = container_new(m, id, &c);
        if (r < 0)
                return r;
        c->config = load_json(c->dir, "config.json", &error);
        if (!c->config) {
                container_mark_broken(c, "config.json", error);
                goto done;
        }
        v = json_object_get(c->config, "runtime");
        if (!json_is_array(json_object_get(json_object_get(c->config, "process"), "args")) ||
            !streq_ptr(json_string_value(json_object_get(c->config, "id")), id) ||
            (v && !json_is_string(v))) {
                container_mark_broken(c, "config.json", EBADMSG);
                goto done;
        }
        /* Written before containers had a "runtime": they ran with container-runtime's default. */
        if (!v && json_object_set_new(c->config, "runtime", json_string(CONTAINER_OCI_RUNTIME_LEGACY)) < 0)
                return -ENOMEM;
        state = load_json(c->dir, "state.json", &error);
        if (!state && error == ENOENT && !container_is_kept(c)) {
                /* A --rm container gets its state.json when it starts: created, at the time its
                 * configuration was written. */
                _cleanup_free_ char *path = NULL;
                struct stat st;

                if (asprintf(&path, "%s/config.json", c->dir) < 0)
                        return -ENOMEM;
                if (stat(path, &st) >= 0)
                        c->created_at =
                                (int64_t) st.st_mtim.tv_sec * (int64_t) NSEC_PER_SEC + st.st_mtim.tv_nsec;
                goto done;
        }
        if (!state) {
                /* The configuration is intact: only the state was lost (what a power loss can do to
                 * the writes that are not fsynced). The container is kept, its exit unknown. */
                c->status = CONTAINER_STATUS_STOPPED;
                if (asprintf(&c->last_error, "state.json: %s: the container's state was lost",
                             strerror(error)) < 0) {
                        c->last_error = NULL;
                        return -ENOMEM;
                }
                goto done;
        }
        s = container_status_from_string(json_string_value(json_object_get(state, "status")));
        if (s < 0 || s == CONTAINER_STATUS_BROKEN) {
                container_mark_broken(c, "state.json", EBADMSG);
                goto done;
        }
        c->status = s;
        c->created_at = date_from_json(json_object_get(state, "createdAt"));
        c->started_at = date_from_json(json_object_get(state, "startedAt"));
        c->exited_at = date_from_json(json_object_get(state, "exitedAt"));
        v = json_object_get(state, "exitCode");
        c->exit_code = json_is_integer(v) ? (int) json_integer_value(v) : -1;
        v = json_object_get(state, "pid");
        c->pid = json_is_integer(v) ? pid_from_int64(json_integer_value(v)) : 0;
        v = json_object_get(state, "initPid");
        c->init_pid = json_is_integer(v) ? pid_from_int64(json_integer_value(v)) : 0;
        v = json_object_get(state, "error");
        if (json_is_string(v) && !(c->last_error = strdup(json_string_value(v))))
                return -ENOMEM;
done:
        *ret = TAKE_PTR(c);
        return 0;
}

int manager_add_container(Manager *m, Container *c) {
        Container **a;

        if (m->n_containers >= APISERVER_CONTAINERS_MAX)
                return -ENOSPC;
        a = reallocarray(m->containers, m->n_containers + 1, sizeof *a);
        if (!a)
                return -ENOMEM;
        m->containers = a;
        m->containers[m->n_containers++] = container_ref(c);
        return 0;
}

Container *manager_find(Manager *m, const char *id) {
        if (!id)
                return NULL;
        for (size_t i = 0; i < m->n_containers; i++)
                if (streq(m->containers[i]->id, id))
                        return m->containers[i];
        return NULL;
}

int manager_remove_container(Manager *m, Container *c) {
        _cleanup_free_ char *graveyard = NULL, *upper_trash = NULL; /* moved aside, removed later */
        char suffix[CONTAINER_ID_GENERATED_LEN + 1];
        int r;

        /* The overlay goes first (rm_rf never crosses mounts), with the upper layer and the
         * container's image reference. A broken container's config is unknown: try anyway. */
        if (container_uses_image(c) || !c->config) {
                _cleanup_free_ char *target = NULL;
                struct stat st;

                if (asprintf(&target, "%s/rootfs", c->dir) < 0)
                        return -ENOMEM;
                if (container_uses_image(c) || (stat(target, &st) >= 0 && S_ISDIR(st.st_mode))) {
                        r = image_store_umount_rootfs_deferred(m->images, c->id, target, &upper_trash);
                        if (r < 0 && c->config)
                                return r;
                }
        }

        /* Rename first so that a crash in the middle never leaves a half-removed container that
         * would later be listed as broken; dot names are never valid ids, scans skip them. */
        r = container_id_generate(suffix);
        if (r < 0)
                return r;
        if (asprintf(&graveyard, "%s/.removed-%s-%s", m->containers_dir, c->id, suffix) < 0)
                return -ENOMEM;
        if (rename(c->dir, graveyard) < 0) {
                if (errno != ENOENT)
                        return negative_errno();
                free(graveyard);
                graveyard = NULL;
        }
        /* The files go in a thread: a container that wrote 20,000 files took 1.7 s to delete here,
         * during which nobody else was served. Inline if no thread can be had. */
        {
                char *trash[3] = {}, **t = trash;
                if (upper_trash)
                        *t++ = upper_trash;
                if (graveyard)
                        *t++ = graveyard;
                if (trash[0] && store_delete_later(m, trash) < 0)
                        for (size_t i = 0; trash[i]; i++)
                                (void) rm_rf(trash[i]);
        }

        for (size_t i = 0; i < m->n_containers; i++)
                if (m->containers[i] == c) {
                        memmove(m->containers + i, m->containers + i + 1,
                                (m->n_containers - i - 1) * sizeof *m->containers);
                        m->n_containers--;
                        c->removed = true;
                        container_unref(c);
                        break;
                }
        return 0;
}

static int compare_created(const void *a, const void *b) {
        const Container *x = *(Container *const *) a, *y = *(Container *const *) b;

        if (x->created_at != y->created_at)
                return x->created_at < y->created_at ? -1 : 1;
        return strcmp(x->id, y->id);
}

int manager_scan(Manager *m) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        d = opendir(m->containers_dir);
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                _cleanup_(container_unrefp) Container *c = NULL;

                if (de->d_name[0] == '.') {
                        /* Leftovers of an interrupted removal. */
                        if (strncmp(de->d_name, ".removed-", 9) == 0) {
                                _cleanup_free_ char *p = NULL;
                                if (asprintf(&p, "%s/%s", m->containers_dir, de->d_name) >= 0)
                                        (void) rm_rf(p);
                        }
                        continue;
                }
                if (!container_id_is_valid(de->d_name))
                        continue;
                r = container_load(m, de->d_name, &c);
                if (r < 0)
                        return r;
                r = manager_add_container(m, c);
                if (r < 0)
                        return r;
        }
        if (m->n_containers > 1)
                qsort(m->containers, m->n_containers, sizeof *m->containers, compare_created);
        return 0;
}

const char *container_display_status(Container *c) {
        if (c->status == CONTAINER_STATUS_RUNNING && c->paused)
                return "paused";
        return container_status_to_string(c->status);
}

json_t *container_to_json(Container *c) {
        json_t *process = json_object_get(c->config, "process");
        json_t *j;

        j = json_pack("{s:s, s:s, s:O?, s:O?, s:O?, s:o, s:o, s:o, s:o, s:o, s:o, s:O?, s:O?, s:o}", "id",
                      c->id, "status", container_display_status(c), "image",
                      json_object_get(c->config, "image"), "rootfs", json_object_get(c->config, "rootfs"),
                      "command", json_object_get(process, "args"), "createdAt", date_or_null(c->created_at),
                      "startedAt", date_or_null(c->started_at), "exitCode",
                      c->exit_code >= 0 ? json_integer(c->exit_code) : json_null(), "exitedAt",
                      date_or_null(c->exited_at), "pid", c->pid > 0 ? json_integer(c->pid) : json_null(),
                      "initPid", c->init_pid > 0 ? json_integer(c->init_pid) : json_null(), "labels",
                      json_object_get(c->config, "labels"), "configuration", c->config, "error",
                      c->broken_reason ? json_string(c->broken_reason)
                      : c->last_error  ? json_string(c->last_error)
                                       : json_null());
        return j;
}
