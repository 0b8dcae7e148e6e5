#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and replays each committed corpus once.
# With FUZZ_SECONDS=N it fuzzes each target for N seconds instead (new inputs stay in /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset fuzz >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
cmake --build build/fuzz -j"$(nproc)" --target $targets
for t in $targets; do
    corpus=tests/fuzz/corpus/$t
    [[ -d $corpus ]] || { echo "fuzz-replay: $t has no corpus in $corpus" >&2; exit 1; }
    if [[ -n ${FUZZ_SECONDS:-} ]]; then
        work=$(mktemp -d)
        cp -r "$corpus"/. "$work"/
        build/fuzz/tests/fuzz/$t -max_total_time="$FUZZ_SECONDS" "$work" 2>&1 | tail -n 3
    else
        # -runs=0 replays every file once; a crash or sanitizer report exits non-zero.
        if ! out=$(build/fuzz/tests/fuzz/$t -runs=0 "$corpus" 2>&1); then
            echo "$out" | tail -n 40 >&2
            echo "fuzz-replay: $t FAILED" >&2
            exit 1
        fi
    fi
    echo "fuzz-replay: $t ok ($(ls "$corpus" | wc -l) inputs)"
done
