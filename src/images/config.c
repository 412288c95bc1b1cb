/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdio.h>

#include "image-internal.h"

_public_ ImageConfig *image_config_free(ImageConfig *c) {
        if (!c)
                return NULL;
        image_strv_free(c->entrypoint);
        image_strv_free(c->cmd);
        image_strv_free(c->env);
        free(c->working_dir);
        free(c->user);
        free(c->stop_signal);
        image_strv_free(c->exposed_ports);
        image_strv_free(c->labels);
        free(c);
        return NULL;
}

static int dup_string(json_t *v, char **ret) {
        const char *s = json_string_value(v);

        if (!s || !*s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* A strv field: absent or null → NULL; anything but an array of strings is malformed. */
static int dup_strv(json_t *v, char ***ret) {
        if (!v || json_is_null(v))
                return 0;
        *ret = strv_from_json(v);
        return *ret ? 0 : -EBADMSG;
}

/* {"80/tcp": {}} or {"k": "v"} → "80/tcp" or "k=v" */
static int dup_keys(json_t *o, bool with_values, char ***ret) {
        const char *k;
        json_t *v;
        char **l;
        size_t n = 0;

        if (!o || json_is_null(o))
                return 0;
        if (!json_is_object(o))
                return -EBADMSG;
        l = calloc(json_object_size(o) + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        json_object_foreach(o, k, v) {
                int r;
                if (with_values)
                        r = asprintf(&l[n], "%s=%s", k, json_string_value(v) ?: "");
                else
                        r = (l[n] = strdup(k)) ? 0 : -1;
                if (r < 0) {
                        image_strv_free(l);
                        return -ENOMEM;
                }
                n++;
        }
        *ret = l;
        return 0;
}

_public_ int image_config_from_json(json_t *j, ImageConfig **ret) {
        _cleanup_(image_config_freep) ImageConfig *c = NULL;
        int r;

        assert_return(ret, -EINVAL);
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        /* An image without a config object is legal: everything unset. */
        if (j && !json_is_null(j)) {
                if (!json_is_object(j))
                        return -EBADMSG;
                if ((r = dup_strv(json_object_get(j, "Entrypoint"), &c->entrypoint)) < 0 ||
                    (r = dup_strv(json_object_get(j, "Cmd"), &c->cmd)) < 0 ||
                    (r = dup_strv(json_object_get(j, "Env"), &c->env)) < 0 ||
                    (r = dup_string(json_object_get(j, "WorkingDir"), &c->working_dir)) < 0 ||
                    (r = dup_string(json_object_get(j, "User"), &c->user)) < 0 ||
                    (r = dup_string(json_object_get(j, "StopSignal"), &c->stop_signal)) < 0 ||
                    (r = dup_keys(json_object_get(j, "ExposedPorts"), false, &c->exposed_ports)) < 0 ||
                    (r = dup_keys(json_object_get(j, "Labels"), true, &c->labels)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(c);
        return 0;
}

static int set_strv(json_t *o, const char *k, char *const *l) {
        if (!l)
                return 0;
        return json_object_set_new(o, k, image_strv_to_json(l));
}

_public_ json_t *image_config_to_json(const ImageConfig *c) {
        json_t *o, *ports, *labels;

        if (!c)
                return NULL;
        o = json_object();
        ports = json_object();
        labels = json_object();
        if (!o || !ports || !labels)
                goto fail;
        if (set_strv(o, "Entrypoint", c->entrypoint) < 0 || set_strv(o, "Cmd", c->cmd) < 0 ||
            set_strv(o, "Env", c->env) < 0)
                goto fail;
        if (c->working_dir)
                json_object_set_new(o, "WorkingDir", json_string(c->working_dir));
        if (c->user)
                json_object_set_new(o, "User", json_string(c->user));
        if (c->stop_signal)
                json_object_set_new(o, "StopSignal", json_string(c->stop_signal));
        for (size_t i = 0; c->exposed_ports && c->exposed_ports[i]; i++)
                json_object_set_new(ports, c->exposed_ports[i], json_object());
        for (size_t i = 0; c->labels && c->labels[i]; i++) {
                const char *eq = strchr(c->labels[i], '=');
                _cleanup_free_ char *k = eq ? strndup(c->labels[i], (size_t) (eq - c->labels[i])) : NULL;
                if (k)
                        json_object_set_new(labels, k, json_string(eq + 1));
        }
        if (c->exposed_ports)
                json_object_set(o, "ExposedPorts", ports);
        if (c->labels)
                json_object_set(o, "Labels", labels);
        json_decref(ports);
        json_decref(labels);
        return o;
fail:
        json_decref(o);
        json_decref(ports);
        json_decref(labels);
        return NULL;
}

static size_t env_key_len(const char *e) {
        const char *eq = strchr(e, '=');
        return eq ? (size_t) (eq - e) : strlen(e);
}

/* -e KEY=VALUE replaces KEY or appends; -e KEY (no '=') removes KEY. */
static int env_apply(char ***env, const char *assignment) {
        size_t klen = env_key_len(assignment), n = strv_length(*env);
        bool set = strchr(assignment, '=') != NULL;

        if (klen == 0)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                char *e = (*env)[i];
                if (env_key_len(e) != klen || strncmp(e, assignment, klen) != 0)
                        continue;
                if (!set) {
                        free(e);
                        memmove(&(*env)[i], &(*env)[i + 1], (n - i) * sizeof(char *));
                        return 0;
                }
                char *c = strdup(assignment);
                if (!c)
                        return -ENOMEM;
                free(e);
                (*env)[i] = c;
                return 0;
        }
        return set ? strv_push(env, assignment) : 0;
}

static int replace_string(char **field, const char *value) {
        char *c;

        if (!value)
                return 0;
        c = *value ? strdup(value) : NULL;
        if (*value && !c)
                return -ENOMEM;
        free(*field);
        *field = c;
        return 0;
}

_public_ int image_config_merge(const ImageConfig *image, const ImageOverrides *o, ImageConfig **ret_config,
                                char ***ret_argv) {
        _cleanup_(image_config_freep) ImageConfig *m = NULL;
        _cleanup_(image_strv_freep) char **argv = NULL;
        static const ImageConfig empty = {};
        static const ImageOverrides none = {};
        int r;

        if (!image)
                image = &empty;
        if (!o)
                o = &none;
        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;

        /* docker: --entrypoint replaces Entrypoint and drops the image's Cmd; arguments after the
         * image name replace Cmd. */
        if (o->entrypoint) {
                if (*o->entrypoint && strv_push(&m->entrypoint, o->entrypoint) < 0)
                        return -ENOMEM;
        } else if (image->entrypoint && !(m->entrypoint = strv_copy(image->entrypoint)))
                return -ENOMEM;
        if (o->args && o->args[0]) {
                if (!(m->cmd = strv_copy(o->args)))
                        return -ENOMEM;
        } else if (!o->entrypoint && image->cmd && !(m->cmd = strv_copy(image->cmd)))
                return -ENOMEM;

        if (!(m->env = strv_copy(image->env)))
                return -ENOMEM;
        for (size_t i = 0; o->env && o->env[i]; i++) {
                r = env_apply(&m->env, o->env[i]);
                if (r < 0)
                        return r;
        }
        if ((image->working_dir && !(m->working_dir = strdup(image->working_dir))) ||
            (image->user && !(m->user = strdup(image->user))) ||
            (image->stop_signal && !(m->stop_signal = strdup(image->stop_signal))))
                return -ENOMEM;
        if ((r = replace_string(&m->working_dir, o->working_dir)) < 0 ||
            (r = replace_string(&m->user, o->user)) < 0 ||
            (r = replace_string(&m->stop_signal, o->stop_signal)) < 0)
                return r;
        if (!m->working_dir && !(m->working_dir = strdup("/")))
                return -ENOMEM;
        if ((image->exposed_ports && !(m->exposed_ports = strv_copy(image->exposed_ports))) ||
            (image->labels && !(m->labels = strv_copy(image->labels))))
                return -ENOMEM;

        if (ret_argv) {
                if (!(argv = strv_copy(m->entrypoint)))
                        return -ENOMEM;
                for (size_t i = 0; m->cmd && m->cmd[i]; i++)
                        if (strv_push(&argv, m->cmd[i]) < 0)
                                return -ENOMEM;
                if (!argv[0])
                        return -ENOEXEC;
        }
        if (ret_config)
                *ret_config = TAKE_PTR(m);
        if (ret_argv)
                *ret_argv = TAKE_PTR(argv);
        return 0;
}
