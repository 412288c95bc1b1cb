/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* copyIn / copyOut of the typed client: tar streams made and consumed with libarchive. Kept apart
 * from the routes (runtime-client.c) so that a program that only calls routes (the CLI, the API
 * server) does not load libarchive and what Debian's build of it pulls in. */

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "runtime-client-internal.h"

/* ---- copyIn / copyOut: tar streams through a pipe, produced/consumed on a thread so that the
 * synchronous call and the data flow can proceed together. ---- */

typedef struct TarJob {
        int fd;
        const char *host_path;
        int r;
} TarJob;

/* libarchive reports its own refusals (e.g. "Cannot extract through symlink") with
 * ARCHIVE_ERRNO_MISC, which is -1: never let that turn into a positive "success". */
static int archive_negative_errno(struct archive *a, int fallback) {
        int e = archive_errno(a);
        return e > 0 ? -e : -fallback;
}

static void block_sigpipe(void) {
        sigset_t ss;
        sigemptyset(&ss);
        sigaddset(&ss, SIGPIPE);
        /* A closed pipe must be EPIPE for this thread, not a process-wide death. */
        pthread_sigmask(SIG_BLOCK, &ss, NULL);
}

/* Writes host_path (file or tree) as a pax tar stream; entries are named after its basename. */
static void *tar_writer(void *userdata) {
        TarJob *job = userdata;
        struct archive *disk = NULL, *out = NULL;
        struct archive_entry *entry = NULL;
        _cleanup_free_ char *copy = strdup(job->host_path);
        const char *base;
        size_t parent_len;
        int r = 0;

        block_sigpipe();
        if (!copy) {
                r = -ENOMEM;
                goto finish;
        }
        /* Strip trailing slashes, then split into parent and base name. */
        for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
                copy[n - 1] = 0;
        base = strrchr(copy, '/') ? strrchr(copy, '/') + 1 : copy;
        parent_len = (size_t) (base - copy);

        out = archive_write_new();
        disk = archive_read_disk_new();
        if (!out || !disk) {
                r = -ENOMEM;
                goto finish;
        }
        archive_write_set_format_pax_restricted(out);
        archive_write_set_bytes_in_last_block(out, 1);
        if (archive_write_open_fd(out, job->fd) != ARCHIVE_OK) {
                r = -EIO;
                goto finish;
        }
        archive_read_disk_set_standard_lookup(disk);
        archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
        if (archive_read_disk_open(disk, copy) != ARCHIVE_OK) {
                r = archive_negative_errno(disk, ENOENT);
                goto finish;
        }
        for (;;) {
                const char *path;
                int ar;

                entry = archive_entry_new();
                if (!entry) {
                        r = -ENOMEM;
                        break;
                }
                ar = archive_read_next_header2(disk, entry);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        r = archive_negative_errno(disk, EIO);
                        break;
                }
                archive_read_disk_descend(disk);
                path = archive_entry_pathname(entry);
                /* Name entries relative to the parent directory of host_path. */
                if (path && strncmp(path, copy, parent_len) == 0)
                        archive_entry_copy_pathname(entry, path + parent_len);
                if (archive_write_header(out, entry) < ARCHIVE_WARN) {
                        r = archive_negative_errno(out, EIO);
                        break;
                }
                if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0) {
                        int fd = open(archive_entry_sourcepath(entry), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                        char buf[64 * 1024];
                        ssize_t n;
                        if (fd < 0) {
                                r = negative_errno();
                                break;
                        }
                        while ((n = read(fd, buf, sizeof(buf))) > 0)
                                if (archive_write_data(out, buf, (size_t) n) < 0) {
                                        n = -1;
                                        break;
                                }
                        safe_close(fd);
                        if (n < 0) {
                                r = -EIO;
                                break;
                        }
                }
                archive_entry_free(entry);
                entry = NULL;
        }
finish:
        archive_entry_free(entry);
        if (out) {
                if (archive_write_close(out) != ARCHIVE_OK && r == 0)
                        r = -EIO;
                archive_write_free(out);
        }
        if (disk)
                archive_read_free(disk);
        job->fd = safe_close(job->fd);
        job->r = r;
        return NULL;
}

/* Extracts a tar stream into host_path: a single top-level entry becomes host_path itself unless
 * host_path is an existing directory, in which case entries land inside it (like cp). */
/* host_path with the symlinks of its existing part resolved (the parent, or host_path itself if
 * it is a directory): SECURE_SYMLINKS refuses every symlink on an absolute path, also in the
 * prefix the user chose (e.g. a symlinked /tmp); it must only judge what the stream adds. */
static int resolve_host_path(const char *host_path, bool into_dir, char **ret) {
        _cleanup_free_ char *copy = strdup(host_path), *dir = NULL;
        char *slash, *t;

        if (!copy)
                return -ENOMEM;
        for (size_t n = strlen(copy); n > 1 && copy[n - 1] == '/'; n--)
                copy[n - 1] = 0;
        if (into_dir) {
                t = realpath(copy, NULL);
                if (!t)
                        return negative_errno();
                *ret = t;
                return 0;
        }
        slash = strrchr(copy, '/');
        if (slash == copy)
                dir = strdup("/");
        else if (slash) {
                *slash = 0;
                dir = realpath(copy, NULL);
                if (!dir)
                        return negative_errno();
        } else
                dir = realpath(".", NULL);
        if (!dir)
                return -ENOMEM;
        if (asprintf(&t, "%s/%s", streq(dir, "/") ? "" : dir, slash ? slash + 1 : copy) < 0)
                return -ENOMEM;
        *ret = t;
        return 0;
}

static void *tar_reader(void *userdata) {
        TarJob *job = userdata;
        struct archive *in = NULL, *disk = NULL;
        struct archive_entry *entry;
        _cleanup_free_ char *host_path = NULL;
        struct stat st;
        bool into_dir = stat(job->host_path, &st) == 0 && S_ISDIR(st.st_mode);
        int r;

        block_sigpipe();
        r = resolve_host_path(job->host_path, into_dir, &host_path);
        if (r < 0)
                goto finish;
        in = archive_read_new();
        disk = archive_write_disk_new();
        if (!in || !disk) {
                r = -ENOMEM;
                goto finish;
        }
        archive_read_support_format_tar(in);
        archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                     ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                     ARCHIVE_EXTRACT_SECURE_NODOTDOT);
        /* Not SECURE_NOABSOLUTEPATHS: entry names are checked below and then rewritten to
         * absolute paths under host_path. */
        archive_write_disk_set_standard_lookup(disk);
        if (archive_read_open_fd(in, job->fd, 64 * 1024) != ARCHIVE_OK) {
                r = -EIO;
                goto finish;
        }
        for (;;) {
                _cleanup_free_ char *dest = NULL;
                const char *name, *rest;
                int ar = archive_read_next_header(in, &entry);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        r = -EIO;
                        break;
                }
                name = archive_entry_pathname(entry);
                if (!name || name[0] == '/' || strstr(name, "..")) {
                        r = -EPERM;
                        break;
                }
                rest = strchr(name, '/');
                if (into_dir)
                        r = asprintf(&dest, "%s/%s", host_path, name) < 0 ? -ENOMEM : 0;
                else
                        r = asprintf(&dest, "%s%s", host_path, rest ?: "") < 0 ? -ENOMEM : 0;
                if (r < 0)
                        break;
                archive_entry_copy_pathname(entry, dest);
                /* Hard links inside the stream point at other entries: remap them the same way. */
                if (archive_entry_hardlink(entry)) {
                        _cleanup_free_ char *hl = NULL;
                        const char *h = archive_entry_hardlink(entry), *hrest = strchr(h, '/');
                        if (strstr(h, "..") || h[0] == '/') {
                                r = -EPERM;
                                break;
                        }
                        if (asprintf(&hl, into_dir ? "%s/%s" : "%s%s", host_path,
                                     into_dir ? h : (hrest ?: "")) < 0) {
                                r = -ENOMEM;
                                break;
                        }
                        archive_entry_copy_hardlink(entry, hl);
                }
                if (archive_read_extract2(in, entry, disk) < ARCHIVE_WARN) {
                        r = archive_negative_errno(disk, EIO);
                        break;
                }
        }
finish:
        if (in)
                archive_read_free(in);
        if (disk)
                archive_write_free(disk);
        job->fd = safe_close(job->fd);
        job->r = r;
        return NULL;
}

/* Sends the request (which holds one end of the pipe) while a thread runs the tar side on the other
 * end, fd. The request is dropped once sent: it holds our only other copy of the pipe, so the
 * worker then sees EOF (or EPIPE) instead of blocking when the service stops. */
static int call_with_tar_job(RuntimeClient *c, cxpc_object **request, int fd, const char *host_path,
                             void *(*worker)(void *), const char *what) {
        TarJob job = {.fd = fd, .host_path = host_path};
        pthread_t t;
        int r;

        r = pthread_create(&t, NULL, worker, &job);
        if (r != 0) {
                safe_close(fd);
                return runtime_client_set_local_error(c, -r, what);
        }
        r = runtime_client_call(c, *request, 0, NULL);
        *request = cxpc_object_unref(*request);
        pthread_join(t, NULL);
        if (r < 0)
                return r;
        if (job.r < 0)
                return runtime_client_set_local_error(c, job.r, what);
        return 0;
}

int runtime_client_copy_in(RuntimeClient *c, const char *host_path, const char *destination_path,
                           uint32_t file_mode, bool create_parents) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int p[2], r;

        assert_return(c && host_path && destination_path, -EINVAL);
        if (access(host_path, R_OK) < 0)
                return runtime_client_set_local_error(c, negative_errno(), host_path);
        r = runtime_client_new_request(c, "copyIn", &m);
        if (r < 0)
                return r;
        if (pipe2(p, O_CLOEXEC) < 0)
                return runtime_client_set_local_error(c, negative_errno(), "pipe");
        r = cxpc_dict_set_string(m, "destinationPath", destination_path);
        if (r >= 0)
                r = cxpc_dict_set_string(m, "sourcePath", host_path);
        if (r >= 0)
                r = cxpc_dict_set_fd(m, "fd", p[0]);
        if (r >= 0 && file_mode)
                r = cxpc_dict_set_int64(m, "fileMode", file_mode);
        if (r >= 0)
                r = cxpc_dict_set_bool(m, "createParents", create_parents);
        safe_close(p[0]);
        if (r < 0) {
                safe_close(p[1]);
                return runtime_client_set_local_error(c, r, "copyIn");
        }
        return call_with_tar_job(c, &m, p[1], host_path, tar_writer, "copyIn: writing the tar stream");
}

int runtime_client_copy_out(RuntimeClient *c, const char *source_path, const char *host_path,
                            bool create_parents) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        _cleanup_free_ char *parent = NULL;
        int p[2], r;

        assert_return(c && source_path && host_path, -EINVAL);
        parent = strdup(host_path);
        if (!parent)
                return runtime_client_set_local_error(c, -ENOMEM, "copyOut");
        if (strrchr(parent, '/') && strrchr(parent, '/') != parent) {
                *strrchr(parent, '/') = 0;
                if (access(parent, W_OK) < 0) {
                        if (!create_parents)
                                return runtime_client_set_local_error(c, negative_errno(), parent);
                        for (char *s = parent + 1; *s; s++)
                                if (*s == '/') {
                                        *s = 0;
                                        (void) mkdir(parent, 0755);
                                        *s = '/';
                                }
                        if (mkdir(parent, 0755) < 0 && errno != EEXIST)
                                return runtime_client_set_local_error(c, negative_errno(), parent);
                }
        }
        r = runtime_client_new_request(c, "copyOut", &m);
        if (r < 0)
                return r;
        if (pipe2(p, O_CLOEXEC) < 0)
                return runtime_client_set_local_error(c, negative_errno(), "pipe");
        r = cxpc_dict_set_string(m, "sourcePath", source_path);
        if (r >= 0)
                r = cxpc_dict_set_string(m, "destinationPath", host_path);
        if (r >= 0)
                r = cxpc_dict_set_fd(m, "fd", p[1]);
        if (r >= 0)
                r = cxpc_dict_set_bool(m, "createParents", create_parents);
        safe_close(p[1]);
        if (r < 0) {
                safe_close(p[0]);
                return runtime_client_set_local_error(c, r, "copyOut");
        }
        return call_with_tar_job(c, &m, p[0], host_path, tar_reader, "copyOut: extracting the tar stream");
}
