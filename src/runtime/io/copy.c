/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <archive.h>
#include <archive_entry.h>
#include <assert.h>
#include <fcntl.h>
#include <iconv.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "io-util.h"
#include "macro.h"

#define COPY_TAR_BLOCK_SIZE 10240

#define strna_(s) ((s) ?: "n/a")

static void archive_entry_freep_(struct archive_entry **e) {
        archive_entry_free(*e);
}

static void archive_freep(struct archive **a) {
        /* archive_read_free/archive_write_free dispatch on the object's own vtable. */
        if (*a)
                (void) archive_free(*a);
}

_printf_(3, 4) static int set_message(char **ret_message, int r, const char *fmt, ...) {
        va_list ap;
        char *m = NULL;

        assert(r < 0);
        if (ret_message) {
                va_start(ap, fmt);
                if (vasprintf(&m, fmt, ap) < 0)
                        m = NULL;
                va_end(ap);
                free(*ret_message);
                *ret_message = m;
        }
        return r;
}

static int archive_error(struct archive *a, int fallback) {
        int e = archive_errno(a);
        return e > 0 ? -e : -fallback;
}

/* A name from a stream is usable if it is relative and has no `..` component. Leading "./"
 * are dropped. Returns the normalized start, or NULL if refused. */
static const char *entry_name_check(const char *name) {
        if (!name || name[0] == '/')
                return NULL;
        while (name[0] == '.' && name[1] == '/')
                name += 2;
        for (const char *p = name; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return NULL;
                p += n;
                p += strspn(p, "/");
        }
        return name;
}

/* Maps a (checked) stream name to its target path; *ret_top tells if it is the destination
 * entry itself (gets file_mode). */
static int entry_target(const char *dir, const char *base, const char *name, char **ret, bool *ret_top) {
        const char *rest = strchr(name, '/');
        bool top;
        char *t;
        int k;

        if (base) {
                /* Replace the first component by the destination's base name. */
                top = !rest || rest[strspn(rest, "/")] == 0;
                k = asprintf(&t, "%s/%s%s", streq(dir, "/") ? "" : dir, base, top ? "" : rest);
        } else {
                top = !rest || rest[strspn(rest, "/")] == 0;
                k = asprintf(&t, "%s/%s", streq(dir, "/") ? "" : dir, name);
        }
        if (k < 0)
                return -ENOMEM;
        *ret = t;
        if (ret_top)
                *ret_top = top;
        return 0;
}

/* Refuses a target whose intermediate components (below dir, which realpath() made symlink-free)
 * include a symlink. Our own check, so the rule does not depend on libarchive's version; the
 * chroot of the worker bounds what a racing container process could achieve anyway. */
static int check_no_symlink_below(const char *dir, const char *target) {
        _cleanup_free_ char *t = strdup(target);
        size_t start = streq(dir, "/") ? 1 : strlen(dir) + 1;
        struct stat st;

        if (!t)
                return -ENOMEM;
        for (char *s = t + start; (s = strchr(s, '/')); s++) {
                *s = 0;
                if (lstat(t, &st) == 0 && S_ISLNK(st.st_mode))
                        return -ELOOP;
                *s = '/';
        }
        return 0;
}

int copy_extract_stream(int tar_fd, const char *destination, uint32_t file_mode, bool create_parents,
                        char **ret_message) {
        _cleanup_(archive_freep) struct archive *in = NULL, *disk = NULL;
        _cleanup_free_ char *dest = NULL, *dir = NULL, *base = NULL;
        struct stat st;
        bool into_dir;
        int r;

        assert_return(tar_fd >= 0, -EBADF);
        assert_return(destination && destination[0], -EINVAL);
        assert_return((file_mode & ~07777U) == 0, -EINVAL);

        dest = strdup(destination);
        if (!dest)
                return -ENOMEM;
        for (size_t n = strlen(dest); n > 1 && dest[n - 1] == '/'; n--)
                dest[n - 1] = 0;

        into_dir = stat(dest, &st) == 0 && S_ISDIR(st.st_mode);
        if (into_dir) {
                /* realpath(): the prefix then has no symlink left, so SECURE_SYMLINKS only judges
                 * what the stream adds. */
                dir = realpath(dest, NULL);
                if (!dir)
                        return set_message(ret_message, negative_errno(), "%s: %m", destination);
        } else {
                _cleanup_free_ char *parent = NULL;
                char *slash = strrchr(dest, '/');
                const char *b = slash ? slash + 1 : dest;

                if (!*b || streq(b, ".") || streq(b, ".."))
                        return set_message(ret_message, -EINVAL, "%s: invalid destination", destination);
                base = strdup(b);
                parent = slash ? strndup(dest, slash == dest ? 1 : (size_t) (slash - dest)) : strdup(".");
                if (!base || !parent)
                        return -ENOMEM;
                if (create_parents) {
                        r = mkdir_parents_mode(parent, 0755);
                        if (r < 0)
                                return set_message(ret_message, r, "%s: cannot create: %s", parent,
                                                   strerror(-r));
                }
                dir = realpath(parent, NULL);
                if (!dir)
                        return set_message(ret_message, negative_errno(), "%s: %m", parent);
                if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                        return set_message(ret_message, -ENOTDIR, "%s: not a directory", parent);
        }

        in = archive_read_new();
        disk = archive_write_disk_new();
        if (!in || !disk)
                return -ENOMEM;
        archive_read_support_format_tar(in);
        /* No archive_write_disk_set_standard_lookup(): names would be resolved through NSS inside
         * the container's root. Owners are not restored either. */
        r = archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                         ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                         ARCHIVE_EXTRACT_SECURE_NODOTDOT);
        if (r != ARCHIVE_OK)
                return set_message(ret_message, -EIO, "libarchive: %s", archive_error_string(disk));
        if (archive_read_open_fd(in, tar_fd, COPY_TAR_BLOCK_SIZE) != ARCHIVE_OK)
                return set_message(ret_message, archive_error(in, EIO), "reading tar stream: %s",
                                   archive_error_string(in));

        for (;;) {
                _cleanup_free_ char *target = NULL;
                struct archive_entry *entry;
                const char *name;
                bool top;
                int ar;

                ar = archive_read_next_header(in, &entry);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN)
                        return set_message(ret_message, archive_error(in, EIO), "reading tar stream: %s",
                                           archive_error_string(in));

                name = entry_name_check(archive_entry_pathname(entry));
                if (!name)
                        return set_message(ret_message, -EPERM,
                                           "refusing tar entry '%s': outside of the destination",
                                           strna_(archive_entry_pathname(entry)));
                if (!*name && !base)
                        continue; /* "./" of an existing directory: leave it as it is */
                r = entry_target(dir, base, *name ? name : base, &target, &top);
                if (r < 0)
                        return r;
                r = check_no_symlink_below(dir, target);
                if (r < 0)
                        return set_message(ret_message, -EPERM,
                                           "refusing tar entry '%s': it would be written through a symlink",
                                           name);
                archive_entry_copy_pathname(entry, target);

                if (archive_entry_hardlink(entry)) {
                        _cleanup_free_ char *link = NULL;
                        const char *h = entry_name_check(archive_entry_hardlink(entry));

                        if (!h || !*h)
                                return set_message(ret_message, -EPERM, "refusing hard link '%s'",
                                                   strna_(archive_entry_hardlink(entry)));
                        r = entry_target(dir, base, h, &link, NULL);
                        if (r < 0)
                                return r;
                        archive_entry_copy_hardlink(entry, link);
                }
                if (top && file_mode != 0 && archive_entry_filetype(entry) != AE_IFLNK)
                        archive_entry_set_perm(entry, file_mode);

                ar = archive_read_extract2(in, entry, disk);
                if (ar < ARCHIVE_WARN)
                        return set_message(ret_message, archive_error(disk, EIO), "extracting '%s': %s",
                                           name, archive_error_string(disk));
        }

        if (archive_write_close(disk) != ARCHIVE_OK)
                return set_message(ret_message, archive_error(disk, EIO), "finishing extraction: %s",
                                   archive_error_string(disk));
        return 0;
}

static int copy_file_data(struct archive *out, const char *path) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        buf = malloc(COPY_BUFFER_SIZE);
        if (!buf)
                return -ENOMEM;
        while ((n = read(fd, buf, COPY_BUFFER_SIZE)) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (archive_write_data(out, buf, (size_t) n) != n)
                        return archive_error(out, EIO);
        }
        return 0;
}

int copy_archive_path(const char *source, int tar_fd, char **ret_message) {
        _cleanup_(archive_freep) struct archive *out = NULL, *disk = NULL;
        _cleanup_free_ char *src = NULL;
        size_t parent_len;
        char *slash;
        int r;

        assert_return(source && source[0], -EINVAL);
        assert_return(tar_fd >= 0, -EBADF);

        src = strdup(source);
        if (!src)
                return -ENOMEM;
        for (size_t n = strlen(src); n > 1 && src[n - 1] == '/'; n--)
                src[n - 1] = 0;
        if (access(src, F_OK) < 0)
                return set_message(ret_message, negative_errno(), "%s: %m", source);
        slash = strrchr(src, '/');
        parent_len = slash ? (size_t) (slash - src) + 1 : 0;

        out = archive_write_new();
        disk = archive_read_disk_new();
        if (!out || !disk)
                return -ENOMEM;
        archive_write_set_format_pax_restricted(out);
        archive_write_set_bytes_in_last_block(out, 1);
        /* Follow sourcePath itself if it is a symlink, record symlinks below it as symlinks. */
        archive_read_disk_set_symlink_hybrid(disk);
        /* No archive_read_disk_set_standard_lookup(): no NSS inside a container's root. Do not
         * wander into /proc, /sys or other mounts below the source. */
        archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
        if (archive_write_open_fd(out, tar_fd) != ARCHIVE_OK)
                return set_message(ret_message, archive_error(out, EIO), "writing tar stream: %s",
                                   archive_error_string(out));
        if (archive_read_disk_open(disk, src) != ARCHIVE_OK)
                return set_message(ret_message, archive_error(disk, ENOENT), "%s: %s", source,
                                   archive_error_string(disk));

        for (;;) {
                _cleanup_(archive_entry_freep_) struct archive_entry *entry = archive_entry_new();
                const char *path;
                int ar;

                if (!entry)
                        return -ENOMEM;
                ar = archive_read_next_header2(disk, entry);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN)
                        return set_message(ret_message, archive_error(disk, EIO), "reading %s: %s", source,
                                           archive_error_string(disk));
                (void) archive_read_disk_descend(disk);

                /* Name entries relative to the parent of the source: "name", "name/a", ... */
                path = archive_entry_pathname(entry);
                if (!path || strncmp(path, src, parent_len) != 0 || !path[parent_len])
                        continue; /* only "/" itself: nothing sensible to name it */
                archive_entry_copy_pathname(entry, path + parent_len);

                if (archive_write_header(out, entry) < ARCHIVE_WARN)
                        return set_message(ret_message, archive_error(out, EIO), "writing tar stream: %s",
                                           archive_error_string(out));
                if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0) {
                        r = copy_file_data(out, archive_entry_sourcepath(entry));
                        if (r < 0)
                                return set_message(ret_message, r, "%s: %s", archive_entry_sourcepath(entry),
                                                   strerror(-r));
                }
        }

        if (archive_write_close(out) != ARCHIVE_OK)
                return set_message(ret_message, archive_error(out, EIO), "writing tar stream: %s",
                                   archive_error_string(out));
        return 0;
}

_noreturn_ void copy_worker_main(CopyDirection direction, const CopyOptions *o, int tar_fd, int result_fd) {
        _cleanup_free_ char *msg = NULL;
        CopyResult res = {};
        sigset_t all;
        iconv_t cd;
        int r;

        /* Die with the service; get our own signal state (the loop blocked what it handles). */
        (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
        (void) signal(SIGPIPE, SIG_IGN);
        sigfillset(&all);
        (void) sigprocmask(SIG_UNBLOCK, &all, NULL);

        /* Load glibc's charset conversion tables from the host now: libarchive may need them
         * for pax names, and after chroot they would be read from the container's tree. */
        cd = iconv_open("UTF-8", "ASCII");
        if (cd != (iconv_t) -1)
                iconv_close(cd);

        if (chroot(o->root) < 0 || chdir("/") < 0) {
                r = negative_errno();
                (void) set_message(&msg, r, "entering root %s: %m", o->root);
        } else if (direction == COPY_IN)
                r = copy_extract_stream(tar_fd, o->path, o->file_mode, o->create_parents, &msg);
        else
                r = copy_archive_path(o->path, tar_fd, &msg);

        /* The peer must see EOF on the stream before it learns the result. */
        (void) safe_close(tar_fd);
        res.error = r < 0 ? r : 0;
        if (r < 0)
                (void) snprintf(res.message, sizeof(res.message), "%s", msg ?: strerror(-r));
        (void) !write(result_fd, &res, sizeof(res));
        _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}
