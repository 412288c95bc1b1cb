#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds the offline default image "busybox:latest" as an OCI image archive from Debian's static
# busybox (package busybox-static), with standard tools only:
#   make-busybox-image.sh OUTPUT.tar [NAME:TAG]
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

mkdir -p "$work/oci/blobs/sha256"
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
put_blob() { # FILE -> prints hex digest, moves FILE into the layout
        local h
        h=$(sha "$1")
        mv "$1" "$work/oci/blobs/sha256/$h"
        echo "$h"
}

diff_id=$(sha "$work/layer.tar")
layer_size=$(size "$work/layer.tar.gz")
layer_digest=$(put_blob "$work/layer.tar.gz")

arch=amd64
case $(uname -m) in
aarch64) arch=arm64 ;;
x86_64) arch=amd64 ;;
*) arch=$(uname -m) ;;
esac

jq -cn --arg diff "sha256:$diff_id" --arg arch "$arch" '{
        created: "1970-01-01T00:00:00Z",
        architecture: $arch,
        os: "linux",
        config: {
                Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                Cmd: ["sh"],
                WorkingDir: "/",
                Labels: {"org.opencontainers.image.title": "busybox",
                         "org.opencontainers.image.description": "Debian busybox-static"}
        },
        rootfs: {type: "layers", diff_ids: [$diff]},
        history: [{created: "1970-01-01T00:00:00Z", created_by: "make-busybox-image.sh"}]
}' >"$work/config.json"
config_size=$(size "$work/config.json")
config_digest=$(put_blob "$work/config.json")

jq -cn --arg c "sha256:$config_digest" --argjson cs "$config_size" \
        --arg l "sha256:$layer_digest" --argjson ls "$layer_size" '{
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
        layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $l, size: $ls}]
}' >"$work/manifest.json"
manifest_size=$(size "$work/manifest.json")
manifest_digest=$(put_blob "$work/manifest.json")

jq -cn --arg m "sha256:$manifest_digest" --argjson ms "$manifest_size" --arg ref "$ref" '{
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
                     annotations: {"org.opencontainers.image.ref.name": $ref}}]
}' >"$work/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"

# Write next to the destination and rename, so a reader never sees a half-written archive.
mkdir -p "$(dirname "$out")"
tmp=$(mktemp "${out}.XXXXXX")
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=ustar \
        -C "$work/oci" -cf "$tmp" oci-layout index.json blobs
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
