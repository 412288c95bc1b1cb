#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Images: load, ls, run IMAGE, rm of a used image, per-container overlay upper layers, prune, save.

load helpers
bats_require_minimum_version 1.5.0

# Mounts below this suite's root, one mount point per line.
root_mounts() {
        awk -v root="$ROOT/" 'index($2, root) == 1 { print $2 }' /proc/self/mounts
}

setup_file() {
        suite_setup
        # Built once per file: the offline default image, as setup builds it.
        export BUSYBOX_TAR=$BATS_FILE_TMPDIR/busybox.tar
        bash "$REPO/scripts/make-busybox-image.sh" "$BUSYBOX_TAR" >/dev/null
}

setup() {
        # Every test starts from a store holding busybox:latest.
        container image load -i "$BUSYBOX_TAR" >/dev/null
}

teardown() {
        remove_all
}

teardown_file() {
        if [[ -n ${ROOT:-} ]]; then
                remove_all
                # Nothing of ours may stay mounted, even after a failed test.
                local mp
                for mp in $(root_mounts | sort -r); do
                        umount -l "$mp" 2>/dev/null || true
                done
        fi
        suite_teardown
}

@test "image load from a file and from stdin; ls shows it (table and json)" {
        run container image load -i "$BUSYBOX_TAR"
        [ "$status" -eq 0 ]
        [ "$output" = "Loaded image: busybox:latest" ]
        run container image load <"$BUSYBOX_TAR"
        [ "$status" -eq 0 ]
        [ "$output" = "Loaded image: busybox:latest" ]

        run container image ls
        [ "$status" -eq 0 ]
        [[ ${lines[0]} == REPOSITORY* ]]
        [[ ${lines[1]} =~ ^busybox\ +latest\ +[0-9a-f]{12}\  ]]
        [ "${#lines[@]}" -eq 2 ]

        run container image ls --format json
        [ "$status" -eq 0 ]
        [ "$(jq -r 'length' <<<"$output")" = 1 ]
        [ "$(jq -r '.[0].names[0]' <<<"$output")" = busybox:latest ]
        [[ $(jq -r '.[0].digest' <<<"$output") == sha256:* ]]
        [ "$(jq -r '.[0].containers' <<<"$output")" = 0 ]
        [ "$(jq -r '.[0].size' <<<"$output")" -gt 0 ]
}

@test "image load shows progress on a terminal only, and its output stays clean" {
        command -v script >/dev/null || skip "script(1) not installed"
        # stderr is a terminal (script's pty); the archive arrives slowly through a pipe, so the
        # progress line appears (after 0.3 s), then is erased before the result is printed.
        local cmd
        cmd="{ head -c 65536 '$BUSYBOX_TAR'; sleep 1; tail -c +65537 '$BUSYBOX_TAR'; } |"
        cmd+=" '$CLI' --root '$ROOT' --run-dir '$RUN' image load"
        run script -qec "$cmd" /dev/null
        [ "$status" -eq 0 ]
        [[ $output == *"Loading "*" MiB sent"* ]]
        # The last thing on the terminal: the line erased, then the result alone.
        [[ $output == *$'\r\033[KLoaded image: busybox:latest'* ]]
        # A regular file on a terminal: loads the same (too fast here for a bar to appear).
        run script -qec "'$CLI' --root '$ROOT' --run-dir '$RUN' image load -i '$BUSYBOX_TAR'" /dev/null
        [ "$status" -eq 0 ]
        [[ $output == *"Loaded image: busybox:latest"* ]]
        # -q: nothing at all, even on a terminal.
        run script -qec "{ cat '$BUSYBOX_TAR'; sleep 1; } | '$CLI' --root '$ROOT' --run-dir '$RUN' image load -q" /dev/null
        [ "$status" -eq 0 ]
        [ -z "$output" ]
        # Not a terminal: no progress (the first test checks the exact output too).
        run container image load -i "$BUSYBOX_TAR"
        [ "$output" = "Loaded image: busybox:latest" ]
}

@test "garbage on stdin is refused and loads nothing" {
        run container image load < <(head -c 4096 /dev/urandom)
        [ "$status" -eq 125 ]
        [[ $output == *"loading the image"* ]]
        run container image ls --format json
        [ "$(jq -r 'length' <<<"$output")" = 1 ]
}

@test "run --rm busybox echo hello prints hello and leaves no mount" {
        run container run --rm busybox echo hello
        [ "$status" -eq 0 ]
        [ "$output" = hello ]
        [ -z "$(root_mounts)" ]
        [ -z "$(ls -A "$ROOT/images/containers")" ]
}

@test "the image's Cmd runs by default; flags override docker-style" {
        # The busybox image's Cmd is ["sh"]: with stdin closed it exits 0 at once.
        run container run --rm busybox </dev/null
        [ "$status" -eq 0 ]
        run container run --rm -e FOO=bar -w /tmp busybox sh -c 'echo "$FOO $PWD $PATH"'
        [ "$status" -eq 0 ]
        [ "$output" = "bar /tmp /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" ]
        run container run --rm --entrypoint /bin/echo busybox one two
        [ "$status" -eq 0 ]
        [ "$output" = "one two" ]
        run container run --rm busybox:latest true
        [ "$status" -eq 0 ]
        run container run --rm nosuchimage true
        [ "$status" -eq 125 ]
        [[ $output == *"no such image"* ]]
}

@test "the image's labels, exposed ports and stop signal are used; --label and --stop-signal override" {
        IMAGE_CONFIG_EXTRA='{"StopSignal": "SIGUSR1", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}}' \
                bash "$REPO/scripts/make-busybox-image.sh" "$BATS_TEST_TMPDIR/cfg.tar" cfgbox:1 >/dev/null
        container image load -q -i "$BATS_TEST_TMPDIR/cfg.tar" >/dev/null
        container run -d --name img1 --label org.opencontainers.image.title=mine cfgbox:1 \
                sh -c 'trap "exit 6" USR1; trap "exit 8" USR2; while :; do sleep 0.1; done'
        run container inspect img1
        [ "$(jq -r '.[0].configuration.labels["org.opencontainers.image.title"]' <<<"$output")" = mine ]
        [ "$(jq -r '.[0].configuration.labels["org.opencontainers.image.description"]' <<<"$output")" = "Debian busybox-static" ]
        [ "$(jq -c '.[0].configuration.exposedPorts | sort' <<<"$output")" = '["53/udp","8080/tcp"]' ]
        [ "$(jq -r '.[0].configuration.stopSignal' <<<"$output")" = SIGUSR1 ]
        container stop -t 5 img1
        [ "$(container inspect img1 | jq -r '.[0].exitCode')" = 6 ]
        container run -d --name img2 --stop-signal USR2 cfgbox:1 \
                sh -c 'trap "exit 6" USR1; trap "exit 8" USR2; while :; do sleep 0.1; done'
        container stop -t 5 img2
        [ "$(container inspect img2 | jq -r '.[0].exitCode')" = 8 ]
        container rm img1 img2
        container image rm cfgbox:1 >/dev/null
}

@test "ls --filter ancestor= matches the image, with or without its tag" {
        container run -d --name anc1 busybox sleep 60
        [ "$(container ls -q -f ancestor=busybox)" = anc1 ]
        [ "$(container ls -q -f ancestor=busybox:latest)" = anc1 ]
        [ -z "$(container ls -q -f ancestor=busybox:other)" ]
        [ -z "$(container ls -q -f ancestor=busy)" ]
        container rm -f anc1
}

@test "system prune removes stopped containers, then unnamed images, and every unused one with -a" {
        container run -d --name sp-run busybox sleep 60
        container run --name sp-stopped busybox true
        run container system prune
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = sp-stopped ]
        [[ $output == *"Deleted images: 0"* ]]
        run container inspect sp-stopped
        [ "$status" -ne 0 ]
        [ "$(container inspect sp-run | jq -r '.[0].status')" = running ]
        # busybox is in use: even -a keeps it.
        container system prune -a >/dev/null
        [ "$(container image ls --format json | jq length)" = 1 ]
        container rm -f sp-run
        run container system prune -a -f
        [ "$status" -eq 0 ]
        [[ $output == *"Deleted images: 1"* ]]
        [ "$(container image ls --format json | jq length)" = 0 ]
        run container system prune --everything
        [ "$status" -eq 125 ]
}

@test "--rootfs DIR and a directory argument still work" {
        run container run --rm --rootfs "$ROOTFS" echo fromdir
        [ "$status" -eq 0 ]
        [ "$output" = fromdir ]
        run container run --rm "$ROOTFS" echo fromarg
        [ "$status" -eq 0 ]
        [ "$output" = fromarg ]
}

@test "image rm of an image in use fails; -f removes it and the container keeps working" {
        run container create --name used busybox sleep 30
        [ "$status" -eq 0 ]
        run container image ls --format json
        [ "$(jq -r '.[0].containers' <<<"$output")" = 1 ]
        run container image rm busybox
        [ "$status" -eq 125 ]
        [[ $output == *"containers use it"* ]]
        run container image ls -q
        [ -n "$output" ]

        run container image rm -f busybox
        [ "$status" -eq 0 ]
        run container image ls -q
        [ -z "$output" ]
        run container start used
        [ "$status" -eq 0 ]
        run container exec used echo still
        [ "$status" -eq 0 ]
        [ "$output" = still ]
        run container rm -f used
        [ "$status" -eq 0 ]
        [ -z "$(root_mounts)" ]
}

@test "two containers from one image have independent upper layers" {
        run container run --name up1 busybox sh -c 'echo one >/marker; rm /bin/ls; cat /marker'
        [ "$status" -eq 0 ]
        [ "$output" = one ]
        run container run --name up2 busybox sh -c 'cat /marker 2>/dev/null || echo none; test -e /bin/ls && echo ls'
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = none ]
        [ "${lines[1]}" = ls ]
        # Each container's rootfs is its own overlay mount.
        [ "$(root_mounts | grep -c '/rootfs$')" -eq 2 ]
        [ "$(cat "$ROOT/images/containers/up1/upper/marker")" = one ]
        [ ! -e "$ROOT/images/containers/up2/upper/marker" ]
        # The stopped first container still sees its own changes when started again.
        run container start up1
        [ "$status" -eq 0 ]
        run container wait up1
        [ "$output" = 0 ]
        run container logs up1
        [[ $output == *one* ]]
}

@test "a --rm container's upper layer is volatile (never synced); a kept one's is not" {
        # The root filesystem's mount options, as the container sees them ("fsync=volatile" since
        # Linux 6.5, "volatile" before).
        run container run --rm busybox awk '$2 == "/" { print $4 }' /proc/mounts
        [ "$status" -eq 0 ]
        [[ ,$output, == *,volatile,* || ,$output, == *,fsync=volatile,* ]]
        run container run --name kept1 busybox awk '$2 == "/" { print $4 }' /proc/mounts
        [ "$status" -eq 0 ]
        [[ $output != *volatile* ]]
        [[ $output == *upperdir=* ]]
        container rm kept1
}

@test "--read-only mounts the image read-only" {
        run container run --rm --read-only busybox sh -c 'touch /x 2>&1; echo rc=$?'
        [ "$status" -eq 0 ]
        [[ $output == *"Read-only file system"* ]]
        [[ $output == *"rc=1"* ]]
}

@test "rm unmounts the overlay and removes the upper layer and the image reference" {
        run container create --name gone busybox true
        [ "$status" -eq 0 ]
        [ "$(root_mounts)" = "$ROOT/containers/gone/rootfs" ]
        [ -d "$ROOT/images/containers/gone/upper" ]
        run container rm gone
        [ "$status" -eq 0 ]
        [ -z "$(root_mounts)" ]
        [ ! -e "$ROOT/images/containers/gone" ]
        [ ! -e "$ROOT/containers/gone" ]
        run container image ls --format json
        [ "$(jq -r '.[0].containers' <<<"$output")" = 0 ]
        run container image rm busybox
        [ "$status" -eq 0 ]
}

@test "image inspect, tag, save and load round trip" {
        run container image inspect busybox
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[0].RepoTags[0]' <<<"$output")" = busybox:latest ]
        [ "$(jq -r '.[0].Config.Cmd[0]' <<<"$output")" = sh ]
        run container image tag busybox mybox:v1
        [ "$status" -eq 0 ]
        run container run --rm mybox:v1 echo tagged
        [ "$output" = tagged ]

        run container image save -o "$BATS_TEST_TMPDIR/saved.tar" mybox:v1
        [ "$status" -eq 0 ]
        [ -s "$BATS_TEST_TMPDIR/saved.tar" ]
        tar -tf "$BATS_TEST_TMPDIR/saved.tar" | grep -qx 'index.json'
        run container image rm busybox mybox:v1
        [ "$status" -eq 0 ]
        run container image ls -q
        [ -z "$output" ]
        run container image load -i "$BATS_TEST_TMPDIR/saved.tar"
        [ "$status" -eq 0 ]
        [[ $output == *"mybox:v1"* ]]
        run container run --rm mybox:v1 echo back
        [ "$output" = back ]
        run container image inspect nosuch
        [ "$status" -eq 125 ]
}

@test "image prune removes unused images and frees space" {
        run container image prune
        [ "$status" -eq 0 ]
        [[ $output == *"Deleted images: 0"* ]]
        run container image ls -q
        [ -n "$output" ]

        # In use: prune -a keeps it.
        run container create --name keep busybox true
        run container image prune -a
        [ "$status" -eq 0 ]
        [[ $output == *"Deleted images: 0"* ]]
        run container rm keep
        [ "$status" -eq 0 ]

        local before after
        before=$(du -sb "$ROOT/images" | cut -f1)
        run container image prune -a
        [ "$status" -eq 0 ]
        [[ $output == *"Deleted images: 1"* ]]
        after=$(du -sb "$ROOT/images" | cut -f1)
        ((after < before))
        run container image ls -q
        [ -z "$output" ]
        [ -z "$(ls -A "$ROOT/images/layers")" ]
}

@test "a load waiting for its archive does not hold up other clients" {
        # Half the archive, then nothing for 3 s: the load sits in read() meanwhile.
        size=$(stat -c %s "$BUSYBOX_TAR")
        { head -c $((size / 2)) "$BUSYBOX_TAR"; sleep 3; tail -c +$((size / 2 + 1)) "$BUSYBOX_TAR"; } |
                container image load >"$BATS_TEST_TMPDIR/load.out" 2>&1 &
        load_pid=$!
        sleep 0.5
        start=$(date +%s%N)
        run container image ls -q
        [ "$status" -eq 0 ]
        run container ls -a
        [ "$status" -eq 0 ]
        elapsed_ms=$((($(date +%s%N) - start) / 1000000))
        ((elapsed_ms < 1500))
        kill -0 "$load_pid" # still loading
        wait "$load_pid"
        [ "$(cat "$BATS_TEST_TMPDIR/load.out")" = "Loaded image: busybox:latest" ]
        run container run --rm busybox echo loaded
        [ "$output" = loaded ]
}

@test "rm of a container that wrote 60,000 files does not hold up other clients; the files go" {
        # Deleting them took ~0.85 s here, during which the API server answered nobody.
        container run --name many busybox sh -c 'mkdir /d && cd /d && seq 60000 | xargs touch'
        container rm many &
        rm_pid=$!
        sleep 0.1
        start=$(date +%s%N)
        run container ls -a
        elapsed_ms=$((($(date +%s%N) - start) / 1000000))
        [ "$status" -eq 0 ]
        ((elapsed_ms < 500))
        wait "$rm_pid"
        # Its image reference went with it, at once.
        run container image rm busybox
        [ "$status" -eq 0 ]
        # The directories moved aside are deleted in the background.
        wait_for 60 bash -c "! ls -A '$ROOT/images/tmp' '$ROOT/containers' | grep -q removed"
}
