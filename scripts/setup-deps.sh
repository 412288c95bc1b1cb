#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs to build, test and run. Idempotent: apt is
# only called when something is missing. Must run as root (or with sudo available).
set -euo pipefail

packages=(
        # build
        build-essential meson ninja-build pkg-config clang llvm lld clang-format
        # libraries
        libsystemd-dev libjansson-dev libarchive-dev libssl-dev libcmocka-dev
        # runtime: OCI runtimes, the busybox used to build the default root filesystem
        crun runc busybox-static
        # tests
        bats valgrind iproute2 util-linux procps psmisc coreutils
        # images: OCI image tooling (the busybox image script, archive interop tests)
        jq skopeo podman file
)

missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
        echo "setup-deps: installing ${missing[*]}" >&2
        SUDO=
        [[ $(id -u) -eq 0 ]] || SUDO=sudo
        export DEBIAN_FRONTEND=noninteractive
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A static libsystemd, built from Debian's own source package, lets container-runtime link as one
# static-pie executable (about 1.3 MiB RSS instead of 3.1 MiB; docs/runtime.md, "Memory").
# Idempotent (a version stamp); optional: without it the service links the shared libraries.
if [[ ${CONTAINER_STATIC_LIBSYSTEMD:-1} == 1 ]]; then
        bash "$(dirname "$0")/../src/runtime/build-static-libsystemd.sh" ||
                echo "setup-deps: no static libsystemd; container-runtime links the shared one" >&2
fi
