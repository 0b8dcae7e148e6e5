#!/usr/bin/env bash
# Queries over the hub's store (issue 10 §3): builds iotdm-query-bench (release, the ci preset),
# runs it on a fresh database of --devices devices in a temporary directory and prints the figures
# with PASS/FAIL against the targets. No network, no hub process; separate from bench/run.sh.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/query.sh [--devices N] [--patches N] [--runs N] [--no-build] [--keep] [--out FILE]

  --devices N  fleet size (default 100000)
  --patches N  reported patches per round of the twin-put figures (default 20000; 3 rounds with the
               index maintenance and 3 without)
  --runs N     repetitions of each timed query (default 21; the median is printed)
  --no-build   use build/ci/bench/iotdm-query-bench as it is
  --keep       keep the temporary directory (the database and the raw key=value figures)
  --out FILE   also write the table to FILE
EOF
}

DEVICES=100000 PATCHES=20000 RUNS=21 BUILD=1 KEEP=0 OUT=''
while (($#)); do
    case "$1" in
    --devices) DEVICES=$2; shift ;;
    --patches) PATCHES=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --out) OUT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/ci/bench/iotdm-query-bench
if ((BUILD)); then
    cmake --preset ci >/dev/null
    cmake --build "$ROOT/build/ci" -j"$(nproc)" --target iotdm-query-bench >/dev/null
fi

TMP=$(mktemp -d /tmp/iotdm-query-bench.XXXXXX)
cleanup() { if ((KEEP)); then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi; }
trap cleanup EXIT

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BIN" --dir "$TMP" --devices "$DEVICES" --patches "$PATCHES" --runs "$RUNS" \
    >"$TMP/figures.txt" 2>"$TMP/bench.log" || { cat "$TMP/bench.log" >&2; exit 1; }

fig() { sed -n "s/^$1=//p" "$TMP/figures.txt"; }
# verdict VALUE LIMIT: PASS when VALUE <= LIMIT
verdict() { awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l) ? "PASS" : "FAIL" }'; }

{
    printf '%-58s %14s %8s\n' "figure ($DEVICES devices)" value verdict
    row() { printf '%-58s %14s %8s\n' "$1" "$2" "${3:-}"; }
    row "SELECT * WHERE deviceId = 'bench-54321', median ms" "$(fig query_device_id_median_ms)" \
        "$(verdict "$(fig query_device_id_median_ms)" 10)"
    row "SELECT * WHERE tags.site = 'x' ($(fig query_tag_rows) rows), median ms" \
        "$(fig query_tag_median_ms)" "$(verdict "$(fig query_tag_median_ms)" 10)"
    row "  ... AND properties.reported.temp < 5, median ms" "$(fig query_tag_and_reported_median_ms)"
    row "SELECT deviceId WHERE reported.temp >= 39 (1st page), ms" \
        "$(fig query_reported_range_median_ms)"
    row "not translatable (ENDSWITH, scans every twin), ms" "$(fig query_unindexed_median_ms)"
    row "the old way: every twin read and evaluated, ms" "$(fig query_full_scan_ms)"
    row "GROUP BY tags.site over every twin ($(fig query_group_by_rows) groups), ms" \
        "$(fig query_group_by_median_ms)"
    for p in 100 1000; do
        row "SELECT * paged by $p: $(fig paging_${p}_pages) pages, total ms" "$(fig paging_${p}_total_ms)"
        row "SELECT * paged by $p: RSS growth, MB" "$(fig paging_${p}_rss_growth_mb)" \
            "$(verdict "$(fig paging_${p}_rss_growth_mb)" 50)"
    done
    row "WHERE tags.region = 'eu' ($(fig paging_tag_half_rows) rows) by 100: ms per page" \
        "$(fig paging_tag_half_ms_per_page)"
    row "WHERE tags.region = 'eu' by 100: RSS growth, MB" "$(fig paging_tag_half_rss_growth_mb)" \
        "$(verdict "$(fig paging_tag_half_rss_growth_mb)" 50)"
    row "reported patches/s without the index maintenance" "$(fig patches_without_index_per_s)"
    row "reported patches/s with it" "$(fig patches_with_index_per_s)"
    row "ratio (cost of the index on a twin put)" "$(fig patches_index_cost_ratio)"
    row "writer CPU per patch without / with, us" \
        "$(fig patches_without_index_writer_cpu_us) / $(fig patches_with_index_writer_cpu_us)"
    row "index rebuild for every twin, ms" "$(fig index_rebuild_ms)"
} | tee ${OUT:+"$OUT"}
