/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Message conventions on top of dictionaries: routes, error replies, reply expectations. */

#include <errno.h>

#include "codec.h"
#include "cxpc/cxpc.h"
#include "macro.h"
#include "object-internal.h"

_public_ int cxpc_message_new_request(const char *route, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        cxpc_object *s = NULL;
        int r;

        assert_return(route && route[0], -EINVAL);
        assert_return(ret, -EINVAL);

        m = dict_new();
        if (!m)
                return -ENOMEM;
        /* Routes are short ASCII: measured and checked in one pass. Anything else takes the
         * general constructor, which also gives its error. */
        size_t len;
        if (key_length_valid(route, &len) && len <= CXPC_STRING_SHORT_MAX) {
                s = string_new_short(route, len);
                if (!s)
                        return -ENOMEM;
        } else {
                r = cxpc_string_new(route, &s); /* checks the route */
                if (r < 0)
                        return r;
        }
        /* The key is our own constant: no need to measure and check it each time. */
        r = dict_put_take(m, CXPC_KEY_ROUTE, CXPC_KEY_ROUTE_LEN, s, /* replace= */ true);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

_public_ const char *cxpc_message_get_route(const cxpc_object *message) {
        const char *route = NULL;
        if (message_get_route(message, &route, NULL) < 0)
                return NULL;
        return route;
}

_public_ cxpc_object *cxpc_message_get_error(const cxpc_object *message) {
        cxpc_object *e = cxpc_dict_get(message, CXPC_KEY_ERROR);
        return cxpc_object_get_type(e) == CXPC_TYPE_ERROR ? e : NULL;
}

_public_ int cxpc_reply_check(const cxpc_object *reply, cxpc_error_code *ret_code,
                              const char **ret_message) {
        cxpc_error_code code;
        const char *msg;

        assert_return(cxpc_object_get_type(reply) == CXPC_TYPE_DICTIONARY, -EINVAL);

        cxpc_object *e = cxpc_message_get_error(reply);
        if (!e)
                return 0;
        (void) cxpc_error_get_code(e, &code);
        (void) cxpc_error_get_message(e, &msg);
        if (ret_code)
                *ret_code = code;
        if (ret_message)
                *ret_message = msg;
        return -cxpc_error_code_to_errno(code);
}

_public_ int cxpc_reply_new(cxpc_object **ret) {
        return cxpc_dict_new(ret);
}

_public_ bool cxpc_message_expects_reply(const cxpc_object *message) {
        unsigned flags;
        if (!cxpc_message_get_received(message, NULL, &flags))
                return false;
        return flags & CXPC_FRAME_WANTS_REPLY;
}
