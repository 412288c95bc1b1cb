/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#include "image-internal.h"

int store_error(ImageStore *s, int r, const char *fmt, ...) {
        va_list ap;

        assert(r < 0);
        /* Keep the innermost (first) reason: outer layers call this again on the way up. */
        if (s && s->error[0] == '\0') {
                va_start(ap, fmt);
                (void) vsnprintf(s->error, sizeof(s->error), fmt, ap);
                va_end(ap);
        }
        return r;
}

int sha256_init(Sha256 *h) {
        h->ctx = EVP_MD_CTX_new();
        if (!h->ctx)
                return -ENOMEM;
        if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
                sha256_done(h);
                return -EIO;
        }
        return 0;
}

void sha256_update(Sha256 *h, const void *p, size_t n) {
        if (n > 0)
                (void) EVP_DigestUpdate(h->ctx, p, n);
}

int sha256_final(Sha256 *h, char out[static DIGEST_LEN + 1]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;
        char *p;

        if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1 || len != SHA256_HEX_LEN / 2) {
                sha256_done(h);
                return -EIO;
        }
        sha256_done(h);
        p = stpcpy(out, DIGEST_PREFIX);
        for (unsigned i = 0; i < len; i++)
                p += sprintf(p, "%02x", md[i]);
        return 0;
}

void sha256_done(Sha256 *h) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
}

bool digest_valid(const char *d) {
        if (!d || strncmp(d, DIGEST_PREFIX, strlen(DIGEST_PREFIX)) != 0 || strlen(d) != DIGEST_LEN)
                return false;
        for (const char *p = d + strlen(DIGEST_PREFIX); *p; p++)
                if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
                        return false;
        return true;
}

const char *digest_hex(const char *d) {
        return d + strlen(DIGEST_PREFIX);
}

static int rm_rf_children(int fd, dev_t dev, uint64_t *freed) {
        DIR *d;
        struct dirent *de;
        int r = 0;

        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return negative_errno();
        }
        while ((errno = 0, de = readdir(d))) {
                struct stat st;
                int k;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        int cfd;

                        /* Never remove what another file system (a mount inside the tree) holds. */
                        if (st.st_dev != dev) {
                                if (r == 0)
                                        r = -EBUSY;
                                continue;
                        }
                        cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (cfd < 0) {
                                if (r == 0)
                                        r = -errno;
                                continue;
                        }
                        k = rm_rf_children(cfd, dev, freed);
                        if (k < 0 && r == 0)
                                r = k;
                        if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                                r = -errno;
                } else if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        if (errno != ENOENT && r == 0)
                                r = -errno;
                        continue;
                }
                if (freed)
                        *freed += (uint64_t) st.st_blocks * 512u;
        }
        closedir(d);
        return r;
}

int rm_rf_at(int dirfd, const char *name, uint64_t *freed) {
        struct stat st;
        int fd, r;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISDIR(st.st_mode)) {
                if (unlinkat(dirfd, name, 0) < 0)
                        return errno == ENOENT ? 0 : -errno;
                if (freed)
                        *freed += (uint64_t) st.st_blocks * 512u;
                return 0;
        }
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = rm_rf_children(fd, st.st_dev, freed);
        if (r < 0)
                return r;
        if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (freed)
                *freed += (uint64_t) st.st_blocks * 512u;
        return 0;
}

static uint64_t du_fd(int fd, dev_t dev) {
        DIR *d;
        struct dirent *de;
        uint64_t sum = 0;

        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return 0;
        }
        while ((de = readdir(d))) {
                struct stat st;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                sum += (uint64_t) st.st_blocks * 512u;
                if (S_ISDIR(st.st_mode) && st.st_dev == dev) {
                        int cfd = openat(dirfd(d), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (cfd >= 0)
                                sum += du_fd(cfd, dev);
                }
        }
        closedir(d);
        return sum;
}

uint64_t du_at(int dirfd, const char *name) {
        struct stat st;
        int fd;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return 0;
        if (!S_ISDIR(st.st_mode))
                return (uint64_t) st.st_blocks * 512u;
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return 0;
        return (uint64_t) st.st_blocks * 512u + du_fd(fd, st.st_dev);
}

int mkdir_p_at(int dirfd, const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size) {
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        const char *p = data;
        int r;

        if ((size_t) snprintf(tmp, sizeof(tmp), "%s.tmp.%d", name, (int) getpid()) >= sizeof(tmp))
                return -ENAMETOOLONG;
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto fail;
                }
                p += n;
                size -= (size_t) n;
        }
        /* The index is the commit point of a load: it must reach the disk after the blobs do. */
        if (fsync(fd) < 0) {
                r = -errno;
                goto fail;
        }
        if (renameat(dirfd, tmp, dirfd, name) < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        (void) unlinkat(dirfd, tmp, 0);
        return r;
}

int read_file_at(int dirfd, const char *name, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t got = 0;

        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        buf[got] = '\0';
        if (ret_size)
                *ret_size = got;
        *ret = TAKE_PTR(buf);
        return 0;
}

int json_load_at(int dirfd, const char *name, json_t **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        json_t *j;
        int r;

        r = read_file_at(dirfd, name, IMAGE_JSON_MAX, &buf, &size);
        if (r < 0)
                return r;
        j = json_loadb(buf, size, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return -EBADMSG;
        *ret = j;
        return 0;
}

int json_save_at(int dirfd, const char *name, json_t *j) {
        _cleanup_free_ char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

        if (!s)
                return -ENOMEM;
        return write_file_atomic_at(dirfd, name, s, strlen(s));
}

void image_strv_free(char **l) {
        if (!l)
                return;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

int strv_push(char ***l, const char *s) {
        size_t n = strv_length(*l);
        char **nl;
        char *c;

        c = strdup(s);
        if (!c)
                return -ENOMEM;
        nl = realloc(*l, (n + 2) * sizeof(char *));
        if (!nl) {
                free(c);
                return -ENOMEM;
        }
        nl[n] = c;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

char **strv_copy(char *const *l) {
        char **c = calloc(strv_length(l) + 1, sizeof(char *));

        if (!c)
                return NULL;
        for (size_t i = 0; l && l[i]; i++) {
                c[i] = strdup(l[i]);
                if (!c[i]) {
                        image_strv_free(c);
                        return NULL;
                }
        }
        return c;
}

bool strv_contains(char *const *l, const char *s) {
        for (size_t i = 0; l && l[i]; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}

char **strv_from_json(json_t *a) {
        char **l;
        size_t i;
        json_t *v;

        if (!json_is_array(a))
                return NULL;
        l = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!l)
                return NULL;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v) || !(l[i] = strdup(json_string_value(v)))) {
                        image_strv_free(l);
                        return NULL;
                }
        }
        return l;
}

json_t *image_strv_to_json(char *const *l) {
        json_t *a = json_array();

        for (size_t i = 0; a && l && l[i]; i++)
                if (json_array_append_new(a, json_string(l[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

uint64_t now_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static bool name_char_ok(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '-' || c == '_' || c == '/' || c == ':' || c == '@';
}

int image_name_normalize(const char *in, char **ret) {
        const char *slash, *colon;
        char *out;

        if (!in || !*in || strlen(in) > IMAGE_NAME_MAX)
                return -EINVAL;
        for (const char *p = in; *p; p++)
                if (!name_char_ok(*p))
                        return -EINVAL;
        if (in[0] == '/' || in[0] == ':' || strstr(in, "//") || in[strlen(in) - 1] == '/' ||
            in[strlen(in) - 1] == ':' || strchr(in, '@'))
                return -EINVAL;
        if (strncmp(in, "docker.io/library/", 18) == 0)
                in += 18;
        else if (strncmp(in, "docker.io/", 10) == 0)
                in += 10;
        slash = strrchr(in, '/');
        colon = strrchr(in, ':');
        /* A ':' before the last '/' is a registry port, not a tag. */
        if (colon && (!slash || colon > slash)) {
                if (strchr(colon + 1, ':') || colon == in)
                        return -EINVAL;
                out = strdup(in);
        } else if (asprintf(&out, "%s:latest", in) < 0)
                out = NULL;
        if (!out)
                return -ENOMEM;
        *ret = out;
        return 0;
}
