/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* JSON bridge (jansson): objects → JSON for display and persistence, JSON → objects for the
 * command line. Types JSON lacks travel as one-key objects ("$data", "$uuid", "$date", "$uint64",
 * "$error"); fd, endpoint and shmem values are shown as placeholders and refused on input. */

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


static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *p, size_t n) {
        char *out = malloc((n + 2) / 3 * 4 + 1), *q = out;
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t) p[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t) p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *q++ = base64_alphabet[(v >> 18) & 63];
                *q++ = base64_alphabet[(v >> 12) & 63];
                *q++ = i + 1 < n ? base64_alphabet[(v >> 6) & 63] : '=';
                *q++ = i + 2 < n ? base64_alphabet[v & 63] : '=';
        }
        *q = 0;
        return out;
}

static int base64_value(char c) {
        const char *p = c ? strchr(base64_alphabet, c) : NULL;
        return p ? (int) (p - base64_alphabet) : -1;
}

static int base64_decode(const char *s, uint8_t **ret, size_t *ret_size) {
        size_t len = strlen(s);
        if (len % 4 != 0)
                return -EINVAL;
        _cleanup_free_ uint8_t *out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < len; i += 4) {
                int v[4];
                size_t pad = 0;
                for (size_t j = 0; j < 4; j++) {
                        if (s[i + j] == '=' && i + 4 == len && j >= 2) {
                                v[j] = 0;
                                pad++;
                        } else {
                                if (pad > 0)
                                        return -EINVAL;
                                v[j] = base64_value(s[i + j]);
                                if (v[j] < 0)
                                        return -EINVAL;
                        }
                }
                uint32_t w = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
                out[n++] = (uint8_t) (w >> 16);
                if (pad < 2)
                        out[n++] = (uint8_t) (w >> 8);
                if (pad < 1)
                        out[n++] = (uint8_t) w;
        }
        *ret = TAKE_PTR(out);
        *ret_size = n;
        return 0;
}

static void uuid_format(const uint8_t u[16], char out[37]) {
        snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
                 u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int uuid_parse(const char *s, uint8_t out[16]) {
        size_t k = 0;
        for (size_t i = 0; s[i]; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return -EINVAL;
                        continue;
                }
                int hi = s[i], lo = s[i + 1];
                if (!hi || !lo || k >= 16 || !strchr("0123456789abcdefABCDEF", hi) || !strchr("0123456789abcdefABCDEF", lo))
                        return -EINVAL;
                char pair[3] = { (char) hi, (char) lo, 0 };
                out[k++] = (uint8_t) strtoul(pair, NULL, 16);
                i++;
        }
        return k == 16 && strlen(s) == 36 ? 0 : -EINVAL;
}

/* RFC 3339 in UTC with nanoseconds: 2026-11-29T03:30:00.000000001Z */
static int date_format(int64_t ns, char out[64]) {
        int64_t sec = ns / (int64_t) NSEC_PER_SEC, frac = ns % (int64_t) NSEC_PER_SEC;
        if (frac < 0) {
                frac += (int64_t) NSEC_PER_SEC;
                sec--;
        }
        time_t t = (time_t) sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm))
                return -ERANGE;
        size_t n = strftime(out, 64, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0)
                return -ERANGE;
        snprintf(out + n, 64 - n, ".%09" PRId64 "Z", frac);
        return 0;
}

static int date_parse(const char *s, int64_t *ret) {
        struct tm tm = {};
        const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        int64_t frac = 0;
        if (*p == '.') {
                int digits = 0;
                for (p++; *p >= '0' && *p <= '9'; p++, digits++)
                        if (digits < 9)
                                frac = frac * 10 + (*p - '0');
                if (digits == 0)
                        return -EINVAL;
                for (; digits < 9; digits++)
                        frac *= 10;
        }
        if (strcmp(p, "Z") != 0)
                return -EINVAL;
        time_t t = timegm(&tm);
        if (t == (time_t) -1 && !(tm.tm_year == 69 && tm.tm_mday == 31))
                return -EINVAL;
        *ret = (int64_t) t * (int64_t) NSEC_PER_SEC + frac;
        return 0;
}

static json_t *tagged(const char *key, json_t *value) {
        if (!value)
                return NULL;
        json_t *o = json_object();
        if (!o || json_object_set_new(o, key, value) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static json_t *to_json(const cxpc_object *o, unsigned depth) {
        char buf[64];

        if (depth > CXPC_DEPTH_MAX)
                return NULL;
        switch (o->type) {
        case CXPC_TYPE_NULL:
                return json_null();
        case CXPC_TYPE_BOOL:
                return json_boolean(o->boolean);
        case CXPC_TYPE_INT64:
                return json_integer(o->i64);
        case CXPC_TYPE_UINT64:
                if (o->u64 <= INT64_MAX)
                        return json_integer((json_int_t) o->u64);
                snprintf(buf, sizeof(buf), "%" PRIu64, o->u64);
                return tagged("$uint64", json_string(buf));
        case CXPC_TYPE_DOUBLE:
                return json_real(o->dbl);
        case CXPC_TYPE_DATE:
                if (date_format(o->i64, buf) < 0)
                        return NULL;
                return tagged("$date", json_string(buf));
        case CXPC_TYPE_DATA: {
                _cleanup_free_ char *b64 = base64_encode(o->data.ptr, o->data.size);
                return b64 ? tagged("$data", json_string(b64)) : NULL;
        }
        case CXPC_TYPE_STRING:
                return json_stringn(o->string.ptr, o->string.len);
        case CXPC_TYPE_UUID:
                uuid_format(o->uuid, buf);
                return tagged("$uuid", json_string(buf));
        case CXPC_TYPE_ARRAY: {
                json_t *a = json_array();
                for (size_t i = 0; a && i < o->array.n; i++)
                        if (json_array_append_new(a, to_json(o->array.items[i], depth + 1)) < 0) {
                                json_decref(a);
                                return NULL;
                        }
                return a;
        }
        case CXPC_TYPE_DICTIONARY: {
                json_t *d = json_object();
                for (size_t i = 0; d && i < o->dict.n; i++)
                        if (json_object_set_new(d, o->dict.entries[i].key, to_json(o->dict.entries[i].value, depth + 1)) < 0) {
                                json_decref(d);
                                return NULL;
                        }
                return d;
        }
        case CXPC_TYPE_FD:
                return tagged("$fd", json_integer(o->fd));
        case CXPC_TYPE_ENDPOINT:
                return tagged("$endpoint", json_true());
        case CXPC_TYPE_SHMEM:
                return tagged("$shmem", json_integer((json_int_t) o->shmem.size));
        case CXPC_TYPE_ERROR: {
                json_t *e = json_pack("{s:s, s:s}", "code", cxpc_error_code_to_string(o->error.code) ?: "unknown",
                                      "message", o->error.message ?: "");
                return tagged("$error", e);
        }
        default:
                return NULL;
        }
}

_public_ int cxpc_object_to_json(const cxpc_object *o, unsigned flags, char **ret) {
        assert_return(o, -EINVAL);
        assert_return(ret, -EINVAL);
        assert_return((flags & ~CXPC_JSON_PRETTY) == 0, -EINVAL);

        _cleanup_(json_decrefp) json_t *j = to_json(o, 0);
        if (!j)
                return -ENOMEM;
        char *s = json_dumps(j, JSON_ENCODE_ANY | (flags & CXPC_JSON_PRETTY ? JSON_INDENT(2) : JSON_COMPACT));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int from_json(json_t *j, unsigned depth, cxpc_object **ret);

/* One-key objects whose key starts with '$' carry the types JSON lacks. */
static int from_tagged(const char *key, json_t *v, unsigned depth, cxpc_object **ret) {
        int r;

        if (streq(key, "$data")) {
                _cleanup_free_ uint8_t *bytes = NULL;
                size_t n;
                if (!json_is_string(v))
                        return -EINVAL;
                r = base64_decode(json_string_value(v), &bytes, &n);
                if (r < 0)
                        return r;
                return cxpc_data_new(bytes, n, ret);
        }
        if (streq(key, "$uuid")) {
                uint8_t u[16];
                if (!json_is_string(v) || uuid_parse(json_string_value(v), u) < 0)
                        return -EINVAL;
                return cxpc_uuid_new(u, ret);
        }
        if (streq(key, "$date")) {
                int64_t ns;
                if (json_is_integer(v))
                        return cxpc_date_new(json_integer_value(v), ret);
                if (!json_is_string(v) || date_parse(json_string_value(v), &ns) < 0)
                        return -EINVAL;
                return cxpc_date_new(ns, ret);
        }
        if (streq(key, "$uint64")) {
                if (json_is_integer(v) && json_integer_value(v) >= 0)
                        return cxpc_uint64_new((uint64_t) json_integer_value(v), ret);
                if (!json_is_string(v))
                        return -EINVAL;
                const char *s = json_string_value(v);
                char *end = NULL;
                errno = 0;
                unsigned long long u = strtoull(s, &end, 10);
                if (errno != 0 || !end || *end || s[0] == '-' || s[0] == '\0')
                        return -EINVAL;
                return cxpc_uint64_new(u, ret);
        }
        if (streq(key, "$error")) {
                const char *code = NULL, *message = NULL;
                if (json_unpack(v, "{s:s, s?s}", "code", &code, "message", &message) < 0)
                        return -EINVAL;
                return cxpc_error_new(cxpc_error_code_from_string(code), message, ret);
        }
        if (streq(key, "$fd") || streq(key, "$endpoint") || streq(key, "$shmem"))
                return -EINVAL; /* capabilities cannot come from text */
        return -ENOENT;         /* an ordinary one-key object */
}

static int from_json(json_t *j, unsigned depth, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *o = NULL;
        int r;

        if (depth > CXPC_DEPTH_MAX)
                return -ELOOP;

        switch (json_typeof(j)) {
        case JSON_NULL:
                return cxpc_null_new(ret);
        case JSON_TRUE:
                return cxpc_bool_new(true, ret);
        case JSON_FALSE:
                return cxpc_bool_new(false, ret);
        case JSON_INTEGER:
                return cxpc_int64_new(json_integer_value(j), ret);
        case JSON_REAL:
                return cxpc_double_new(json_real_value(j), ret);
        case JSON_STRING:
                return cxpc_string_new_len(json_string_value(j), json_string_length(j), ret);
        case JSON_ARRAY: {
                size_t i;
                json_t *v;
                r = cxpc_array_new(&o);
                if (r < 0)
                        return r;
                json_array_foreach(j, i, v) {
                        cxpc_object *item;
                        r = from_json(v, depth + 1, &item);
                        if (r < 0)
                                return r;
                        r = cxpc_array_append_take(o, item);
                        if (r < 0)
                                return r;
                }
                break;
        }
        case JSON_OBJECT: {
                const char *key;
                json_t *v;
                if (json_object_size(j) == 1) {
                        json_object_foreach(j, key, v) {
                                if (key[0] == '$') {
                                        r = from_tagged(key, v, depth, ret);
                                        if (r != -ENOENT)
                                                return r;
                                }
                        }
                }
                r = cxpc_dict_new(&o);
                if (r < 0)
                        return r;
                json_object_foreach(j, key, v) {
                        cxpc_object *value;
                        size_t len = strlen(key);
                        if (!cxpc_utf8_is_valid(key, len))
                                return -EILSEQ;
                        r = from_json(v, depth + 1, &value);
                        if (r < 0)
                                return r;
                        r = cxpc_dict_set_take_len(o, key, len, value);
                        if (r < 0)
                                return r;
                }
                break;
        }
        default:
                return -EINVAL;
        }
        *ret = TAKE_PTR(o);
        return 0;
}

_public_ int cxpc_object_from_json(const char *text, cxpc_object **ret) {
        assert_return(text, -EINVAL);
        assert_return(ret, -EINVAL);

        json_error_t error;
        _cleanup_(json_decrefp) json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
        if (!j)
                return -EINVAL;
        return from_json(j, 0, ret);
}
