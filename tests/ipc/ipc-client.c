/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* ipc-client PATH ROUTE: one synchronous call; prints "reply: <json>" or
 * "error-reply: <code>: <message>", then a second call's fate ("alive" or "closed: <errno>").
 * Used by tests/ipc to act as a client under another uid (setpriv). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxpc/cxpc.h"

static int call(cxpc_connection *c, const char *route, cxpc_object **ret) {
        cxpc_object *req = NULL;
        int r = cxpc_message_new_request(route, &req);
        if (r < 0)
                return r;
        r = cxpc_connection_call(c, req, 5 * 1000000ull, ret);
        cxpc_object_unref(req);
        return r;
}

int main(int argc, char **argv) {
        cxpc_connection *c = NULL;
        cxpc_object *reply = NULL;
        cxpc_error_code code;
        const char *msg = NULL;
        int r;

        if (argc != 3) {
                fprintf(stderr, "usage: ipc-client PATH ROUTE\n");
                return 2;
        }
        r = cxpc_connection_new_for_path(argv[1], &c);
        if (r < 0) {
                printf("connect-failed: %s\n", strerror(-r));
                return 1;
        }
        r = call(c, argv[2], &reply);
        if (r < 0) {
                printf("call-failed: %s\n", strerror(-r));
                cxpc_connection_unref(c);
                return 1;
        }
        if (cxpc_reply_check(reply, &code, &msg) < 0)
                printf("error-reply: %s: %s\n", cxpc_error_code_to_string(code), msg ? msg : "");
        else {
                char *json = NULL;
                if (cxpc_object_to_json(reply, 0, &json) >= 0)
                        printf("reply: %s\n", json);
                free(json);
        }
        cxpc_object_unref(reply);
        reply = NULL;

        r = call(c, argv[2], &reply);
        if (r < 0)
                printf("closed: %s\n", strerror(-r));
        else
                printf("alive\n");
        cxpc_object_unref(reply);
        cxpc_connection_unref(c);
        return 0;
}
