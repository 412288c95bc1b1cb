/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Bounds of a container's resource limits that every layer checks alike: the CLI before it sends
 * them (run, create, update), the API server (container/update) and the runtime service
 * (runtime/update). */
#define CONTAINER_CPUS_MAX   1024u                /* --cpus */
#define CONTAINER_MEMORY_MIN (4u * 1024u * 1024u) /* -m: below this a container hardly starts */
