/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * End-to-end tests of container-runtime against the real OCI runtime, through the typed client
 * library. Each test launches its own service with a fresh bundle and run directory, hands it a
 * connected socket as its first connection (as a supervisor does), and checks that the service
 * exited, and that the container's cgroups (every hierarchy), the OCI runtime's state and every
 * process (we are their subreaper) are gone afterwards.
 *
 * Needs root. CONTAINER_RUNTIME names the service binary, TEST_ROOTFS the busybox rootfs,
 * TEST_OCI_RUNTIME the OCI runtime (--runtime: crun, the default, or runc); the test skips (77)
 * when that runtime is not installed. RUNTIME_TEST_FILTER selects tests by name (cmocka glob),
 * RUNTIME_TEST_EXEC_CYCLES sets the length of test_exec_fd_leak (1000).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>

#include "fd-count.h"
#include "macro.h"
#include "oci-runtime-dirs.h"
#include "runtime-client.h"
#include "sealed-exe.h"

#define TEST_CALL_TIMEOUT_USEC (20u * 1000000u)
#define STDOUT_BYTES           (100u * 1024u * 1024u)

typedef struct Fixture {
        char dir[64]; /* mkdtemp: bundle/ and run/ below */
        char bundle[128];
        char run_dir[128];
        char id[64];
        pid_t service;
        RuntimeClient *client;
} Fixture;

static const char *service_binary;
static const char *oci_runtime = "crun";
/* fixture_start: run the service in the test directory with --root bundle --run-dir run. */
static bool relative_paths;
/* fixture_start: when >= 0, the service gets this fd as --runtime-exe-fd EXE_FD_NUMBER. */
static int exe_fd = -EBADF;
#define EXE_FD_NUMBER 100
#define EXE_FD_ARG    "100"
/* The fixture of the running test, so that the teardown can clean up after a failed assertion. */
static Fixture current_copy;
static Fixture *current;
static const char *rootfs;
static unsigned counter;

static void write_file(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

static void close_pipe(int p[2]) {
        close(p[0]);
        close(p[1]);
}

static void rm_rf(const char *path) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                execlp("rm", "rm", "-rf", "--one-file-system", path, (char *) NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, NULL, 0), pid);
}

static void fixture_start_full(Fixture *f, const char *process_json, bool private_rootfs);
static void start_exec(Fixture *f, const char *id, const char *process_json, bool wait_exit);

/* Starts a service for a container whose init runs process_json (a JSON "process" object). */
static void fixture_start(Fixture *f, const char *process_json) {
        fixture_start_full(f, process_json, false);
}

/* private_rootfs: a writable copy of the rootfs for this test only. */
static void fixture_start_full(Fixture *f, const char *process_json, bool private_rootfs) {
        char root[128];
        char path[256], *config = NULL;
        cxpc_connection *conn = NULL;
        int sv[2];

        memset(f, 0, sizeof(*f));
        current = f;
        strcpy(f->dir, "/tmp/runtime-test-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->bundle, sizeof(f->bundle), "%s/bundle", f->dir);
        snprintf(f->run_dir, sizeof(f->run_dir), "%s/run", f->dir);
        snprintf(f->id, sizeof(f->id), "rt-test-%d-%u", (int) getpid(), counter++);
        assert_int_equal(mkdir(f->bundle, 0700), 0);
        snprintf(root, sizeof(root), "%s", rootfs);
        if (private_rootfs) {
                char cmd[512];
                snprintf(root, sizeof(root), "%s/bundle/rootfs", f->dir);
                snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", rootfs, root);
                assert_int_equal(system(cmd), 0);
        }
        assert_true(asprintf(&config, "{\"id\":\"%s\",\"rootfs\":\"%s\",\"readOnlyRoot\":%s,\"process\":%s}",
                             f->id, root, private_rootfs ? "false" : "true", process_json) > 0);
        snprintf(path, sizeof(path), "%s/container.json", f->bundle);
        write_file(path, config);
        free(config);

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        f->service = fork();
        assert_true(f->service >= 0);
        if (f->service == 0) {
                char fdarg[16];
                int fd = dup(sv[1]); /* without CLOEXEC */
                snprintf(fdarg, sizeof(fdarg), "%d", fd);
                if (relative_paths && chdir(f->dir) < 0)
                        _exit(127);
                if (exe_fd >= 0 && dup2(exe_fd, EXE_FD_NUMBER) < 0)
                        _exit(127);
                execl(service_binary, service_binary, "--id", f->id, "--root",
                      relative_paths ? "bundle" : f->bundle, "--run-dir",
                      relative_paths ? "run" : f->run_dir, "--listen-fd", fdarg, "--runtime", oci_runtime,
                      exe_fd >= 0 ? "--runtime-exe-fd" : NULL, EXE_FD_ARG, (char *) NULL);
                _exit(127);
        }
        close(sv[1]);
        assert_int_equal(cxpc_connection_new_from_fd(sv[0], &conn), 0);
        assert_int_equal(runtime_client_new_from_connection(conn, &f->client), 0);
        cxpc_connection_unref(conn);
        runtime_client_set_timeout(f->client, TEST_CALL_TIMEOUT_USEC);
        /* A failed assertion unwinds the test's stack: keep a copy for the teardown. */
        current_copy = *f;
        current = &current_copy;
}

static bool path_exists(const char *dir, const char *id) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, id);
        return access(p, F_OK) == 0;
}

/* Waits for the process behind pidfd to exit, up to timeout_ms; true if it did. */
static bool pidfd_wait(int pidfd, int timeout_ms) {
        struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
        int n;

        do
                n = poll(&pfd, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        return n > 0;
}

/* Our children (we are a subreaper: a container process left behind comes to us), from
 * /proc/self/task/TID/children of every thread. Returns how many, their pids in pids[]. */
static size_t list_children(pid_t *pids, size_t max) {
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        size_t n = 0;

        assert_non_null(d);
        while ((de = readdir(d))) {
                char p[300];
                FILE *f;
                int pid;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "/proc/self/task/%s/children", de->d_name);
                f = fopen(p, "re");
                if (!f)
                        continue;
                while (fscanf(f, "%d", &pid) == 1)
                        if (n < max)
                                pids[n++] = pid;
                fclose(f);
        }
        closedir(d);
        return n;
}

/* Every child must exit (within 5 s, event-driven through pidfds) and is reaped: a process
 * that outlives its service fails the test. */
static void assert_no_children_left(void) {
        pid_t pids[64];
        size_t n = list_children(pids, sizeof(pids) / sizeof(pids[0]));

        for (size_t i = 0; i < n; i++) {
                int fd = (int) syscall(SYS_pidfd_open, pids[i], 0);
                if (fd < 0)
                        continue; /* gone already */
                if (!pidfd_wait(fd, 5000)) {
                        char p[64], comm[64] = "";
                        FILE *f;
                        snprintf(p, sizeof(p), "/proc/%d/comm", (int) pids[i]);
                        f = fopen(p, "re");
                        if (f) {
                                if (!fgets(comm, sizeof(comm), f))
                                        comm[0] = 0;
                                fclose(f);
                        }
                        close(fd);
                        fail_msg("process %d (%s) outlived the service", (int) pids[i], comm);
                }
                close(fd);
                (void) waitpid(pids[i], NULL, 0);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

/* The container's cgroup in every mounted hierarchy (v1 controllers, name=systemd, and the v2
 * side of a hybrid layout, where runc creates one too). */
static void assert_no_cgroups_left(const char *id) {
        DIR *d = opendir("/sys/fs/cgroup");
        struct dirent *de;
        char p[512];

        assert_non_null(d);
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "/sys/fs/cgroup/%s/container/%s", de->d_name, id);
                if (access(p, F_OK) == 0) {
                        closedir(d);
                        fail_msg("cgroup %s left behind", p);
                }
        }
        closedir(d);
        snprintf(p, sizeof(p), "/sys/fs/cgroup/container/%s", id);
        if (access(p, F_OK) == 0)
                fail_msg("cgroup %s left behind", p);
}

/* Waits for the service to exit (it must, after shutdown or when its first connection goes) and
 * checks that nothing of the container is left. */
static void fixture_finish(Fixture *f, bool expect_clean_exit) {
        int status = 0, pidfd;
        char p[512];

        current = NULL;
        f->client = runtime_client_free(f->client);
        pidfd = (int) syscall(SYS_pidfd_open, f->service, 0);
        if (pidfd < 0)
                /* Already reaped by the test itself (test_service_sigkill). */
                assert_int_equal(errno, ESRCH);
        else {
                bool exited = pidfd_wait(pidfd, 10000);
                close(pidfd);
                if (!exited) {
                        kill(f->service, SIGKILL);
                        waitpid(f->service, &status, 0);
                        fail_msg("service did not exit");
                }
                assert_int_equal(waitpid(f->service, &status, 0), f->service);
        }
        if (expect_clean_exit)
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_no_children_left();
        assert_no_cgroups_left(f->id);
        snprintf(p, sizeof(p), "%s/runtime/%s.d", f->run_dir, f->id);
        assert_int_equal(access(p, F_OK), -1);
        snprintf(p, sizeof(p), "%s/runtime/%s.sock", f->run_dir, f->id);
        assert_int_equal(access(p, F_OK), -1);
        snprintf(p, sizeof(p), "%s/config.json", f->bundle);
        assert_int_equal(access(p, F_OK), -1);
        rm_rf(f->dir);
}

static void assert_remote_error(Fixture *f, int r, cxpc_error_code code) {
        const RuntimeClientError *e = runtime_client_last_error(f->client);
        if (r >= 0 || e->code != code || !e->remote)
                fail_msg("expected remote error %s, got r=%d code=%s remote=%d message=%s",
                         cxpc_error_code_to_string(code), r, cxpc_error_code_to_string(e->code), e->remote,
                         e->message);
        assert_int_equal(r, -cxpc_error_code_to_errno(code));
}

static void run_to_exit(const char *process_json, int expected_code) {
        Fixture f;
        int code = -1;
        int64_t at = 0;

        fixture_start(&f, process_json);
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, &at), 0);
        assert_int_equal(code, expected_code);
        assert_true(at > 0);
        /* Repeatable after exit, same answer. */
        code = -1;
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, expected_code);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_exit_true(void **state) {
        run_to_exit("{\"args\":[\"/bin/true\"]}", 0);
}

static void test_exit_false(void **state) {
        run_to_exit("{\"args\":[\"/bin/false\"]}", 1);
}

static void test_exit_42(void **state) {
        run_to_exit("{\"args\":[\"/bin/sh\",\"-c\",\"exit 42\"]}", 42);
}

/* Sums the payload bytes per stream of the framed log (docs/runtime-io.md): magic, then frames
 * of u64 timestamp | u8 stream | u32 length (packed, little endian) + payload. */
static void log_count_bytes(const char *path, size_t ret_bytes[3], char *last_stderr, size_t last_size) {
        FILE *f = fopen(path, "re");
        unsigned char hdr[13];
        char magic[8];

        assert_non_null(f);
        ret_bytes[0] = ret_bytes[1] = ret_bytes[2] = 0;
        assert_int_equal(fread(magic, 1, sizeof(magic), f), sizeof(magic));
        assert_memory_equal(magic, "CXLOG1\n", 8);
        while (fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr)) {
                unsigned stream = hdr[8];
                uint32_t len = (uint32_t) hdr[9] | (uint32_t) hdr[10] << 8 | (uint32_t) hdr[11] << 16 |
                               (uint32_t) hdr[12] << 24;
                char *buf = malloc(len ?: 1);

                assert_non_null(buf);
                assert_true(stream == 1 || stream == 2);
                assert_int_equal(fread(buf, 1, len, f), len);
                ret_bytes[stream] += len;
                if (stream == 2 && last_stderr && last_size > 0) {
                        size_t n = len < last_size - 1 ? len : last_size - 1;
                        memcpy(last_stderr, buf + len - n, n);
                        last_stderr[n] = 0;
                }
                free(buf);
        }
        assert_int_equal(fclose(f), 0);
}

typedef struct SlowReader {
        int fd;
        size_t want;
} SlowReader;

/* Reads nothing for a while, then drains `want` bytes. */
static void *slow_reader(void *userdata) {
        SlowReader *sr = userdata;
        char buf[4096];
        size_t got = 0;

        usleep(300 * 1000);
        while (got < sr->want) {
                ssize_t n = read(sr->fd, buf, sizeof(buf));
                if (n <= 0)
                        break;
                got += (size_t) n;
        }
        return NULL;
}

/* The init prints and exits at once while the attached client is not reading yet (its pipe is
 * full), so the service cannot have logged the output when the exit is reaped. When wait
 * replies, the log must hold everything: the exit is recorded only after the output reached EOF
 * and the log. */
static void test_wait_after_output_logged(void **state) {
        Fixture f;
        size_t bytes[3];
        char path[256], tail[16] = "";
        int p[2], code = -1;
        size_t filled = 0;
        SlowReader sr;
        pthread_t t;

        fixture_start(&f, "{\"args\":[\"/bin/sh\",\"-c\",\"echo hello; echo end >&2\"]}");
        /* The client's stdout pipe, filled up before the process starts. */
        assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        for (;;) {
                char junk[4096] = {};
                ssize_t n = write(p[1], junk, sizeof(junk));
                if (n < 0) {
                        assert_int_equal(errno, EAGAIN);
                        break;
                }
                filled += (size_t) n;
        }
        assert_int_equal(fcntl(p[0], F_SETFL, 0), 0);
        RuntimeStdio stdio = {-1, p[1], -1};
        assert_int_equal(runtime_client_bootstrap(f.client, &stdio, NULL, NULL), 0);
        assert_int_equal(close(p[1]), 0);
        sr = (SlowReader){.fd = p[0], .want = filled + strlen("hello\n")};
        assert_int_equal(pthread_create(&t, NULL, slow_reader, &sr), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 0);
        snprintf(path, sizeof(path), "%s/container.log", f.bundle);
        log_count_bytes(path, bytes, tail, sizeof(tail));
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(close(p[0]), 0);
        assert_int_equal(bytes[1], strlen("hello\n"));
        assert_string_equal(tail, "end\n");
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* --root and --run-dir relative to the service's directory: crun resolves --root and --pid-file
 * after changing into the bundle, runc relative to its own directory; the service passes both
 * absolute. */
static void test_relative_paths(void **state) {
        Fixture f;
        int code = -1;

        relative_paths = true;
        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        relative_paths = false;
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        start_exec(&f, "e1", "{\"args\":[\"/bin/sh\",\"-c\",\"exit 42\"]}", false);
        assert_int_equal(runtime_client_wait(f.client, "e1", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 42);
        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 137);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* The OCI runtime's binary as the path the service would execute (a name is looked up). */
static void oci_runtime_path(char *buf, size_t size) {
        _cleanup_free_ char *p = NULL;

        if (strchr(oci_runtime, '/'))
                snprintf(buf, size, "%s", oci_runtime);
        else if (oci_runtime_lookup(oci_runtime, &p) >= 0)
                snprintf(buf, size, "%s", p);
        else
                fail_msg("%s not found", oci_runtime);
}

/* Whether the service holds EXE_FD_NUMBER open as the sealed copy ("/memfd:oci-runtime ..."). */
static bool service_holds_exe_copy(const Fixture *f) {
        char p[64], target[256];
        ssize_t n;

        snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int) f->service, EXE_FD_NUMBER);
        n = readlink(p, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = 0;
        return strncmp(target, "/memfd:oci-runtime", strlen("/memfd:oci-runtime")) == 0;
}

/* A lifecycle that runs the OCI runtime for run, exec, kill and delete. */
static void run_exec_stop(Fixture *f) {
        int code = -1;

        assert_int_equal(runtime_client_bootstrap(f->client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f->client, f->id), 0);
        start_exec(f, "e1", "{\"args\":[\"/bin/sh\",\"-c\",\"exit 42\"]}", false);
        assert_int_equal(runtime_client_wait(f->client, "e1", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 42);
        assert_int_equal(runtime_client_stop(f->client, 0, NULL), 0);
        assert_int_equal(runtime_client_wait(f->client, f->id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 137);
}

/* --runtime-exe-fd: the API server's sealed copy of the OCI runtime is kept and used for every
 * call; a copy without the seals is refused (closed) and each call makes its own, so the
 * container runs either way. */
/* A container whose service got exe_fd (closed here once passed) runs, execs and stops; the
 * service kept that copy, or not. */
static void run_with_exe_fd(bool expect_kept) {
        Fixture f;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        exe_fd = safe_close(exe_fd);
        run_exec_stop(&f);
        assert_int_equal(service_holds_exe_copy(&f), expect_kept);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_runtime_exe_fd(void **state) {
        char path[256];

        oci_runtime_path(path, sizeof(path));
        assert_int_equal(sealed_exe_copy(path, &exe_fd), 0);
        assert_int_equal(sealed_exe_check(exe_fd), 0);
        run_with_exe_fd(true);

        /* The same bytes, unsealed: a writer could change them under the runtime. */
        {
                _cleanup_close_ int src = open(path, O_RDONLY | O_CLOEXEC);
                struct stat st;
                assert_true(src >= 0);
                assert_int_equal(fstat(src, &st), 0);
                exe_fd = memfd_create("oci-runtime", MFD_CLOEXEC);
                assert_true(exe_fd >= 0);
                assert_int_equal(sendfile(exe_fd, src, NULL, (size_t) st.st_size), st.st_size);
        }
        assert_int_equal(sealed_exe_check(exe_fd), -EPERM);
        run_with_exe_fd(false);
}

/* An init that cannot start: start fails with the OCI runtime's message (not its log format),
 * the exit code says why, the container is stopped and nothing of it is left. */
static void test_init_start_failure(void **state) {
        Fixture f;
        cxpc_object *snap = NULL;
        const char *status = NULL;
        int code = -1;

        fixture_start(&f, "{\"args\":[\"/no/such/init\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_remote_error(&f, runtime_client_start(f.client, f.id), CXPC_ERROR_INTERNAL_ERROR);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "/no/such/init"));
        assert_null(strstr(runtime_client_last_error(f.client)->message, "level="));
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 127);
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        assert_int_equal(cxpc_dict_get_string(snap, "status", &status), 0);
        assert_string_equal(status, "stopped");
        cxpc_object_unref(snap);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_exit_signal(void **state) {
        /* PID 1 of a namespace can only die of a signal it handles or SIGKILL from outside; the
         * shell sends itself SIGKILL... which the kernel ignores for PID 1 from inside. So raise a
         * signal in a child shell that is the container's init via exec: use abort-like SIGSEGV
         * through kill of its own pid is blocked too; instead a subprocess reports through the
         * exec path below (test_exec_signal). Here: SIGKILL through the kill route. */
        Fixture f;
        int code = -1;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        /* The reply comes after the exit has been seen. */
        assert_int_equal(runtime_client_kill(f.client, f.id, "SIGKILL"), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 128 + SIGKILL);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* Waits (bounded) until the container's init runs comm. runc's "run --detach" returns once it has
 * released its init, which may still be "runc init" (Go) for a moment: a SIGTERM then makes Go
 * exit 2 (PID 1 cannot die of a default-handled signal) instead of reaching the program, which
 * as PID 1 would ignore it. Tests about what the program does with a signal wait for it first. */
static void wait_init_runs(Fixture *f, const char *comm) {
        cxpc_object *snap = NULL;
        int64_t pid = 0;
        char path[64], buf[64] = {};

        assert_int_equal(runtime_client_state(f->client, &snap), 0);
        assert_int_equal(
                cxpc_dict_get_int64(cxpc_array_get(cxpc_dict_get(snap, "processes"), 0), "pid", &pid), 0);
        cxpc_object_unref(snap);
        snprintf(path, sizeof(path), "/proc/%" PRIi64 "/comm", pid);
        for (int i = 0; i < 500; i++) {
                FILE *fp = fopen(path, "re");
                if (fp) {
                        bool match = fgets(buf, sizeof(buf), fp) && strncmp(buf, comm, strlen(comm)) == 0 &&
                                     buf[strlen(comm)] == '\n';
                        fclose(fp);
                        if (match)
                                return;
                }
                usleep(10 * 1000);
        }
        fail_msg("the container's init (pid %" PRIi64 ") never ran %s (last: %s)", pid, comm, buf);
}

static void test_stop_timeout_137(void **state) {
        Fixture f;
        int code = -1;
        cxpc_object *snap = NULL;
        const char *status = NULL;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        wait_init_runs(&f, "sleep");
        /* sleep as PID 1 ignores SIGTERM: the stop must escalate after 1 s. */
        assert_int_equal(runtime_client_stop(f.client, 1, "SIGTERM"), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 137);
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        assert_int_equal(cxpc_dict_get_string(snap, "status", &status), 0);
        assert_string_equal(status, "stopped");
        cxpc_object_unref(snap);
        /* Idempotent. */
        assert_int_equal(runtime_client_stop(f.client, 1, NULL), 0);
        assert_false(path_exists("/sys/fs/cgroup/pids/container", f.id));
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_stop_graceful(void **state) {
        Fixture f;
        int code = -1;

        /* A shell that handles TERM exits by itself before the timeout. */
        fixture_start(
                &f, "{\"args\":[\"/bin/sh\",\"-c\",\"trap 'exit 3' TERM; while :; do sleep 0.05; done\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        usleep(200000);
        assert_int_equal(runtime_client_stop(f.client, 10, NULL), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 3);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Whether the container's cgroup is frozen, read from the kernel (v1 freezer or v2 cgroup.events). */
static bool cgroup_frozen(const char *id) {
        char p[512], buf[256] = {};
        size_t n;
        FILE *fp;

        snprintf(p, sizeof(p), "/sys/fs/cgroup/freezer/container/%s/freezer.state", id);
        fp = fopen(p, "re");
        if (fp) {
                n = fread(buf, 1, sizeof(buf) - 1, fp);
                fclose(fp);
                buf[n] = 0;
                return strncmp(buf, "FROZEN", 6) == 0;
        }
        snprintf(p, sizeof(p), "/sys/fs/cgroup/container/%s/cgroup.events", id);
        fp = fopen(p, "re");
        assert_non_null(fp);
        n = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[n] = 0;
        return strstr(buf, "frozen 1") != NULL;
}

static void assert_status(Fixture *f, const char *want) {
        cxpc_object *snap = NULL;
        const char *status = NULL;

        assert_int_equal(runtime_client_state(f->client, &snap), 0);
        assert_int_equal(cxpc_dict_get_string(snap, "status", &status), 0);
        assert_string_equal(status, want);
        cxpc_object_unref(snap);
}

/* running → paused → running through the state machine, the refusals on the way, and a stop of a
 * paused container that takes effect at once (the signal, then the thaw). */
static void test_pause(void **state) {
        Fixture f;
        cxpc_object *pc = NULL;
        RuntimeStatistics st;
        int code = -1;
        uint64_t t0;

        fixture_start(
                &f, "{\"args\":[\"/bin/sh\",\"-c\",\"trap 'exit 3' TERM; while :; do sleep 0.05; done\"]}");
        assert_remote_error(&f, runtime_client_pause(f.client, f.id), CXPC_ERROR_INVALID_STATE);
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_remote_error(&f, runtime_client_pause(f.client, f.id), CXPC_ERROR_INVALID_STATE);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        usleep(200000);
        assert_remote_error(&f, runtime_client_resume(f.client, f.id), CXPC_ERROR_INVALID_STATE);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "is not paused"));
        assert_remote_error(&f, runtime_client_pause(f.client, "ghost"), CXPC_ERROR_NOT_FOUND);

        assert_int_equal(runtime_client_pause(f.client, f.id), 0);
        assert_status(&f, "paused");
        assert_true(cgroup_frozen(f.id));
        assert_remote_error(&f, runtime_client_pause(f.client, f.id), CXPC_ERROR_INVALID_STATE);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "is already paused"));
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/bin/true\"]}", &pc), 0);
        assert_remote_error(&f, runtime_client_create_process(f.client, "e1", pc, NULL),
                            CXPC_ERROR_INVALID_STATE);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "paused"));
        cxpc_object_unref(pc);
        assert_int_equal(runtime_client_statistics(f.client, &st), 0);
        assert_true(st.pids_current >= 1);

        assert_int_equal(runtime_client_resume(f.client, f.id), 0);
        assert_status(&f, "running");
        assert_false(cgroup_frozen(f.id));

        assert_int_equal(runtime_client_pause(f.client, f.id), 0);
        t0 = now_usec();
        assert_int_equal(runtime_client_stop(f.client, 10, NULL), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 3);
        assert_true(now_usec() - t0 < 5u * 1000000u);
        assert_status(&f, "stopped");
        assert_remote_error(&f, runtime_client_resume(f.client, f.id), CXPC_ERROR_INVALID_STATE);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* SIGKILL of a paused container: cgroup v1's freezer holds it back until the thaw. */
static void test_pause_sigkill(void **state) {
        Fixture f;
        int code = -1;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        wait_init_runs(&f, "sleep");
        assert_int_equal(runtime_client_pause(f.client, f.id), 0);
        assert_true(cgroup_frozen(f.id));
        /* Answered after the exit has been seen, which needs the thaw. */
        assert_int_equal(runtime_client_kill(f.client, f.id, "SIGKILL"), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 128 + SIGKILL);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_preconditions(void **state) {
        Fixture f;
        cxpc_object *pc = NULL, *req = NULL;
        RuntimeStatistics st;
        int r;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        /* created */
        assert_remote_error(&f, runtime_client_start(f.client, "nope"), CXPC_ERROR_NOT_FOUND);
        assert_remote_error(&f, runtime_client_statistics(f.client, &st), CXPC_ERROR_INVALID_STATE);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "created"));
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/bin/true\"]}", &pc), 0);
        assert_remote_error(&f, runtime_client_create_process(f.client, "e1", pc, NULL),
                            CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_kill(f.client, f.id, "SIGTERM"), CXPC_ERROR_INVALID_STATE);

        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        /* booted */
        assert_remote_error(&f, runtime_client_bootstrap(f.client, NULL, NULL, NULL),
                            CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_shutdown(f.client), CXPC_ERROR_INVALID_STATE);
        assert_int_equal(runtime_client_create_process(f.client, "e1", pc, NULL), 0);
        assert_remote_error(&f, runtime_client_create_process(f.client, "e1", pc, NULL), CXPC_ERROR_EXISTS);
        assert_remote_error(&f, runtime_client_start(f.client, "e1"), CXPC_ERROR_INVALID_STATE);

        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        /* running */
        assert_remote_error(&f, runtime_client_start(f.client, f.id), CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_shutdown(f.client), CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_kill(f.client, f.id, "SIGNOPE"), CXPC_ERROR_INVALID_ARGUMENT);
        assert_remote_error(&f, runtime_client_kill(f.client, f.id, "0"), CXPC_ERROR_INVALID_ARGUMENT);
        assert_remote_error(&f, runtime_client_kill(f.client, "ghost", "TERM"), CXPC_ERROR_NOT_FOUND);
        assert_remote_error(&f, runtime_client_wait(f.client, "ghost", TEST_CALL_TIMEOUT_USEC, NULL, NULL),
                            CXPC_ERROR_NOT_FOUND);
        assert_remote_error(&f, runtime_client_resize(f.client, f.id, 80, 24), CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_resize(f.client, f.id, 0, 24), CXPC_ERROR_INVALID_ARGUMENT);

        /* Wrong types and missing keys. */
        assert_int_equal(cxpc_message_new_request("runtime/kill", &req), 0);
        assert_int_equal(cxpc_dict_set_int64(req, "id", 5), 0);
        assert_remote_error(&f, runtime_client_call(f.client, req, 0, NULL), CXPC_ERROR_INVALID_ARGUMENT);
        req = cxpc_object_unref(req);
        assert_int_equal(cxpc_message_new_request("runtime/kill", &req), 0);
        assert_int_equal(cxpc_dict_set_string(req, "id", f.id), 0);
        assert_remote_error(&f, runtime_client_call(f.client, req, 0, NULL), CXPC_ERROR_INVALID_ARGUMENT);
        req = cxpc_object_unref(req);
        assert_int_equal(cxpc_message_new_request("runtime/createProcess", &req), 0);
        assert_int_equal(cxpc_dict_set_string(req, "id", "e2"), 0);
        assert_int_equal(cxpc_dict_set_string(req, "processConfig", "sh"), 0);
        assert_remote_error(&f, runtime_client_call(f.client, req, 0, NULL), CXPC_ERROR_INVALID_ARGUMENT);
        req = cxpc_object_unref(req);
        assert_int_equal(cxpc_message_new_request("runtime/createProcess", &req), 0);
        assert_int_equal(cxpc_dict_set_string(req, "id", "e2"), 0);
        assert_int_equal(cxpc_dict_set_fd(req, "stdin", 0), 0);
        {
                cxpc_object *bad = NULL;
                assert_int_equal(cxpc_object_from_json("{\"args\":[]}", &bad), 0);
                assert_int_equal(cxpc_dict_set(req, "processConfig", bad), 0);
                cxpc_object_unref(bad);
        }
        assert_remote_error(&f, runtime_client_call(f.client, req, 0, NULL), CXPC_ERROR_INVALID_ARGUMENT);
        req = cxpc_object_unref(req);
        assert_int_equal(cxpc_message_new_request("runtime/nonsense", &req), 0);
        assert_remote_error(&f, runtime_client_call(f.client, req, 0, NULL), CXPC_ERROR_UNSUPPORTED);
        req = cxpc_object_unref(req);

        /* The container survived all that. */
        assert_int_equal(runtime_client_statistics(f.client, &st), 0);
        assert_true(st.pids_current >= 1);
        r = runtime_client_stop(f.client, 0, "SIGKILL");
        assert_int_equal(r, 0);
        /* stopped */
        assert_remote_error(&f, runtime_client_start(f.client, "e1"), CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_kill(f.client, f.id, "KILL"), CXPC_ERROR_INVALID_STATE);
        assert_remote_error(&f, runtime_client_wait(f.client, "e1", TEST_CALL_TIMEOUT_USEC, NULL, NULL),
                            CXPC_ERROR_INVALID_STATE);
        cxpc_object_unref(pc);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_state_statistics_endpoint(void **state) {
        Fixture f;
        cxpc_object *snap = NULL, *ep = NULL, *procs, *nets = NULL;
        RuntimeClient *other = NULL, *named = NULL;
        RuntimeStatistics st;
        const char *status;
        char path[256];

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        assert_int_equal(cxpc_dict_get_string(snap, "status", &status), 0);
        assert_string_equal(status, "created");
        snap = cxpc_object_unref(snap);

        assert_int_equal(cxpc_object_from_json("[{\"name\":\"default\"}]", &nets), 0);
        assert_int_equal(
                runtime_client_bootstrap(f.client, NULL, nets, (char *[]){(char *) "FOO=bar", NULL}), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);

        /* Two-phase connect through an anonymous endpoint. */
        assert_int_equal(runtime_client_create_endpoint(f.client, &ep), 0);
        assert_int_equal(runtime_client_connect_endpoint(ep, &other), 0);
        assert_int_equal(runtime_client_state(other, &snap), 0);
        assert_int_equal(cxpc_dict_get_string(snap, "status", &status), 0);
        assert_string_equal(status, "running");
        assert_true(cxpc_object_equal(cxpc_dict_get(snap, "networks"), nets));
        procs = cxpc_dict_get(snap, "processes");
        assert_int_equal(cxpc_array_get_count(procs), 1);
        {
                int64_t pid = 0;
                const char *pst = NULL;
                assert_int_equal(cxpc_dict_get_int64(cxpc_array_get(procs, 0), "pid", &pid), 0);
                assert_true(pid > 1);
                assert_int_equal(cxpc_dict_get_string(cxpc_array_get(procs, 0), "status", &pst), 0);
                assert_string_equal(pst, "running");
        }
        snap = cxpc_object_unref(snap);

        /* The named socket. */
        snprintf(path, sizeof(path), "%s/runtime/%s.sock", f.run_dir, f.id);
        assert_int_equal(runtime_client_connect_path(path, &named), 0);
        assert_int_equal(runtime_client_statistics(named, &st), 0);
        assert_true(st.pids_current >= 1);
        assert_true(st.memory_usage_bytes > 0);
        assert_true(st.cpu_usage_ns > 0);

        assert_int_equal(runtime_client_stop(named, 1, NULL), 0);
        other = runtime_client_free(other);
        named = runtime_client_free(named);
        cxpc_object_unref(ep);
        cxpc_object_unref(nets);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* Reads everything from fd into a SHA-256 digest. */
static size_t digest_fd(int fd, unsigned char out[32]) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        static char buf[1 << 16];
        size_t total = 0;
        unsigned len = 32;
        ssize_t n;

        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
                if (n < 0)
                        continue;
                EVP_DigestUpdate(ctx, buf, (size_t) n);
                total += (size_t) n;
        }
        EVP_DigestFinal_ex(ctx, out, &len);
        EVP_MD_CTX_free(ctx);
        return total;
}

typedef struct Feeder {
        int fd;
        size_t bytes;
        unsigned char digest[32];
} Feeder;

static void *feeder_thread(void *p) {
        Feeder *fe = p;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        static unsigned char buf[1 << 16];
        uint64_t x = 0x9e3779b97f4a7c15ull;
        unsigned len = 32;
        size_t left = fe->bytes;

        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        while (left > 0) {
                size_t n = left < sizeof(buf) ? left : sizeof(buf), off = 0;
                for (size_t i = 0; i < n; i += 8) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        memcpy(buf + i, &x, n - i < 8 ? n - i : 8);
                }
                EVP_DigestUpdate(ctx, buf, n);
                while (off < n) {
                        ssize_t w = write(fe->fd, buf + off, n - off);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                goto out;
                        off += (size_t) w;
                }
                left -= n;
        }
out:
        EVP_DigestFinal_ex(ctx, fe->digest, &len);
        EVP_MD_CTX_free(ctx);
        close(fe->fd);
        return NULL;
}

static void test_stdio_100mb(void **state) {
        Fixture f;
        int in[2], out[2], code = -1;
        RuntimeStdio stdio;
        unsigned char got[32];
        Feeder fe = {.bytes = STDOUT_BYTES};
        pthread_t t;

        fixture_start(&f, "{\"args\":[\"/bin/cat\"]}");
        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        stdio = (RuntimeStdio){in[0], out[1], out[1]};
        assert_int_equal(runtime_client_bootstrap(f.client, &stdio, NULL, NULL), 0);
        close(in[0]);
        close(out[1]);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        fe.fd = in[1];
        assert_int_equal(pthread_create(&t, NULL, feeder_thread, &fe), 0);
        /* EOF on stdout only when every copy of the write end is gone: none may stay in the
         * service. */
        assert_int_equal(digest_fd(out[0], got), STDOUT_BYTES);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_memory_equal(got, fe.digest, 32);
        close(out[0]);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_exec(void **state) {
        Fixture f;
        cxpc_object *pc = NULL;
        int out[2], code = -1;
        char buf[64] = {};
        ssize_t n;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);

        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        assert_int_equal(
                cxpc_object_from_json("{\"args\":[\"/bin/sh\",\"-c\",\"echo hi $FOO $(id -u); exit 7\"],"
                                      "\"env\":[\"FOO=bar\"],\"user\":\"nobody\"}",
                                      &pc),
                0);
        assert_int_equal(
                runtime_client_create_process(f.client, "e1", pc, &(RuntimeStdio){-1, out[1], out[1]}), 0);
        close(out[1]);
        assert_int_equal(runtime_client_start(f.client, "e1"), 0);
        assert_int_equal(runtime_client_wait(f.client, "e1", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 7);
        n = read(out[0], buf, sizeof(buf) - 1);
        assert_true(n > 0);
        assert_string_equal(buf, "hi bar 65534\n");
        close(out[0]);
        cxpc_object_unref(pc);

        /* 128 + signal for a process that is not PID 1. */
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/bin/sleep\",\"1000\"]}", &pc), 0);
        assert_int_equal(runtime_client_create_process(f.client, "e2", pc, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, "e2"), 0);
        assert_int_equal(runtime_client_kill(f.client, "e2", "TERM"), 0);
        assert_int_equal(runtime_client_wait(f.client, "e2", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 128 + SIGTERM);
        assert_int_equal(runtime_client_create_process(f.client, "e3", pc, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, "e3"), 0);
        assert_int_equal(runtime_client_kill(f.client, "e3", "9"), 0);
        assert_int_equal(runtime_client_wait(f.client, "e3", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 137);
        cxpc_object_unref(pc);

        /* A missing executable fails start with the OCI runtime's message, and exit 127. */
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/no/such/thing\"]}", &pc), 0);
        assert_int_equal(runtime_client_create_process(f.client, "e4", pc, NULL), 0);
        assert_remote_error(&f, runtime_client_start(f.client, "e4"), CXPC_ERROR_INTERNAL_ERROR);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "/no/such/thing"));
        /* The message itself, not the runtime's log format around it (runc: time=... level=...). */
        assert_null(strstr(runtime_client_last_error(f.client)->message, "level="));
        assert_null(strstr(runtime_client_last_error(f.client)->message, "\"msg\""));
        assert_int_equal(runtime_client_wait(f.client, "e4", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 127);
        cxpc_object_unref(pc);
        /* Not found in $PATH: 127 too; not executable: 126. */
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"no-such-command\"]}", &pc), 0);
        assert_int_equal(runtime_client_create_process(f.client, "e5", pc, NULL), 0);
        assert_remote_error(&f, runtime_client_start(f.client, "e5"), CXPC_ERROR_INTERNAL_ERROR);
        assert_non_null(strstr(runtime_client_last_error(f.client)->message, "no-such-command"));
        assert_int_equal(runtime_client_wait(f.client, "e5", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 127);
        cxpc_object_unref(pc);
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/etc/passwd\"]}", &pc), 0);
        assert_int_equal(runtime_client_create_process(f.client, "e6", pc, NULL), 0);
        assert_remote_error(&f, runtime_client_start(f.client, "e6"), CXPC_ERROR_INTERNAL_ERROR);
        assert_int_equal(runtime_client_wait(f.client, "e6", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 126);
        cxpc_object_unref(pc);

        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_exec_fd_leak(void **state) {
        const char *env = getenv("RUNTIME_TEST_EXEC_CYCLES");
        unsigned cycles = env ? (unsigned) atoi(env) : 1000, before, after;
        cxpc_object *pc = NULL;
        Fixture f;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/bin/true\"]}", &pc), 0);
        /* Warm up once (lazy allocations), then count. */
        assert_int_equal(runtime_client_create_process(f.client, "warm", pc, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, "warm"), 0);
        assert_int_equal(runtime_client_wait(f.client, "warm", TEST_CALL_TIMEOUT_USEC, NULL, NULL), 0);
        before = (unsigned) count_open_fds(f.service);
        for (unsigned i = 0; i < cycles; i++) {
                char id[32];
                int out[2], code = -1;
                snprintf(id, sizeof(id), "x%u", i);
                assert_int_equal(pipe2(out, O_CLOEXEC), 0);
                assert_int_equal(runtime_client_create_process(f.client, id, pc,
                                                               &(RuntimeStdio){out[0], out[1], out[1]}),
                                 0);
                close(out[0]);
                close(out[1]);
                assert_int_equal(runtime_client_start(f.client, id), 0);
                assert_int_equal(runtime_client_wait(f.client, id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
                assert_int_equal(code, 0);
        }
        after = (unsigned) count_open_fds(f.service);
        if (after > before)
                fail_msg("service fds grew from %u to %u over %u exec cycles", before, after, cycles);
        cxpc_object_unref(pc);
        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

typedef struct Waiter {
        RuntimeClient *client;
        const char *id;
        int r;
        int code;
} Waiter;

static void *waiter_thread(void *p) {
        Waiter *w = p;
        w->r = runtime_client_wait(w->client, w->id, TEST_CALL_TIMEOUT_USEC, &w->code, NULL);
        return NULL;
}

static void test_concurrent(void **state) {
        Fixture f;
        cxpc_object *ep = NULL;
        RuntimeClient *a = NULL, *b = NULL, *k = NULL;
        Waiter wa, wb;
        pthread_t ta, tb;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(runtime_client_create_endpoint(f.client, &ep), 0);
        assert_int_equal(runtime_client_connect_endpoint(ep, &a), 0);
        assert_int_equal(runtime_client_connect_endpoint(ep, &b), 0);
        assert_int_equal(runtime_client_connect_endpoint(ep, &k), 0);
        wa = (Waiter){a, f.id, -1, -1};
        wb = (Waiter){b, f.id, -1, -1};
        assert_int_equal(pthread_create(&ta, NULL, waiter_thread, &wa), 0);
        assert_int_equal(pthread_create(&tb, NULL, waiter_thread, &wb), 0);
        usleep(100000);
        assert_int_equal(runtime_client_kill(k, f.id, "KILL"), 0);
        assert_int_equal(pthread_join(ta, NULL), 0);
        assert_int_equal(pthread_join(tb, NULL), 0);
        assert_int_equal(wa.r, 0);
        assert_int_equal(wb.r, 0);
        assert_int_equal(wa.code, 137);
        assert_int_equal(wb.code, 137);
        runtime_client_free(a);
        runtime_client_free(b);
        runtime_client_free(k);
        cxpc_object_unref(ep);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

static void test_service_sigkill(void **state) {
        Fixture f;
        cxpc_object *snap = NULL;
        int64_t pid = 0;
        bool gone = false;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        assert_int_equal(
                cxpc_dict_get_int64(cxpc_array_get(cxpc_dict_get(snap, "processes"), 0), "pid", &pid), 0);
        cxpc_object_unref(snap);
        assert_true(pid > 1);
        assert_int_equal(kill(f.service, SIGKILL), 0);
        /* We are a subreaper (main()), so the orphaned container init comes to us: reap anything. */
        for (int i = 0; i < 500 && !gone; i++) {
                while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
                gone = kill((pid_t) pid, 0) < 0 && errno == ESRCH;
                if (!gone)
                        usleep(10000);
        }
        assert_true(gone);
        char statedir[256];
        snprintf(statedir, sizeof(statedir), "%s/runtime/%s.d", f.run_dir, f.id);
        for (int i = 0;
             i < 500 && (path_exists("/sys/fs/cgroup/pids/container", f.id) || access(statedir, F_OK) == 0);
             i++) {
                while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
                usleep(10000);
        }
        fixture_finish(&f, false);
}

static void test_first_connection_drop(void **state) {
        Fixture f;

        /* created: the launcher goes away → the service has nothing to own and exits. */
        fixture_start(&f, "{\"args\":[\"/bin/true\"]}");
        fixture_finish(&f, true);
}

static void test_bad_config(void **state) {
        Fixture f;
        cxpc_object *snap = NULL;

        /* The user is resolved at bootstrap; an unknown one is invalidArgument. */
        fixture_start(&f, "{\"args\":[\"/bin/true\"],\"user\":\"nosuchuser\"}");
        assert_remote_error(&f, runtime_client_bootstrap(f.client, NULL, NULL, NULL),
                            CXPC_ERROR_INVALID_ARGUMENT);
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        cxpc_object_unref(snap);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* ---- bad input (issue #3): every request below gets an error reply with the right code and a
 * message, and the container keeps running. ---- */

/* Sends route with the keys of the JSON object json (plus fd under fd_key when fd_key is set)
 * and expects an error reply with code whose message contains needle (if given). */
static void expect_error_fd(Fixture *f, const char *route, const char *json, const char *fd_key, int fd,
                            cxpc_error_code code, const char *needle) {
        cxpc_object *body = NULL, *req = NULL;
        const RuntimeClientError *e;
        int r;

        if (cxpc_object_from_json(json, &body) < 0)
                fail_msg("bad test JSON %s", json);
        assert_int_equal(cxpc_message_new_request(route, &req), 0);
        for (size_t i = 0; i < cxpc_dict_get_count(body); i++) {
                const char *k;
                cxpc_object *v;
                assert_int_equal(cxpc_dict_get_entry(body, i, &k, &v), 0);
                assert_int_equal(cxpc_dict_set(req, k, v), 0);
        }
        if (fd_key)
                assert_int_equal(cxpc_dict_set_fd(req, fd_key, fd), 0);
        r = runtime_client_call(f->client, req, 0, NULL);
        e = runtime_client_last_error(f->client);
        if (r >= 0 || !e->remote || e->code != code || !e->message[0] ||
            (needle && !strstr(e->message, needle)))
                fail_msg("%s %s: expected %s%s%s, got r=%d remote=%d %s \"%s\"", route, json,
                         cxpc_error_code_to_string(code), needle ? " mentioning " : "", needle ?: "", r,
                         e->remote, cxpc_error_code_to_string(e->code), e->message);
        cxpc_object_unref(req);
        cxpc_object_unref(body);
}

static void expect_error(Fixture *f, const char *route, const char *json, cxpc_error_code code,
                         const char *needle) {
        expect_error_fd(f, route, json, NULL, -1, code, needle);
}

/* A tar stream (pipe read end) with one file entry named name. */
static int tar_stream_with_entry(const char *name) {
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        int p[2];

        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
        /* The whole archive (10 KiB with the default block size) fits in the pipe. */
        assert_int_equal(archive_write_open_fd(a, p[1]), ARCHIVE_OK);
        archive_entry_set_pathname(e, name);
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 5);
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        assert_int_equal(archive_write_data(a, "evil\n", 5), 5);
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_entry_free(e);
        archive_write_free(a);
        close(p[1]);
        return p[0];
}

static void start_exec(Fixture *f, const char *id, const char *process_json, bool wait_exit) {
        cxpc_object *pc = NULL;

        assert_int_equal(cxpc_object_from_json(process_json, &pc), 0);
        assert_int_equal(runtime_client_create_process(f->client, id, pc, NULL), 0);
        assert_int_equal(runtime_client_start(f->client, id), 0);
        if (wait_exit)
                assert_int_equal(runtime_client_wait(f->client, id, TEST_CALL_TIMEOUT_USEC, NULL, NULL), 0);
        cxpc_object_unref(pc);
}

static void test_bad_input(void **state) {
        const cxpc_error_code INVAL = CXPC_ERROR_INVALID_ARGUMENT, STATE = CXPC_ERROR_INVALID_STATE;
        char json[768], long_id[300], host_dir[300], path[512];
        cxpc_object *snap = NULL, *pc = NULL;
        int64_t pid_before = 0, pid_after = 0;
        const char *status = NULL;
        RuntimeStatistics st;
        int p[2], fd, code = -1;
        Fixture f;

        fixture_start_full(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}", true);

        /* created: bootstrap's own keys. */
        expect_error(&f, "runtime/bootstrap", "{\"env\":\"A=b\"}", INVAL, "env");
        expect_error(&f, "runtime/bootstrap", "{\"env\":[\"novalue\"]}", INVAL, "env");
        expect_error(&f, "runtime/bootstrap", "{\"env\":[1]}", INVAL, "env");
        expect_error(&f, "runtime/bootstrap", "{\"networks\":\"default\"}", INVAL, "networks");
        expect_error(&f, "runtime/bootstrap", "{\"stdout\":\"/dev/null\"}", INVAL, "stdout");
        expect_error(&f, "runtime/start", "{\"id\":\"x\"}", CXPC_ERROR_NOT_FOUND, "x");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        start_exec(&f, "run1", "{\"args\":[\"/bin/sleep\",\"1000\"]}", false);
        start_exec(&f, "done", "{\"args\":[\"/bin/true\"]}", true);
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/bin/true\"]}", &pc), 0);
        assert_int_equal(runtime_client_create_process(f.client, "reg", pc, NULL), 0);
        cxpc_object_unref(pc);
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        for (size_t i = 0; i < cxpc_array_get_count(cxpc_dict_get(snap, "processes")); i++) {
                cxpc_object *proc = cxpc_array_get(cxpc_dict_get(snap, "processes"), i);
                const char *id = NULL;
                assert_int_equal(cxpc_dict_get_string(proc, "id", &id), 0);
                if (strcmp(id, f.id) == 0)
                        assert_int_equal(cxpc_dict_get_int64(proc, "pid", &pid_before), 0);
        }
        snap = cxpc_object_unref(snap);
        assert_true(pid_before > 1);

        /* Unknown process ids, and ids that cannot be one. */
        expect_error(&f, "runtime/start", "{\"id\":\"ghost\"}", CXPC_ERROR_NOT_FOUND, "ghost");
        expect_error(&f, "runtime/kill", "{\"id\":\"ghost\",\"signal\":\"TERM\"}", CXPC_ERROR_NOT_FOUND,
                     "ghost");
        expect_error(&f, "runtime/wait", "{\"id\":\"ghost\"}", CXPC_ERROR_NOT_FOUND, "ghost");
        expect_error(&f, "runtime/resize", "{\"id\":\"ghost\",\"width\":80,\"height\":24}",
                     CXPC_ERROR_NOT_FOUND, "ghost");
        expect_error(&f, "runtime/start", "{\"id\":\"\"}", INVAL, "id");
        expect_error(&f, "runtime/start", "{\"id\":\"a/b\"}", INVAL, "id");
        memset(long_id, 'x', sizeof(long_id) - 1);
        long_id[sizeof(long_id) - 1] = 0;
        snprintf(json, sizeof(json), "{\"id\":\"%s\",\"signal\":\"TERM\"}", long_id);
        expect_error(&f, "runtime/kill", json, INVAL, "id");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"../x\",\"processConfig\":{\"args\":[\"/bin/true\"]}}", INVAL, "id");

        /* Wrong states. */
        expect_error(&f, "runtime/bootstrap", "{}", STATE, "running");
        snprintf(json, sizeof(json), "{\"id\":\"%s\"}", f.id);
        expect_error(&f, "runtime/start", json, STATE, "running");
        expect_error(&f, "runtime/shutdown", "{}", STATE, "running");
        expect_error(&f, "runtime/start", "{\"id\":\"run1\"}", STATE, "run1 is running");
        expect_error(&f, "runtime/start", "{\"id\":\"done\"}", STATE, "done is exited");
        expect_error(&f, "runtime/kill", "{\"id\":\"done\",\"signal\":\"TERM\"}", STATE, "exited");
        expect_error(&f, "runtime/kill", "{\"id\":\"reg\",\"signal\":\"TERM\"}", STATE, "created");
        expect_error(&f, "runtime/resize", "{\"id\":\"run1\",\"width\":80,\"height\":24}", STATE,
                     "terminal");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"run1\",\"processConfig\":{\"args\":[\"/bin/true\"]}}", CXPC_ERROR_EXISTS,
                     "run1");
        snprintf(json, sizeof(json), "{\"id\":\"%s\",\"processConfig\":{\"args\":[\"/bin/true\"]}}", f.id);
        expect_error(&f, "runtime/createProcess", json, CXPC_ERROR_EXISTS, f.id);

        /* Bad signals: names, numbers out of range (0, negative, real-time, huge), other types. */
        static const char *const bad_signals[] = {
                "\"SIGNOPE\"", "\"\"", "\"0\"", "\"-9\"", "\"65\"", "\"SIGRTMIN\"", "\"9x\"", "0",
                "-1",          "64",   "1000",  "9.0",    "true",   "null",         "[9]",    "{}",
        };
        for (size_t i = 0; i < sizeof(bad_signals) / sizeof(bad_signals[0]); i++) {
                snprintf(json, sizeof(json), "{\"id\":\"%s\",\"signal\":%s}", f.id, bad_signals[i]);
                expect_error(&f, "runtime/kill", json, INVAL, "signal");
                snprintf(json, sizeof(json), "{\"stopOptions\":{\"timeout\":0,\"signal\":%s}}",
                         bad_signals[i]);
                expect_error(&f, "runtime/stop", json, INVAL, "signal");
        }

        /* Paths outside the root: `..` above /, entries of the stream that climb out or are
         * absolute, a symlink planted in the container that points at a host path. */
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/../etc/x\"}", "fd", p[0], INVAL,
                        "root");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/../../x\"}", "fd", p[0], INVAL,
                        "root");
        expect_error_fd(&f, "runtime/copyOut", "{\"sourcePath\":\"../../../etc/passwd\"}", "fd", p[1], INVAL,
                        "root");
        expect_error_fd(&f, "runtime/copyOut", "{\"sourcePath\":\"/etc/../../../etc/passwd\"}", "fd", p[1],
                        INVAL, "root");
        close_pipe(p);
        fd = tar_stream_with_entry("../escape.txt");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp\"}", "fd", fd, INVAL, "..");
        close(fd);
        fd = tar_stream_with_entry("/escape.txt");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp\"}", "fd", fd, INVAL,
                        "escape.txt");
        close(fd);
        snprintf(host_dir, sizeof(host_dir), "%s/host-only", f.dir);
        assert_int_equal(mkdir(host_dir, 0755), 0);
        snprintf(path, sizeof(path), "%s/host-only/secret", f.dir);
        write_file(path, "host\n");
        snprintf(path, sizeof(path), "%s/bundle/rootfs/tmp/hostlink", f.dir);
        assert_int_equal(symlink(host_dir, path), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        expect_error_fd(&f, "runtime/copyOut", "{\"sourcePath\":\"/tmp/hostlink/secret\"}", "fd", p[1],
                        CXPC_ERROR_NOT_FOUND, NULL);
        close_pipe(p);
        fd = tar_stream_with_entry("planted.txt");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/hostlink/sub/planted.txt\"}",
                        "fd", fd, CXPC_ERROR_NOT_FOUND, NULL);
        close(fd);
        snprintf(path, sizeof(path), "%s/sub", host_dir);
        assert_int_equal(access(path, F_OK), -1);

        /* Missing keys. */
        expect_error(&f, "runtime/start", "{}", INVAL, "missing key id");
        expect_error(&f, "runtime/wait", "{}", INVAL, "missing key id");
        snprintf(json, sizeof(json), "{\"id\":\"%s\"}", f.id);
        expect_error(&f, "runtime/kill", json, INVAL, "missing key signal");
        expect_error(&f, "runtime/createProcess", "{\"id\":\"n1\"}", INVAL, "missing key processConfig");
        expect_error(&f, "runtime/resize", "{\"id\":\"run1\",\"width\":80}", INVAL, "height");
        expect_error(&f, "runtime/dial", "{}", INVAL, "missing key port");
        expect_error(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/x\"}", INVAL, "missing key fd");
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        expect_error_fd(&f, "runtime/copyIn", "{}", "fd", p[0], INVAL, "missing key destinationPath");
        expect_error_fd(&f, "runtime/copyOut", "{}", "fd", p[1], INVAL, "missing key sourcePath");

        /* Wrong value types and out-of-range values. */
        expect_error(&f, "runtime/start", "{\"id\":5}", INVAL, "id must be a string");
        expect_error(&f, "runtime/wait", "{\"id\":[\"run1\"]}", INVAL, "id must be a string");
        expect_error(&f, "runtime/createProcess", "{\"id\":\"n1\",\"processConfig\":\"sh\"}", INVAL,
                     "processConfig");
        expect_error(&f, "runtime/createProcess", "{\"id\":\"n1\",\"processConfig\":{\"args\":\"sh\"}}",
                     INVAL, "args");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"n1\",\"processConfig\":{\"args\":[\"/bin/true\"],\"env\":[1]}}", INVAL,
                     "env");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"n1\",\"processConfig\":{\"args\":[\"/bin/true\"],\"cwd\":\"tmp\"}}", INVAL,
                     "cwd");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"n1\",\"processConfig\":{\"args\":[\"/bin/true\"],\"terminal\":\"yes\"}}",
                     INVAL, "terminal");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"n1\",\"processConfig\":{\"args\":[\"/bin/true\"],\"user\":\"nosuchuser\"}}",
                     INVAL, "nosuchuser");
        expect_error(&f, "runtime/createProcess",
                     "{\"id\":\"n1\",\"processConfig\":{\"args\":[\"/bin/true\"]},\"stdin\":\"/dev/null\"}",
                     INVAL, "stdin");
        expect_error(&f, "runtime/resize", "{\"id\":\"run1\",\"width\":\"80\",\"height\":24}", INVAL,
                     "width");
        expect_error(&f, "runtime/resize", "{\"id\":\"run1\",\"width\":0,\"height\":24}", INVAL, "width");
        expect_error(&f, "runtime/resize", "{\"id\":\"run1\",\"width\":80,\"height\":70000}", INVAL,
                     "height");
        expect_error(&f, "runtime/dial", "{\"port\":\"80\"}", INVAL, "port");
        expect_error(&f, "runtime/dial", "{\"port\":0}", INVAL, "port");
        expect_error(&f, "runtime/dial", "{\"port\":70000}", INVAL, "port");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":5}", "fd", p[0], INVAL,
                        "destinationPath");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"\"}", "fd", p[0], INVAL,
                        "destinationPath");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/x\",\"fileMode\":\"644\"}", "fd",
                        p[0], INVAL, "fileMode");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/x\",\"fileMode\":65535}", "fd",
                        p[0], INVAL, "fileMode");
        expect_error_fd(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/x\",\"createParents\":\"yes\"}",
                        "fd", p[0], INVAL, "createParents");
        expect_error(&f, "runtime/copyIn", "{\"destinationPath\":\"/tmp/x\",\"fd\":3}", INVAL, "fd");
        close_pipe(p);
        expect_error(&f, "runtime/stop", "{\"stopOptions\":\"now\"}", INVAL, "stopOptions");
        expect_error(&f, "runtime/stop", "{\"stopOptions\":{\"timeout\":\"10\"}}", INVAL, "timeout");
        expect_error(&f, "runtime/stop", "{\"stopOptions\":{\"timeout\":-1}}", INVAL, "timeout");
        expect_error(&f, "runtime/stop", "{\"stopOptions\":{\"timeout\":-0.5}}", INVAL, "timeout");
        expect_error(&f, "runtime/nonsense", "{}", CXPC_ERROR_UNSUPPORTED, "nonsense");

        /* The container kept running, with the same init, and still works. */
        assert_int_equal(runtime_client_state(f.client, &snap), 0);
        assert_int_equal(cxpc_dict_get_string(snap, "status", &status), 0);
        assert_string_equal(status, "running");
        for (size_t i = 0; i < cxpc_array_get_count(cxpc_dict_get(snap, "processes")); i++) {
                cxpc_object *proc = cxpc_array_get(cxpc_dict_get(snap, "processes"), i);
                const char *id = NULL, *pst = NULL;
                assert_int_equal(cxpc_dict_get_string(proc, "id", &id), 0);
                assert_int_equal(cxpc_dict_get_string(proc, "status", &pst), 0);
                if (strcmp(id, f.id) == 0) {
                        assert_int_equal(cxpc_dict_get_int64(proc, "pid", &pid_after), 0);
                        assert_string_equal(pst, "running");
                } else if (strcmp(id, "run1") == 0)
                        assert_string_equal(pst, "running");
                else if (strcmp(id, "n1") == 0)
                        fail_msg("a refused createProcess registered n1");
        }
        snap = cxpc_object_unref(snap);
        assert_int_equal(pid_after, pid_before);
        assert_int_equal(runtime_client_statistics(f.client, &st), 0);
        assert_true(st.pids_current >= 2);
        start_exec(&f, "after", "{\"args\":[\"/bin/sh\",\"-c\",\"exit 5\"]}", false);
        assert_int_equal(runtime_client_wait(f.client, "after", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 5);

        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* After a failed assertion: SIGTERM makes the service take its container down and exit; then
 * reap everything and remove the test directory. */
static int teardown(void **state) {
        Fixture *f = current;

        exe_fd = safe_close(exe_fd);
        current = NULL;
        if (!f)
                return 0;
        /* The client may have been freed already; its socket closing is what we need anyway. */
        f->client = NULL;
        if (f->service > 0 && kill(f->service, SIGTERM) == 0) {
                for (int i = 0; i < 500 && waitpid(f->service, NULL, WNOHANG) == 0; i++)
                        usleep(10000);
                if (kill(f->service, SIGKILL) == 0)
                        waitpid(f->service, NULL, 0);
        }
        for (int i = 0; i < 200 && path_exists("/sys/fs/cgroup/pids/container", f->id); i++) {
                while (waitpid(-1, NULL, WNOHANG) > 0)
                        ;
                usleep(10000);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
        if (f->dir[0])
                rm_rf(f->dir);
        return 0;
}

static bool io_unsupported(Fixture *f, int r) {
        const RuntimeClientError *e = runtime_client_last_error(f->client);
        return r < 0 && e->remote && e->code == CXPC_ERROR_UNSUPPORTED;
}

static void read_host_file(const char *path, char *buf, size_t size) {
        FILE *fp = fopen(path, "re");
        size_t n;
        if (!fp)
                fail_msg("cannot open %s: %m", path);
        n = fread(buf, 1, size - 1, fp);
        buf[n] = 0;
        fclose(fp);
}

static void test_copy(void **state) {
        Fixture f;
        char src[256], dst[256], path[300], buf[400];
        int r;

        fixture_start_full(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}", true);
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);

        /* A small tree on the host. */
        snprintf(src, sizeof(src), "%s/src", f.dir);
        assert_int_equal(mkdir(src, 0755), 0);
        snprintf(path, sizeof(path), "%s/a.txt", src);
        write_file(path, "alpha\n");
        snprintf(path, sizeof(path), "%s/sub", src);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/sub/b.txt", src);
        write_file(path, "beta\n");

        r = runtime_client_copy_in(f.client, src, "/tmp/in", 0, false);
        if (io_unsupported(&f, r)) {
                assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
                assert_int_equal(runtime_client_shutdown(f.client), 0);
                fixture_finish(&f, true);
                skip();
        }
        assert_int_equal(r, 0);
        snprintf(path, sizeof(path), "%s/bundle/rootfs/tmp/in/sub/b.txt", f.dir);
        read_host_file(path, buf, sizeof(buf));
        assert_string_equal(buf, "beta\n");

        /* ... and back out. */
        snprintf(dst, sizeof(dst), "%s/out", f.dir);
        assert_int_equal(runtime_client_copy_out(f.client, "/tmp/in", dst, false), 0);
        snprintf(path, sizeof(path), "%s/a.txt", dst);
        read_host_file(path, buf, sizeof(buf));
        assert_string_equal(buf, "alpha\n");
        /* A host destination below a symlink the user chose (a symlinked /tmp, say) is fine:
         * only symlinks the stream brings along are refused. As a new name and into a directory. */
        snprintf(path, sizeof(path), "%s/real", f.dir);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(dst, sizeof(dst), "%s/lnk", f.dir);
        assert_int_equal(symlink(path, dst), 0);
        snprintf(dst, sizeof(dst), "%s/lnk/out2", f.dir);
        assert_int_equal(runtime_client_copy_out(f.client, "/tmp/in", dst, false), 0);
        snprintf(path, sizeof(path), "%s/real/out2/sub/b.txt", f.dir);
        read_host_file(path, buf, sizeof(buf));
        assert_string_equal(buf, "beta\n");
        snprintf(dst, sizeof(dst), "%s/lnk", f.dir);
        assert_int_equal(runtime_client_copy_out(f.client, "/tmp/in/a.txt", dst, false), 0);
        snprintf(path, sizeof(path), "%s/real/a.txt", f.dir);
        read_host_file(path, buf, sizeof(buf));
        assert_string_equal(buf, "alpha\n");

        /* createParents, and a missing parent without it. */
        snprintf(path, sizeof(path), "%s/a.txt", src);
        assert_remote_error(&f, runtime_client_copy_in(f.client, path, "/tmp/x/y/a.txt", 0, false),
                            CXPC_ERROR_NOT_FOUND);
        assert_int_equal(runtime_client_copy_in(f.client, path, "/tmp/x/y/a.txt", 0600, true), 0);
        {
                struct stat st;
                snprintf(dst, sizeof(dst), "%s/bundle/rootfs/tmp/x/y/a.txt", f.dir);
                assert_int_equal(stat(dst, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0600);
        }
        assert_remote_error(&f, runtime_client_copy_out(f.client, "/no/such/file", dst, false),
                            CXPC_ERROR_NOT_FOUND);

        /* Escapes: `..` and a symlink planted in the container that points at the host. */
        snprintf(dst, sizeof(dst), "%s/escape-target", f.dir);
        assert_int_equal(mkdir(dst, 0755), 0);
        r = runtime_client_copy_in(f.client, path, "/../../../../../../../../..", 0, false);
        (void) r; /* may succeed (landing at the container's /) or be refused; never outside */
        assert_int_equal(access("/a.txt", F_OK), -1);
        snprintf(path, sizeof(path), "%s/bundle/rootfs/tmp/link", f.dir);
        assert_int_equal(symlink(dst, path), 0);
        snprintf(path, sizeof(path), "%s/a.txt", src);
        r = runtime_client_copy_in(f.client, path, "/tmp/link/evil.txt", 0, false);
        snprintf(buf, sizeof(buf), "%s/evil.txt", dst);
        assert_int_equal(access(buf, F_OK), -1);
        r = runtime_client_copy_out(f.client, "/tmp/link/../../../../etc/shadow", dst, false);
        snprintf(buf, sizeof(buf), "%s/shadow", dst);
        assert_int_equal(access(buf, F_OK), -1);

        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* Runs process_json (with a terminal) as exec id on a socket, optionally resized before start
 * and fed input after start; its output must contain expected and it must exit 0. */

/* Reads from fd into buf (size bytes, kept NUL-terminated; got already there) until EOF, 5 s of
 * silence, a full buffer or, when stop is set, until stop appears. Returns the new count. */
static size_t read_until(int fd, char *buf, size_t size, size_t got, const char *stop) {
        struct timeval tv = {.tv_sec = 5};

        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        while (got < size - 1) {
                ssize_t n = read(fd, buf + got, size - 1 - got);
                if (n <= 0)
                        break;
                got += (size_t) n;
                buf[got] = 0;
                if (stop && strstr(buf, stop))
                        break;
        }
        return got;
}
static void expect_terminal_output(Fixture *f, const char *id, const char *process_json, unsigned width,
                                   unsigned height, const char *input, const char *expected) {
        cxpc_object *pc = NULL;
        char buf[512] = {};
        size_t got = 0;
        int sv[2], code = -1;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(cxpc_object_from_json(process_json, &pc), 0);
        assert_int_equal(
                runtime_client_create_process(f->client, id, pc, &(RuntimeStdio){sv[1], sv[1], sv[1]}), 0);
        cxpc_object_unref(pc);
        close(sv[1]);
        if (width > 0)
                assert_int_equal(runtime_client_resize(f->client, id, width, height), 0);
        assert_int_equal(runtime_client_start(f->client, id), 0);
        if (input)
                assert_int_equal(write(sv[0], input, strlen(input)), (ssize_t) strlen(input));
        assert_int_equal(runtime_client_wait(f->client, id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        /* EOF once the relay is done: it was before wait replied. */
        got = read_until(sv[0], buf, sizeof(buf), got, NULL);
        close(sv[0]);
        if (code != 0 || !strstr(buf, expected))
                fail_msg("%s exited %d and printed \"%s\", expected \"%s\"", id, code, buf, expected);
}

static void test_terminal_resize(void **state) {
        Fixture f;
        cxpc_object *pc = NULL;
        int sv[2], code = -1, r;
        char buf[256] = {};
        size_t got = 0;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(cxpc_object_from_json("{\"args\":[\"/bin/sh\",\"-c\",\"sleep 0.5; stty size\"],"
                                               "\"terminal\":true}",
                                               &pc),
                         0);
        assert_int_equal(
                runtime_client_create_process(f.client, "tty", pc, &(RuntimeStdio){sv[1], sv[1], sv[1]}), 0);
        close(sv[1]);
        r = runtime_client_start(f.client, "tty");
        if (io_unsupported(&f, r)) {
                close(sv[0]);
                cxpc_object_unref(pc);
                assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
                assert_int_equal(runtime_client_shutdown(f.client), 0);
                fixture_finish(&f, true);
                skip();
        }
        assert_int_equal(r, 0);
        assert_int_equal(runtime_client_resize(f.client, "tty", 123, 45), 0);
        assert_int_equal(runtime_client_wait(f.client, "tty", TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 0);
        got = read_until(sv[0], buf, sizeof(buf), got, "45 123");
        if (!strstr(buf, "45 123"))
                fail_msg("stty size printed \"%s\"", buf);
        close(sv[0]);
        cxpc_object_unref(pc);
        /* A process that prints and exits at once: its output is in the PTY before the master
         * reaches the service, and the exit must wait for it (it used to be lost). */
        expect_terminal_output(&f, "tty2", "{\"args\":[\"/bin/echo\",\"early\"],\"terminal\":true}", 0, 0,
                               NULL, "early");
        /* A size set before start: consoleSize in the OCI process and again on the master when it
         * arrives (crun 1.8.1 sets consoleSize from its parent after releasing the process). The
         * process reads a line first, which can only arrive through the relay, i.e. after that. */
        expect_terminal_output(&f, "tty3",
                               "{\"args\":[\"/bin/sh\",\"-c\",\"read x; stty size\"],\"terminal\":true}", 77,
                               33, "go\n", "33 77");
        /* A process without a terminal cannot be resized. */
        assert_remote_error(&f, runtime_client_resize(f.client, f.id, 80, 24), CXPC_ERROR_INVALID_STATE);
        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* The init process on a terminal: the console socket protocol of the OCI runtime, a resize
 * that comes before the terminal exists (applied when the master arrives), output relayed to the
 * client and logged. */
static void test_init_terminal(void **state) {
        Fixture f;
        int sv[2], code = -1;
        char buf[512] = {}, path[256], tail[64] = "";
        size_t got = 0, bytes[3];

        fixture_start(&f, "{\"args\":[\"/bin/sh\",\"-c\",\"stty size; tty; echo done\"],\"terminal\":true}");
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(
                runtime_client_bootstrap(f.client, &(RuntimeStdio){sv[1], sv[1], sv[1]}, NULL, NULL), 0);
        close(sv[1]);
        assert_int_equal(runtime_client_resize(f.client, f.id, 100, 30), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        assert_int_equal(runtime_client_wait(f.client, f.id, TEST_CALL_TIMEOUT_USEC, &code, NULL), 0);
        assert_int_equal(code, 0);
        /* The relay closed its copy of our socket when the terminal hung up: read to EOF. */
        got = read_until(sv[0], buf, sizeof(buf), got, NULL);
        close(sv[0]);
        if (!strstr(buf, "30 100") || !strstr(buf, "/dev/pts/") || !strstr(buf, "done"))
                fail_msg("the terminal printed \"%s\"", buf);
        /* A terminal's output is logged as stdout. */
        snprintf(path, sizeof(path), "%s/container.log", f.bundle);
        log_count_bytes(path, bytes, tail, sizeof(tail));
        assert_true(bytes[1] >= strlen("30 100\r\n/dev/pts/0\r\ndone\r\n"));
        assert_int_equal(bytes[2], 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* SIGTERM to the service: it takes its container down, cleans up and exits 0. */
static void test_service_sigterm(void **state) {
        Fixture f;

        fixture_start(&f, "{\"args\":[\"/bin/sleep\",\"1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        start_exec(&f, "e1", "{\"args\":[\"/bin/sleep\",\"1000\"]}", false);
        assert_int_equal(kill(f.service, SIGTERM), 0);
        fixture_finish(&f, true);
}

static void test_dial(void **state) {
        Fixture f;
        char buf[64] = {};
        int fd = -1, r = -1;

        fixture_start(&f, "{\"args\":[\"/bin/sh\",\"-c\",\"echo pong | nc -l -p 8080; sleep 1000\"]}");
        assert_int_equal(runtime_client_bootstrap(f.client, NULL, NULL, NULL), 0);
        assert_int_equal(runtime_client_start(f.client, f.id), 0);
        for (int i = 0; i < 100; i++) {
                r = runtime_client_dial(f.client, 8080, &fd);
                if (r >= 0 || io_unsupported(&f, r))
                        break;
                usleep(20000);
        }
        if (io_unsupported(&f, r)) {
                assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
                assert_int_equal(runtime_client_shutdown(f.client), 0);
                fixture_finish(&f, true);
                skip();
        }
        assert_int_equal(r, 0);
        assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
        assert_string_equal(buf, "pong\n");
        close(fd);
        assert_remote_error(&f, runtime_client_dial(f.client, 0, &fd), CXPC_ERROR_INVALID_ARGUMENT);
        assert_int_equal(runtime_client_stop(f.client, 0, NULL), 0);
        assert_int_equal(runtime_client_shutdown(f.client), 0);
        fixture_finish(&f, true);
}

/* Where the service looks for --runtime NAME (find_runtime() in runtime-service.c). */
static bool oci_runtime_installed(const char *name) {
        _cleanup_free_ char *p = NULL;

        if (strchr(name, '/'))
                return access(name, X_OK) == 0;
        return oci_runtime_lookup(name, &p) >= 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_exit_true, teardown),
                cmocka_unit_test_teardown(test_exit_false, teardown),
                cmocka_unit_test_teardown(test_exit_42, teardown),
                cmocka_unit_test_teardown(test_exit_signal, teardown),
                cmocka_unit_test_teardown(test_relative_paths, teardown),
                cmocka_unit_test_teardown(test_runtime_exe_fd, teardown),
                cmocka_unit_test_teardown(test_init_start_failure, teardown),
                cmocka_unit_test_teardown(test_stop_timeout_137, teardown),
                cmocka_unit_test_teardown(test_stop_graceful, teardown),
                cmocka_unit_test_teardown(test_preconditions, teardown),
                cmocka_unit_test_teardown(test_pause, teardown),
                cmocka_unit_test_teardown(test_pause_sigkill, teardown),
                cmocka_unit_test_teardown(test_bad_input, teardown),
                cmocka_unit_test_teardown(test_state_statistics_endpoint, teardown),
                cmocka_unit_test_teardown(test_stdio_100mb, teardown),
                cmocka_unit_test_teardown(test_exec, teardown),
                cmocka_unit_test_teardown(test_concurrent, teardown),
                cmocka_unit_test_teardown(test_service_sigkill, teardown),
                cmocka_unit_test_teardown(test_first_connection_drop, teardown),
                cmocka_unit_test_teardown(test_bad_config, teardown),
                cmocka_unit_test_teardown(test_copy, teardown),
                cmocka_unit_test_teardown(test_wait_after_output_logged, teardown),
                cmocka_unit_test_teardown(test_terminal_resize, teardown),
                cmocka_unit_test_teardown(test_init_terminal, teardown),
                cmocka_unit_test_teardown(test_service_sigterm, teardown),
                cmocka_unit_test_teardown(test_dial, teardown),
                cmocka_unit_test_teardown(test_exec_fd_leak, teardown),
        };

        if (geteuid() != 0) {
                fprintf(stderr, "needs root\n");
                return 77;
        }
        service_binary = getenv("CONTAINER_RUNTIME");
        rootfs = getenv("TEST_ROOTFS");
        if (!service_binary || !rootfs) {
                fprintf(stderr, "CONTAINER_RUNTIME and TEST_ROOTFS must be set\n");
                return 1;
        }
        if (getenv("TEST_OCI_RUNTIME") && *getenv("TEST_OCI_RUNTIME"))
                oci_runtime = getenv("TEST_OCI_RUNTIME");
        if (!oci_runtime_installed(oci_runtime)) {
                /* On stdout too: that is what `meson test -v` and the test log show. */
                printf("SKIP: OCI runtime %s is not installed (the service looks in /usr/bin, /usr/sbin, "
                       "/usr/local/bin, /usr/local/sbin, /bin, /sbin)\n",
                       oci_runtime);
                fprintf(stderr, "SKIP: OCI runtime %s is not installed\n", oci_runtime);
                return 77;
        }
        printf("OCI runtime: %s\n", oci_runtime);
        fflush(stdout);
        signal(SIGPIPE, SIG_IGN);
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        /* e.g. RUNTIME_TEST_FILTER='test_exec*' */
        if (getenv("RUNTIME_TEST_FILTER"))
                cmocka_set_test_filter(getenv("RUNTIME_TEST_FILTER"));
        return cmocka_run_group_tests(tests, NULL, NULL);
}
