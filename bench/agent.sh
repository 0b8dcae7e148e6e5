#!/usr/bin/env bash
# Benchmarks of the device side (issue 3): agent steady-state memory, binary size, and the latency
# of a desired patch through configd to its acknowledgement, each beside a baseline measured in the
# same run: mosquitto_sub (a minimal TLS MQTT client) for memory and size, and a desired property
# the agent applies without configd (rebootPolicy) for latency.
set -euo pipefail

usage() {
    echo "Usage: bench/agent.sh [--no-build] [--iterations N] [--keep]"
    echo "Targets: agent RSS <= 4 MB; stripped agent + libiotdm <= 500 KB;"
    echo "desired patch -> configd -> acknowledged reported patch, median <= 20 ms (loopback)."
}
BUILD=1 N=60 KEEP=0
while (($#)); do
    case "$1" in
    --no-build) BUILD=0 ;;
    --iterations) N=$2; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/ci
if ((BUILD)); then
    cmake --preset ci >/dev/null && cmake --build "$BIN" -j"$(nproc)" >/dev/null
fi
TMP=$(mktemp -d /tmp/iotdm-bench-agent.XXXXXX)
# Port 443: the CLI, like every Azure service client, cannot take a port in HostName.
ADDR=${IOTDM_BENCH_ADDR:-127.0.0.77} MQTT=8883 HTTPS=443
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ((KEEP)) && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN/src/hub/iotdm-hub" --data-dir "$TMP/hub" --listen $ADDR --hostname $ADDR \
    --mqtt-port $MQTT --https-port $HTTPS --log-level warn 2>"$TMP/hub.log" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$TMP/hub.log" 2>/dev/null && break; [[ -s $TMP/hub/owner.connstr ]] && break; sleep 0.1; done
sleep 0.5
OWNER=$(cat "$TMP/hub/owner.connstr")
cli() { IOTDM_CONNECTION_STRING=$OWNER IOTDM_CA=$TMP/hub/ca.pem "$BIN/src/cli/iotdm" "$@"; }
cli device create --device-id bench-agent >/dev/null
cli device create --device-id bench-baseline >/dev/null
DEV_CS=$(cli device connection-string --device-id bench-agent | tr -d '\n' | sed "s/HostName=[^;]*/HostName=$ADDR/")

mkdir -p "$TMP/root"
printf 'socket = %s\nallow_uid = 0\n' "$TMP/configd.sock" >"$TMP/configd.conf"
"$BIN/src/configd/iotdm-configd" --config "$TMP/configd.conf" --sandbox "$TMP/root" --log-level warn 2>"$TMP/configd.log" &
pids+=($!)
for _ in $(seq 50); do [[ -S $TMP/configd.sock ]] && break; sleep 0.1; done
"$BIN/src/agent/iotdm-agent" --config /dev/null --connection-string "$DEV_CS" --hub-port $MQTT \
    --ca-file "$TMP/hub/ca.pem" --state-dir "$TMP/state" --configd-socket "$TMP/configd.sock" \
    --log-level warn 2>"$TMP/agent.log" &
AGENT=$!
pids+=($AGENT)

# Baseline client: mosquitto_sub holding a TLS connection to the hub as a device.
BASE_KEY=$(cli device show --device-id bench-baseline --json | sed -n 's/.*"primaryKey": *"\([^"]*\)".*/\1/p' | head -1)
SE=$(($(date +%s) + 3600))
SR="$ADDR%2Fdevices%2Fbench-baseline"
SIG=$(printf '%s\n%s' "$SR" "$SE" | openssl dgst -sha256 -mac HMAC \
    -macopt hexkey:"$(printf '%s' "$BASE_KEY" | base64 -d | od -An -tx1 | tr -d ' \n')" -binary | base64)
SIG_ENC=$(printf '%s' "$SIG" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')
mosquitto_sub -h $ADDR -p $MQTT --cafile "$TMP/hub/ca.pem" -V mqttv311 -i bench-baseline -c \
    -u "$ADDR/bench-baseline/?api-version=2021-04-12" \
    -P "SharedAccessSignature sr=$SR&sig=$SIG_ENC&se=$SE" -t '$iothub/methods/POST/#' >/dev/null 2>"$TMP/sub.log" &
BASE=$!
pids+=($BASE)

sleep 6 # connect, first reports, steady state
if [[ -n ${IOTDM_BENCH_PAUSE:-} ]]; then
    echo "paused: agent pid $AGENT, baseline pid $BASE; press Enter" >&2
    read -r _
fi
# RSS counts every resident page of the shared libraries too (libcrypto alone is ~4 MB of it), so
# PSS (shared pages split among their users) and USS (private pages) are printed beside it.
mem_kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/smaps_rollup"; }
uss_kb() { awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sample() { for _ in 1 2 3 4 5; do "$@"; sleep 0.5; done | median; }
AG_RSS=$(sample mem_kb $AGENT Rss) BASE_RSS=$(sample mem_kb $BASE Rss)
AG_PSS=$(sample mem_kb $AGENT Pss) BASE_PSS=$(sample mem_kb $BASE Pss)
AG_USS=$(sample uss_kb $AGENT) BASE_USS=$(sample uss_kb $BASE)

strip_size() { cp "$1" "$TMP/s" && strip "$TMP/s" && stat -c %s "$TMP/s"; }
LIB=$(readlink -f "$BIN/src/client/libiotdm.so")
AG_SIZE=$(($(strip_size "$BIN/src/agent/iotdm-agent") + $(strip_size "$LIB")))
MOSQ_LIB=$(ldconfig -p | awk '/libmosquitto.so.1 / {print $NF; exit}')
BASE_SIZE=$(($(strip_size "$(command -v mosquitto_sub)") + $(strip_size "$(readlink -f "$MOSQ_LIB")")))

lat() {
    node "$ROOT/bench/agent_latency.js" $ADDR $HTTPS "$TMP/hub/ca.pem" "$OWNER" bench-agent "$1" "$N" >"$TMP/lat-$1.txt"
    tail -n +6 "$TMP/lat-$1.txt" | median # the first five warm up
}
CFG_P50=$(lat timeInfo)
BASE_P50=$(lat rebootPolicy)
CFG_P90=$(tail -n +6 "$TMP/lat-timeInfo.txt" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.9)]}')

verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v <= t ? "PASS" : "FAIL")}'; }
printf '\n%-44s %12s %12s %8s %s\n' "iotdm-agent (issue 3)" "agent" "baseline" "ratio" "target"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
printf '%-44s %9s KB %9s KB %8s\n' "steady-state RSS (vs mosquitto_sub, TLS)" "$AG_RSS" "$BASE_RSS" "$(ratio "$AG_RSS" "$BASE_RSS")"
printf '%-44s %9s KB %9s KB %8s %s (<= 4096 KB)\n' "steady-state PSS (shared pages split)" \
    "$AG_PSS" "$BASE_PSS" "$(ratio "$AG_PSS" "$BASE_PSS")" "$(verdict "$AG_PSS" 4096)"
printf '%-44s %9s KB %9s KB %8s\n' "steady-state USS (private pages only)" "$AG_USS" "$BASE_USS" "$(ratio "$AG_USS" "$BASE_USS")"
printf '%-44s %9s KB %9s KB %8.2f %s (<= 500 KB)\n' "stripped agent + libiotdm (vs sub + libmosq)" \
    "$((AG_SIZE / 1024))" "$((BASE_SIZE / 1024))" "$(awk -v a="$AG_SIZE" -v b="$BASE_SIZE" 'BEGIN {print a/b}')" \
    "$(verdict $((AG_SIZE / 1024)) 500)"
printf '%-44s %9s ms %9s ms %8.2f %s (median <= 20 ms; p90 %s ms)\n' "desired -> configd -> ack (vs no configd)" \
    "$CFG_P50" "$BASE_P50" "$(awk -v a="$CFG_P50" -v b="$BASE_P50" 'BEGIN {print a/b}')" "$(verdict "$CFG_P50" 20)" "$CFG_P90"
