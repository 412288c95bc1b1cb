/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Typed client of the container-runtime service (routes runtime/<name>, docs/runtime.md).
 *
 * Every call returns 0 or a negative errno. When the service answers with an error reply, the
 * call returns -cxpc_error_code_to_errno(code) and the client keeps the remote code and message
 * (runtime_client_last_error()) unchanged, so callers can add context without losing the code. */

#include <cxpc/cxpc.h>
#include <stdint.h>

#define RUNTIME_CLIENT_ROUTE(name) "runtime/" name

typedef struct RuntimeClient RuntimeClient;

typedef struct RuntimeClientError {
        cxpc_error_code code; /* CXPC_ERROR_UNKNOWN with an empty message when the last call succeeded */
        char message[CXPC_ERROR_MESSAGE_SIZE_MAX];
        bool remote; /* true when the service sent the error, false for local failures */
} RuntimeClientError;

/* stdio for bootstrap/createProcess; -1 leaves the slot to the service's default. */
typedef struct RuntimeStdio {
        int stdin_fd;
        int stdout_fd;
        int stderr_fd;
} RuntimeStdio;

#define RUNTIME_STDIO_NONE ((RuntimeStdio){-1, -1, -1})

typedef struct RuntimeStatistics {
        uint64_t cpu_usage_ns;
        uint64_t memory_usage_bytes;
        uint64_t memory_limit_bytes;
        uint64_t pids_current;
        uint64_t pids_limit;
        uint64_t block_read_bytes;
        uint64_t block_write_bytes;
        uint64_t network_rx_bytes;
        uint64_t network_tx_bytes;
} RuntimeStatistics;

int runtime_client_connect_path(const char *path, RuntimeClient **ret);
int runtime_client_connect_endpoint(const cxpc_object *endpoint, RuntimeClient **ret);
/* Takes a reference to c. */
int runtime_client_new_from_connection(cxpc_connection *c, RuntimeClient **ret);
RuntimeClient *runtime_client_free(RuntimeClient *c);
static inline void runtime_client_freep(RuntimeClient **c) {
        if (*c)
                *c = runtime_client_free(*c);
}

cxpc_connection *runtime_client_get_connection(RuntimeClient *c);
/* Deadline for every call except wait (default CXPC_DEFAULT_TIMEOUT_USEC). */
void runtime_client_set_timeout(RuntimeClient *c, uint64_t usec);
const RuntimeClientError *runtime_client_last_error(const RuntimeClient *c);

int runtime_client_create_endpoint(RuntimeClient *c, cxpc_object **ret_endpoint);
/* networks may be NULL; env is a NULL-terminated "K=V" list or NULL. */
int runtime_client_bootstrap(RuntimeClient *c, const RuntimeStdio *stdio, cxpc_object *networks,
                             char *const *env);
/* process_config: a dictionary in the shape of container.json's "process". */
int runtime_client_create_process(RuntimeClient *c, const char *id, cxpc_object *process_config,
                                  const RuntimeStdio *stdio);
int runtime_client_start(RuntimeClient *c, const char *id);
/* signal: "SIGTERM", "TERM" or a number as a string. */
int runtime_client_kill(RuntimeClient *c, const char *id, const char *signal);
int runtime_client_resize(RuntimeClient *c, const char *id, unsigned width, unsigned height);
/* Freezes / thaws the container (id: the container's); answered once the OCI runtime has done it. */
int runtime_client_pause(RuntimeClient *c, const char *id);
int runtime_client_resume(RuntimeClient *c, const char *id);
/* timeout_usec: CXPC_INFINITY waits for ever. Outputs are optional. */
int runtime_client_wait(RuntimeClient *c, const char *id, uint64_t timeout_usec, int *ret_exit_code,
                        int64_t *ret_exited_at);
/* timeout_sec < 0 and signal NULL take the service's defaults. */
int runtime_client_stop(RuntimeClient *c, int64_t timeout_sec, const char *signal);
int runtime_client_state(RuntimeClient *c, cxpc_object **ret_snapshot);
int runtime_client_statistics(RuntimeClient *c, RuntimeStatistics *ret);
/* Sends a host file or tree (as a tar stream through a pipe) to destination_path inside the
 * container; file_mode 0 keeps the source's modes. */
int runtime_client_copy_in(RuntimeClient *c, const char *host_path, const char *destination_path,
                           uint32_t file_mode, bool create_parents);
/* Copies source_path from the container to host_path. */
int runtime_client_copy_out(RuntimeClient *c, const char *source_path, const char *host_path,
                            bool create_parents);
/* A connected socket to a TCP port inside the container's network namespace. */
int runtime_client_dial(RuntimeClient *c, uint16_t port, int *ret_fd);
int runtime_client_shutdown(RuntimeClient *c);

/* For a caller on an event loop that must not wait (cxpc_connection_call_async() on
 * runtime_client_get_connection()): the requests the calls above send. name is the route without
 * "runtime/" ("start", "wait", ...); id may be NULL for routes without one. */
int runtime_client_bootstrap_request(RuntimeClient *c, const RuntimeStdio *stdio, cxpc_object *networks,
                                     char *const *env, cxpc_object **ret);
int runtime_client_id_request(RuntimeClient *c, const char *name, const char *id, cxpc_object **ret);
int runtime_client_resize_request(RuntimeClient *c, const char *id, unsigned width, unsigned height,
                                  cxpc_object **ret);
int runtime_client_kill_request(RuntimeClient *c, const char *id, const char *signal, cxpc_object **ret);

/* Low level: send request (route set by the caller) and check the reply, keeping the error. */
int runtime_client_call(RuntimeClient *c, cxpc_object *request, uint64_t timeout_usec,
                        cxpc_object **ret_reply);
