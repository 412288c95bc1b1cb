/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Fuzz target for the decoder. Input layout: 1 byte n (low 3 bits: fds to attach, 0..7; bit 7:
 * feed the body decoder instead of the record decoder), then the record or body bytes. The fds
 * are duplicates of /dev/null, so fd values exercise index checking and cleanup. Built as a
 * libFuzzer target (-Dfuzzing=true) and always as a replay program for the seed corpus. */

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "object-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        int fds[8];
        cxpc_object *o = NULL;

        if (size < 1)
                return 0;
        size_t n_fds = data[0] & 7;
        bool body = data[0] & 0x80;
        for (size_t i = 0; i < n_fds; i++) {
                fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fds[i] < 0)
                        abort();
        }
        if (body)
                (void) cxpc_body_decode(data + 1, size - 1, fds, n_fds, &o);
        else
                (void) cxpc_record_decode(data + 1, size - 1, fds, n_fds, &o, NULL);
        if (o) {
                /* Anything accepted must encode again. */
                cxpc_frame *f = NULL;
                if (cxpc_frame_encode(o, 1, 0, 0, &f) < 0)
                        abort();
                cxpc_frame_free(f);
        }
        cxpc_object_unref(o);
        return 0;
}

#ifndef CXPC_LIBFUZZER
static int replay_file(const char *path) {
        FILE *f = fopen(path, "re");
        if (!f) {
                perror(path);
                return -1;
        }
        uint8_t *buf = malloc(1u << 20);
        size_t n = buf ? fread(buf, 1, 1u << 20, f) : 0;
        fclose(f);
        if (!buf)
                return -1;
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        return 0;
}

int main(int argc, char **argv) {
        unsigned count = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (replay_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        count++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                if (!d)
                        return EXIT_FAILURE;
                while ((de = readdir(d))) {
                        char path[4096];
                        if (de->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
                        if (replay_file(path) < 0) {
                                closedir(d);
                                return EXIT_FAILURE;
                        }
                        count++;
                }
                closedir(d);
        }
        printf("replayed %u inputs\n", count);
        return count > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
#endif
