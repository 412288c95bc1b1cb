/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Object model: constructors, getters, dictionaries, copy/equal, error codes. */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "macro.h"
#include "object-internal.h"

static void test_error_codes(void **state) {
        static const char *const names[] = {"unknown",  "invalidArgument", "internalError", "exists",
                                            "notFound", "cancelled",       "invalidState",  "empty",
                                            "timeout",  "unsupported",     "interrupted"};
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                assert_string_equal(cxpc_error_code_to_string((cxpc_error_code) i), names[i]);
                assert_int_equal(cxpc_error_code_from_string(names[i]), i);
        }
        assert_null(cxpc_error_code_to_string(_CXPC_ERROR_CODE_MAX));
        assert_int_equal(cxpc_error_code_from_string("somethingNew"), CXPC_ERROR_UNKNOWN);
        assert_int_equal(cxpc_error_code_from_errno(ENOENT), CXPC_ERROR_NOT_FOUND);
        assert_int_equal(cxpc_error_code_from_errno(-ESRCH), CXPC_ERROR_NOT_FOUND);
        assert_int_equal(cxpc_error_code_from_errno(EEXIST), CXPC_ERROR_EXISTS);
        assert_int_equal(cxpc_error_code_from_errno(E2BIG), CXPC_ERROR_INVALID_ARGUMENT);
        assert_int_equal(cxpc_error_code_from_errno(ETIMEDOUT), CXPC_ERROR_TIMEOUT);
        assert_int_equal(cxpc_error_code_from_errno(EALREADY), CXPC_ERROR_INVALID_STATE);
        assert_int_equal(cxpc_error_code_from_errno(ENOMSG), CXPC_ERROR_EMPTY);
        assert_int_equal(cxpc_error_code_from_errno(ENOSYS), CXPC_ERROR_UNSUPPORTED);
        assert_int_equal(cxpc_error_code_from_errno(EPIPE), CXPC_ERROR_INTERRUPTED);
        assert_int_equal(cxpc_error_code_from_errno(EINTR), CXPC_ERROR_INTERNAL_ERROR);
        assert_int_equal(cxpc_error_code_from_errno(EIO), CXPC_ERROR_INTERNAL_ERROR);
        assert_int_equal(cxpc_error_code_to_errno(CXPC_ERROR_NOT_FOUND), ENOENT);
        assert_int_equal(cxpc_error_code_to_errno(CXPC_ERROR_TIMEOUT), ETIMEDOUT);
        for (size_t i = 1; i < _CXPC_ERROR_CODE_MAX; i++)
                if (i != CXPC_ERROR_INTERNAL_ERROR)
                        assert_int_equal(cxpc_error_code_from_errno(cxpc_error_code_to_errno(i)), i);
}

static void test_getters(void **state) {
        cxpc_object *d, *o;
        bool b;
        int64_t i;
        const char *s;

        assert_int_equal(cxpc_dict_new(&d), 0);
        assert_int_equal(cxpc_dict_set_bool(d, "f", false), 0);
        b = true;
        assert_int_equal(cxpc_dict_get_bool(d, "f", &b), 0);
        assert_false(b);
        assert_int_equal(cxpc_dict_get_bool(d, "x", &b), -ENOENT);
        assert_int_equal(cxpc_dict_get_int64(d, "f", &i), -EMEDIUMTYPE);
        assert_int_equal(cxpc_int64_get(NULL, &i), -EINVAL);
        assert_int_equal(cxpc_dict_set_string(d, "bad", "\xed\xa0\x80"), -EILSEQ);
        assert_int_equal(cxpc_dict_set_string(d, "f", "replaced"), 0);
        assert_int_equal(cxpc_dict_get_count(d), 1);
        assert_int_equal(cxpc_dict_get_string(d, "f", &s), 0);
        assert_string_equal(s, "replaced");
        assert_int_equal(cxpc_dict_remove(d, "f"), 0);
        assert_int_equal(cxpc_dict_remove(d, "f"), -ENOENT);
        assert_int_equal(cxpc_string_newf(&o, "%d-%s", 5, "x"), 0);
        assert_int_equal(cxpc_string_get(o, &s), 0);
        assert_string_equal(s, "5-x");
        cxpc_object_unref(o);
        assert_null(cxpc_object_unref(NULL));
        cxpc_object_unref(d);
}

static void test_big_dict(void **state) {
        cxpc_object *d;
        char key[32];
        assert_int_equal(cxpc_dict_new(&d), 0);
        for (unsigned i = 0; i < 2000; i++) {
                snprintf(key, sizeof(key), "k%u", i);
                assert_int_equal(cxpc_dict_set_uint64(d, key, i), 0);
        }
        for (unsigned i = 0; i < 2000; i += 2) {
                snprintf(key, sizeof(key), "k%u", i);
                assert_int_equal(cxpc_dict_remove(d, key), 0);
        }
        assert_int_equal(cxpc_dict_get_count(d), 1000);
        for (unsigned i = 0; i < 2000; i++) {
                uint64_t v;
                snprintf(key, sizeof(key), "k%u", i);
                assert_int_equal(cxpc_dict_get_uint64(d, key, &v), i % 2 ? 0 : -ENOENT);
                if (i % 2)
                        assert_int_equal(v, i);
        }
        const char *k;
        assert_int_equal(cxpc_dict_get_entry(d, 0, &k, NULL), 0);
        assert_string_equal(k, "k1"); /* insertion order survives removal */
        cxpc_object_unref(d);
}

static void test_copy_equal_fds(void **state) {
        cxpc_object *d, *c, *shm;
        int fd, fd2;
        assert_int_equal(cxpc_dict_new(&d), 0);
        assert_int_equal(cxpc_dict_set_fd(d, "fd", STDIN_FILENO), 0);
        assert_int_equal(cxpc_dict_set_data(d, "z", NULL, 0), 0);
        assert_int_equal(cxpc_shmem_new("abc", 3, &shm), 0);
        assert_int_equal(cxpc_dict_set(d, "shm", shm), 0);
        assert_int_equal(cxpc_object_copy(d, &c), 0);
        assert_true(cxpc_object_equal(d, c));
        assert_int_equal(cxpc_dict_dup_fd(c, "fd", &fd), 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(cxpc_shmem_dup_fd(shm, &fd2), 0);
        int seals = fcntl(fd2, F_GET_SEALS);
        assert_int_equal(seals & CXPC_SHMEM_SEALS, CXPC_SHMEM_SEALS);
        close(fd2);
        /* a different open file is not equal */
        cxpc_object *other;
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_int_equal(cxpc_fd_new(devnull, &other), 0);
        assert_false(cxpc_object_equal(cxpc_dict_get(d, "fd"), other));
        close(devnull);
        close(fd);
        cxpc_object_unref(other);
        cxpc_object_unref(shm);
        cxpc_object_unref(c);
        cxpc_object_unref(d);
}

static void test_messages(void **state) {
        cxpc_object *m, *r, *e;
        cxpc_error_code code;
        const char *msg;
        assert_int_equal(cxpc_message_new_request("a.b", &m), 0);
        assert_string_equal(cxpc_message_get_route(m), "a.b");
        assert_false(cxpc_message_expects_reply(m));
        assert_int_equal(cxpc_reply_new(&r), 0);
        assert_int_equal(cxpc_reply_check(r, NULL, NULL), 0);
        assert_int_equal(cxpc_error_newf(&e, CXPC_ERROR_NOT_FOUND, "no %s", "x"), 0);
        assert_int_equal(cxpc_dict_set(r, CXPC_KEY_ERROR, e), 0);
        assert_ptr_equal(cxpc_message_get_error(r), e);
        assert_int_equal(cxpc_reply_check(r, &code, &msg), -ENOENT);
        assert_int_equal(code, CXPC_ERROR_NOT_FOUND);
        assert_string_equal(msg, "no x");
        assert_int_equal(cxpc_message_mark_replied(m), 0);
        assert_int_equal(cxpc_message_mark_replied(m), -EALREADY);
        cxpc_object_unref(e);
        cxpc_object_unref(r);
        cxpc_object_unref(m);
}

static int on_route(cxpc_connection *c, cxpc_object *m, void *userdata) {
        size_t *hit = userdata;
        (*hit)++;
        return 0;
}

/* Route lookup (by length and hash) for names of every length around the word-sized steps, with
 * names that differ only in the middle, and misses. */
static void test_router_lookup(void **state) {
        char names[40][41];
        size_t hits[40] = {};
        cxpc_router *r = NULL;
        cxpc_connection *c = NULL;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(cxpc_connection_new_from_fd(sv[0], &c), 0);
        assert_int_equal(cxpc_router_new(&r), 0);
        for (size_t len = 1; len <= 40; len++) {
                memset(names[len - 1], 'r', len);
                names[len - 1][len] = 0;
                if (len > 2)
                        names[len - 1][len / 2] = '/';
                assert_int_equal(cxpc_router_add(r, names[len - 1], on_route, &hits[len - 1]), 0);
        }
        assert_int_equal(cxpc_router_add(r, names[7], on_route, NULL), -EEXIST);
        assert_int_equal(cxpc_router_add(r, CXPC_ROUTE_INTROSPECT, on_route, NULL), -EEXIST);
        for (size_t len = 1; len <= 40; len++) {
                cxpc_object *m = NULL;
                assert_int_equal(cxpc_message_new_request(names[len - 1], &m), 0);
                assert_int_equal(cxpc_router_dispatch(r, c, m), 0);
                cxpc_object_unref(m);
                /* the same length, another middle: not a route */
                names[len - 1][len / 2] = 'x';
                assert_int_equal(cxpc_message_new_request(names[len - 1], &m), 0);
                assert_int_equal(cxpc_router_dispatch(r, c, m), 0);
                cxpc_object_unref(m);
        }
        for (size_t len = 1; len <= 40; len++)
                assert_int_equal(hits[len - 1], 1);
        cxpc_router_unref(r);
        cxpc_connection_close_unref(c);
        close(sv[1]);
}

static int on_route_drop_router(cxpc_connection *c, cxpc_object *m, void *userdata) {
        cxpc_router **r = userdata;
        *r = cxpc_router_unref(*r); /* the last reference but the dispatch's own */
        return 0;
}

/* The router tries the route of the previous dispatch first: alternating routes, a miss of the
 * same length as the remembered one (differing in the last byte only), routes added after one was
 * remembered (the table moves), and a handler dropping the last reference to the router. */
static void test_router_boundary_last_route(void **state) {
        static const char *const names[] = {"svc/alpha", "svc/alphb", "svc/beta",
                                            "svc/alpha/long/route/name"};
        size_t hits[ELEMENTSOF(names) + 40] = {};
        cxpc_router *r = NULL;
        cxpc_connection *c = NULL;
        cxpc_object *m;
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(cxpc_connection_new_from_fd(sv[0], &c), 0);
        assert_int_equal(cxpc_router_new(&r), 0);
        assert_int_equal(cxpc_router_add(r, names[0], on_route, &hits[0]), 0);
        assert_int_equal(cxpc_router_add(r, names[2], on_route, &hits[2]), 0);
        assert_int_equal(cxpc_router_add(r, names[3], on_route, &hits[3]), 0);

        static const size_t order[] = {0, 0, 2, 0, 3, 3, 1, 0, 1, 2};
        for (size_t i = 0; i < ELEMENTSOF(order); i++) {
                assert_int_equal(cxpc_message_new_request(names[order[i]], &m), 0);
                assert_int_equal(cxpc_router_dispatch(r, c, m), 0);
                cxpc_object_unref(m);
        }
        assert_int_equal(hits[0], 4);
        assert_int_equal(hits[1], 0); /* "svc/alphb" is no route, though "svc/alpha" was last */
        assert_int_equal(hits[2], 2);
        assert_int_equal(hits[3], 2);

        /* many more routes: the table is reallocated after the last route was remembered */
        char extra[40][16];
        for (size_t i = 0; i < 40; i++) {
                snprintf(extra[i], sizeof(extra[i]), "svc/x%zu", i);
                assert_int_equal(cxpc_router_add(r, extra[i], on_route, &hits[ELEMENTSOF(names) + i]), 0);
        }
        for (size_t i = 0; i < 40; i++)
                for (size_t k = 0; k < 2; k++) {
                        assert_int_equal(cxpc_message_new_request(k ? names[0] : extra[i], &m), 0);
                        assert_int_equal(cxpc_router_dispatch(r, c, m), 0);
                        cxpc_object_unref(m);
                }
        for (size_t i = 0; i < 40; i++)
                assert_int_equal(hits[ELEMENTSOF(names) + i], 1);
        assert_int_equal(hits[0], 44);

        /* a handler that drops the caller's reference: the router lives until the dispatch ends */
        cxpc_router *held = r;
        assert_int_equal(cxpc_router_add(r, "svc/drop", on_route_drop_router, &held), 0);
        assert_int_equal(cxpc_message_new_request("svc/drop", &m), 0);
        assert_int_equal(cxpc_router_dispatch(r, c, m), 0);
        cxpc_object_unref(m);
        assert_null(held);

        cxpc_connection_close_unref(c);
        close(sv[1]);
}

/* The typed getters measure and compare keys up to 16 bytes inline: keys of 15, 16 and 17 bytes
 * (and longer), hits and misses differing in the last byte, in a small dictionary and in one with
 * a hash index. */
static void test_getter_boundary_key_lengths(void **state) {
        for (size_t n_extra = 0; n_extra <= 20; n_extra += 20) {
                cxpc_object *d;
                char keys[6][32];
                static const size_t lens[] = {1, 15, 16, 17, 23, 24};
                assert_int_equal(cxpc_dict_new(&d), 0);
                for (size_t i = 0; i < n_extra; i++) {
                        char k[16];
                        snprintf(k, sizeof(k), "extra%zu", i);
                        assert_int_equal(cxpc_dict_set_bool(d, k, true), 0);
                }
                for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
                        memset(keys[i], 'k', lens[i]);
                        keys[i][lens[i]] = 0;
                        assert_int_equal(cxpc_dict_set_int64(d, keys[i], (int64_t) lens[i]), 0);
                }
                for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
                        int64_t v = 0;
                        bool b;
                        assert_int_equal(cxpc_dict_get_int64(d, keys[i], &v), 0);
                        assert_int_equal(v, (int64_t) lens[i]);
                        assert_int_equal(cxpc_dict_get_bool(d, keys[i], &b), -EMEDIUMTYPE);
                        keys[i][lens[i] - 1] = 'x';
                        assert_int_equal(cxpc_dict_get_int64(d, keys[i], &v), -ENOENT);
                        keys[i][lens[i] - 1] = 'k';
                }
                assert_int_equal(cxpc_dict_get_int64(d, "", NULL), -ENOENT);
                assert_int_equal(cxpc_dict_get_int64(d, NULL, NULL), -EINVAL);
                cxpc_object_unref(d);
        }
}

/* key_length_valid(): the inline ASCII scan ends at KEY_SCAN_ASCII_MAX bytes; keys around that
 * limit, DEL, and non-ASCII bytes at either end of it take the right path. */
static void test_key_length_valid_boundaries(void **state) {
        static const size_t lens[] = {0,
                                      1,
                                      KEY_SCAN_ASCII_MAX - 1,
                                      KEY_SCAN_ASCII_MAX,
                                      KEY_SCAN_ASCII_MAX + 1,
                                      2 * KEY_SCAN_ASCII_MAX};
        char key[2 * KEY_SCAN_ASCII_MAX + 8];
        size_t len;

        for (size_t i = 0; i < ELEMENTSOF(lens); i++) {
                memset(key, 'k', lens[i]);
                key[lens[i]] = 0;
                len = SIZE_MAX;
                assert_true(key_length_valid(key, &len));
                assert_int_equal(len, lens[i]);
                if (lens[i] > 0) {
                        key[lens[i] - 1] = 0x7f; /* DEL is ASCII */
                        assert_true(key_length_valid(key, &len));
                        assert_int_equal(len, lens[i]);
                }
        }
        /* A two-byte UTF-8 sequence (é) straddling and following the scan limit. */
        for (size_t at = 0; at <= KEY_SCAN_ASCII_MAX + 1; at++) {
                memset(key, 'k', at);
                key[at] = (char) 0xc3;
                key[at + 1] = (char) 0xa9;
                key[at + 2] = 'z';
                key[at + 3] = 0;
                assert_true(key_length_valid(key, &len));
                assert_int_equal(len, at + 3);
                key[at + 1] = 'z'; /* truncated sequence */
                assert_false(key_length_valid(key, &len));
        }

        cxpc_object *d;
        assert_int_equal(cxpc_dict_new(&d), 0);
        memset(key, 'k', KEY_SCAN_ASCII_MAX);
        key[KEY_SCAN_ASCII_MAX] = (char) 0xff;
        key[KEY_SCAN_ASCII_MAX + 1] = 0;
        assert_int_equal(cxpc_dict_set_int64(d, key, 1), -EILSEQ);
        key[KEY_SCAN_ASCII_MAX] = 0;
        assert_int_equal(cxpc_dict_set_int64(d, key, 2), 0);
        int64_t v = 0;
        assert_int_equal(cxpc_dict_get_int64(d, key, &v), 0);
        assert_int_equal(v, 2);
        assert_int_equal(cxpc_dict_set_int64(d, "", 3), -EINVAL);
        cxpc_object_unref(d);

        cxpc_object *m;
        assert_int_equal(cxpc_message_new_request("\xc3\xa9/route", &m), 0);
        assert_string_equal(cxpc_message_get_route(m), "\xc3\xa9/route");
        cxpc_object_unref(m);
        assert_int_equal(cxpc_message_new_request("bad\xff", &m), -EILSEQ);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_error_codes),
                cmocka_unit_test(test_getters),
                cmocka_unit_test(test_big_dict),
                cmocka_unit_test(test_copy_equal_fds),
                cmocka_unit_test(test_messages),
                cmocka_unit_test(test_router_lookup),
                cmocka_unit_test(test_router_boundary_last_route),
                cmocka_unit_test(test_getter_boundary_key_lengths),
                cmocka_unit_test(test_key_length_valid_boundaries),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
