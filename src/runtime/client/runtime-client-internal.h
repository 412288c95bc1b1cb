/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the two halves of the typed client: runtime-client.c (routes) and
 * runtime-client-copy.c (copyIn/copyOut with libarchive). */

#include "runtime-client.h"

struct RuntimeClient {
        cxpc_connection *conn;
        uint64_t timeout_usec;
        RuntimeClientError error;
};

/* Records a local failure (not a reply from the service) as the last error; returns r. */
int runtime_client_set_local_error(RuntimeClient *c, int r, const char *what);
/* A request for the route "runtime/<name>". */
int runtime_client_new_request(RuntimeClient *c, const char *name, cxpc_object **ret);
