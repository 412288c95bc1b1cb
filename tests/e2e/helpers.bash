# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared setup of the end-to-end suites. Each suite (file) gets its own --root, --run-dir and API
# server; everything is stopped and removed in teardown_file. Tests run the real binaries:
#   $BUILD_DIR/src/cli/container, $BUILD_DIR/src/apiserver/container-apiserver,
#   $BUILD_DIR/src/runtime/container-runtime

REPO=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$REPO/build}
CLI=$BUILD_DIR/src/cli/container
APISERVER=$BUILD_DIR/src/apiserver/container-apiserver
export CONTAINER_APISERVER=$APISERVER
export CONTAINER_RUNTIME=$BUILD_DIR/src/runtime/container-runtime

# Runs the CLI against this suite's instance.
container() {
        "$CLI" --root "$ROOT" --run-dir "$RUN" "$@"
}

# runc where container-runtime looks for OCI runtimes (docs/runtime.md); its tests skip without it.
have_runc() {
        local d
        for d in /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /bin /sbin; do
                [[ -x $d/runc ]] && return 0
        done
        return 1
}

# Bounded wait: wait_for SECONDS COMMAND... (polls a condition in a test, never in the product).
wait_for() {
        local deadline=$((SECONDS + $1)); shift
        until "$@"; do
                ((SECONDS < deadline)) || return 1
                sleep 0.05
        done
}

suite_setup() {
        [[ $EUID -eq 0 ]] || skip "the end-to-end suites need root (namespaces, cgroups, crun)"
        [[ -x $CLI && -x $APISERVER && -x $CONTAINER_RUNTIME ]] || skip "build first: $CLI not found"
        export ROOT=$BATS_FILE_TMPDIR/root RUN=$BATS_FILE_TMPDIR/run
        # One busybox tree per bats run; the script is idempotent and atomic.
        ROOTFS=$BATS_RUN_TMPDIR/rootfs
        if [[ ! -x $ROOTFS/bin/busybox ]]; then
                bash "$REPO/scripts/make-busybox-rootfs.sh" "$ROOTFS" >/dev/null
        fi
        export ROOTFS
        container system start >/dev/null
}

# container/create straight through the API (what a client that skips the CLI's checks sends):
# api_create ID KEY JSON_VALUE creates {id, rootfs, process: true} plus KEY: JSON_VALUE.
api_create() {
        "$BUILD_DIR/src/cxpc-tool/cxpc" call "$RUN/apiserver.sock" container/create \
                "{\"configuration\": {\"id\": \"$1\", \"rootfs\": \"$ROOTFS\", \"process\": {\"args\": [\"true\"]}, \"$2\": $3}}"
}

apiserver_pid() {
        container system status 2>/dev/null | awk '/pid:/ { print $2 }'
}

# Removes every container of this instance (running ones by force).
remove_all() {
        local ids
        ids=$(container ls -aq 2>/dev/null) || return 0
        [[ -z $ids ]] || container rm -f $ids >/dev/null 2>&1 || true
}

suite_teardown() {
        [[ -n ${ROOT:-} ]] || return 0
        remove_all
        local pid
        pid=$(apiserver_pid)
        container system stop >/dev/null 2>&1 || true
        [[ -z $pid ]] || kill -9 "$pid" 2>/dev/null || true
        # Runtime services of this instance that outlived everything (their sockets are in $RUN).
        local p
        for p in $(pgrep -f -- "--run-dir $RUN" 2>/dev/null); do
                kill -9 "$p" 2>/dev/null || true
        done
        rm -rf "$ROOT" "$RUN"
}

setup_file() {
        suite_setup
}

teardown_file() {
        suite_teardown
}

teardown() {
        remove_all
}
