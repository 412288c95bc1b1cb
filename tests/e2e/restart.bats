#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# API server crashes and restarts, broken registry entries, concurrent clients.

load helpers

@test "API server killed with SIGKILL: containers stay managed after a restart" {
        container run -d --name rs1 --rootfs "$ROOTFS" sleep 120
        container run -d --name rs2 --rootfs "$ROOTFS" sleep 120
        container run -d --name rs3 --rootfs "$ROOTFS" sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done'
        container create --name rs4 --rootfs "$ROOTFS" true
        pid=$(apiserver_pid)
        [ -n "$pid" ]
        kill -9 "$pid"
        wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"

        # The next CLI call starts a new server that re-attaches.
        run container ls --format json
        [ "$status" -eq 0 ]
        [ "$(jq -r '[.[] | .id] | sort | join(" ")' <<<"$output")" = "rs1 rs2 rs3" ]
        [ "$(jq -r '[.[] | .status] | unique | join(" ")' <<<"$output")" = running ]
        [ "$(apiserver_pid)" != "$pid" ]
        run container ls -aq
        [[ $output == *rs4* ]]

        run container exec rs1 echo still-here
        [ "$status" -eq 0 ]
        [ "$output" = still-here ]
        run container stop -t 5 rs3
        [ "$status" -eq 0 ]
        [ "$(container inspect rs3 | jq -r '.[0].exitCode')" = 0 ]
        run container kill rs2
        [ "$status" -eq 0 ]
        run container wait rs2
        [ "$output" = 137 ]
        run container rm -f rs1
        [ "$status" -eq 0 ]
        run container ls -q
        [ "$output" = "" ]
}

@test "inspect's initPid is the container's init on the host, found again after a restart, null after exit" {
        container run -d --name ip1 --rootfs "$ROOTFS" sleep 120
        ipid=$(container inspect ip1 | jq -r '.[0].initPid')
        [[ $ipid =~ ^[0-9]+$ ]]
        [ "$(tr '\0' ' ' <"/proc/$ipid/cmdline")" = "sleep 120 " ]
        grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$ipid/status"
        [ "$ipid" != "$(container inspect ip1 | jq -r '.[0].pid')" ] # that one is the runtime service's
        [ "$(container top --format json ip1 | jq '.[] | select(.containerPid == 1) | .pid')" = "$ipid" ]

        # Crash the API server and take initPid out of the saved state: the new server must learn it
        # from the runtime service when it re-attaches.
        pid=$(apiserver_pid)
        kill -9 "$pid"
        wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
        jq 'del(.initPid)' "$ROOT/containers/ip1/state.json" >"$BATS_TEST_TMPDIR/state.json"
        cp "$BATS_TEST_TMPDIR/state.json" "$ROOT/containers/ip1/state.json"
        [ "$(container inspect ip1 | jq -r '.[0].initPid')" = "$ipid" ]

        container stop -t 1 ip1
        [ "$(container inspect ip1 | jq -r '.[0].initPid')" = null ]
        container start ip1
        npid=$(container inspect ip1 | jq -r '.[0].initPid')
        [[ $npid =~ ^[0-9]+$ && $npid != "$ipid" ]]
        [ "$(tr '\0' ' ' <"/proc/$npid/cmdline")" = "sleep 120 " ]
        container rm -f ip1
}

@test "a container that exited while the API server was down is recorded" {
        container run -d --name down1 --rootfs "$ROOTFS" sh -c 'sleep 1; exit 3'
        pid=$(apiserver_pid)
        kill -9 "$pid"
        sleep 2
        run container inspect down1
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[0].status' <<<"$output")" = stopped ]
        # Its runtime service exited with the container (nothing to re-attach to): exit unknown,
        # and the reason is recorded.
        code=$(jq -r '.[0].exitCode' <<<"$output")
        [ "$code" = 3 ] || [ "$code" = null ]
        [ "$(jq -r '.[0].error' <<<"$output")" != "" ]
}

@test "an unreadable container directory is listed as broken and never deleted" {
        mkdir -p "$ROOT/containers/broken1"
        echo '{not json' >"$ROOT/containers/broken1/config.json"
        container system stop
        run container ls -a --format json
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[] | select(.id=="broken1") | .status' <<<"$output")" = broken ]
        [ "$(jq -r '.[] | select(.id=="broken1") | .error' <<<"$output")" != null ]
        run container prune
        [ -d "$ROOT/containers/broken1" ]
        run container rm broken1
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState: container broken1 is broken"* ]]
        [ -d "$ROOT/containers/broken1" ]
        run container start broken1
        [ "$status" -eq 125 ]
        run container rm -f broken1
        [ "$status" -eq 0 ]
        [ ! -e "$ROOT/containers/broken1" ]
}

@test "state survives a clean API server restart" {
        container run --name keep1 --rootfs "$ROOTFS" sh -c 'exit 4' || true
        container system stop
        run container system status
        [ "$status" -eq 1 ]
        container system start
        run container inspect keep1
        [ "$(jq -r '.[0].exitCode' <<<"$output")" = 4 ]
        [ "$(jq -r '.[0].status' <<<"$output")" = stopped ]
}

@test "after a restart: --rm containers that are not running are removed, created ones stay, a lost state is no breakage" {
        container create --rm --name rmc1 --rootfs "$ROOTFS" true
        # A --rm container has no state.json until it starts.
        [ ! -e "$ROOT/containers/rmc1/state.json" ]
        container create --rm --name rmx1 --rootfs "$ROOTFS" true
        container run --name lost1 --rootfs "$ROOTFS" true
        container system stop
        # What a crash between an exit and its removal leaves, and what a power loss can leave.
        echo '{"status": "stopped", "exitCode": 0}' >"$ROOT/containers/rmx1/state.json"
        : >"$ROOT/containers/lost1/state.json"
        run container ls -a --format json
        [ "$status" -eq 0 ]
        [ "$(jq -r '[.[] | .id] | sort | join(" ")' <<<"$output")" = "lost1 rmc1" ]
        [ "$(jq -r '.[] | select(.id=="rmc1") | .status' <<<"$output")" = created ]
        [ "$(jq -r '.[] | select(.id=="rmc1") | .createdAt' <<<"$output")" != null ]
        [ "$(jq -r '.[] | select(.id=="lost1") | .status' <<<"$output")" = stopped ]
        [ "$(jq -r '.[] | select(.id=="lost1") | .exitCode' <<<"$output")" = null ]
        [[ $(jq -r '.[] | select(.id=="lost1") | .error' <<<"$output") == *"state was lost"* ]]
        [ ! -e "$ROOT/containers/rmx1" ]
        # Both still work: a start, an rm.
        run container start -a rmc1
        [ "$status" -eq 0 ]
        run container ls -aq
        [ "$output" = lost1 ]
        run container rm lost1
        [ "$status" -eq 0 ]
}

@test "two CLIs creating 20 containers at once: none lost, none duplicated" {
        create_many() {
                local tag=$1 i
                for i in $(seq 1 20); do
                        "$CLI" --root "$ROOT" --run-dir "$RUN" create --name "cc-$tag-$i" --rootfs "$ROOTFS" true >/dev/null || echo "fail $tag $i"
                        "$CLI" --root "$ROOT" --run-dir "$RUN" create --rootfs "$ROOTFS" true >/dev/null || echo "fail $tag anon $i"
                done
        }
        # The server is not running: both CLIs race to start it, too.
        container system stop
        create_many a >"$BATS_TEST_TMPDIR/a" 2>&1 &
        a=$!
        create_many b >"$BATS_TEST_TMPDIR/b" 2>&1 &
        b=$!
        wait $a
        wait $b
        [ ! -s "$BATS_TEST_TMPDIR/a" ]
        [ ! -s "$BATS_TEST_TMPDIR/b" ]
        run container ls -aq
        [ "$(wc -l <<<"$output")" -eq 80 ]
        [ "$(sort <<<"$output" | uniq -d)" = "" ]
        [ "$(grep -c '^cc-a-' <<<"$output")" -eq 20 ]
        [ "$(grep -c '^cc-b-' <<<"$output")" -eq 20 ]
        [ "$(ls "$ROOT/containers" | wc -l)" -eq 80 ]
        # and the same name from both at once: exactly one wins
        container create --name same --rootfs "$ROOTFS" true >"$BATS_TEST_TMPDIR/s1" 2>&1 &
        container create --name same --rootfs "$ROOTFS" true >"$BATS_TEST_TMPDIR/s2" 2>&1 &
        wait
        [ "$(cat "$BATS_TEST_TMPDIR/s1" "$BATS_TEST_TMPDIR/s2" | grep -c '^same$')" -eq 1 ]
}

@test "the CLI says how to start the API server when it cannot" {
        container system stop
        run env CONTAINER_APISERVER=/nonexistent "$CLI" --root "$ROOT" --run-dir "$RUN" ls
        [ "$status" -eq 125 ]
        [[ $output == "container: starting the API server: "* ]]
        container system start
}

@test "OCI runtime: the API server's default, stored per container, kept across restarts" {
        have_runc || skip "runc not installed"
        container create --name ocr-old --rootfs "$ROOTFS" true
        container run -d --name ocr-runc --runtime runc --rootfs "$ROOTFS" sleep 120
        container create --name ocr-legacy --rootfs "$ROOTFS" echo legacy
        container system stop
        # A configuration written before containers had a "runtime": they all ran with crun.
        jq 'del(.runtime)' "$ROOT/containers/ocr-legacy/config.json" >"$BATS_TEST_TMPDIR/config.json"
        mv "$BATS_TEST_TMPDIR/config.json" "$ROOT/containers/ocr-legacy/config.json"
        # An invalid default is refused at once, by the CLI that would start the server.
        run env CONTAINER_OCI_RUNTIME=kata "$CLI" --root "$ROOT" --run-dir "$RUN" ls
        [ "$status" -eq 125 ]
        [[ $output == "container: starting the API server: invalidArgument: CONTAINER_OCI_RUNTIME: "* ]]
        run "$APISERVER" --root "$ROOT" --run-dir "$RUN" --oci-runtime /no/such/runtime
        [ "$status" -ne 0 ]
        [[ $output == *"--oci-runtime: OCI runtime /no/such/runtime: "* ]]

        (export CONTAINER_OCI_RUNTIME=runc && container system start >/dev/null)
        run container system status
        [[ $output == *"oci:        runc (default OCI runtime)"* ]]
        container create --name ocr-new --rootfs "$ROOTFS" true
        run container ls -a --format json
        [ "$(jq -r '.[] | select(.id=="ocr-new") | .configuration.runtime' <<<"$output")" = runc ]
        [ "$(jq -r '.[] | select(.id=="ocr-old") | .configuration.runtime' <<<"$output")" = "${CONTAINER_OCI_RUNTIME:-crun}" ]
        [ "$(jq -r '.[] | select(.id=="ocr-legacy") | .configuration.runtime' <<<"$output")" = crun ]
        [ "$(jq -r '.[] | select(.id=="ocr-runc") | .status' <<<"$output")" = running ]
        # The runc container was re-attached.
        run container exec ocr-runc echo reattached
        [ "$status" -eq 0 ]
        [ "$output" = reattached ]
        run container stop -t 1 ocr-runc
        [ "$status" -eq 0 ]
        [ "$(container inspect ocr-runc | jq -r '.[0].exitCode')" = 137 ]
        run container start -a ocr-legacy
        [ "$status" -eq 0 ]
        [ "$output" = legacy ]

        # Back to this suite's default.
        container system stop
        container system start
        [[ "$(container system status)" == *"oci:        ${CONTAINER_OCI_RUNTIME:-crun} "* ]]
}
