/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* container image load | ls | rm | inspect | tag | prune | save (docs/cli.md, docs/images.md).
 * The store belongs to the API server; archives travel as file descriptors, never through us. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Loads and saves of large images run for a while: a generous deadline, not the default one. */
#define CLI_IMAGE_TRANSFER_TIMEOUT_USEC (3600ull * 1000000ull)
/* Width of the REPOSITORY column's buffer (names are at most 255 bytes). */
#define IMAGE_REPO_COLUMN_MAX 256u

static void image_help(FILE *f) {
        fputs("Usage: container image COMMAND\n"
              "  load [-i FILE] [--name NAME:TAG]   load an OCI or docker archive (default: stdin)\n"
              "  ls [-q] [--format table|json]      list images\n"
              "  rm [-f] IMAGE...                   remove images (-f: even if containers use them)\n"
              "  inspect IMAGE...                   show images as JSON\n"
              "  tag IMAGE NAME[:TAG]               give an image another name\n"
              "  prune [-a]                         remove unnamed images (-a: every unused image)\n"
              "  save -o FILE IMAGE...              write images as an OCI archive\n",
              f);
}

static void size_string(json_int_t v, char *buf, size_t size) {
        static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
        double d = (double) v;
        size_t u = 0;

        /* docker prints decimal units. */
        while (d >= 1000 && u + 1 < ELEMENTSOF(units)) {
                d /= 1000;
                u++;
        }
        snprintf(buf, size, u == 0 ? "%.0f%s" : "%.3g%s", d, units[u]);
}

static int call_simple(const char *route, cxpc_object *req, uint64_t timeout, const char *what,
                       cxpc_object **ret_reply) {
        _cleanup_(cxpc_connection_close_unrefp) cxpc_connection *conn = NULL;

        if (cli_connect(true, &conn) < 0)
                return -ECONNREFUSED;
        return cli_call(conn, req, timeout, what, ret_reply);
}

static void print_loaded(json_t *images) {
        size_t i, k;
        json_t *img, *n;

        json_array_foreach(images, i, img) {
                json_t *names = json_object_get(img, "names");
                if (json_array_size(names) == 0)
                        printf("Loaded image ID: %s\n",
                               json_string_value(json_object_get(img, "configDigest")));
                json_array_foreach(names, k, n) printf("Loaded image: %s\n", json_string_value(n));
        }
}

static int image_load(int argc, char **argv) {
        static const struct option options[] = {
                {"input", required_argument, NULL, 'i'},
                {"name", required_argument, NULL, 'n'},
                {"quiet", no_argument, NULL, 'q'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        _cleanup_(json_decrefp) json_t *images = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *input = NULL, *name = NULL;
        bool quiet = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "i:qh", options, NULL)) >= 0)
                switch (c) {
                case 'i':
                        input = optarg;
                        break;
                case 'n':
                        name = optarg;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        image_help(stdout);
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (optind < argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image load", "invalidArgument",
                                 "unexpected argument %s (use -i FILE)", argv[optind]);
        if (input && !streq(input, "-")) {
                fd = open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image load", "notFound", "%s: %m",
                                         input);
        } else {
                if (isatty(STDIN_FILENO))
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image load", "invalidArgument",
                                         "stdin is a terminal: give -i FILE or redirect an archive");
                fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image load", "internalError", "%m");
        }
        r = cli_request(APISERVER_ROUTE_IMAGE_LOAD, NULL, &req);
        if (r >= 0)
                r = cxpc_dict_set_fd(req, "fd", fd);
        if (r >= 0 && name)
                r = cxpc_dict_set_string(req, "name", name);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image load", "internalError", "%s",
                                 strerror(-r));
        fd = safe_close(fd); /* the server holds the only copy now that matters */
        if (call_simple(APISERVER_ROUTE_IMAGE_LOAD, req, CLI_IMAGE_TRANSFER_TIMEOUT_USEC,
                        "loading the image", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        images = cli_object_to_json(cxpc_dict_get(reply, "images"));
        if (!quiet)
                print_loaded(images);
        return fflush(stdout) == 0 ? 0 : CONTAINER_EXIT_TOOL_FAILED;
}

static void split_name(const char *full, char *repo, size_t repo_size, const char **ret_tag) {
        const char *colon = strrchr(full, ':');

        /* A colon before the last slash belongs to a registry port. */
        if (colon && strchr(colon, '/'))
                colon = NULL;
        snprintf(repo, repo_size, "%.*s", colon ? (int) (colon - full) : (int) strlen(full), full);
        *ret_tag = colon ? colon + 1 : "latest";
}

static void print_image_row(const char *repo, const char *tag, json_t *img) {
        char created[32] = "-", size[32];
        const char *c = json_string_value(json_object_get(img, "created"));

        if (c)
                snprintf(created, sizeof created, "%.19s", c);
        size_string(json_integer_value(json_object_get(img, "size")), size, sizeof size);
        printf("%-32s %-16s %-14s %-21s %s\n", repo, tag, json_string_value(json_object_get(img, "id")),
               created, size);
}

static int image_ls(int argc, char **argv) {
        static const struct option options[] = {
                {"quiet", no_argument, NULL, 'q'},
                {"format", required_argument, NULL, 'F'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        _cleanup_(json_decrefp) json_t *images = NULL;
        OutputFormat format = OUTPUT_TABLE;
        bool quiet = false;
        size_t i, k;
        json_t *img, *n;
        int c;

        while ((c = getopt_long(argc, argv, "qh", options, NULL)) >= 0)
                switch (c) {
                case 'q':
                        quiet = true;
                        break;
                case 'F':
                        if (parse_output_format(optarg, &format) < 0)
                                return CONTAINER_EXIT_TOOL_FAILED;
                        break;
                case 'h':
                        image_help(stdout);
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (optind < argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image ls", "invalidArgument",
                                 "unexpected argument %s", argv[optind]);
        if (cli_request(APISERVER_ROUTE_IMAGE_LIST, NULL, &req) < 0 ||
            call_simple(APISERVER_ROUTE_IMAGE_LIST, req, 0, "listing images", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        images = cli_object_to_json(cxpc_dict_get(reply, "images"));
        if (!json_is_array(images))
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image ls", "internalError", "malformed reply");
        if (quiet) {
                json_array_foreach(images, i, img)
                        printf("%s\n", json_string_value(json_object_get(img, "id")));
        } else if (format == OUTPUT_JSON) {
                if (json_dumpf(images, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
                        return CONTAINER_EXIT_TOOL_FAILED;
                putchar('\n');
        } else {
                printf("%-32s %-16s %-14s %-21s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
                json_array_foreach(images, i, img) {
                        json_t *names = json_object_get(img, "names");
                        if (json_array_size(names) == 0)
                                print_image_row("<none>", "<none>", img);
                        json_array_foreach(names, k, n) {
                                char repo[IMAGE_REPO_COLUMN_MAX];
                                const char *tag;
                                split_name(json_string_value(n) ?: "", repo, sizeof repo, &tag);
                                print_image_row(repo, tag, img);
                        }
                }
        }
        return fflush(stdout) == 0 ? 0 : CONTAINER_EXIT_TOOL_FAILED;
}

static int image_rm(int argc, char **argv) {
        static const struct option options[] = {
                {"force", no_argument, NULL, 'f'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        bool force = false;
        int c, ret = 0;

        while ((c = getopt_long(argc, argv, "fh", options, NULL)) >= 0)
                switch (c) {
                case 'f':
                        force = true;
                        break;
                case 'h':
                        image_help(stdout);
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (optind >= argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image rm", "invalidArgument", "give an image");
        for (int i = optind; i < argc; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL;
                char what[128];

                snprintf(what, sizeof what, "removing image %.64s", argv[i]);
                if (cli_request(APISERVER_ROUTE_IMAGE_REMOVE, NULL, &req) < 0 ||
                    cxpc_dict_set_string(req, "ref", argv[i]) < 0 ||
                    cxpc_dict_set_bool(req, "force", force) < 0 ||
                    call_simple(APISERVER_ROUTE_IMAGE_REMOVE, req, 0, what, NULL) < 0) {
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                        continue;
                }
                printf("%s\n", argv[i]);
        }
        return ret;
}

static int image_inspect(int argc, char **argv) {
        _cleanup_(json_decrefp) json_t *out = json_array();
        int ret = 0;

        if (argc < 2)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image inspect", "invalidArgument",
                                 "give an image");
        if (!out)
                return CONTAINER_EXIT_TOOL_FAILED;
        for (int i = 1; i < argc; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
                char what[128];

                snprintf(what, sizeof what, "inspecting image %.64s", argv[i]);
                if (cli_request(APISERVER_ROUTE_IMAGE_INSPECT, NULL, &req) < 0 ||
                    cxpc_dict_set_string(req, "ref", argv[i]) < 0 ||
                    call_simple(APISERVER_ROUTE_IMAGE_INSPECT, req, 0, what, &reply) < 0) {
                        ret = CONTAINER_EXIT_TOOL_FAILED;
                        continue;
                }
                (void) json_array_append_new(out, cli_object_to_json(cxpc_dict_get(reply, "image")));
        }
        if (json_array_size(out) > 0 || ret == 0) {
                (void) json_dumpf(out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                putchar('\n');
        }
        return ret;
}

static int image_tag(int argc, char **argv) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL;

        if (argc != 3)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image tag", "invalidArgument",
                                 "usage: container image tag IMAGE NAME[:TAG]");
        if (cli_request(APISERVER_ROUTE_IMAGE_TAG, NULL, &req) < 0 ||
            cxpc_dict_set_string(req, "ref", argv[1]) < 0 ||
            cxpc_dict_set_string(req, "name", argv[2]) < 0 ||
            call_simple(APISERVER_ROUTE_IMAGE_TAG, req, 0, "tagging the image", NULL) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        return 0;
}

static int image_prune(int argc, char **argv) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        int64_t removed = 0, freed = 0;
        bool all = false;
        char size[32];

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "-a") || streq(argv[i], "--all"))
                        all = true;
                else if (streq(argv[i], "-f") || streq(argv[i], "--force"))
                        ; /* docker's "no confirmation": we never ask */
                else
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image prune", "invalidArgument",
                                         "unexpected argument %s", argv[i]);
        }
        if (cli_request(APISERVER_ROUTE_IMAGE_PRUNE, NULL, &req) < 0 ||
            cxpc_dict_set_bool(req, "all", all) < 0 ||
            call_simple(APISERVER_ROUTE_IMAGE_PRUNE, req, 0, "pruning images", &reply) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        (void) cxpc_dict_get_int64(reply, "removed", &removed);
        (void) cxpc_dict_get_int64(reply, "freedBytes", &freed);
        size_string(freed, size, sizeof size);
        printf("Deleted images: %lld\nTotal reclaimed space: %s\n", (long long) removed, size);
        return fflush(stdout) == 0 ? 0 : CONTAINER_EXIT_TOOL_FAILED;
}

static int image_save(int argc, char **argv) {
        static const struct option options[] = {
                {"output", required_argument, NULL, 'o'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *refs = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *output = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "o:h", options, NULL)) >= 0)
                switch (c) {
                case 'o':
                        output = optarg;
                        break;
                case 'h':
                        image_help(stdout);
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        if (optind >= argc)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image save", "invalidArgument",
                                 "give an image");
        if (!output && isatty(STDOUT_FILENO))
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image save", "invalidArgument",
                                 "stdout is a terminal: give -o FILE or redirect");
        r = cxpc_array_new(&refs);
        for (int i = optind; r >= 0 && i < argc; i++) {
                _cleanup_(cxpc_object_unrefp) cxpc_object *s = NULL;
                r = cxpc_string_new(argv[i], &s);
                if (r >= 0)
                        r = cxpc_array_append(refs, s);
        }
        if (r >= 0)
                r = cli_request(APISERVER_ROUTE_IMAGE_SAVE, NULL, &req);
        if (r >= 0)
                r = cxpc_dict_set(req, "refs", refs);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image save", "internalError", "%s",
                                 strerror(-r));
        if (output) {
                fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
                if (fd < 0)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image save", "invalidArgument",
                                         "%s: %m", output);
        } else {
                fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
                if (fd < 0)
                        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image save", "internalError", "%m");
        }
        r = cxpc_dict_set_fd(req, "fd", fd);
        if (r >= 0)
                r = call_simple(APISERVER_ROUTE_IMAGE_SAVE, req, CLI_IMAGE_TRANSFER_TIMEOUT_USEC,
                                "saving images", NULL);
        if (r < 0) {
                /* No half-written archive under the name the user asked for. */
                if (output)
                        (void) unlink(output);
                return CONTAINER_EXIT_TOOL_FAILED;
        }
        return 0;
}

int verb_image(int argc, char **argv) {
        static const struct {
                const char *name;
                int (*fn)(int argc, char **argv);
        } verbs[] = {
                {"load", image_load}, {"ls", image_ls},       {"list", image_ls},
                {"rm", image_rm},     {"remove", image_rm},   {"inspect", image_inspect},
                {"tag", image_tag},   {"prune", image_prune}, {"save", image_save},
        };

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                image_help(argc < 2 ? stderr : stdout);
                return argc < 2 ? CONTAINER_EXIT_TOOL_FAILED : 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[1])) {
                        optind = 0; /* the subcommand parses its own options */
                        return verbs[i].fn(argc - 1, argv + 1);
                }
        return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image", "invalidArgument",
                         "unknown command %s (see container image --help)", argv[1]);
}
