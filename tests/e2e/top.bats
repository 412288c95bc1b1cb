#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# container top: the processes of a running container (runtime/top through container/top).

load helpers
bats_require_minimum_version 1.5.0

@test "top lists init and its children with host and container pids" {
        container run -d --name top1 --rootfs "$ROOTFS" sh -c 'sleep 1000 & exec sleep 999' >/dev/null
        # The background sleep is forked before init execs: wait until both are there.
        wait_for 10 bash -c "[[ \$(\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" top --format json top1 | jq length) -eq 2 ]]"

        run container top --format json top1
        [ "$status" -eq 0 ]
        [ "$(jq -c '.[0] | keys_unsorted' <<<"$output")" = '["pid","containerPid","ppid","uid","state","startedAt","cpuTimeNs","command"]' ]
        [ "$(jq length <<<"$output")" -eq 2 ]
        init=$(jq -c '.[] | select(.command == "sleep 999")' <<<"$output")
        child=$(jq -c '.[] | select(.command == "sleep 1000")' <<<"$output")
        [ "$(jq .containerPid <<<"$init")" -eq 1 ]
        [ "$(jq .containerPid <<<"$child")" -gt 1 ]
        [ "$(jq .uid <<<"$init")" -eq 0 ]
        [ "$(jq -r .state <<<"$init")" = S ]
        [[ $(jq -r .startedAt <<<"$init") =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T ]]
        # The child's parent is init (host pids on both sides).
        init_pid=$(jq .pid <<<"$init")
        [ "$(jq .ppid <<<"$child")" -eq "$init_pid" ]

        # Host pids are real processes, in the container's cgroup, running what top says.
        for pid in $(jq '.[].pid' <<<"$output"); do
                [ -d "/proc/$pid" ]
                grep -q ":/container/top1\$" "/proc/$pid/cgroup"
                [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" | sed 's/ $//')" = "$(jq -r ".[] | select(.pid == $pid) | .command" <<<"$output")" ]
        done
        # The runtime service (init's parent: it is the subreaper) is not in the list.
        rt=$(jq .ppid <<<"$init")
        [[ $(cat "/proc/$rt/comm") == container-runt* ]]
        [ "$(jq --argjson p "$rt" '[.[] | select(.pid == $p)] | length' <<<"$output")" -eq 0 ]
}

@test "top table has docker's columns plus the in-container pid" {
        container run -d --name top2 --rootfs "$ROOTFS" sleep 999 >/dev/null
        run container top top2
        [ "$status" -eq 0 ]
        [[ ${lines[0]} =~ ^UID\ +PID\ +PPID\ +CPID\ +STAT\ +STIME\ +TIME\ +CMD$ ]]
        [ "${#lines[@]}" -eq 2 ]
        read -r uid pid ppid cpid stat stime time cmd <<<"${lines[1]}"
        [ "$uid" = 0 ]
        [ "$pid" = "$(container top --format json top2 | jq '.[] | select(.containerPid == 1) | .pid')" ]
        [ -d "/proc/$pid" ]
        [ "$cpid" = 1 ]
        [[ $time =~ ^[0-9]{2}:[0-9]{2}:[0-9]{2}$ ]]
        [ "$cmd" = "sleep 999" ]
}

@test "an exec'd process appears while it runs" {
        container run -d --name top3 --rootfs "$ROOTFS" sleep 999 >/dev/null
        container exec -d top3 sleep 777 >/dev/null
        wait_for 10 bash -c "\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" top --format json top3 | jq -e '.[] | select(.command == \"sleep 777\")' >/dev/null"
        run container top --format json top3
        [ "$status" -eq 0 ]
        pid=$(jq '.[] | select(.command == "sleep 777") | .pid' <<<"$output")
        [ -d "/proc/$pid" ]
        grep -q ":/container/top3\$" "/proc/$pid/cgroup"
        [ "$(jq '.[] | select(.command == "sleep 777") | .containerPid' <<<"$output")" -gt 1 ]
        kill "$pid"
        wait_for 10 bash -c "! \"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" top --format json top3 | jq -e '.[] | select(.command == \"sleep 777\")' >/dev/null"
}

@test "top of a stopped, created or unknown container fails with one line" {
        container create --name top4 --rootfs "$ROOTFS" sleep 999 >/dev/null
        run container top top4
        [ "$status" -eq 125 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ $output == *"top top4: invalidState: container top4 is not running"* ]]

        container start top4 >/dev/null
        container stop -t 1 top4 >/dev/null
        run container top --format json top4
        [ "$status" -eq 125 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ $output == *"container top4 is not running"* ]]

        run container top nosuch1
        [ "$status" -eq 125 ]
        [[ $output == *"notFound: no such container: nosuch1"* ]]
}

@test "top's usage errors" {
        run container top
        [ "$status" -eq 125 ]
        [[ $output == *"give exactly one container"* ]]
        run container top --format yaml x
        [ "$status" -eq 125 ]
        [[ $output == *"use table or json"* ]]
}
