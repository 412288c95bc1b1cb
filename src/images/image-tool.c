/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* image-tool: a thin command-line front end to the image store, for tests and benchmarks.
 *   image-tool --root DIR load FILE|- [--name NAME] [--progress] [--threads N] [--time]
 *   image-tool --root DIR ls [--json]
 *   image-tool --root DIR rm [-f] REF...
 *   image-tool --root DIR inspect REF
 *   image-tool --root DIR config REF
 *   image-tool --root DIR tag REF NAME
 *   image-tool --root DIR prune [-a]
 *   image-tool --root DIR gc
 *   image-tool --root DIR save [-o FILE] REF...
 *   image-tool --root DIR mount ID IMAGE TARGET [--read-only]
 *   image-tool --root DIR umount ID TARGET [--rm]
 *   image-tool --root DIR unref ID
 *   image-tool export ROOTFS [-o FILE] */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>

#include "image-store.h"
#include "macro.h"

static int fail(ImageStore *s, const char *what, int r) {
        const char *why = s ? image_store_last_error(s) : "";

        fprintf(stderr, "image-tool: %s: %s%s%s\n", what, why, *why ? ": " : "", strerror(-r));
        return 1;
}

static void progress(uint64_t done, uint64_t total, void *userdata) {
        if (total > 0)
                fprintf(stderr, "\rloading %llu/%llu MiB (%u%%)", (unsigned long long) (done >> 20),
                        (unsigned long long) (total >> 20), (unsigned) (done * 100 / total));
        else
                fprintf(stderr, "\rloading %llu MiB", (unsigned long long) (done >> 20));
}

static bool has_flag(int argc, char **argv, const char *flag) {
        for (int i = 0; i < argc; i++)
                if (streq(argv[i], flag))
                        return true;
        return false;
}

static const char *flag_value(int argc, char **argv, const char *flag) {
        for (int i = 0; i + 1 < argc; i++)
                if (streq(argv[i], flag))
                        return argv[i + 1];
        return NULL;
}

static int cmd_load(ImageStore *s, int argc, char **argv) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_(image_strv_freep) char **digests = NULL;
        ImageLoadStats st = {};
        ImageLoadOptions o = {.default_name = flag_value(argc, argv, "--name"), .stats = &st};
        const char *threads = flag_value(argc, argv, "--threads");
        int r;

        if (argc < 1)
                return fail(NULL, "load", -EINVAL);
        if (has_flag(argc, argv, "--progress") || isatty(STDERR_FILENO))
                o.progress = progress;
        if (threads)
                o.unpack_threads = (unsigned) strtoul(threads, NULL, 10);
        if (streq(argv[0], "-"))
                fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
        else
                fd = open(argv[0], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail(NULL, argv[0], -errno);
        r = image_store_load(s, fd, &o, &digests);
        if (o.progress)
                fputc('\n', stderr);
        if (r < 0)
                return fail(s, "load", r);
        for (size_t i = 0; digests[i]; i++)
                printf("Loaded image %s\n", digests[i]);
        if (has_flag(argc, argv, "--time"))
                printf("load_ms=%.1f stage_ms=%.1f verify_ms=%.1f unpack_wait_ms=%.1f sync_ms=%.1f "
                       "commit_ms=%.1f "
                       "unpack_cpu_ms=%.1f archive_mib=%.1f layer_mib=%.1f layers=%u discarded=%u "
                       "threads=%u\n",
                       st.total_usec / 1e3, st.stage_usec / 1e3, st.verify_usec / 1e3,
                       st.unpack_wait_usec / 1e3, st.sync_usec / 1e3, st.commit_usec / 1e3,
                       st.unpack_usec / 1e3, st.archive_bytes / 1048576.0, st.layer_bytes / 1048576.0,
                       st.layers_unpacked, st.layers_discarded, st.threads);
        return 0;
}

static int cmd_ls(ImageStore *s, int argc, char **argv) {
        ImageInfo *infos = NULL;
        size_t n = 0;
        bool json = has_flag(argc, argv, "--json");
        int r;

        r = image_store_list(s, &infos, &n);
        if (r < 0)
                return fail(s, "ls", r);
        if (json) {
                json_t *a = json_array();
                for (size_t i = 0; i < n; i++) {
                        json_t *names = json_array();
                        for (size_t k = 0; infos[i].names[k]; k++)
                                json_array_append_new(names, json_string(infos[i].names[k]));
                        json_array_append_new(a, json_pack("{s:s, s:s, s:o, s:s?, s:I, s:i}", "digest",
                                                           infos[i].digest, "id", infos[i].config_digest,
                                                           "names", names, "created", infos[i].created,
                                                           "size", (json_int_t) infos[i].size, "containers",
                                                           (int) infos[i].n_containers));
                }
                char *text = json_dumps(a, JSON_INDENT(2));
                puts(text ?: "[]");
                free(text);
                json_decref(a);
        } else {
                printf("%-30s %-12s %-19s %-21s %s\n", "NAME", "TAG", "ID", "CREATED", "SIZE");
                for (size_t i = 0; i < n; i++) {
                        const char *id = infos[i].config_digest + strlen("sha256:");
                        for (size_t k = 0; k == 0 || infos[i].names[k]; k++) {
                                const char *name = infos[i].names[k] ?: "<none>:<none>";
                                const char *colon = strrchr(name, ':');
                                printf("%-30.*s %-12s %-12.12s        %-21s %.1fMB\n", (int) (colon - name),
                                       name, colon + 1, id, infos[i].created ?: "",
                                       (double) infos[i].size / 1e6);
                                if (!infos[i].names[k])
                                        break;
                        }
                }
        }
        image_info_free_many(infos, n);
        return 0;
}

static int print_json(json_t *j) {
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!text)
                return 1;
        puts(text);
        free(text);
        return 0;
}

int main(int argc, char **argv) {
        _cleanup_(image_store_freep) ImageStore *s = NULL;
        const char *root = getenv("IMAGE_STORE_ROOT"), *cmd;
        int r;

        if (argc > 2 && streq(argv[1], "--root")) {
                root = argv[2];
                argv += 2;
                argc -= 2;
        }
        if (argc < 2) {
                fprintf(stderr, "usage: image-tool --root DIR COMMAND ... (see the source header)\n");
                return 2;
        }
        cmd = argv[1];
        argv += 2;
        argc -= 2;

        if (streq(cmd, "export")) {
                const char *o = flag_value(argc, argv, "-o");
                _cleanup_close_ int fd = -EBADF;
                if (argc < 1)
                        return fail(NULL, "export", -EINVAL);
                fd = o ? open(o, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : dup(STDOUT_FILENO);
                if (fd < 0)
                        return fail(NULL, "export", -errno);
                r = image_export_rootfs(argv[0], fd);
                return r < 0 ? fail(NULL, "export", r) : 0;
        }

        if (!root) {
                fprintf(stderr, "image-tool: --root DIR (or $IMAGE_STORE_ROOT) is required\n");
                return 2;
        }
        r = image_store_open(root, &s);
        if (r < 0)
                return fail(NULL, "open store", r);

        if (streq(cmd, "load"))
                return cmd_load(s, argc, argv);
        if (streq(cmd, "ls"))
                return cmd_ls(s, argc, argv);
        if (streq(cmd, "rm")) {
                unsigned flags = has_flag(argc, argv, "-f") ? IMAGE_REMOVE_FORCE : 0;
                int ret = 0;
                for (int i = 0; i < argc; i++) {
                        if (streq(argv[i], "-f"))
                                continue;
                        r = image_store_remove(s, argv[i], flags);
                        if (r < 0)
                                ret = fail(s, argv[i], r);
                        else
                                printf("Removed %s\n", argv[i]);
                }
                return ret;
        }
        if (streq(cmd, "inspect") && argc >= 1) {
                json_t *j = NULL;
                r = image_store_inspect(s, argv[0], &j);
                if (r < 0)
                        return fail(s, "inspect", r);
                r = print_json(j);
                json_decref(j);
                return r;
        }
        if (streq(cmd, "config") && argc >= 1) {
                _cleanup_(image_config_freep) ImageConfig *c = NULL;
                json_t *j;
                r = image_store_get_config(s, argv[0], &c);
                if (r < 0)
                        return fail(s, "config", r);
                j = image_config_to_json(c);
                r = print_json(j);
                json_decref(j);
                return r;
        }
        if (streq(cmd, "tag") && argc >= 2) {
                r = image_store_tag(s, argv[0], argv[1]);
                return r < 0 ? fail(s, "tag", r) : 0;
        }
        if (streq(cmd, "prune") || streq(cmd, "gc")) {
                uint64_t freed = 0;
                if (streq(cmd, "gc"))
                        r = image_store_gc(s, &freed);
                else
                        r = image_store_prune(s, has_flag(argc, argv, "-a") ? IMAGE_PRUNE_ALL : 0, &freed);
                if (r < 0)
                        return fail(s, cmd, r);
                printf("Removed %d image(s), freed %llu bytes\n", r, (unsigned long long) freed);
                return 0;
        }
        if (streq(cmd, "save")) {
                const char *o = flag_value(argc, argv, "-o");
                _cleanup_free_ char **refs = calloc((size_t) argc + 1, sizeof(char *));
                _cleanup_close_ int fd = -EBADF;
                size_t n = 0;
                if (!refs)
                        return fail(NULL, "save", -ENOMEM);
                for (int i = 0; i < argc; i++) {
                        if (streq(argv[i], "-o")) {
                                i++;
                                continue;
                        }
                        refs[n++] = argv[i];
                }
                fd = o ? open(o, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : dup(STDOUT_FILENO);
                if (fd < 0)
                        return fail(NULL, "save", -errno);
                r = image_store_save(s, refs, fd);
                if (r < 0) {
                        if (o)
                                (void) unlink(o);
                        return fail(s, "save", r);
                }
                return 0;
        }
        if (streq(cmd, "mount") && argc >= 3) {
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                r = image_store_mount_rootfs(s, argv[1], argv[0], argv[2],
                                             has_flag(argc, argv, "--read-only") ? IMAGE_MOUNT_READ_ONLY
                                                                                 : 0);
                clock_gettime(CLOCK_MONOTONIC, &b);
                if (r < 0)
                        return fail(s, "mount", r);
                if (has_flag(argc, argv, "--time"))
                        printf("rootfs_ms=%.3f\n", (double) (b.tv_sec - a.tv_sec) * 1e3 +
                                                           (double) (b.tv_nsec - a.tv_nsec) / 1e6);
                return 0;
        }
        if (streq(cmd, "umount") && argc >= 2) {
                r = image_store_umount_rootfs(s, argv[0], argv[1],
                                              has_flag(argc, argv, "--rm") ? IMAGE_UMOUNT_REMOVE : 0);
                return r < 0 ? fail(s, "umount", r) : 0;
        }
        if (streq(cmd, "unref") && argc >= 1) {
                r = image_store_unref_container(s, argv[0]);
                return r < 0 ? fail(s, "unref", r) : 0;
        }
        fprintf(stderr, "image-tool: unknown command or missing arguments: %s\n", cmd);
        return 2;
}
