#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the offline default image "busybox:latest" as an OCI image archive from Debian's static
# busybox (package busybox-static), with standard tools only:
#   make-busybox-image.sh OUTPUT.tar [NAME:TAG]
# IMAGE_CONFIG_EXTRA='{"StopSignal": ...}' adds fields to the image config (tests use it).
# The archive holds an OCI image layout (oci-layout, index.json, blobs/sha256/...) with one
# gzip-compressed layer (the tree of make-busybox-rootfs.sh), an image config (Cmd ["sh"]) and a
# manifest. Output is reproducible: same busybox binary, same archive bytes.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || -z $1 ]]; then
        echo "usage: $0 OUTPUT.tar [NAME:TAG]" >&2
        exit 2
fi
out=$1
ref=${2:-busybox:latest}
here=$(cd "$(dirname "$0")" && pwd)

for tool in tar gzip sha256sum jq; do
        command -v "$tool" >/dev/null || { echo "$0: $tool not found (run scripts/setup-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/busybox-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$here/make-busybox-rootfs.sh" "$work/rootfs"

# Fixed owner, order and times make the layer (and so every digest) reproducible.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$work/rootfs" -cf "$work/layer.tar" .
gzip -n -9 <"$work/layer.tar" >"$work/layer.tar.gz"

source "$(dirname "${BASH_SOURCE[0]}")/oci-layout.sh"

diff_id=$(sha "$work/layer.tar")
layer_size=$(size "$work/layer.tar.gz")
layer_digest=$(put_blob "$work/layer.tar.gz")

arch=$(oci_arch)

jq -cn --arg diff "sha256:$diff_id" --arg arch "$arch" --argjson extra "${IMAGE_CONFIG_EXTRA:-{\}}" '{
        created: "1970-01-01T00:00:00Z",
        architecture: $arch,
        os: "linux",
        config: ({
                Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                Cmd: ["sh"],
                WorkingDir: "/",
                Labels: {"org.opencontainers.image.title": "busybox",
                         "org.opencontainers.image.description": "Debian busybox-static"}
        } + $extra),
        rootfs: {type: "layers", diff_ids: [$diff]},
        history: [{created: "1970-01-01T00:00:00Z", created_by: "make-busybox-image.sh"}]
}' >"$work/config.json"
oci_write_archive "$work/config.json" "$(jq -cn --arg l "sha256:$layer_digest" --argjson ls "$layer_size" \
        '[{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]')"
