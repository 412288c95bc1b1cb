/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* Router: CXPC_KEY_ROUTE → handler. Routes are added at startup and looked up per message through a
 * small open-addressing index; the array keeps registration order for introspection. */

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "connection-internal.h"
#include "cxpc/cxpc.h"
#include "macro.h"
#include "object-internal.h"

typedef struct Route {
        char *name;
        uint32_t hash;
        cxpc_route_handler_t handler;
        void *userdata;
} Route;

struct cxpc_router {
        unsigned n_ref;
        Route *routes;
        size_t n_routes;
        uint32_t *index; /* route position + 1, 0 = empty; size a power of two, at most half full */
        size_t index_size;
};

static uint32_t route_hash(const char *s) {
        /* FNV-1a: route names are short and chosen by the service, not by the peer's adversary:
         * a peer can only make lookups miss, which costs one probe sequence. */
        uint32_t h = 2166136261u;
        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * 16777619u;
        return h;
}

static int router_reindex(cxpc_router *r, size_t size) {
        uint32_t *index = calloc(size, sizeof(uint32_t));
        if (!index)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_routes; i++) {
                size_t k = r->routes[i].hash & (size - 1);
                while (index[k])
                        k = (k + 1) & (size - 1);
                index[k] = (uint32_t) i + 1;
        }
        free(r->index);
        r->index = index;
        r->index_size = size;
        return 0;
}

static Route *router_find(cxpc_router *r, const char *name) {
        if (r->index_size == 0)
                return NULL;
        uint32_t h = route_hash(name);
        for (size_t k = h & (r->index_size - 1);; k = (k + 1) & (r->index_size - 1)) {
                uint32_t v = r->index[k];
                if (v == 0)
                        return NULL;
                Route *e = &r->routes[v - 1];
                if (e->hash == h && streq(e->name, name))
                        return e;
        }
}

_public_ int cxpc_router_new(cxpc_router **ret) {
        assert_return(ret, -EINVAL);

        cxpc_router *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->n_ref = 1;
        *ret = r;
        return 0;
}

_public_ cxpc_router *cxpc_router_ref(cxpc_router *r) {
        if (!r)
                return NULL;
        assert(r->n_ref > 0);
        r->n_ref++;
        return r;
}

_public_ cxpc_router *cxpc_router_unref(cxpc_router *r) {
        if (!r)
                return NULL;
        assert(r->n_ref > 0);
        if (--r->n_ref > 0)
                return NULL;
        for (size_t i = 0; i < r->n_routes; i++)
                free(r->routes[i].name);
        free(r->routes);
        free(r->index);
        free(r);
        return NULL;
}

_public_ int cxpc_router_add(cxpc_router *r, const char *route, cxpc_route_handler_t handler,
                             void *userdata) {
        assert_return(r, -EINVAL);
        assert_return(route, -EINVAL);
        assert_return(handler, -EINVAL);

        size_t len = strlen(route);
        if (len == 0 || len > CXPC_KEY_SIZE_MAX || !cxpc_utf8_is_valid(route, len))
                return -EINVAL;
        if (streq(route, CXPC_ROUTE_INTROSPECT) || router_find(r, route))
                return -EEXIST;

        if ((r->n_routes + 1) * 2 > r->index_size) {
                int k = router_reindex(r, MAX(r->index_size * 2, (size_t) 16));
                if (k < 0)
                        return k;
        }
        Route *n = reallocarray(r->routes, r->n_routes + 1, sizeof(Route));
        if (!n)
                return -ENOMEM;
        r->routes = n;
        char *name = strdup(route);
        if (!name)
                return -ENOMEM;

        uint32_t h = route_hash(route);
        r->routes[r->n_routes] = (Route){.name = name, .hash = h, .handler = handler, .userdata = userdata};
        size_t k = h & (r->index_size - 1);
        while (r->index[k])
                k = (k + 1) & (r->index_size - 1);
        r->index[k] = (uint32_t) ++r->n_routes;
        return 0;
}

_public_ int cxpc_router_list(cxpc_router *r, cxpc_object **ret_array) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *a = NULL;
        int k;

        assert_return(r, -EINVAL);
        assert_return(ret_array, -EINVAL);

        k = cxpc_array_new(&a);
        if (k < 0)
                return k;
        for (size_t i = 0; i < r->n_routes; i++) {
                cxpc_object *s = NULL;
                k = cxpc_string_new(r->routes[i].name, &s);
                if (k < 0)
                        return k;
                k = cxpc_array_append_take(a, s);
                if (k < 0)
                        return k;
        }
        *ret_array = TAKE_PTR(a);
        return 0;
}

static int router_introspect(cxpc_router *r, cxpc_connection *c, cxpc_object *message) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL, *list = NULL;
        int k;

        if (!cxpc_message_expects_reply(message))
                return 0;
        k = cxpc_router_list(r, &list);
        if (k < 0)
                return k;
        k = cxpc_reply_new(&reply);
        if (k < 0)
                return k;
        k = cxpc_dict_set(reply, "routes", list);
        if (k < 0)
                return k;
        return cxpc_connection_reply(c, message, reply);
}

_public_ int cxpc_router_dispatch(cxpc_router *r, cxpc_connection *c, cxpc_object *message) {
        int k;

        assert_return(r, -EINVAL);
        assert_return(c, -EINVAL);
        assert_return(cxpc_object_get_type(message) == CXPC_TYPE_DICTIONARY, -EINVAL);

        bool wants_reply = cxpc_message_expects_reply(message);
        const char *route = cxpc_message_get_route(message);
        if (!route) {
                if (wants_reply)
                        (void) cxpc_connection_reply_error(c, message, CXPC_ERROR_UNSUPPORTED,
                                                           "message has no route (key \"%s\")",
                                                           CXPC_KEY_ROUTE);
                return 0;
        }
        if (streq(route, CXPC_ROUTE_INTROSPECT))
                return router_introspect(r, c, message);

        Route *e = router_find(r, route);
        if (!e) {
                if (wants_reply)
                        (void) cxpc_connection_reply_error(c, message, CXPC_ERROR_UNSUPPORTED,
                                                           "unsupported route: %s", route);
                return 0;
        }

        /* Keep the router alive even if the handler drops the connection's reference. */
        cxpc_router_ref(r);
        k = e->handler(c, message, e->userdata);
        cxpc_router_unref(r);
        if (k < 0 && wants_reply && !message_is_replied(message) &&
            cxpc_connection_get_state(c) == CXPC_CONNECTION_CONNECTED)
                (void) connection_reply_errno(c, message, k);
        return k;
}
