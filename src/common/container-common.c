/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "container-common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

#ifndef CONTAINER_VERSION
#define CONTAINER_VERSION "0.0.0"
#endif
#ifndef CONTAINER_LIBEXECDIR
#define CONTAINER_LIBEXECDIR "/usr/libexec/container"
#endif

/* nftw's descriptor budget: deeper trees reuse descriptors, so this only bounds speed. */
#define RM_RF_NOPENFD 32

static const char *const status_table[_CONTAINER_STATUS_MAX] = {
        [CONTAINER_STATUS_CREATED] = "created",
        [CONTAINER_STATUS_RUNNING] = "running",
        [CONTAINER_STATUS_STOPPED] = "stopped",
        [CONTAINER_STATUS_BROKEN] = "broken",
};

const char *container_status_to_string(ContainerStatus s) {
        if (s < 0 || s >= _CONTAINER_STATUS_MAX)
                return NULL;
        return status_table[s];
}

ContainerStatus container_status_from_string(const char *s) {
        if (!s)
                return _CONTAINER_STATUS_INVALID;
        for (int i = 0; i < _CONTAINER_STATUS_MAX; i++)
                if (streq(status_table[i], s))
                        return (ContainerStatus) i;
        return _CONTAINER_STATUS_INVALID;
}

const char *container_version(void) {
        return CONTAINER_VERSION;
}

static bool id_char_ok(char c, bool first) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                return true;
        return !first && (c == '_' || c == '.' || c == '-');
}

bool container_id_is_valid(const char *id) {
        size_t n;

        if (!id)
                return false;
        n = strlen(id);
        if (n == 0 || n > CONTAINER_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!id_char_ok(id[i], i == 0))
                        return false;
        return true;
}

int container_id_generate(char ret[CONTAINER_ID_GENERATED_LEN + 1]) {
        uint8_t bytes[CONTAINER_ID_GENERATED_LEN / 2];
        ssize_t n;

        n = getrandom(bytes, sizeof bytes, 0);
        if (n < 0)
                return negative_errno();
        if ((size_t) n != sizeof bytes)
                return -EIO;
        for (size_t i = 0; i < sizeof bytes; i++)
                (void) snprintf(ret + 2 * i, 3, "%02x", bytes[i]);
        ret[CONTAINER_ID_GENERATED_LEN] = 0;
        return 0;
}

static int dir_from(const char *flag, const char *env, const char *def, char **ret) {
        const char *v = flag;
        char *p;

        if (!v || !*v)
                v = getenv(env);
        if (!v || !*v)
                v = def;
        if (v[0] == '/')
                p = strdup(v);
        else {
                char cwd[PATH_MAX];
                if (!getcwd(cwd, sizeof cwd))
                        return negative_errno();
                if (asprintf(&p, "%s/%s", cwd, v) < 0)
                        p = NULL;
        }
        if (!p)
                return -ENOMEM;
        /* Strip trailing slashes so that paths built from it look canonical. */
        for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
                p[n - 1] = 0;
        *ret = p;
        return 0;
}

int container_root_dir(const char *flag, char **ret) {
        return dir_from(flag, "CONTAINER_ROOT", CONTAINER_ROOT_DEFAULT, ret);
}

int container_run_dir(const char *flag, char **ret) {
        return dir_from(flag, "CONTAINER_RUN_DIR", CONTAINER_RUN_DIR_DEFAULT, ret);
}

int64_t now_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * (int64_t) NSEC_PER_SEC + ts.tv_nsec;
}

int format_rfc3339(int64_t nsec, char *buf, size_t size) {
        time_t sec = (time_t) (nsec / (int64_t) NSEC_PER_SEC);
        long frac = (long) (nsec % (int64_t) NSEC_PER_SEC);
        struct tm tm;
        char date[32];

        if (frac < 0) {
                frac += (long) NSEC_PER_SEC;
                sec--;
        }
        if (!gmtime_r(&sec, &tm))
                return -EINVAL;
        if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
                return -EINVAL;
        if ((size_t) snprintf(buf, size, "%s.%09ldZ", date, frac) >= size)
                return -ENOBUFS;
        return 0;
}

int parse_rfc3339(const char *s, int64_t *ret) {
        struct tm tm = {};
        const char *p;
        int64_t frac = 0;
        int digits = 0;
        time_t sec;

        if (!s)
                return -EINVAL;
        p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!p)
                return -EINVAL;
        if (*p == '.')
                for (p++; *p >= '0' && *p <= '9'; p++)
                        if (digits < 9) {
                                frac = frac * 10 + (*p - '0');
                                digits++;
                        }
        for (; digits < 9; digits++)
                frac *= 10;
        if (*p != 'Z' || p[1] != 0)
                return -EINVAL;
        sec = timegm(&tm);
        if (sec == (time_t) -1)
                return -EINVAL;
        *ret = (int64_t) sec * (int64_t) NSEC_PER_SEC + frac;
        return 0;
}

int fsync_directory(const char *path) {
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fsync(fd) < 0)
                return negative_errno();
        return 0;
}

static int fsync_parent(const char *path) {
        _cleanup_free_ char *copy = strdup(path);

        if (!copy)
                return -ENOMEM;
        return fsync_directory(dirname(copy));
}

int json_write_atomic_full(const char *path, json_t *j, WriteSync sync) {
        _cleanup_free_ char *tmp = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t len, done = 0;
        int r;

        text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        text[len++] = '\n'; /* over the NUL: the text is written by length */
        if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        while (done < len) {
                ssize_t n = write(fd, text + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        goto fail;
                }
                done += (size_t) n;
        }
        if (fchmod(fd, 0644) < 0 || (sync >= WRITE_SYNC_FILE && fsync(fd) < 0)) {
                r = negative_errno();
                goto fail;
        }
        fd = safe_close(fd);
        if (rename(tmp, path) < 0) {
                r = negative_errno();
                goto fail;
        }
        return sync >= WRITE_SYNC_FULL ? fsync_parent(path) : 0;
fail:
        (void) unlink(tmp);
        return r;
}

int json_write_atomic(const char *path, json_t *j) {
        return json_write_atomic_full(path, j, WRITE_SYNC_FULL);
}

static int rm_rf_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        if (type == FTW_DP)
                return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
        if (type == FTW_D || type == FTW_DNR)
                return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
        return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path) {
        if (nftw(path, rm_rf_one, RM_RF_NOPENFD, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        return 0;
}

int self_exe_dir(char **ret) {
        char buf[PATH_MAX];
        ssize_t n;
        char *d;

        n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n < 0)
                return negative_errno();
        buf[n] = 0;
        d = strdup(dirname(buf));
        if (!d)
                return -ENOMEM;
        *ret = d;
        return 0;
}

int find_helper_binary(const char *env_name, const char *subdir, const char *name, char **ret) {
        _cleanup_free_ char *dir = NULL;
        const char *env = env_name ? getenv(env_name) : NULL;
        char *p = NULL;

        if (env && *env) {
                if (access(env, X_OK) < 0)
                        return negative_errno();
                p = strdup(env);
                goto found;
        }
        if (self_exe_dir(&dir) >= 0) {
                /* The build tree: src/cli/container next to src/apiserver/ and src/runtime/. */
                if (asprintf(&p, "%s/../%s/%s", dir, subdir, name) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) == 0)
                        goto found;
                free(p);
                if (asprintf(&p, "%s/%s", dir, name) < 0)
                        return -ENOMEM;
                if (access(p, X_OK) == 0)
                        goto found;
                free(p);
        }
        if (asprintf(&p, "%s/%s", CONTAINER_LIBEXECDIR, name) < 0)
                return -ENOMEM;
        if (access(p, X_OK) == 0)
                goto found;
        free(p);
        return -ENOENT;
found:
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int mkdir_p(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return negative_errno();
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

bool oci_runtime_name_is_known(const char *name) {
        return streq_ptr(name, "crun") || streq_ptr(name, "runc");
}

int oci_runtime_resolve(const char *value, char **ret_path) {
        if (value && value[0] == '/') {
                char *p = strdup(value);
                if (!p)
                        return -ENOMEM;
                *ret_path = p;
                return 0;
        }
        return oci_runtime_lookup(value, ret_path);
}

int oci_runtime_check(const char *value, char *err, size_t errsize) {
        struct stat st;

        if (!value || !*value) {
                snprintf(err, errsize, "the OCI runtime is empty: use crun, runc or an absolute path");
                return -EINVAL;
        }
        if (!strchr(value, '/')) {
                if (!oci_runtime_name_is_known(value)) {
                        snprintf(err, errsize,
                                 "unknown OCI runtime \"%.64s\": use crun, runc or the absolute path of an "
                                 "OCI "
                                 "runtime binary",
                                 value);
                        return -EINVAL;
                }
                _cleanup_free_ char *path = NULL;
                if (oci_runtime_resolve(value, &path) >= 0)
                        return 0;
                snprintf(err, errsize,
                         "OCI runtime %s is not installed (looked in /usr/bin, /usr/sbin, /usr/local/bin, "
                         "/usr/local/sbin, /bin, /sbin)",
                         value);
                return -ENOENT;
        }
        if (value[0] != '/') {
                snprintf(err, errsize, "OCI runtime %.200s: must be a name (crun, runc) or an absolute path",
                         value);
                return -EINVAL;
        }
        if (stat(value, &st) < 0) {
                int r = negative_errno();
                snprintf(err, errsize, "OCI runtime %.200s: %s", value, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode) || access(value, X_OK) < 0) {
                snprintf(err, errsize, "OCI runtime %.200s: not an executable file", value);
                return S_ISDIR(st.st_mode) ? -EISDIR : -EACCES;
        }
        return 0;
}
