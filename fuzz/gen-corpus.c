/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Writes the seed corpus for fuzz-codec: valid records of every type, in the fuzzer's input
 * layout (see fuzz-codec.c). Usage: gen-corpus DIR */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "codec.h"
#include "object-internal.h"

static void emit(const char *dir, const char *name, cxpc_object *m, unsigned flags) {
        cxpc_frame *f = NULL;
        char path[4096];
        if (cxpc_frame_encode(m, 1, flags & CXPC_FRAME_REPLY ? 1 : 0, flags, &f) < 0)
                abort();
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *out = fopen(path, "we");
        if (!out)
                abort();
        uint8_t n = (uint8_t) f->n_fds;
        fwrite(&n, 1, 1, out);
        fwrite(&f->header, 1, sizeof(f->header), out);
        fwrite(f->body, 1, f->body_size, out);
        fclose(out);
        cxpc_frame_free(f);
        cxpc_object_unref(m);
}

static cxpc_object *one(const char *key, cxpc_object *v) {
        cxpc_object *m;
        if (cxpc_dict_new(&m) < 0 || cxpc_dict_set(m, key, v) < 0)
                abort();
        cxpc_object_unref(v);
        return m;
}

int main(int argc, char **argv) {
        static const uint8_t u[16] = {1, 2, 3};
        cxpc_object *v, *m, *a;
        if (argc != 2)
                return EXIT_FAILURE;
        const char *d = argv[1];

        cxpc_dict_new(&m);
        emit(d, "empty", m, 0);
        cxpc_message_new_request("svc.ping", &m);
        emit(d, "request", m, CXPC_FRAME_WANTS_REPLY);
        cxpc_null_new(&v), emit(d, "null", one("k", v), CXPC_FRAME_REPLY);
        cxpc_bool_new(true, &v), emit(d, "bool", one("k", v), 0);
        cxpc_int64_new(-42, &v), emit(d, "int64", one("k", v), 0);
        cxpc_uint64_new(UINT64_MAX, &v), emit(d, "uint64", one("k", v), 0);
        cxpc_double_new(3.25, &v), emit(d, "double", one("k", v), 0);
        cxpc_date_new(1700000000000000000LL, &v), emit(d, "date", one("k", v), 0);
        cxpc_data_new("abc", 3, &v), emit(d, "data", one("k", v), 0);
        cxpc_data_new(NULL, 0, &v), emit(d, "data-empty", one("k", v), 0);
        /* A large value travels as its own memfd (tag 15); the replay attaches /dev/null. */
        void *zeros = calloc(1, CXPC_DATA_MEMFD_MIN);
        if (!zeros)
                abort();
        cxpc_data_new(zeros, CXPC_DATA_MEMFD_MIN, &v), emit(d, "data-memfd", one("k", v), 0);
        free(zeros);
        cxpc_string_new("héllo", &v), emit(d, "string", one("k", v), 0);
        cxpc_uuid_new(u, &v), emit(d, "uuid", one("k", v), 0);
        cxpc_error_new(CXPC_ERROR_TIMEOUT, "slow", &v),
                emit(d, "error", one("cxpc.error", v), CXPC_FRAME_REPLY);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cxpc_fd_new(null, &v), emit(d, "fd", one("k", v), 0);
        close(null);
        cxpc_array_new(&a);
        for (int i = 0; i < 3; i++) {
                cxpc_string_newf(&v, "item%d", i);
                cxpc_array_append_take(a, v);
        }
        cxpc_dict_new(&v);
        cxpc_dict_set_bool(v, "inner", false);
        cxpc_array_append_take(a, v);
        emit(d, "nested", one("list", a), 0);
        cxpc_dict_new(&m);
        for (int i = 0; i < 20; i++) {
                char key[16];
                snprintf(key, sizeof(key), "k%d", i);
                cxpc_dict_set_int64(m, key, i);
        }
        emit(d, "dict20", m, 0);
        return EXIT_SUCCESS;
}
