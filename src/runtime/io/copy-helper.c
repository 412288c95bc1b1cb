/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* container-runtime-copy in|out ROOT PATH MODE PARENTS
 *
 * The copyIn/copyOut worker that container-runtime forks and executes (copy-job.c): the tar
 * stream is fd 3, the result pipe fd 4 (one CopyResult record, then EOF). It chroots into ROOT,
 * so nothing it does can reach outside the container's root. Not meant to be run by hand. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copy.h"
#include "macro.h"

int main(int argc, char *argv[]) {
        CopyOptions o = {};
        CopyDirection direction;
        char *end = NULL;

        if (argc != 6) {
                fprintf(stderr, "usage: %s in|out ROOT PATH MODE PARENTS (run by container-runtime)\n",
                        argv[0]);
                return EXIT_FAILURE;
        }
        if (streq(argv[1], "in"))
                direction = COPY_IN;
        else if (streq(argv[1], "out"))
                direction = COPY_OUT;
        else
                return EXIT_FAILURE;
        o.root = argv[2];
        o.path = argv[3];
        errno = 0;
        unsigned long mode = strtoul(argv[4], &end, 8);
        if (errno != 0 || !end || *end || mode > 07777)
                return EXIT_FAILURE;
        o.file_mode = (uint32_t) mode;
        o.create_parents = streq(argv[5], "1");

        copy_worker_main(direction, &o, 3, 4);
}
