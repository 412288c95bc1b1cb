/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "runtime-client-internal.h"

static int client_new(cxpc_connection *conn, RuntimeClient **ret) {
        RuntimeClient *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->conn = conn;
        c->timeout_usec = CXPC_DEFAULT_TIMEOUT_USEC;
        *ret = c;
        return 0;
}

int runtime_client_connect_path(const char *path, RuntimeClient **ret) {
        cxpc_connection *conn = NULL;
        int r;

        assert_return(path && ret, -EINVAL);
        r = cxpc_connection_new_for_path(path, &conn);
        if (r < 0)
                return r;
        r = client_new(conn, ret);
        if (r < 0)
                cxpc_connection_close_unref(conn);
        return r;
}

int runtime_client_connect_endpoint(const cxpc_object *endpoint, RuntimeClient **ret) {
        cxpc_connection *conn = NULL;
        int r;

        assert_return(endpoint && ret, -EINVAL);
        r = cxpc_connection_new_for_endpoint(endpoint, &conn);
        if (r < 0)
                return r;
        r = client_new(conn, ret);
        if (r < 0)
                cxpc_connection_close_unref(conn);
        return r;
}

int runtime_client_new_from_connection(cxpc_connection *conn, RuntimeClient **ret) {
        int r;

        assert_return(conn && ret, -EINVAL);
        r = client_new(conn, ret);
        if (r >= 0)
                cxpc_connection_ref(conn);
        return r;
}

RuntimeClient *runtime_client_free(RuntimeClient *c) {
        if (!c)
                return NULL;
        cxpc_connection_close_unref(c->conn);
        free(c);
        return NULL;
}

cxpc_connection *runtime_client_get_connection(RuntimeClient *c) {
        return c ? c->conn : NULL;
}

void runtime_client_set_timeout(RuntimeClient *c, uint64_t usec) {
        if (c)
                c->timeout_usec = usec == 0 ? CXPC_DEFAULT_TIMEOUT_USEC : usec;
}

const RuntimeClientError *runtime_client_last_error(const RuntimeClient *c) {
        return c ? &c->error : NULL;
}

int runtime_client_set_local_error(RuntimeClient *c, int r, const char *what) {
        c->error.code = cxpc_error_code_from_errno(-r);
        c->error.remote = false;
        snprintf(c->error.message, sizeof(c->error.message), "%s: %s", what, strerror(-r));
        return r;
}

int runtime_client_call(RuntimeClient *c, cxpc_object *request, uint64_t timeout_usec,
                        cxpc_object **ret_reply) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        cxpc_error_code code;
        const char *message = NULL;
        int r;

        assert_return(c && request, -EINVAL);

        c->error = (RuntimeClientError){};
        r = cxpc_connection_call(c->conn, request, timeout_usec ?: c->timeout_usec, &reply);
        if (r < 0)
                return runtime_client_set_local_error(c, r, cxpc_message_get_route(request) ?: "call");
        r = cxpc_reply_check(reply, &code, &message);
        if (r < 0) {
                c->error.code = code;
                c->error.remote = true;
                snprintf(c->error.message, sizeof(c->error.message), "%s", message ?: "");
                return r;
        }
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

int runtime_client_new_request(RuntimeClient *c, const char *name, cxpc_object **ret) {
        char route[64];
        int r;

        snprintf(route, sizeof(route), "runtime/%s", name);
        r = cxpc_message_new_request(route, ret);
        if (r < 0)
                return runtime_client_set_local_error(c, r, route);
        return 0;
}

static int set_stdio(cxpc_object *m, const RuntimeStdio *stdio) {
        int r = 0;

        if (!stdio)
                return 0;
        if (stdio->stdin_fd >= 0)
                r = cxpc_dict_set_fd(m, "stdin", stdio->stdin_fd);
        if (r >= 0 && stdio->stdout_fd >= 0)
                r = cxpc_dict_set_fd(m, "stdout", stdio->stdout_fd);
        if (r >= 0 && stdio->stderr_fd >= 0)
                r = cxpc_dict_set_fd(m, "stderr", stdio->stderr_fd);
        return r;
}

int runtime_client_id_request(RuntimeClient *c, const char *name, const char *id, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        assert_return(c && name && ret, -EINVAL);
        r = runtime_client_new_request(c, name, &m);
        if (r < 0)
                return r;
        if (id) {
                r = cxpc_dict_set_string(m, "id", id);
                if (r < 0)
                        return runtime_client_set_local_error(c, r, name);
        }
        *ret = TAKE_PTR(m);
        return 0;
}

/* For calls whose request is {route, id}. */
static int simple_id_call(RuntimeClient *c, const char *name, const char *id, uint64_t timeout,
                          cxpc_object **ret_reply) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        r = runtime_client_id_request(c, name, id, &m);
        if (r < 0)
                return r;
        return runtime_client_call(c, m, timeout, ret_reply);
}

int runtime_client_create_endpoint(RuntimeClient *c, cxpc_object **ret_endpoint) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        cxpc_object *ep;
        int r;

        assert_return(c && ret_endpoint, -EINVAL);
        r = simple_id_call(c, "createEndpoint", NULL, 0, &reply);
        if (r < 0)
                return r;
        ep = cxpc_dict_get(reply, "endpoint");
        if (cxpc_object_get_type(ep) != CXPC_TYPE_ENDPOINT)
                return runtime_client_set_local_error(c, -EBADMSG, "createEndpoint reply has no endpoint");
        *ret_endpoint = cxpc_object_ref(ep);
        return 0;
}

int runtime_client_bootstrap_request(RuntimeClient *c, const RuntimeStdio *stdio, cxpc_object *networks,
                                     char *const *env, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL, *e = NULL;
        int r;

        assert_return(c && ret, -EINVAL);
        r = runtime_client_new_request(c, "bootstrap", &m);
        if (r < 0)
                return r;
        r = set_stdio(m, stdio);
        if (r >= 0 && networks)
                r = cxpc_dict_set(m, "networks", networks);
        if (r >= 0 && env) {
                r = cxpc_array_new(&e);
                for (char *const *i = env; r >= 0 && *i; i++) {
                        _cleanup_(cxpc_object_unrefp) cxpc_object *s = NULL;
                        r = cxpc_string_new(*i, &s);
                        if (r >= 0)
                                r = cxpc_array_append(e, s);
                }
                if (r >= 0)
                        r = cxpc_dict_set(m, "env", e);
        }
        if (r < 0)
                return runtime_client_set_local_error(c, r, "bootstrap");
        *ret = TAKE_PTR(m);
        return 0;
}

int runtime_client_bootstrap(RuntimeClient *c, const RuntimeStdio *stdio, cxpc_object *networks,
                             char *const *env) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        r = runtime_client_bootstrap_request(c, stdio, networks, env, &m);
        if (r < 0)
                return r;
        return runtime_client_call(c, m, 0, NULL);
}

int runtime_client_create_process(RuntimeClient *c, const char *id, cxpc_object *process_config,
                                  const RuntimeStdio *stdio) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        assert_return(c && id && process_config, -EINVAL);
        r = runtime_client_new_request(c, "createProcess", &m);
        if (r < 0)
                return r;
        r = cxpc_dict_set_string(m, "id", id);
        if (r >= 0)
                r = cxpc_dict_set(m, "processConfig", process_config);
        if (r >= 0)
                r = set_stdio(m, stdio);
        if (r < 0)
                return runtime_client_set_local_error(c, r, "createProcess");
        return runtime_client_call(c, m, 0, NULL);
}

int runtime_client_start(RuntimeClient *c, const char *id) {
        assert_return(c && id, -EINVAL);
        return simple_id_call(c, "start", id, 0, NULL);
}

int runtime_client_pause(RuntimeClient *c, const char *id) {
        assert_return(c && id, -EINVAL);
        return simple_id_call(c, "pause", id, 0, NULL);
}

int runtime_client_resume(RuntimeClient *c, const char *id) {
        assert_return(c && id, -EINVAL);
        return simple_id_call(c, "resume", id, 0, NULL);
}

int runtime_client_kill_request(RuntimeClient *c, const char *id, const char *signal, cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        assert_return(c && id && signal && ret, -EINVAL);
        r = runtime_client_id_request(c, "kill", id, &m);
        if (r < 0)
                return r;
        r = cxpc_dict_set_string(m, "signal", signal);
        if (r < 0)
                return runtime_client_set_local_error(c, r, "kill");
        *ret = TAKE_PTR(m);
        return 0;
}

int runtime_client_kill(RuntimeClient *c, const char *id, const char *signal) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        r = runtime_client_kill_request(c, id, signal, &m);
        if (r < 0)
                return r;
        return runtime_client_call(c, m, 0, NULL);
}

int runtime_client_resize_request(RuntimeClient *c, const char *id, unsigned width, unsigned height,
                                  cxpc_object **ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        assert_return(c && id && ret, -EINVAL);
        r = runtime_client_id_request(c, "resize", id, &m);
        if (r < 0)
                return r;
        r = cxpc_dict_set_int64(m, "width", width);
        if (r >= 0)
                r = cxpc_dict_set_int64(m, "height", height);
        if (r < 0)
                return runtime_client_set_local_error(c, r, "resize");
        *ret = TAKE_PTR(m);
        return 0;
}

int runtime_client_resize(RuntimeClient *c, const char *id, unsigned width, unsigned height) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL;
        int r;

        r = runtime_client_resize_request(c, id, width, height, &m);
        if (r < 0)
                return r;
        return runtime_client_call(c, m, 0, NULL);
}

int runtime_client_wait(RuntimeClient *c, const char *id, uint64_t timeout_usec, int *ret_exit_code,
                        int64_t *ret_exited_at) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        int64_t code, at = 0;
        int r;

        assert_return(c && id, -EINVAL);
        r = simple_id_call(c, "wait", id, timeout_usec ?: CXPC_INFINITY, &reply);
        if (r < 0)
                return r;
        if (cxpc_dict_get_int64(reply, "exitCode", &code) < 0)
                return runtime_client_set_local_error(c, -EBADMSG, "wait reply has no exitCode");
        (void) cxpc_dict_get_date(reply, "exitedAt", &at);
        if (ret_exit_code)
                *ret_exit_code = (int) code;
        if (ret_exited_at)
                *ret_exited_at = at;
        return 0;
}

int runtime_client_stop(RuntimeClient *c, int64_t timeout_sec, const char *signal) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL, *opts = NULL;
        uint64_t deadline;
        int r;

        assert_return(c, -EINVAL);
        r = runtime_client_new_request(c, "stop", &m);
        if (r < 0)
                return r;
        r = cxpc_dict_new(&opts);
        if (r >= 0 && timeout_sec >= 0)
                r = cxpc_dict_set_int64(opts, "timeout", timeout_sec);
        if (r >= 0 && signal)
                r = cxpc_dict_set_string(opts, "signal", signal);
        if (r >= 0)
                r = cxpc_dict_set(m, "stopOptions", opts);
        if (r < 0)
                return runtime_client_set_local_error(c, r, "stop");
        /* The service may legitimately take the whole stop timeout plus cleanup. */
        deadline = c->timeout_usec + (uint64_t) (timeout_sec >= 0 ? timeout_sec : 10) * 1000000u;
        return runtime_client_call(c, m, deadline, NULL);
}

int runtime_client_state(RuntimeClient *c, cxpc_object **ret_snapshot) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        cxpc_object *snap;
        int r;

        assert_return(c && ret_snapshot, -EINVAL);
        r = simple_id_call(c, "state", NULL, 0, &reply);
        if (r < 0)
                return r;
        snap = cxpc_dict_get(reply, "snapshot");
        if (cxpc_object_get_type(snap) != CXPC_TYPE_DICTIONARY)
                return runtime_client_set_local_error(c, -EBADMSG, "state reply has no snapshot");
        *ret_snapshot = cxpc_object_ref(snap);
        return 0;
}

int runtime_client_statistics(RuntimeClient *c, RuntimeStatistics *ret) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *reply = NULL;
        RuntimeStatistics s = {};
        cxpc_object *st;
        int r;

        assert_return(c && ret, -EINVAL);
        r = simple_id_call(c, "statistics", NULL, 0, &reply);
        if (r < 0)
                return r;
        st = cxpc_dict_get(reply, "statistics");
        if (cxpc_object_get_type(st) != CXPC_TYPE_DICTIONARY)
                return runtime_client_set_local_error(c, -EBADMSG, "statistics reply has no statistics");
        (void) cxpc_dict_get_uint64(st, "cpuUsageNs", &s.cpu_usage_ns);
        (void) cxpc_dict_get_uint64(st, "memoryUsageBytes", &s.memory_usage_bytes);
        (void) cxpc_dict_get_uint64(st, "memoryLimitBytes", &s.memory_limit_bytes);
        (void) cxpc_dict_get_uint64(st, "pidsCurrent", &s.pids_current);
        (void) cxpc_dict_get_uint64(st, "pidsLimit", &s.pids_limit);
        (void) cxpc_dict_get_uint64(st, "blockReadBytes", &s.block_read_bytes);
        (void) cxpc_dict_get_uint64(st, "blockWriteBytes", &s.block_write_bytes);
        (void) cxpc_dict_get_uint64(st, "networkRxBytes", &s.network_rx_bytes);
        (void) cxpc_dict_get_uint64(st, "networkTxBytes", &s.network_tx_bytes);
        *ret = s;
        return 0;
}

int runtime_client_dial(RuntimeClient *c, uint16_t port, int *ret_fd) {
        _cleanup_(cxpc_object_unrefp) cxpc_object *m = NULL, *reply = NULL;
        int r, fd;

        assert_return(c && ret_fd, -EINVAL);
        r = runtime_client_new_request(c, "dial", &m);
        if (r < 0)
                return r;
        r = cxpc_dict_set_int64(m, "port", port);
        if (r < 0)
                return runtime_client_set_local_error(c, r, "dial");
        r = runtime_client_call(c, m, 0, &reply);
        if (r < 0)
                return r;
        r = cxpc_dict_dup_fd(reply, "fd", &fd);
        if (r < 0)
                return runtime_client_set_local_error(c, -EBADMSG, "dial reply has no fd");
        *ret_fd = fd;
        return 0;
}

int runtime_client_shutdown(RuntimeClient *c) {
        assert_return(c, -EINVAL);
        return simple_id_call(c, "shutdown", NULL, 0, NULL);
}
