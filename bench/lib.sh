# Shared by the bench/ scripts: builds an optimized tree in build-bench/ and exports $BENCH_BUILD.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup-deps.sh
BENCH_BUILD=$PWD/build-bench
if [[ ! -d $BENCH_BUILD ]]; then
        meson setup "$BENCH_BUILD" --buildtype=release -Db_ndebug=false -Dtests=false >/dev/null
fi
ninja -C "$BENCH_BUILD" >/dev/null
export BENCH_BUILD
