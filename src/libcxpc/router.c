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
        size_t len;
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
        /* The route the last dispatch found, position + 1 (0: none): consecutive messages mostly
         * take the same route, and one comparison is cheaper than hashing the name. Routes are
         * never removed, so a position stays valid. Relaxed atomics: a router may be shared. */
        size_t last;
};

static uint32_t route_hash(const char *s, size_t len) {
        /* A word at a time (this runs for every message): route names are chosen by the service,
         * not by the peer's adversary, and a peer can only make lookups miss, which costs one
         * probe sequence. The last word overlaps the one before when len is not a multiple of 8. */
        uint64_t h = (len + 1) * 0x9e3779b97f4a7c15ull;
        if (len >= 8) {
                for (size_t i = 0; i + 8 < len; i += 8)
                        h = (h ^ load_u64(s + i)) * 0x100000001b3ull;
                h = (h ^ load_u64(s + len - 8)) * 0x100000001b3ull;
        } else
                for (size_t i = 0; i < len; i++)
                        h = (h ^ (uint8_t) s[i]) * 0x100000001b3ull;
        return (uint32_t) (h ^ (h >> 29) ^ (h >> 47));
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

static Route *router_find(cxpc_router *r, const char *name, size_t len) {
        if (r->index_size == 0)
                return NULL;
        uint32_t h = route_hash(name, len);
        for (size_t k = h & (r->index_size - 1);; k = (k + 1) & (r->index_size - 1)) {
                uint32_t v = r->index[k];
                if (v == 0)
                        return NULL;
                Route *e = &r->routes[v - 1];
                if (e->hash == h && e->len == len && bytes_equal_short(e->name, name, len))
                        return e;
        }
}

/* router_find() trying the route of the previous dispatch first. */
static Route *router_find_cached(cxpc_router *r, const char *name, size_t len) {
        size_t last = __atomic_load_n(&r->last, __ATOMIC_RELAXED);
        if (last > 0) {
                Route *e = &r->routes[last - 1];
                if (e->len == len && bytes_equal_short(e->name, name, len))
                        return e;
        }
        Route *e = router_find(r, name, len);
        if (e)
                __atomic_store_n(&r->last, (size_t) (e - r->routes) + 1, __ATOMIC_RELAXED);
        return e;
}

static bool route_is_introspect(const char *name, size_t len) {
        return len == sizeof(CXPC_ROUTE_INTROSPECT) - 1 && memcmp(name, CXPC_ROUTE_INTROSPECT, len) == 0;
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

static void router_free(cxpc_router *r);

_public_ cxpc_router *cxpc_router_unref(cxpc_router *r) {
        if (!r)
                return NULL;
        assert(r->n_ref > 0);
        if (--r->n_ref > 0)
                return NULL;
        router_free(r);
        return NULL;
}

static void router_free(cxpc_router *r) {
        for (size_t i = 0; i < r->n_routes; i++)
                free(r->routes[i].name);
        free(r->routes);
        free(r->index);
        free(r);
}

_public_ int cxpc_router_add(cxpc_router *r, const char *route, cxpc_route_handler_t handler,
                             void *userdata) {
        assert_return(r, -EINVAL);
        assert_return(route, -EINVAL);
        assert_return(handler, -EINVAL);

        size_t len = strlen(route);
        if (len == 0 || len > CXPC_KEY_SIZE_MAX || !cxpc_utf8_is_valid(route, len))
                return -EINVAL;
        if (route_is_introspect(route, len) || router_find(r, route, len))
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

        uint32_t h = route_hash(route, len);
        r->routes[r->n_routes] =
                (Route){.name = name, .len = len, .hash = h, .handler = handler, .userdata = userdata};
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
        assert_return(object_is_dict(message), -EINVAL);

        unsigned flags;
        bool wants_reply =
                cxpc_message_get_received(message, NULL, &flags) && (flags & CXPC_FRAME_WANTS_REPLY);
        const char *route;
        size_t len;
        if (message_get_route(message, &route, &len) < 0) {
                if (wants_reply)
                        (void) cxpc_connection_reply_error(c, message, CXPC_ERROR_UNSUPPORTED,
                                                           "message has no route (key \"%s\")",
                                                           CXPC_KEY_ROUTE);
                return 0;
        }
        if (route_is_introspect(route, len))
                return router_introspect(r, c, message);

        Route *e = router_find_cached(r, route, len);
        if (!e) {
                if (wants_reply)
                        (void) cxpc_connection_reply_error(c, message, CXPC_ERROR_UNSUPPORTED,
                                                           "unsupported route: %s", route);
                return 0;
        }

        /* Keep the router alive even if the handler drops the connection's reference (what
         * cxpc_router_ref()/cxpc_router_unref() do, without the calls). */
        r->n_ref++;
        k = e->handler(c, message, e->userdata);
        assert(r->n_ref > 0);
        if (--r->n_ref == 0)
                router_free(r);
        if (k < 0 && wants_reply && !message_is_replied(message) &&
            cxpc_connection_get_state(c) == CXPC_CONNECTION_CONNECTED)
                (void) connection_reply_errno(c, message, k);
        return k;
}
