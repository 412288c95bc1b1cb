#!/usr/bin/env bats
# SPDX-License-Identifier: LGPL-2.1-or-later
# The cxpc debugging tool against a real service (this suite's API server).

load helpers

CXPC=$BUILD_DIR/src/cxpc-tool/cxpc

@test "cxpc routes lists the routes of a service" {
        run "$CXPC" routes "$RUN/apiserver.sock"
        [ "$status" -eq 0 ]
        [[ $output == *"system/status"* ]]
        [[ $output == *"container/inspect"* ]]
        # One route per line, no duplicates.
        [ "$(sort <<<"$output" | uniq -d)" = "" ]
}

@test "cxpc call prints the reply as JSON" {
        run "$CXPC" call "$RUN/apiserver.sock" system/status --compact
        [ "$status" -eq 0 ]
        # One JSON object, parseable by jq.
        jq -e 'type == "object"' <<<"$output"
}

@test "cxpc call passes JSON arguments and keeps the error code of an error reply" {
        run "$CXPC" call "$RUN/apiserver.sock" container/inspect '{"id": "no-such-container"}'
        [ "$status" -eq 1 ]
        [[ $output == *"notFound"* ]]
}

@test "cxpc call of an unknown route gets unsupported, never silence" {
        run "$CXPC" call "$RUN/apiserver.sock" no/such/route '{}'
        [ "$status" -eq 1 ]
        [[ $output == *"unsupported"* ]]
}

@test "cxpc refuses bad JSON, fd placeholders and missing sockets with exit 2" {
        run "$CXPC" call "$RUN/apiserver.sock" system/status '{not json'
        [ "$status" -eq 2 ]
        run "$CXPC" call "$RUN/apiserver.sock" system/status '{"x": {"$fd": 0}}'
        [ "$status" -eq 2 ]
        run "$CXPC" call "$BATS_FILE_TMPDIR/nothing.sock" system/status
        [ "$status" -eq 2 ]
        [[ $output == *"cannot connect"* ]]
}

@test "cxpc --fd passes a file descriptor" {
        # The API server refuses what it does not expect, but the fd must travel and the call
        # must come back with a reply, not hang.
        run timeout 10 "$CXPC" call "$RUN/apiserver.sock" no/such/route '{}' --fd stdin=0 < /dev/null
        [ "$status" -eq 1 ]
        [[ $output == *"unsupported"* ]]
}
