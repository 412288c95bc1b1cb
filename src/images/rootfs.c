/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Container root filesystems (overlay mounts of the image's layers) and export of a mounted tree. */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "image-internal.h"

#define OVERLAY_OPTIONS_MAX 4096 /* one page: the limit of mount(2)'s data argument */

/* The new mount API takes one lower directory per call ("lowerdir+", Linux 6.8), so the number of
 * layers is not limited by the size of one option string. */
static int mount_overlay_fsapi(char *const *lowers, const char *upper, const char *work, const char *target,
                               bool read_only, bool volatile_upper) {
        _cleanup_close_ int fs = -EBADF, mnt = -EBADF;

        fs = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fs < 0)
                return -errno;
        for (size_t i = 0; lowers[i]; i++)
                if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir+", lowers[i], 0) < 0)
                        return -errno;
        if (upper && (fsconfig(fs, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
                      fsconfig(fs, FSCONFIG_SET_STRING, "workdir", work, 0) < 0))
                return -errno;
        if (upper && volatile_upper && fsconfig(fs, FSCONFIG_SET_FLAG, "volatile", NULL, 0) < 0)
                return -errno;
        if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                return -errno;
        mnt = fsmount(fs, FSMOUNT_CLOEXEC, read_only ? MOUNT_ATTR_RDONLY : 0);
        if (mnt < 0)
                return -errno;
        if (move_mount(mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return -errno;
        return 0;
}

static int mount_overlay_legacy(char *const *lowers, const char *upper, const char *work, const char *target,
                                bool read_only, bool volatile_upper) {
        char opts[OVERLAY_OPTIONS_MAX];
        size_t n = 0;
        int k;

        k = snprintf(opts, sizeof(opts), "lowerdir=");
        n = (size_t) k;
        for (size_t i = 0; lowers[i]; i++) {
                k = snprintf(opts + n, sizeof(opts) - n, "%s%s", i > 0 ? ":" : "", lowers[i]);
                if (k < 0 || (size_t) k >= sizeof(opts) - n)
                        return -E2BIG;
                n += (size_t) k;
        }
        if (upper) {
                k = snprintf(opts + n, sizeof(opts) - n, ",upperdir=%s,workdir=%s%s", upper, work,
                             volatile_upper ? ",volatile" : "");
                if (k < 0 || (size_t) k >= sizeof(opts) - n)
                        return -E2BIG;
        }
        if (mount("overlay", target, "overlay", read_only ? MS_RDONLY : 0, opts) < 0)
                return -errno;
        return 0;
}

static bool path_ok_for_options(const char *p) {
        return !strpbrk(p, ":,\\");
}

_public_ int image_store_mount_rootfs(ImageStore *s, const char *ref, const char *container_id,
                                      const char *target, unsigned flags) {
        _cleanup_close_ int lock = -EBADF;
        _cleanup_(json_decrefp) json_t *index = NULL, *rec = NULL;
        _cleanup_(image_strv_freep) char **lowers = NULL;
        _cleanup_free_ char *upper = NULL, *work = NULL;
        char dir[IMAGE_CONTAINER_ID_MAX + 32], p[PATH_MAX];
        bool read_only = flags & IMAGE_MOUNT_READ_ONLY;
        json_t *layers;
        int r;

        assert_return(s, -EINVAL);
        assert_return(ref, -EINVAL);
        assert_return(store_container_id_valid(container_id), -EINVAL);
        assert_return(target && target[0] == '/', -EINVAL);
        assert_return((flags & ~(IMAGE_MOUNT_READ_ONLY | IMAGE_MOUNT_VOLATILE)) == 0, -EINVAL);
        s->error[0] = '\0';
        if (!path_ok_for_options(s->root))
                return store_error(s, -EINVAL, "store path %s cannot be used in overlay options", s->root);

        lock = store_lock(s);
        if (lock < 0)
                return lock;
        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        r = store_ref_container_locked(s, index, ref, container_id, NULL);
        if (r < 0)
                return r;
        snprintf(dir, sizeof(dir), "containers/%s", container_id);
        snprintf(p, sizeof(p), "%s/ref.json", dir);
        /* The reference is the source of truth: the image itself may have been removed since. */
        r = json_load_at(s->root_fd, p, &rec);
        if (r < 0)
                return store_error(s, r, "cannot read reference of container %s", container_id);
        lock = safe_close(lock);

        layers = json_object_get(rec, "layers");
        lowers = calloc(json_array_size(layers) + 2, sizeof(char *));
        if (!lowers)
                return -ENOMEM;
        /* overlay wants the top layer first; the manifest lists the base first. */
        for (size_t i = json_array_size(layers), n = 0; i > 0; i--) {
                const char *d = json_string_value(json_array_get(layers, i - 1));
                if (!digest_valid(d))
                        return store_error(s, -EBADMSG, "container %s: corrupt reference", container_id);
                if (asprintf(&lowers[n++], "%s/layers/%s", s->root, digest_hex(d)) < 0)
                        return -ENOMEM;
        }
        /* overlay needs a lower directory, and two of them when there is no upper one: an empty
         * directory at the bottom changes nothing in the merged view. */
        if (!lowers[0] || (read_only && !lowers[1])) {
                size_t n = lowers[0] ? 1 : 0;
                snprintf(p, sizeof(p), "%s/lower", dir);
                if (mkdirat(s->root_fd, p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                if (asprintf(&lowers[n], "%s/%s", s->root, p) < 0)
                        return -ENOMEM;
        }
        if (!read_only) {
                FOREACH_STRING(sub, "upper", "work") {
                        snprintf(p, sizeof(p), "%s/%s", dir, sub);
                        if (mkdirat(s->root_fd, p, 0755) < 0 && errno != EEXIST)
                                return -errno;
                }
                if (asprintf(&upper, "%s/%s/upper", s->root, dir) < 0 ||
                    asprintf(&work, "%s/%s/work", s->root, dir) < 0)
                        return -ENOMEM;
        }

        bool volatile_upper = upper && (flags & IMAGE_MOUNT_VOLATILE);
        r = mount_overlay_fsapi(lowers, upper, work, target, read_only, volatile_upper);
        if (r == -ENOSYS || r == -EINVAL)
                r = mount_overlay_legacy(lowers, upper, work, target, read_only, volatile_upper);
        if (r == -EINVAL && volatile_upper) /* a kernel without "volatile" */
                r = mount_overlay_legacy(lowers, upper, work, target, read_only, false);
        if (r < 0)
                return store_error(s, r, "cannot mount overlay root filesystem at %s", target);
        return 0;
}

/* 1 when the unmount had to be lazy (the root filesystem is still in use), else 0 or -errno. */
static int umount_rootfs(ImageStore *s, const char *target) {
        if (!target || umount2(target, UMOUNT_NOFOLLOW) >= 0)
                return 0;
        /* EINVAL: not a mount point (already unmounted), fine. Busy: detach lazily, the
         * directories under it stay until the last user goes. */
        if (errno == EBUSY) {
                if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                        return store_error(s, -errno, "cannot unmount %s: %m", target);
                return 1;
        }
        if (errno != EINVAL && errno != ENOENT)
                return store_error(s, -errno, "cannot unmount %s: %m", target);
        return 0;
}

_public_ int image_store_umount_rootfs(ImageStore *s, const char *container_id, const char *target,
                                       unsigned flags) {
        int r;

        assert_return(s, -EINVAL);
        assert_return(store_container_id_valid(container_id), -EINVAL);
        assert_return((flags & ~IMAGE_UMOUNT_REMOVE) == 0, -EINVAL);
        s->error[0] = '\0';

        r = umount_rootfs(s, target);
        if (r < 0)
                return r;
        if (flags & IMAGE_UMOUNT_REMOVE)
                return image_store_unref_container(s, container_id);
        return 0;
}

_public_ int image_store_umount_rootfs_deferred(ImageStore *s, const char *container_id, const char *target,
                                                char **ret_trash) {
        int r;

        assert_return(s, -EINVAL);
        assert_return(store_container_id_valid(container_id), -EINVAL);
        assert_return(ret_trash, -EINVAL);
        s->error[0] = '\0';

        r = umount_rootfs(s, target);
        if (r < 0)
                return r;
        if (r > 0) {
                /* Still in use: removing synchronously keeps the reference until the upper layer
                 * is really gone (rm_rf does not cross into a mount), as before. */
                r = image_store_unref_container(s, container_id);
                if (r >= 0)
                        *ret_trash = NULL;
                return r;
        }
        return store_unref_container_deferred(s, container_id, ret_trash);
}

_public_ int image_export_rootfs(const char *rootfs, int fd) {
        struct archive *disk = NULL, *out = NULL;
        struct archive_entry_linkresolver *lr = NULL;
        struct archive_entry *e = NULL;
        size_t rootlen;
        int r = 0;

        assert_return(rootfs && rootfs[0] == '/', -EINVAL);
        assert_return(fd >= 0, -EBADF);

        rootlen = strlen(rootfs);
        while (rootlen > 1 && rootfs[rootlen - 1] == '/')
                rootlen--;
        disk = archive_read_disk_new();
        out = archive_write_new();
        lr = archive_entry_linkresolver_new();
        if (!disk || !out || !lr) {
                r = -ENOMEM;
                goto finish;
        }
        archive_read_disk_set_standard_lookup(disk);
        archive_read_disk_set_symlink_physical(disk);
        /* Not into /proc, /sys or volumes mounted below the root. */
        archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS |
                                                     ARCHIVE_READDISK_NO_FFLAGS |
                                                     ARCHIVE_READDISK_NO_SPARSE);
        archive_write_set_format_pax_restricted(out);
        archive_entry_linkresolver_set_strategy(lr, archive_format(out));
        if (archive_write_open_fd(out, fd) != ARCHIVE_OK ||
            archive_read_disk_open(disk, rootfs) != ARCHIVE_OK) {
                r = -EIO;
                goto finish;
        }
        for (;;) {
                struct archive_entry *spare = NULL;
                _cleanup_free_ char *rel = NULL;
                const char *path;

                e = archive_entry_new();
                if (!e) {
                        r = -ENOMEM;
                        goto finish;
                }
                r = archive_read_next_header2(disk, e);
                if (r == ARCHIVE_EOF) {
                        r = 0;
                        break;
                }
                if (r < ARCHIVE_WARN) {
                        r = -EIO;
                        goto finish;
                }
                (void) archive_read_disk_descend(disk);
                path = archive_entry_pathname(e);
                if (!path || strncmp(path, rootfs, rootlen) != 0) {
                        archive_entry_free(e);
                        continue;
                }
                path += rootlen;
                while (*path == '/')
                        path++;
                if (asprintf(&rel, "./%s", path) < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                archive_entry_set_pathname(e, rel);
                archive_entry_linkify(lr, &e, &spare);
                if (e) {
                        if (archive_write_header(out, e) < ARCHIVE_WARN) {
                                r = -EIO;
                                goto finish;
                        }
                        if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
                                const void *buf;
                                size_t size;
                                la_int64_t offset;
                                while (archive_read_data_block(disk, &buf, &size, &offset) == ARCHIVE_OK)
                                        if (archive_write_data(out, buf, size) < 0) {
                                                r = -EIO;
                                                goto finish;
                                        }
                        }
                        archive_entry_free(e);
                }
                e = NULL;
                if (spare)
                        archive_entry_free(spare);
        }
        if (archive_write_close(out) != ARCHIVE_OK)
                r = -EIO;
finish:
        archive_entry_free(e);
        archive_entry_linkresolver_free(lr);
        archive_read_free(disk);
        archive_write_free(out);
        return r;
}
