/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* copyIn/copyOut through the forked, chrooted worker, driven by sd-event; escape attempts. */
#include <archive.h>
#include <archive_entry.h>
#include <signal.h>
#include <sys/wait.h>

#include "io-test-util.h"
#include "io/copy.h"

static char T[] = "/tmp/test-copy-XXXXXX";
static char root[128], sentinel[128], host[128];
static int fds_before;

typedef struct Outcome {
        bool done;
        int error;
        char message[COPY_MESSAGE_MAX];
} Outcome;

static void on_done(CopyJob *job, int error, const char *message, void *userdata) {
        Outcome *o = userdata;

        o->done = true;
        o->error = error;
        snprintf(o->message, sizeof(o->message), "%s", message);
}

/* Runs one job to completion on a fresh loop and reaps the worker (as the service would). */
static int run_copy(CopyDirection dir, const char *path, uint32_t mode, bool parents, int tar_fd,
                    char *ret_message) {
        sd_event *e = NULL;
        CopyJob *job = NULL;
        CopyOptions o = {.root = root, .path = path, .file_mode = mode, .create_parents = parents};
        Outcome out = {};
        int status;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(copy_job_new(e, dir, &o, tar_fd, on_done, &out, &job), 0);
        close(tar_fd);
        while (!out.done)
                assert_true(sd_event_run(e, 10 * USEC_PER_SEC) > 0);
        assert_int_equal(waitpid(copy_job_get_pid(job), &status, 0), copy_job_get_pid(job));
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status) != 0, out.error < 0);
        copy_job_free(job);
        sd_event_unref(e);
        if (ret_message)
                strcpy(ret_message, out.message);
        return out.error;
}

/* A tar (in a temp file, rewound) of host path src named like the client makes it. */
static int tar_of(const char *src) {
        char p[512];
        int fd;

        snprintf(p, sizeof(p), "%s/tar-XXXXXX", T);
        fd = mkostemp(p, O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(p);
        assert_int_equal(copy_archive_path(src, fd, NULL), 0);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

/* A hand-made tar with one entry of the given type (regular file with content, or symlink). */
static int tar_with_entry(const char *name, const char *content, const char *symlink_target) {
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();
        char p[512];
        int fd;

        snprintf(p, sizeof(p), "%s/tar-XXXXXX", T);
        fd = mkostemp(p, O_CLOEXEC);
        assert_true(fd >= 0);
        unlink(p);
        archive_write_set_format_pax_restricted(a);
        assert_int_equal(archive_write_open_fd(a, fd), ARCHIVE_OK);
        archive_entry_set_pathname(e, name);
        if (symlink_target) {
                archive_entry_set_filetype(e, AE_IFLNK);
                archive_entry_set_symlink(e, symlink_target);
                archive_entry_set_perm(e, 0777);
        } else {
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_perm(e, 0644);
                archive_entry_set_size(e, (la_int64_t) strlen(content));
        }
        assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
        if (!symlink_target)
                assert_int_equal(archive_write_data(a, content, strlen(content)),
                                 (la_ssize_t) strlen(content));
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        archive_entry_free(e);
        assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
        return fd;
}

static int setup(void **state) {
        char p[512];

        strcpy(T, "/tmp/test-copy-XXXXXX");
        assert_non_null(mkdtemp(T));
        snprintf(root, sizeof(root), "%s/root", T);
        snprintf(sentinel, sizeof(sentinel), "%s/sentinel", T);
        snprintf(host, sizeof(host), "%s/host", T);
        assert_int_equal(mkdir(root, 0755), 0);
        assert_int_equal(mkdir(sentinel, 0755), 0);
        assert_int_equal(mkdir(host, 0755), 0);
        snprintf(p, sizeof(p), "%s/file.txt", host);
        write_file(p, "hello file\n");
        snprintf(p, sizeof(p), "%s/tree", host);
        assert_int_equal(mkdir(p, 0750), 0);
        snprintf(p, sizeof(p), "%s/tree/a", host);
        assert_int_equal(mkdir(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/tree/a/b.txt", host);
        write_file(p, "bee\n");
        snprintf(p, sizeof(p), "%s/tree/top.txt", host);
        write_file(p, "top\n");
        snprintf(p, sizeof(p), "%s/tree/link", host);
        assert_int_equal(symlink("a/b.txt", p), 0);
        fds_before = count_fds();
        return 0;
}

static int teardown(void **state) {
        /* Every test leaves the fd table as it found it. */
        assert_int_equal(count_fds(), fds_before);
        rm_rf(T);
        return 0;
}

static void check_nothing_outside(void) {
        char p[512];
        struct stat st;

        assert_true(dir_is_empty(sentinel));
        snprintf(p, sizeof(p), "%s/x", T);
        assert_int_equal(lstat(p, &st), -1);
        assert_int_equal(lstat("/x-escaped-by-test-copy", &st), -1);
        assert_int_equal(lstat("/tmp/x-escaped-by-test-copy", &st), -1);
}

static void test_copy_in_file(void **state) {
        char p[512], src[512];
        struct stat st;

        snprintf(src, sizeof(src), "%s/file.txt", host);
        /* New name: the single entry becomes destinationPath, with fileMode. */
        assert_int_equal(run_copy(COPY_IN, "/dest.txt", 0600, false, tar_of(src), NULL), 0);
        snprintf(p, sizeof(p), "%s/dest.txt", root);
        assert_string_equal(read_file(p), "hello file\n");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        /* Existing directory: lands inside it under its own name, mode from the stream. */
        assert_int_equal(run_copy(COPY_IN, "/", 0, false, tar_of(src), NULL), 0);
        snprintf(p, sizeof(p), "%s/file.txt", root);
        assert_string_equal(read_file(p), "hello file\n");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0644);
        check_nothing_outside();
}

static void test_copy_in_tree_create_parents(void **state) {
        char p[512], src[512], msg[COPY_MESSAGE_MAX];
        struct stat st;

        snprintf(src, sizeof(src), "%s/tree", host);
        /* Missing parent without createParents: ENOENT and a message. */
        assert_int_equal(run_copy(COPY_IN, "/opt/deep/tree", 0, false, tar_of(src), msg), -ENOENT);
        assert_non_null(strstr(msg, "/opt/deep"));
        assert_int_equal(run_copy(COPY_IN, "/opt/deep/tree", 0700, true, tar_of(src), NULL), 0);
        snprintf(p, sizeof(p), "%s/opt/deep/tree/a/b.txt", root);
        assert_string_equal(read_file(p), "bee\n");
        snprintf(p, sizeof(p), "%s/opt/deep/tree/top.txt", root);
        assert_string_equal(read_file(p), "top\n");
        snprintf(p, sizeof(p), "%s/opt/deep/tree", root);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0700); /* fileMode applies to the destination entry */
        snprintf(p, sizeof(p), "%s/opt/deep", root);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0755);
        snprintf(p, sizeof(p), "%s/opt/deep/tree/link", root);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        check_nothing_outside();
}

static void test_copy_out_file_and_tree(void **state) {
        char p[512], out[256];
        int pfd[2];

        snprintf(p, sizeof(p), "%s/etc", root);
        assert_int_equal(mkdir(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/etc/conf", root);
        assert_int_equal(mkdir(p, 0755), 0);
        snprintf(p, sizeof(p), "%s/etc/conf/x.conf", root);
        write_file(p, "key=value\n");
        snprintf(p, sizeof(p), "%s/etc/hostname", root);
        write_file(p, "box\n");

        /* Tree out through a real pipe; the host side extracts it under a new name. */
        snprintf(out, sizeof(out), "%s/out-tree", T);
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        assert_int_equal(run_copy(COPY_OUT, "/etc/conf", 0, false, pfd[1], NULL), 0);
        assert_int_equal(copy_extract_stream(pfd[0], out, 0, false, NULL), 0);
        close(pfd[0]);
        snprintf(p, sizeof(p), "%s/x.conf", out);
        assert_string_equal(read_file(p), "key=value\n");

        /* Single file into an existing host dir. */
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        assert_int_equal(run_copy(COPY_OUT, "etc/hostname", 0, false, pfd[1], NULL), 0);
        assert_int_equal(copy_extract_stream(pfd[0], T, 0, false, NULL), 0);
        close(pfd[0]);
        snprintf(p, sizeof(p), "%s/hostname", T);
        assert_string_equal(read_file(p), "box\n");
        unlink(p);

        /* Missing source: an error with the path, the stream just ends. */
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        assert_int_equal(run_copy(COPY_OUT, "/nope", 0, false, pfd[1], NULL), -ENOENT);
        close(pfd[0]);

        /* Escape attempt through sourcePath: /../.. stays at the root, so this is root/etc. */
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        snprintf(out, sizeof(out), "%s/out-root-etc", T);
        assert_int_equal(run_copy(COPY_OUT, "/../../etc", 0, false, pfd[1], NULL), 0);
        assert_int_equal(copy_extract_stream(pfd[0], out, 0, false, NULL), 0);
        close(pfd[0]);
        snprintf(p, sizeof(p), "%s/hostname", out);
        assert_string_equal(read_file(p), "box\n");
        snprintf(p, sizeof(p), "%s/passwd", out);
        assert_int_equal(access(p, F_OK), -1); /* the host's /etc/passwd did not leak out */
}

static void test_copy_in_escapes(void **state) {
        char p[512], msg[COPY_MESSAGE_MAX];
        struct stat st;

        /* `..` and absolute entry names are refused. */
        assert_int_equal(run_copy(COPY_IN, "/", 0, false, tar_with_entry("../x", "bad", NULL), msg), -EPERM);
        assert_non_null(strstr(msg, "../x"));
        assert_int_equal(run_copy(COPY_IN, "/", 0, false, tar_with_entry("a/../../x", "bad", NULL), NULL),
                         -EPERM);
        assert_int_equal(run_copy(COPY_IN, "/", 0, false,
                                  tar_with_entry("/x-escaped-by-test-copy", "bad", NULL), NULL),
                         -EPERM);
        check_nothing_outside();

        /* Symlinks in the root pointing out of it. */
        snprintf(p, sizeof(p), "%s/evil", root);
        assert_int_equal(symlink("/", p), 0);
        snprintf(p, sizeof(p), "%s/evil2", root);
        assert_int_equal(symlink("../../sentinel", p), 0);
        /* An entry written through the symlink: refused. */
        assert_true(run_copy(COPY_IN, "/", 0, false, tar_with_entry("evil/x", "bad", NULL), NULL) < 0);
        assert_true(run_copy(COPY_IN, "/", 0, false, tar_with_entry("evil2/x", "bad", NULL), NULL) < 0);
        check_nothing_outside();
        /* destinationPath through the symlinks or with `..`: resolved inside the root. */
        assert_int_equal(run_copy(COPY_IN, "/evil/x", 0, false, tar_with_entry("f", "in1", NULL), NULL), 0);
        snprintf(p, sizeof(p), "%s/x", root);
        assert_string_equal(read_file(p), "in1");
        snprintf(p, sizeof(p), "%s/sentinel", root);
        assert_int_equal(mkdir(p, 0755), 0);
        assert_int_equal(run_copy(COPY_IN, "/evil2/y", 0, true, tar_with_entry("f", "in2", NULL), NULL), 0);
        snprintf(p, sizeof(p), "%s/sentinel/y", root); /* ../../sentinel from the root is /sentinel */
        assert_string_equal(read_file(p), "in2");
        assert_int_equal(run_copy(COPY_IN, "/../../x", 0, false, tar_with_entry("f", "in3", NULL), NULL), 0);
        snprintf(p, sizeof(p), "%s/x", root);
        assert_string_equal(read_file(p), "in3");
        check_nothing_outside();

        /* A symlink entry pointing out, then a file through it in the same stream. */
        assert_int_equal(run_copy(COPY_IN, "/", 0, false, tar_with_entry("out", NULL, "../../.."), NULL), 0);
        assert_true(run_copy(COPY_IN, "/", 0, false,
                             tar_with_entry("out/tmp/x-escaped-by-test-copy", "bad", NULL), NULL) < 0);
        check_nothing_outside();
        snprintf(p, sizeof(p), "%s/out", root);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
}

static void test_copy_in_bad_stream(void **state) {
        int pfd[2];

        /* Garbage is an error, not a crash or a hang; a dying writer is the same. */
        assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
        assert_int_equal(write(pfd[1], "this is not a tar archive at all", 32), 32);
        close(pfd[1]);
        assert_true(run_copy(COPY_IN, "/junk", 0, false, pfd[0], NULL) < 0);
        assert_true(dir_is_empty(sentinel));
}

static void test_copy_args(void **state) {
        CopyOptions o = {.root = root, .path = "/x"};
        pid_t pid;
        int fd;

        assert_int_equal(copy_start(COPY_IN, NULL, 0, &pid, &fd), -EINVAL);
        assert_int_equal(copy_start(COPY_IN, &o, -1, &pid, &fd), -EBADF);
        o.file_mode = 010000;
        assert_int_equal(copy_start(COPY_IN, &o, 0, &pid, &fd), -EINVAL);
        o.file_mode = 0;
        o.path = "";
        assert_int_equal(copy_start(COPY_IN, &o, 0, &pid, &fd), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_copy_in_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_in_tree_create_parents, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_out_file_and_tree, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_in_escapes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_in_bad_stream, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_args, setup, teardown),
        };

        (void) signal(SIGPIPE, SIG_IGN);
        if (geteuid() != 0) {
                fprintf(stderr, "needs root (chroot)\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
