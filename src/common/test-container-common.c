/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the code shared by container-apiserver and the CLI. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capabilities.h"
#include "sysctl.h"
#include "container-common.h"
#include "macro.h"

static void test_id_validation(void **state) {
        char long_ok[CONTAINER_ID_MAX + 1], too_long[CONTAINER_ID_MAX + 2];

        memset(long_ok, 'a', CONTAINER_ID_MAX);
        long_ok[CONTAINER_ID_MAX] = 0;
        memset(too_long, 'a', CONTAINER_ID_MAX + 1);
        too_long[CONTAINER_ID_MAX + 1] = 0;

        assert_true(container_id_is_valid("a"));
        assert_true(container_id_is_valid("web-1.prod_A"));
        assert_true(container_id_is_valid("0abc"));
        assert_true(container_id_is_valid(long_ok));
        assert_false(container_id_is_valid(too_long));
        assert_false(container_id_is_valid(NULL));
        assert_false(container_id_is_valid(""));
        assert_false(container_id_is_valid("../x"));
        assert_false(container_id_is_valid(".hidden"));
        assert_false(container_id_is_valid("-x"));
        assert_false(container_id_is_valid("_x"));
        assert_false(container_id_is_valid("a/b"));
        assert_false(container_id_is_valid("a b"));
        assert_false(container_id_is_valid("a\nb"));
        assert_false(container_id_is_valid("caf\xc3\xa9"));
}

static void test_id_generate(void **state) {
        char a[CONTAINER_ID_GENERATED_LEN + 1], b[CONTAINER_ID_GENERATED_LEN + 1];

        assert_int_equal(container_id_generate(a), 0);
        assert_int_equal(container_id_generate(b), 0);
        assert_int_equal(strlen(a), CONTAINER_ID_GENERATED_LEN);
        assert_true(container_id_is_valid(a));
        assert_int_equal(strspn(a, "0123456789abcdef"), CONTAINER_ID_GENERATED_LEN);
        assert_string_not_equal(a, b);
}

static void test_status_names(void **state) {
        for (int i = 0; i < _CONTAINER_STATUS_MAX; i++)
                assert_int_equal(
                        container_status_from_string(container_status_to_string((ContainerStatus) i)), i);
        assert_int_equal(container_status_from_string("exited"), _CONTAINER_STATUS_INVALID);
        assert_int_equal(container_status_from_string(NULL), _CONTAINER_STATUS_INVALID);
        assert_null(container_status_to_string(_CONTAINER_STATUS_MAX));
}

static void test_rfc3339(void **state) {
        char buf[64];
        int64_t v = 0;
        const int64_t t = INT64_C(1764385200) * (int64_t) NSEC_PER_SEC + 123456789;

        assert_int_equal(format_rfc3339(t, buf, sizeof buf), 0);
        assert_string_equal(buf, "2025-11-29T03:00:00.123456789Z");
        assert_int_equal(parse_rfc3339(buf, &v), 0);
        assert_int_equal(v, t);
        assert_int_equal(parse_rfc3339("2025-11-29T03:00:00Z", &v), 0);
        assert_int_equal(v, INT64_C(1764385200) * (int64_t) NSEC_PER_SEC);
        assert_int_equal(parse_rfc3339("2025-11-29T03:00:00.5Z", &v), 0);
        assert_int_equal(v % (int64_t) NSEC_PER_SEC, 500000000);
        assert_int_equal(parse_rfc3339("2025-11-29 03:00:00", &v), -EINVAL);
        assert_int_equal(parse_rfc3339("2025-11-29T03:00:00+01:00", &v), -EINVAL);
        assert_int_equal(format_rfc3339(t, buf, 8), -ENOBUFS);
}

static void test_dirs(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL;

        assert_int_equal(setenv("CONTAINER_ROOT", "/tmp/x-root//", 1), 0);
        assert_int_equal(container_root_dir(NULL, &a), 0);
        assert_string_equal(a, "/tmp/x-root");
        assert_int_equal(container_root_dir("/flag", &b), 0);
        assert_string_equal(b, "/flag");
        assert_int_equal(unsetenv("CONTAINER_RUN_DIR"), 0);
        assert_int_equal(container_run_dir(NULL, &c), 0);
        assert_string_equal(c, CONTAINER_RUN_DIR_DEFAULT);
        unsetenv("CONTAINER_ROOT");
}

static void test_atomic_write_and_rm_rf(void **state) {
        char dir[] = "/tmp/test-container-common.XXXXXX";
        _cleanup_free_ char *path = NULL, *sub = NULL, *link = NULL;
        json_t *j, *back;
        struct stat st;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&path, "%s/state.json", dir) > 0);
        j = json_pack("{s:s, s:i}", "status", "running", "exitCode", 3);
        assert_int_equal(json_write_atomic(path, j), 0);
        back = json_load_file(path, 0, NULL);
        assert_non_null(back);
        assert_true(json_equal(j, back));
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        json_decref(back);
        json_decref(j);

        /* Every sync level replaces the file whole and leaves no temporary file behind. */
        for (WriteSync sync = WRITE_SYNC_NONE; sync <= WRITE_SYNC_FULL; sync++) {
                DIR *d;
                struct dirent *de;
                size_t n = 0;

                j = json_pack("{s:s, s:i}", "status", "stopped", "exitCode", (int) sync);
                assert_int_equal(json_write_atomic_full(path, j, sync), 0);
                back = json_load_file(path, 0, NULL);
                assert_non_null(back);
                assert_true(json_equal(j, back));
                json_decref(back);
                json_decref(j);
                assert_non_null(d = opendir(dir));
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                n++;
                closedir(d);
                assert_int_equal(n, 1);
        }
        assert_int_equal(fsync_directory(dir), 0);
        assert_int_equal(fsync_directory("/nonexistent/dir"), -ENOENT);

        /* rm_rf removes a tree without following a symlink out of it. */
        assert_true(asprintf(&sub, "%s/a/b", dir) > 0);
        assert_int_equal(mkdir_p(sub, 0700), 0);
        assert_true(asprintf(&link, "%s/a/escape", dir) > 0);
        assert_int_equal(symlink("/tmp", link), 0);
        assert_int_equal(rm_rf(dir), 0);
        assert_int_equal(access(dir, F_OK), -1);
        assert_int_equal(access("/tmp", F_OK), 0);
        assert_int_equal(rm_rf(dir), 0); /* already gone is fine */
}

static void test_oci_runtime_check(void **state) {
        char err[512] = "", dir[] = "/tmp/test-oci-runtime-XXXXXX", *exe = NULL, *noexec = NULL;
        int fd;

        assert_true(oci_runtime_name_is_known("crun"));
        assert_true(oci_runtime_name_is_known("runc"));
        assert_false(oci_runtime_name_is_known("docker"));
        assert_false(oci_runtime_name_is_known(NULL));

        assert_int_equal(oci_runtime_check("kata", err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "unknown OCI runtime \"kata\""));
        assert_int_equal(oci_runtime_check("", err, sizeof err), -EINVAL);
        assert_int_equal(oci_runtime_check(NULL, err, sizeof err), -EINVAL);
        assert_int_equal(oci_runtime_check("bin/crun", err, sizeof err), -EINVAL);
        assert_int_equal(oci_runtime_check("/no/such/runtime", err, sizeof err), -ENOENT);
        assert_non_null(strstr(err, "/no/such/runtime"));

        assert_non_null(mkdtemp(dir));
        assert_int_equal(oci_runtime_check(dir, err, sizeof err), -EISDIR);
        assert_true(asprintf(&exe, "%s/exe", dir) > 0);
        assert_true(asprintf(&noexec, "%s/noexec", dir) > 0);
        assert_true((fd = open(exe, O_WRONLY | O_CREAT | O_CLOEXEC, 0755)) >= 0);
        close(fd);
        assert_true((fd = open(noexec, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0);
        close(fd);
        assert_int_equal(oci_runtime_check(exe, err, sizeof err), 0);
        /* root passes access(X_OK) only when some execute bit is set. */
        assert_int_equal(oci_runtime_check(noexec, err, sizeof err), -EACCES);
        assert_non_null(strstr(err, "not an executable file"));
        assert_int_equal(rm_rf(dir), 0);
        free(exe);
        free(noexec);

        /* Names are found where container-runtime looks, when installed. */
        if (access("/usr/bin/crun", X_OK) == 0)
                assert_int_equal(oci_runtime_check("crun", err, sizeof err), 0);
}

static void test_capabilities(void **state) {
        assert_int_equal(capability_all_count, 41); /* up to CAP_CHECKPOINT_RESTORE */
        assert_int_equal(capability_from_name("CAP_CHOWN"), 0);
        assert_int_equal(capability_from_name("net_admin"), 12);
        assert_int_equal(capability_from_name("Cap_Sys_Admin"), 21);
        assert_int_equal(capability_from_name("CHECKPOINT_RESTORE"), 40);
        assert_int_equal(capability_from_name("ALL"), -EINVAL); /* the CLI's word, not a capability */
        assert_int_equal(capability_from_name("CAP_"), -EINVAL);
        assert_int_equal(capability_from_name(""), -EINVAL);
        assert_int_equal(capability_from_name(NULL), -EINVAL);
        for (size_t i = 0; i < capability_all_count; i++)
                assert_int_equal(capability_from_name(capability_all[i]), (int) i);
        size_t n = 0;
        for (const char *const *c = capability_default_set; *c; c++, n++)
                assert_true(capability_from_name(*c) >= 0);
        assert_int_equal(n, 14);
}

static void test_sysctl_check(void **state) {
        const char *reason = NULL;
        char name[CONTAINER_SYSCTL_NAME_MAX + 2], value[CONTAINER_SYSCTL_VALUE_MAX + 2];

        assert_int_equal(sysctl_check("net.ipv4.ip_forward", "1", &reason), 0);
        assert_int_equal(sysctl_check("net.ipv4.conf.all.rp_filter", "0", &reason), 0);
        assert_int_equal(sysctl_check("net.ipv4.ip_local_port_range", "40000\t50000", &reason), 0);
        assert_int_equal(sysctl_check("fs.mqueue.msg_max", "20", &reason), 0);
        assert_int_equal(sysctl_check("kernel.shm_rmid_forced", "1", &reason), 0);
        assert_int_equal(sysctl_check("kernel.domainname", "example", &reason), 0);
        /* Not the container's: the host's own, or a near miss of a namespaced name. */
        reason = NULL;
        assert_int_equal(sysctl_check("kernel.core_pattern", "x", &reason), -EPERM);
        assert_non_null(reason);
        assert_int_equal(sysctl_check("kernel.hostname", "x", &reason), -EPERM);
        assert_non_null(strstr(reason, "--hostname"));
        assert_int_equal(sysctl_check("vm.swappiness", "10", &reason), -EPERM);
        assert_int_equal(sysctl_check("kernel.shmmaxx", "1", &reason), -EPERM);
        assert_int_equal(sysctl_check("netx.y", "1", &reason), -EPERM);
        assert_int_equal(sysctl_check("fs.mqueue", "1", &reason), -EPERM);
        /* Malformed names: no path tricks, no empty components. */
        assert_int_equal(sysctl_check("net.ipv4..ip_forward", "1", &reason), -EINVAL);
        assert_int_equal(sysctl_check("net/ipv4/ip_forward", "1", &reason), -EINVAL);
        assert_int_equal(sysctl_check("net.ipv4.conf.../x", "1", &reason), -EINVAL);
        assert_int_equal(sysctl_check(".net.x", "1", &reason), -EINVAL);
        assert_int_equal(sysctl_check("net.x.", "1", &reason), -EINVAL);
        assert_int_equal(sysctl_check("", "1", &reason), -EINVAL);
        assert_int_equal(sysctl_check(NULL, "1", &reason), -EINVAL);
        memset(name, 'a', sizeof name - 1);
        memcpy(name, "net.", 4);
        name[CONTAINER_SYSCTL_NAME_MAX] = 0;
        assert_int_equal(sysctl_check(name, "1", &reason), 0);
        name[CONTAINER_SYSCTL_NAME_MAX] = 'a';
        name[CONTAINER_SYSCTL_NAME_MAX + 1] = 0;
        assert_int_equal(sysctl_check(name, "1", &reason), -EINVAL);
        /* Values: one non-empty line, bounded. */
        assert_int_equal(sysctl_check("net.ipv4.ip_forward", "", &reason), -EINVAL);
        assert_int_equal(sysctl_check("net.ipv4.ip_forward", NULL, &reason), -EINVAL);
        assert_int_equal(sysctl_check("net.ipv4.ip_forward", "1\n0", &reason), -EINVAL);
        memset(value, '1', sizeof value - 1);
        value[CONTAINER_SYSCTL_VALUE_MAX] = 0;
        assert_int_equal(sysctl_check("net.core.x", value, &reason), 0);
        value[CONTAINER_SYSCTL_VALUE_MAX] = '1';
        value[CONTAINER_SYSCTL_VALUE_MAX + 1] = 0;
        assert_int_equal(sysctl_check("net.core.x", value, &reason), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_id_validation),
                cmocka_unit_test(test_id_generate),
                cmocka_unit_test(test_status_names),
                cmocka_unit_test(test_rfc3339),
                cmocka_unit_test(test_dirs),
                cmocka_unit_test(test_capabilities),
                cmocka_unit_test(test_sysctl_check),
                cmocka_unit_test(test_atomic_write_and_rm_rf),
                cmocka_unit_test(test_oci_runtime_check),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
