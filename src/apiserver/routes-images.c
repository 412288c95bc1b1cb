/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image routes of container-apiserver and the image side of run/create/rm (docs/apiserver.md,
 * docs/images.md). The store is $ROOT/images; handlers run serially on the event loop, so loads and
 * saves block other requests while they run (see "Known limits" in docs/apiserver.md). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apiserver.h"

/* What the container sees when neither the image nor -e sets PATH (docker's default). */
#define IMAGE_DEFAULT_PATH_ENV "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Refs one save request may name. */
#define IMAGE_SAVE_REFS_MAX 256u

static char *container_rootfs_path(Container *c) {
        char *p;

        if (asprintf(&p, "%s/rootfs", c->dir) < 0)
                return NULL;
        return p;
}

bool container_uses_image(Container *c) {
        return c->config && json_is_true(json_object_get(c->config, "imageRootfs"));
}

int container_mount_image_rootfs(Container *c) {
        Manager *m = c->manager;
        _cleanup_free_ char *target = container_rootfs_path(c);
        const char *ref;
        struct stat st_dir, st_target;
        int r;

        if (!target)
                return -ENOMEM;
        /* The digest, not the name: the name may have moved to another image since create. */
        ref = json_string_value(json_object_get(c->config, "imageDigest"));
        if (!ref)
                return -EBADMSG;
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        if (stat(c->dir, &st_dir) < 0 || stat(target, &st_target) < 0)
                return negative_errno();
        if (st_dir.st_dev != st_target.st_dev)
                return 0; /* still mounted (e.g. from before an API server restart) */
        r = image_store_mount_rootfs(
                m->images, ref, c->id, target,
                (json_is_true(json_object_get(c->config, "readOnlyRoot")) ? IMAGE_MOUNT_READ_ONLY : 0) |
                        /* removed on exit: its upper layer is never needed after a crash */
                        (container_is_kept(c) ? 0 : IMAGE_MOUNT_VOLATILE));
        if (r < 0)
                fprintf(stderr, "container-apiserver: %s: %s\n", c->id, image_store_last_error(m->images));
        return r;
}

/* Copies a JSON array of strings into a NULL-terminated vector (borrowed strings). */
static int strv_from_json(json_t *a, const char ***ret) {
        const char **l;
        size_t i;
        json_t *v;

        if (!a || json_is_null(a)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_array(a))
                return -EINVAL;
        l = calloc(json_array_size(a) + 1, sizeof *l);
        if (!l)
                return -ENOMEM;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v)) {
                        free(l);
                        return -EINVAL;
                }
                l[i] = json_string_value(v);
        }
        *ret = l;
        return 0;
}

static bool strv_has_key(char *const *l, const char *key) {
        for (size_t i = 0; l && l[i]; i++)
                if (strncmp(l[i], key, strlen(key)) == 0)
                        return true;
        return false;
}

int image_prepare_config(Manager *m, const char *id, json_t *cfg, char *err, size_t errsize) {
        _cleanup_(image_config_freep) ImageConfig *image = NULL, *merged = NULL;
        _cleanup_(image_strv_freep) char **argv = NULL;
        _cleanup_free_ const char **args = NULL, **env = NULL;
        _cleanup_free_ char *digest = NULL, *rootfs = NULL;
        json_t *process = json_object_get(cfg, "process"), *v;
        const char *ref = json_string_value(json_object_get(cfg, "image"));
        ImageOverrides o = {};
        int r;

        if (!json_is_object(process)) {
                snprintf(err, errsize, "process must be an object");
                return -EINVAL;
        }
        if (strv_from_json(json_object_get(process, "args"), &args) < 0 ||
            strv_from_json(json_object_get(process, "env"), &env) < 0) {
                snprintf(err, errsize, "process.args and process.env must be arrays of strings");
                return -EINVAL;
        }
        v = json_object_get(cfg, "entrypoint");
        if (v && !json_is_null(v) && !json_is_string(v)) {
                snprintf(err, errsize, "entrypoint must be a string");
                return -EINVAL;
        }
        o = (ImageOverrides){
                .entrypoint = json_string_value(v),
                .args = (char *const *) args,
                .env = (char *const *) env,
                .working_dir = json_string_value(json_object_get(process, "cwd")),
                .user = json_string_value(json_object_get(process, "user")),
                .stop_signal = json_string_value(json_object_get(cfg, "stopSignal")),
        };

        r = image_store_resolve(m->images, ref, &digest);
        if (r < 0) {
                snprintf(err, errsize, "image %s: %s", ref,
                         r == -ENOENT     ? "no such image (load it with container image load)"
                         : r == -ENOTUNIQ ? "ambiguous image ID prefix"
                         : image_store_last_error(m->images)[0] ? image_store_last_error(m->images)
                                                                : strerror(-r));
                return r;
        }
        r = image_store_get_config(m->images, digest, &image);
        if (r < 0) {
                snprintf(err, errsize, "image %s: reading its config: %s", ref,
                         image_store_last_error(m->images)[0] ? image_store_last_error(m->images)
                                                              : strerror(-r));
                return r;
        }
        r = image_config_merge(image, &o, &merged, &argv);
        if (r == -ENOEXEC) {
                snprintf(err, errsize, "image %s: no command specified", ref);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(err, errsize, "image %s: merging its config: %s", ref, strerror(-r));
                return r;
        }

        /* The merged process replaces what the CLI sent; inspect shows what runs. */
        {
                _cleanup_(json_decrefp) json_t *jargs = image_strv_to_json(argv),
                                               *jenv = image_strv_to_json(merged->env);

                if (!jargs || !jenv)
                        return -ENOMEM;
                if (!strv_has_key(merged->env, "PATH=") &&
                    json_array_insert_new(jenv, 0, json_string(IMAGE_DEFAULT_PATH_ENV)) < 0)
                        return -ENOMEM;
                if (json_object_set(process, "args", jargs) < 0 ||
                    json_object_set(process, "env", jenv) < 0 ||
                    json_object_set_new(process, "cwd", json_string(merged->working_dir ?: "/")) < 0)
                        return -ENOMEM;
        }
        if (merged->user && merged->user[0] &&
            json_object_set_new(process, "user", json_string(merged->user)) < 0)
                return -ENOMEM;
        if (asprintf(&rootfs, "%s/%s/rootfs", m->containers_dir, id) < 0)
                return -ENOMEM;
        if (json_object_del(cfg, "entrypoint") < 0 && json_object_get(cfg, "entrypoint"))
                return -ENOMEM;
        if (json_object_set_new(cfg, "rootfs", json_string(rootfs)) < 0 ||
            json_object_set_new(cfg, "imageDigest", json_string(digest)) < 0 ||
            json_object_set_new(cfg, "imageRootfs", json_true()) < 0)
                return -ENOMEM;
        if (merged->stop_signal &&
            json_object_set_new(cfg, "stopSignal", json_string(merged->stop_signal)) < 0)
                return -ENOMEM;

        /* The image's labels join the container's; a --label of the same key wins (docker). */
        json_t *labels = json_object_get(cfg, "labels");
        if (!json_is_object(labels)) {
                labels = json_object();
                if (!labels || json_object_set_new(cfg, "labels", labels) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; merged->labels && merged->labels[i]; i++) {
                const char *kv = merged->labels[i], *eq = strchr(kv, '=');
                _cleanup_free_ char *key = eq ? strndup(kv, (size_t) (eq - kv)) : strdup(kv);
                if (!key)
                        return -ENOMEM;
                if (!json_object_get(labels, key) &&
                    json_object_set_new(labels, key, json_string(eq ? eq + 1 : "")) < 0)
                        return -ENOMEM;
        }
        /* Exposed ports are recorded for inspect (publishing them needs the network service). */
        if (merged->exposed_ports) {
                json_t *ports = image_strv_to_json(merged->exposed_ports);
                if (!ports || json_object_set_new(cfg, "exposedPorts", ports) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* ---- routes ---- */

/* error: the store's explanation ("" or NULL: none, strerror() is used). */
static int reply_store_error_text(cxpc_connection *conn, cxpc_object *m, const char *what, const char *ref,
                                  int r, const char *e) {
        if (r == -ENOENT && ref)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_NOT_FOUND, "%s: no such image: %s",
                                                   what, ref);
        if (r == -ENOTUNIQ)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "%s %s: ambiguous image ID prefix", what, ref ?: "");
        return cxpc_connection_reply_error(conn, m, cxpc_error_code_from_errno(-r), "%s%s%s: %s", what,
                                           ref ? " " : "", ref ?: "", e && e[0] ? e : strerror(-r));
}

static int reply_store_error(cxpc_connection *conn, cxpc_object *m, Manager *mgr, const char *what,
                             const char *ref, int r) {
        return reply_store_error_text(conn, m, what, ref, r, image_store_last_error(mgr->images));
}

static json_t *image_info_to_json(const ImageInfo *i) {
        const char *hex = i->config_digest ? strchr(i->config_digest, ':') : NULL;
        char id[13] = "";

        if (hex)
                snprintf(id, sizeof id, "%s", hex + 1);
        return json_pack("{s:s, s:s, s:s?, s:o, s:s?, s:I, s:I, s:I}", "id", id, "digest", i->digest,
                         "configDigest", i->config_digest, "names", image_strv_to_json(i->names), "created",
                         i->created, "size", (json_int_t) i->size, "loadedAt",
                         (json_int_t) (i->loaded_usec / 1000000u), "containers",
                         (json_int_t) i->n_containers);
}

static int list_json(Manager *mgr, char *const *only, json_t **ret) {
        _cleanup_(json_decrefp) json_t *a = json_array();
        ImageInfo *infos = NULL;
        size_t n = 0;
        int r;

        if (!a)
                return -ENOMEM;
        r = image_store_list(mgr->images, &infos, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                bool want = !only;
                for (size_t k = 0; only && only[k]; k++)
                        if (streq(only[k], infos[i].digest))
                                want = true;
                if (want && json_array_append_new(a, image_info_to_json(&infos[i])) < 0) {
                        image_info_free_many(infos, n);
                        return -ENOMEM;
                }
        }
        image_info_free_many(infos, n);
        *ret = TAKE_PTR(a);
        return 0;
}

static void on_load_done(Manager *mgr, cxpc_connection *conn, cxpc_object *m, int result, const char *error,
                         char *const *digests, const ImageLoadStats *st) {
        _cleanup_(json_decrefp) json_t *loaded = NULL;
        int r;

        if (result < 0) {
                (void) reply_store_error_text(conn, m, "loading the image archive", NULL, result, error);
                return;
        }
        /* One line per load in the log: where the time went (docs/images.md, "Load"). */
        fprintf(stderr,
                "container-apiserver: image load: %d image(s), %.1f MiB in %.0f ms (read+hash %.0f ms, "
                "verify %.0f ms of which waiting for layers %.0f ms and syncing %.0f ms, commit %.0f ms; "
                "%u layer(s) unpacked by %u thread(s) in %.0f ms of work)\n",
                result, (double) st->archive_bytes / 1048576.0, (double) st->total_usec / 1e3,
                (double) st->stage_usec / 1e3, (double) st->verify_usec / 1e3,
                (double) st->unpack_wait_usec / 1e3, (double) st->sync_usec / 1e3,
                (double) st->commit_usec / 1e3, st->layers_unpacked, st->threads,
                (double) st->unpack_usec / 1e3);
        r = list_json(mgr, digests, &loaded);
        if (r < 0) {
                (void) reply_store_error(conn, m, mgr, "listing the images loaded", NULL, r);
                return;
        }
        (void) reply_json(conn, m, "images", loaded);
}

static int route_image_load(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_close_ int fd = -EBADF;
        const char *name = NULL;
        int r;

        if (cxpc_dict_dup_fd(m, "fd", &fd) < 0)
                return cxpc_connection_reply_error(
                        conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                        "image load: \"fd\" must be the archive's file descriptor");
        (void) cxpc_dict_get_string(m, "name", &name);
        r = store_job_start(mgr, STORE_JOB_LOAD, conn, m, fd, name, NULL, on_load_done);
        if (r < 0)
                return reply_store_error_text(conn, m, "loading the image archive", NULL, r, NULL);
        return 0; /* answered by on_load_done() */
}

static int route_image_list(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        _cleanup_(json_decrefp) json_t *a = NULL;
        int r;

        r = list_json(userdata, NULL, &a);
        if (r < 0)
                return reply_store_error(conn, m, userdata, "listing images", NULL, r);
        return reply_json(conn, m, "images", a);
}

static int get_ref(cxpc_connection *conn, cxpc_object *m, const char *key, const char **ret) {
        if (cxpc_dict_get_string(m, key, ret) < 0 || !(*ret)[0] || strlen(*ret) > IMAGE_NAME_MAX) {
                (void) cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "missing or invalid image reference \"%s\"", key);
                return -EINVAL;
        }
        return 0;
}

static int route_image_remove(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        const char *ref;
        bool force = false;
        int r;

        if (get_ref(conn, m, "ref", &ref) < 0)
                return 0;
        (void) cxpc_dict_get_bool(m, "force", &force);
        r = image_store_remove(mgr->images, ref, force ? IMAGE_REMOVE_FORCE : 0);
        if (r == -EBUSY)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_STATE,
                                                   "removing image %s: containers use it (remove them, or "
                                                   "use image rm -f)",
                                                   ref);
        if (r < 0)
                return reply_store_error(conn, m, mgr, "removing image", ref, r);
        return reply_empty(conn, m);
}

static int route_image_inspect(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *ref;
        int r;

        if (get_ref(conn, m, "ref", &ref) < 0)
                return 0;
        r = image_store_inspect(mgr->images, ref, &j);
        if (r < 0)
                return reply_store_error(conn, m, mgr, "inspecting image", ref, r);
        return reply_json(conn, m, "image", j);
}

static int route_image_tag(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        const char *ref, *name;
        int r;

        if (get_ref(conn, m, "ref", &ref) < 0 || get_ref(conn, m, "name", &name) < 0)
                return 0;
        r = image_store_tag(mgr->images, ref, name);
        if (r < 0)
                return reply_store_error(conn, m, mgr, "tagging image", ref, r);
        r = cxpc_reply_new(&reply);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

static int route_image_prune(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        uint64_t freed = 0;
        bool all = false;
        int r, n;

        (void) cxpc_dict_get_bool(m, "all", &all);
        n = image_store_prune(mgr->images, all ? IMAGE_PRUNE_ALL : 0, &freed);
        if (n < 0)
                return reply_store_error(conn, m, mgr, "pruning images", NULL, n);
        r = cxpc_reply_new(&reply);
        if (r >= 0)
                r = cxpc_dict_set_int64(reply, "removed", n);
        if (r >= 0)
                r = cxpc_dict_set_int64(reply, "freedBytes", (int64_t) freed);
        if (r < 0)
                return r;
        return cxpc_connection_reply(conn, m, reply);
}

static void on_save_done(Manager *mgr, cxpc_connection *conn, cxpc_object *m, int result, const char *error,
                         char *const *digests, const ImageLoadStats *st) {
        if (result < 0)
                (void) reply_store_error_text(conn, m, "saving images", NULL, result, error);
        else
                (void) reply_empty(conn, m);
}

static int route_image_save(cxpc_connection *conn, cxpc_object *m, void *userdata) {
        Manager *mgr = userdata;
        _cleanup_(json_decrefp) json_t *refs = NULL;
        _cleanup_free_ const char **l = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        cxpc_object *o = cxpc_dict_get(m, "refs");
        int r;

        if (cxpc_dict_dup_fd(m, "fd", &fd) < 0)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "image save: \"fd\" must be the output file descriptor");
        if (cxpc_array_get_count(o) == 0 || cxpc_array_get_count(o) > IMAGE_SAVE_REFS_MAX)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "image save: \"refs\" must name 1 to %u images",
                                                   IMAGE_SAVE_REFS_MAX);
        r = cxpc_object_to_json(o, 0, &text);
        if (r < 0)
                return r;
        refs = json_loads(text, 0, NULL);
        if (strv_from_json(refs, &l) < 0 || !l)
                return cxpc_connection_reply_error(conn, m, CXPC_ERROR_INVALID_ARGUMENT,
                                                   "image save: \"refs\" must be strings");
        r = store_job_start(mgr, STORE_JOB_SAVE, conn, m, fd, NULL, (char *const *) l, on_save_done);
        if (r < 0)
                return reply_store_error_text(conn, m, "saving images", NULL, r, NULL);
        return 0; /* answered by on_save_done() */
}

int manager_setup_image_routes(Manager *mgr) {
        static const struct {
                const char *route;
                cxpc_route_handler_t handler;
        } table[] = {
                {APISERVER_ROUTE_IMAGE_LOAD, route_image_load},
                {APISERVER_ROUTE_IMAGE_LIST, route_image_list},
                {APISERVER_ROUTE_IMAGE_REMOVE, route_image_remove},
                {APISERVER_ROUTE_IMAGE_INSPECT, route_image_inspect},
                {APISERVER_ROUTE_IMAGE_TAG, route_image_tag},
                {APISERVER_ROUTE_IMAGE_PRUNE, route_image_prune},
                {APISERVER_ROUTE_IMAGE_SAVE, route_image_save},
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(table); i++) {
                r = cxpc_router_add(mgr->router, table[i].route, table[i].handler, mgr);
                if (r < 0)
                        return r;
        }
        return 0;
}
