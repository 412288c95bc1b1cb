/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* JSON bridge (jansson): for tools, logs and the HTTP API. Values that cannot exist in JSON
 * (fds, endpoints, shmem) become placeholders on output and are refused on input. */

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cxpc/cxpc.h"
#include "macro.h"
#include "object-internal.h"

static inline void json_unref_cleanup(json_t **j) {
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unref_cleanup)

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *p, size_t n) {
        char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < n ? (uint32_t) p[i + 1] << 8 : 0) |
                             (i + 2 < n ? p[i + 2] : 0);
                *o++ = b64_alphabet[(v >> 18) & 63];
                *o++ = b64_alphabet[(v >> 12) & 63];
                *o++ = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
                *o++ = i + 2 < n ? b64_alphabet[v & 63] : '=';
        }
        *o = 0;
        return out;
}

static int b64_value(char c) {
        const char *p = c ? strchr(b64_alphabet, c) : NULL;
        return p ? (int) (p - b64_alphabet) : -1;
}

static int base64_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size) {
        if (len % 4 != 0)
                return -EINVAL;
        _cleanup_free_ uint8_t *out = malloc(len / 4 * 3 + 1);
        size_t n = 0;
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i += 4) {
                int v[4];
                size_t pad = 0;
                for (size_t j = 0; j < 4; j++) {
                        if (s[i + j] == '=' && i + 4 == len && j >= 2) {
                                v[j] = 0;
                                pad++;
                                continue;
                        }
                        if (pad > 0) /* data after padding */
                                return -EINVAL;
                        v[j] = b64_value(s[i + j]);
                        if (v[j] < 0)
                                return -EINVAL;
                }
                uint32_t x = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 |
                             (uint32_t) v[3];
                out[n++] = (uint8_t) (x >> 16);
                if (pad < 2)
                        out[n++] = (uint8_t) (x >> 8);
                if (pad < 1)
                        out[n++] = (uint8_t) x;
        }
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

static void uuid_format(const uint8_t u[16], char s[37]) {
        snprintf(s, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
                 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int uuid_parse(const char *s, uint8_t u[16]) {
        size_t k = 0;
        if (strlen(s) != 36)
                return -EINVAL;
        for (size_t i = 0; i < 36;) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i++] != '-')
                                return -EINVAL;
                        continue;
                }
                unsigned v;
                if (sscanf(s + i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[i]) || !s[i + 1] ||
                    !strchr("0123456789abcdefABCDEF", s[i + 1]))
                        return -EINVAL;
                u[k++] = (uint8_t) v;
                i += 2;
        }
        return 0;
}

/* RFC 3339 in UTC with nanoseconds: 2024-01-02T03:04:05.123456789Z */
static int date_format(int64_t nsec, char *s, size_t n) {
        int64_t sec = nsec / (int64_t) NSEC_PER_SEC, frac = nsec % (int64_t) NSEC_PER_SEC;
        if (frac < 0) {
                frac += NSEC_PER_SEC;
                sec--;
        }
        time_t t = (time_t) sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return -ERANGE;
        char base[64];
        if (strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return -ERANGE;
        snprintf(s, n, "%s.%09" PRId64 "Z", base, frac);
        return 0;
}

static int date_parse(const char *s, int64_t *ret) {
        struct tm tm = {};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        int64_t frac = 0;
        if (!p)
                return -EINVAL;
        if (*p == '.') {
                unsigned digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                        if (digits < 9)
                                frac = frac * 10 + (*p - '0');
                if (digits == 0)
                        return -EINVAL;
                for (; digits < 9; digits++)
                        frac *= 10;
        }
        if (strcmp(p, "Z") != 0)
                return -EINVAL; /* only UTC, which is what we produce */
        time_t t = timegm(&tm);
        if (t == (time_t) -1 && !(tm.tm_year == 69 && tm.tm_mon == 11 && tm.tm_mday == 31))
                return -EINVAL;
        if (__builtin_mul_overflow((int64_t) t, (int64_t) NSEC_PER_SEC, ret) ||
            __builtin_add_overflow(*ret, frac, ret))
                return -ERANGE;
        return 0;
}

static json_t *tagged(const char *tag, json_t *v) {
        if (!v)
                return NULL;
        json_t *o = json_object();
        if (!o || json_object_set_new(o, tag, v) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static int to_json(const cxpc_object *o, unsigned depth, json_t **ret) {
        json_t *j = NULL;
        int r;

        if (depth > CXPC_DEPTH_MAX)
                return -ELOOP;
        switch (o->type) {
        case CXPC_TYPE_NULL:
                j = json_null();
                break;
        case CXPC_TYPE_BOOL:
                j = json_boolean(o->boolean);
                break;
        case CXPC_TYPE_INT64:
                j = json_integer(o->i64);
                break;
        case CXPC_TYPE_UINT64:
                if (o->u64 <= INT64_MAX)
                        j = json_integer((json_int_t) o->u64);
                else
                        j = json_real((double) o->u64); /* jansson integers are signed */
                break;
        case CXPC_TYPE_DOUBLE:
                j = json_real(o->dbl);
                break;
        case CXPC_TYPE_DATE: {
                char s[96];
                r = date_format(o->i64, s, sizeof(s));
                if (r < 0)
                        return r;
                j = tagged("$date", json_string(s));
                break;
        }
        case CXPC_TYPE_DATA: {
                const uint8_t *bytes; /* large values are mapped on first use */
                r = cxpc_data_map(o, &bytes);
                if (r < 0)
                        return r;
                _cleanup_free_ char *s = base64_encode(bytes, o->data.size);
                if (!s)
                        return -ENOMEM;
                j = tagged("$data", json_string(s));
                break;
        }
        case CXPC_TYPE_STRING:
                j = json_stringn(o->string.ptr, o->string.len);
                break;
        case CXPC_TYPE_UUID: {
                char s[37];
                uuid_format(o->uuid, s);
                j = tagged("$uuid", json_string(s));
                break;
        }
        case CXPC_TYPE_ARRAY: {
                _cleanup_json_ json_t *a = json_array();
                if (!a)
                        return -ENOMEM;
                for (size_t i = 0; i < o->array.n; i++) {
                        json_t *v;
                        r = to_json(o->array.items[i], depth + 1, &v);
                        if (r < 0)
                                return r;
                        if (json_array_append_new(a, v) < 0)
                                return -ENOMEM;
                }
                j = TAKE_PTR(a);
                break;
        }
        case CXPC_TYPE_DICTIONARY: {
                _cleanup_json_ json_t *d = json_object();
                if (!d)
                        return -ENOMEM;
                for (size_t i = 0; i < o->dict.n; i++) {
                        json_t *v;
                        cxpc_object tmp; /* inline scalars are converted without an object */
                        r = to_json(dict_entry_peek(&o->dict.entries[i], &tmp), depth + 1, &v);
                        if (r < 0)
                                return r;
                        if (json_object_set_new(d, dict_entry_key(&o->dict.entries[i]), v) < 0)
                                return -ENOMEM;
                }
                j = TAKE_PTR(d);
                break;
        }
        case CXPC_TYPE_FD:
                j = tagged("$fd", json_integer(o->fd));
                break;
        case CXPC_TYPE_ENDPOINT:
                j = tagged("$endpoint", json_true());
                break;
        case CXPC_TYPE_SHMEM:
                j = tagged("$shmem", json_integer((json_int_t) o->shmem.size));
                break;
        case CXPC_TYPE_ERROR:
                j = tagged("$error", json_pack("{s:s,s:s}", "code",
                                               cxpc_error_code_to_string(o->error.code) ?: "unknown",
                                               "message", o->error.message ?: ""));
                break;
        default:
                return -EINVAL;
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

_public_ int cxpc_object_to_json(const cxpc_object *o, unsigned flags, char **ret) {
        _cleanup_json_ json_t *j = NULL;
        int r;

        assert_return(o, -EINVAL);
        assert_return(ret, -EINVAL);
        assert_return((flags & ~(unsigned) CXPC_JSON_PRETTY) == 0, -EINVAL);

        r = to_json(o, 1, &j);
        if (r < 0)
                return r;
        size_t jflags = JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17) |
                        ((flags & CXPC_JSON_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT);
        char *s = json_dumps(j, jflags);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int from_json(json_t *j, unsigned depth, bool ints_as_reals, cxpc_object **ret);

/* {"$tag": value} with exactly one member: one of our typed forms. 1 if handled. */
static int from_tagged(json_t *j, cxpc_object **ret) {
        uint8_t *bytes;
        size_t n;
        int r;

        if (json_object_size(j) != 1)
                return 0;
        void *it = json_object_iter(j);
        const char *tag = json_object_iter_key(it);
        json_t *v = json_object_iter_value(it);
        if (!tag || !v || tag[0] != '$')
                return 0;
        if (streq(tag, "$fd") || streq(tag, "$endpoint") || streq(tag, "$shmem"))
                return -EINVAL; /* placeholders only: there is no fd to refer to */
        if (streq(tag, "$data")) {
                if (!json_is_string(v))
                        return -EINVAL;
                r = base64_decode(json_string_value(v), json_string_length(v), &bytes, &n);
                if (r < 0)
                        return r;
                r = cxpc_data_new(bytes, n, ret);
                free(bytes);
                return r < 0 ? r : 1;
        }
        if (streq(tag, "$uuid")) {
                uint8_t u[16];
                if (!json_is_string(v) || uuid_parse(json_string_value(v), u) < 0)
                        return -EINVAL;
                r = cxpc_uuid_new(u, ret);
                return r < 0 ? r : 1;
        }
        if (streq(tag, "$date")) {
                int64_t t;
                if (!json_is_string(v))
                        return -EINVAL;
                r = date_parse(json_string_value(v), &t);
                if (r < 0)
                        return r;
                r = cxpc_date_new(t, ret);
                return r < 0 ? r : 1;
        }
        if (streq(tag, "$error")) {
                const char *code = NULL, *msg = NULL;
                if (json_unpack(v, "{s:s,s?s}", "code", &code, "message", &msg) < 0)
                        return -EINVAL;
                r = cxpc_error_new(cxpc_error_code_from_string(code), msg && msg[0] ? msg : NULL, ret);
                return r < 0 ? r : 1;
        }
        return 0; /* an ordinary key that happens to start with '$' */
}

static int from_json(json_t *j, unsigned depth, bool ints_as_reals, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *c = NULL;
        int r;

        if (depth > CXPC_DEPTH_MAX)
                return -ELOOP;
        switch (json_typeof(j)) {
        case JSON_NULL:
                return cxpc_null_new(ret);
        case JSON_TRUE:
        case JSON_FALSE:
                return cxpc_bool_new(json_is_true(j), ret);
        case JSON_INTEGER:
                return cxpc_int64_new(json_integer_value(j), ret);
        case JSON_REAL: {
                double d = json_real_value(j);
                /* uint64 values above INT64_MAX travel as numbers jansson can only hold as reals
                 * (exact up to 2^53 steps; 2^64 is UINT64_MAX rounded). With ints_as_reals (the
                 * text had such an integer literal) every integral number is an integer. */
                if (d >= 9223372036854775808.0 && d <= 18446744073709551616.0 && d == __builtin_floor(d))
                        return cxpc_uint64_new(d >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t) d, ret);
                if (ints_as_reals && d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
                    d == __builtin_floor(d))
                        return cxpc_int64_new((int64_t) d, ret);
                return cxpc_double_new(d, ret);
        }
        case JSON_STRING:
                return cxpc_string_new_len(json_string_value(j), json_string_length(j), ret);
        case JSON_ARRAY: {
                size_t i;
                json_t *v;
                r = cxpc_array_new(&c);
                if (r < 0)
                        return r;
                json_array_foreach(j, i, v) {
                        cxpc_object *x;
                        r = from_json(v, depth + 1, ints_as_reals, &x);
                        if (r < 0)
                                return r;
                        r = cxpc_array_append_take(c, x);
                        if (r < 0)
                                return r;
                }
                break;
        }
        case JSON_OBJECT: {
                const char *k;
                json_t *v;
                r = from_tagged(j, ret);
                if (r != 0)
                        return r < 0 ? r : 0;
                r = cxpc_dict_new(&c);
                if (r < 0)
                        return r;
                json_object_foreach(j, k, v) {
                        cxpc_object *x;
                        size_t len = strlen(k);
                        if (!cxpc_utf8_is_valid(k, len))
                                return -EILSEQ;
                        r = from_json(v, depth + 1, ints_as_reals, &x);
                        if (r < 0)
                                return r;
                        r = cxpc_dict_set_take_len(c, k, len, x);
                        if (r < 0)
                                return r;
                }
                break;
        }
        default:
                return -EINVAL;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

_public_ int cxpc_object_from_json(const char *text, cxpc_object **ret) {
        _cleanup_json_ json_t *j = NULL;
        json_error_t err;
        int r;

        assert_return(text, -EINVAL);
        assert_return(ret, -EINVAL);

        size_t jflags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES;
        bool ints_as_reals = false;
        j = json_loads(text, jflags, &err);
        if (!j && json_error_code(&err) == json_error_numeric_overflow) {
                /* An integer above INT64_MAX (a uint64): parse numbers as reals instead. */
                ints_as_reals = true;
                j = json_loads(text, jflags | JSON_DECODE_INT_AS_REAL, &err);
        }
        if (!j)
                return -EINVAL;
        cxpc_object *o;
        r = from_json(j, 1, ints_as_reals, &o);
        if (r < 0)
                return r;
        *ret = o;
        return 0;
}
