/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "image-internal.h"

#define STALE_STAGING_PREFIX "load-"
/* Directories of removed containers, moved aside for their remover (store_unref_container_deferred). */
#define STALE_REMOVED_PREFIX "removed-"

_public_ int image_store_open(const char *root, ImageStore **ret) {
        _cleanup_(image_store_freep) ImageStore *s = NULL;
        int r;

        assert_return(root && *root, -EINVAL);
        assert_return(ret, -EINVAL);

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->root_fd = -EBADF;
        s->root = strdup(root);
        if (!s->root)
                return -ENOMEM;
        r = mkdir_p_at(AT_FDCWD, root, 0700);
        if (r < 0)
                return r;
        s->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->root_fd < 0)
                return -errno;
        /* The layers are overlay lower directories: the path in the mount options must match the fd. */
        if (root[0] != '/') {
                char *abs = realpath(root, NULL);
                if (!abs)
                        return -errno;
                free(s->root);
                s->root = abs;
        }
        FOREACH_STORE_DIR(d) {
                r = mkdir_p_at(s->root_fd, d, 0700);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

_public_ ImageStore *image_store_free(ImageStore *s) {
        if (!s)
                return NULL;
        safe_close(s->root_fd);
        free(s->root);
        free(s);
        return NULL;
}

_public_ const char *image_store_last_error(ImageStore *s) {
        return s ? s->error : "";
}

_public_ const char *image_store_root(ImageStore *s) {
        return s ? s->root : NULL;
}

int store_lock(ImageStore *s) {
        int fd;

        fd = openat(s->root_fd, IMAGE_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX) < 0) {
                if (errno != EINTR) {
                        int r = -errno;
                        safe_close(fd);
                        return r;
                }
        }
        return fd;
}

int store_index_load(ImageStore *s, json_t **ret) {
        json_t *j = NULL;
        int r;

        r = json_load_at(s->root_fd, IMAGE_INDEX_FILE, &j);
        if (r == -ENOENT) {
                j = json_pack("{s:i, s:{}}", "schemaVersion", IMAGE_INDEX_SCHEMA, "images");
                if (!j)
                        return -ENOMEM;
        } else if (r < 0)
                return store_error(s, r, "cannot read %s/%s", s->root, IMAGE_INDEX_FILE);
        if (!json_is_object(json_object_get(j, "images"))) {
                json_decref(j);
                return store_error(s, -EBADMSG, "%s/%s is malformed", s->root, IMAGE_INDEX_FILE);
        }
        *ret = j;
        return 0;
}

int store_index_save(ImageStore *s, json_t *index) {
        int r = json_save_at(s->root_fd, IMAGE_INDEX_FILE, index);
        if (r < 0)
                return store_error(s, r, "cannot write %s/%s", s->root, IMAGE_INDEX_FILE);
        return 0;
}

static json_t *index_images(json_t *index) {
        return json_object_get(index, "images");
}

static void image_drop_name(json_t *img, const char *name) {
        json_t *names = json_object_get(img, "names");
        size_t i;
        json_t *v;

        json_array_foreach(names, i, v) if (streq(json_string_value(v), name)) {
                json_array_remove(names, i);
                return;
        }
}

void index_set_name(json_t *index, const char *digest, const char *name) {
        const char *k;
        json_t *img, *names;

        json_object_foreach(index_images(index), k, img) image_drop_name(img, name);
        img = json_object_get(index_images(index), digest);
        names = json_object_get(img, "names");
        if (json_is_array(names))
                (void) json_array_append_new(names, json_string(name));
}

/* ---- container references ---- */

static bool container_id_valid(const char *id) {
        size_t n = id ? strlen(id) : 0;

        if (n == 0 || n > IMAGE_CONTAINER_ID_MAX || id[0] == '.')
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '_' || *p == '.'))
                        return false;
        return true;
}

/* Calls cb for every container reference file (containers/<id>/ref.json). */
static int foreach_container_ref(ImageStore *s, int (*cb)(const char *id, json_t *ref, void *ud), void *ud) {
        int fd;
        DIR *d;
        struct dirent *de;
        int r = 0;

        fd = openat(s->root_fd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        while ((de = readdir(d))) {
                _cleanup_(json_decrefp) json_t *ref = NULL;
                char p[PATH_MAX];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/ref.json", de->d_name);
                if (json_load_at(dirfd(d), p, &ref) < 0)
                        continue;
                r = cb(de->d_name, ref, ud);
                if (r != 0)
                        break;
        }
        closedir(d);
        return r;
}

static int count_users_cb(const char *id, json_t *ref, void *ud) {
        json_t *counts = ud;
        const char *img = json_string_value(json_object_get(ref, "image"));

        if (img)
                json_object_set_new(counts, img,
                                    json_integer(json_integer_value(json_object_get(counts, img)) + 1));
        return 0;
}

/* {manifest digest: number of containers} */
static json_t *container_counts(ImageStore *s) {
        json_t *counts = json_object();

        if (counts)
                (void) foreach_container_ref(s, count_users_cb, counts);
        return counts;
}

/* Everything an image needs, as blob digests and layer diff IDs. */
static json_t *image_ref_record(const char *digest, json_t *img) {
        json_t *ref, *blobs, *layers, *l;
        size_t i;

        ref = json_pack("{s:s, s:[s, O], s:[]}", "image", digest, "blobs", digest,
                        json_object_get(img, "config"), "layers");
        if (!ref)
                return NULL;
        blobs = json_object_get(ref, "blobs");
        layers = json_object_get(ref, "layers");
        json_array_foreach(json_object_get(img, "layers"), i, l) {
                json_array_append(blobs, json_object_get(l, "digest"));
                json_array_append(layers, json_object_get(l, "diff_id"));
        }
        return ref;
}

static void mark_record(json_t *rec, json_t *blobs, json_t *layers) {
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(rec, "blobs"), i, v) if (json_is_string(v))
                json_object_set_new(blobs, json_string_value(v), json_true());
        json_array_foreach(json_object_get(rec, "layers"), i, v) if (json_is_string(v))
                json_object_set_new(layers, json_string_value(v), json_true());
}

typedef struct MarkSets {
        json_t *blobs, *layers;
} MarkSets;

static int mark_container_cb(const char *id, json_t *ref, void *ud) {
        MarkSets *m = ud;
        mark_record(ref, m->blobs, m->layers);
        return 0;
}

static bool pid_alive(pid_t pid) {
        return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Staging directories are named load-<pid>-XXXXXX, moved-aside container directories
 * removed-<pid>-<id>-<random>; one whose loader or remover is gone is garbage. */
static void gc_staging(ImageStore *s, uint64_t *freed) {
        int fd;
        DIR *d;
        struct dirent *de;

        fd = openat(s->root_fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                long pid;

                const char *rest;
                if (strncmp(de->d_name, STALE_STAGING_PREFIX, strlen(STALE_STAGING_PREFIX)) == 0)
                        rest = de->d_name + strlen(STALE_STAGING_PREFIX);
                else if (strncmp(de->d_name, STALE_REMOVED_PREFIX, strlen(STALE_REMOVED_PREFIX)) == 0)
                        rest = de->d_name + strlen(STALE_REMOVED_PREFIX);
                else
                        continue;
                pid = strtol(rest, NULL, 10);
                if (pid_alive((pid_t) pid))
                        continue;
                (void) rm_rf_at(dirfd(d), de->d_name, freed);
        }
        closedir(d);
}

static void gc_dir(int root_fd, const char *dir, json_t *keep, const char *key_prefix, uint64_t *freed) {
        int fd;
        DIR *d;
        struct dirent *de;

        fd = openat(root_fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                char key[sizeof(de->d_name) + 16];

                if (de->d_name[0] == '.')
                        continue;
                snprintf(key, sizeof(key), "%s%s", key_prefix, de->d_name);
                if (json_object_get(keep, key))
                        continue;
                (void) rm_rf_at(dirfd(d), de->d_name, freed);
        }
        closedir(d);
}

int store_gc_locked(ImageStore *s, json_t *index, uint64_t *ret_freed) {
        _cleanup_(json_decrefp) json_t *blobs = json_object(), *layers = json_object();
        MarkSets m = {.blobs = blobs, .layers = layers};
        uint64_t freed = 0;
        const char *k;
        json_t *img;
        int r;

        if (!blobs || !layers)
                return -ENOMEM;
        json_object_foreach(index_images(index), k, img) {
                _cleanup_(json_decrefp) json_t *rec = image_ref_record(k, img);
                if (!rec)
                        return -ENOMEM;
                mark_record(rec, blobs, layers);
        }
        r = foreach_container_ref(s, mark_container_cb, &m);
        if (r < 0)
                return r;
        gc_dir(s->root_fd, "blobs/sha256", blobs, DIGEST_PREFIX, &freed);
        gc_dir(s->root_fd, "layers", layers, DIGEST_PREFIX, &freed);
        gc_staging(s, &freed);
        if (ret_freed)
                *ret_freed = freed;
        return 0;
}

_public_ int image_store_gc(ImageStore *s, uint64_t *ret_freed) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL;
        int r;

        assert_return(s, -EINVAL);
        s->error[0] = '\0';
        lock = store_lock(s);
        if (lock < 0)
                return lock;
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        return store_gc_locked(s, index, ret_freed);
}

/* ---- lookup ---- */

static bool hex_prefix(const char *p) {
        if (strlen(p) < 4 || strlen(p) > SHA256_HEX_LEN)
                return false;
        for (; *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

static bool image_has_name(json_t *img, const char *name) {
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(img, "names"), i,
                           v) if (streq_ptr(json_string_value(v), name)) return true;
        return false;
}

/* Finds ref in the index; *ret_by_name tells whether it matched a name (and which). */
static int index_resolve(ImageStore *s, json_t *index, const char *ref, const char **ret_digest,
                         char **ret_name) {
        json_t *images = index_images(index), *img;
        _cleanup_free_ char *name = NULL, *local = NULL;
        const char *k, *found = NULL, *hex = ref;
        unsigned matches = 0;

        if (!ref || !*ref)
                return -EINVAL;
        if (digest_valid(ref) && json_object_get(images, ref)) {
                *ret_digest = json_object_iter_key(json_object_iter_at(images, ref));
                if (ret_name)
                        *ret_name = NULL;
                return 0;
        }
        if (image_name_normalize(ref, &name) >= 0) {
                /* podman names local images localhost/NAME: let "NAME" find them too. */
                if (asprintf(&local, "localhost/%s", name) < 0)
                        return -ENOMEM;
                for (int pass = 0; pass < 2; pass++)
                        json_object_foreach(images, k,
                                            img) if (image_has_name(img, pass == 0 ? name : local)) {
                                *ret_digest = k;
                                if (ret_name)
                                        *ret_name = strdup(pass == 0 ? name : local);
                                return 0;
                        }
        }
        if (strncmp(hex, DIGEST_PREFIX, strlen(DIGEST_PREFIX)) == 0)
                hex += strlen(DIGEST_PREFIX);
        if (!hex_prefix(hex))
                return store_error(s, -ENOENT, "no such image: %s", ref);
        json_object_foreach(images, k, img) {
                const char *cfg = json_string_value(json_object_get(img, "config"));
                if (strncmp(digest_hex(k), hex, strlen(hex)) == 0 ||
                    (cfg && digest_valid(cfg) && strncmp(digest_hex(cfg), hex, strlen(hex)) == 0)) {
                        if (found != k)
                                matches++;
                        found = k;
                }
        }
        if (matches == 0)
                return store_error(s, -ENOENT, "no such image: %s", ref);
        if (matches > 1)
                return store_error(s, -ENOTUNIQ, "image reference %s is ambiguous", ref);
        *ret_digest = found;
        if (ret_name)
                *ret_name = NULL;
        return 0;
}

_public_ int image_store_resolve(ImageStore *s, const char *ref, char **ret_digest) {
        _cleanup_(json_decrefp) json_t *index = NULL;
        const char *d;
        char *c;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ref, -EINVAL);
        s->error[0] = '\0';
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        r = index_resolve(s, index, ref, &d, NULL);
        if (r < 0)
                return r;
        if (!ret_digest)
                return 0;
        c = strdup(d);
        if (!c)
                return -ENOMEM;
        *ret_digest = c;
        return 0;
}

/* ---- list / inspect ---- */

_public_ void image_info_free_many(ImageInfo *infos, size_t n) {
        for (size_t i = 0; infos && i < n; i++) {
                free(infos[i].digest);
                free(infos[i].config_digest);
                image_strv_free(infos[i].names);
                free(infos[i].created);
        }
        free(infos);
}

static int info_fill(ImageInfo *info, const char *digest, json_t *img, json_t *counts) {
        const char *created = json_string_value(json_object_get(img, "created"));

        info->digest = strdup(digest);
        info->config_digest = strdup(json_string_value(json_object_get(img, "config")) ?: "");
        info->names = strv_from_json(json_object_get(img, "names"));
        info->created = created ? strdup(created) : NULL;
        info->size = (uint64_t) json_integer_value(json_object_get(img, "size"));
        info->loaded_usec = (uint64_t) json_integer_value(json_object_get(img, "loaded"));
        info->n_containers = (unsigned) json_integer_value(json_object_get(counts, digest));
        if (!info->digest || !info->config_digest || !info->names || (created && !info->created))
                return -ENOMEM;
        return 0;
}

_public_ int image_store_list(ImageStore *s, ImageInfo **ret, size_t *ret_n) {
        _cleanup_(json_decrefp) json_t *index = NULL, *counts = NULL;
        ImageInfo *infos;
        const char *k;
        json_t *img;
        size_t n = 0;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ret && ret_n, -EINVAL);
        s->error[0] = '\0';
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        counts = container_counts(s);
        if (!counts)
                return -ENOMEM;
        infos = calloc(json_object_size(index_images(index)) + 1, sizeof(ImageInfo));
        if (!infos)
                return -ENOMEM;
        json_object_foreach(index_images(index), k, img) {
                r = info_fill(&infos[n++], k, img, counts);
                if (r < 0) {
                        image_info_free_many(infos, n);
                        return r;
                }
        }
        *ret = infos;
        *ret_n = n;
        return 0;
}

static int load_blob_json(ImageStore *s, const char *digest, json_t **ret) {
        char p[64 + DIGEST_LEN];

        if (!digest_valid(digest))
                return -EBADMSG;
        snprintf(p, sizeof(p), "blobs/sha256/%s", digest_hex(digest));
        return json_load_at(s->root_fd, p, ret);
}

/* The index, the image ref resolves to (its digest and index record) and its config blob. Starts
 * a public call: checks s and ref and clears the last error. */
static int image_load_config(ImageStore *s, const char *ref, json_t **ret_index, const char **ret_digest,
                             json_t **ret_image, json_t **ret_config) {
        _cleanup_(json_decrefp) json_t *index = NULL, *cfg = NULL;
        const char *digest, *cfgd;
        json_t *img;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ref, -EINVAL);
        s->error[0] = '\0';
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        r = index_resolve(s, index, ref, &digest, NULL);
        if (r < 0)
                return r;
        img = json_object_get(index_images(index), digest);
        cfgd = json_string_value(json_object_get(img, "config"));
        r = load_blob_json(s, cfgd, &cfg);
        if (r < 0)
                return store_error(s, r, "cannot read config %s of image %s", cfgd, ref);
        /* digest and img point into index, which the caller now owns. */
        *ret_digest = digest;
        *ret_image = img;
        *ret_config = TAKE_PTR(cfg);
        *ret_index = TAKE_PTR(index);
        return 0;
}

_public_ int image_store_inspect(ImageStore *s, const char *ref, json_t **ret) {
        _cleanup_(json_decrefp) json_t *index = NULL, *cfg = NULL, *out = NULL, *counts = NULL;
        const char *digest;
        json_t *img, *v, *layers;
        size_t i;
        int r;

        assert_return(ret, -EINVAL);
        r = image_load_config(s, ref, &index, &digest, &img, &cfg);
        if (r < 0)
                return r;
        counts = container_counts(s);
        layers = json_array();
        if (!counts || !layers)
                return -ENOMEM;
        json_array_foreach(json_object_get(img, "layers"), i, v)
                json_array_append(layers, json_object_get(v, "diff_id"));
        out = json_pack("{s:s, s:s, s:O, s:O*, s:I, s:I, s:O*, s:O*, s:O*, s:O*, s:O, s:O, s:I}", "Id",
                        json_string_value(json_object_get(img, "config")), "Digest", digest, "RepoTags",
                        json_object_get(img, "names"), "Created", json_object_get(cfg, "created"), "Size",
                        json_integer_value(json_object_get(img, "size")), "Loaded",
                        json_integer_value(json_object_get(img, "loaded")), "Architecture",
                        json_object_get(cfg, "architecture"), "Os", json_object_get(cfg, "os"), "Author",
                        json_object_get(cfg, "author"), "Config", json_object_get(cfg, "config"), "RootFS",
                        json_object_get(cfg, "rootfs") ?: json_null(), "Layers", layers, "Containers",
                        json_integer_value(json_object_get(counts, digest)));
        json_decref(layers);
        if (!out)
                return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

_public_ int image_store_get_config(ImageStore *s, const char *ref, ImageConfig **ret) {
        _cleanup_(json_decrefp) json_t *index = NULL, *cfg = NULL;
        const char *digest;
        json_t *img;
        int r;

        assert_return(ret, -EINVAL);
        r = image_load_config(s, ref, &index, &digest, &img, &cfg);
        if (r < 0)
                return r;
        return image_config_from_json(json_object_get(cfg, "config"), ret);
}

/* ---- tag / remove / prune ---- */

_public_ int image_store_tag(ImageStore *s, const char *ref, const char *new_name) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL;
        _cleanup_free_ char *name = NULL;
        const char *digest;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ref && new_name, -EINVAL);
        s->error[0] = '\0';
        r = image_name_normalize(new_name, &name);
        if (r < 0)
                return store_error(s, r, "invalid image name: %s", new_name);
        lock = store_lock(s);
        if (lock < 0)
                return lock;
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        r = index_resolve(s, index, ref, &digest, NULL);
        if (r < 0)
                return r;
        index_set_name(index, digest, name);
        return store_index_save(s, index);
}

_public_ int image_store_remove(ImageStore *s, const char *ref, unsigned flags) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL, *counts = NULL;
        _cleanup_free_ char *by_name = NULL, *digest = NULL;
        const char *d;
        json_t *img;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ref, -EINVAL);
        assert_return((flags & ~IMAGE_REMOVE_FORCE) == 0, -EINVAL);
        s->error[0] = '\0';
        lock = store_lock(s);
        if (lock < 0)
                return lock;
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        r = index_resolve(s, index, ref, &d, &by_name);
        if (r < 0)
                return r;
        digest = strdup(d);
        if (!digest)
                return -ENOMEM;
        img = json_object_get(index_images(index), digest);
        /* Untagging one of several names never removes anything else. */
        if (by_name && json_array_size(json_object_get(img, "names")) > 1) {
                image_drop_name(img, by_name);
                return store_index_save(s, index);
        }
        counts = container_counts(s);
        if (!counts)
                return -ENOMEM;
        if (json_integer_value(json_object_get(counts, digest)) > 0 && !(flags & IMAGE_REMOVE_FORCE))
                return store_error(s, -EBUSY, "image %s is in use by %lld container(s)", ref,
                                   (long long) json_integer_value(json_object_get(counts, digest)));
        json_object_del(index_images(index), digest);
        r = store_index_save(s, index);
        if (r < 0)
                return r;
        /* Containers still using a force-removed image keep their blobs and layers through their refs. */
        return store_gc_locked(s, index, NULL);
}

_public_ int image_store_prune(ImageStore *s, unsigned flags, uint64_t *ret_freed) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL, *counts = NULL;
        json_t *images, *img, *tmp;
        const char *k;
        int r, n = 0;

        assert_return(s, -EINVAL);
        assert_return((flags & ~IMAGE_PRUNE_ALL) == 0, -EINVAL);
        s->error[0] = '\0';
        lock = store_lock(s);
        if (lock < 0)
                return lock;
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        counts = container_counts(s);
        if (!counts)
                return -ENOMEM;
        images = index_images(index);
        json_object_foreach_safe(images, tmp, k, img) {
                if (json_integer_value(json_object_get(counts, k)) > 0)
                        continue;
                if (!(flags & IMAGE_PRUNE_ALL) && json_array_size(json_object_get(img, "names")) > 0)
                        continue;
                json_object_del(images, k);
                n++;
        }
        if (n > 0) {
                r = store_index_save(s, index);
                if (r < 0)
                        return r;
        }
        r = store_gc_locked(s, index, ret_freed);
        if (r < 0)
                return r;
        return n;
}

/* ---- container references ---- */

int store_ref_container_locked(ImageStore *s, json_t *index, const char *ref, const char *container_id,
                               char **ret_digest) {
        _cleanup_(json_decrefp) json_t *rec = NULL, *old = NULL;
        char dir[IMAGE_CONTAINER_ID_MAX + 32], path[PATH_MAX];
        const char *digest;
        int r;

        r = index_resolve(s, index, ref, &digest, NULL);
        if (r < 0)
                return r;
        snprintf(dir, sizeof(dir), "containers/%s", container_id);
        snprintf(path, sizeof(path), "%s/ref.json", dir);
        r = json_load_at(s->root_fd, path, &old);
        if (r >= 0) {
                if (!streq_ptr(json_string_value(json_object_get(old, "image")), digest))
                        return store_error(s, -EEXIST, "container %s already uses image %s", container_id,
                                           json_string_value(json_object_get(old, "image")) ?: "?");
        } else {
                rec = image_ref_record(digest, json_object_get(index_images(index), digest));
                if (!rec)
                        return -ENOMEM;
                if (mkdirat(s->root_fd, dir, 0700) < 0 && errno != EEXIST)
                        return -errno;
                r = json_save_at(s->root_fd, path, rec);
                if (r < 0)
                        return r;
        }
        if (ret_digest) {
                char *c = strdup(digest);
                if (!c)
                        return -ENOMEM;
                *ret_digest = c;
        }
        return 0;
}

_public_ int image_store_ref_container(ImageStore *s, const char *ref, const char *container_id) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ref, -EINVAL);
        assert_return(container_id_valid(container_id), -EINVAL);
        s->error[0] = '\0';
        lock = store_lock(s);
        if (lock < 0)
                return lock;
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        return store_ref_container_locked(s, index, ref, container_id, NULL);
}

_public_ int image_store_unref_container(ImageStore *s, const char *container_id) {
        _cleanup_close_ int lock = -EBADF, dfd = -EBADF;
        char dir[IMAGE_CONTAINER_ID_MAX + 32];
        int r;

        assert_return(s, -EINVAL);
        assert_return(container_id_valid(container_id), -EINVAL);
        s->error[0] = '\0';
        lock = store_lock(s);
        if (lock < 0)
                return lock;
        snprintf(dir, sizeof(dir), "containers/%s", container_id);
        dfd = openat(s->root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0)
                return errno == ENOENT ? 0 : -errno;
        /* Upper layer first: if it is still mounted somewhere, rm_rf refuses to cross into it and the
         * reference stays, so nothing the container still uses is collected. */
        FOREACH_CONTAINER_SUBDIR(sub) {
                r = rm_rf_at(dfd, sub, NULL);
                if (r < 0)
                        return store_error(s, r, "cannot remove %s/%s/%s", s->root, dir, sub);
        }
        if (unlinkat(dfd, "ref.json", 0) < 0 && errno != ENOENT)
                return -errno;
        r = rm_rf_at(s->root_fd, dir, NULL);
        if (r < 0)
                return store_error(s, r, "cannot remove %s/%s", s->root, dir);
        return 0;
}

int store_unref_container_deferred(ImageStore *s, const char *container_id, char **ret_trash) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_free_ char *trash = NULL;
        char dir[IMAGE_CONTAINER_ID_MAX + 32], name[IMAGE_CONTAINER_ID_MAX + 64];
        uint64_t rnd;
        int r;

        lock = store_lock(s);
        if (lock < 0)
                return lock;
        snprintf(dir, sizeof(dir), "containers/%s", container_id);
        r = openat(s->root_fd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (r < 0) {
                if (errno != ENOENT)
                        return -errno;
                *ret_trash = NULL;
                return 0;
        }
        {
                /* The reference goes now (the image may be removed right after); the files later. */
                _cleanup_close_ int dfd = r;
                if (unlinkat(dfd, "ref.json", 0) < 0 && errno != ENOENT)
                        return -errno;
        }
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
                rnd = (uint64_t) now_usec();
        snprintf(name, sizeof(name), "tmp/" STALE_REMOVED_PREFIX "%d-%s-%016" PRIx64, (int) getpid(),
                 container_id, rnd);
        if (mkdirat(s->root_fd, "tmp", 0700) < 0 && errno != EEXIST)
                return -errno;
        if (renameat(s->root_fd, dir, s->root_fd, name) < 0)
                return store_error(s, -errno, "cannot move %s/%s aside: %m", s->root, dir);
        if (asprintf(&trash, "%s/%s", s->root, name) < 0)
                return -ENOMEM;
        *ret_trash = TAKE_PTR(trash);
        return 0;
}

bool store_container_id_valid(const char *id) {
        return container_id_valid(id);
}
