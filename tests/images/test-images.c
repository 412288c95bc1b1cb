/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Image store tests with archives crafted here: OCI and docker archives, hostile layers, wrong and
 * missing digests, truncated input, whiteouts, references, prune, overlay root filesystems. Each test
 * works in its own temporary directory with a sentinel directory next to the store, and checks that
 * nothing was written to the sentinel and nothing partial remains in the store. */
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/wait.h>

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "image-store.h"
#include "macro.h"

typedef struct Buf {
        char *data;
        size_t size;
} Buf;

typedef struct Env {
        char dir[64];
        char root[128];
        char sentinel[128];
        ImageStore *s;
} Env;

/* ---- crafting archives ---- */

typedef struct Member {
        const char *path;
        mode_t type;      /* AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, or 0 for a hard link */
        const char *data; /* file content, symlink or hard link target */
        unsigned uid;
        dev_t rdev;
        mode_t mode; /* permission bits; 0: 0755 for directories, 0644 otherwise */
} Member;

static la_ssize_t buf_write_cb(struct archive *a, void *ud, const void *p, size_t n) {
        Buf *b = ud;
        b->data = realloc(b->data, b->size + n);
        assert_non_null(b->data);
        memcpy(b->data + b->size, p, n);
        b->size += n;
        return (la_ssize_t) n;
}

static Buf make_tar(const Member *m, size_t n, bool gzip) {
        Buf b = {};
        struct archive *a = archive_write_new();

        archive_write_set_format_pax_restricted(a);
        if (gzip)
                archive_write_add_filter_gzip(a);
        archive_write_set_bytes_in_last_block(a, 1);
        assert_int_equal(archive_write_open(a, &b, NULL, buf_write_cb, NULL), ARCHIVE_OK);
        for (size_t i = 0; i < n; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, m[i].path);
                archive_entry_set_uid(e, m[i].uid);
                archive_entry_set_gid(e, m[i].uid);
                if (m[i].type == 0) {
                        archive_entry_set_filetype(e, AE_IFREG);
                        archive_entry_set_hardlink(e, m[i].data);
                        archive_entry_set_size(e, 0);
                } else {
                        archive_entry_set_filetype(e, m[i].type);
                        archive_entry_set_perm(e, m[i].mode               ? m[i].mode
                                                  : m[i].type == AE_IFDIR ? 0755
                                                                          : 0644);
                        if (m[i].type == AE_IFLNK)
                                archive_entry_set_symlink(e, m[i].data);
                        if (m[i].type == AE_IFCHR)
                                archive_entry_set_rdev(e, m[i].rdev);
                        archive_entry_set_size(e,
                                               m[i].type == AE_IFREG ? (la_int64_t) strlen(m[i].data) : 0);
                }
                assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
                if (m[i].type == AE_IFREG)
                        archive_write_data(a, m[i].data, strlen(m[i].data));
                archive_entry_free(e);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        return b;
}

static void sha256_hex(const void *p, size_t n, char out[72]) {
        unsigned char md[32];
        unsigned len = 0;

        EVP_Digest(p, n, md, &len, EVP_sha256(), NULL);
        char *o = stpcpy(out, "sha256:");
        for (unsigned i = 0; i < 32; i++)
                o += sprintf(o, "%02x", md[i]);
}

typedef struct Blob {
        char path[128]; /* name in the outer archive */
        Buf b;
} Blob;

typedef struct Layer {
        const Member *members;
        size_t n;
        bool gzip;
} Layer;

enum {
        CORRUPT_NONE,
        CORRUPT_WRONG_DIGEST, /* a layer blob stored under a name that is not its digest */
        CORRUPT_MISSING_BLOB, /* the layer blob is left out */
        CORRUPT_DIFF_ID,      /* the config lists a wrong diff ID */
};

static Blob *add_blob(Blob *blobs, size_t *n, Buf b, char digest[72]) {
        sha256_hex(b.data, b.size, digest);
        snprintf(blobs[*n].path, sizeof(blobs[*n].path), "blobs/sha256/%s", digest + 7);
        blobs[*n].b = b;
        return &blobs[(*n)++];
}

static Buf buf_str(const char *s) {
        Buf b = {.data = strdup(s), .size = strlen(s)};
        return b;
}

/* Blobs make_oci_archive() adds to the archive without referring to them (then frees). */
static Buf extra_blobs[4];
static size_t n_extra_blobs;

/* An OCI image archive with the given layers, written to path. */
static void make_oci_archive(const char *path, const Layer *layers, size_t n_layers, const char *name,
                             int corrupt, const char *cmd_json) {
        Blob blobs[16] = {};
        size_t nb = 0;

        /* First in the archive: they are staged (and unpacked ahead of time) before any manifest. */
        for (size_t i = 0; i < n_extra_blobs; i++) {
                char xd[72];
                add_blob(blobs, &nb, extra_blobs[i], xd);
        }
        n_extra_blobs = 0;
        json_t *diff_ids = json_array(), *ldesc = json_array();
        char d[72], cfgd[72], md[72];

        for (size_t i = 0; i < n_layers; i++) {
                Buf raw = make_tar(layers[i].members, layers[i].n, false);
                Buf z = layers[i].gzip ? make_tar(layers[i].members, layers[i].n, true) : raw;
                sha256_hex(raw.data, raw.size, d);
                json_array_append_new(
                        diff_ids,
                        json_string(
                                corrupt == CORRUPT_DIFF_ID
                                        ? "sha256:"
                                          "0000000000000000000000000000000000000000000000000000000000000000"
                                        : d));
                Blob *b = add_blob(blobs, &nb, z, d);
                json_array_append_new(
                        ldesc, json_pack("{s:s, s:s, s:I}", "mediaType",
                                         layers[i].gzip ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                                        : "application/vnd.oci.image.layer.v1.tar",
                                         "digest", d, "size", (json_int_t) z.size));
                if (layers[i].gzip)
                        free(raw.data);
                if (corrupt == CORRUPT_WRONG_DIGEST)
                        b->path[strlen(b->path) - 1] = b->path[strlen(b->path) - 1] == '0' ? '1' : '0';
                if (corrupt == CORRUPT_MISSING_BLOB) {
                        free(b->b.data);
                        nb--;
                }
        }
        json_t *cfg = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:o}}", "created", "2024-01-01T00:00:00Z",
                                "architecture", "amd64", "os", "linux", "config",
                                json_loads(cmd_json ?: "{}", 0, NULL), "rootfs", "type", "layers",
                                "diff_ids", diff_ids);
        char *cfgs = json_dumps(cfg, JSON_COMPACT);
        add_blob(blobs, &nb, buf_str(cfgs), cfgd);
        json_t *man = json_pack("{s:i, s:s, s:{s:s, s:s, s:I}, s:o}", "schemaVersion", 2, "mediaType",
                                "application/vnd.oci.image.manifest.v1+json", "config", "mediaType",
                                "application/vnd.oci.image.config.v1+json", "digest", cfgd, "size",
                                (json_int_t) strlen(cfgs), "layers", ldesc);
        char *mans = json_dumps(man, JSON_COMPACT);
        add_blob(blobs, &nb, buf_str(mans), md);
        json_t *idx = json_pack("{s:i, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "manifests",
                                "mediaType", "application/vnd.oci.image.manifest.v1+json", "digest", md,
                                "size", (json_int_t) strlen(mans), "annotations",
                                "org.opencontainers.image.ref.name", name);
        char *idxs = json_dumps(idx, JSON_COMPACT);

        Member outer[20];
        size_t no = 0;
        outer[no++] = (Member){"oci-layout", AE_IFREG, "{\"imageLayoutVersion\":\"1.0.0\"}"};
        outer[no++] = (Member){"index.json", AE_IFREG, idxs};
        Buf out = make_tar(outer, no, false);
        /* Blobs are binary: append them with their own writer. */
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        for (size_t i = 0; i < no; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, outer[i].path);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_perm(e, 0644);
                archive_entry_set_size(e, (la_int64_t) strlen(outer[i].data));
                archive_write_header(a, e);
                archive_write_data(a, outer[i].data, strlen(outer[i].data));
                archive_entry_free(e);
        }
        for (size_t i = 0; i < nb; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, blobs[i].path);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_perm(e, 0644);
                archive_entry_set_size(e, (la_int64_t) blobs[i].b.size);
                archive_write_header(a, e);
                archive_write_data(a, blobs[i].b.data, blobs[i].b.size);
                archive_entry_free(e);
                free(blobs[i].b.data);
        }
        assert_int_equal(archive_write_close(a), ARCHIVE_OK);
        archive_write_free(a);
        free(out.data);
        free(cfgs);
        free(mans);
        free(idxs);
        json_decref(cfg);
        json_decref(man);
        json_decref(idx);
}

/* ---- environment ---- */

static int env_setup(void **state) {
        Env *e = calloc(1, sizeof(Env));

        snprintf(e->dir, sizeof(e->dir), "/tmp/test-images-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        snprintf(e->root, sizeof(e->root), "%s/store", e->dir);
        snprintf(e->sentinel, sizeof(e->sentinel), "%s/sentinel", e->dir);
        assert_int_equal(mkdir(e->sentinel, 0755), 0);
        assert_int_equal(image_store_open(e->root, &e->s), 0);
        *state = e;
        return 0;
}

static int env_teardown(void **state) {
        Env *e = *state;
        char cmd[256];

        image_store_free(e->s);
        /* Only ever our own mkdtemp directory; mounts below it were unmounted by the tests. */
        snprintf(cmd, sizeof(cmd), "rm -rf --one-file-system '%s'", e->dir);
        assert_int_equal(system(cmd), 0);
        free(e);
        return 0;
}

static size_t count_entries(const char *dir) {
        char cmd[512];
        FILE *f;
        size_t n = 0;
        int c;

        snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 2>/dev/null", dir);
        f = popen(cmd, "r");
        assert_non_null(f);
        while ((c = fgetc(f)) != EOF)
                if (c == '\n')
                        n++;
        pclose(f);
        return n;
}

static size_t count_images(Env *e) {
        ImageInfo *infos = NULL;
        size_t n = 0;

        assert_int_equal(image_store_list(e->s, &infos, &n), 0);
        image_info_free_many(infos, n);
        return n;
}

/* Nothing of a failed load may remain, and nothing may have escaped. */
static void assert_clean(Env *e) {
        char p[256];

        assert_int_equal(count_images(e), 0);
        assert_int_equal(count_entries(e->sentinel), 0);
        static const char *const dirs[] = {"blobs/sha256", "layers", "containers", "tmp"};
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(p, sizeof(p), "%s/%s", e->root, dirs[i]);
                assert_int_equal(count_entries(p), 0);
        }
}

static int load_file(Env *e, const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC), r;

        assert_true(fd >= 0);
        r = image_store_load(e->s, fd, NULL, NULL);
        close(fd);
        return r;
}

static int load_layer(Env *e, const Member *m, size_t n, int corrupt) {
        char path[256];
        Layer l = {m, n, true};

        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, &l, 1, "test:latest", corrupt, NULL);
        int r = load_file(e, path);
        unlink(path);
        return r;
}

/* ---- tests ---- */

static void test_hostile_absolute(void **state) {
        Env *e = *state;
        char abs[256];

        snprintf(abs, sizeof(abs), "%s/pwned", e->sentinel);
        Member m[] = {{"ok", AE_IFREG, "x"}, {abs, AE_IFREG, "evil"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_NONE), -EPERM);
        assert_non_null(strstr(image_store_last_error(e->s), "absolute"));
        assert_clean(e);
}

static void test_hostile_dotdot(void **state) {
        Env *e = *state;
        /* The layer is extracted 4 levels below the test dir (store/tmp/load-XXX/layers/.in-0). */
        Member m[] = {{"a/../../../../../sentinel/pwned", AE_IFREG, "evil"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_NONE), -EPERM);
        assert_clean(e);
}

static void test_hostile_symlink_parent(void **state) {
        Env *e = *state;
        Member m[] = {{"link", AE_IFLNK, e->sentinel}, {"link/pwned", AE_IFREG, "evil"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_NONE), -EPERM);
        assert_non_null(strstr(image_store_last_error(e->s), "symlink"));
        assert_clean(e);
}

static void test_hostile_symlink_parent_relative(void **state) {
        Env *e = *state;
        Member m[] = {{"d", AE_IFDIR, ""},
                      {"d/up", AE_IFLNK, "../../../../../../sentinel"},
                      {"d/up/sub/pwned", AE_IFREG, "evil"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_NONE), -EPERM);
        assert_clean(e);
}

static void test_hostile_hardlink(void **state) {
        Env *e = *state;
        char target[256];

        /* A file outside that a hard link would expose (and let a container write). */
        snprintf(target, sizeof(target), "%s/secret", e->sentinel);
        int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);
        Member m1[] = {{"h", 0, target}};
        assert_int_equal(load_layer(e, m1, ELEMENTSOF(m1), CORRUPT_NONE), -EPERM);
        Member m2[] = {{"h", 0, "../../../../../sentinel/secret"}};
        assert_int_equal(load_layer(e, m2, ELEMENTSOF(m2), CORRUPT_NONE), -EPERM);
        Member m3[] = {{"link", AE_IFLNK, e->sentinel}, {"h", 0, "link/secret"}};
        assert_int_equal(load_layer(e, m3, ELEMENTSOF(m3), CORRUPT_NONE), -EPERM);
        struct stat st;
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal(st.st_nlink, 1);
        assert_int_equal(unlink(target), 0);
        assert_clean(e);
}

static void test_wrong_digest(void **state) {
        Env *e = *state;
        Member m[] = {{"f", AE_IFREG, "data"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_WRONG_DIGEST), -EBADMSG);
        assert_non_null(strstr(image_store_last_error(e->s), "wrong digest"));
        assert_clean(e);
}

static void test_missing_blob(void **state) {
        Env *e = *state;
        Member m[] = {{"f", AE_IFREG, "data"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_MISSING_BLOB), -ENOENT);
        assert_non_null(strstr(image_store_last_error(e->s), "missing blob"));
        assert_clean(e);
}

static void test_wrong_diff_id(void **state) {
        Env *e = *state;
        Member m[] = {{"f", AE_IFREG, "data"}};
        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_DIFF_ID), -EBADMSG);
        assert_clean(e);
}

static void test_truncated(void **state) {
        Env *e = *state;
        char path[256];
        struct stat st;
        Member big[64];
        char *content = malloc(64 * 1024);
        Layer l = {big, ELEMENTSOF(big), false};

        /* Incompressible-ish content so the cut falls inside a layer blob. */
        for (size_t i = 0; i < 64 * 1024 - 1; i++)
                content[i] = (char) ('a' + (i * 7919 + i / 13) % 26);
        content[64 * 1024 - 1] = '\0';
        char names[64][16];
        for (size_t i = 0; i < ELEMENTSOF(big); i++) {
                snprintf(names[i], sizeof(names[i]), "f%zu", i);
                big[i] = (Member){names[i], AE_IFREG, content};
        }
        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, &l, 1, "big:latest", CORRUPT_NONE, NULL);
        free(content);
        assert_int_equal(stat(path, &st), 0);
        /* Feed only half of it through a pipe, like an interrupted `load < file`. */
        int p[2];
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int fd = open(path, O_RDONLY);
                static char buf[65536];
                off_t left = st.st_size / 2;
                while (left > 0) {
                        ssize_t n = read(fd, buf, (size_t) MIN(left, (off_t) sizeof(buf)));
                        if (n <= 0 || write(p[1], buf, (size_t) n) != n)
                                _exit(1);
                        left -= n;
                }
                _exit(0);
        }
        close(p[1]);
        assert_true(image_store_load(e->s, p[0], NULL, NULL) < 0);
        close(p[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_clean(e);
        /* The whole file loads. */
        assert_int_equal(load_file(e, path), 1);
        assert_int_equal(count_images(e), 1);
        unlink(path);
}

static void test_whiteouts_devices_owner(void **state) {
        Env *e = *state;
        Member m[] = {
                {"dir", AE_IFDIR, ""},
                {"dir/.wh..wh..opq", AE_IFREG, ""},
                {".wh.gone", AE_IFREG, ""},
                {"null", AE_IFCHR, "", 0, makedev(1, 3)},
                {"owned", AE_IFREG, "x", 1234},
                {"hard", 0, "owned"},
                {"abs-link", AE_IFLNK, "/etc/passwd"},
        };
        char p[512], v[8] = {};
        struct stat st;
        json_t *j = NULL;

        assert_int_equal(load_layer(e, m, ELEMENTSOF(m), CORRUPT_NONE), 1);
        assert_int_equal(image_store_inspect(e->s, "test", &j), 0);
        const char *diff = json_string_value(json_array_get(json_object_get(j, "Layers"), 0));
        assert_non_null(diff);
        snprintf(p, sizeof(p), "%s/layers/%s/gone", e->root, diff + 7);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(0, 0));
        snprintf(p, sizeof(p), "%s/layers/%s/dir", e->root, diff + 7);
        assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v) - 1), 1);
        assert_string_equal(v, "y");
        snprintf(p, sizeof(p), "%s/layers/%s/null", e->root, diff + 7);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISCHR(st.st_mode));
        assert_int_equal(st.st_rdev, makedev(1, 3));
        snprintf(p, sizeof(p), "%s/layers/%s/owned", e->root, diff + 7);
        assert_int_equal(lstat(p, &st), 0);
        assert_int_equal(st.st_uid, 1234);
        assert_int_equal(st.st_nlink, 2);
        snprintf(p, sizeof(p), "%s/layers/%s/abs-link", e->root, diff + 7);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        json_decref(j);
}

static void test_config_and_merge(void **state) {
        Env *e = *state;
        char path[256];
        Member m[] = {{"f", AE_IFREG, "x"}};
        Layer l = {m, 1, false};
        ImageConfig *c = NULL, *merged = NULL;
        char **argv = NULL;

        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, &l, 1, "cfg:1", CORRUPT_NONE,
                         "{\"Entrypoint\":[\"/bin/ep\"],\"Cmd\":[\"a\",\"b\"],\"Env\":[\"A=1\",\"B=2\"],"
                         "\"WorkingDir\":\"/w\",\"User\":\"nobody\",\"StopSignal\":\"SIGQUIT\","
                         "\"ExposedPorts\":{\"80/tcp\":{}},\"Labels\":{\"k\":\"v\"}}");
        assert_int_equal(load_file(e, path), 1);
        assert_int_equal(image_store_get_config(e->s, "cfg:1", &c), 0);
        assert_string_equal(c->entrypoint[0], "/bin/ep");
        assert_string_equal(c->cmd[1], "b");
        assert_string_equal(c->user, "nobody");
        assert_string_equal(c->stop_signal, "SIGQUIT");
        assert_string_equal(c->exposed_ports[0], "80/tcp");
        assert_string_equal(c->labels[0], "k=v");

        /* No flags: entrypoint + cmd. */
        assert_int_equal(image_config_merge(c, NULL, &merged, &argv), 0);
        assert_string_equal(argv[0], "/bin/ep");
        assert_string_equal(argv[2], "b");
        assert_null(argv[3]);
        image_strv_free(argv);
        image_config_free(merged);

        /* Arguments replace Cmd; -e overrides, appends, removes; -w, -u, --stop-signal override. */
        char x[] = "x", b3[] = "B=3", c4[] = "C=4", a[] = "A";
        char *args[] = {x, NULL}, *env[] = {b3, c4, a, NULL};
        ImageOverrides o = {
                .args = args, .env = env, .working_dir = "/tmp", .user = "0:0", .stop_signal = "USR1"};
        assert_int_equal(image_config_merge(c, &o, &merged, &argv), 0);
        assert_string_equal(argv[0], "/bin/ep");
        assert_string_equal(argv[1], "x");
        assert_null(argv[2]);
        assert_string_equal(merged->env[0], "B=3");
        assert_string_equal(merged->env[1], "C=4");
        assert_null(merged->env[2]);
        assert_string_equal(merged->working_dir, "/tmp");
        assert_string_equal(merged->user, "0:0");
        assert_string_equal(merged->stop_signal, "USR1");
        image_strv_free(argv);
        image_config_free(merged);

        /* --entrypoint clears the image's Cmd. */
        ImageOverrides o2 = {.entrypoint = "/bin/sh"};
        assert_int_equal(image_config_merge(c, &o2, NULL, &argv), 0);
        assert_string_equal(argv[0], "/bin/sh");
        assert_null(argv[1]);
        image_strv_free(argv);
        /* --entrypoint "" and no args: nothing to run. */
        ImageOverrides o3 = {.entrypoint = ""};
        assert_int_equal(image_config_merge(c, &o3, NULL, &argv), -ENOEXEC);
        image_config_free(c);
        unlink(path);
}

static void test_refs_rm_prune(void **state) {
        Env *e = *state;
        char path[256], p[512];
        Member m1[] = {{"one", AE_IFREG, "1"}}, m2[] = {{"two", AE_IFREG, "2"}};
        Layer l1 = {m1, 1, true}, l2 = {m2, 1, false};
        uint64_t freed = 0;
        struct stat st;

        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, &l1, 1, "a:1", CORRUPT_NONE, NULL);
        assert_int_equal(load_file(e, path), 1);
        make_oci_archive(path, &l2, 1, "b:1", CORRUPT_NONE, NULL);
        assert_int_equal(load_file(e, path), 1);
        unlink(path);
        assert_int_equal(count_images(e), 2);

        assert_int_equal(image_store_tag(e->s, "a:1", "a:2"), 0);
        assert_int_equal(image_store_ref_container(e->s, "a:1", "c1"), 0);
        assert_int_equal(image_store_ref_container(e->s, "a:1", "c1"), 0);
        assert_int_equal(image_store_ref_container(e->s, "b:1", "c1"), -EEXIST);
        /* Untagging one of two names works even while in use; removing the image does not. */
        assert_int_equal(image_store_remove(e->s, "a:2", 0), 0);
        assert_int_equal(image_store_remove(e->s, "a:1", 0), -EBUSY);
        assert_int_equal(image_store_resolve(e->s, "a:1", NULL), 0);

        /* prune -a removes only unused images and frees their blobs and layers. */
        assert_int_equal(image_store_prune(e->s, IMAGE_PRUNE_ALL, &freed), 1);
        assert_true(freed > 0);
        assert_int_equal(image_store_resolve(e->s, "b:1", NULL), -ENOENT);
        assert_int_equal(count_images(e), 1);

        /* Forced removal: the container's layers survive gc; unref then frees them. */
        assert_int_equal(image_store_remove(e->s, "a:1", IMAGE_REMOVE_FORCE), 0);
        assert_int_equal(count_images(e), 0);
        snprintf(p, sizeof(p), "%s/layers", e->root);
        assert_int_equal(count_entries(p), 2); /* the layer dir and its file */
        assert_int_equal(image_store_gc(e->s, NULL), 0);
        assert_int_equal(count_entries(p), 2);
        assert_int_equal(image_store_unref_container(e->s, "c1"), 0);
        assert_int_equal(image_store_gc(e->s, &freed), 0);
        assert_true(freed > 0);
        assert_int_equal(count_entries(p), 0);
        snprintf(p, sizeof(p), "%s/blobs/sha256", e->root);
        assert_int_equal(count_entries(p), 0);
        snprintf(p, sizeof(p), "%s/containers/c1", e->root);
        assert_int_equal(stat(p, &st), -1);
}

static void test_docker_archive(void **state) {
        Env *e = *state;
        char path[256];
        Member m[] = {{"hello", AE_IFREG, "docker"}};
        Buf layer = make_tar(m, 1, false);
        char ld[72], cd[72];

        sha256_hex(layer.data, layer.size, ld);
        char *cfg;
        assert_true(
                asprintf(&cfg,
                         "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/hello\"]},"
                         "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                         ld) > 0);
        sha256_hex(cfg, strlen(cfg), cd);
        char cfgname[80], man[512];
        snprintf(cfgname, sizeof(cfgname), "%s.json", cd + 7);
        snprintf(man, sizeof(man),
                 "[{\"Config\":\"%s\",\"RepoTags\":[\"docker.io/library/dk:v1\"],"
                 "\"Layers\":[\"abc/layer.tar\"]}]",
                 cfgname);

        snprintf(path, sizeof(path), "%s/docker.tar", e->dir);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
        struct {
                const char *name;
                const char *data;
                size_t size;
                mode_t type;
        } mem[] = {
                {"manifest.json", man, strlen(man), AE_IFREG},
                {cfgname, cfg, strlen(cfg), AE_IFREG},
                {"layers/real.tar", layer.data, layer.size, AE_IFREG},
                {"abc/layer.tar", "../layers/real.tar", 0, AE_IFLNK},
        };
        for (size_t i = 0; i < ELEMENTSOF(mem); i++) {
                struct archive_entry *en = archive_entry_new();
                archive_entry_set_pathname(en, mem[i].name);
                archive_entry_set_filetype(en, mem[i].type);
                archive_entry_set_perm(en, 0644);
                if (mem[i].type == AE_IFLNK)
                        archive_entry_set_symlink(en, mem[i].data);
                archive_entry_set_size(en, (la_int64_t) mem[i].size);
                archive_write_header(a, en);
                if (mem[i].size)
                        archive_write_data(a, mem[i].data, mem[i].size);
                archive_entry_free(en);
        }
        archive_write_close(a);
        archive_write_free(a);
        free(layer.data);
        free(cfg);

        assert_int_equal(load_file(e, path), 1);
        ImageConfig *c = NULL;
        assert_int_equal(image_store_get_config(e->s, "dk:v1", &c), 0);
        assert_string_equal(c->cmd[0], "/hello");
        image_config_free(c);
        /* Save, then load the saved OCI archive into a second store: same manifest digest. */
        char saved[256], root2[256];
        char *d1 = NULL, *d2 = NULL;
        snprintf(saved, sizeof(saved), "%s/saved.tar", e->dir);
        int fd = open(saved, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        char dk[] = "dk:v1";
        char *refs[] = {dk, NULL};
        assert_int_equal(image_store_save(e->s, refs, fd), 0);
        close(fd);
        snprintf(root2, sizeof(root2), "%s/store2", e->dir);
        ImageStore *s2 = NULL;
        assert_int_equal(image_store_open(root2, &s2), 0);
        fd = open(saved, O_RDONLY | O_CLOEXEC);
        assert_int_equal(image_store_load(s2, fd, NULL, NULL), 1);
        close(fd);
        assert_int_equal(image_store_resolve(e->s, "dk:v1", &d1), 0);
        assert_int_equal(image_store_resolve(s2, "docker.io/library/dk:v1", &d2), 0);
        assert_string_equal(d1, d2);
        free(d1);
        free(d2);
        image_store_free(s2);
}

/* The super block options of the mount at target, from /proc/self/mountinfo ("" if none). */
static void mount_super_options(const char *target, char *buf, size_t size) {
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[4096];

        buf[0] = '\0';
        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                char mnt[PATH_MAX], super[1024];
                const char *dash = strstr(line, " - ");
                /* id parent major:minor root mountpoint ... - fstype source super-options */
                if (!dash || sscanf(line, "%*d %*d %*s %*s %4095s", mnt) != 1 || !streq(mnt, target) ||
                    sscanf(dash + 3, "%*s %*s %1023s", super) != 1)
                        continue;
                snprintf(buf, size, ",%s,", super);
        }
        fclose(f);
}

static void test_overlay_independent_uppers(void **state) {
        Env *e = *state;
        char path[256], t1[256], t2[256], t3[256], p[512], opts[2048];
        Member m1[] = {{"base", AE_IFREG, "base"}, {"shadowed", AE_IFREG, "old"}};
        Member m2[] = {{".wh.shadowed", AE_IFREG, ""}, {"top", AE_IFREG, "top"}};
        Layer l[] = {{m1, 2, true}, {m2, 2, false}};
        struct stat st;

        if (geteuid() != 0) {
                skip();
                return;
        }
        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, l, 2, "ov:1", CORRUPT_NONE, NULL);
        assert_int_equal(load_file(e, path), 1);
        unlink(path);
        snprintf(t1, sizeof(t1), "%s/t1", e->dir);
        snprintf(t2, sizeof(t2), "%s/t2", e->dir);
        mkdir(t1, 0755);
        mkdir(t2, 0755);
        assert_int_equal(image_store_mount_rootfs(e->s, "ov:1", "c1", t1, 0), 0);
        assert_int_equal(image_store_mount_rootfs(e->s, "ov:1", "c2", t2, IMAGE_MOUNT_READ_ONLY), 0);
        /* A volatile upper layer ("fsync=volatile" since Linux 6.5, "volatile" before); the others
         * are synced as usual. */
        snprintf(t3, sizeof(t3), "%s/t3", e->dir);
        mkdir(t3, 0755);
        assert_int_equal(image_store_mount_rootfs(e->s, "ov:1", "c3", t3, IMAGE_MOUNT_VOLATILE), 0);
        mount_super_options(t3, opts, sizeof(opts));
        assert_true(strstr(opts, ",volatile,") || strstr(opts, ",fsync=volatile,"));
        mount_super_options(t1, opts, sizeof(opts));
        assert_true(strstr(opts, ",upperdir=") && !strstr(opts, "volatile"));
        assert_int_equal(image_store_umount_rootfs(e->s, "c3", t3, IMAGE_UMOUNT_REMOVE), 0);
        snprintf(p, sizeof(p), "%s/top", t1);
        assert_int_equal(stat(p, &st), 0);
        snprintf(p, sizeof(p), "%s/shadowed", t1);
        assert_int_equal(stat(p, &st), -1); /* whited out by the upper layer */
        snprintf(p, sizeof(p), "%s/new", t1);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        snprintf(p, sizeof(p), "%s/new", t2);
        assert_int_equal(stat(p, &st), -1); /* c2 does not see c1's writes */
        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_int_equal(fd, -1);
        assert_int_equal(errno, EROFS);
        snprintf(p, sizeof(p), "%s/containers/c1/upper/new", e->root);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(image_store_remove(e->s, "ov:1", 0), -EBUSY);

        /* Export of the mounted root. */
        char tarp[256];
        snprintf(tarp, sizeof(tarp), "%s/export.tar", e->dir);
        fd = open(tarp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_int_equal(image_export_rootfs(t1, fd), 0);
        close(fd);
        struct archive *a = archive_read_new();
        struct archive_entry *en;
        bool seen_new = false, seen_base = false;
        archive_read_support_format_tar(a);
        assert_int_equal(archive_read_open_filename(a, tarp, 65536), ARCHIVE_OK);
        while (archive_read_next_header(a, &en) == ARCHIVE_OK) {
                seen_new |= streq(archive_entry_pathname(en), "./new");
                seen_base |= streq(archive_entry_pathname(en), "./base");
        }
        archive_read_free(a);
        assert_true(seen_new && seen_base);

        /* c1 deferred: its reference goes at once, its upper layer is moved aside intact for the
         * caller to delete; c2 as before. */
        char *trash = NULL;
        assert_int_equal(image_store_umount_rootfs_deferred(e->s, "c1", t1, &trash), 0);
        assert_non_null(trash);
        snprintf(p, sizeof(p), "%s/upper/new", trash);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(image_store_umount_rootfs(e->s, "c2", t2, IMAGE_UMOUNT_REMOVE), 0);
        snprintf(p, sizeof(p), "%s/containers", e->root);
        assert_int_equal(count_entries(p), 0);
        assert_int_equal(image_store_remove(e->s, "ov:1", 0), 0);
        assert_int_equal(count_images(e), 0);
        /* gc leaves it to its remover while that lives (us), and takes it once the remover is gone. */
        assert_int_equal(image_store_gc(e->s, NULL), 0);
        assert_int_equal(stat(trash, &st), 0);
        pid_t dead = fork();
        assert_true(dead >= 0);
        if (dead == 0)
                _exit(0);
        assert_int_equal(waitpid(dead, NULL, 0), dead);
        snprintf(p, sizeof(p), "%s/tmp/removed-%d-c1-0", e->root, (int) dead);
        assert_int_equal(rename(trash, p), 0);
        assert_int_equal(image_store_gc(e->s, NULL), 0);
        assert_int_equal(stat(p, &st), -1);
        snprintf(p, sizeof(p), "%s/tmp", e->root);
        assert_int_equal(count_entries(p), 0);
        free(trash);
        /* Nothing to move: a container that never had a root filesystem. */
        trash = (char *) "unset";
        assert_int_equal(image_store_umount_rootfs_deferred(e->s, "c9", NULL, &trash), 0);
        assert_null(trash);
}

/* Blobs that look like layers but belong to no image (another platform's layers, say) are unpacked
 * ahead of time and then thrown away: even a hostile one cannot fail the load or escape. */
static void test_unreferenced_layer_blobs(void **state) {
        Env *e = *state;
        char abs[256], path[256], p[512];
        ImageLoadStats st = {};
        ImageLoadOptions o = {.stats = &st};

        snprintf(abs, sizeof(abs), "%s/pwned", e->sentinel);
        Member hostile[] = {{"ok", AE_IFREG, "x"}, {abs, AE_IFREG, "evil"}};
        Member dotdot[] = {{"a/../../../../../sentinel/pwned", AE_IFREG, "evil"}};
        Member plain[] = {{"other-platform", AE_IFREG, "arm"}};
        extra_blobs[0] = make_tar(hostile, ELEMENTSOF(hostile), true);
        extra_blobs[1] = make_tar(dotdot, ELEMENTSOF(dotdot), false);
        extra_blobs[2] = make_tar(plain, ELEMENTSOF(plain), false);
        extra_blobs[3] = buf_str("\x1f\x8b but not gzip at all");
        n_extra_blobs = 4;

        Member m[] = {{"real", AE_IFREG, "real"}};
        Layer l = {m, ELEMENTSOF(m), true};
        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, &l, 1, "extra:1", CORRUPT_NONE, NULL);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(image_store_load(e->s, fd, &o, NULL), 1);
        close(fd);
        assert_int_equal(count_entries(e->sentinel), 0);
        assert_int_equal(st.layers_unpacked, 1);
        assert_true(st.threads >= 1);
        assert_true(st.archive_bytes > 0);
        snprintf(p, sizeof(p), "%s/layers", e->root);
        assert_int_equal(count_entries(p), 2); /* one layer directory and its file */
        snprintf(p, sizeof(p), "%s/tmp", e->root);
        assert_int_equal(count_entries(p), 0);

        /* Loading it again unpacks nothing: the blobs and the layer are in the store. */
        st = (ImageLoadStats){};
        fd = open(path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(image_store_load(e->s, fd, &o, NULL), 1);
        close(fd);
        assert_int_equal(st.layers_unpacked, 0);
        assert_int_equal(st.layers_discarded, 0);
        unlink(path);
}

/* Modes (set-id bits after chown included) are the same whatever the number of unpacking threads,
 * and several layers unpack at once into the right directories. */
static void test_modes_and_threads(void **state) {
        Env *e = *state;
        static const unsigned threads[] = {1, 4};
        Member m1[] = {
                {"d", AE_IFDIR, "", 0, 0, 01777},     {"d/x", AE_IFREG, "x", 0, 0, 0751},
                {"suid", AE_IFREG, "s", 0, 0, 04755}, {"sgid-owned", AE_IFREG, "g", 1234, 0, 02710},
                {"ro", AE_IFREG, "r", 0, 0, 0444},    {"odd", AE_IFREG, "n", 0, 0, 0027},
        };
        Member m2[] = {{"two", AE_IFREG, "2", 0, 0, 0600}};
        Member m3[] = {{"three", AE_IFREG, "3", 0, 0, 0640}};
        Layer l[] = {{m1, ELEMENTSOF(m1), true}, {m2, ELEMENTSOF(m2), false}, {m3, ELEMENTSOF(m3), true}};
        static const struct {
                const char *path;
                mode_t mode;
        } want[] = {{"d", 01777},          {"d/x", 0751}, {"suid", 04755},
                    {"sgid-owned", 02710}, {"ro", 0444},  {"odd", 0027}};
        char path[256], root[256], p[512];

        snprintf(path, sizeof(path), "%s/image.tar", e->dir);
        make_oci_archive(path, l, ELEMENTSOF(l), "modes:1", CORRUPT_NONE, NULL);
        for (size_t t = 0; t < ELEMENTSOF(threads); t++) {
                ImageStore *s = NULL;
                ImageLoadStats st = {};
                ImageLoadOptions o = {.unpack_threads = threads[t], .stats = &st};
                json_t *j = NULL;
                struct stat sb;

                snprintf(root, sizeof(root), "%s/store-%u", e->dir, threads[t]);
                assert_int_equal(image_store_open(root, &s), 0);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                assert_int_equal(image_store_load(s, fd, &o, NULL), 1);
                close(fd);
                assert_int_equal(st.layers_unpacked, 3);
                assert_true(st.threads >= 1 && st.threads <= threads[t]);
                assert_int_equal(image_store_inspect(s, "modes:1", &j), 0);
                const char *d1 = json_string_value(json_array_get(json_object_get(j, "Layers"), 0));
                const char *d2 = json_string_value(json_array_get(json_object_get(j, "Layers"), 1));
                const char *d3 = json_string_value(json_array_get(json_object_get(j, "Layers"), 2));
                assert_non_null(d1);
                assert_non_null(d2);
                assert_non_null(d3);
                for (size_t i = 0; i < ELEMENTSOF(want); i++) {
                        snprintf(p, sizeof(p), "%s/layers/%s/%s", root, d1 + 7, want[i].path);
                        assert_int_equal(lstat(p, &sb), 0);
                        assert_int_equal(sb.st_mode & 07777, want[i].mode);
                }
                if (geteuid() == 0) {
                        snprintf(p, sizeof(p), "%s/layers/%s/sgid-owned", root, d1 + 7);
                        assert_int_equal(lstat(p, &sb), 0);
                        assert_int_equal(sb.st_uid, 1234);
                }
                snprintf(p, sizeof(p), "%s/layers/%s/two", root, d2 + 7);
                assert_int_equal(lstat(p, &sb), 0);
                assert_int_equal(sb.st_mode & 07777, 0600);
                snprintf(p, sizeof(p), "%s/layers/%s/three", root, d3 + 7);
                assert_int_equal(lstat(p, &sb), 0);
                assert_int_equal(sb.st_mode & 07777, 0640);
                json_decref(j);
                image_store_free(s);
        }
        unlink(path);
}

static void test_garbage_input(void **state) {
        Env *e = *state;
        char path[256];

        snprintf(path, sizeof(path), "%s/garbage", e->dir);
        FILE *f = fopen(path, "we");
        for (int i = 0; i < 5000; i++)
                fputs("not an archive ", f);
        fclose(f);
        assert_true(load_file(e, path) < 0);
        assert_clean(e);
        assert_int_equal(image_store_resolve(e->s, "nope", NULL), -ENOENT);
        assert_int_equal(image_store_tag(e->s, "nope", "x"), -ENOENT);
        assert_int_equal(image_store_ref_container(e->s, "nope", "../evil"), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
                T(test_hostile_absolute),
                T(test_hostile_dotdot),
                T(test_hostile_symlink_parent),
                T(test_hostile_symlink_parent_relative),
                T(test_hostile_hardlink),
                T(test_wrong_digest),
                T(test_missing_blob),
                T(test_wrong_diff_id),
                T(test_truncated),
                T(test_whiteouts_devices_owner),
                T(test_config_and_merge),
                T(test_refs_rm_prune),
                T(test_docker_archive),
                T(test_overlay_independent_uppers),
                T(test_unreferenced_layer_blobs),
                T(test_modes_and_threads),
                T(test_garbage_input),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
