#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, builds with
# -Werror, runs every test in a normal build, again under ASan+UBSan, the unit tests under
# valgrind, a bounded fuzzing run, and the end-to-end suites (also against the sanitizer build,
# as one check). Prints "N passed, N failed" last.
#
#   FUZZ_SECONDS=60   how long the codec fuzzer runs (0 skips it)
#   SKIP_ASAN=1       skip the sanitizer build (quicker local runs)
#   SKIP_VALGRIND=1   skip the valgrind pass
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD

bash scripts/setup-deps.sh || { echo "test.sh: installing dependencies failed" >&2; exit 1; }

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
passed=0
failed=0
skipped=0
failures=()

# Counts one meson test run from its JSON log.
count_meson() {
        local log=$1 label=$2
        [[ -f $log ]] || { failed=$((failed + 1)); failures+=("$label: no test log"); return; }
        local p f s
        p=$(grep -c '"result": "OK"' "$log")
        s=$(grep -c '"result": "SKIP"' "$log")
        f=$(grep -c -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log")
        passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
        if ((f > 0)); then
                failures+=("$label: $(grep -E '"result": "(FAIL|TIMEOUT|ERROR|UNEXPECTEDPASS)"' "$log" |
                        sed -E 's/.*"name": "([^"]*)".*/\1/' | tr '\n' ' ')")
        fi
}

step() { printf '\n==> %s\n' "$*"; }

build() {
        local dir=$1; shift
        if [[ ! -d $dir ]]; then
                meson setup "$dir" -Dwerror=true "$@" >/dev/null || return 1
        fi
        ninja -C "$dir" >/dev/null || ninja -C "$dir"
}

step "build (gcc, -Werror)"
if ! build build; then
        echo "test.sh: build failed" >&2
        echo "0 passed, 1 failed"
        exit 1
fi

step "formatting (clang-format, .clang-format)"
if bash scripts/clang-format.sh --check; then
        passed=$((passed + 1))
else
        failed=$((failed + 1)); failures+=("clang-format: run scripts/clang-format.sh")
fi

step "tests (normal build)"
meson test -C build --print-errorlogs --num-processes 2
count_meson build/meson-logs/testlog.json "normal"

if [[ -z ${SKIP_VALGRIND:-} ]]; then
        step "unit tests under valgrind"
        meson test -C build --suite unit --print-errorlogs --num-processes 2 \
                --wrap='valgrind --quiet --child-silent-after-fork=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no' \
                --logbase valgrind --timeout-multiplier 10
        # meson names the log after the logbase and the wrapper.
        vlog=$(ls -t build/meson-logs/valgrind*.json 2>/dev/null | head -1)
        count_meson "${vlog:-build/meson-logs/valgrind.json}" "valgrind"
fi

if [[ -z ${SKIP_ASAN:-} ]]; then
        step "build and tests under ASan+UBSan"
        if build build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
                ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                        meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
                count_meson build-asan/meson-logs/testlog.json "asan"
        else
                failed=$((failed + 1)); failures+=("asan: build failed")
        fi
fi

if ((FUZZ_SECONDS > 0)); then
        step "fuzzing the codec for ${FUZZ_SECONDS}s (libFuzzer, ASan+UBSan)"
        # Only the fuzz target is built here; -Werror is the gcc build's job.
        if { [[ -d build-fuzz ]] || CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false \
                        -Db_lundef=false >/dev/null; } && ninja -C build-fuzz fuzz/fuzz-codec >/dev/null; then
                mkdir -p build-fuzz/corpus
                if build-fuzz/fuzz/fuzz-codec -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
                        -artifact_prefix=build-fuzz/ build-fuzz/corpus fuzz/corpus/codec 2>build-fuzz/fuzz.log; then
                        passed=$((passed + 1))
                        grep -E 'stat::number_of_executed_units|Done' build-fuzz/fuzz.log | tail -2
                else
                        tail -40 build-fuzz/fuzz.log
                        failed=$((failed + 1)); failures+=("fuzz: crash, see build-fuzz/fuzz.log")
                fi
        else
                failed=$((failed + 1)); failures+=("fuzz: build failed")
        fi
fi

if compgen -G "tests/e2e/*.bats" >/dev/null; then
        step "end-to-end (bats)"
        out=$(BUILD_DIR=$top/build bats --tap tests/e2e 2>&1)
        echo "$out"
        p=$(grep -c -E '^ok ' <<<"$out"); f=$(grep -c -E '^not ok ' <<<"$out")
        s=$(grep -c -E '^ok .*# skip' <<<"$out")
        passed=$((passed + p - s)); failed=$((failed + f)); skipped=$((skipped + s))
        ((f == 0)) || failures+=("bats: $f failed")
fi

if [[ -z ${SKIP_ASAN:-} && -x build-asan/src/cli/container ]] && compgen -G "tests/e2e/*.bats" >/dev/null; then
        # The same suites against the sanitizer build: the API server, the runtime services, the
        # CLI and its helpers all run instrumented. Reports go to files (a daemon's stderr is a
        # log); any report fails this step, as does any failed test.
        step "end-to-end (bats) under ASan+UBSan"
        reports=$(mktemp -d)
        out=$(ASAN_OPTIONS=detect_leaks=1:log_path=$reports/asan:log_exe_name=1 \
                LSAN_OPTIONS=suppressions=$top/tests/e2e/lsan.supp:print_suppressions=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan:log_exe_name=1 \
                BUILD_DIR=$top/build-asan bats --tap tests/e2e 2>&1)
        p=$(grep -c -E '^ok ' <<<"$out"); f=$(grep -c -E '^not ok ' <<<"$out")
        n_reports=$(grep -l -r -E 'ERROR: |runtime error' "$reports" | wc -l)
        echo "$p ok, $f not ok, $n_reports sanitizer report(s)"
        if ((f == 0 && n_reports == 0)); then
                passed=$((passed + 1))
        else
                grep -A3 -E '^not ok ' <<<"$out" | head -40
                grep -l -r -E 'ERROR: |runtime error' "$reports" | xargs -r head -30 | head -80
                failed=$((failed + 1)); failures+=("bats under ASan: $f failed, $n_reports sanitizer report(s)")
        fi
        rm -rf "$reports"
fi

step "summary"
for x in "${failures[@]}"; do echo "FAILED: $x"; done
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
