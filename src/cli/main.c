/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* container: the command line. Global options and dispatch. */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* cp and export: the container-archive helper, with our own arguments. */
static int exec_archive_helper(char **argv) {
        _cleanup_free_ char *path = NULL;
        int r;

        r = find_helper_binary(NULL, "cli", "container-archive", &path);
        if (r < 0)
                return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[optind], "notFound",
                                 "its helper container-archive is not installed next to the CLI "
                                 "nor in libexec/container");
        (void) fflush(stdout);
        execv(path, argv);
        return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[optind], "internalError", "executing %s: %m",
                         path);
}

static void help(FILE *f) {
        fputs("Usage: container [--root DIR] [--run-dir DIR] COMMAND [ARG...]\n"
              "\n"
              "Commands:\n"
              "  run        Create and start a container (IMAGE or --rootfs DIR)\n"
              "  create     Create a container\n"
              "  start      Start created or stopped containers\n"
              "  stop       Stop running containers\n"
              "  restart    Stop and start containers again\n"
              "  update     Change the CPU, memory and process limits of containers\n"
              "  kill       Send a signal to containers\n"
              "  pause      Freeze the processes of containers\n"
              "  unpause    Thaw paused containers\n"
              "  rm         Remove containers\n"
              "  ls, ps     List containers\n"
              "  exec       Run a command in a running container\n"
              "  logs       Show a container's output\n"
              "  inspect    Show containers as JSON\n"
              "  stats      Show resource usage\n"
              "  top        Show the processes of a container\n"
              "  cp         Copy files between a container and the host\n"
              "  export     Write a container's root filesystem as a tar archive\n"
              "  prune      Remove all stopped containers\n"
              "  wait       Wait for containers to exit and print their exit codes\n"
              "  image      load | ls | rm | inspect | tag | prune | save images\n"
              "  system     start | stop | status | version of the API server; prune\n"
              "\n"
              "Exit codes: the container process's own; 125 the tool failed; 126 the command\n"
              "cannot be executed; 127 the command was not found. See docs/cli.md.\n",
              f);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                CLI_GLOBAL_OPTIONS,
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, 'V'},
                {},
        };
        static const struct {
                const char *name;
                int (*fn)(int argc, char **argv);
        } verbs[] = {
                {"start", verb_start},     {"exec", verb_exec},       {"logs", verb_logs},
                {"wait", verb_wait},       {"ls", verb_ls},           {"ps", verb_ls},
                {"list", verb_ls},         {"inspect", verb_inspect}, {"stop", verb_stop},
                {"restart", verb_restart}, {"update", verb_update},   {"kill", verb_kill},
                {"rm", verb_rm},           {"stats", verb_stats},     {"top", verb_top},
                {"prune", verb_prune},     {"system", verb_system},   {"image", verb_image},
                {"pause", verb_pause},     {"unpause", verb_unpause},
        };
        int c;

        (void) signal(SIGPIPE, SIG_IGN);
        /* "+": options after the command belong to it. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                if (cli_global_option(c, optarg))
                        continue;
                switch (c) {
                case 'h':
                        help(stdout);
                        return 0;
                case 'V':
                        printf("container %s\n", container_version());
                        return 0;
                default:
                        return CONTAINER_EXIT_TOOL_FAILED;
                }
        }
        if (optind >= argc) {
                help(stderr);
                return CONTAINER_EXIT_TOOL_FAILED;
        }
        if (streq(argv[optind], "cp") || streq(argv[optind], "export"))
                return exec_archive_helper(argv);
        argc -= optind;
        argv += optind;
        optind = 0; /* full re-initialisation of getopt for the command's own options */

        if (streq(argv[0], "run"))
                return verb_run(argc, argv, false);
        if (streq(argv[0], "create"))
                return verb_run(argc, argv, true);
        if (streq(argv[0], "help")) {
                help(stdout);
                return 0;
        }
        if (streq(argv[0], "version")) {
                char *v[] = {(char *) "system", (char *) "version", NULL};
                return verb_system(2, v);
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, argv[0]))
                        return verbs[i].fn(argc, argv);
        return cli_error(CONTAINER_EXIT_TOOL_FAILED, argv[0], "invalidArgument",
                         "unknown command (see container --help)");
}
