#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every run/create flag of DESIGN §5, observed from inside the container.

load helpers
bats_require_minimum_version 1.5.0

@test "-e and --env-file" {
        printf 'FROM_FILE=yes\n# a comment\n\nSHARED=file\n' >"$BATS_TEST_TMPDIR/env"
        export HOST_VAR=from-host
        run container run --rm -e A=1 -e "B=two words" -e HOST_VAR --env-file "$BATS_TEST_TMPDIR/env" -e SHARED=flag \
                --rootfs "$ROOTFS" sh -c 'echo "$A|$B|$HOST_VAR|$FROM_FILE|$SHARED"; echo "$PATH"'
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = "1|two words|from-host|yes|flag" ]
        [[ ${lines[1]} == *"/bin"* ]]
        run container run --rm --env-file /no/such/file --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
}

@test "-v bind mount, read-write and :ro" {
        mkdir -p "$BATS_TEST_TMPDIR/vol"
        echo hello >"$BATS_TEST_TMPDIR/vol/in"
        run container run --rm -v "$BATS_TEST_TMPDIR/vol:/data" --rootfs "$ROOTFS" sh -c 'cat /data/in; echo out >/data/out'
        [ "$status" -eq 0 ]
        [ "$output" = hello ]
        [ "$(cat "$BATS_TEST_TMPDIR/vol/out")" = out ]
        run container run --rm -v "$BATS_TEST_TMPDIR/vol:/data:ro" --rootfs "$ROOTFS" sh -c 'echo x >/data/nope'
        [ "$status" -ne 0 ]
        [ ! -e "$BATS_TEST_TMPDIR/vol/nope" ]
        run container run --rm -v relative:/data --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
}

@test "--mount bind and tmpfs" {
        mkdir -p "$BATS_TEST_TMPDIR/m"
        echo m >"$BATS_TEST_TMPDIR/m/f"
        run container run --rm --mount "type=bind,source=$BATS_TEST_TMPDIR/m,target=/m,readonly" \
                --mount type=tmpfs,target=/scratch --rootfs "$ROOTFS" \
                sh -c 'cat /m/f; grep " /scratch " /proc/mounts | cut -d" " -f3; touch /m/x 2>/dev/null || echo ro'
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = m ]
        [ "${lines[1]}" = tmpfs ]
        [ "${lines[2]}" = ro ]
        run container run --rm --mount type=volume,target=/x --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
}

@test "-w, -u, --entrypoint, --hostname" {
        run container run --rm -w /tmp --rootfs "$ROOTFS" pwd
        [ "$output" = /tmp ]
        run container run --rm -u nobody --rootfs "$ROOTFS" id -u
        [ "$output" = 65534 ]
        run container run --rm -u 1234:5678 --rootfs "$ROOTFS" sh -c 'echo $(id -u):$(id -g)'
        [ "$output" = 1234:5678 ]
        run container run --rm --entrypoint /bin/echo --rootfs "$ROOTFS" via entrypoint
        [ "$output" = "via entrypoint" ]
        run container run --rm --hostname box1 --rootfs "$ROOTFS" hostname
        [ "$output" = box1 ]
        run container run --rm --name hn1 --rootfs "$ROOTFS" hostname
        [ "$output" = hn1 ]
        run container run --rm -w relative --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
}

@test "--cpus and -m reach the configuration and the cgroup" {
        container run -d --name res1 --cpus 0.5 -m 64m --rootfs "$ROOTFS" sleep 30
        run container inspect res1
        [ "$(jq -r '.[0].configuration.resources.cpus' <<<"$output")" = 0.5 ]
        [ "$(jq -r '.[0].configuration.resources.memoryBytes' <<<"$output")" = 67108864 ]
        run container stats --no-stream --format json res1
        [ "$status" -eq 0 ]
        [ "$(jq -r '.[0].memoryLimitBytes' <<<"$output")" = 67108864 ]
        run container run --rm -m lots --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        run container run --rm --cpus -1 --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
}

@test "--cap-add, --cap-drop, --security-opt no-new-privileges; exec inherits them" {
        status_field() { awk -v f="$1:" '$1 == f { print $2 }'; }
        # docker's default set is 0xa80425fb; NET_RAW is bit 13, SYS_ADMIN 21, NET_BIND_SERVICE 10.
        run container run --rm --rootfs "$ROOTFS" cat /proc/self/status
        [ "$(status_field CapBnd <<<"$output")" = 00000000a80425fb ]
        [ "$(status_field NoNewPrivs <<<"$output")" = 1 ]
        run container run --rm --cap-drop net_raw --cap-add CAP_SYS_ADMIN --rootfs "$ROOTFS" cat /proc/self/status
        [ "$(status_field CapEff <<<"$output")" = 00000000a82405fb ]
        run container run --rm --cap-drop ALL --cap-add NET_BIND_SERVICE --security-opt no-new-privileges=false \
                --rootfs "$ROOTFS" cat /proc/self/status
        [ "$(status_field CapBnd <<<"$output")" = 0000000000000400 ]
        [ "$(status_field NoNewPrivs <<<"$output")" = 0 ]
        # exec gets the container's set, not the default one.
        container run -d --name caps1 --cap-drop ALL --security-opt no-new-privileges:false --rootfs "$ROOTFS" \
                sleep 60
        run container exec caps1 cat /proc/self/status
        [ "$(status_field CapBnd <<<"$output")" = 0000000000000000 ]
        [ "$(status_field NoNewPrivs <<<"$output")" = 0 ]
        container rm -f caps1
        run container run --rm --cap-add NOT_A_CAP --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [[ $output == *'unknown capability "NOT_A_CAP"'* ]]
        run container run --rm --security-opt seccomp=unconfined --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [[ $output == *"supported is no-new-privileges"* ]]
}

@test "--ulimit and --pids-limit" {
        run container run --rm --ulimit nofile=512:1024 --ulimit core=0 --rootfs "$ROOTFS" \
                sh -c 'echo $(ulimit -n) $(ulimit -Hn) $(ulimit -c)'
        [ "$status" -eq 0 ]
        [ "$output" = "512 1024 0" ]
        container run -d --name pids1 --pids-limit 20 --rootfs "$ROOTFS" sleep 60
        run container stats --no-stream --format json pids1
        [ "$(jq -r '.[0].pidsLimit' <<<"$output")" = 20 ]
        # The 21st process cannot be made.
        run container exec pids1 sh -c 'for i in $(seq 30); do sleep 5 & done 2>&1; wait'
        [[ $output == *"can't fork"* || $output == *"Resource temporarily unavailable"* ]]
        container rm -f pids1
        run container run --rm --ulimit nofile=2048:1024 --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        run container run --rm --ulimit bogus=1 --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        run container run --rm --pids-limit few --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
}

@test "--sysctl sets the container's own kernel parameters and refuses the host's" {
        local host_forward host_shmmax
        host_forward=$(cat /proc/sys/net/ipv4/ip_forward)
        host_shmmax=$(cat /proc/sys/kernel/shmmax)
        run container run --rm --sysctl net.ipv4.ip_forward=$((1 - host_forward)) --sysctl kernel.shmmax=65536 \
                --sysctl "net.ipv4.ip_local_port_range=40000 50000" --rootfs "$ROOTFS" \
                sh -c 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_local_port_range'
        [ "$status" -eq 0 ]
        [ "${lines[0]}" = $((1 - host_forward)) ]
        [ "${lines[1]}" = 65536 ]
        [[ ${lines[2]} =~ ^40000[[:space:]]+50000$ ]]
        # Set in the container's namespaces only.
        [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$host_forward" ]
        [ "$(cat /proc/sys/kernel/shmmax)" = "$host_shmmax" ]
        # Host-wide parameters, malformed names and values: refused at create, nothing is made.
        run container run --rm --name sys1 --sysctl kernel.core_pattern=x --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [[ $output == *"sysctl kernel.core_pattern: not a parameter of the container's own namespaces"* ]]
        run container create --name sys1 --sysctl kernel.hostname=x --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [[ $output == *"--hostname"* ]]
        for bad in net.ipv4..ip_forward=1 net/ipv4/ip_forward=1 net.ipv4.ip_forward= "net.ipv4.ip_forward=$(printf '1\n2')"; do
                run container run --rm --name sys1 --sysctl "$bad" --rootfs "$ROOTFS" true
                [ "$status" -eq 125 ]
                [[ $output == *"invalidArgument"* ]]
        done
        run container run --rm --sysctl net.ipv4.ip_forward --rootfs "$ROOTFS" true
        [ "$status" -eq 125 ]
        [[ $output == *"expected NAME=VALUE"* ]]
        # The API server checks for clients that do not.
        run api_create sys1 sysctls '{"vm.swappiness": "10"}'
        [ "$status" -eq 1 ]
        [[ $output == *"invalidArgument"* ]]
        run container ls -aq
        [ "$output" = "" ]
}

@test "update changes a running container's limits at once, and a stopped one's for its next start" {
        container run -d --name upd1 -m 64m --rootfs "$ROOTFS" sleep 60
        run container update -m 32m --cpus 0.5 --pids-limit 10 upd1
        [ "$status" -eq 0 ]
        [ "$output" = upd1 ]
        stats() { container stats --no-stream --format json upd1 | jq -c ".[0] | [.memoryLimitBytes, .pidsLimit]"; }
        [ "$(stats)" = "[33554432,10]" ]
        [ "$(container inspect upd1 | jq -c '.[0].configuration.resources | [.memoryBytes, .cpus, .pids]')" = "[33554432,0.5,10]" ]
        # 0 lifts the process limit (-1: none).
        container update --pids-limit 0 upd1
        [ "$(stats)" = "[33554432,-1]" ]
        container stop -t 0 upd1
        container update -m 48m --pids-limit 5 upd1
        container start upd1
        [ "$(stats)" = "[50331648,5]" ]
        run container update -m 1m upd1
        [ "$status" -eq 125 ]
        run container update upd1
        [ "$status" -eq 125 ]
        run container update -m 32m nosuch2
        [ "$status" -eq 125 ]
        [[ $output == *"no such container: nosuch2"* ]]
        container rm -f upd1
}

@test "--read-only" {
        run container run --rm --read-only --rootfs "$ROOTFS" sh -c 'touch /ro-test 2>/dev/null && echo rw || echo ro'
        [ "$output" = ro ]
        [ ! -e "$ROOTFS/ro-test" ]
}

@test "--init forwards SIGTERM to a process that would ignore it as PID 1" {
        container run -d --init --name init1 --rootfs "$ROOTFS" sleep 60
        run container exec init1 cat /proc/1/cmdline
        [[ $output == /dev/init* ]]
        start=$SECONDS
        run container stop -t 20 init1
        [ "$status" -eq 0 ]
        ((SECONDS - start < 10))
        [ "$(container inspect init1 | jq -r '.[0].exitCode')" = 143 ]
}

@test "-l labels, --name, -q, -a, --format" {
        container create --name lab1 -l tier=db -l empty --rootfs "$ROOTFS" true
        run container inspect lab1
        [ "$(jq -r '.[0].labels.tier' <<<"$output")" = db ]
        [ "$(jq -r '.[0].labels.empty' <<<"$output")" = "" ]
        run container ls -q
        [ "$output" = "" ]
        run container ls -a -q
        [ "$output" = lab1 ]
        run container ls --all --quiet
        [ "$output" = lab1 ]
        run container ls -a --format table
        [[ ${lines[1]} == lab1*Created* ]]
        run container ls --format yaml
        [ "$status" -eq 125 ]
}

@test "ls --filter: values of one key are alternatives, keys must all match" {
        container run -d --name flt-a -l team=red -l keep --rootfs "$ROOTFS" sleep 60
        container run -d --name flt-b -l team=blue --rootfs "$ROOTFS" sleep 60
        run container run --name flt-c -l team=red --rootfs "$ROOTFS" sh -c 'exit 3'
        [ "$status" -eq 3 ]
        lsq() { container ls -q "$@" | grep '^flt-' | sort | tr '\n' ' '; }
        [ "$(lsq --filter label=team=red)" = "flt-a " ] # flt-c has stopped: not without -a
        [ "$(lsq -a --filter label=team=red)" = "flt-a flt-c " ]
        [ "$(lsq -f label=team=red -f label=team=blue)" = "flt-a flt-b " ]
        [ "$(lsq -f label=keep -f name=flt-)" = "flt-a " ]
        [ "$(lsq -f status=exited)" = "flt-c " ] # a status filter looks at stopped ones too
        [ "$(lsq -f exited=3)" = "flt-c " ]
        [ "$(lsq -f exited=0)" = "" ]
        [ "$(lsq -f status=running -f id=flt-b)" = "flt-b " ]
        [ "$(container ls --format json -f label=team=blue | jq -r '.[].id')" = flt-b ]
        run container ls -f colour=red
        [ "$status" -eq 125 ]
        [[ $output == *"KEY=VALUE with KEY one of"* ]]
        run container ls -f status=sleeping
        [ "$status" -eq 125 ]
        [[ $output == *"status is created, running, paused, exited (stopped) or broken"* ]]
        # paused is a status (tests/e2e/pause.bats): nothing here is paused.
        [ "$(lsq -f status=paused)" = "" ]
        container rm -f flt-a flt-b flt-c
}

@test "--rm removes after exit, -d prints the id" {
        run container run -d --rm --name rm1 --rootfs "$ROOTFS" sleep 0.2
        [ "$output" = rm1 ]
        wait_for 10 bash -c "[ -z \"\$(\"$CLI\" --root \"$ROOT\" --run-dir \"$RUN\" ls -aq)\" ]"
        [ ! -e "$ROOT/containers/rm1" ]
}

@test "a directory given as IMAGE is a root filesystem" {
        run container run --rm "$ROOTFS" echo from-dir
        [ "$status" -eq 0 ]
        [ "$output" = from-dir ]
}

@test "--runtime runc: output and exit codes pass through" {
        have_runc || skip "runc not installed"
        run container run --rm --runtime runc --rootfs "$ROOTFS" echo hi
        [ "$status" -eq 0 ]
        [ "$output" = hi ]
        run container run --rm --runtime runc --rootfs "$ROOTFS" sh -c 'exit 42'
        [ "$status" -eq 42 ]
        run -127 container run --rm --runtime runc --rootfs "$ROOTFS" /no/such/command
        run container ls -aq
        [ "$output" = "" ]
}

@test "--runtime runc: inspect, exec, stop, start again" {
        have_runc || skip "runc not installed"
        container run -d --name runc1 --runtime runc --rootfs "$ROOTFS" sleep 60
        run container inspect runc1
        [ "$(jq -r '.[0].configuration.runtime' <<<"$output")" = runc ]
        pid=$(jq -r '.[0].pid' <<<"$output")
        # Its runtime service was told so, and drives runc (runc's own state file; crun has none).
        [[ "$(tr '\0' ' ' </proc/"$pid"/cmdline)" == *"--runtime runc "* ]]
        [ -f "$RUN/runtime/runc1.d/oci/runc1/state.json" ]
        run container exec runc1 echo from-exec
        [ "$status" -eq 0 ]
        [ "$output" = from-exec ]
        run container exec runc1 sh -c 'exit 3'
        [ "$status" -eq 3 ]
        start=$SECONDS
        run container stop -t 1 runc1
        [ "$status" -eq 0 ]
        ((SECONDS - start < 8))
        [ "$(container inspect runc1 | jq -r '.[0].exitCode')" = 137 ]
        # create, then start: the stored runtime is used
        container create --name runc2 --runtime runc --rootfs "$ROOTFS" sh -c 'echo again; exit 5'
        run container start -a runc2
        [ "$status" -eq 5 ]
        [ "$output" = again ]
        [ "$(container inspect runc2 | jq -r '.[0].configuration.runtime')" = runc ]
}

# The API server's sealed copies of OCI runtime binaries (docs/apiserver.md): one per binary,
# shared by every runtime service, made again when the file is replaced.
@test "OCI runtime binaries: one sealed copy each, passed to runtime services, remade on change" {
        # The inode numbers of the API server's copies, one per line.
        copy_inodes() {
                local fd
                for fd in /proc/"$(apiserver_pid)"/fd/*; do
                        [[ $(readlink "$fd") == "/memfd:oci-runtime"* ]] && stat -L -c %i "$fd"
                done | sort
        }
        copies() { copy_inodes | wc -l; }
        crun_path=$(command -v crun)
        mkdir -p "$BATS_TEST_TMPDIR/oci"
        cp "$crun_path" "$BATS_TEST_TMPDIR/oci/crun"
        before=$(copies)
        run container run --rm --rootfs "$ROOTFS" echo one
        [ "$output" = one ]
        first=$(copy_inodes)
        run container run --rm --rootfs "$ROOTFS" echo two
        [ "$output" = two ]
        [ "$(copy_inodes)" = "$first" ] # the same copy, not a new one per container
        run container run --rm --runtime "$BATS_TEST_TMPDIR/oci/crun" --rootfs "$ROOTFS" echo three
        [ "$output" = three ]
        # crun's copy (unless an earlier test made it) and the custom path's.
        (($(copies) <= before + 2)) && (($(copies) >= 2))
        n=$(copies)
        # A running container's service holds the copy as fd 4 and the bytes are crun's.
        container run -d --name exe1 --rootfs "$ROOTFS" sleep 60
        pid=$(container inspect exe1 | jq -r '.[0].pid')
        [[ $(readlink /proc/"$pid"/fd/4) == "/memfd:oci-runtime"* ]]
        cmp /proc/"$pid"/fd/4 "$crun_path"
        container rm -f exe1
        # Replaced (a package upgrade): a new copy instead of the old one, not one more.
        old=$(copy_inodes)
        cp "$crun_path" "$BATS_TEST_TMPDIR/oci/crun.new"
        mv "$BATS_TEST_TMPDIR/oci/crun.new" "$BATS_TEST_TMPDIR/oci/crun"
        run container run --rm --runtime "$BATS_TEST_TMPDIR/oci/crun" --rootfs "$ROOTFS" echo four
        [ "$output" = four ]
        [ "$(copies)" -eq "$n" ]
        [ "$(comm -13 <(echo "$old") <(copy_inodes) | wc -l)" -eq 1 ]
}

@test "--runtime: unknown names and non-executables fail with 125 and leave nothing behind" {
        mkdir -p "$BATS_TEST_TMPDIR/dir"
        printf '#!/bin/sh\n' >"$BATS_TEST_TMPDIR/noexec"
        for rt in kata docker "" /no/such/runtime "$BATS_TEST_TMPDIR/dir" "$BATS_TEST_TMPDIR/noexec"; do
                for verb in run create; do
                        run container $verb --rm --name badrt --runtime "$rt" --rootfs "$ROOTFS" true
                        [ "$status" -eq 125 ]
                        [ "${#lines[@]}" -eq 1 ]
                        [[ $output == "container: --runtime: invalidArgument: "* ]]
                done
        done
        run container run --rm --runtime kata --rootfs "$ROOTFS" true
        [ "$output" = 'container: --runtime: invalidArgument: unknown OCI runtime "kata": use crun, runc or the absolute path of an OCI runtime binary' ]
        # The API server refuses them too, for clients that do not check.
        for rt in '"kata"' '"/etc/passwd"' '"runc/x"' 5; do
                run api_create badrt runtime "$rt"
                [ "$status" -eq 1 ]
                [[ $output == *"invalidArgument"* ]]
        done
        run container ls -aq
        [ "$output" = "" ]
        [ -z "$(ls "$ROOT/containers")" ]
        # Without --runtime: the API server's default, stored.
        container create --name defrt --rootfs "$ROOTFS" true
        [ "$(container inspect defrt | jq -r '.[0].configuration.runtime')" = "${CONTAINER_OCI_RUNTIME:-crun}" ]
}
