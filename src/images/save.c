/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writing images as an OCI image archive (what skopeo's oci-archive: and podman load read). */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>

#include "image-internal.h"

#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX    "application/vnd.oci.image.index.v1+json"

static int write_member(struct archive *out, const char *path, mode_t type, const void *data,
                        uint64_t size) {
        struct archive_entry *e = archive_entry_new();
        int r = 0;

        if (!e)
                return -ENOMEM;
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
        archive_entry_set_size(e, (la_int64_t) size);
        if (archive_write_header(out, e) < ARCHIVE_WARN)
                r = -EIO;
        else if (data && size > 0 && archive_write_data(out, data, size) < 0)
                r = -EIO;
        archive_entry_free(e);
        return r;
}

static int write_blob(ImageStore *s, struct archive *out, const char *digest) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        char p[64 + DIGEST_LEN];
        struct stat st;
        int r;

        snprintf(p, sizeof(p), "blobs/sha256/%s", digest_hex(digest));
        fd = openat(s->root_fd, p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0)
                return store_error(s, -errno, "missing blob %s: %m", digest);
        r = write_member(out, p, AE_IFREG, NULL, (uint64_t) st.st_size);
        if (r < 0)
                return r;
        buf = malloc(IMAGE_COPY_BUFFER);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf, IMAGE_COPY_BUFFER);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                if (archive_write_data(out, buf, (size_t) n) < 0)
                        return store_error(s, -EIO, "writing archive: %s", archive_error_string(out));
        }
        return 0;
}

static uint64_t blob_size(ImageStore *s, const char *digest) {
        char p[64 + DIGEST_LEN];
        struct stat st;

        snprintf(p, sizeof(p), "blobs/sha256/%s", digest_hex(digest));
        return fstatat(s->root_fd, p, &st, AT_SYMLINK_NOFOLLOW) < 0 ? 0 : (uint64_t) st.st_size;
}

_public_ int image_store_save(ImageStore *s, char *const *refs, int fd) {
        _cleanup_(json_decrefp) json_t *index = NULL, *oci = NULL, *blobs = NULL;
        _cleanup_free_ char *oci_text = NULL;
        struct archive *out = NULL;
        json_t *manifests, *v;
        const char *k;
        int r;

        assert_return(s, -EINVAL);
        assert_return(refs && refs[0], -EINVAL);
        assert_return(fd >= 0, -EBADF);
        s->error[0] = '\0';

        r = store_index_load(s, &index);
        if (r < 0)
                return r;
        oci = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests");
        blobs = json_object();
        if (!oci || !blobs)
                return -ENOMEM;
        manifests = json_object_get(oci, "manifests");
        for (size_t i = 0; refs[i]; i++) {
                _cleanup_free_ char *digest = NULL;
                json_t *img, *names, *l;
                size_t n;

                r = image_store_resolve(s, refs[i], &digest);
                if (r < 0)
                        return r;
                img = json_object_get(json_object_get(index, "images"), digest);
                if (!img)
                        return store_error(s, -ENOENT, "no such image: %s", refs[i]);
                json_object_set_new(blobs, digest, json_true());
                json_object_set(blobs, json_string_value(json_object_get(img, "config")), json_true());
                json_array_foreach(json_object_get(img, "layers"), n, l) json_object_set_new(
                        blobs, json_string_value(json_object_get(l, "digest")), json_true());
                /* One descriptor per name, like skopeo; a name given as the reference comes first. */
                names = json_object_get(img, "names");
                if (json_array_size(names) == 0)
                        json_array_append_new(manifests, json_pack("{s:s, s:s, s:I}", "mediaType",
                                                                   MT_OCI_MANIFEST, "digest", digest, "size",
                                                                   (json_int_t) blob_size(s, digest)));
                json_array_foreach(names, n, v) json_array_append_new(
                        manifests, json_pack("{s:s, s:s, s:I, s:{s:O}}", "mediaType", MT_OCI_MANIFEST,
                                             "digest", digest, "size", (json_int_t) blob_size(s, digest),
                                             "annotations", "org.opencontainers.image.ref.name", v));
        }
        oci_text = json_dumps(oci, JSON_COMPACT);
        if (!oci_text)
                return -ENOMEM;

        out = archive_write_new();
        if (!out)
                return -ENOMEM;
        archive_write_set_format_pax_restricted(out);
        if (archive_write_open_fd(out, fd) != ARCHIVE_OK) {
                r = store_error(s, -EIO, "cannot write archive: %s", archive_error_string(out));
                goto finish;
        }
        static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
        if ((r = write_member(out, "oci-layout", AE_IFREG, layout, strlen(layout))) < 0 ||
            (r = write_member(out, "index.json", AE_IFREG, oci_text, strlen(oci_text))) < 0 ||
            (r = write_member(out, "blobs", AE_IFDIR, NULL, 0)) < 0 ||
            (r = write_member(out, "blobs/sha256", AE_IFDIR, NULL, 0)) < 0)
                goto finish;
        json_object_foreach(blobs, k, v) {
                r = write_blob(s, out, k);
                if (r < 0)
                        goto finish;
        }
        if (archive_write_close(out) != ARCHIVE_OK)
                r = store_error(s, -EIO, "cannot write archive: %s", archive_error_string(out));
finish:
        archive_write_free(out);
        return r;
}
