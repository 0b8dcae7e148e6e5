#!/usr/bin/env bash
# Fails when any C file differs from what clang-format (the project's .clang-format) would write.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r f; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done < <(git ls-files '*.c' '*.h')
if ((${#bad[@]})); then
    echo "format-check: these files need clang-format (run 'make format'):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "format-check: ok"
