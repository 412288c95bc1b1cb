#!/usr/bin/env bash
# Formats (or with --check, verifies) every C file of the project with .clang-format.
set -euo pipefail
cd "${MESON_SOURCE_ROOT:-$(dirname "$0")/..}"
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find include src tests fuzz bench -name '*.[ch]')
if [[ "${1:-}" == --check ]]; then
        exec clang-format --dry-run --Werror "${files[@]}"
fi
exec clang-format -i "${files[@]}"
