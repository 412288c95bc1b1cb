/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where an OCI runtime given by name (crun, runc) is looked up: by container-runtime when it
 * starts it, and by the CLI and the API server when they check a --runtime value beforehand. One
 * list, so that a name the checks accept is one the service finds. */
#define OCI_RUNTIME_SEARCH_DIRS "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/bin", "/sbin"

/* The first of OCI_RUNTIME_SEARCH_DIRS holding an executable regular file called name (no '/'):
 * 0 and a new string, -ENOENT, or -EINVAL for an empty name or one with a '/'. */
int oci_runtime_lookup(const char *name, char **ret_path);
