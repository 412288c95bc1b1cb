#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Builds a large benchmark image as an OCI image archive, with standard tools only:
#   make-bench-image.sh OUTPUT.tar [NAME:TAG]
# Layer 1 is the busybox tree of make-busybox-rootfs.sh (so the image runs); then LAYERS (default 4)
# gzip layers of FILES (default 20000) files in total, of mixed sizes (mostly small, a few large),
# TOTAL_MB (default 200) MiB in all. Contents come from a seeded AES-CTR stream, so gzip cannot
# shrink them and the same inputs give the same archive.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 || -z $1 ]]; then
        echo "usage: $0 OUTPUT.tar [NAME:TAG]" >&2
        exit 2
fi
out=$1
ref=${2:-bench-images:latest}
LAYERS=${LAYERS:-4}
FILES=${FILES:-20000}
TOTAL_MB=${TOTAL_MB:-200}
here=$(cd "$(dirname "$0")" && pwd)

for tool in tar gzip sha256sum jq openssl perl; do
        command -v "$tool" >/dev/null || { echo "$0: $tool not found" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-image.XXXXXX")
trap 'rm -rf "$work"' EXIT

# gen_layer DIR INDEX: FILES/LAYERS files, TOTAL_MB/LAYERS MiB, under DIR/data/lINDEX/dNN/.
gen_layer() {
        local dir=$1 idx=$2 n=$((FILES / LAYERS)) bytes=$((TOTAL_MB * 1048576 / LAYERS))
        mkdir -p "$dir"
        { openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass "pass:bench-layer-$idx" </dev/zero 2>/dev/null || true; } |
                head -c "$bytes" |
                perl -e '
                use strict; use warnings;
                my ($dir, $idx, $n, $bytes) = @ARGV;
                srand(1000 + $idx);
                # Mostly small files, some medium, a few large: then scaled to the byte budget.
                my @sz;
                my $sum = 0;
                for (1 .. $n) {
                        my $p = rand();
                        my $s = $p < 0.70 ? 256 + int(rand(4096))
                              : $p < 0.95 ? 4096 + int(rand(32768))
                              :             32768 + int(rand(524288));
                        push @sz, $s;
                        $sum += $s;
                }
                my $left = $bytes;
                binmode STDIN;
                for my $i (0 .. $n - 1) {
                        my $s = $i == $n - 1 ? $left : int($sz[$i] * $bytes / $sum);
                        $s = $left if $s > $left;
                        $left -= $s;
                        my $d = sprintf("%s/data/l%d/d%02d", $dir, $idx, $i % 64);
                        mkdir "$dir/data"; mkdir "$dir/data/l$idx"; mkdir $d;
                        my $buf = "";
                        read(STDIN, $buf, $s) == $s or die "short read\n" if $s > 0;
                        open(my $fh, ">:raw", sprintf("%s/f%05d.bin", $d, $i)) or die "$d: $!\n";
                        print $fh $buf;
                        close $fh;
                }
                ' "$dir" "$idx" "$n" "$bytes"
}

# make_layer SRC BASE: writes BASE.tar (for the diff ID) and BASE.tar.gz, reproducibly.
make_layer() {
        tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=pax \
                --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
                -C "$1" -cf "$2.tar" .
        gzip -n -1 <"$2.tar" >"$2.tar.gz"
}

"$here/make-busybox-rootfs.sh" "$work/src0"
make_layer "$work/src0" "$work/layer0" &
pids=($!)
for ((i = 1; i <= LAYERS; i++)); do
        (gen_layer "$work/src$i" "$i" && make_layer "$work/src$i" "$work/layer$i" && rm -rf "$work/src$i") &
        pids+=($!)
        # Two at a time: bounded CPU and memory on a small machine.
        if ((${#pids[@]} >= 2)); then
                wait "${pids[0]}"
                pids=("${pids[@]:1}")
        fi
done
for p in "${pids[@]}"; do wait "$p"; done

source "$(dirname "${BASH_SOURCE[0]}")/oci-layout.sh"

diff_ids='[]'
layers='[]'
history='[]'
for ((i = 0; i <= LAYERS; i++)); do
        d=$(sha "$work/layer$i.tar")
        rm -f "$work/layer$i.tar"
        s=$(size "$work/layer$i.tar.gz")
        g=$(put_blob "$work/layer$i.tar.gz")
        diff_ids=$(jq -c --arg d "sha256:$d" '. + [$d]' <<<"$diff_ids")
        layers=$(jq -c --arg g "sha256:$g" --argjson s "$s" \
                '. + [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $g, size: $s}]' <<<"$layers")
        history=$(jq -c --arg i "$i" '. + [{created: "1970-01-01T00:00:00Z", created_by: ("make-bench-image.sh layer " + $i)}]' <<<"$history")
done

arch=$(oci_arch)

jq -cn --argjson diffs "$diff_ids" --argjson hist "$history" --arg arch "$arch" '{
        created: "1970-01-01T00:00:00Z",
        architecture: $arch,
        os: "linux",
        config: {
                Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                Cmd: ["sh"],
                WorkingDir: "/"
        },
        rootfs: {type: "layers", diff_ids: $diffs},
        history: $hist
}' >"$work/config.json"
oci_write_archive "$work/config.json" "$layers"
