#!/usr/bin/env bash
# Builds a static libsystemd (libsystemd.a, position-independent) from Debian's own source package
# of the installed libsystemd-dev, with systemd's build system, and installs it as
# ${1:-/usr/local/lib/container-static}/libsystemd.a. Debian ships no libsystemd.a; with one there,
# src/runtime/meson.build links container-runtime as a single static-pie executable (sd-event,
# libcxpc, jansson and glibc inside), which keeps the service's RSS near 1.3 MiB instead of 3.1 MiB
# (docs/runtime.md, "Memory"). Idempotent; needs root and Debian's archive. About 2 minutes here.
set -euo pipefail

dest=${1:-/usr/local/lib/container-static}
version=$(dpkg-query -W -f='${source:Version}' libsystemd-dev)
stamp=$dest/libsystemd.version
if [[ -f $dest/libsystemd.a && -f $stamp && $(cat "$stamp") == "$version" ]]; then
        exit 0
fi

SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# systemd's build needs these beyond build-essential/meson/ninja.
need=(dpkg-dev gperf libcap-dev libmount-dev python3-jinja2)
missing=()
for p in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/static-libsystemd.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

# A private source list: the machine's apt configuration is left alone.
. /etc/os-release
mkdir -p "$work/apt/lists/partial" "$work/apt/parts"
cat >"$work/apt/sources.list" <<EOF
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $VERSION_CODENAME main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $VERSION_CODENAME-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security $VERSION_CODENAME-security main
EOF
apt_opts=(-o "Dir::Etc::sourcelist=$work/apt/sources.list" -o "Dir::Etc::sourceparts=$work/apt/parts"
        -o "Dir::State::Lists=$work/apt/lists" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" source -qq "systemd=$version" >/dev/null)
src=$(find "$work" -maxdepth 1 -type d -name 'systemd-*' | head -1)
[[ -n $src ]] || { echo "build-static-libsystemd: no systemd source unpacked" >&2; exit 1; }

meson setup "$work/build" "$src" --buildtype=release -Dstatic-libsystemd=pic --auto-features=disabled \
        -Dmode=release -Dtests=false -Dslow-tests=false -Dfuzz-tests=false -Dinstall-tests=false \
        -Dman=false -Dhtml=false -Dtranslations=false >"$work/setup.log" ||
        { cat "$work/setup.log" >&2; exit 1; }
# version.h first: libsystemd.a does not depend on it in systemd's build graph.
ninja -C "$work/build" version.h >/dev/null
ninja -C "$work/build" libsystemd.a >/dev/null
$SUDO install -D -m 0644 "$work/build/libsystemd.a" "$dest/libsystemd.a"
echo "$version" | $SUDO tee "$stamp" >/dev/null
echo "build-static-libsystemd: installed $dest/libsystemd.a ($version)"
