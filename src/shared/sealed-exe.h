/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Sealed in-memory copies of an executable. crun and runc defend against CVE-2019-5736 (a
 * container overwriting the runtime's binary through /proc/PID/exe) by re-executing themselves
 * from a sealed copy unless they already run from one: crun bind-mounts a copy of itself and
 * re-executes (~5 ms per call here), runc copies its 8.7 MB into a memfd. Executing them from such
 * a copy ourselves (/proc/self/fd/N) gives the same protection. The API server makes one copy per
 * OCI runtime binary and hands it to every container-runtime it starts; a container-runtime
 * without one makes its own per call. Used by container-runtime and container-apiserver. */

#include <fcntl.h>

/* Exactly the seals crun and runc look for on /proc/self/exe. */
#define SEALED_EXE_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

/* A new CLOEXEC memfd holding a copy of the ELF executable at path, sealed with SEALED_EXE_SEALS.
 * -ENOEXEC for anything but an ELF regular file (a script executed through /proc/self/fd/N of a
 * CLOEXEC fd would not find its file). */
int sealed_exe_copy(const char *path, int *ret_fd);
/* 0 when fd is a regular file carrying SEALED_EXE_SEALS whose content starts as an ELF file;
 * else a negative errno. */
int sealed_exe_check(int fd);
