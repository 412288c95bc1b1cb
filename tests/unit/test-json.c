/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* JSON bridge both ways, including the typed "$" forms and refusal of fd placeholders. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "object-internal.h"

static void test_roundtrip(void **state) {
        static const uint8_t u[16] = {0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        cxpc_object *m, *back, *e;
        char *s;

        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_dict_set_string(m, "s", "x\"y"), 0);
        assert_int_equal(cxpc_dict_set_int64(m, "i", -5), 0);
        assert_int_equal(cxpc_dict_set_uint64(m, "big", UINT64_MAX), 0);
        assert_int_equal(cxpc_dict_set_double(m, "d", 0.25), 0);
        assert_int_equal(cxpc_dict_set_bool(m, "b", true), 0);
        assert_int_equal(cxpc_dict_set_null(m, "n"), 0);
        assert_int_equal(cxpc_dict_set_data(m, "data", "hello", 5), 0);
        assert_int_equal(cxpc_dict_set_data(m, "empty", NULL, 0), 0);
        assert_int_equal(cxpc_dict_set_uuid(m, "uuid", u), 0);
        assert_int_equal(cxpc_dict_set_date(m, "date", -1500000001LL), 0);
        assert_int_equal(cxpc_error_new(CXPC_ERROR_EXISTS, "dup", &e), 0);
        assert_int_equal(cxpc_dict_set(m, "err", e), 0);
        cxpc_object_unref(e);

        assert_int_equal(cxpc_object_to_json(m, 0, &s), 0);
        assert_non_null(strstr(s, "\"data\":{\"$data\":\"aGVsbG8=\"}"));
        assert_non_null(strstr(s, "\"$uuid\":\"deadbeef-0001-0203-0405-060708090a0b\""));
        assert_non_null(strstr(s, "\"$date\":\"1969-12-31T23:59:58.499999999Z\""));
        assert_non_null(strstr(s, "\"code\":\"exists\""));
        assert_int_equal(cxpc_object_from_json(s, &back), 0);
        assert_true(cxpc_object_equal(m, back));
        free(s);
        cxpc_object_unref(back);

        assert_int_equal(cxpc_object_to_json(m, CXPC_JSON_PRETTY, &s), 0);
        assert_non_null(strchr(s, '\n'));
        free(s);
        cxpc_object_unref(m);
}

static void test_placeholders(void **state) {
        cxpc_object *m, *o;
        char *s;
        assert_int_equal(cxpc_dict_new(&m), 0);
        assert_int_equal(cxpc_dict_set_fd(m, "fd", STDERR_FILENO), 0);
        assert_int_equal(cxpc_object_to_json(m, 0, &s), 0);
        assert_non_null(strstr(s, "\"$fd\":"));
        assert_int_equal(cxpc_object_from_json(s, &o), -EINVAL);
        free(s);
        cxpc_object_unref(m);

        assert_int_equal(cxpc_object_from_json("{\"a\":{\"$shmem\":5}}", &o), -EINVAL);
        assert_int_equal(cxpc_object_from_json("[{\"$endpoint\":true}]", &o), -EINVAL);
        assert_int_equal(cxpc_object_from_json("{\"$data\":\"!!\"}", &o), -EINVAL);
        assert_int_equal(cxpc_object_from_json("{\"a\":", &o), -EINVAL);
        assert_int_equal(cxpc_object_from_json("{\"a\":1,\"a\":2}", &o), -EINVAL);

        /* unknown error codes decode as "unknown" */
        assert_int_equal(cxpc_object_from_json("{\"$error\":{\"code\":\"fromTheFuture\"}}", &o), 0);
        cxpc_error_code c;
        assert_int_equal(cxpc_error_get_code(o, &c), 0);
        assert_int_equal(c, CXPC_ERROR_UNKNOWN);
        cxpc_object_unref(o);

        /* plain values */
        assert_int_equal(cxpc_object_from_json("18446744073709551615", &o), 0);
        assert_int_equal(cxpc_object_get_type(o), CXPC_TYPE_UINT64);
        cxpc_object_unref(o);
        assert_int_equal(cxpc_object_from_json("{\"$other\":1}", &o), 0);
        assert_int_equal(cxpc_object_get_type(o), CXPC_TYPE_DICTIONARY);
        cxpc_object_unref(o);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_placeholders),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
