#!/usr/bin/env bash
# Runs every benchmark scenario against iotdm-hub and Mosquitto 2 (TLS) in the same run and prints
# absolute figures, hub/Mosquitto ratios, with/without ratios, and PASS/FAIL against the targets of
# issue 10 (issue 2's scenarios with raised targets, methods under queries, the hostile mix).
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/run.sh [--quick] [--runs N] [--no-build] [--keep] [--port-base P] [--out FILE]
                    [--hub-bin PATH] [--hub-threads N] [--query-clients N] [--only LIST]

Builds the ci preset, starts a fresh iotdm-hub and a Mosquitto 2 with a TLS listener on loopback,
runs each scenario of iotdm-loadgen against both (idle, telemetry, methods; reported, query and
hostile against the hub only), and prints a table with the medians of the runs.

  --quick          2,000 idle connections, 20,000 registered devices, short durations, 1 run
                   (about 1.5 minutes; the full run takes about 11)
  --runs N         repetitions (default 3; 1 with --quick)
  --no-build       use the binaries already in build/ci
  --keep           keep the temporary directory (logs, raw figures)
  --port-base P    ports P (hub MQTT), P+1 (hub HTTPS), P+2 (Mosquitto); default 38883
  --out FILE       also write the table to FILE
  --hub-bin PATH   measure another iotdm-hub binary (for example a build with a candidate fix)
  --hub-threads N  start the hub with --threads N (default: the hub's own, one loop per CPU)
  --query-clients N  HTTPS clients running queries in the query scenario (default 1)
  --only LIST      run only these scenarios (comma-separated: idle, telemetry, reported,
                   methods, query, hostile); the others show "-"
  --store postgresql, --nodes N
                   the hub on PostgreSQL, N nodes behind HAProxy: bench/cluster.sh (its
                   --help lists its options)
EOF
}

# The hub on PostgreSQL (one node or a cluster) has a script of its own with these options.
for arg in "$@"; do
    if [[ $arg == --store || $arg == --nodes ]]; then
        exec "$(dirname "$0")/cluster.sh" "$@"
    fi
done

QUICK=0 RUNS='' BUILD=1 KEEP=0 PORT_BASE=38883 OUT='' HUB_BIN='' HUB_THREADS='' QUERY_CLIENTS=1
ONLY=idle,telemetry,reported,methods,query,hostile
while (($#)); do
    case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --port-base) PORT_BASE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --hub-bin) HUB_BIN=$2; shift ;;
    --hub-threads) HUB_THREADS=$2; shift ;;
    --query-clients) QUERY_CLIENTS=$2; shift ;;
    --only) ONLY=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/ci
HUB_BIN=${HUB_BIN:-$BIN/src/hub/iotdm-hub}
LG=$BIN/bench/iotdm-loadgen

# ---- scale ---------------------------------------------------------------------------------------
# The idle target is 20,000 connections; each side needs one descriptor per connection plus a few.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_HARD=$(ulimit -Hn)
IDLE_TARGET=20000
QUERY_TARGET=100000
if ((QUICK)); then
    IDLE_N=2000 DUR=4 WARM=2 METHOD_DUR=5 HOLD=3 QUERY_N=20000 HOSTILE_DUR=5 RUNS=${RUNS:-1}
else
    IDLE_N=$IDLE_TARGET DUR=10 WARM=3 METHOD_DUR=15 HOLD=4 QUERY_N=$QUERY_TARGET HOSTILE_DUR=15
    RUNS=${RUNS:-3}
fi
IDLE_NOTE=
if [[ $FD_HARD != unlimited ]] && ((IDLE_N > FD_HARD - 100)); then
    IDLE_N=$((FD_HARD - 100))
    IDLE_NOTE="idle connections capped at $IDLE_N by the hard RLIMIT_NOFILE ($FD_HARD) of this shell"
fi
TELEMETRY_DEVICES=1000 WINDOW=4 PAYLOAD=256 METHOD_DEVICES=100 METHOD_RATE=500 SITE_SIZE=100
# The hostile mix: legitimate devices and their load, attackers per kind, the hub's limits.
HOSTILE_DEVICES=100 HOSTILE_RATE=200 HOSTILE_TELEMETRY=1000 ATTACKERS=10 FLOODERS=4 RAMP=3
HOSTILE_LIMITS=(--stall-timeout 3 --handshake-timeout 3 --header-timeout 3)
REGISTER_N=$((IDLE_N > QUERY_N ? IDLE_N : QUERY_N))
wants() { [[ ",$ONLY," == *",$1,"* ]]; }

HUB_MQTT=$PORT_BASE HUB_HTTPS=$((PORT_BASE + 1)) MQ_PORT=$((PORT_BASE + 2))

# ---- processes and clean-up -----------------------------------------------------------------------
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
TMP=$(mktemp -d /tmp/iotdm-bench.XXXXXX)
chmod 755 "$TMP"
HUB_PID='' MQ_PID='' LG_PID=''

cleanup() {
    stop_pid "$LG_PID"
    stop_pid "$HUB_PID"
    stop_pid "$MQ_PID"
    if ((KEEP)); then
        echo "bench: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "$HUB_MQTT" "$HUB_HTTPS" "$MQ_PORT"; do
    port_free "$p" || die "port $p is in use (choose another --port-base)"
done

start_hub() { # extra hub options; HUB_DIR names the data directory (default $TMP/hub)
    "$HUB_BIN" --data-dir "${HUB_DIR:-$TMP/hub}" --listen 127.0.0.1 --hostname 127.0.0.1 \
        --mqtt-port "$HUB_MQTT" --https-port "$HUB_HTTPS" ${HUB_THREADS:+--threads "$HUB_THREADS"} \
        "$@" >>"$TMP/hub.log" 2>&1 &
    HUB_PID=$!
    wait_port "$HUB_MQTT" "$HUB_PID" "$TMP/hub.log"
    wait_port "$HUB_HTTPS" "$HUB_PID" "$TMP/hub.log"
}

# ---- build ----------------------------------------------------------------------------------------
if ((BUILD)); then
    echo "bench: building (cmake --preset ci)" >&2
    if ! (cd "$ROOT" && cmake --preset ci && cmake --build build/ci -j2 \
        --target iotdm-hub iotdm-loadgen) >"$TMP/build.log" 2>&1; then
        tail -20 "$TMP/build.log" >&2
        die "build failed"
    fi
fi
[[ -x $HUB_BIN && -x $LG ]] || die "missing $HUB_BIN or $LG (build first)"
command -v mosquitto >/dev/null || die "mosquitto is not installed"
MQ_VERSION=$( (mosquitto -h 2>/dev/null || true) | awk 'NR == 1 {print $3}')

mkdir -p "$TMP/res"
mosquitto_setup
FAILURES=0
START=$SECONDS
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

HUB_ARGS=(--host 127.0.0.1 --port "$HUB_MQTT" --https-port "$HUB_HTTPS" --ca "$TMP/hub/ca.pem"
    --connstr-file "$TMP/hub/owner.connstr")
MQ_ARGS=(--broker mosquitto --host 127.0.0.1 --port "$MQ_PORT" --ca "$TMP/mq/ca.pem")
TEL_ARGS=(--devices "$TELEMETRY_DEVICES" --window "$WINDOW" --payload "$PAYLOAD" --duration "$DUR"
    --warmup "$WARM")
MET_ARGS=(--devices "$METHOD_DEVICES" --rate "$METHOD_RATE" --duration "$METHOD_DUR" --warmup 2)
QUERY_ARGS=("${MET_ARGS[@]}" --registered "$QUERY_N" --site-size "$SITE_SIZE"
    --query-clients "$QUERY_CLIENTS")
HOSTILE_ARGS=(--devices "$HOSTILE_DEVICES" --rate "$HOSTILE_RATE" --telemetry-rate
    "$HOSTILE_TELEMETRY" --duration "$HOSTILE_DUR" --warmup 2 --attack-ramp "$RAMP"
    --attackers "$ATTACKERS" --flooders "$FLOODERS")

start_hub
HUB_LOOPS=$(sed -n 's/.*hub: ready .*loops=\([0-9]*\).*/\1/p' "$TMP/hub.log" | head -1)
echo "bench: registering $REGISTER_N devices, tags.site for every $SITE_SIZE" >&2
loadgen register "${HUB_ARGS[@]}" register --devices "$REGISTER_N" --site-size "$SITE_SIZE"
((FAILURES == 0)) || die "registration failed"

for ((run = 1; run <= RUNS; run++)); do
    echo "bench: run $run/$RUNS ($((SECONDS - START)) s so far)" >&2
    # Fresh server processes, so the idle memory is measured from a clean start.
    stop_pid "$HUB_PID"
    start_hub
    start_mosquitto
    IDLE_ARGS=(--devices "$IDLE_N" --hold "$HOLD" --settle 3 --concurrency 100)
    if wants idle; then
        loadgen "idle-hub-$run" "${HUB_ARGS[@]}" idle "${IDLE_ARGS[@]}" --server-pid "$HUB_PID"
        loadgen "idle-mq-$run" "${MQ_ARGS[@]}" idle "${IDLE_ARGS[@]}" --server-pid "$MQ_PID"
    fi
    if wants telemetry; then
        loadgen "telemetry-hub-$run" "${HUB_ARGS[@]}" telemetry "${TEL_ARGS[@]}" \
            --server-pid "$HUB_PID"
        loadgen "telemetry-mq-$run" "${MQ_ARGS[@]}" telemetry "${TEL_ARGS[@]}" --server-pid "$MQ_PID"
    fi
    wants reported && loadgen "reported-hub-$run" "${HUB_ARGS[@]}" reported "${TEL_ARGS[@]}"
    if wants methods; then
        loadgen "methods-hub-$run" "${HUB_ARGS[@]}" methods "${MET_ARGS[@]}"
        loadgen "methods-mq-$run" "${MQ_ARGS[@]}" methods "${MET_ARGS[@]}"
    fi
    wants query && loadgen "query-$run" "${HUB_ARGS[@]}" query "${QUERY_ARGS[@]}" \
        --server-pid "$HUB_PID"
    stop_pid "$MQ_PID"
    MQ_PID=
    if wants hostile; then
        # A data directory of its own: the telemetry left by the scenarios above would be trimmed
        # at the hub's first housekeeping pass, in the middle of the baseline. Limits short
        # enough for the attacks to meet them within a short run.
        stop_pid "$HUB_PID"
        HUB_DIR=$TMP/hub-hostile-$run start_hub "${HOSTILE_LIMITS[@]}"
        H_ARGS=(--host 127.0.0.1 --port "$HUB_MQTT" --https-port "$HUB_HTTPS"
            --ca "$TMP/hub-hostile-$run/ca.pem" --connstr-file "$TMP/hub-hostile-$run/owner.connstr")
        # The legitimate devices, the twin-flood devices and the ones wrong CONNECTs name.
        loadgen "hostile-register-$run" "${H_ARGS[@]}" register \
            --devices $((HOSTILE_DEVICES + ATTACKERS + FLOODERS))
        loadgen "hostile-$run" "${H_ARGS[@]}" hostile "${HOSTILE_ARGS[@]}" --server-pid "$HUB_PID"
        rm -rf "$TMP/hub-hostile-$run"
    fi
done
stop_pid "$HUB_PID"
HUB_PID=

# ---- figures --------------------------------------------------------------------------------------
H_CONN=$(med idle-hub connected) M_CONN=$(med idle-mq connected)
H_MEM=$(med idle-hub server_bytes_per_conn) M_MEM=$(med idle-mq server_bytes_per_conn)
H_CT=$(med idle-hub connect_seconds) M_CT=$(med idle-mq connect_seconds)
H_TEL=$(med telemetry-hub rate_median) M_TEL=$(med telemetry-mq rate_median)
H_TCPU=$(med telemetry-hub server_cpu_pct) M_TCPU=$(med telemetry-mq server_cpu_pct)
H_TUS=$(med telemetry-hub server_cpu_us_per_msg) M_TUS=$(med telemetry-mq server_cpu_us_per_msg)
H_TLG=$(med telemetry-hub loadgen_cpu_pct) M_TLG=$(med telemetry-mq loadgen_cpu_pct)
H_REP=$(med reported-hub rate_median)
H_P50=$(med methods-hub lat_p50_ms) M_P50=$(med methods-mq lat_p50_ms)
H_P90=$(med methods-hub lat_p90_ms) M_P90=$(med methods-mq lat_p90_ms)
H_P99=$(med methods-hub lat_p99_ms) M_P99=$(med methods-mq lat_p99_ms)
H_MAX=$(med methods-hub lat_max_ms) M_MAX=$(med methods-mq lat_max_ms)

CONN_OK=$(awk -v c="$H_CONN" -v n="$IDLE_N" 'BEGIN { print (c == n) ? "PASS" : "FAIL" }')
if ((QUICK)); then
    CONN_OK="($CONN_OK at $IDLE_N)"
elif [[ $IDLE_N -lt $IDLE_TARGET && $CONN_OK == PASS ]]; then
    CONN_OK="PASS at $IDLE_N*"
fi
MEM_OK=$(verdict "$H_MEM" "<=" 16384)
[[ $CONN_OK == FAIL ]] && MEM_OK=FAIL
wants idle || CONN_OK=- MEM_OK=-
# A quick run registers fewer devices: its query figures are not the target's.
scaled() { if ((QUERY_N < QUERY_TARGET)) && [[ $1 != - ]]; then echo "($1)"; else echo "$1"; fi; }

# check SCENARIO VALUE OP TARGET: verdict, or "-" for a scenario not run (--only).
check() { if wants "$1"; then verdict "$2" "$3" "$4"; else echo -; fi; }

table_issue2() {
    row "figure" "iotdm-hub" "mosquitto" "ratio" "target" "result"
    row "idle TLS connections held" "$H_CONN" "$M_CONN" "-" ">= $IDLE_TARGET" "$CONN_OK"
    row "  memory per connection (bytes)" "$H_MEM" "$M_MEM" "$(ratio "$H_MEM" "$M_MEM")" \
        "hub <= 16384" "$MEM_OK"
    row "  time to connect all (s)" "$H_CT" "$M_CT" "$(ratio "$H_CT" "$M_CT")" "-" "-"
    row "telemetry QoS 1, 256 B, 1000 dev (msg/s)" "$H_TEL" "$M_TEL" "$(ratio "$H_TEL" "$M_TEL")" \
        "ratio >= 1.5" "$(check telemetry "$(ratio "$H_TEL" "$M_TEL")" ">=" 1.5)"
    # Where the CPU went: a rate bound by the generator (100 % of a core) says nothing of the
    # server; CPU per message compares the servers whatever bound the rate.
    row "  server CPU (% of one core)" "$H_TCPU" "$M_TCPU" "$(ratio "$H_TCPU" "$M_TCPU")" "-" "-"
    row "  server CPU per message (us)" "$H_TUS" "$M_TUS" "$(ratio "$H_TUS" "$M_TUS")" "-" "-"
    row "  load generator CPU (% of one core)" "$H_TLG" "$M_TLG" "-" "-" "-"
    row "durable reported patches (/s)" "$H_REP" "-" "-" ">= 20000" \
        "$(check reported "$H_REP" ">=" 20000)"
    row "method round trip p50 @500/s (ms)" "$H_P50" "$M_P50" "$(ratio "$H_P50" "$M_P50")" "<= 2" \
        "$(check methods "$H_P50" "<=" 2)"
    row "  p90 (ms)" "$H_P90" "$M_P90" "$(ratio "$H_P90" "$M_P90")" "-" "-"
    row "  p99 (ms)" "$H_P99" "$M_P99" "$(ratio "$H_P99" "$M_P99")" "<= 10" \
        "$(check methods "$H_P99" "<=" 10)"
    row "  max (ms)" "$H_MAX" "$M_MAX" "$(ratio "$H_MAX" "$M_MAX")" "-" "-"
}

Q_B50=$(med query base_lat_p50_ms) Q_B90=$(med query base_lat_p90_ms)
Q_B99=$(med query base_lat_p99_ms) Q_BMAX=$(med query base_lat_max_ms)
Q_L50=$(med query load_lat_p50_ms) Q_L90=$(med query load_lat_p90_ms)
Q_L99=$(med query load_lat_p99_ms) Q_LMAX=$(med query load_lat_max_ms)
Q_TAG=$(med query query_tag_p50_ms) Q_ID=$(med query query_id_p50_ms)
Q_PAGE=$(med query query_page_p50_ms)
Q_TAGN=$(med query query_tag_requests) Q_IDN=$(med query query_id_requests)
Q_PAGEN=$(med query query_page_requests)
Q_GROW=$(med query server_rss_growth_kb)
Q_GROW_MB=$(mb "$Q_GROW")

table_query() {
    printf '\nMethods while %d HTTPS client(s) run queries back to back over %s registered devices\n' \
        "$QUERY_CLIENTS" "$QUERY_N"
    printf '(tags.site matches %d devices; the same process measures both phases, one after the other)\n' \
        "$SITE_SIZE"
    row "figure" "no queries" "queries" "ratio" "target" "result"
    row "method round trip p50 @500/s (ms)" "$Q_B50" "$Q_L50" "$(ratio "$Q_L50" "$Q_B50")" "-" "-"
    row "  p90 (ms)" "$Q_B90" "$Q_L90" "$(ratio "$Q_L90" "$Q_B90")" "-" "-"
    row "  p99 (ms)" "$Q_B99" "$Q_L99" "$(ratio "$Q_L99" "$Q_B99")" "<= 10 with queries" \
        "$(scaled "$(verdict "$Q_L99" "<=" 10)")"
    row "  max (ms)" "$Q_BMAX" "$Q_LMAX" "$(ratio "$Q_LMAX" "$Q_BMAX")" "-" "-"
    row "query WHERE tags.site = (median ms)" "-" "$Q_TAG" "-" "<= 10" \
        "$(scaled "$(verdict "$Q_TAG" "<=" 10)")"
    row "query WHERE deviceId = (median ms)" "-" "$Q_ID" "-" "<= 10" \
        "$(scaled "$(verdict "$Q_ID" "<=" 10)")"
    row "SELECT *, a page of 100 (median ms)" "-" "$Q_PAGE" "-" "-" "-"
    row "  hub RSS growth while querying (MB)" "-" "$Q_GROW_MB" "-" "<= 50" \
        "$(scaled "$(verdict "$Q_GROW_MB" "<=" 50)")"
    printf 'Requests per kind in the loaded phase (medians): tag %s, deviceId %s, SELECT * pages %s.\n' \
        "$Q_TAGN" "$Q_IDN" "$Q_PAGEN"
}

X_B50=$(med hostile base_lat_p50_ms) X_L50=$(med hostile load_lat_p50_ms)
X_B99=$(med hostile base_lat_p99_ms) X_L99=$(med hostile load_lat_p99_ms)
X_BMAX=$(med hostile base_lat_max_ms) X_LMAX=$(med hostile load_lat_max_ms)
X_BT50=$(med hostile base_puback_p50_ms) X_LT50=$(med hostile load_puback_p50_ms)
X_BT99=$(med hostile base_puback_p99_ms) X_LT99=$(med hostile load_puback_p99_ms)
X_BTMAX=$(med hostile base_puback_max_ms) X_LTMAX=$(med hostile load_puback_max_ms)
X_RSS0=$(med hostile server_rss_before_kb) X_RSSB=$(med hostile server_rss_base_end_kb)
X_RSSMAX=$(med hostile server_rss_max_kb) X_RSSA=$(med hostile server_rss_after_kb)
X_CLOSED=$(med hostile atk_closed_by_hub)
# Failures of the legitimate side: calls failed or unanswered, devices dropped, messages blocked.
X_BAD=$(for ((run = 1; run <= RUNS; run++)); do
    f=$TMP/res/hostile-$run
    if [[ -f $f ]]; then # not "[[ ]] &&": a missing last file would fail the pipeline (--only)
        awk -F= '$1 ~ /^(base|load)_(failed|unanswered|legit_dropped|telemetry_blocked)$/ \
            {s += $2} END {print s + 0}' "$f"
    fi
done | sort -g | tail -1)
X_BAD=${X_BAD:--}
ATK_KINDS=(pipeline pipeline_auth slowloris twin_flood no_handshake unauth)

table_hostile() {
    printf '\nHostile mix: %d legitimate devices (QoS 1 telemetry %d msg/s, methods %d/s) without and\n' \
        "$HOSTILE_DEVICES" "$HOSTILE_TELEMETRY" "$HOSTILE_RATE"
    printf 'with attackers (%d per kind, %d unauthenticated loops); hub started with %s\n' \
        "$ATTACKERS" "$FLOODERS" "${HOSTILE_LIMITS[*]}"
    row "figure" "no attackers" "attackers" "ratio" "target" "result"
    row "legit method round trip p50 (ms)" "$X_B50" "$X_L50" "$(ratio "$X_L50" "$X_B50")" "-" "-"
    row "  p99 (ms)" "$X_B99" "$X_L99" "$(ratio "$X_L99" "$X_B99")" "-" "-"
    row "  max (ms)" "$X_BMAX" "$X_LMAX" "$(ratio "$X_LMAX" "$X_BMAX")" "-" "-"
    row "legit telemetry PUBACK p50 (ms)" "$X_BT50" "$X_LT50" "$(ratio "$X_LT50" "$X_BT50")" "-" "-"
    row "  p99 (ms)" "$X_BT99" "$X_LT99" "$(ratio "$X_LT99" "$X_BT99")" "-" "-"
    row "  max (ms)" "$X_BTMAX" "$X_LTMAX" "$(ratio "$X_LTMAX" "$X_BTMAX")" "-" "-"
    row "hub RSS (MB): start / end of baseline" "$(mb "$X_RSS0")" "$(mb "$X_RSSB")" "-" "-" "-"
    row "  peak under attack / 3 s after (MB)" "$(mb "$X_RSSMAX")" "$(mb "$X_RSSA")" "-" "-" "-"
    row "legit failures (calls, drops, blocked)" "-" "$X_BAD" "-" "0" \
        "$(verdict "$X_BAD" "<=" 0)"
    row "attacker connections the hub closed" "-" "$X_CLOSED" "-" "-" "-"
    local k line=''
    for k in "${ATK_KINDS[@]}"; do
        line+="$k $(med hostile "atk_${k}_closed_by_hub")/$(med hostile "atk_${k}_opened")"
        line+=" (life max $(med hostile "atk_${k}_life_max_s") s), "
    done
    printf 'Closed by the hub / opened, per kind: %s\n' "${line%, }"
    line=''
    for k in "${ATK_KINDS[@]}"; do
        line+="$k $(med hostile "atk_${k}_open_at_end") ($(med hostile "atk_${k}_oldest_open_s") s), "
    done
    printf 'Open at the end (oldest): %s\n' "${line%, }"
}

table() {
    printf 'iotdm-hub (%s loops) vs Mosquitto %s with TLS, %s, %d CPUs shared with the load generator\n' \
        "${HUB_LOOPS:-?}" "$MQ_VERSION" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)"
    printf 'medians of %d run(s)%s; load average before the run: %s\n\n' "$RUNS" \
        "$( ((QUICK)) && echo ' (--quick: scaled down)')" "$LOADAVG"
    table_issue2
    wants query && table_query
    wants hostile && table_hostile
    printf '\nratio = hub/mosquitto or loaded/unloaded (higher is better for rates, lower for memory,\n'
    printf 'time, latency).\n'
    printf 'Per-run values: hub telemetry [%s], mosquitto [%s]; reported [%s];\n' \
        "$(all telemetry-hub rate_median)" "$(all telemetry-mq rate_median)" \
        "$(all reported-hub rate_median)"
    printf '  hub bytes/conn [%s], mosquitto [%s]; hub p50 [%s] p99 [%s]\n' \
        "$(all idle-hub server_bytes_per_conn)" "$(all idle-mq server_bytes_per_conn)" \
        "$(all methods-hub lat_p50_ms)" "$(all methods-hub lat_p99_ms)"
    printf '  method calls unanswered when the run ended: hub [%s], mosquitto [%s]\n' \
        "$(all methods-hub unanswered)" "$(all methods-mq unanswered)"
    printf '  generator timer lateness in the methods phase, max ms: hub [%s], mosquitto [%s]\n' \
        "$(all methods-hub timer_late_max_ms)" "$(all methods-mq timer_late_max_ms)"
    if wants query; then
        printf '  query: method p99 without [%s] with [%s]; median ms tag [%s] deviceId [%s] page [%s];\n' \
            "$(all query base_lat_p99_ms)" "$(all query load_lat_p99_ms)" \
            "$(all query query_tag_p50_ms)" "$(all query query_id_p50_ms)" \
            "$(all query query_page_p50_ms)"
        printf '    hub RSS growth KiB [%s]; timer lateness max ms without [%s] with [%s]\n' \
            "$(all query server_rss_growth_kb)" "$(all query base_timer_late_max_ms)" \
            "$(all query load_timer_late_max_ms)"
    fi
    if wants hostile; then
        printf '  hostile: method p50 without [%s] with [%s], p99 without [%s] with [%s];\n' \
            "$(all hostile base_lat_p50_ms)" "$(all hostile load_lat_p50_ms)" \
            "$(all hostile base_lat_p99_ms)" "$(all hostile load_lat_p99_ms)"
        printf '    PUBACK p50 without [%s] with [%s], p99 without [%s] with [%s];\n' \
            "$(all hostile base_puback_p50_ms)" "$(all hostile load_puback_p50_ms)" \
            "$(all hostile base_puback_p99_ms)" "$(all hostile load_puback_p99_ms)"
        printf '    attacker connections closed [%s]; hub refusals counted [%s]; timer lateness max ms [%s]\n' \
            "$(all hostile atk_closed_by_hub)" "$(all hostile refused_total)" \
            "$(all hostile load_timer_late_max_ms)"
    fi
    [[ -z $IDLE_NOTE ]] || printf '* %s.\n' "$IDLE_NOTE"
    ((QUERY_N >= QUERY_TARGET)) || ! wants query || printf '(...) query figures over %d devices, not the target %d.\n' \
        "$QUERY_N" "$QUERY_TARGET"
    ((FAILURES == 0)) || printf 'Note: %d load-generator run(s) reported errors (see loadgen.log).\n' \
        "$FAILURES"
    printf 'Took %d s.\n' "$((SECONDS - START))"
}

table | tee ${OUT:+"$OUT"}
