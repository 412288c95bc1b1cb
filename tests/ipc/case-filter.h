/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The IPC drivers' command line: "DRIVER CASE" runs test_CASE only (one meson test per case). */

#include <setjmp.h> /* cmocka.h needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static inline void case_filter_from_args(int argc, char **argv) {
        static char filter[128]; /* cmocka keeps the pointer until the group has run */
        if (argc > 1) {
                snprintf(filter, sizeof(filter), "test_%s", argv[1]);
                cmocka_set_test_filter(filter);
        }
}
