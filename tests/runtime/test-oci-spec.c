/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: container.json parsing, OCI config generation, signal names, state names, the OCI
 * runtimes' error messages out of their logs. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "container-config.h"
#include "oci-runtime.h"
#include "oci-spec.h"
#include "runtime.h"

static ContainerConfig *parse(const char *text, const char **ret_err) {
        json_error_t jerr;
        json_t *j = json_loads(text, 0, &jerr);
        ContainerConfig *c = NULL;
        int r;

        assert_non_null(j);
        r = container_config_from_json(j, "/bundle", &c, ret_err);
        json_decref(j);
        return r < 0 ? NULL : c;
}

static void test_minimal(void **state) {
        ContainerConfig *c = parse("{\"id\":\"c1\",\"process\":{\"args\":[\"/bin/true\"]}}", NULL);
        json_t *spec = NULL, *v;

        assert_non_null(c);
        assert_string_equal(c->rootfs, "/bundle/rootfs");
        assert_string_equal(c->process.cwd, "/");
        assert_string_equal(c->logging_driver, "file");
        assert_non_null(c->process.env);
        assert_int_equal(oci_spec_new(c, &spec), 0);

        v = json_object_get(json_object_get(spec, "linux"), "cgroupsPath");
        assert_string_equal(json_string_value(v), "/container/c1");
        v = json_object_get(json_object_get(spec, "linux"), "namespaces");
        assert_int_equal(json_array_size(v), 5);
        v = json_object_get(json_object_get(spec, "process"), "args");
        assert_string_equal(json_string_value(json_array_get(v, 0)), "/bin/true");
        v = json_object_get(json_object_get(json_object_get(spec, "process"), "capabilities"), "bounding");
        assert_int_equal(json_array_size(v), 14);
        v = json_object_get(spec, "hostname");
        assert_string_equal(json_string_value(v), "c1");
        v = json_object_get(json_object_get(spec, "linux"), "maskedPaths");
        assert_true(json_array_size(v) >= 10);
        json_decref(spec);
        container_config_free(c);
}

static void test_full(void **state) {
        ContainerConfig *c = parse(
                "{\"id\":\"c2\",\"rootfs\":\"/r\",\"hostname\":\"h\",\"readOnlyRoot\":true,"
                "\"process\":{\"executable\":\"/bin/"
                "sh\",\"args\":[\"sh\",\"-c\",\"x\"],\"env\":[\"A=1\"],\"cwd\":\"/tmp\","
                "\"user\":{\"uid\":5,\"gid\":6},\"supplementaryGroups\":[7,8],"
                "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":100000,\"hard\":1000000}],"
                "\"capabilities\":[\"CAP_KILL\"]},"
                "\"mounts\":[{\"type\":\"tmpfs\",\"destination\":\"/scratch\"},"
                "{\"type\":\"bind\",\"source\":\"/etc\",\"destination\":\"/hostetc\",\"readonly\":true}],"
                "\"resources\":{\"cpus\":1.5,\"memoryBytes\":67108864,\"pids\":64},"
                "\"sysctls\":{\"net.ipv4.ip_forward\":\"1\"},\"labels\":{\"a\":\"b\"},\"logging\":{"
                "\"driver\":\"none\"}}",
                NULL);
        json_t *spec = NULL, *res, *p, *rl;
        struct rlimit ours;
        char *env[] = {(char *) "A=2", (char *) "B=3", NULL};

        assert_non_null(c);
        assert_int_equal(process_config_merge_env(&c->process, env), 0);
        assert_int_equal(strv_length(c->process.env), 2);
        assert_string_equal(c->process.env[0], "A=2");
        assert_int_equal(oci_spec_new(c, &spec), 0);

        res = json_object_get(json_object_get(spec, "linux"), "resources");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "cpu"), "quota")), 150000);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "memory"), "limit")),
                         67108864);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "pids"), "limit")), 64);
        p = json_object_get(spec, "process");
        assert_string_equal(json_string_value(json_array_get(json_object_get(p, "args"), 0)), "/bin/sh");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")), 5);
        assert_int_equal(json_array_size(json_object_get(json_object_get(p, "user"), "additionalGids")), 2);
        /* Clamped to our hard limit, never above. */
        rl = json_array_get(json_object_get(p, "rlimits"), 0);
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &ours), 0);
        if (ours.rlim_max != RLIM_INFINITY) {
                assert_true((rlim_t) json_integer_value(json_object_get(rl, "hard")) <= ours.rlim_max);
                assert_true(json_integer_value(json_object_get(rl, "soft")) <=
                            json_integer_value(json_object_get(rl, "hard")));
        }
        assert_true(json_is_true(json_object_get(json_object_get(spec, "root"), "readonly")));
        assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "annotations"), "a")),
                            "b");
        assert_int_equal(json_array_size(json_object_get(spec, "mounts")), 9);
        assert_string_equal(c->logging_driver, "none");
        json_decref(spec);
        container_config_free(c);
}

static void test_invalid(void **state) {
        static const char *const bad[] = {
                "[]",
                "{\"process\":{}}",
                "{\"process\":{\"args\":[]}}",
                "{\"process\":{\"args\":[1]}}",
                "{\"process\":{\"args\":[\"x\"],\"cwd\":\"rel\"}}",
                "{\"process\":{\"args\":[\"x\"],\"user\":{\"uid\":-1}}}",
                "{\"process\":{\"args\":[\"x\"],\"rlimits\":[{\"type\":\"NOFILE\",\"soft\":1,\"hard\":1}]}}",
                "{\"process\":{\"args\":[\"x\"],\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":2,"
                "\"hard\":1}]}}",
                "{\"process\":{\"args\":[\"x\"],\"capabilities\":[\"KILL\"]}}",
                "{\"process\":{\"args\":[\"x\"]},\"mounts\":[{\"type\":\"overlay\",\"destination\":\"/"
                "a\"}]}",
                "{\"process\":{\"args\":[\"x\"]},\"mounts\":[{\"type\":\"bind\",\"destination\":\"/a\"}]}",
                "{\"process\":{\"args\":[\"x\"]},\"resources\":{\"cpus\":-1}}",
                "{\"process\":{\"args\":[\"x\"]},\"logging\":{\"driver\":\"syslog\"}}",
                "{\"process\":{\"args\":[\"x\"]},\"sysctls\":{\"a\":1}}",
                "{\"id\":5,\"process\":{\"args\":[\"x\"]}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                const char *err = NULL;
                if (parse(bad[i], &err))
                        fail_msg("accepted: %s", bad[i]);
                assert_non_null(err);
        }
}

static void test_unknown_rlimit_in_spec(void **state) {
        ContainerConfig *c = parse("{\"process\":{\"args\":[\"x\"],\"rlimits\":[{\"type\":\"RLIMIT_BOGUS\","
                                   "\"soft\":1,\"hard\":1}]}}",
                                   NULL);
        json_t *spec = NULL;

        assert_non_null(c);
        free(c->id);
        c->id = strdup("c3");
        assert_int_equal(oci_spec_new(c, &spec), -EINVAL);
        container_config_free(c);
}

static void test_user_resolution(void **state) {
        const char *rootfs = getenv("TEST_ROOTFS");
        ProcessConfig p = {};

        if (!rootfs)
                skip();
        p.user_name = strdup("nobody");
        assert_int_equal(process_config_resolve_user(&p, rootfs, NULL), 0);
        assert_int_equal(p.uid, 65534);
        assert_int_equal(p.gid, 65534);
        free(p.user_name);
        p.user_name = strdup("root:nogroup");
        assert_int_equal(process_config_resolve_user(&p, rootfs, NULL), 0);
        assert_int_equal(p.uid, 0);
        assert_int_equal(p.gid, 65534);
        free(p.user_name);
        p.user_name = strdup("1234:99");
        assert_int_equal(process_config_resolve_user(&p, rootfs, NULL), 0);
        assert_int_equal(p.uid, 1234);
        assert_int_equal(p.gid, 99);
        free(p.user_name);
        p.user_name = strdup("ghost");
        assert_int_equal(process_config_resolve_user(&p, rootfs, NULL), -ESRCH);
        process_config_done(&p);
}

static void test_signals_and_states(void **state) {
        assert_int_equal(signal_from_string("SIGTERM"), SIGTERM);
        assert_int_equal(signal_from_string("TERM"), SIGTERM);
        assert_int_equal(signal_from_string("KILL"), SIGKILL);
        assert_int_equal(signal_from_string("9"), SIGKILL);
        assert_int_equal(signal_from_string("SIGUSR1"), SIGUSR1);
        assert_int_equal(signal_from_string("0"), -EINVAL);
        assert_int_equal(signal_from_string("999"), -EINVAL);
        assert_int_equal(signal_from_string("SIGFOO"), -EINVAL);
        assert_int_equal(signal_from_string(""), -EINVAL);
        assert_int_equal(signal_from_string("9x"), -EINVAL);
        assert_string_equal(runtime_state_to_string(RUNTIME_SHUTTING_DOWN), "shuttingDown");
        assert_string_equal(runtime_state_to_string(RUNTIME_BOOTED), "booted");
        assert_null(runtime_state_to_string(_RUNTIME_STATE_MAX));
        assert_string_equal(proc_status_to_string(PROC_EXITED), "exited");
}

static void check_message(const char *log, const char *expected) {
        char *m = oci_log_message(log);
        if (!expected)
                assert_null(m);
        else {
                assert_non_null(m);
                assert_string_equal(m, expected);
        }
        free(m);
}

static void test_log_message(void **state) {
        /* crun: plain lines, the last one counts. */
        check_message(
                "warning: something\nexecutable file `/x` not found in $PATH: No such file or directory\n",
                "executable file `/x` not found in $PATH: No such file or directory");
        /* runc: logrus text lines; Go quoting undone; an error line wins over a later warning. */
        check_message(
                "time=\"2026-11-29T06:23:24Z\" level=error msg=\"exec failed: unable to start container "
                "process: exec: \\\"/no/such\\\": stat /no/such: no such file or directory\"\n"
                "time=\"2026-11-29T06:23:24Z\" level=warning msg=\"a\\tlater\\x21 warning\"\n",
                "exec failed: unable to start container process: exec: \"/no/such\": stat /no/such: no "
                "such file or directory");
        check_message("time=\"2026-11-29T06:23:24Z\" level=warning msg=\"tab\\there\\x21 \\\\ end\"\n",
                      "tab\there! \\ end");
        check_message("time=\"2026-11-29T06:23:24Z\" level=error msg=unquoted\n", "unquoted");
        /* runc's plain stderr line after its logrus line (stderr joined the log): same message. */
        check_message("time=\"t\" level=error msg=\"container not running\"\ncontainer not running\n",
                      "container not running");
        /* JSON lines (--log-format=json). */
        check_message("{\"level\":\"error\",\"msg\":\"json \\\"quoted\\\" message\",\"time\":\"t\"}\n"
                      "{\"level\":\"info\",\"msg\":\"later\"}\n",
                      "json \"quoted\" message");
        /* Nothing. */
        check_message("", NULL);
        check_message("\n \n", NULL);
        check_message(NULL, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal),         cmocka_unit_test(test_full),
                cmocka_unit_test(test_invalid),         cmocka_unit_test(test_unknown_rlimit_in_spec),
                cmocka_unit_test(test_user_resolution), cmocka_unit_test(test_signals_and_states),
                cmocka_unit_test(test_log_message),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
