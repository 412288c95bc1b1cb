#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# pause and unpause: the cgroup freezes and thaws, the refusals, and stop, kill and exec of a
# paused container.

load helpers
bats_require_minimum_version 1.5.0

# A container that writes an increasing count to /tmp/NAME.count (in $ROOTFS, readable from here)
# every 50 ms, and exits 7 on SIGTERM.
run_counter() {
        rm -f "$ROOTFS/tmp/$1.count"
        container run -d --name "$1" --rootfs "$ROOTFS" sh -c \
                "trap 'exit 7' TERM; i=0; while :; do i=\$((i+1)); echo \$i >/tmp/$1.count; sleep 0.05; done" >/dev/null
        wait_for 10 test -s "$ROOTFS/tmp/$1.count"
}

# wait, bounded: a container that stays frozen must fail the test, not hang it.
wait_exit() {
        timeout 20 "$CLI" --root "$ROOT" --run-dir "$RUN" wait "$1"
}

count() {
        cat "$ROOTFS/tmp/$1.count"
}

# The kernel's word on the container's cgroup: FROZEN or THAWED (v1 freezer), 1 or 0 (v2).
freezer_state() {
        local pid dir
        pid=$(pgrep -P "$(container inspect "$1" | jq -r '.[0].pid')" -x sh | head -1)
        if [[ -e /sys/fs/cgroup/freezer/cgroup.procs ]]; then
                dir=/sys/fs/cgroup/freezer$(awk -F: '$2 == "freezer" { print $3 }' /proc/"$pid"/cgroup)
                cat "$dir/freezer.state"
        else
                dir=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/"$pid"/cgroup)
                awk '$1 == "frozen" { print $2 }' "$dir/cgroup.events"
        fi
}

# A container of this suite still frozen would outlive it: thaw before anything else.
teardown() {
        local id
        for id in $(container ls -q -f status=paused 2>/dev/null); do
                container unpause "$id" >/dev/null 2>&1 || true
        done
        remove_all
}

@test "pause freezes the container, unpause thaws it; ls and inspect say paused" {
        run_counter pz1
        run container pause pz1
        [ "$status" -eq 0 ]
        [ "$output" = pz1 ]
        [[ $(freezer_state pz1) == @(FROZEN|1) ]]
        before=$(count pz1)
        sleep 0.5
        [ "$(count pz1)" = "$before" ]

        [ "$(container inspect pz1 | jq -r '.[0].status')" = paused ]
        run container ls
        [[ ${lines[1]} == pz1*"Up"*"(Paused)" ]]
        [ "$(container ls -q -f status=paused)" = pz1 ]
        [ "$(container ls -q -f status=running)" = "" ]
        # Statistics and the process list still work while frozen.
        run container stats --no-stream pz1
        [ "$status" -eq 0 ]
        run container top --format json pz1
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[] | select(.containerPid == 1) | .command' <<<"$output")" != "" ]

        run container unpause pz1
        [ "$status" -eq 0 ]
        [ "$output" = pz1 ]
        [[ $(freezer_state pz1) == @(THAWED|0) ]]
        [ "$(container inspect pz1 | jq -r '.[0].status')" = running ]
        [ "$(container ls -q -f status=paused)" = "" ]
        before=$(count pz1)
        wait_for 5 bash -c "[ \"\$(cat '$ROOTFS/tmp/pz1.count')\" -gt $before ]"
}

@test "pause twice, unpause of a running container, pause of a stopped one: one error line each" {
        run_counter pz2
        container pause pz2
        run container pause pz2
        [ "$status" -eq 125 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ $output == *"invalidState"*"container pz2 is already paused" ]]
        container unpause pz2
        run container unpause pz2
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState"*"container pz2 is not paused" ]]

        # Several names: each success printed, each failure one line, exit status of the failure.
        run container pause pz2 nosuch2
        [ "$status" -eq 125 ]
        [ "${lines[0]}" = pz2 ]
        [[ $output == *"pausing nosuch2: notFound: no such container: nosuch2"* ]]
        container unpause pz2

        container stop -t 5 pz2
        run container pause pz2
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState"*"not running"* ]]
        run container unpause pz2
        [ "$status" -eq 125 ]
}

@test "exec into a paused container is refused; start of it too" {
        run_counter pz3
        container pause pz3
        run container exec pz3 true
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState"*"container pz3 is paused"* ]]
        run container start pz3
        [ "$status" -eq 125 ]
        [[ $output == *"paused"* ]]
        container unpause pz3
        run container exec pz3 echo thawed
        [ "$status" -eq 0 ]
        [ "$output" = thawed ]
}

@test "stop of a paused container: the signal takes effect at once" {
        run_counter pz4
        container pause pz4
        start=$(date +%s%N)
        run container stop -t 20 pz4
        elapsed_ms=$((($(date +%s%N) - start) / 1000000))
        [ "$status" -eq 0 ]
        [ "$output" = pz4 ]
        ((elapsed_ms < 5000))
        [ "$(container inspect pz4 | jq -r '.[0].status')" = stopped ]
        [ "$(container inspect pz4 | jq -r '.[0].exitCode')" = 7 ]
}

@test "kill -s KILL of a paused container: exit 137" {
        run_counter pz5
        container pause pz5
        start=$(date +%s%N)
        run container kill -s KILL pz5
        elapsed_ms=$((($(date +%s%N) - start) / 1000000))
        [ "$status" -eq 0 ]
        [ "$output" = pz5 ]
        ((elapsed_ms < 5000))
        [ "$(wait_exit pz5)" = 137 ]
        [ "$(container inspect pz5 | jq -r '.[0].status')" = stopped ]
}

@test "kill -s TERM of a paused container resumes it so the signal is handled" {
        run_counter pz6
        container pause pz6
        run container kill -s TERM pz6
        [ "$status" -eq 0 ]
        [ "$(wait_exit pz6)" = 7 ]
}

@test "rm -f of a paused container" {
        run_counter pz7
        container pause pz7
        run container rm -f pz7
        [ "$status" -eq 0 ]
        run container ls -aq
        [[ $output != *pz7* ]]
}

@test "a paused container stays paused across an API server restart" {
        run_counter pz8
        container pause pz8
        pid=$(apiserver_pid)
        kill -9 "$pid"
        wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
        # The next CLI call starts a new server that re-attaches and asks the runtime service.
        [ "$(container inspect pz8 | jq -r '.[0].status')" = paused ]
        [[ $(freezer_state pz8) == @(FROZEN|1) ]]
        run container unpause pz8
        [ "$status" -eq 0 ]
        [ "$(container inspect pz8 | jq -r '.[0].status')" = running ]
        run container stop -t 5 pz8
        [ "$status" -eq 0 ]
        [ "$(container inspect pz8 | jq -r '.[0].exitCode')" = 7 ]
}
