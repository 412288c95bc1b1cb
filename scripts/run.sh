#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing, builds, builds the
# offline busybox image from Debian's busybox-static, and runs a container from it through the
# `container` CLI, the API server and a per-container runtime service (crun underneath).
#
#   scripts/run.sh [COMMAND...]     default: echo "hello from a container"
#
# State lives in build/run-root and build/run-dir (not /var/lib/container), so this never touches
# a system instance; `scripts/run.sh --cleanup` stops its API server and removes that state.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash scripts/setup-deps.sh
if [[ ! -d build ]]; then
        meson setup build >/dev/null
fi
ninja -C build >/dev/null

export CONTAINER_ROOT=$top/build/run-root
export CONTAINER_RUN_DIR=$top/build/run-dir
cli=$top/build/src/cli/container

if [[ ${1:-} == --cleanup ]]; then
        "$cli" system stop >/dev/null 2>&1 || true
        rm -rf "$CONTAINER_ROOT" "$CONTAINER_RUN_DIR"
        exit 0
fi

(($# > 0)) || set -- echo "hello from a container"

# Prefer the image store (busybox:latest, loaded once); fall back to a plain root filesystem
# directory when this build's CLI has no image commands.
if "$cli" image ls >/dev/null 2>&1; then
        if ! "$cli" image ls -q 2>/dev/null | grep -q '^busybox'; then
                bash scripts/make-busybox-image.sh build/busybox-oci.tar >/dev/null
                "$cli" image load -i build/busybox-oci.tar >/dev/null
        fi
        exec "$cli" run --rm busybox "$@"
fi
bash scripts/make-busybox-rootfs.sh build/busybox-rootfs >/dev/null
exec "$cli" run --rm --rootfs "$top/build/busybox-rootfs" "$@"
