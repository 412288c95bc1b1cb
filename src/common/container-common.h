/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "oci-runtime-dirs.h"

/* Shared between container-apiserver and the container CLI (docs/apiserver.md). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Container ids and names: 1–64 characters, [A-Za-z0-9][A-Za-z0-9_.-]*. */
#define CONTAINER_ID_MAX 64u
/* Generated ids: 12 lowercase hex characters, like docker's short ids. */
#define CONTAINER_ID_GENERATED_LEN 12u

#define CONTAINER_ROOT_DEFAULT     "/var/lib/container"
#define CONTAINER_RUN_DIR_DEFAULT  "/run/container"
#define CONTAINER_APISERVER_SOCKET "apiserver.sock"

/* Deadline for ordinary CLI → API server calls and API server → runtime calls. */
#define CONTAINER_CALL_TIMEOUT_USEC (30ull * 1000000ull)

/* Exit codes of the CLI (docker's conventions). */
#define CONTAINER_EXIT_TOOL_FAILED    125
#define CONTAINER_EXIT_NOT_EXECUTABLE 126
#define CONTAINER_EXIT_NOT_FOUND      127

/* Routes of container-apiserver. */
#define APISERVER_ROUTE_CREATE          "container/create"
#define APISERVER_ROUTE_START           "container/start"
#define APISERVER_ROUTE_LIST            "container/list"
#define APISERVER_ROUTE_INSPECT         "container/inspect"
#define APISERVER_ROUTE_STOP            "container/stop"
#define APISERVER_ROUTE_KILL            "container/kill"
#define APISERVER_ROUTE_DELETE          "container/delete"
#define APISERVER_ROUTE_WAIT            "container/wait"
#define APISERVER_ROUTE_ENDPOINT        "container/endpoint"
#define APISERVER_ROUTE_LOGS            "container/logs"
#define APISERVER_ROUTE_RESIZE          "container/resize"
#define APISERVER_ROUTE_PRUNE           "container/prune"
#define APISERVER_ROUTE_UPDATE          "container/update"
#define APISERVER_ROUTE_TOP             "container/top"
#define APISERVER_ROUTE_PAUSE           "container/pause"
#define APISERVER_ROUTE_UNPAUSE         "container/unpause"
#define APISERVER_ROUTE_IMAGE_LOAD      "image/load"
#define APISERVER_ROUTE_IMAGE_LIST      "image/list"
#define APISERVER_ROUTE_IMAGE_REMOVE    "image/remove"
#define APISERVER_ROUTE_IMAGE_INSPECT   "image/inspect"
#define APISERVER_ROUTE_IMAGE_TAG       "image/tag"
#define APISERVER_ROUTE_IMAGE_PRUNE     "image/prune"
#define APISERVER_ROUTE_IMAGE_SAVE      "image/save"
#define APISERVER_ROUTE_SYSTEM_STATUS   "system/status"
#define APISERVER_ROUTE_SYSTEM_SHUTDOWN "system/shutdown"

typedef enum ContainerStatus {
        CONTAINER_STATUS_CREATED,
        CONTAINER_STATUS_RUNNING,
        CONTAINER_STATUS_STOPPED,
        CONTAINER_STATUS_BROKEN, /* its directory could not be read; never deleted implicitly */
        _CONTAINER_STATUS_MAX,
        _CONTAINER_STATUS_INVALID = -22,
} ContainerStatus;

const char *container_status_to_string(ContainerStatus s);
ContainerStatus container_status_from_string(const char *s);

const char *container_version(void);

bool container_id_is_valid(const char *id);
/* 12 random lowercase hex characters plus NUL. */
int container_id_generate(char ret[CONTAINER_ID_GENERATED_LEN + 1]);

/* Root and run directories: the flag value when given, else $CONTAINER_ROOT / $CONTAINER_RUN_DIR,
 * else the defaults. Returns newly allocated absolute paths. */
int container_root_dir(const char *flag, char **ret);
int container_run_dir(const char *flag, char **ret);

/* Date helpers: int64 nanoseconds since the epoch <-> RFC 3339 with nanoseconds, UTC. */
int64_t now_nsec(void);
int format_rfc3339(int64_t nsec, char *buf, size_t size);
int parse_rfc3339(const char *s, int64_t *ret);

/* How much of a write must survive a power loss (an own crash never loses what was written). */
typedef enum WriteSync {
        WRITE_SYNC_NONE, /* temporary file + rename only: readers never see a torn file */
        WRITE_SYNC_FILE, /* + fsync of the file before the rename: after a power loss the path holds
                          * the old or the new content, never an empty or torn file */
        WRITE_SYNC_FULL, /* + fsync of the directory: the new content itself survives a power loss */
} WriteSync;

/* Writes a JSON document to path atomically: a temporary file in the same directory, renamed over
 * path, with the fsyncs that sync asks for. */
int json_write_atomic_full(const char *path, json_t *j, WriteSync sync);
/* json_write_atomic_full(path, j, WRITE_SYNC_FULL). */
int json_write_atomic(const char *path, json_t *j);
/* fsync of a directory (makes the renames and creations done in it durable). */
int fsync_directory(const char *path);

/* Recursive removal that never follows symlinks and never crosses mount points. */
int rm_rf(const char *path);

/* The directory of /proc/self/exe (newly allocated). */
int self_exe_dir(char **ret);
/* Finds a helper binary: $ENV_NAME, then DIR_OF_SELF/../SUBDIR/NAME, DIR_OF_SELF/NAME, LIBEXECDIR/NAME. */
int find_helper_binary(const char *env_name, const char *subdir, const char *name, char **ret);

/* mkdir -p; the last component gets mode, parents too. */
int mkdir_p(const char *path, mode_t mode);

/* OCI runtimes (docs/cli.md, run --runtime; docs/apiserver.md): a container's "runtime" is one of
 * the names below or the absolute path of an OCI runtime binary, given to its container-runtime
 * as --runtime. */
#define CONTAINER_OCI_RUNTIME_DEFAULT "crun"
/* What containers whose config.json predates the "runtime" key ran with. */
#define CONTAINER_OCI_RUNTIME_LEGACY "crun"
/* "crun" or "runc". */
bool oci_runtime_name_is_known(const char *name);
/* Names are looked up by oci_runtime_lookup() (oci-runtime-dirs.h), as container-runtime does. */

/* Checks a runtime value: a known name installed in one of OCI_RUNTIME_SEARCH_DIRS, or an
 * absolute path of an executable regular file. Returns 0, or -EINVAL (unknown name, relative path),
 * -ENOENT (not installed, no such file) or another errno, with one line saying why in err. */
int oci_runtime_check(const char *value, char *err, size_t errsize);
/* The file a runtime value names: oci_runtime_lookup() of a name, or the absolute path itself. */
int oci_runtime_resolve(const char *value, char **ret_path);
