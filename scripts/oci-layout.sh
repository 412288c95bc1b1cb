# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the scripts that build OCI image archives (make-busybox-image.sh,
# make-bench-image.sh). Expects $work (a scratch dir), $out (the archive path) and $ref (the
# image name recorded in index.json). Everything written is reproducible: fixed names, owners,
# order and times.

mkdir -p "$work/oci/blobs/sha256"

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
put_blob() { # FILE -> prints hex digest, moves FILE into the layout
        local h
        h=$(sha "$1")
        mv "$1" "$work/oci/blobs/sha256/$h"
        echo "$h"
}

oci_arch() {
        case $(uname -m) in
        aarch64) echo arm64 ;;
        x86_64) echo amd64 ;;
        *) uname -m ;;
        esac
}

# oci_write_archive CONFIG_JSON_FILE LAYERS_JSON: stores the config, writes manifest, index and
# oci-layout, and tars the layout to $out (next to it first, then renamed, so a reader never sees
# a half-written archive).
oci_write_archive() {
        local config_size config_digest manifest_size manifest_digest tmp
        config_size=$(size "$1")
        config_digest=$(put_blob "$1")

        jq -cn --arg c "sha256:$config_digest" --argjson cs "$config_size" --argjson layers "$2" '{
                schemaVersion: 2,
                mediaType: "application/vnd.oci.image.manifest.v1+json",
                config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
                layers: $layers
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

        mkdir -p "$(dirname "$out")"
        tmp=$(mktemp "${out}.XXXXXX")
        tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=ustar \
                -C "$work/oci" -cf "$tmp" oci-layout index.json blobs
        chmod 0644 "$tmp"
        mv -f "$tmp" "$out"
}
