/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* container image load | ls | rm | inspect | tag | prune | save (docs/cli.md, docs/images.md).
 * The store belongs to the API server; archives travel as file descriptors, never through us. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
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

/* ---- progress of image load on a terminal ----
 * The archive travels as a file descriptor, so the API server reads it directly. For a regular file
 * the server's reads move the file offset this process shares with it (one open file description):
 * polling it gives the bytes read. Anything else (a pipe) is relayed through a pipe of our own, which
 * counts the bytes sent. Drawn on stderr only when it is a terminal, and only after a moment, so that
 * small loads print nothing extra. */
#define PROGRESS_INTERVAL_MSEC 100
#define PROGRESS_DELAY_USEC    (300ull * 1000ull)
#define PROGRESS_RELAY_CHUNK   (1024u * 1024u)
#define PROGRESS_BAR_MAX       40

typedef struct LoadProgress {
        pthread_t thread;
        bool started;
        pthread_mutex_t lock; /* drawing, and stopped */
        bool stopped, drawn;
        int stop_fd;    /* eventfd: the load is over */
        int offset_fd;  /* regular file: shares its offset with the server's descriptor */
        int relay_in;   /* pipe mode: the caller's input ... */
        int relay_out;  /* ... copied into the pipe whose other end the server reads */
        uint64_t total; /* bytes to read, 0 when unknown */
        uint64_t done;
        atomic_bool input_done; /* the relay has copied everything */
        uint64_t start_usec;
} LoadProgress;

static uint64_t mono_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ull + (uint64_t) ts.tv_nsec / 1000ull;
}

static void progress_draw(LoadProgress *p) {
        struct winsize ws = {};
        uint64_t now = mono_usec(), elapsed = now - p->start_usec;
        double mib = (double) p->done / 1048576.0, rate = elapsed > 0 ? mib * 1e6 / (double) elapsed : 0;
        char text[128], bar[PROGRESS_BAR_MAX + 3] = "";
        int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;

        if (elapsed < PROGRESS_DELAY_USEC)
                return;
        if (p->total > 0 && p->done < p->total) {
                unsigned pct = (unsigned) (p->done * 100 / p->total);
                /* The bar takes what the text leaves of the line, within bounds. */
                int width = MIN(cols - 48, (int) PROGRESS_BAR_MAX);

                if (width >= 10) {
                        bar[0] = '[';
                        for (int i = 0; i < width; i++)
                                bar[i + 1] = i < (int) ((unsigned) width * pct / 100) ? '#' : '.';
                        bar[width + 1] = ']';
                        bar[width + 2] = '\0';
                }
                snprintf(text, sizeof text, "%.1f/%.1f MiB %3u%% %.0f MiB/s", mib,
                         (double) p->total / 1048576.0, pct, rate);
        } else if (p->total > 0 || atomic_load(&p->input_done))
                snprintf(text, sizeof text, "%.1f MiB read, verifying and unpacking...", mib);
        else
                snprintf(text, sizeof text, "%.1f MiB sent, %.0f MiB/s", mib, rate);
        pthread_mutex_lock(&p->lock);
        if (!p->stopped) {
                fprintf(stderr, "\r\033[KLoading %s%s%s", bar, bar[0] ? " " : "", text);
                fflush(stderr);
                p->drawn = true;
        }
        pthread_mutex_unlock(&p->lock);
}

static bool progress_wait(LoadProgress *p, int msec) {
        struct pollfd pfd = {.fd = p->stop_fd, .events = POLLIN};

        return poll(&pfd, 1, msec) > 0;
}

static void *progress_thread(void *userdata) {
        LoadProgress *p = userdata;
        uint64_t last = 0;

        /* Relay: copy the input into our pipe, counting; the server sees EOF when we close it. A
         * server that gave up closes its end: EPIPE, not SIGPIPE (blocked in this thread). */
        while (p->relay_in >= 0) {
                ssize_t n =
                        splice(p->relay_in, NULL, p->relay_out, NULL, PROGRESS_RELAY_CHUNK, SPLICE_F_MOVE);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EINVAL) {
                        /* splice() cannot read this input (a terminal, say): copy by hand. */
                        static char buf[64 * 1024];
                        n = read(p->relay_in, buf, sizeof buf);
                        for (ssize_t off = 0, w; n > 0 && off < n; off += w) {
                                w = write(p->relay_out, buf + off, (size_t) (n - off));
                                if (w < 0) {
                                        n = -1;
                                        break;
                                }
                        }
                }
                if (n <= 0) {
                        p->relay_out = safe_close(p->relay_out);
                        atomic_store(&p->input_done, true);
                        break;
                }
                p->done += (uint64_t) n;
                if (mono_usec() - last >= PROGRESS_INTERVAL_MSEC * 1000ull) {
                        last = mono_usec();
                        progress_draw(p);
                }
        }
        do {
                if (p->offset_fd >= 0) {
                        off_t pos = lseek(p->offset_fd, 0, SEEK_CUR);
                        if (pos >= 0)
                                p->done = (uint64_t) pos;
                }
                progress_draw(p);
        } while (!progress_wait(p, PROGRESS_INTERVAL_MSEC));
        return NULL;
}

static void progress_free(LoadProgress *p) {
        safe_close(p->offset_fd);
        safe_close(p->stop_fd);
        safe_close(p->relay_in);
        safe_close(p->relay_out);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

/* Starts showing the progress of reading input fd when stderr is a terminal (NULL otherwise); may
 * replace *fd by the read end of a relay pipe. */
static LoadProgress *progress_start(int *fd) {
        LoadProgress *p;
        struct stat st;
        sigset_t block, old;
        int pp[2];

        if (!isatty(STDERR_FILENO) || fstat(*fd, &st) < 0)
                return NULL;
        p = calloc(1, sizeof *p);
        if (!p)
                return NULL;
        *p = (LoadProgress){.stop_fd = -EBADF, .offset_fd = -EBADF, .relay_in = -EBADF, .relay_out = -EBADF};
        pthread_mutex_init(&p->lock, NULL);
        p->start_usec = mono_usec();
        p->stop_fd = eventfd(0, EFD_CLOEXEC);
        if (p->stop_fd < 0)
                goto fail;
        if (S_ISREG(st.st_mode)) {
                off_t pos = lseek(*fd, 0, SEEK_CUR);
                p->offset_fd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
                if (p->offset_fd < 0)
                        goto fail;
                p->total = (uint64_t) st.st_size;
                p->done = (uint64_t) (pos > 0 ? pos : 0);
        } else {
                if (pipe2(pp, O_CLOEXEC) < 0)
                        goto fail;
                p->relay_out = pp[1];
                p->relay_in = pp[0]; /* swapped below, once the thread runs */
        }
        sigfillset(&block);
        pthread_sigmask(SIG_SETMASK, &block, &old);
        if (p->relay_in >= 0) {
                /* The thread copies from the caller's input; the server gets the pipe. */
                int caller = *fd;
                *fd = p->relay_in;
                p->relay_in = caller;
        }
        p->started = pthread_create(&p->thread, NULL, progress_thread, p) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (p->started)
                return p;
        if (p->relay_out >= 0) {
                /* No relay after all: the server reads the caller's input itself. */
                int pipe_end = *fd;
                *fd = p->relay_in;
                p->relay_in = pipe_end;
        }
fail:
        progress_free(p);
        return NULL;
}

/* After the call: no more drawing, the line is cleared. A relay thread still blocked on its input
 * (the server stopped reading early) is left to die with the process, with its state. */
static void progress_stop(LoadProgress **pp) {
        LoadProgress *p = *pp;
        uint64_t one = 1;

        if (!p)
                return;
        *pp = NULL;
        pthread_mutex_lock(&p->lock);
        p->stopped = true;
        if (p->drawn) {
                fputs("\r\033[K", stderr);
                fflush(stderr);
        }
        pthread_mutex_unlock(&p->lock);
        (void) write(p->stop_fd, &one, sizeof one);
        if (p->relay_in >= 0 && !atomic_load(&p->input_done)) {
                (void) pthread_detach(p->thread);
                return;
        }
        (void) pthread_join(p->thread, NULL);
        progress_free(p);
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
        _cleanup_(progress_stop) LoadProgress *progress = NULL;
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
        if (!quiet)
                progress = progress_start(&fd);
        r = cli_request(APISERVER_ROUTE_IMAGE_LOAD, NULL, &req);
        if (r >= 0)
                r = cxpc_dict_set_fd(req, "fd", fd);
        if (r >= 0 && name)
                r = cxpc_dict_set_string(req, "name", name);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, "image load", "internalError", "%s",
                                 strerror(-r));
        fd = safe_close(fd); /* the server holds the only copy now that matters */
        r = call_simple(APISERVER_ROUTE_IMAGE_LOAD, req, CLI_IMAGE_TRANSFER_TIMEOUT_USEC,
                        "loading the image", &reply);
        progress_stop(&progress);
        if (r < 0)
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

        if (cli_help_requested(argc, argv, "Usage: container image inspect IMAGE..."))
                return 0;
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

        if (cli_help_requested(argc, argv, "Usage: container image tag IMAGE NAME[:TAG]"))
                return 0;
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

int cli_image_prune(bool all) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *req = NULL, *reply = NULL;
        int64_t removed = 0, freed = 0;
        char size[32];

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

int cli_prune_options(int argc, char **argv, const char *what, bool *ret_all) {
        bool all = false;

        for (int i = 1; i < argc; i++) {
                if (ret_all && (streq(argv[i], "-a") || streq(argv[i], "--all")))
                        all = true;
                else if (streq(argv[i], "-f") || streq(argv[i], "--force"))
                        ; /* docker's "no confirmation": we never ask */
                else
                        return cli_error(-EINVAL, what, "invalidArgument", "unexpected argument %s",
                                         argv[i]);
        }
        if (ret_all)
                *ret_all = all;
        return 0;
}

static int image_prune(int argc, char **argv) {
        bool all;

        if (cli_help_requested(argc, argv,
                               "Usage: container image prune [-a] [-f]  (-a: every unused image)"))
                return 0;
        if (cli_prune_options(argc, argv, "image prune", &all) < 0)
                return CONTAINER_EXIT_TOOL_FAILED;
        return cli_image_prune(all);
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
