/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * container-runtime against plain crun, same machine, same rootfs, medians of N rounds; each crun
 * round and service round alternate, so that both see the same load of this shared machine:
 *   run:  bootstrap+start+wait+shutdown through the client library vs `crun run` of /bin/true
 *   exec: createProcess+start+wait vs `crun exec` of /bin/true into a running container
 *   rss:  the service's VmRSS while a container runs
 * usage: runtime-bench SERVICE_BINARY ROOTFS [ROUNDS]
 * Last line: run_ratio=X exec_ratio=Y service_rss_kib=Z
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime-client.h"

#define ROUNDS_DEFAULT 30

static const char *service, *rootfs;
static char dir[64] = "/tmp/runtime-bench-XXXXXX";

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
        qsort(v, (size_t) n, sizeof(double), cmp_double);
        return v[n / 2];
}

static void die(const char *what) {
        fprintf(stderr, "runtime-bench: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

static int run_wait(char *const argv[]) {
        int status;
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                dup2(null, 1);
                execv(argv[0], argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid");
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_bundle(const char *bundle, const char *id, const char *args) {
        char path[320];
        FILE *f;

        mkdir(bundle, 0700);
        snprintf(path, sizeof(path), "%s/container.json", bundle);
        f = fopen(path, "we");
        if (!f)
                die(path);
        fprintf(f,
                "{\"id\":\"%s\",\"rootfs\":\"%s\",\"readOnlyRoot\":true,\"logging\":{\"driver\":\"none\"},"
                "\"process\":{\"args\":%s}}",
                id, rootfs, args);
        fclose(f);
}

static pid_t spawn_service(const char *id, const char *bundle, RuntimeClient **ret) {
        cxpc_connection *conn = NULL;
        char run[128];
        int sv[2];
        pid_t pid;

        snprintf(run, sizeof(run), "%s/run", dir);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                die("socketpair");
        pid = fork();
        if (pid == 0) {
                char fd[16];
                snprintf(fd, sizeof(fd), "%d", dup(sv[1]));
                execl(service, service, "--id", id, "--root", bundle, "--run-dir", run, "--listen-fd", fd,
                      (char *) NULL);
                _exit(127);
        }
        close(sv[1]);
        if (cxpc_connection_new_from_fd(sv[0], &conn) < 0 ||
            runtime_client_new_from_connection(conn, ret) < 0)
                die("connect");
        cxpc_connection_unref(conn);
        return pid;
}

/* One `crun run` of /bin/true, with the config.json the service would generate (made untimed). */
static double time_crun_run(int i, const char *state) {
        char bundle[256], id[64], from[320], to[320];
        RuntimeClient *c = NULL;
        pid_t p;

        snprintf(id, sizeof(id), "bench-crun-%d-%d", (int) getpid(), i);
        snprintf(bundle, sizeof(bundle), "%s/b-%s", dir, id);
        write_bundle(bundle, id, "[\"/bin/true\"]");
        p = spawn_service(id, bundle, &c);
        if (runtime_client_bootstrap(c, NULL, NULL, NULL) < 0)
                die("bootstrap");
        snprintf(from, sizeof(from), "%s/config.json", bundle);
        snprintf(to, sizeof(to), "%s/config.keep", bundle);
        if (link(from, to) < 0)
                die("link");
        runtime_client_stop(c, 0, NULL);
        runtime_client_shutdown(c);
        runtime_client_free(c);
        waitpid(p, NULL, 0);
        rename(to, from);

        char *args[] = {(char *) "/usr/bin/crun",
                        (char *) "--root",
                        (char *) state,
                        (char *) "run",
                        (char *) "--bundle",
                        bundle,
                        id,
                        NULL};
        double t0 = now_ms();
        if (run_wait(args) != 0)
                die("crun run");
        return now_ms() - t0;
}

/* The service: bootstrap + start + wait + shutdown of /bin/true. */
static double time_service_run(int i) {
        char bundle[256], id[64];
        RuntimeClient *client = NULL;
        int code = -1;
        pid_t svc;

        snprintf(id, sizeof(id), "bench-svc-%d-%d", (int) getpid(), i);
        snprintf(bundle, sizeof(bundle), "%s/b-%s", dir, id);
        write_bundle(bundle, id, "[\"/bin/true\"]");
        svc = spawn_service(id, bundle, &client);
        /* The service is launched ahead of time; make sure it is up before timing. */
        {
                cxpc_object *snap = NULL;
                if (runtime_client_state(client, &snap) < 0)
                        die("state");
                cxpc_object_unref(snap);
        }
        double t0 = now_ms();
        if (runtime_client_bootstrap(client, NULL, NULL, NULL) < 0 || runtime_client_start(client, id) < 0 ||
            runtime_client_wait(client, id, 0, &code, NULL) < 0 || code != 0 ||
            runtime_client_shutdown(client) < 0) {
                fprintf(stderr, "service run failed: %s\n", runtime_client_last_error(client)->message);
                exit(EXIT_FAILURE);
        }
        double t = now_ms() - t0;
        runtime_client_free(client);
        waitpid(svc, NULL, 0);
        return t;
}

static long rss_anon_kib = -1, pss_kib = -1;
static const char *linkage = "unknown";

static long rss_kib(pid_t pid) {
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &kib) == 1)
                        continue;
                else if (sscanf(line, "RssAnon: %ld", &rss_anon_kib) == 1)
                        break;
        fclose(f);
        /* How the service is linked (src/runtime/meson.build): whether it maps a shared libc. */
        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        f = fopen(path, "re");
        if (f) {
                linkage = "static";
                while (fgets(line, sizeof(line), f))
                        if (strstr(line, "/libc.so")) {
                                linkage = "shared libraries";
                                break;
                        }
                fclose(f);
        }
        /* Pss: shared pages divided among the processes that map them (for the report only). */
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int) pid);
        f = fopen(path, "re");
        if (f) {
                while (fgets(line, sizeof(line), f))
                        if (sscanf(line, "Pss: %ld", &pss_kib) == 1)
                                break;
                fclose(f);
        }
        return kib;
}

int main(int argc, char *argv[]) {
        int rounds = argc > 3 ? atoi(argv[3]) : ROUNDS_DEFAULT;
        double *crun_run, *svc_run, *crun_exec, *svc_exec;
        char bundle[256], state[128], id[64];
        cxpc_object *pc = NULL;
        RuntimeClient *client = NULL;
        pid_t svc;
        long rss;

        if (argc < 3 || rounds < 3) {
                fprintf(stderr, "usage: %s SERVICE_BINARY ROOTFS [ROUNDS>=3]\n", argv[0]);
                return EXIT_FAILURE;
        }
        service = argv[1];
        rootfs = realpath(argv[2], NULL);
        if (!rootfs)
                die(argv[2]);
        crun_run = calloc((size_t) rounds, sizeof(double));
        svc_run = calloc((size_t) rounds, sizeof(double));
        crun_exec = calloc((size_t) rounds, sizeof(double));
        svc_exec = calloc((size_t) rounds, sizeof(double));
        if (!mkdtemp(dir))
                die("mkdtemp");
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        /* crun needs the same private mount namespace the service makes for itself. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                die("mount namespace");
        (void) umount2("/sys/fs/cgroup/unified", MNT_DETACH);
        snprintf(state, sizeof(state), "%s/crun", dir);

        /* run: crun run of /bin/true and the service's bootstrap+start+wait+shutdown, alternating
         * round by round so that both see the same load on this shared machine. */
        for (int i = 0; i < rounds; i++) {
                crun_run[i] = time_crun_run(i, state);
                svc_run[i] = time_service_run(i);
        }

        /* exec: one running container, crun exec vs createProcess+start+wait. */
        snprintf(id, sizeof(id), "bench-exec-%d", (int) getpid());
        snprintf(bundle, sizeof(bundle), "%s/b-%s", dir, id);
        write_bundle(bundle, id, "[\"/bin/sleep\",\"1000\"]");
        svc = spawn_service(id, bundle, &client);
        if (runtime_client_bootstrap(client, NULL, NULL, NULL) < 0 || runtime_client_start(client, id) < 0)
                die("exec container");
        rss = rss_kib(svc);
        if (cxpc_object_from_json("{\"args\":[\"/bin/true\"]}", &pc) < 0)
                die("json");
        {
                char croot[256];
                snprintf(croot, sizeof(croot), "%s/run/runtime/%s.d/oci", dir, id);
                char *args[] = {(char *) "/usr/bin/crun",
                                (char *) "--root",
                                croot,
                                (char *) "exec",
                                id,
                                (char *) "/bin/true",
                                NULL};
                for (int i = 0; i < rounds; i++) {
                        char pid_name[32];
                        int code = -1;
                        double t0 = now_ms();
                        if (run_wait(args) != 0)
                                die("crun exec");
                        crun_exec[i] = now_ms() - t0;

                        snprintf(pid_name, sizeof(pid_name), "x%d", i);
                        t0 = now_ms();
                        if (runtime_client_create_process(client, pid_name, pc, NULL) < 0 ||
                            runtime_client_start(client, pid_name) < 0 ||
                            runtime_client_wait(client, pid_name, 0, &code, NULL) < 0 || code != 0)
                                die("service exec");
                        svc_exec[i] = now_ms() - t0;
                }
        }
        if (rss_kib(svc) > rss)
                rss = rss_kib(svc);
        cxpc_object_unref(pc);
        runtime_client_stop(client, 0, NULL);
        runtime_client_shutdown(client);
        runtime_client_free(client);
        waitpid(svc, NULL, 0);
        {
                char cmd[128];
                snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
                if (system(cmd) != 0)
                        fprintf(stderr, "cleanup of %s failed\n", dir);
        }

        double cr = median(crun_run, rounds), sr = median(svc_run, rounds), ce = median(crun_exec, rounds),
               se = median(svc_exec, rounds);
        printf("crun run          %7.2f ms\n", cr);
        printf("service run       %7.2f ms  (bootstrap+start+wait+shutdown)\n", sr);
        printf("crun exec         %7.2f ms\n", ce);
        printf("service exec      %7.2f ms  (createProcess+start+wait)\n", se);
        printf("service RSS       %7ld KiB (container running; anonymous %ld KiB, the rest file pages of "
               "the "
               "binary and its libraries; Pss %ld KiB; linked: %s)\n",
               rss, rss_anon_kib, pss_kib, linkage);
        printf("run_ratio=%.2f exec_ratio=%.2f service_rss_kib=%ld\n", sr / cr, se / ce, rss);
        return EXIT_SUCCESS;
}
