/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* container-archive: the CLI's commands that need libarchive, cp and export. The CLI executes this
 * helper with its own arguments (container [--root DIR] [--run-dir DIR] cp|export ...), so that
 * libarchive and what it pulls in (libxml2, ICU, libstdc++: about 4 ms of dynamic loading) are
 * never loaded by the other commands. Not meant to be run by hand. */

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "runtime-client.h"

#define EXPORT_BUFFER_SIZE 65536u

/* ---- cp ---- */

/* "ID:PATH" → id and path; a host path (no colon before the first slash) → false. */
static bool split_container_path(const char *arg, char **ret_id, const char **ret_path) {
        const char *colon = strchr(arg, ':');
        const char *slash = strchr(arg, '/');

        if (!colon || (slash && slash < colon) || colon == arg)
                return false;
        *ret_id = strndup(arg, (size_t) (colon - arg));
        *ret_path = colon + 1;
        return *ret_id != NULL;
}

static char *absolute_host_path(const char *p) {
        char cwd[PATH_MAX];
        char *r;

        if (p[0] == '/')
                return strdup(p);
        if (!getcwd(cwd, sizeof cwd) || asprintf(&r, "%s/%s", cwd, p) < 0)
                return NULL;
        return r;
}

int verb_cp(int argc, char **argv) {
        _cleanup_(runtime_client_freep) RuntimeClient *rc = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *ep = NULL;
        _cleanup_free_ char *src_id = NULL, *dst_id = NULL, *host = NULL;
        const char *src_path = NULL, *dst_path = NULL;
        bool src_c, dst_c;
        int r, first = 1;

        if (argc > 1 && (streq(argv[1], "-h") || streq(argv[1], "--help"))) {
                printf("Usage: container cp CONTAINER:SRC_PATH HOST_DEST | HOST_SRC CONTAINER:DEST_PATH\n");
                return 0;
        }
        if (argc > 1 && (streq(argv[1], "-a") || streq(argv[1], "--archive")))
                first++;
        if (argc - first != 2)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "cp", "invalidArgument",
                                 "give a source and a destination");
        src_c = split_container_path(argv[first], &src_id, &src_path);
        dst_c = split_container_path(argv[first + 1], &dst_id, &dst_path);
        if (src_c == dst_c)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "cp", "invalidArgument",
                                 "exactly one of source and destination must be CONTAINER:PATH");
        if ((src_c ? src_path : dst_path)[0] != '/')
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "cp", "invalidArgument",
                                 "the container path must be absolute");
        host = absolute_host_path(src_c ? argv[first + 1] : argv[first]);
        if (!host)
                return CONTAINER_EXIT_TOOL_FAILED;
        if (!src_c && access(host, F_OK) < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "cp", "notFound", "%s: %m", host);
        r = cli_runtime_endpoint(src_c ? src_id : dst_id, &ep);
        if (r < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        r = runtime_client_connect_endpoint(ep, &rc);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "reaching the container", "internalError",
                                 "connecting to its runtime service: %s", strerror(-r));
        r = src_c ? runtime_client_copy_out(rc, src_path, host, false)
                  : runtime_client_copy_in(rc, host, dst_path, 0, false);
        if (r < 0) {
                const RuntimeClientError *e = runtime_client_last_error(rc);
                return cli_error(
                        CONTAINER_EXIT_TOOL_FAILED, "copying",
                        cxpc_error_code_to_string(e->message[0] ? e->code : cxpc_error_code_from_errno(-r))
                                ?: "unknown",
                        "%s", e->message[0] ? e->message : strerror(-r));
        }
        return 0;
}

/* ---- export ---- */

static int export_tree(const char *rootfs, int out_fd) {
        struct archive *disk = archive_read_disk_new(), *out = archive_write_new();
        struct archive_entry *entry = archive_entry_new();
        size_t prefix = strlen(rootfs);
        char buf[EXPORT_BUFFER_SIZE];
        int r = 0;

        if (!disk || !out || !entry) {
                r = -ENOMEM;
                goto finish;
        }
        /* Never leave the tree: no symlink following, no other file systems (/proc of a bind). */
        (void) archive_read_disk_set_symlink_physical(disk);
        (void) archive_read_disk_set_standard_lookup(disk);
        (void) archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
        if (archive_write_set_format_pax_restricted(out) != ARCHIVE_OK ||
            archive_write_open_fd(out, out_fd) != ARCHIVE_OK ||
            archive_read_disk_open(disk, rootfs) != ARCHIVE_OK) {
                r = cli_error(-EIO, "exporting", "internalError", "%s", archive_error_string(disk) ?: archive_error_string(out) ?: "libarchive");
                goto finish;
        }
        for (;;) {
                const char *p;
                _cleanup_free_ char *rel = NULL;
                int k = archive_read_next_header2(disk, entry);

                if (k == ARCHIVE_EOF)
                        break;
                if (k != ARCHIVE_OK && k != ARCHIVE_WARN) {
                        r = cli_error(-EIO, "exporting", "internalError", "%s", archive_error_string(disk));
                        goto finish;
                }
                (void) archive_read_disk_descend(disk);
                p = archive_entry_pathname(entry);
                if (!p || strncmp(p, rootfs, prefix) != 0)
                        continue;
                if (asprintf(&rel, ".%s", p[prefix] ? p + prefix : "/") < 0) {
                        r = -ENOMEM;
                        goto finish;
                }
                archive_entry_set_pathname(entry, rel);
                if (archive_write_header(out, entry) != ARCHIVE_OK) {
                        r = cli_error(-EIO, "exporting", "internalError", "%s", archive_error_string(out));
                        goto finish;
                }
                if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0)
                        for (;;) {
                                la_ssize_t n = archive_read_data(disk, buf, sizeof buf);
                                if (n < 0) {
                                        r = cli_error(-EIO, "exporting", "internalError", "%s",
                                                      archive_error_string(disk));
                                        goto finish;
                                }
                                if (n == 0)
                                        break;
                                if (archive_write_data(out, buf, (size_t) n) < 0) {
                                        r = cli_error(-EIO, "exporting", "internalError", "%s",
                                                      archive_error_string(out));
                                        goto finish;
                                }
                        }
        }
        if (archive_write_close(out) != ARCHIVE_OK)
                r = cli_error(-EIO, "exporting", "internalError", "%s", archive_error_string(out));
finish:
        archive_entry_free(entry);
        archive_read_free(disk);
        archive_write_free(out);
        return r;
}

int verb_export(int argc, char **argv) {
        static const struct option options[] = {
                {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *tmp = NULL;
        const char *output = NULL, *rootfs = NULL;
        cxpc_object *c;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "o:h", options, NULL)) >= 0)
                switch (opt) {
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        printf("Usage: container export [-o FILE] CONTAINER\n");
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (argc - optind != 1)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "export", "invalidArgument",
                                 "give one container");
        if (!output && isatty(STDOUT_FILENO))
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "export", "invalidArgument",
                                 "refusing to write a tar archive to a terminal; use -o FILE or redirect");
        if (cli_connect(true, &conn) < 0 || cli_request(APISERVER_ROUTE_INSPECT, argv[optind], &req) < 0 ||
            cli_call(conn, req, 0, "exporting", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        c = cxpc_dict_get(reply, "container");
        if (cxpc_dict_get_string(c, "rootfs", &rootfs) < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "exporting", "unsupported",
                                 "%s has no root filesystem directory", argv[optind]);
        if (output) {
                /* Written beside the target and renamed: a failed export leaves no partial file. */
                if (asprintf(&tmp, "%s.tmp.XXXXXX", output) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
                fd = mkostemp(tmp, O_CLOEXEC);
                if (fd < 0)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "exporting", "internalError", "%s: %m",
                                         output);
        }
        r = export_tree(rootfs, fd >= 0 ? fd : STDOUT_FILENO);
        if (output) {
                if (r >= 0 && (fchmod(fd, 0644) < 0 || rename(tmp, output) < 0))
                        r = cli_error(negative_errno(), "exporting", "internalError", "%s: %m", output);
                if (r < 0)
                        (void) unlink(tmp);
        }
        return r < 0 ? CONTAINER_EXIT_TOOL_FAILED : 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                {},
        };
        int c;

        (void) signal(SIGPIPE, SIG_IGN);
        while ((c = getopt_long(argc, argv, "+", options, NULL)) >= 0)
                if (!cli_global_option(c, optarg))
                        return CONTAINER_EXIT_TOOL_FAILED;
        if (optind >= argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "container-archive", "invalidArgument",
                                 "run by the container CLI for cp and export");
        argc -= optind;
        argv += optind;
        optind = 0;
        if (streq(argv[0], "cp"))
                return verb_cp(argc, argv);
        if (streq(argv[0], "export"))
                return verb_export(argc, argv);
        return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[0], "invalidArgument", "unknown command");
}
