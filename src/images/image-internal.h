/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "image-store.h"
#include "macro.h"

#define SHA256_HEX_LEN     64
#define DIGEST_PREFIX      "sha256:"
#define DIGEST_LEN         (sizeof(DIGEST_PREFIX) - 1 + SHA256_HEX_LEN)
#define IMAGE_INDEX_SCHEMA 1
#define IMAGE_COPY_BUFFER  (256u * 1024u)
#define IMAGE_LOCK_FILE    "lock"
#define IMAGE_INDEX_FILE   "index.json"

#define FOREACH_STRING(d, ...)                                                                        \
        for (const char *const *_l_##d = (const char *const[]){__VA_ARGS__, NULL}, *d; (d = *_l_##d); \
             _l_##d++)
#define FOREACH_STORE_DIR(d)        FOREACH_STRING(d, "blobs/sha256", "layers", "containers", "tmp")
#define FOREACH_CONTAINER_SUBDIR(d) FOREACH_STRING(d, "upper", "work", "lower")

struct ImageStore {
        char *root;
        int root_fd; /* O_PATH|O_DIRECTORY of the store root; every path below is resolved against it */
        char error[512];
};

/* Records a human-readable reason and returns r (a negative errno). */
int store_error(ImageStore *s, int r, const char *fmt, ...) _printf_(3, 4);

/* ---- util.c ---- */
typedef struct Sha256 {
        EVP_MD_CTX *ctx;
} Sha256;
int sha256_init(Sha256 *h);
void sha256_update(Sha256 *h, const void *p, size_t n);
/* Writes "sha256:<hex>" into out (DIGEST_LEN + 1 bytes) and frees the context. */
int sha256_final(Sha256 *h, char out[static DIGEST_LEN + 1]);
void sha256_done(Sha256 *h);

bool digest_valid(const char *d);      /* "sha256:" + 64 lowercase hex */
const char *digest_hex(const char *d); /* the hex part of a valid digest */

/* Removes a tree below dirfd without following symlinks or crossing mount points. Adds the bytes
 * freed (st_blocks) to *freed when non-NULL. -ENOENT is success. */
int rm_rf_at(int dirfd, const char *name, uint64_t *freed);
/* Disk usage of a tree (st_blocks, no symlinks followed, one file system). */
uint64_t du_at(int dirfd, const char *name);

int mkdir_p_at(int dirfd, const char *path, mode_t mode);
/* Writes data to dirfd/name atomically (temp file + fsync + rename). */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size);
int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size);
int json_load_at(int dirfd, const char *name, json_t **ret);
int json_save_at(int dirfd, const char *name, json_t *j);

char **strv_from_json(json_t *a); /* NULL if not an array of strings; never for an empty array */
size_t strv_length(char *const *l);
int strv_push(char ***l, const char *s);
char **strv_copy(char *const *l);
bool strv_contains(char *const *l, const char *s);

uint64_t now_usec(void);

/* Normalizes a user-supplied name: adds ":latest", drops "docker.io/library/" and "docker.io/".
 * -EINVAL for empty, overlong or malformed names. */
int image_name_normalize(const char *in, char **ret);

/* ---- store.c: index ---- */
int store_lock(ImageStore *s);                     /* returns a lock fd (exclusive flock on ROOT/lock) */
int store_index_load(ImageStore *s, json_t **ret); /* {"schemaVersion":1,"images":{digest:{...}}} */
int store_index_save(ImageStore *s, json_t *index);
/* Moves name to image digest (removing it from whatever image had it). */
void index_set_name(json_t *index, const char *digest, const char *name);
int store_ref_container_locked(ImageStore *s, json_t *index, const char *ref, const char *container_id,
                               char **ret_digest);
bool store_container_id_valid(const char *id);
/* Drops the container's reference and moves its directory into tmp/ under a name gc removes once
 * this process is gone; *ret_trash: its path, or NULL when the container had none. */
int store_unref_container_deferred(ImageStore *s, const char *container_id, char **ret_trash);
int store_gc_locked(ImageStore *s, json_t *index, uint64_t *ret_freed);

/* ---- unpack.c ---- */
typedef struct LayerUnpackResult {
        char diff_id[DIGEST_LEN + 1]; /* sha256 of the uncompressed tar stream */
        uint64_t size;                /* bytes of the uncompressed tar stream */
} LayerUnpackResult;

typedef struct LayerUnpackOptions {
        const atomic_bool *cancel; /* checked before every entry: -ECANCELED once set */
        bool umask_zero;           /* the calling thread's umask is 0: files get their mode at creation */
} LayerUnpackOptions;

/* Extracts the layer blob (gzip, zstd, xz or plain tar) read from blob_fd into the empty directory
 * dir_fd, converting AUFS whiteouts to overlayfs form. Refuses hostile paths with -EPERM (and a
 * message in s). Only s's error buffer is used: several threads may unpack at once, each with its own
 * error sink (o optional). */
int layer_unpack(ImageStore *s, int blob_fd, int dir_fd, const LayerUnpackOptions *o,
                 LayerUnpackResult *ret);
