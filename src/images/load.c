/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Loading archives. Three phases, so that a failure at any point leaves nothing behind:
 *   1. stage: stream the archive into ROOT/tmp/load-<pid>-XXXXXX, hashing every file on the way;
 *      every staged member that looks like a layer (compressed, or a tar) is handed to a pool of
 *      unpacking threads at once, so layers unpack while the rest of the archive is still read;
 *   2. verify: parse OCI index/manifests (or docker manifest.json, converted to OCI), check every
 *      digest and size; cancel the unpacking of blobs no image uses, unpack the layers nobody has
 *      started yet, wait for them and check their diff IDs;
 *   3. commit, under the store lock: rename blobs and layers into place, then write the index. */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <archive.h>
#include <archive_entry.h>

#include "image-internal.h"

#define ARCHIVE_ENTRIES_MAX 65536u
#define ARCHIVE_READ_BLOCK  (256u * 1024u)
#define PROGRESS_STEP       (1024u * 1024u)
#define UNPACK_THREADS_MAX  4u
#define SNIFF_LEN           512u /* bytes of a member kept to recognize a layer (tar magic at 257) */

#define MT_OCI_INDEX      "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST   "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CONFIG     "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER      "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_DOCKER_LIST    "application/vnd.docker.distribution.manifest.list.v2+json"

typedef struct StagedFile {
        char *path; /* normalized path inside the archive */
        char *link; /* symlink target (docker-archive uses them), else NULL */
        char digest[DIGEST_LEN + 1];
        uint64_t size;
        bool staged; /* data is in staging/files/<digest hex>; false if the store already has it */
} StagedFile;

typedef struct LoadImage {
        char digest[DIGEST_LEN + 1];
        json_t *entry; /* the index entry being built */
        char **names;
} LoadImage;

/* One layer blob being unpacked into staging/layers/.in-N-<random> by a pool thread. */
typedef enum JobState {
        JOB_QUEUED,
        JOB_RUNNING,
        JOB_DONE,
} JobState;

typedef struct UnpackJob {
        char blob[DIGEST_LEN + 1];
        char dir[64];   /* relative to the staging directory */
        JobState state; /* under Loader.lock */
        bool urgent;    /* an image needs it now: runs before speculative jobs */
        bool used;      /* committed as a layer */
        atomic_bool cancel;
        int r;
        uint64_t usec;
        LayerUnpackResult res;
        ImageStore err; /* layer_unpack's error sink: only .error is used */
} UnpackJob;

/* A layer an image needs: blob digest and the diff ID its config promises. */
typedef struct PendingLayer {
        char blob[DIGEST_LEN + 1];
        char diff_id[DIGEST_LEN + 1];
} PendingLayer;

typedef struct Loader {
        ImageStore *s;
        const ImageLoadOptions *opts;
        int in_fd;
        uint64_t done, total, last_report;
        char buf[ARCHIVE_READ_BLOCK];

        char staging[PATH_MAX]; /* relative to the store root */
        int staging_fd;

        StagedFile *files;
        size_t n_files;
        size_t n_staged; /* files new to the store (the rest were already there) */
        LoadImage *images;
        size_t n_images;
        json_t *new_layers; /* diff ID → true for layers extracted into staging/layers */
        PendingLayer *pending;
        size_t n_pending;

        /* Unpacking pool, started with the first job. */
        pthread_mutex_t lock;
        pthread_cond_t cond; /* a job was queued or finished, or shutdown */
        pthread_t threads[UNPACK_THREADS_MAX];
        unsigned n_threads, max_threads;
        bool pool_started, shutdown;
        UnpackJob **jobs;
        size_t n_jobs;

        ImageLoadStats stats;
} Loader;

static uint64_t mono_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static int open_blob(Loader *l, const char *digest);

/* ---- unpacking pool ---- */

static void job_run(Loader *l, UnpackJob *j, bool umask_zero) {
        _cleanup_close_ int blob_fd = -EBADF, dir_fd = -EBADF;
        LayerUnpackOptions o = {.cancel = &j->cancel, .umask_zero = umask_zero};
        uint64_t t0 = mono_usec();

        blob_fd = open_blob(l, j->blob);
        if (blob_fd < 0) {
                j->r = store_error(&j->err, blob_fd, "layer %s: missing blob", j->blob);
                return;
        }
        if (mkdirat(l->staging_fd, j->dir, 0755) < 0) {
                j->r = store_error(&j->err, -errno, "layer %s: cannot create staging directory: %m",
                                   j->blob);
                return;
        }
        dir_fd = openat(l->staging_fd, j->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0) {
                j->r = store_error(&j->err, -errno, "layer %s: %m", j->blob);
                return;
        }
        j->r = layer_unpack(&j->err, blob_fd, dir_fd, &o, &j->res);
        j->usec = mono_usec() - t0;
}

/* Under l->lock: the next job to run, urgent ones first; cancelled queued jobs are retired. */
static UnpackJob *job_next(Loader *l) {
        UnpackJob *pick = NULL;

        for (size_t i = 0; i < l->n_jobs; i++) {
                UnpackJob *j = l->jobs[i];
                if (j->state != JOB_QUEUED)
                        continue;
                if (atomic_load(&j->cancel)) {
                        j->state = JOB_DONE;
                        j->r = -ECANCELED;
                        continue;
                }
                if (!pick || (j->urgent && !pick->urgent))
                        pick = j;
        }
        return pick;
}

static void *unpack_thread(void *userdata) {
        Loader *l = userdata;
        bool umask_zero = false;

        /* A private fs context (umask, cwd) for this thread only: with umask 0 files are created with
         * their final mode, which saves an fchmod per file. The process's umask is untouched. */
        if (unshare(CLONE_FS) == 0) {
                (void) umask(0);
                umask_zero = true;
        }
        pthread_mutex_lock(&l->lock);
        for (;;) {
                UnpackJob *j = job_next(l);
                if (!j) {
                        if (l->shutdown)
                                break;
                        pthread_cond_wait(&l->cond, &l->lock);
                        continue;
                }
                j->state = JOB_RUNNING;
                pthread_mutex_unlock(&l->lock);
                job_run(l, j, umask_zero);
                pthread_mutex_lock(&l->lock);
                j->state = JOB_DONE;
                pthread_cond_broadcast(&l->cond);
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

static void pool_start(Loader *l) {
        sigset_t all, old;

        l->pool_started = true;
        /* Signals stay with the threads that handle them (the API server blocks and polls them). */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (unsigned i = 0; i < l->max_threads; i++) {
                if (pthread_create(&l->threads[l->n_threads], NULL, unpack_thread, l) != 0)
                        break; /* fewer threads; with none, the main thread unpacks in pool_wait() */
                l->n_threads++;
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        l->stats.threads = l->n_threads;
}

static void pool_stop(Loader *l) {
        if (!l->pool_started)
                return;
        pthread_mutex_lock(&l->lock);
        l->shutdown = true;
        for (size_t i = 0; i < l->n_jobs; i++)
                atomic_store(&l->jobs[i]->cancel, true);
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        for (unsigned i = 0; i < l->n_threads; i++)
                pthread_join(l->threads[i], NULL);
        l->n_threads = 0;
        l->pool_started = false;
}

/* The latest job for blob that was not cancelled. */
static UnpackJob *pool_find(Loader *l, const char *blob) {
        for (size_t i = l->n_jobs; i > 0; i--)
                if (streq(l->jobs[i - 1]->blob, blob) && !atomic_load(&l->jobs[i - 1]->cancel))
                        return l->jobs[i - 1];
        return NULL;
}

static int pool_submit(Loader *l, const char *blob, bool urgent, UnpackJob **ret) {
        uint64_t rnd = 0;
        UnpackJob *j, **a;

        j = calloc(1, sizeof(UnpackJob));
        if (!j)
                return -ENOMEM;
        snprintf(j->blob, sizeof(j->blob), "%s", blob);
        /* A random name: ext4 places a new directory below a "top directory" by a hash of its name,
         * so successive loads do not all land in the block group the previous one just freed. */
        if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd))
                rnd = mono_usec() ^ ((uint64_t) getpid() << 32);
        snprintf(j->dir, sizeof(j->dir), "layers/.in-%zu-%016llx", l->n_jobs, (unsigned long long) rnd);
        j->urgent = urgent;
        atomic_init(&j->cancel, false);
        j->err.root_fd = -EBADF;

        pthread_mutex_lock(&l->lock);
        a = realloc(l->jobs, (l->n_jobs + 1) * sizeof(UnpackJob *));
        if (!a) {
                pthread_mutex_unlock(&l->lock);
                free(j);
                return -ENOMEM;
        }
        l->jobs = a;
        l->jobs[l->n_jobs++] = j;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
        if (!l->pool_started)
                pool_start(l);
        if (ret)
                *ret = j;
        return 0;
}

/* Waits until j is done; without threads, runs it here. */
static void pool_wait(Loader *l, UnpackJob *j) {
        pthread_mutex_lock(&l->lock);
        if (j->state == JOB_QUEUED && l->n_threads == 0) {
                j->state = JOB_RUNNING;
                pthread_mutex_unlock(&l->lock);
                job_run(l, j, false);
                pthread_mutex_lock(&l->lock);
                j->state = JOB_DONE;
        }
        j->urgent = true;
        while (j->state != JOB_DONE)
                pthread_cond_wait(&l->cond, &l->lock);
        pthread_mutex_unlock(&l->lock);
}

/* Does a staged member look like a layer: compressed (gzip, zstd, xz, bzip2) or a tar? */
static bool looks_like_layer(const unsigned char *h, size_t n) {
        static const unsigned char gz[] = {0x1f, 0x8b}, zst[] = {0x28, 0xb5, 0x2f, 0xfd},
                                   xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00}, bz[] = {'B', 'Z', 'h'};

        return (n >= sizeof(gz) && memcmp(h, gz, sizeof(gz)) == 0) ||
               (n >= sizeof(zst) && memcmp(h, zst, sizeof(zst)) == 0) ||
               (n >= sizeof(xz) && memcmp(h, xz, sizeof(xz)) == 0) ||
               (n >= sizeof(bz) && memcmp(h, bz, sizeof(bz)) == 0) ||
               (n >= 262 && memcmp(h + 257, "ustar", 5) == 0);
}

static void loader_done(Loader *l) {
        /* Threads first: they write below the staging directory. */
        pool_stop(l);
        for (size_t i = 0; i < l->n_jobs; i++)
                free(l->jobs[i]);
        free(l->jobs);
        free(l->pending);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        for (size_t i = 0; i < l->n_files; i++) {
                free(l->files[i].path);
                free(l->files[i].link);
        }
        free(l->files);
        for (size_t i = 0; i < l->n_images; i++) {
                json_decref(l->images[i].entry);
                image_strv_free(l->images[i].names);
        }
        free(l->images);
        json_decref(l->new_layers);
        if (l->staging_fd >= 0) {
                safe_close(l->staging_fd);
                (void) rm_rf_at(l->s->root_fd, l->staging, NULL);
        }
}

static void report(Loader *l, bool force) {
        if (!l->opts || !l->opts->progress)
                return;
        if (!force && l->done - l->last_report < PROGRESS_STEP)
                return;
        l->last_report = l->done;
        l->opts->progress(l->done, l->total, l->opts->userdata);
}

static la_ssize_t input_read_cb(struct archive *a, void *userdata, const void **buf) {
        Loader *l = userdata;
        ssize_t n;

        do
                n = read(l->in_fd, l->buf, sizeof(l->buf));
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                archive_set_error(a, errno, "read: %s", strerror(errno));
                return -1;
        }
        l->done += (uint64_t) n;
        report(l, false);
        *buf = l->buf;
        return n;
}

static bool blob_in_store(Loader *l, const char *digest) {
        char p[64 + DIGEST_LEN];

        snprintf(p, sizeof(p), "blobs/sha256/%s", digest_hex(digest));
        return faccessat(l->s->root_fd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static bool layer_in_store(Loader *l, const char *diff_id) {
        char p[64 + DIGEST_LEN];

        snprintf(p, sizeof(p), "layers/%s", digest_hex(diff_id));
        return faccessat(l->s->root_fd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static int normalize_member(const char *in, char **ret) {
        char *out;

        while (in[0] == '.' && in[1] == '/')
                in += 2;
        while (in[0] == '/')
                in++;
        out = strdup(in);
        if (!out)
                return -ENOMEM;
        /* Directory entries end in '/'. */
        while (*out && out[strlen(out) - 1] == '/')
                out[strlen(out) - 1] = '\0';
        *ret = out;
        return 0;
}

static int stage_file(Loader *l, struct archive *a, StagedFile *f) {
        _cleanup_close_ int fd = -EBADF;
        char tmp[64], final[64 + DIGEST_LEN];
        const char *hex;
        Sha256 h;
        const void *buf;
        size_t size;
        la_int64_t offset;
        unsigned char head[SNIFF_LEN];
        size_t head_len = 0;
        int r;

        /* Write to a temp name first: the digest is known only at the end. */
        snprintf(tmp, sizeof(tmp), "files/.in-%zu", l->n_files);
        fd = openat(l->staging_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return store_error(l->s, -errno, "cannot create staging file: %m");
        r = sha256_init(&h);
        if (r < 0)
                return r;
        for (;;) {
                r = archive_read_data_block(a, &buf, &size, &offset);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        sha256_done(&h);
                        (void) unlinkat(l->staging_fd, tmp, 0);
                        return store_error(l->s, -EBADMSG, "archive is truncated or corrupt (%s): %s",
                                           f->path, archive_error_string(a));
                }
                sha256_update(&h, buf, size);
                f->size += size;
                if (offset == (la_int64_t) head_len && head_len < sizeof(head)) {
                        size_t k = MIN(size, sizeof(head) - head_len);
                        memcpy(head + head_len, buf, k);
                        head_len += k;
                }
                while (size > 0) {
                        ssize_t n = pwrite(fd, buf, size, offset);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                r = -errno;
                                sha256_done(&h);
                                (void) unlinkat(l->staging_fd, tmp, 0);
                                return store_error(l->s, r, "writing staging file: %m");
                        }
                        buf = (const char *) buf + n;
                        size -= (size_t) n;
                        offset += n;
                }
        }
        r = sha256_final(&h, f->digest);
        if (r < 0)
                return r;
        hex = digest_hex(f->digest);
        /* OCI layouts name blobs by digest: the name must match the content. */
        if (strncmp(f->path, "blobs/sha256/", 13) == 0 && !streq(f->path + 13, hex)) {
                (void) unlinkat(l->staging_fd, tmp, 0);
                return store_error(l->s, -EBADMSG, "blob %s has wrong digest (content is %s)", f->path,
                                   f->digest);
        }
        if (blob_in_store(l, f->digest)) {
                (void) unlinkat(l->staging_fd, tmp, 0);
                return 0;
        }
        snprintf(final, sizeof(final), "files/%s", hex);
        if (renameat(l->staging_fd, tmp, l->staging_fd, final) < 0)
                return -errno;
        f->staged = true;
        l->n_staged++;
        /* Unpack it now, while the rest of the archive is read; if no image turns out to use it as a
         * layer, the work is cancelled or thrown away with the staging directory. */
        if (looks_like_layer(head, head_len) && !pool_find(l, f->digest))
                return pool_submit(l, f->digest, false, NULL);
        return 0;
}

static int stage_archive(Loader *l) {
        struct archive *a;
        struct archive_entry *e;
        struct stat st;
        int r = 0;

        if (fstat(l->in_fd, &st) == 0 && S_ISREG(st.st_mode)) {
                off_t pos = lseek(l->in_fd, 0, SEEK_CUR);
                l->total = (uint64_t) (st.st_size - (pos > 0 ? pos : 0));
        }
        a = archive_read_new();
        if (!a)
                return -ENOMEM;
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        if (archive_read_open(a, l, NULL, input_read_cb, NULL) != ARCHIVE_OK) {
                r = store_error(l->s, -EBADMSG, "not an image archive: %s", archive_error_string(a));
                goto finish;
        }
        for (;;) {
                StagedFile *f;
                mode_t type;

                r = archive_read_next_header(a, &e);
                if (r == ARCHIVE_EOF) {
                        r = 0;
                        break;
                }
                if (r < ARCHIVE_WARN) {
                        r = store_error(l->s, -EBADMSG, "archive is truncated or corrupt: %s",
                                        archive_error_string(a));
                        goto finish;
                }
                type = archive_entry_filetype(e);
                if (type != AE_IFREG && type != AE_IFLNK)
                        continue;
                if (l->n_files >= ARCHIVE_ENTRIES_MAX) {
                        r = store_error(l->s, -E2BIG, "archive has too many entries");
                        goto finish;
                }
                f = realloc(l->files, (l->n_files + 1) * sizeof(StagedFile));
                if (!f) {
                        r = -ENOMEM;
                        goto finish;
                }
                l->files = f;
                f = &l->files[l->n_files];
                *f = (StagedFile){};
                r = normalize_member(archive_entry_pathname(e) ?: "", &f->path);
                if (r < 0)
                        goto finish;
                if (type == AE_IFLNK) {
                        f->link = strdup(archive_entry_symlink(e) ?: "");
                        l->n_files++;
                        if (!f->link) {
                                r = -ENOMEM;
                                goto finish;
                        }
                        continue;
                }
                r = stage_file(l, a, f);
                l->n_files++;
                if (r < 0)
                        goto finish;
        }
        report(l, true);
finish:
        archive_read_free(a);
        return r;
}

/* Finds a member, following archive-internal symlinks relative to the link's directory. */
static StagedFile *find_file(Loader *l, const char *path) {
        char buf[PATH_MAX];

        for (unsigned hops = 0; hops < 8; hops++) {
                StagedFile *f = NULL;
                for (size_t i = 0; i < l->n_files; i++)
                        if (streq(l->files[i].path, path))
                                f = &l->files[i];
                if (!f || !f->link)
                        return f;
                const char *slash = strrchr(f->path, '/');
                char joined[PATH_MAX * 2];
                if (f->link[0] == '/')
                        snprintf(joined, sizeof(joined), "%s", f->link + 1);
                else
                        snprintf(joined, sizeof(joined), "%.*s%s%s", slash ? (int) (slash - f->path) : 0,
                                 f->path, slash ? "/" : "", f->link);
                /* Collapse "dir/../x". */
                char *out = buf;
                buf[0] = '\0';
                for (char *save = NULL, *c = strtok_r(joined, "/", &save); c;
                     c = strtok_r(NULL, "/", &save)) {
                        if (streq(c, "."))
                                continue;
                        if (streq(c, "..")) {
                                char *up = strrchr(buf, '/');
                                out = up ? up : buf;
                                *out = '\0';
                                continue;
                        }
                        out += snprintf(out, (size_t) (buf + sizeof(buf) - out), "%s%s",
                                        out == buf ? "" : "/", c);
                }
                path = buf;
        }
        return NULL;
}

/* By name in an OCI layout, else by content (docker-archive members have other names). */
static StagedFile *find_blob(Loader *l, const char *digest) {
        char p[64 + DIGEST_LEN];
        StagedFile *f;

        snprintf(p, sizeof(p), "blobs/sha256/%s", digest_hex(digest));
        f = find_file(l, p);
        if (f)
                return f;
        for (size_t i = 0; i < l->n_files; i++)
                if (!l->files[i].link && streq(l->files[i].digest, digest))
                        return &l->files[i];
        return NULL;
}

static int open_blob(Loader *l, const char *digest) {
        char p[64 + DIGEST_LEN];
        int fd;

        snprintf(p, sizeof(p), "files/%s", digest_hex(digest));
        fd = openat(l->staging_fd, p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 || errno != ENOENT)
                return fd < 0 ? -errno : fd;
        snprintf(p, sizeof(p), "blobs/sha256/%s", digest_hex(digest));
        fd = openat(l->s->root_fd, p, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int load_json_blob(Loader *l, const char *digest, json_t **ret) {
        _cleanup_close_ int fd = open_blob(l, digest);
        json_error_t err;
        struct stat st;
        json_t *j;

        if (fd < 0)
                return store_error(l->s, fd, "missing blob %s", digest);
        if (fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t) st.st_size > IMAGE_JSON_MAX)
                return store_error(l->s, -EFBIG, "blob %s is too large for JSON", digest);
        j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &err);
        if (!j)
                return store_error(l->s, -EBADMSG, "blob %s is not valid JSON: %s", digest, err.text);
        *ret = j;
        return 0;
}

/* A descriptor must name a blob that is in the archive (or already in the store) with its size. */
static int check_descriptor(Loader *l, json_t *desc, const char *what, const char **ret_digest) {
        const char *digest = json_string_value(json_object_get(desc, "digest"));
        json_t *size = json_object_get(desc, "size");
        StagedFile *f;

        if (!digest_valid(digest))
                return store_error(l->s, -EBADMSG, "%s has an invalid or unsupported digest: %s", what,
                                   digest ?: "(none)");
        f = find_blob(l, digest);
        if (f) {
                if (json_is_integer(size) && (uint64_t) json_integer_value(size) != f->size)
                        return store_error(l->s, -EBADMSG, "%s %s: size %lld in descriptor, %llu in archive",
                                           what, digest, (long long) json_integer_value(size),
                                           (unsigned long long) f->size);
        } else if (!blob_in_store(l, digest))
                return store_error(l->s, -ENOENT, "%s %s: missing blob", what, digest);
        *ret_digest = digest;
        return 0;
}

/* Durability: everything staged reaches the disk before the index can name it (the index is written
 * with fsync after the renames, and the renamed directories are fsynced first). One syncfs for all
 * files instead of an fsync per file. */
static int sync_staging(Loader *l) {
        uint64_t t0 = mono_usec();
        int r;

        if (l->n_staged == 0 && l->n_jobs == 0)
                return 0; /* nothing new: the archive's content was all in the store */
        r = syncfs(l->staging_fd) < 0 ? -errno : 0;
        l->stats.sync_usec += mono_usec() - t0;
        return r < 0 ? store_error(l->s, r, "cannot write the staged image to disk: %m") : 0;
}

static int sync_dir(Loader *l, const char *path) {
        _cleanup_close_ int fd = openat(l->s->root_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        uint64_t t0 = mono_usec();

        if (fd < 0 || fsync(fd) < 0)
                return store_error(l->s, -errno, "cannot write %s/%s to disk: %m", l->s->root, path);
        l->stats.sync_usec += mono_usec() - t0;
        return 0;
}

/* Commits a finished job as the layer diff_id: checks its diff ID, renames it to layers/<hex>. */
static int layer_from_job(Loader *l, UnpackJob *j, const char *diff_id) {
        char final[64 + DIGEST_LEN];
        uint64_t t0 = mono_usec();

        pool_wait(l, j);
        l->stats.unpack_wait_usec += mono_usec() - t0;
        if (j->r < 0)
                return store_error(l->s, j->r, "%s", j->err.error[0] ? j->err.error : strerror(-j->r));
        if (!streq(j->res.diff_id, diff_id))
                return store_error(l->s, -EBADMSG, "layer %s has diff ID %s, the image config says %s",
                                   j->blob, j->res.diff_id, diff_id);
        if (j->used)
                return 0;
        snprintf(final, sizeof(final), "layers/%s", digest_hex(diff_id));
        if (renameat(l->staging_fd, j->dir, l->staging_fd, final) < 0)
                return -errno;
        j->used = true;
        l->stats.layers_unpacked++;
        l->stats.layer_bytes += j->res.size;
        return json_object_set_new(l->new_layers, diff_id, json_true());
}

static bool layer_needed(Loader *l, const char *diff_id) {
        return !json_object_get(l->new_layers, diff_id) && !layer_in_store(l, diff_id);
}

/* Extracts a layer into staging/layers/<diff id hex> unless the store or staging has it. */
static int ensure_layer(Loader *l, const char *blob_digest, const char *diff_id) {
        UnpackJob *j;
        int r;

        if (!layer_needed(l, diff_id))
                return 0;
        j = pool_find(l, blob_digest);
        if (!j) {
                r = pool_submit(l, blob_digest, true, &j);
                if (r < 0)
                        return r;
        }
        return layer_from_job(l, j, diff_id);
}

/* Phase 2 for layers, once every manifest is read: speculative jobs for blobs no image needs are
 * cancelled, needed layers nobody has started are queued, then each is waited for and checked. */
static int finish_layers(Loader *l) {
        _cleanup_free_ bool *needed = calloc(l->n_pending + 1, sizeof(bool));
        int r;

        if (!needed)
                return -ENOMEM;
        for (size_t k = 0; k < l->n_pending; k++)
                needed[k] = layer_needed(l, l->pending[k].diff_id);
        for (size_t i = 0; i < l->n_jobs; i++) {
                UnpackJob *j = l->jobs[i];
                bool want = false;

                for (size_t k = 0; k < l->n_pending && !want; k++)
                        want = needed[k] && streq(l->pending[k].blob, j->blob);
                if (!want)
                        atomic_store(&j->cancel, true);
        }
        for (size_t k = 0; k < l->n_pending; k++)
                if (needed[k] && !pool_find(l, l->pending[k].blob)) {
                        r = pool_submit(l, l->pending[k].blob, true, NULL);
                        if (r < 0)
                                return r;
                }
        /* While the threads unpack, this one has nothing to do but wait: it writes the blobs (and
         * what the layers have so far) to disk, so the flush before the commit has less left. */
        r = sync_staging(l);
        if (r < 0)
                return r;
        for (size_t k = 0; k < l->n_pending; k++) {
                r = ensure_layer(l, l->pending[k].blob, l->pending[k].diff_id);
                if (r < 0)
                        return r;
        }
        return sync_staging(l);
}

static int add_pending(Loader *l, const char *blob, const char *diff_id) {
        PendingLayer *p;

        for (size_t k = 0; k < l->n_pending; k++)
                if (streq(l->pending[k].blob, blob) && streq(l->pending[k].diff_id, diff_id))
                        return 0;
        p = realloc(l->pending, (l->n_pending + 1) * sizeof(PendingLayer));
        if (!p)
                return -ENOMEM;
        l->pending = p;
        p = &l->pending[l->n_pending++];
        snprintf(p->blob, sizeof(p->blob), "%s", blob);
        snprintf(p->diff_id, sizeof(p->diff_id), "%s", diff_id);
        return 0;
}

static int add_image(Loader *l, const char *manifest_digest, json_t *manifest, char **names) {
        _cleanup_(json_decrefp) json_t *config = NULL, *layers = NULL;
        json_t *diff_ids, *desc;
        const char *cfgd, *created;
        uint64_t size = 0;
        size_t i;
        LoadImage *img;
        int r;

        for (size_t k = 0; k < l->n_images; k++)
                if (streq(l->images[k].digest, manifest_digest)) {
                        /* Same image under several names in one archive. */
                        for (size_t n = 0; names && names[n]; n++)
                                if (!strv_contains(l->images[k].names, names[n]) &&
                                    strv_push(&l->images[k].names, names[n]) < 0)
                                        return -ENOMEM;
                        return 0;
                }

        r = check_descriptor(l, json_object_get(manifest, "config"), "config", &cfgd);
        if (r < 0)
                return r;
        r = load_json_blob(l, cfgd, &config);
        if (r < 0)
                return r;
        diff_ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
        if (!json_is_array(json_object_get(manifest, "layers")) || !json_is_array(diff_ids) ||
            json_array_size(diff_ids) != json_array_size(json_object_get(manifest, "layers")))
                return store_error(l->s, -EBADMSG, "image %s: layers and config diff_ids do not match",
                                   manifest_digest);
        if (json_array_size(diff_ids) > IMAGE_LAYERS_MAX)
                return store_error(l->s, -E2BIG, "image %s has too many layers", manifest_digest);
        size += (uint64_t) json_integer_value(json_object_get(json_object_get(manifest, "config"), "size"));
        layers = json_array();
        if (!layers)
                return -ENOMEM;
        json_array_foreach(json_object_get(manifest, "layers"), i, desc) {
                const char *ld, *diff_id = json_string_value(json_array_get(diff_ids, i));
                const char *mt = json_string_value(json_object_get(desc, "mediaType"));

                r = check_descriptor(l, desc, "layer", &ld);
                if (r < 0)
                        return r;
                if (!digest_valid(diff_id))
                        return store_error(l->s, -EBADMSG, "image %s: invalid diff ID", manifest_digest);
                if (mt && strstr(mt, "nondistributable") == NULL && strstr(mt, "tar") == NULL)
                        return store_error(l->s, -EOPNOTSUPP, "layer %s has unsupported media type %s", ld,
                                           mt);
                r = add_pending(l, ld, diff_id);
                if (r < 0)
                        return r;
                size += (uint64_t) json_integer_value(json_object_get(desc, "size"));
                if (json_array_append_new(layers, json_pack("{s:s, s:s, s:s, s:O}", "digest", ld, "diff_id",
                                                            diff_id, "mediaType", mt ?: MT_OCI_LAYER, "size",
                                                            json_object_get(desc, "size"))) < 0)
                        return -ENOMEM;
        }
        created = json_string_value(json_object_get(config, "created"));

        img = realloc(l->images, (l->n_images + 1) * sizeof(LoadImage));
        if (!img)
                return -ENOMEM;
        l->images = img;
        img = &l->images[l->n_images];
        *img = (LoadImage){};
        snprintf(img->digest, sizeof(img->digest), "%s", manifest_digest);
        img->names = strv_copy(names);
        img->entry =
                json_pack("{s:[], s:s, s:O, s:I, s:s*, s:I}", "names", "config", cfgd, "layers", layers,
                          "size", (json_int_t) size, "created", created, "loaded", (json_int_t) now_usec());
        l->n_images++;
        if (!img->names || !img->entry)
                return -ENOMEM;
        return 0;
}

static const char *host_arch(void) {
#if defined(__x86_64__)
        return "amd64";
#elif defined(__aarch64__)
        return "arm64";
#else
        return "";
#endif
}

static int name_from_annotations(Loader *l, json_t *annotations, char ***names) {
        const char *n = json_string_value(json_object_get(annotations, "io.containerd.image.name"));
        _cleanup_free_ char *norm = NULL;

        if (!n) {
                n = json_string_value(json_object_get(annotations, "org.opencontainers.image.ref.name"));
                /* A bare tag ("latest") names no repository: use the caller's default name, if any. */
                if (n && !strchr(n, ':') && !strchr(n, '/'))
                        n = NULL;
        }
        if (!n)
                return 0;
        if (image_name_normalize(n, &norm) < 0)
                return store_error(l->s, -EBADMSG, "archive names image with invalid name %s", n);
        return strv_contains(*names, norm) ? 0 : strv_push(names, norm);
}

static int load_oci_descriptor(Loader *l, json_t *desc, char **names, unsigned depth) {
        _cleanup_(json_decrefp) json_t *j = NULL;
        const char *digest, *mt;
        int r;

        r = check_descriptor(l, desc, "manifest", &digest);
        if (r < 0)
                return r;
        r = load_json_blob(l, digest, &j);
        if (r < 0)
                return r;
        mt = json_string_value(json_object_get(j, "mediaType"))
                     ?: json_string_value(json_object_get(desc, "mediaType"));
        if (json_is_array(json_object_get(j, "manifests")) || streq_ptr(mt, MT_OCI_INDEX) ||
            streq_ptr(mt, MT_DOCKER_LIST)) {
                json_t *m, *pick = NULL;
                size_t i;

                if (depth > 2)
                        return store_error(l->s, -ELOOP, "image indexes nested too deep");
                /* A multi-platform index: take this machine's platform (or the only entry). */
                json_array_foreach(json_object_get(j, "manifests"), i, m) {
                        json_t *p = json_object_get(m, "platform");
                        if (!p ||
                            (streq_ptr(json_string_value(json_object_get(p, "architecture")), host_arch()) &&
                             streq_ptr(json_string_value(json_object_get(p, "os")), "linux"))) {
                                pick = m;
                                break;
                        }
                }
                if (!pick && json_array_size(json_object_get(j, "manifests")) == 1)
                        pick = json_array_get(json_object_get(j, "manifests"), 0);
                if (!pick)
                        return store_error(l->s, -ENOENT, "index %s has no manifest for linux/%s", digest,
                                           host_arch());
                return load_oci_descriptor(l, pick, names, depth + 1);
        }
        return add_image(l, digest, j, names);
}

static int load_oci(Loader *l) {
        _cleanup_(json_decrefp) json_t *index = NULL;
        _cleanup_close_ int fd = -EBADF;
        StagedFile *f = find_file(l, "index.json");
        json_t *desc;
        json_error_t err;
        size_t i;
        int r;

        fd = open_blob(l, f->digest);
        if (fd < 0)
                return fd;
        index = json_loadfd(fd, JSON_REJECT_DUPLICATES, &err);
        if (!index || !json_is_array(json_object_get(index, "manifests")))
                return store_error(l->s, -EBADMSG, "index.json is malformed");
        if (json_array_size(json_object_get(index, "manifests")) == 0)
                return store_error(l->s, -EBADMSG, "archive contains no image");
        json_array_foreach(json_object_get(index, "manifests"), i, desc) {
                _cleanup_(image_strv_freep) char **names = calloc(1, sizeof(char *));
                if (!names)
                        return -ENOMEM;
                r = name_from_annotations(l, json_object_get(desc, "annotations"), &names);
                if (r < 0)
                        return r;
                r = load_oci_descriptor(l, desc, names, 0);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int sniff_gzip(Loader *l, const char *digest, bool *ret) {
        _cleanup_close_ int fd = open_blob(l, digest);
        unsigned char m[2] = {};

        if (fd < 0)
                return fd;
        *ret = pread(fd, m, 2, 0) == 2 && m[0] == 0x1f && m[1] == 0x8b;
        return 0;
}

/* docker-archive: manifest.json [{Config, RepoTags, Layers}] becomes an OCI manifest blob. */
static int load_docker(Loader *l) {
        _cleanup_(json_decrefp) json_t *list = NULL;
        _cleanup_close_ int fd = -EBADF;
        StagedFile *mf = find_file(l, "manifest.json");
        json_error_t err;
        json_t *item;
        size_t i;
        int r;

        fd = open_blob(l, mf->digest);
        if (fd < 0)
                return fd;
        list = json_loadfd(fd, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_array(list) || json_array_size(list) == 0)
                return store_error(l->s, -EBADMSG, "manifest.json is malformed or empty");
        json_array_foreach(list, i, item) {
                _cleanup_(json_decrefp) json_t *manifest = NULL;
                _cleanup_(image_strv_freep) char **names = calloc(1, sizeof(char *));
                _cleanup_free_ char *text = NULL;
                const char *cfgpath = json_string_value(json_object_get(item, "Config"));
                StagedFile *cf, *lf;
                json_t *v, *layers;
                size_t k;
                char mdigest[DIGEST_LEN + 1];
                Sha256 h;

                if (!names)
                        return -ENOMEM;
                cf = cfgpath ? find_file(l, cfgpath) : NULL;
                if (!cf)
                        return store_error(l->s, -ENOENT, "docker archive: missing config %s",
                                           cfgpath ?: "(none)");
                manifest = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:[]}", "schemaVersion", 2, "mediaType",
                                     MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest",
                                     cf->digest, "size", (json_int_t) cf->size, "layers");
                if (!manifest)
                        return -ENOMEM;
                layers = json_object_get(manifest, "layers");
                json_array_foreach(json_object_get(item, "Layers"), k, v) {
                        bool gz = false;
                        lf = json_is_string(v) ? find_file(l, json_string_value(v)) : NULL;
                        if (!lf || lf->link)
                                return store_error(l->s, -ENOENT, "docker archive: missing layer %s",
                                                   json_string_value(v) ?: "?");
                        r = sniff_gzip(l, lf->digest, &gz);
                        if (r < 0)
                                return r;
                        json_array_append_new(layers,
                                              json_pack("{s:s, s:s, s:I}", "mediaType",
                                                        gz ? MT_OCI_LAYER_GZIP : MT_OCI_LAYER, "digest",
                                                        lf->digest, "size", (json_int_t) lf->size));
                }
                json_array_foreach(json_object_get(item, "RepoTags"), k, v) {
                        _cleanup_free_ char *norm = NULL;
                        if (!json_is_string(v) || image_name_normalize(json_string_value(v), &norm) < 0)
                                return store_error(l->s, -EBADMSG,
                                                   "docker archive: invalid name in RepoTags");
                        if (strv_push(&names, norm) < 0)
                                return -ENOMEM;
                }
                /* The generated manifest becomes a staged blob like any other. */
                text = json_dumps(manifest, JSON_COMPACT | JSON_SORT_KEYS);
                if (!text)
                        return -ENOMEM;
                r = sha256_init(&h);
                if (r < 0)
                        return r;
                sha256_update(&h, text, strlen(text));
                r = sha256_final(&h, mdigest);
                if (r < 0)
                        return r;
                if (!blob_in_store(l, mdigest)) {
                        char p[64 + DIGEST_LEN];
                        snprintf(p, sizeof(p), "files/%s", digest_hex(mdigest));
                        r = write_file_atomic_at(l->staging_fd, p, text, strlen(text));
                        if (r < 0)
                                return r;
                        l->n_staged++;
                }
                r = add_image(l, mdigest, manifest, names);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A hint to ext4 (FS_TOPDIR_FL, "chattr +T"): the directories created here are unrelated trees, to
 * be spread over the file system like home directories. Each layer then lands in a block group of
 * its own instead of the one its parent sits in, which matters on ext4 without a journal (this kind
 * of machine): there, inode allocation skips inodes freed less than a minute ago one by one, and a
 * group where a large tree was just deleted (the previous store, the previous load) makes every
 * new inode cost a scan of thousands. Other file systems refuse the flag; that is fine. */
static void mark_top_directory(int dirfd, const char *name) {
        _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int flags = 0;

        if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0 || (flags & FS_TOPDIR_FL))
                return;
        flags |= FS_TOPDIR_FL;
        (void) ioctl(fd, FS_IOC_SETFLAGS, &flags);
}

static int move_staged(Loader *l, const char *from, const char *to) {
        if (renameat(l->staging_fd, from, l->s->root_fd, to) >= 0)
                return 0;
        /* Someone committed the same content meanwhile: theirs is identical. */
        if (errno == EEXIST || errno == ENOTEMPTY)
                return 0;
        return -errno;
}

static int commit(Loader *l, char ***ret_digests) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL;
        _cleanup_(image_strv_freep) char **digests = NULL;
        const char *k;
        json_t *v;
        int r;

        lock = store_lock(l->s);
        if (lock < 0)
                return lock;
        for (size_t i = 0; i < l->n_images; i++) {
                json_t *layer;
                size_t n;
                /* A layer that was in the store when we looked may have been collected since. */
                json_array_foreach(json_object_get(l->images[i].entry, "layers"), n, layer) {
                        r = ensure_layer(l, json_string_value(json_object_get(layer, "digest")),
                                         json_string_value(json_object_get(layer, "diff_id")));
                        if (r < 0)
                                return r;
                }
        }
        for (size_t i = 0; i < l->n_files; i++) {
                char from[64 + DIGEST_LEN], to[64 + DIGEST_LEN];

                if (!l->files[i].staged)
                        continue;
                snprintf(from, sizeof(from), "files/%s", digest_hex(l->files[i].digest));
                snprintf(to, sizeof(to), "blobs/sha256/%s", digest_hex(l->files[i].digest));
                r = move_staged(l, from, to);
                if (r < 0 && r != -ENOENT) /* ENOENT: a duplicate member already moved it */
                        return store_error(l->s, r, "cannot commit blob: %m");
        }
        for (size_t i = 0; i < l->n_images; i++) {
                char from[64 + DIGEST_LEN], to[64 + DIGEST_LEN];

                /* Generated (docker-archive) manifests are not archive members. */
                snprintf(from, sizeof(from), "files/%s", digest_hex(l->images[i].digest));
                snprintf(to, sizeof(to), "blobs/sha256/%s", digest_hex(l->images[i].digest));
                r = move_staged(l, from, to);
                if (r < 0 && r != -ENOENT)
                        return store_error(l->s, r, "cannot commit manifest: %m");
        }
        json_object_foreach(l->new_layers, k, v) {
                char from[64 + DIGEST_LEN], to[64 + DIGEST_LEN];

                snprintf(from, sizeof(from), "layers/%s", digest_hex(k));
                snprintf(to, sizeof(to), "layers/%s", digest_hex(k));
                r = move_staged(l, from, to);
                if (r < 0)
                        return store_error(l->s, r, "cannot commit layer: %m");
        }

        /* The renames reach the disk before the index that refers to them. */
        if (l->n_staged > 0 || json_object_size(l->new_layers) > 0) {
                r = sync_dir(l, "blobs/sha256");
                if (r >= 0)
                        r = sync_dir(l, "layers");
                if (r < 0)
                        return r;
        }

        /* The index update is the commit point. */
        r = store_index_load(l->s, &index);
        if (r < 0)
                return r;
        digests = calloc(1, sizeof(char *));
        if (!digests)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_images; i++) {
                LoadImage *img = &l->images[i];
                json_t *images = json_object_get(index, "images"),
                       *old = json_object_get(images, img->digest);

                if (old)
                        json_object_set(img->entry, "names", json_object_get(old, "names"));
                json_object_set(images, img->digest, img->entry);
                if (!img->names[0] && l->opts && l->opts->default_name) {
                        _cleanup_free_ char *norm = NULL;
                        r = image_name_normalize(l->opts->default_name, &norm);
                        if (r < 0)
                                return store_error(l->s, r, "invalid image name %s", l->opts->default_name);
                        index_set_name(index, img->digest, norm);
                }
                for (size_t n = 0; img->names[n]; n++)
                        index_set_name(index, img->digest, img->names[n]);
                if (strv_push(&digests, img->digest) < 0)
                        return -ENOMEM;
        }
        r = store_index_save(l->s, index);
        if (r < 0)
                return r;
        if (ret_digests)
                *ret_digests = TAKE_PTR(digests);
        return 0;
}

_public_ int image_store_load(ImageStore *s, int fd, const ImageLoadOptions *opts, char ***ret_digests) {
        _cleanup_(loader_done) Loader l = {
                .s = s,
                .opts = opts,
                .in_fd = fd,
                .staging_fd = -EBADF,
                .lock = PTHREAD_MUTEX_INITIALIZER,
                .cond = PTHREAD_COND_INITIALIZER,
        };
        uint64_t t0 = mono_usec(), t1, t2, t3;
        char abs[PATH_MAX];
        long cpus;
        int r;

        assert_return(s, -EINVAL);
        assert_return(fd >= 0, -EBADF);
        s->error[0] = '\0';

        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        l.max_threads = opts && opts->unpack_threads > 0 ? opts->unpack_threads
                        : cpus > 0                       ? (unsigned) cpus
                                                         : 1;
        l.max_threads = MIN(l.max_threads, UNPACK_THREADS_MAX);

        l.new_layers = json_object();
        if (!l.new_layers)
                return -ENOMEM;
        snprintf(abs, sizeof(abs), "%s/tmp/load-%d-XXXXXX", s->root, (int) getpid());
        if (!mkdtemp(abs))
                return store_error(s, -errno, "cannot create staging directory in %s/tmp: %m", s->root);
        snprintf(l.staging, sizeof(l.staging), "%s", abs + strlen(s->root) + 1);
        l.staging_fd = openat(s->root_fd, l.staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (l.staging_fd < 0) {
                r = -errno;
                (void) rm_rf_at(s->root_fd, l.staging, NULL);
                return r;
        }
        if (mkdirat(l.staging_fd, "files", 0700) < 0 || mkdirat(l.staging_fd, "layers", 0700) < 0)
                return -errno;
        mark_top_directory(l.staging_fd, "layers");

        r = stage_archive(&l);
        if (r < 0)
                return r;
        t1 = mono_usec();
        if (find_file(&l, "index.json") && (find_file(&l, "oci-layout") || !find_file(&l, "manifest.json")))
                r = load_oci(&l);
        else if (find_file(&l, "manifest.json"))
                r = load_docker(&l);
        else
                r = store_error(s, -EBADMSG,
                                "not an OCI or docker image archive (no index.json or manifest.json)");
        if (r >= 0)
                r = finish_layers(&l);
        if (r < 0)
                return r;
        t2 = mono_usec();
        r = commit(&l, ret_digests);
        if (r < 0)
                return r;
        t3 = mono_usec();
        /* Jobs nobody needed may still be winding down: their threads go before the statistics. */
        pool_stop(&l);
        if (opts && opts->stats) {
                ImageLoadStats *st = &l.stats;

                st->stage_usec = t1 - t0;
                st->verify_usec = t2 - t1;
                st->commit_usec = t3 - t2;
                st->total_usec = t3 - t0;
                st->archive_bytes = l.done;
                for (size_t i = 0; i < l.n_jobs; i++) {
                        st->unpack_usec += l.jobs[i]->usec;
                        if (!l.jobs[i]->used && l.jobs[i]->usec > 0)
                                st->layers_discarded++;
                }
                *opts->stats = *st;
        }
        return (int) l.n_images;
}
