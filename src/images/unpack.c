/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Layer extraction. Every path is created relative to the layer's directory fd, parents are opened
 * one component at a time without following symlinks (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS as
 * the fast path), and ".." or absolute names are refused: a hostile layer cannot write outside its
 * directory. AUFS-style whiteouts become what overlayfs understands. */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <archive.h>
#include <archive_entry.h>

#include "image-internal.h"

#define WHITEOUT_PREFIX      ".wh."
#define WHITEOUT_OPAQUE      ".wh..wh..opq"
#define OVERLAY_XATTR_PREFIX "trusted.overlay."
#define UNPACK_READ_BLOCK    (1024u * 1024u)

typedef struct Unpacker {
        ImageStore *s;
        int root_fd;
        char *parent_path; /* cache of the last parent directory: tars list siblings together */
        int parent_fd;
        struct archive *raw; /* decompressor: hashes the uncompressed stream for the diff ID */
        Sha256 hash;
        uint64_t size;
        bool raw_eof;
        bool is_root;
        bool umask_zero; /* files are created with their final permission bits: no fchmod needed */
        const atomic_bool *cancel;
} Unpacker;

static void unpacker_drop_cache(Unpacker *u) {
        u->parent_fd = safe_close(u->parent_fd);
        free(u->parent_path);
        u->parent_path = NULL;
}

/* Splits an archive path into normalized components; refuses absolute paths and "..". */
static int path_normalize(ImageStore *s, const char *in, char **ret) {
        _cleanup_free_ char *out = NULL;
        const char *p = in;
        size_t n = 0;

        if (!in)
                return store_error(s, -EBADMSG, "layer entry without a name");
        if (in[0] == '/')
                return store_error(s, -EPERM, "layer entry has an absolute path: %s", in);
        out = malloc(strlen(in) + 1);
        if (!out)
                return -ENOMEM;
        while (*p) {
                size_t len = strcspn(p, "/");

                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return store_error(s, -EPERM, "layer entry path contains '..': %s", in);
                if (len > 0 && !(len == 1 && p[0] == '.')) {
                        if (n > 0)
                                out[n++] = '/';
                        memcpy(out + n, p, len);
                        n += len;
                }
                p += len;
                while (*p == '/')
                        p++;
        }
        out[n] = '\0';
        if (n >= PATH_MAX)
                return store_error(s, -ENAMETOOLONG, "layer entry path too long");
        *ret = TAKE_PTR(out);
        return 0;
}

static int open_beneath(int dirfd, const char *path) {
        struct open_how how = {
                .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
        };
        int fd = (int) syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        return fd < 0 ? -errno : fd;
}

/* Walks path one component at a time, creating missing directories; O_NOFOLLOW on every step. */
static int walk_create(Unpacker *u, const char *path, const char *full) {
        _cleanup_free_ char *copy = strdup(path);
        _cleanup_close_ int cur = -EBADF;
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        cur = fcntl(u->root_fd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -errno;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                int next;

                if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST)
                        return store_error(u->s, -errno, "cannot create directory for %s: %m", full);
                next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0) {
                        if (errno == ELOOP || errno == ENOTDIR)
                                return store_error(u->s, -EPERM,
                                                   "layer entry %s goes through a symlink or non-directory",
                                                   full);
                        return -errno;
                }
                safe_close(cur);
                cur = next;
        }
        return TAKE_FD(cur);
}

/* Returns a directory fd for parent (borrowed: owned by the cache or the unpacker). */
static int open_parent(Unpacker *u, const char *parent, const char *full) {
        int fd;

        if (!*parent)
                return u->root_fd;
        if (u->parent_path && streq(u->parent_path, parent))
                return u->parent_fd;
        unpacker_drop_cache(u);
        fd = open_beneath(u->root_fd, parent);
        if (fd == -ELOOP || fd == -EXDEV || fd == -ENOTDIR)
                return store_error(u->s, -EPERM, "layer entry %s goes through a symlink or non-directory",
                                   full);
        if (fd < 0)
                fd = walk_create(u, parent, full); /* missing parents, or no openat2 */
        if (fd < 0)
                return fd;
        u->parent_path = strdup(parent);
        if (!u->parent_path) {
                safe_close(fd);
                return -ENOMEM;
        }
        u->parent_fd = fd;
        return fd;
}

static int split_open(Unpacker *u, const char *path, const char **ret_name) {
        _cleanup_free_ char *parent = NULL;
        const char *slash = strrchr(path, '/');

        if (!slash) {
                *ret_name = path;
                return u->root_fd;
        }
        parent = strndup(path, (size_t) (slash - path));
        if (!parent)
                return -ENOMEM;
        *ret_name = slash + 1;
        return open_parent(u, parent, path);
}

/* Makes room for a new entry: a later entry for the same path replaces the earlier one, except
 * that a directory over a directory merges. */
static int remove_existing(Unpacker *u, int pfd, const char *name, bool keep_dir) {
        struct stat st;
        int r;

        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (keep_dir && S_ISDIR(st.st_mode))
                return 1;
        r = rm_rf_at(pfd, name, NULL);
        /* The cached parent may have been below what was removed; callers re-open their parent. */
        unpacker_drop_cache(u);
        return r;
}

/* created_mode: the permission bits the entry already has (a regular file created with its final
 * bits under umask 0), or (mode_t) -1 when unknown. */
static int set_owner_mode(Unpacker *u, int fd, const char *name, struct archive_entry *e, bool is_link,
                          mode_t created_mode) {
        uid_t uid = (uid_t) archive_entry_uid(e);
        gid_t gid = (gid_t) archive_entry_gid(e);
        mode_t mode = archive_entry_perm(e) & 07777;
        int r;

        /* Ownership is part of the image; unprivileged loaders cannot keep it and do not try. */
        if (u->is_root && (uid != 0 || gid != 0)) {
                r = name ? fchownat(fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) : fchown(fd, uid, gid);
                if (r < 0)
                        return -errno;
        }
        if (is_link)
                return 0;
        /* One syscall per file saved: chown only clears set-id bits, which created_mode never has. */
        if (created_mode == mode)
                return 0;
        /* After chown, which clears set-id bits. */
        r = name ? fchmodat(fd, name, mode, 0) : fchmod(fd, mode);
        return r < 0 ? -errno : 0;
}

static void set_times(int fd, const char *name, struct archive_entry *e) {
        struct timespec ts[2] = {
                {.tv_sec = archive_entry_atime_is_set(e) ? archive_entry_atime(e) : archive_entry_mtime(e),
                 .tv_nsec = archive_entry_atime_is_set(e) ? archive_entry_atime_nsec(e)
                                                          : archive_entry_mtime_nsec(e)},
                {.tv_sec = archive_entry_mtime(e), .tv_nsec = archive_entry_mtime_nsec(e)},
        };

        if (name)
                (void) utimensat(fd, name, ts, AT_SYMLINK_NOFOLLOW);
        else
                (void) futimens(fd, ts);
}

static int set_xattrs(int fd, struct archive_entry *e) {
        const char *name;
        const void *value;
        size_t size;

        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
                /* overlay's own attributes (redirect, metacopy, opaque) must come from us only. */
                if (!name || strncmp(name, OVERLAY_XATTR_PREFIX, strlen(OVERLAY_XATTR_PREFIX)) == 0)
                        continue;
                if (fsetxattr(fd, name, value, size, 0) < 0 && errno != ENOTSUP && errno != EPERM)
                        return -errno;
        }
        return 0;
}

/* Writes the entry's data; *ret_end is where the last data block ended. */
static int write_data(Unpacker *u, struct archive *a, int fd, const char *path, la_int64_t *ret_end) {
        const void *buf;
        size_t size;
        la_int64_t offset;
        int r;

        for (;;) {
                r = archive_read_data_block(a, &buf, &size, &offset);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN)
                        return store_error(u->s, -EBADMSG, "layer data of %s: %s", path,
                                           archive_error_string(a));
                while (size > 0) {
                        ssize_t n = pwrite(fd, buf, size, offset);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                return store_error(u->s, -errno, "writing %s: %m", path);
                        }
                        buf = (const char *) buf + n;
                        size -= (size_t) n;
                        offset += n;
                }
                *ret_end = offset;
        }
        return 0;
}

static int unpack_entry(Unpacker *u, struct archive *a, struct archive_entry *e) {
        _cleanup_free_ char *path = NULL, *link_path = NULL;
        const char *name, *hardlink;
        mode_t type = archive_entry_filetype(e);
        int pfd, r;

        if (u->cancel && atomic_load_explicit(u->cancel, memory_order_relaxed))
                return -ECANCELED;
        r = path_normalize(u->s, archive_entry_pathname(e), &path);
        if (r < 0)
                return r;
        if (!*path)
                return 0; /* "./": the layer directory itself */
        pfd = split_open(u, path, &name);
        if (pfd < 0)
                return pfd;

        if (strncmp(name, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0) {
                const char *target = name + strlen(WHITEOUT_PREFIX);

                if (streq(name, WHITEOUT_OPAQUE)) {
                        if (fsetxattr(pfd, OVERLAY_XATTR_PREFIX "opaque", "y", 1, 0) < 0)
                                return store_error(u->s, -errno, "cannot mark %s opaque: %m", path);
                        return 0;
                }
                if (strncmp(target, WHITEOUT_PREFIX, strlen(WHITEOUT_PREFIX)) == 0)
                        return 0; /* other AUFS metadata (.wh..wh.plnk etc.) has no overlay meaning */
                if (!*target || streq(target, ".") || streq(target, ".."))
                        return store_error(u->s, -EPERM, "bad whiteout %s", path);
                r = remove_existing(u, pfd, target, false);
                if (r < 0)
                        return r;
                pfd = split_open(u, path, &name);
                if (pfd < 0)
                        return pfd;
                if (mknodat(pfd, target, S_IFCHR | 0000, makedev(0, 0)) < 0)
                        return store_error(u->s, -errno, "cannot create whiteout for %s: %m", path);
                return 0;
        }

        hardlink = archive_entry_hardlink(e);
        if (hardlink) {
                const char *tname;
                _cleanup_close_ int tfd_owned = -EBADF;
                int tfd;
                char *slash;

                r = path_normalize(u->s, hardlink, &link_path);
                if (r < 0)
                        return r;
                if (!*link_path)
                        return store_error(u->s, -EPERM, "hard link %s to the layer root", path);
                slash = strrchr(link_path, '/');
                if (slash) {
                        *slash = '\0';
                        tfd = tfd_owned = open_beneath(u->root_fd, link_path);
                        if (tfd_owned == -ENOSYS)
                                tfd = tfd_owned = walk_create(u, link_path, hardlink);
                        if (tfd < 0)
                                return store_error(u->s, -EPERM,
                                                   "hard link %s -> %s leaves the layer or is missing", path,
                                                   hardlink);
                        tname = slash + 1;
                } else {
                        tfd = u->root_fd;
                        tname = link_path;
                }
                r = remove_existing(u, pfd, name, false);
                if (r < 0)
                        return r;
                pfd = split_open(u, path, &name);
                if (pfd < 0)
                        return pfd;
                /* flags 0: a link to a symlink links the symlink itself, never what it points to. */
                if (linkat(tfd, tname, pfd, name, 0) < 0)
                        return store_error(u->s, -errno, "hard link %s -> %s: %m", path, hardlink);
                return 0;
        }

        switch (type) {
        case AE_IFDIR: {
                _cleanup_close_ int dfd = -EBADF;

                r = remove_existing(u, pfd, name, true);
                if (r < 0)
                        return r;
                pfd = split_open(u, path, &name);
                if (pfd < 0)
                        return pfd;
                if (r == 0 && mkdirat(pfd, name, 0700) < 0)
                        return store_error(u->s, -errno, "mkdir %s: %m", path);
                dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (dfd < 0)
                        return store_error(u->s, -errno, "open %s: %m", path);
                r = set_owner_mode(u, dfd, NULL, e, false, (mode_t) -1);
                if (r >= 0)
                        r = set_xattrs(dfd, e);
                if (r < 0)
                        return store_error(u->s, r, "metadata of %s: %m", path);
                return 0;
        }
        case AE_IFREG: {
                _cleanup_close_ int fd = -EBADF;
                /* Under umask 0 the file gets its final permission bits (never set-id ones) at once;
                 * it is in the private staging directory until the load commits. */
                mode_t cmode = u->umask_zero ? archive_entry_perm(e) & 0777 : 0600;
                la_int64_t end = 0;

                fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, cmode);
                if (fd < 0 && errno == EEXIST) {
                        r = remove_existing(u, pfd, name, false);
                        if (r < 0)
                                return r;
                        pfd = split_open(u, path, &name);
                        if (pfd < 0)
                                return pfd;
                        fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, cmode);
                }
                if (fd < 0)
                        return store_error(u->s, -errno, "create %s: %m", path);
                r = write_data(u, a, fd, path, &end);
                if (r < 0)
                        return r;
                /* Sparse files end in a hole that no data block covers. */
                if (archive_entry_size_is_set(e) && end < archive_entry_size(e) &&
                    ftruncate(fd, archive_entry_size(e)) < 0)
                        return store_error(u->s, -errno, "truncate %s: %m", path);
                r = set_owner_mode(u, fd, NULL, e, false, u->umask_zero ? cmode : (mode_t) -1);
                if (r >= 0)
                        r = set_xattrs(fd, e);
                if (r < 0)
                        return store_error(u->s, r, "metadata of %s: %m", path);
                set_times(fd, NULL, e);
                return 0;
        }
        case AE_IFLNK:
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO:
                r = remove_existing(u, pfd, name, false);
                if (r < 0)
                        return r;
                pfd = split_open(u, path, &name);
                if (pfd < 0)
                        return pfd;
                if (type == AE_IFLNK) {
                        const char *target = archive_entry_symlink(e);
                        /* The target is stored, never followed by us: no check needed. */
                        if (!target || symlinkat(target, pfd, name) < 0)
                                return store_error(u->s, target ? -errno : -EBADMSG, "symlink %s: %m", path);
                } else if (mknodat(pfd, name, type | (archive_entry_perm(e) & 07777),
                                   archive_entry_rdev(e)) < 0)
                        return store_error(u->s, -errno, "mknod %s: %m", path);
                r = set_owner_mode(u, pfd, name, e, type == AE_IFLNK, (mode_t) -1);
                if (r < 0)
                        return store_error(u->s, r, "metadata of %s: %m", path);
                set_times(pfd, name, e);
                return 0;
        default:
                return 0; /* sockets and unknown types carry nothing an image needs */
        }
}

static la_ssize_t raw_read_cb(struct archive *a, void *userdata, const void **buf) {
        Unpacker *u = userdata;
        size_t size;
        la_int64_t offset;
        int r;

        if (u->raw_eof)
                return 0;
        r = archive_read_data_block(u->raw, buf, &size, &offset);
        if (r == ARCHIVE_EOF) {
                u->raw_eof = true;
                return 0;
        }
        if (r < ARCHIVE_WARN) {
                archive_set_error(a, EIO, "%s", archive_error_string(u->raw));
                return -1;
        }
        sha256_update(&u->hash, *buf, size);
        u->size += size;
        return (la_ssize_t) size;
}

int layer_unpack(ImageStore *s, int blob_fd, int dir_fd, const LayerUnpackOptions *o,
                 LayerUnpackResult *ret) {
        Unpacker u = {
                .s = s,
                .root_fd = dir_fd,
                .parent_fd = -EBADF,
                .is_root = geteuid() == 0,
                .umask_zero = o && o->umask_zero,
                .cancel = o ? o->cancel : NULL,
        };
        struct archive *tar = NULL;
        struct archive_entry *e;
        LayerUnpackResult res = {};
        int r;

        r = sha256_init(&u.hash);
        if (r < 0)
                return r;
        u.raw = archive_read_new();
        tar = archive_read_new();
        if (!u.raw || !tar) {
                r = -ENOMEM;
                goto finish;
        }
        /* Layers are tar streams, compressed or not; "raw" hands us the decompressed bytes. */
        archive_read_support_filter_all(u.raw);
        archive_read_support_format_raw(u.raw);
        archive_read_support_format_empty(u.raw);
        archive_read_support_format_tar(tar);
        archive_read_support_format_empty(tar);
        if (archive_read_open_fd(u.raw, blob_fd, UNPACK_READ_BLOCK) != ARCHIVE_OK ||
            archive_read_next_header(u.raw, &e) < ARCHIVE_WARN) {
                r = store_error(s, -EBADMSG, "layer is not readable: %s", archive_error_string(u.raw));
                goto finish;
        }
        if (archive_read_open(tar, &u, NULL, raw_read_cb, NULL) != ARCHIVE_OK) {
                r = store_error(s, -EBADMSG, "layer is not a tar archive: %s", archive_error_string(tar));
                goto finish;
        }
        for (;;) {
                r = archive_read_next_header(tar, &e);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        r = store_error(s, -EBADMSG, "corrupt layer: %s", archive_error_string(tar));
                        goto finish;
                }
                r = unpack_entry(&u, tar, e);
                if (r < 0)
                        goto finish;
        }
        /* The diff ID covers the whole uncompressed stream, including padding after the last entry. */
        for (;;) {
                const void *buf;
                la_ssize_t n = raw_read_cb(tar, &u, &buf);
                if (n == 0)
                        break;
                if (n < 0) {
                        r = store_error(s, -EBADMSG, "corrupt layer: %s", archive_error_string(u.raw));
                        goto finish;
                }
        }
        r = sha256_final(&u.hash, res.diff_id);
        if (r < 0)
                goto finish;
        res.size = u.size;
        *ret = res;
        r = 0;
finish:
        unpacker_drop_cache(&u);
        sha256_done(&u.hash);
        archive_read_free(tar);
        archive_read_free(u.raw);
        return r;
}
