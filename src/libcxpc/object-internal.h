/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Library-internal view of objects: what the codec and the connection layer need beyond the
 * public API. The struct layout itself lives in object.c. */

#include <stdbool.h>
#include <stdint.h>

#include "cxpc/cxpc.h"

/* Metadata a received message carries so that a (possibly deferred) reply can find its request.
 * Set by the connection on every incoming dictionary. */
void cxpc_message_set_received(cxpc_object *message, uint64_t id, unsigned frame_flags);
/* false when the message was not received from a peer. */
bool cxpc_message_get_received(const cxpc_object *message, uint64_t *ret_id, unsigned *ret_frame_flags);
/* -EALREADY when a reply was already sent for this request. */
int cxpc_message_mark_replied(cxpc_object *message);

/* Endpoint objects wrap the connector socket of an anonymous listener (docs/protocol.md). */
int cxpc_endpoint_new_take_fd(int fd, cxpc_object **ret);
/* Borrowed fd, or -EMEDIUMTYPE / -EINVAL. */
int cxpc_endpoint_get_fd(const cxpc_object *o);
/* Borrowed fd of an fd or shmem object. */
int cxpc_object_get_fd_borrowed(const cxpc_object *o);
