/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Image store: content-addressed OCI blobs, unpacked layers shared between images, a name index,
 * per-container references and overlay root filesystems. See docs/images.md for the on-disk layout.
 *
 * Every function returns 0 (or a positive count) on success and a negative errno on failure; ret_*
 * out-parameters are written only on success. A store handle is not thread-safe; separate handles
 * (also in separate processes) on one root are safe: mutations of the index take an exclusive lock
 * on ROOT/lock. Errors that deserve a human explanation (bad archive, digest mismatch, hostile path)
 * are described by image_store_last_error(). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct ImageStore ImageStore;

/* Limits. */
#define IMAGE_LAYERS_MAX       128u                 /* layers per image */
#define IMAGE_JSON_MAX         (4u * 1024u * 1024u) /* manifests, configs, index files inside archives */
#define IMAGE_NAME_MAX         255u                 /* name:tag */
#define IMAGE_CONTAINER_ID_MAX 128u

int image_store_open(const char *root, ImageStore **ret);
ImageStore *image_store_free(ImageStore *s);
static inline void image_store_freep(ImageStore **s) {
        if (*s)
                (void) image_store_free(*s);
}

/* Human-readable reason for the last failure on this handle ("" when none). */
const char *image_store_last_error(ImageStore *s);
const char *image_store_root(ImageStore *s);

/* ---- load ---- */

/* Called while reading the archive: bytes consumed so far, total bytes (0 if unknown, e.g. a pipe). */
typedef void (*image_progress_fn)(uint64_t done, uint64_t total, void *userdata);

/* Where a load spent its time (wall clock, microseconds), for image-tool load --time and benchmarks. */
typedef struct ImageLoadStats {
        uint64_t stage_usec;  /* phase 1: reading the archive, hashing and writing every member */
        uint64_t verify_usec; /* phase 2: manifests, configs, descriptors; waiting for layer unpacking */
        uint64_t commit_usec; /* phase 3: renames into the store, index written and fsynced */
        uint64_t total_usec;
        uint64_t unpack_usec;      /* sum over layers of the time spent unpacking each (threads overlap) */
        uint64_t unpack_wait_usec; /* part of verify_usec spent waiting for unpacking to finish */
        uint64_t sync_usec;        /* syncfs and directory fsyncs (overlapping unpacking, mostly) */
        uint64_t archive_bytes;    /* bytes read from the input */
        uint64_t layer_bytes;      /* uncompressed bytes of the layers unpacked */
        unsigned layers_unpacked;  /* layers unpacked and committed */
        unsigned layers_discarded; /* unpacked ahead of time but not needed (another platform, say) */
        unsigned threads;          /* unpacking threads used */
} ImageLoadStats;

typedef struct ImageLoadOptions {
        image_progress_fn progress; /* optional */
        void *userdata;
        const char *default_name; /* name given to images the archive leaves unnamed (optional) */
        unsigned unpack_threads;  /* layers unpacked at once: 0 = one per online CPU (at most 4) */
        ImageLoadStats *stats;    /* optional: filled in on success */
} ImageLoadOptions;

/* Loads an OCI image archive or a docker-archive (tar, optionally gzip/zstd/xz compressed) from fd,
 * which is read sequentially (a pipe is fine). Either every image of the archive is committed, or
 * nothing is: no index entry, no blob, no layer remains of a failed or interrupted load (stale staging
 * directories of killed loaders are removed by image_store_gc()). On success *ret_digests (optional)
 * gets a NULL-terminated list of the manifest digests loaded (free with image_strv_free()), and the
 * number of images is returned. */
int image_store_load(ImageStore *s, int fd, const ImageLoadOptions *opts, char ***ret_digests);

/* ---- query ---- */

typedef struct ImageInfo {
        char *digest;          /* manifest digest, "sha256:<hex>": the image's identity in the store */
        char *config_digest;   /* "sha256:<hex>"; its first 12 hex digits are the docker-style ID */
        char **names;          /* NULL-terminated, "name:tag"; empty when dangling */
        char *created;         /* RFC 3339 from the config, or NULL */
        uint64_t size;         /* bytes of config + layer blobs */
        uint64_t loaded_usec;  /* CLOCK_REALTIME when committed */
        unsigned n_containers; /* containers holding a reference */
} ImageInfo;

void image_info_free_many(ImageInfo *infos, size_t n);

int image_store_list(ImageStore *s, ImageInfo **ret, size_t *ret_n);

/* Resolves a reference: "name[:tag]" (":latest" implied; "docker.io/library/" ignored), a manifest
 * digest "sha256:<hex>", or a unique prefix (>= 4 hex digits) of a manifest or config digest.
 * -ENOENT when nothing matches, -ENOTUNIQ when a prefix is ambiguous. */
int image_store_resolve(ImageStore *s, const char *ref, char **ret_digest);

/* docker-inspect-like JSON: Id, Digest, RepoTags, Created, Size, Architecture, Os, Config, RootFS,
 * Layers, Containers. */
int image_store_inspect(ImageStore *s, const char *ref, json_t **ret);

/* ---- image config ---- */

typedef struct ImageConfig {
        char **entrypoint; /* NULL-terminated; NULL when unset */
        char **cmd;
        char **env; /* "KEY=VALUE" */
        char *working_dir;
        char *user;
        char *stop_signal;
        char **exposed_ports; /* "80/tcp" */
        char **labels;        /* "key=value" */
} ImageConfig;

ImageConfig *image_config_free(ImageConfig *c);
static inline void image_config_freep(ImageConfig **c) {
        if (*c)
                (void) image_config_free(*c);
}
int image_store_get_config(ImageStore *s, const char *ref, ImageConfig **ret);
int image_config_from_json(json_t *oci_config,
                           ImageConfig **ret); /* the "config" object of an image config */
json_t *image_config_to_json(const ImageConfig *c);

/* What the CLI's run/create flags say; NULL / unset fields keep the image's value. */
typedef struct ImageOverrides {
        const char *entrypoint;  /* --entrypoint: replaces Entrypoint ("" = none) and clears Cmd */
        char *const *args;       /* arguments after IMAGE: replace Cmd (NULL or empty: keep) */
        char *const *env;        /* -e KEY=VALUE appends or overrides by KEY; -e KEY removes KEY */
        const char *working_dir; /* -w */
        const char *user;        /* -u */
        const char *stop_signal; /* --stop-signal */
} ImageOverrides;

/* Applies docker's merge rules. *ret_argv = entrypoint + cmd (-ENOEXEC when empty: nothing to run);
 * *ret_config gets the merged config (entrypoint/cmd as used, env merged, working_dir defaulted to
 * "/"). Either out-parameter may be NULL. */
int image_config_merge(const ImageConfig *image, const ImageOverrides *o, ImageConfig **ret_config,
                       char ***ret_argv);

/* ---- mutate ---- */

int image_store_tag(ImageStore *s, const char *ref, const char *new_name);

enum {
        IMAGE_REMOVE_FORCE = 1u << 0, /* remove even if containers use it (they keep working) */
};
/* By name: drops that name, the image goes when its last name goes. By digest or ID: drops the image
 * and all its names. -EBUSY if containers use it and not forced. Then collects garbage. */
int image_store_remove(ImageStore *s, const char *ref, unsigned flags);

enum {
        IMAGE_PRUNE_ALL = 1u << 0, /* every image no container uses, not only dangling ones */
};
/* Removes dangling (unnamed) images, or with IMAGE_PRUNE_ALL every unused image, then collects
 * garbage. Returns the number of images removed; *ret_freed (optional) gets the bytes freed. */
int image_store_prune(ImageStore *s, unsigned flags, uint64_t *ret_freed);

/* Removes blobs and layers no image and no container references, and staging left by dead loaders. */
int image_store_gc(ImageStore *s, uint64_t *ret_freed);

/* Writes the images (NULL-terminated refs) as one OCI image archive (uncompressed tar) to fd. */
int image_store_save(ImageStore *s, char *const *refs, int fd);

/* ---- containers ---- */

/* Records that container_id uses the image (its blobs and layers), so neither rm nor gc can take them
 * away. Idempotent for the same image; -EEXIST if the container already references another image. */
int image_store_ref_container(ImageStore *s, const char *ref, const char *container_id);
/* Drops the reference and the container's upper/work directories (the rootfs must be unmounted). */
int image_store_unref_container(ImageStore *s, const char *container_id);

enum {
        IMAGE_MOUNT_READ_ONLY = 1u << 0, /* lower layers only, no upper directory */
        /* overlay's "volatile": the upper layer is never synced, neither by the container's
         * fsync()/syncfs() nor at unmount, which otherwise syncs the whole filesystem the store is
         * on (tens of ms, more with other dirty data). For containers removed on exit, whose upper
         * layer cannot be needed after a crash. Ignored where the kernel lacks it (before 5.10). */
        IMAGE_MOUNT_VOLATILE = 1u << 1,
};
/* References the image for container_id (as image_store_ref_container()) and mounts its root
 * filesystem at target (an existing directory): overlay of the layers, top first, with
 * ROOT/containers/<id>/upper and work. */
int image_store_mount_rootfs(ImageStore *s, const char *ref, const char *container_id, const char *target,
                             unsigned flags);

enum {
        IMAGE_UMOUNT_REMOVE = 1u << 0, /* also image_store_unref_container() */
};
int image_store_umount_rootfs(ImageStore *s, const char *container_id, const char *target, unsigned flags);
/* Unmounts (as above) and drops the container's reference, but its directories (the upper layer:
 * any number of files the container wrote) are only moved aside, into the store's tmp/: *ret_trash
 * gets that directory's path for the caller to remove (rm -rf, in a thread, say), or NULL when
 * there was nothing to move. A leftover (its remover died) is removed by image_store_gc(). When
 * the unmount had to be lazy (something still uses the root filesystem) it removes synchronously,
 * as image_store_umount_rootfs(..., IMAGE_UMOUNT_REMOVE) does, and *ret_trash is NULL. */
int image_store_umount_rootfs_deferred(ImageStore *s, const char *container_id, const char *target,
                                       char **ret_trash);

/* Writes the tree under rootfs (a mounted container root) as a tar stream to fd; does not descend
 * into other mounts below it (/proc, /sys, volumes). */
int image_export_rootfs(const char *rootfs, int fd);

void image_strv_free(char **l);
/* A JSON array of the strings (an empty one for NULL); NULL on ENOMEM. */
json_t *image_strv_to_json(char *const *l);
static inline void image_strv_freep(char ***l) {
        image_strv_free(*l);
}
