#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The container lifecycle, exit codes, bad input.

load helpers
bats_require_minimum_version 1.5.0

@test "create, start, ls, inspect, stop, rm" {
        run container create --name life1 --rootfs "$ROOTFS" sleep 30
        [ "$status" -eq 0 ]
        [ "$output" = life1 ]
        run container ls -a --format json
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[] | select(.id=="life1") | .status' <<<"$output")" = created ]
        run container ls -q
        [ "$output" = "" ]

        run container start life1
        [ "$status" -eq 0 ]
        run container ls -q
        [ "$output" = life1 ]
        run container inspect life1
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[0].status' <<<"$output")" = running ]
        [ "$(jq -r '.[0].rootfs' <<<"$output")" = "$(realpath "$ROOTFS")" ]
        [ "$(jq -r '.[0].command | join(" ")' <<<"$output")" = "sleep 30" ]
        [ "$(jq -r '.[0].startedAt' <<<"$output")" != null ]
        [ "$(jq -r '.[0].pid' <<<"$output")" -gt 0 ]

        run container stop -t 1 life1
        [ "$status" -eq 0 ]
        [ "$output" = life1 ]
        run container inspect life1
        [ "$(jq -r '.[0].status' <<<"$output")" = stopped ]
        [ "$(jq -r '.[0].exitCode' <<<"$output")" = 137 ]
        [ "$(jq -r '.[0].exitedAt' <<<"$output")" != null ]
        # state.json on disk agrees.
        [ "$(jq -r .status "$ROOT/containers/life1/state.json")" = stopped ]

        # a stopped container starts again
        run container start life1
        [ "$status" -eq 0 ]
        run container ls -q
        [ "$output" = life1 ]

        run container rm -f life1
        [ "$status" -eq 0 ]
        run container ls -aq
        [ "$output" = "" ]
        [ ! -e "$ROOT/containers/life1" ]
}

@test "ls --format json and inspect have the documented shape" {
        container run -d --name shape1 -l app=web --rootfs "$ROOTFS" sleep 30
        run container ls --format json
        [ "$status" -eq 0 ]
        keys=$(jq -c '.[0] | keys_unsorted' <<<"$output")
        [ "$keys" = '["id","status","image","rootfs","command","createdAt","startedAt","exitCode","exitedAt","pid","initPid","labels","configuration","error"]' ]
        [ "$(jq -r '.[0].labels.app' <<<"$output")" = web ]
        run container inspect shape1
        [ "$(jq -c '.[0] | keys_unsorted' <<<"$output")" = "$keys" ]
        [ "$(jq -r '.[0].configuration.process.args[0]' <<<"$output")" = sleep ]
        run container ls
        [ "$status" -eq 0 ]
        [[ ${lines[0]} == "CONTAINER ID"* ]]
        [[ ${lines[1]} == shape1*Up* ]]
}

@test "generated ids are 12 hex characters" {
        run container create --rootfs "$ROOTFS" true
        [ "$status" -eq 0 ]
        [[ $output =~ ^[0-9a-f]{12}$ ]]
}

@test "exit codes: 0, 1, 42" {
        run container run --rm --rootfs "$ROOTFS" true
        [ "$status" -eq 0 ]
        run container run --rm --rootfs "$ROOTFS" false
        [ "$status" -eq 1 ]
        run container run --rm --rootfs "$ROOTFS" sh -c 'exit 42'
        [ "$status" -eq 42 ]
        # --rm left nothing behind
        run container ls -aq
        [ "$output" = "" ]
}

@test "exit code 127: command not found" {
        run -127 container run --rm --rootfs "$ROOTFS" /no/such/command
        [[ $output == *"container: starting the container: "* ]]
        run container ls -aq
        [ "$output" = "" ]
}

@test "exit code 126: command not executable" {
        run -126 container run --rm --rootfs "$ROOTFS" /etc/passwd
        [[ $output == *"container: starting the container: "* ]]
}

@test "exit code 125: tool failures" {
        run container run --rootfs "$ROOTFS" --no-such-flag true
        [ "$status" -eq 125 ]
        run container run --rootfs /no/such/dir true
        [ "$status" -eq 125 ]
        [[ $output == "container: --rootfs: notFound: "* ]]
        run container start nosuchcontainer
        [ "$status" -eq 125 ]
        [ "$output" = "container: starting nosuchcontainer: notFound: no such container: nosuchcontainer" ]
        run container frobnicate
        [ "$status" -eq 125 ]
        run container run busybox:latest true
        [ "$status" -eq 125 ]
        # This suite's store is empty (tests/e2e/images.bats runs images).
        [[ $output == *"notFound"*"no such image"* ]]
}

@test "exit code 137: killed" {
        container run -d --name k137 --rootfs "$ROOTFS" sleep 30
        run container kill k137
        [ "$status" -eq 0 ]
        run container wait k137
        [ "$output" = 137 ]
        run container inspect k137
        [ "$(jq -r '.[0].exitCode' <<<"$output")" = 137 ]
}

@test "exit code 130: SIGINT forwarded to the container process" {
        # Without a terminal the CLI forwards SIGINT; the process exits 130 from its trap.
        "$CLI" --root "$ROOT" --run-dir "$RUN" run --rm --name sig130 --rootfs "$ROOTFS" \
                sh -c 'trap "exit 130" INT; echo ready; while :; do sleep 0.1; done' >"$BATS_TEST_TMPDIR/out" &
        pid=$!
        wait_for 10 grep -q ready "$BATS_TEST_TMPDIR/out"
        kill -INT $pid
        rc=0
        wait $pid || rc=$?
        [ "$rc" -eq 130 ]
}

@test "bad names are refused by the CLI and by the server" {
        for name in ../x .hidden -x 'a/b' "$(printf 'a%.0s' {1..65})" ''; do
                run container create --name "$name" --rootfs "$ROOTFS" true
                [ "$status" -eq 125 ]
                [[ $output == "container: "*"invalid"* ]]
        done
        # the server checks too: a path in an id never reaches the filesystem
        run container inspect ../x
        [ "$status" -eq 125 ]
        [[ $output == *invalidArgument* ]]
        run container rm ../../etc
        [ "$status" -eq 125 ]
        [ -z "$(ls "$ROOT/containers")" ]
}

@test "names are unique" {
        container create --name dup1 --rootfs "$ROOTFS" true
        run container create --name dup1 --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [[ $output == *"exists: container name dup1 is already in use"* ]]
        [ "$(container ls -aq | grep -c dup1)" -eq 1 ]
}

@test "wrong states: rm of a running container, kill of a stopped one" {
        container run -d --name ws1 --rootfs "$ROOTFS" sleep 30
        run container rm ws1
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState: container ws1 is running"* ]]
        container stop -t 0 ws1
        run container kill ws1
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState"* ]]
        run container rm ws1
        [ "$status" -eq 0 ]
}

@test "rm -f of a running container" {
        container run -d --name rmf1 --rootfs "$ROOTFS" sleep 60
        run container rm -f rmf1
        [ "$status" -eq 0 ]
        run container ls -aq
        [ "$output" = "" ]
        [ ! -e "$ROOT/containers/rmf1" ]
        # Its runtime service exits soon after (it cleans up after the answer). The bracket keeps
        # pgrep from matching the command line of the bash that runs it.
        wait_for 5 bash -c "! pgrep -f 'container-runtim[e] --id rmf1 ' >/dev/null"
}

@test "prune removes stopped and created containers, not running ones" {
        container run --name p1 --rootfs "$ROOTFS" true
        container create --name p2 --rootfs "$ROOTFS" true
        container run -d --name p3 --rootfs "$ROOTFS" sleep 30
        run container prune -f
        [ "$status" -eq 0 ]
        [ "$(sort <<<"$output" | tr '\n' ' ')" = "p1 p2 " ]
        run container ls -aq
        [ "$output" = p3 ]
}

@test "stop is idempotent and honours -t and -s" {
        container run -d --name st1 --rootfs "$ROOTFS" sh -c 'trap "exit 7" USR1; while :; do sleep 0.1; done'
        run container stop -s USR1 -t 5 st1
        [ "$status" -eq 0 ]
        run container inspect st1
        [ "$(jq -r '.[0].exitCode' <<<"$output")" = 7 ]
        run container stop st1
        [ "$status" -eq 0 ]
        # --time is the long name of -t: a process that ignores TERM is killed after it.
        container run -d --name st2 --rootfs "$ROOTFS" sleep 60
        start=$SECONDS
        run container stop --time 1 st2
        [ "$status" -eq 0 ]
        ((SECONDS - start < 8))
        [ "$(container inspect st2 | jq -r '.[0].exitCode')" = 137 ]
}

@test "--stop-signal is what stop sends first; unknown signals are refused by the CLI and the API server" {
        container run -d --name ss1 --stop-signal SIGUSR2 --rootfs "$ROOTFS" sh -c 'trap "exit 9" USR2; while :; do sleep 0.1; done'
        [ "$(container inspect ss1 | jq -r '.[0].configuration.stopSignal')" = SIGUSR2 ]
        run container stop -t 5 ss1
        [ "$status" -eq 0 ]
        [ "$(container inspect ss1 | jq -r '.[0].exitCode')" = 9 ]
        # stop -s still wins over the stored signal
        container run -d --name ss2 --stop-signal 10 --rootfs "$ROOTFS" sh -c 'trap "exit 4" TERM; trap "exit 5" USR1; while :; do sleep 0.1; done'
        run container stop -s TERM -t 5 ss2
        [ "$(container inspect ss2 | jq -r '.[0].exitCode')" = 4 ]
        container rm ss1 ss2
        run container run --rm --stop-signal NOPE --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [ "${#lines[@]}" -eq 1 ]
        [ "$output" = 'container: --stop-signal: invalidArgument: unknown signal "NOPE"' ]
        for sig in '"NOPE"' '"0"' '"SIGRTMIN"' 15; do
                run api_create badsig stopSignal "$sig"
                [ "$status" -eq 1 ]
                [[ $output == *"invalidArgument"* ]]
        done
        run container ls -aq
        [ "$output" = "" ]
}

@test "kill -s sends the named signal" {
        container run -d --name ks1 --rootfs "$ROOTFS" sh -c 'trap "exit 3" TERM; while :; do sleep 0.1; done'
        run container kill -s TERM ks1
        [ "$status" -eq 0 ]
        run container wait ks1
        [ "$output" = 3 ]
}

@test "kill waits for the exit without holding up other clients" {
        # SIGKILL is answered once the process has exited. A process in a frozen cgroup v1 freezer
        # cannot exit until thawed: the API server must go on serving meanwhile.
        [[ -e /sys/fs/cgroup/freezer/cgroup.procs ]] || skip "no cgroup v1 freezer"
        container run -d --name frozen1 --rootfs "$ROOTFS" sleep 60
        # The container's process is a child of its runtime service (inspect's pid).
        pid=$(pgrep -P "$(container inspect frozen1 | jq -r '.[0].pid')" -x sleep)
        freezer=/sys/fs/cgroup/freezer$(awk -F: '$2 == "freezer" { print $3 }' /proc/"$pid"/cgroup)
        [[ -d $freezer && $freezer != /sys/fs/cgroup/freezer/ ]]
        echo FROZEN >"$freezer/freezer.state"
        container kill frozen1 >"$BATS_TEST_TMPDIR/kill.out" 2>&1 &
        kill_pid=$!
        sleep 0.3
        start=$(date +%s%N)
        ls_status=0
        container ls >/dev/null || ls_status=$?
        elapsed_ms=$((($(date +%s%N) - start) / 1000000))
        kill_waiting=0
        kill -0 "$kill_pid" && kill_waiting=1 # still waiting for the exit
        # Thawed before any check can fail: a frozen process would outlive the test.
        echo THAWED >"$freezer/freezer.state"
        wait "$kill_pid"
        [ "$kill_waiting" -eq 1 ]
        [ "$ls_status" -eq 0 ]
        ((elapsed_ms < 1000))
        [ "$(cat "$BATS_TEST_TMPDIR/kill.out")" = frozen1 ]
        [ "$(container wait frozen1)" = 137 ]
        container rm frozen1
}

@test "restart stops and starts again; a stopped container is started; errors are per container" {
        container run -d --name rs1 --rootfs "$ROOTFS" sleep 60
        first=$(container inspect rs1 | jq -r '.[0].startedAt')
        run container restart -t 0 rs1
        [ "$status" -eq 0 ]
        [ "$output" = rs1 ]
        [ "$(container inspect rs1 | jq -r '.[0].status')" = running ]
        [ "$(container inspect rs1 | jq -r '.[0].startedAt')" != "$first" ]
        container stop -t 0 rs1
        run container restart rs1 nosuch1
        [ "$status" -eq 125 ]
        [[ ${lines[0]} == rs1 ]]
        [[ $output == *"restarting nosuch1: notFound: no such container: nosuch1"* ]]
        [ "$(container inspect rs1 | jq -r '.[0].status')" = running ]
        container rm -f rs1
}

@test "every command answers --help with its usage and does nothing else" {
        local cmds=(run create start stop restart kill pause unpause rm ls ps exec logs inspect stats top cp export prune wait
                update image "image load" "image ls" "image rm" "image inspect" "image tag" "image prune"
                "image save" system "system start" "system stop" "system status" "system version")
        for cmd in "${cmds[@]}"; do
                # shellcheck disable=SC2086 # "image ls" is two words
                run container $cmd --help
                [ "$status" -eq 0 ] || { echo "$cmd --help: exit $status: $output"; false; }
                [[ $output == Usage:* ]] || { echo "$cmd --help: $output"; false; }
        done
        # "system stop --help" did not stop the server.
        run container system status
        [[ $output == *"is running"* ]]
}

@test "system status and version" {
        run container system status
        [ "$status" -eq 0 ]
        [[ $output == *"is running"* ]]
        [[ $output == *"root:       $ROOT"* ]]
        run container system version
        [ "$status" -eq 0 ]
        [[ $output == "container CLI "* ]]
}

@test "a slow OCI runtime does not hold up other clients; stop, kill and rm during a start wait for it" {
        # crun behind a wrapper that takes 3 s for "run" (scripts are executed by path).
        wrapper=$BATS_TEST_TMPDIR/slow-crun
        printf '#!/bin/sh\nfor a in "$@"; do [ "$a" = run ] && sleep 3; done\nexec %s "$@"\n' \
                "$(command -v crun)" >"$wrapper"
        chmod +x "$wrapper"
        for n in slow1 slow2 slow3; do
                container run -d --name $n --runtime "$wrapper" --rootfs "$ROOTFS" sleep 60 \
                        >"$BATS_TEST_TMPDIR/run-$n.out" 2>&1 &
                eval "run_$n=\$!"
        done
        wait_for 10 bash -c "[ \$(\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" ls -aq | grep -c '^slow') = 3 ]"
        start=$(date +%s%N)
        run container ls -a
        elapsed_ms=$((($(date +%s%N) - start) / 1000000))
        [ "$status" -eq 0 ]
        [[ $output == *slow1*Created* ]]
        # Answered while the starts are in flight, not after them.
        ((elapsed_ms < 1500))
        # Parked until each start has ended, then done as asked (a second start is a no-op).
        container stop -t 1 slow1 >"$BATS_TEST_TMPDIR/stop.out" 2>&1 &
        stop_pid=$!
        container kill -s KILL slow2 >"$BATS_TEST_TMPDIR/kill.out" 2>&1 &
        kill_pid=$!
        container rm -f slow3 >"$BATS_TEST_TMPDIR/rm.out" 2>&1 &
        rm_pid=$!
        sleep 0.5 # after the rm -f, well within the 3 s start
        container start slow3 >"$BATS_TEST_TMPDIR/start.out" 2>&1 &
        start_pid=$!
        for n in slow1 slow2 slow3; do
                eval "wait \$run_$n"
                [ "$(cat "$BATS_TEST_TMPDIR/run-$n.out")" = $n ]
        done
        wait "$stop_pid"
        [ "$(cat "$BATS_TEST_TMPDIR/stop.out")" = slow1 ]
        wait "$kill_pid"
        [ "$(cat "$BATS_TEST_TMPDIR/kill.out")" = slow2 ]
        wait "$rm_pid"
        [ "$(cat "$BATS_TEST_TMPDIR/rm.out")" = slow3 ]
        # The start came after rm -f: refused, the container is being removed.
        start_status=0
        wait "$start_pid" || start_status=$?
        [ "$start_status" -ne 0 ]
        [[ $(cat "$BATS_TEST_TMPDIR/start.out") == *"container slow3 is being removed"* ]]
        [ "$(container inspect slow1 | jq -r '.[0].status')" = stopped ]
        wait_for 10 bash -c "[ \"\$(\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" inspect slow2 | jq -r '.[0].status')\" = stopped ]"
        [ "$(container inspect slow2 | jq -r '.[0].exitCode')" = 137 ]
        run container inspect slow3
        [ "$status" -ne 0 ]
        container rm slow1 slow2
}
