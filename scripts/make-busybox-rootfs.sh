#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds a minimal root filesystem from Debian's static busybox (package busybox-static):
#   make-busybox-rootfs.sh OUTPUT_DIR
# The tree gets /bin/busybox plus one symlink per applet in /bin, /sbin, /usr/bin, /usr/sbin,
# /etc/passwd and /etc/group (root and nobody), and empty /tmp /proc /sys /dev /root /run /etc
# mount points. Running it again on the same directory brings it back to that state (idempotent);
# files that other tools added are left alone.
set -euo pipefail

if [[ $# -ne 1 || -z $1 ]]; then
        echo "usage: $0 OUTPUT_DIR" >&2
        exit 2
fi
out=$1
busybox=${BUSYBOX:-/bin/busybox}

if [[ ! -x $busybox ]]; then
        echo "$0: $busybox not found (install busybox-static)" >&2
        exit 1
fi
# A dynamically linked busybox would need the host's libc inside the rootfs.
if file -L "$busybox" 2>/dev/null | grep -q 'dynamically linked'; then
        echo "$0: $busybox is dynamically linked; install busybox-static" >&2
        exit 1
fi

# Build into a temporary sibling and rename, so a half-built tree is never observed by a
# concurrent user (and an interrupted run leaves the old tree intact).
mkdir -p "$(dirname "$out")"
if [[ -x $out/bin/busybox && -f $out/etc/passwd ]] && cmp -s "$busybox" "$out/bin/busybox"; then
        target=$out
else
        target=$(mktemp -d "${out%/}.tmp.XXXXXX")
        trap 'rm -rf "$target"' EXIT
fi

# mktemp -d makes 0700 directories; the root of a container must be traversable by every user.
chmod 0755 "$target"
for d in bin sbin usr/bin usr/sbin etc tmp proc sys dev root run var/tmp home; do
        mkdir -p "$target/$d"
done
chmod 1777 "$target/tmp" "$target/var/tmp"
chmod 0700 "$target/root"

install -m 0755 "$busybox" "$target/bin/busybox"

# busybox --list-full prints paths such as "usr/bin/wc".
"$busybox" --list-full | while read -r applet; do
        [[ -z $applet || $applet == bin/busybox ]] && continue
        dir=$(dirname "$applet")
        mkdir -p "$target/$dir"
        ln -sfn /bin/busybox "$target/$applet"
done
# Some tools look for sh in /usr/bin too.
[[ -e $target/usr/bin/sh ]] || ln -sfn /bin/busybox "$target/usr/bin/sh"

cat >"$target/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$target/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
nobody:x:65534:
GROUP
chmod 0644 "$target/etc/passwd" "$target/etc/group"
: >"$target/etc/hostname"
[[ -e $target/etc/resolv.conf ]] || : >"$target/etc/resolv.conf"
[[ -e $target/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$target/etc/hosts"

if [[ $target != "$out" ]]; then
        if [[ -e $out ]]; then
                old=$(mktemp -d "${out%/}.old.XXXXXX")
                mv -T "$out" "$old/tree"
                mv -T "$target" "$out"
                rm -rf "$old"
        else
                mv -T "$target" "$out"
        fi
        trap - EXIT
fi
