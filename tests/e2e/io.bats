#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# stdio, terminals, exec, logs, cp, export, stats.

load helpers
bats_require_minimum_version 1.5.0

@test "-i passes piped stdin" {
        run bash -c "printf 'line1\nline2\n' | \"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" run --rm -i --rootfs \"$ROOTFS\" sh -c 'wc -l; echo done'"
        [ "$status" -eq 0 ]
        [ "$(echo "${lines[0]}" | tr -d ' ')" = 2 ]
        [ "${lines[1]}" = done ]
        # without -i the container's stdin is empty
        run bash -c "echo data | \"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" run --rm --rootfs \"$ROOTFS\" cat"
        [ "$status" -eq 0 ]
        [ "$output" = "" ]
}

@test "stdout and stderr stay apart" {
        run bash -c "\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" run --rm --rootfs \"$ROOTFS\" sh -c 'echo out; echo err >&2' 2>/dev/null"
        [ "$output" = out ]
}

@test "-t gives the process a terminal (through a pseudo-terminal)" {
        run script -qec "\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" run --rm -t --rootfs \"$ROOTFS\" sh -c 'test -t 0 && test -t 1 && echo tty-yes; echo \$TERM'" /dev/null
        [ "$status" -eq 0 ]
        [[ $output == *tty-yes* ]]
        [[ $output == *xterm* ]]
        # without -t there is none
        run container run --rm --rootfs "$ROOTFS" sh -c 'test -t 1 && echo tty || echo notty'
        [ "$output" = notty ]
}

@test "-it: input reaches the process, the terminal is restored" {
        # script gives the CLI a terminal and feeds it our here-string as typed input.
        run script -qec "stty -g >\"$BATS_TEST_TMPDIR/before\"; \"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" run --rm -it --rootfs \"$ROOTFS\" sh -c 'read l; echo got:\$l'; echo rc=\$?; stty -g >\"$BATS_TEST_TMPDIR/after\"" /dev/null <<<"hello"
        [ "$status" -eq 0 ]
        [[ $output == *got:hello* ]]
        [[ $output == *rc=0* ]]
        cmp "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
}

@test "exec into a running container: output, exit code, -e, -w, -i, not found" {
        container run -d --name ex1 --rootfs "$ROOTFS" sleep 60
        run container exec ex1 sh -c 'echo in-container; exit 5'
        [ "$status" -eq 5 ]
        [ "$output" = in-container ]
        run container exec -e X=42 -w /tmp ex1 sh -c 'echo $X $(pwd)'
        [ "$output" = "42 /tmp" ]
        run bash -c "echo piped | \"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" exec -i ex1 cat"
        [ "$output" = piped ]
        run -127 container exec ex1 /no/such/thing
        run -126 container exec ex1 /etc/passwd
        # exec sees the init's pid namespace
        run container exec ex1 sh -c 'cat /proc/1/cmdline | tr "\0" " "'
        [[ $output == "sleep 60"* ]]
        run container exec nosuch true
        [ "$status" -eq 125 ]
}

@test "exec into a stopped container fails cleanly" {
        container run --name ex2 --rootfs "$ROOTFS" true
        run container exec ex2 true
        [ "$status" -eq 125 ]
        [[ $output == *"invalidState: container ex2 is not running"* ]]
}

@test "logs, logs -n" {
        container run --name lg1 --rootfs "$ROOTFS" sh -c 'for i in 1 2 3 4 5; do echo line$i; done; echo err >&2' >/dev/null 2>&1 || true
        # attached runs write to the terminal; detached ones to the log
        container run -d --name lg2 --rootfs "$ROOTFS" sh -c 'for i in 1 2 3 4 5; do echo line$i; done; echo err >&2'
        container wait lg2
        # The exit can be reported a moment before the runtime service has logged the last bytes.
        wait_for 5 bash -c "\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" logs lg2 2>&1 | grep -q err"
        run container logs lg2
        [ "$status" -eq 0 ]
        [ "${#lines[@]}" -eq 6 ]
        # stdout and stderr are separate pipes: their relative order is not defined (as with
        # docker), the order within each stream is.
        [ "$(grep '^line' <<<"$output" | tr '\n' ' ')" = "line1 line2 line3 line4 line5 " ]
        [ "$(grep -c '^err$' <<<"$output")" -eq 1 ]
        run container logs -n 2 lg2
        [ "${#lines[@]}" -eq 2 ]
        run container logs --tail 0 lg2
        [ "$output" = "" ]
        run container logs nosuch
        [ "$status" -eq 125 ]
}

@test "logs -f follows until the container exits" {
        container run -d --name lf1 --rootfs "$ROOTFS" sh -c 'echo first; sleep 1; echo second; sleep 1; echo third'
        run timeout 20 "$CLI" --root "$ROOT" --run-dir "$RUN" logs -f lf1
        [ "$status" -eq 0 ]
        [ "$output" = "$(printf 'first\nsecond\nthird')" ]
}

@test "cp into and out of a container, files and trees" {
        container run -d --name cp1 --rootfs "$ROOTFS" sleep 60
        echo to-container >"$BATS_TEST_TMPDIR/up.txt"
        run container cp "$BATS_TEST_TMPDIR/up.txt" cp1:/tmp/up-$BATS_TEST_NUMBER.txt
        [ "$status" -eq 0 ]
        run container exec cp1 cat /tmp/up-$BATS_TEST_NUMBER.txt
        [ "$output" = to-container ]

        container exec cp1 sh -c "mkdir -p /tmp/tree-$BATS_TEST_NUMBER/sub && echo deep >/tmp/tree-$BATS_TEST_NUMBER/sub/f"
        run container cp cp1:/tmp/tree-$BATS_TEST_NUMBER "$BATS_TEST_TMPDIR/tree"
        [ "$status" -eq 0 ]
        [ "$(cat "$BATS_TEST_TMPDIR/tree/sub/f")" = deep ]

        run container cp cp1:/etc/hostname "$BATS_TEST_TMPDIR/hn"
        [ "$status" -eq 0 ]
        [ -f "$BATS_TEST_TMPDIR/hn" ]
        run container cp cp1:/no/such "$BATS_TEST_TMPDIR/x"
        [ "$status" -eq 125 ]
        run container cp a b
        [ "$status" -eq 125 ]
        container exec cp1 rm -rf /tmp/up-$BATS_TEST_NUMBER.txt /tmp/tree-$BATS_TEST_NUMBER
}

@test "export writes the root filesystem as tar" {
        container create --name exp1 --rootfs "$ROOTFS" true
        run container export -o "$BATS_TEST_TMPDIR/exp.tar" exp1
        [ "$status" -eq 0 ]
        tar -tf "$BATS_TEST_TMPDIR/exp.tar" >"$BATS_TEST_TMPDIR/list"
        grep -qx './bin/busybox' "$BATS_TEST_TMPDIR/list"
        grep -qx './etc/passwd' "$BATS_TEST_TMPDIR/list"
        container export exp1 | tar -tf - | grep -qx './bin/busybox'
}

@test "cp and export run in the container-archive helper: the CLI itself never loads libarchive" {
        ! readelf -d "$CLI" | grep -q libarchive
        readelf -d "$BUILD_DIR/src/cli/container-archive" | grep -q libarchive
        container create --name exp2 --rootfs "$ROOTFS" true
        # The global options reach the helper: another root has no exp2.
        run "$CLI" --root "$BATS_TEST_TMPDIR/other" --run-dir "$BATS_TEST_TMPDIR/other-run" export exp2
        "$CLI" --root "$BATS_TEST_TMPDIR/other" --run-dir "$BATS_TEST_TMPDIR/other-run" system stop >/dev/null
        [ "$status" -eq 125 ]
        [[ $output == *"notFound: no such container: exp2"* ]]
        run container cp --help
        [ "$status" -eq 0 ]
        [[ $output == Usage:* ]]
}

@test "stats --no-stream prints one sample" {
        container run -d --name sts1 --rootfs "$ROOTFS" sleep 60
        run container stats --no-stream sts1
        [ "$status" -eq 0 ]
        [ "${#lines[@]}" -eq 2 ]
        [[ ${lines[0]} == "CONTAINER ID"* ]]
        [[ ${lines[1]} == sts1* ]]
        run container stats --no-stream --format json
        [ "$(jq -r '.[0].id' <<<"$output")" = sts1 ]
        [ "$(jq -r '.[0].pidsCurrent' <<<"$output")" -ge 1 ]
}

@test "start -a attaches to a created container" {
        container create --name sa1 --rootfs "$ROOTFS" sh -c 'echo attached; exit 9'
        run container start -a sa1
        [ "$status" -eq 9 ]
        [ "$output" = attached ]
}
