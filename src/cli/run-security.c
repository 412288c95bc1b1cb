/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* run/create options that restrict the container's process: --cap-add/--cap-drop,
 * --security-opt, --ulimit and --pids-limit, turned into the configuration's process and
 * resources keys (docs/cli.md). */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capabilities.h"
#include "cli.h"

/* "ALL" or one capability name: -EINVAL (and an error printed) for an unknown one. */
static int capability_option(const char *option, const char *value, bool *all, uint64_t *mask) {
        int n;

        if (strcasecmp(value, "ALL") == 0) {
                *all = true;
                return 0;
        }
        n = capability_from_name(value);
        if (n < 0) {
                (void) cli_error(-EINVAL, option, "invalidArgument",
                                 "unknown capability \"%s\" (names as NET_ADMIN or CAP_NET_ADMIN, or ALL)",
                                 value);
                return -EINVAL;
        }
        *mask |= UINT64_C(1) << n;
        return 0;
}

int run_security_cap_add(RunSecurity *s, const char *value) {
        s->caps_changed = true;
        return capability_option("--cap-add", value, &s->add_all, &s->add);
}

int run_security_cap_drop(RunSecurity *s, const char *value) {
        s->caps_changed = true;
        return capability_option("--cap-drop", value, &s->drop_all, &s->drop);
}

int run_security_opt(RunSecurity *s, const char *value) {
        /* docker accepts both "no-new-privileges=false" and "no-new-privileges:false". */
        size_t n = strlen("no-new-privileges");
        if (strncmp(value, "no-new-privileges", n) == 0) {
                const char *v = value[n] ? value + n + 1 : "true";
                if ((value[n] == '\0' || value[n] == '=' || value[n] == ':') &&
                    (streq(v, "true") || streq(v, "false"))) {
                        s->no_new_privileges = streq(v, "true") ? 1 : 0;
                        return 0;
                }
        }
        (void) cli_error(-EINVAL, "--security-opt", "invalidArgument",
                         "\"%s\": supported is no-new-privileges[=true|false]", value);
        return -EINVAL;
}

/* ulimit names (docker's, which are setrlimit's without RLIMIT_). */
static const char *const ulimit_names[] = {
        "as",   "core",   "cpu",   "data", "fsize",  "locks",  "memlock",    "msgqueue",
        "nice", "nofile", "nproc", "rss",  "rtprio", "rttime", "sigpending", "stack",
};

int run_security_ulimit(RunSecurity *s, json_t *rlimits, const char *value) {
        const char *eq = strchr(value, '=');
        char type[32], *end;
        int64_t soft, hard;
        bool known = false;

        if (eq && (size_t) (eq - value) < sizeof type - strlen("RLIMIT_"))
                for (size_t i = 0; i < ELEMENTSOF(ulimit_names); i++)
                        if (strlen(ulimit_names[i]) == (size_t) (eq - value) &&
                            strncmp(value, ulimit_names[i], (size_t) (eq - value)) == 0)
                                known = true;
        if (!known) {
                (void) cli_error(-EINVAL, "--ulimit", "invalidArgument",
                                 "\"%s\": NAME=SOFT[:HARD] with NAME one of as, core, cpu, data, fsize, "
                                 "locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, "
                                 "sigpending, stack",
                                 value);
                return -EINVAL;
        }
        errno = 0;
        soft = strtoll(eq + 1, &end, 10);
        hard = soft;
        if (*end == ':')
                hard = strtoll(end + 1, &end, 10);
        if (errno || *end || end == eq + 1 || soft < 0 || hard < soft) {
                (void) cli_error(-EINVAL, "--ulimit", "invalidArgument",
                                 "\"%s\": limits are numbers with SOFT <= HARD", value);
                return -EINVAL;
        }
        snprintf(type, sizeof type, "RLIMIT_%.*s", (int) (eq - value), value);
        for (char *p = type; *p; p++)
                *p = (char) (*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
        s->has_rlimits = true;
        if (json_array_append_new(rlimits, json_pack("{s:s, s:I, s:I}", "type", type, "soft",
                                                     (json_int_t) soft, "hard", (json_int_t) hard)) < 0)
                return -ENOMEM;
        return 0;
}

int run_security_pids_limit(RunSecurity *s, const char *value) {
        char *end;
        int64_t v;

        errno = 0;
        v = strtoll(value, &end, 10);
        /* docker: 0 and -1 mean no limit. */
        if (errno || *end || end == value || v < -1) {
                (void) cli_error(-EINVAL, "--pids-limit", "invalidArgument",
                                 "\"%s\": a number of processes (0 or -1: no limit)", value);
                return -EINVAL;
        }
        s->pids_limit = v > 0 ? v : 0;
        return 0;
}

int run_security_apply(const RunSecurity *s, json_t *process, json_t *resources, json_t *rlimits) {
        if (s->caps_changed) {
                uint64_t set = 0;
                json_t *caps = json_array();

                if (!caps)
                        return -ENOMEM;
                /* docker's order: the default set unless ALL is dropped, plus what is added, minus
                 * what is dropped by name. */
                if (!s->drop_all)
                        for (const char *const *c = capability_default_set; *c; c++)
                                set |= UINT64_C(1) << capability_from_name(*c);
                set |= s->add_all ? (UINT64_C(1) << capability_all_count) - 1 : s->add;
                set &= ~s->drop;
                for (size_t i = 0; i < capability_all_count; i++)
                        if ((set & (UINT64_C(1) << i)) &&
                            json_array_append_new(caps, json_string(capability_all[i])) < 0) {
                                json_decref(caps);
                                return -ENOMEM;
                        }
                if (json_object_set_new(process, "capabilities", caps) < 0)
                        return -ENOMEM;
        }
        if (s->no_new_privileges >= 0 &&
            json_object_set_new(process, "noNewPrivileges", json_boolean(s->no_new_privileges)) < 0)
                return -ENOMEM;
        if (s->has_rlimits && json_object_set(process, "rlimits", rlimits) < 0)
                return -ENOMEM;
        if (s->pids_limit > 0 && json_object_set_new(resources, "pids", json_integer(s->pids_limit)) < 0)
                return -ENOMEM;
        return 0;
}
