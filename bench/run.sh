#!/usr/bin/env bash
# Runs every benchmark scenario against iotdm-hub and Mosquitto 2 (TLS) in the same run and prints
# absolute figures, hub/Mosquitto ratios and PASS/FAIL against the targets of issue 2.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/run.sh [--quick] [--runs N] [--no-build] [--keep] [--port-base P] [--out FILE]
                    [--hub-bin PATH]

Builds the ci preset, starts a fresh iotdm-hub and a Mosquitto 2 with a TLS listener on loopback,
runs each scenario of iotdm-loadgen against both (idle, telemetry, methods; reported against the
hub only), and prints a table with the medians of the runs.

  --quick        2,000 idle connections, short durations, 1 run (about 2 minutes)
  --runs N       repetitions (default 3; 1 with --quick)
  --no-build     use the binaries already in build/ci
  --keep         keep the temporary directory (logs, raw figures)
  --port-base P  ports P (hub MQTT), P+1 (hub HTTPS), P+2 (Mosquitto); default 38883
  --out FILE     also write the table to FILE
  --hub-bin PATH measure another iotdm-hub binary (for example a build with a candidate fix)
EOF
}

QUICK=0 RUNS='' BUILD=1 KEEP=0 PORT_BASE=38883 OUT='' HUB_BIN=''
while (($#)); do
    case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --port-base) PORT_BASE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --hub-bin) HUB_BIN=$2; shift ;;
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
if ((QUICK)); then
    IDLE_N=2000 DUR=4 WARM=2 METHOD_DUR=5 HOLD=3 RUNS=${RUNS:-1}
else
    IDLE_N=$IDLE_TARGET DUR=10 WARM=3 METHOD_DUR=15 HOLD=4 RUNS=${RUNS:-3}
fi
IDLE_NOTE=
if [[ $FD_HARD != unlimited ]] && ((IDLE_N > FD_HARD - 100)); then
    IDLE_N=$((FD_HARD - 100))
    IDLE_NOTE="idle connections capped at $IDLE_N by the hard RLIMIT_NOFILE ($FD_HARD) of this shell"
fi
TELEMETRY_DEVICES=1000 WINDOW=4 PAYLOAD=256 METHOD_DEVICES=100 METHOD_RATE=500
REGISTER_N=$((IDLE_N > TELEMETRY_DEVICES ? IDLE_N : TELEMETRY_DEVICES))

HUB_MQTT=$PORT_BASE HUB_HTTPS=$((PORT_BASE + 1)) MQ_PORT=$((PORT_BASE + 2))

# ---- processes and clean-up -----------------------------------------------------------------------
TMP=$(mktemp -d /tmp/iotdm-bench.XXXXXX)
chmod 755 "$TMP"
HUB_PID='' MQ_PID='' LG_PID=''

stop_pid() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

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

die() {
    echo "bench: $*" >&2
    exit 1
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
for p in "$HUB_MQTT" "$HUB_HTTPS" "$MQ_PORT"; do
    port_free "$p" || die "port $p is in use (choose another --port-base)"
done

wait_port() { # port pid log
    local i
    for ((i = 0; i < 100; i++)); do
        port_free "$1" || return 0
        kill -0 "$2" 2>/dev/null || die "server exited; see $3: $(tail -3 "$3")"
        sleep 0.1
    done
    die "nothing listens on port $1 after 10 s"
}

start_hub() {
    "$HUB_BIN" --data-dir "$TMP/hub" --listen 127.0.0.1 --hostname 127.0.0.1 \
        --mqtt-port "$HUB_MQTT" --https-port "$HUB_HTTPS" >>"$TMP/hub.log" 2>&1 &
    HUB_PID=$!
    wait_port "$HUB_MQTT" "$HUB_PID" "$TMP/hub.log"
    wait_port "$HUB_HTTPS" "$HUB_PID" "$TMP/hub.log"
}

start_mosquitto() {
    mosquitto -c "$TMP/mq/mosquitto.conf" >>"$TMP/mosquitto.log" 2>&1 &
    MQ_PID=$!
    wait_port "$MQ_PORT" "$MQ_PID" "$TMP/mosquitto.log"
}

mosquitto_setup() {
    local d=$TMP/mq
    mkdir -p "$d" && chmod 755 "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=bench CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >"$d/ext.cnf"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
    # Mosquitto drops root privileges before it reads the key.
    chmod 644 "$d/server.key"
    # Defaults otherwise, plus TCP_NODELAY: without it each small answer waits for the peer's
    # delayed ACK (about 2 ms at 500 calls/s).
    cat >"$d/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
max_connections -1
set_tcp_nodelay true
log_dest stderr
listener $MQ_PORT 127.0.0.1
certfile $d/server.pem
keyfile $d/server.key
EOF
}

# loadgen NAME ARGS...: runs the generator, its key=value lines go to $TMP/res/NAME.
loadgen() {
    local name=$1
    shift
    timeout 600 "$LG" "$@" >"$TMP/res/$name" 2>>"$TMP/loadgen.log" &
    LG_PID=$!
    local rc=0
    wait "$LG_PID" || rc=$?
    LG_PID=
    if ((rc != 0)); then
        echo "bench: $name: iotdm-loadgen exited with $rc (see loadgen.log)" >&2
        FAILURES=$((FAILURES + 1))
    fi
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

start_hub
echo "bench: registering $REGISTER_N devices" >&2
loadgen register "${HUB_ARGS[@]}" register --devices "$REGISTER_N"
((FAILURES == 0)) || die "registration failed"

for ((run = 1; run <= RUNS; run++)); do
    echo "bench: run $run/$RUNS ($((SECONDS - START)) s so far)" >&2
    # Fresh server processes, so the idle memory is measured from a clean start.
    stop_pid "$HUB_PID"
    start_hub
    start_mosquitto
    IDLE_ARGS=(--devices "$IDLE_N" --hold "$HOLD" --settle 3 --concurrency 100)
    loadgen "idle-hub-$run" "${HUB_ARGS[@]}" idle "${IDLE_ARGS[@]}" --server-pid "$HUB_PID"
    loadgen "idle-mq-$run" "${MQ_ARGS[@]}" idle "${IDLE_ARGS[@]}" --server-pid "$MQ_PID"
    loadgen "telemetry-hub-$run" "${HUB_ARGS[@]}" telemetry "${TEL_ARGS[@]}"
    loadgen "telemetry-mq-$run" "${MQ_ARGS[@]}" telemetry "${TEL_ARGS[@]}"
    loadgen "reported-hub-$run" "${HUB_ARGS[@]}" reported "${TEL_ARGS[@]}"
    loadgen "methods-hub-$run" "${HUB_ARGS[@]}" methods "${MET_ARGS[@]}"
    loadgen "methods-mq-$run" "${MQ_ARGS[@]}" methods "${MET_ARGS[@]}"
    stop_pid "$MQ_PID"
    MQ_PID=
done
stop_pid "$HUB_PID"
HUB_PID=

# ---- figures --------------------------------------------------------------------------------------
# med NAME KEY: median over the runs of KEY in $TMP/res/NAME-<run> ("-" when absent).
med() {
    local f vals=()
    for ((run = 1; run <= RUNS; run++)); do
        f=$TMP/res/$1-$run
        [[ -f $f ]] || continue
        vals+=("$(awk -F= -v k="$2" '$1 == k {print $2}' "$f")")
    done
    printf '%s\n' "${vals[@]}" | awk 'NF' | sort -g | awk '
        {v[NR] = $1} END {
            if (NR == 0) { print "-"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# all NAME KEY: the values of every run, for the record.
all() {
    local out='' run
    for ((run = 1; run <= RUNS; run++)); do
        out+="$(awk -F= -v k="$2" '$1 == k {print $2}' "$TMP/res/$1-$run" 2>/dev/null) "
    done
    echo "${out% }"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (v == "-") { print "FAIL"; exit }
    ok = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0); print ok ? "PASS" : "FAIL" }'; }

H_CONN=$(med idle-hub connected) M_CONN=$(med idle-mq connected)
H_MEM=$(med idle-hub server_bytes_per_conn) M_MEM=$(med idle-mq server_bytes_per_conn)
H_CT=$(med idle-hub connect_seconds) M_CT=$(med idle-mq connect_seconds)
H_TEL=$(med telemetry-hub rate_median) M_TEL=$(med telemetry-mq rate_median)
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

table() {
    printf 'iotdm-hub vs Mosquitto %s with TLS, %s, %d CPUs shared with the load generator\n' \
        "$MQ_VERSION" "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)"
    printf 'medians of %d run(s)%s; load average before the run: %s\n\n' "$RUNS" \
        "$( ((QUICK)) && echo ' (--quick: scaled down)')" "$LOADAVG"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "figure" "iotdm-hub" "mosquitto" "ratio" "target" "result"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "idle TLS connections held" "$H_CONN" "$M_CONN" "-" \
        ">= $IDLE_TARGET" "$CONN_OK"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "  memory per connection (bytes)" "$H_MEM" "$M_MEM" \
        "$(ratio "$H_MEM" "$M_MEM")" "hub <= 16384" "$MEM_OK"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "  time to connect all (s)" "$H_CT" "$M_CT" \
        "$(ratio "$H_CT" "$M_CT")" "-" "-"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "telemetry QoS 1, 256 B, 1000 dev (msg/s)" "$H_TEL" \
        "$M_TEL" "$(ratio "$H_TEL" "$M_TEL")" "ratio >= 1.0" \
        "$(verdict "$(ratio "$H_TEL" "$M_TEL")" ">=" 1.0)"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "durable reported patches (/s)" "$H_REP" "-" "-" \
        ">= 5000" "$(verdict "$H_REP" ">=" 5000)"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "method round trip p50 @500/s (ms)" "$H_P50" "$M_P50" \
        "$(ratio "$H_P50" "$M_P50")" "<= 2" "$(verdict "$H_P50" "<=" 2)"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "  p90 (ms)" "$H_P90" "$M_P90" \
        "$(ratio "$H_P90" "$M_P90")" "-" "-"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "  p99 (ms)" "$H_P99" "$M_P99" \
        "$(ratio "$H_P99" "$M_P99")" "<= 10" "$(verdict "$H_P99" "<=" 10)"
    printf '%-40s %12s %12s %8s  %-22s %s\n' "  max (ms)" "$H_MAX" "$M_MAX" \
        "$(ratio "$H_MAX" "$M_MAX")" "-" "-"
    printf '\nratio = hub/mosquitto (higher is better for rates, lower for memory, time, latency).\n'
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
    [[ -z $IDLE_NOTE ]] || printf '* %s.\n' "$IDLE_NOTE"
    ((FAILURES == 0)) || printf 'Note: %d load-generator run(s) reported errors (see loadgen.log).\n' \
        "$FAILURES"
    printf 'Took %d s.\n' "$((SECONDS - START))"
}

table | tee ${OUT:+"$OUT"}
