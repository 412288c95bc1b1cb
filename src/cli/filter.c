/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ls --filter KEY=VALUE, docker's way: values of one key are alternatives, different keys must
 * all match (docs/cli.md). Matched on the container objects the API server lists. */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const filter_keys[_FILTER_KEY_MAX] = {
        [FILTER_ID] = "id",         [FILTER_NAME] = "name",         [FILTER_LABEL] = "label",
        [FILTER_STATUS] = "status", [FILTER_ANCESTOR] = "ancestor", [FILTER_EXITED] = "exited",
};

/* docker's status words that mean one of ours. */
static const char *status_alias(const char *v) {
        return streq(v, "exited") || streq(v, "dead") ? "stopped" : v;
}

int container_filter_add(ContainerFilter *f, const char *spec) {
        const char *eq = strchr(spec, '=');
        char **values;

        for (FilterKey k = 0; eq && k < _FILTER_KEY_MAX; k++) {
                if (strlen(filter_keys[k]) != (size_t) (eq - spec) ||
                    strncmp(spec, filter_keys[k], (size_t) (eq - spec)) != 0)
                        continue;
                const char *v = eq + 1;
                if (!*v)
                        break;
                if (k == FILTER_STATUS && !streq(status_alias(v), "created") &&
                    !streq(status_alias(v), "running") && !streq(v, "paused") &&
                    !streq(status_alias(v), "stopped") && !streq(v, "broken"))
                        return cli_error(-EINVAL, "--filter", "invalidArgument",
                                         "\"%s\": status is created, running, paused, exited (stopped) "
                                         "or broken",
                                         spec);
                if (f->n[k] >= CLI_FILTER_VALUES_MAX)
                        return cli_error(-E2BIG, "--filter", "invalidArgument", "too many %s filters",
                                         filter_keys[k]);
                values = reallocarray(f->values[k], f->n[k] + 1, sizeof(char *));
                if (!values)
                        return -ENOMEM;
                f->values[k] = values;
                values[f->n[k]] = strdup(v);
                if (!values[f->n[k]])
                        return -ENOMEM;
                f->n[k]++;
                return 0;
        }
        return cli_error(-EINVAL, "--filter", "invalidArgument",
                         "\"%s\": KEY=VALUE with KEY one of id, name, label, status, ancestor, exited",
                         spec);
}

void container_filter_done(ContainerFilter *f) {
        for (FilterKey k = 0; k < _FILTER_KEY_MAX; k++) {
                for (size_t i = 0; i < f->n[k]; i++)
                        free(f->values[k][i]);
                free(f->values[k]);
        }
        *f = (ContainerFilter){};
}

bool container_filter_wants_all(const ContainerFilter *f) {
        return f->n[FILTER_STATUS] > 0 || f->n[FILTER_EXITED] > 0;
}

static bool label_matches(json_t *labels, const char *v) {
        const char *eq = strchr(v, '=');
        _cleanup_free_ char *key = eq ? strndup(v, (size_t) (eq - v)) : NULL;
        json_t *have = json_object_get(labels, eq ? key : v);

        if (!json_is_string(have))
                return false;
        return !eq || streq(json_string_value(have), eq + 1);
}

/* The length of an image reference without its ":TAG" (a ':' before the last '/' is a port). */
static size_t image_name_length(const char *ref) {
        const char *slash = strrchr(ref, '/'), *colon = strrchr(slash ?: ref, ':');
        return colon ? (size_t) (colon - ref) : strlen(ref);
}

/* docker's ancestor: a reference without a tag means any tag of that name; one without a tag
 * (as the container was created) means ":latest". */
static bool ancestor_matches(const char *image, const char *v) {
        size_t n = image_name_length(v), m;

        if (!image)
                return false;
        m = image_name_length(image);
        if (n == strlen(v)) /* no tag given: the name must match */
                return m == n && strncmp(image, v, n) == 0;
        if (m == n && strncmp(image, v, n) == 0) /* same name: the tags, latest when absent */
                return streq(image[m] ? image + m + 1 : "latest", v + n + 1);
        return false;
}

static bool key_matches(FilterKey k, json_t *c, const char *v) {
        const char *id = json_string_value(json_object_get(c, "id")) ?: "";

        switch (k) {
        case FILTER_ID: /* ids and names are one thing here: a prefix, as docker's id filter */
                return strncmp(id, v, strlen(v)) == 0;
        case FILTER_NAME: /* docker: a substring of the name */
                return strstr(id, v) != NULL;
        case FILTER_LABEL:
                return label_matches(json_object_get(c, "labels"), v);
        case FILTER_STATUS:
                return streq_ptr(json_string_value(json_object_get(c, "status")), status_alias(v));
        case FILTER_ANCESTOR:
                return ancestor_matches(json_string_value(json_object_get(c, "image")), v);
        case FILTER_EXITED: {
                json_t *code = json_object_get(c, "exitCode");
                char *end;
                long n = strtol(v, &end, 10);
                return json_is_integer(code) && !*end && end != v && json_integer_value(code) == n &&
                       streq_ptr(json_string_value(json_object_get(c, "status")), "stopped");
        }
        default:
                return false;
        }
}

bool container_filter_match(const ContainerFilter *f, json_t *c) {
        for (FilterKey k = 0; k < _FILTER_KEY_MAX; k++) {
                bool any = f->n[k] == 0;
                for (size_t i = 0; !any && i < f->n[k]; i++)
                        any = key_matches(k, c, f->values[k][i]);
                if (!any)
                        return false;
        }
        return true;
}
