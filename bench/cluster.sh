#!/usr/bin/env bash
# The hub on PostgreSQL, one node or several behind HAProxy, against Mosquitto 2 (TLS) in the same
# run: issue 11's figures. bench/run.sh --store postgresql / --nodes N come here.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/cluster.sh [--nodes N] [--runs N] [--quick] [--no-build] [--keep] [--port-base P]
                        [--out FILE]

Starts a throwaway PostgreSQL (scripts/pg-tmp.sh), N iotdm-hub nodes on it (default 1) and, with
N >= 2, HAProxy in TCP mode in front of them, then measures with iotdm-loadgen:
  telemetry  QoS 1, 256 B, 1000 devices through the balancer (or the node), and Mosquitto's rate
             with the same generator; each node's and PostgreSQL's CPU per message and the
             database's commits per second
  reported   durable reported-property patches per second
  methods    500 calls/s with the devices on node 1 and the calls entering node 2 (with one node:
             the same node), so that every call crosses between nodes
  idle       20,000 TLS connections held by node 1 (2,000 with --quick): memory per connection,
             against Mosquitto's
Prints the medians of the runs and PASS/FAIL against the targets.

  --nodes N       hub nodes (default 1)
  --runs N        repetitions (default 3; 1 with --quick)
  --quick         shorter durations, 1 run
  --no-build      use the binaries already in build/ci
  --keep          keep the temporary directory (logs, raw figures)
  --port-base P   balancer ports P (MQTT) and P+1 (HTTPS), node k on P+10k and P+10k+1,
                  Mosquitto on P+2 (default 48883)
  --out FILE      also write the table to FILE
EOF
}

NODES=1 RUNS='' QUICK=0 BUILD=1 KEEP=0 PORT_BASE=48883 OUT=''
while (($#)); do
    case "$1" in
    --nodes) NODES=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --port-base) PORT_BASE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --store) [[ $2 == postgresql ]] || { usage >&2; exit 2; }; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done
((NODES >= 1 && NODES <= 8)) || { echo "bench: --nodes takes 1 to 8" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/ci
HUB_BIN=$BIN/src/hub/iotdm-hub
LG=$BIN/bench/iotdm-loadgen
if ((QUICK)); then
    DUR=4 WARM=2 METHOD_DUR=5 IDLE_N=2000 RUNS=${RUNS:-1}
else
    DUR=10 WARM=3 METHOD_DUR=15 IDLE_N=20000 RUNS=${RUNS:-3}
fi
TELEMETRY_DEVICES=1000 WINDOW=4 PAYLOAD=256 METHOD_DEVICES=100 METHOD_RATE=500
LB_MQTT=$PORT_BASE LB_HTTPS=$((PORT_BASE + 1)) MQ_PORT=$((PORT_BASE + 2))
node_mqtt() { echo $((PORT_BASE + 10 * $1)); }
node_https() { echo $((PORT_BASE + 10 * $1 + 1)); }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_HARD=$(ulimit -Hn)
if [[ $FD_HARD != unlimited ]] && ((IDLE_N > FD_HARD - 200)); then
    IDLE_N=$((FD_HARD - 200)) # each side needs a descriptor per connection, and a few more
fi

# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
TMP=$(mktemp -d /tmp/iotdm-bench-cluster.XXXXXX)
chmod 755 "$TMP"
NODE_PIDS=() MQ_PID='' LG_PID='' LB_PID=''
cleanup() {
    stop_pid "$LG_PID"
    stop_pid "$LB_PID"
    for p in "${NODE_PIDS[@]}"; do stop_pid "$p"; done
    stop_pid "$MQ_PID"
    "$ROOT/scripts/pg-tmp.sh" stop "$TMP/pg" >/dev/null 2>&1 || true
    if ((KEEP)); then echo "bench: kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ((BUILD)); then
    echo "bench: building (cmake --preset ci)" >&2
    (cd "$ROOT" && cmake --preset ci && cmake --build build/ci -j2 --target iotdm-hub \
        iotdm-loadgen) >"$TMP/build.log" 2>&1 || { tail -20 "$TMP/build.log" >&2; die "build failed"; }
fi
[[ -x $HUB_BIN && -x $LG ]] || die "missing $HUB_BIN or $LG (build first)"
command -v haproxy >/dev/null || ((NODES == 1)) || die "haproxy is not installed"
for p in "$LB_MQTT" "$LB_HTTPS" "$MQ_PORT"; do port_free "$p" || die "port $p is in use"; done

echo "bench: starting PostgreSQL" >&2
PG_URL=$("$ROOT/scripts/pg-tmp.sh" start "$TMP/pg")
psql_q() { psql "$PG_URL" -qtAXc "$1"; }

start_nodes() {
    NODE_PIDS=()
    local k
    for ((k = 1; k <= NODES; k++)); do
        # The size cap far above what the runs write (~2 GB): they measure ingestion. Trimming
        # by size deletes rows on PostgreSQL, which costs about what inserting them did
        # (docs/cluster.md "Retention"); the default 256 MB would be reached in the first run.
        "$HUB_BIN" --data-dir "$TMP/node$k" --store "$PG_URL" --listen 127.0.0.1 \
            --hostname 127.0.0.1 --mqtt-port "$(node_mqtt $k)" --https-port "$(node_https $k)" \
            --telemetry-max-mb 16384 --log-level warn >>"$TMP/node$k.log" 2>&1 &
        NODE_PIDS+=($!)
        # Node 1 makes the cluster's identity; the others take it.
        ((k > 1)) || wait_port "$(node_https 1)" "${NODE_PIDS[0]}" "$TMP/node1.log"
    done
    for ((k = 1; k <= NODES; k++)); do
        wait_port "$(node_https $k)" "${NODE_PIDS[k - 1]}" "$TMP/node$k.log"
    done
}

start_balancer() {
    local k servers_m='' servers_h=''
    for ((k = 1; k <= NODES; k++)); do
        servers_m+="    server n$k 127.0.0.1:$(node_mqtt $k) check port $(node_https $k) check-ssl verify none inter 1s"$'\n'
        servers_h+="    server n$k 127.0.0.1:$(node_https $k) check check-ssl verify none inter 1s"$'\n'
    done
    cat >"$TMP/haproxy.cfg" <<EOF
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend mqtt
    bind 127.0.0.1:$LB_MQTT
    default_backend mqtt_nodes
frontend https
    bind 127.0.0.1:$LB_HTTPS
    default_backend https_nodes
backend mqtt_nodes
    balance leastconn
    option httpchk
    http-check send meth GET uri /iotdm/health
$servers_m
backend https_nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /iotdm/health
$servers_h
EOF
    haproxy -db -f "$TMP/haproxy.cfg" >>"$TMP/haproxy.log" 2>&1 &
    LB_PID=$!
    wait_port "$LB_MQTT" "$LB_PID" "$TMP/haproxy.log"
    sleep 1.5 # a round of health checks
}

# CPU seconds (user + system) of a process and its threads.
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# PostgreSQL's CPU seconds: the postmaster and every backend.
pg_cpu_s() {
    local pm total=0 p
    pm=$(head -1 "$(cat "$TMP/pg/home")/data/postmaster.pid")
    for p in $pm $(pgrep -P "$pm"); do total=$(awk -v a="$total" -v b="$(cpu_s "$p")" 'BEGIN {print a + b}'); done
    echo "$total"
}
nodes_cpu_s() {
    local total=0 p
    for p in "${NODE_PIDS[@]}"; do total=$(awk -v a="$total" -v b="$(cpu_s "$p")" 'BEGIN {print a + b}'); done
    echo "$total"
}
commits() { psql_q "SELECT xact_commit FROM pg_stat_database WHERE datname = 'iotdm'"; }

mkdir -p "$TMP/res"
mosquitto_setup
FAILURES=0
START=$SECONDS
start_nodes
if ((NODES > 1)); then
    start_balancer
    ENTRY_MQTT=$LB_MQTT ENTRY_HTTPS=$LB_HTTPS
else
    ENTRY_MQTT=$(node_mqtt 1) ENTRY_HTTPS=$(node_https 1)
fi
AUTH=(--host 127.0.0.1 --ca "$TMP/node1/ca.pem" --connstr-file "$TMP/node1/owner.connstr")
echo "bench: registering devices" >&2
loadgen register "${AUTH[@]}" --port "$ENTRY_MQTT" --https-port "$ENTRY_HTTPS" register \
    --devices "$((IDLE_N > TELEMETRY_DEVICES ? IDLE_N : TELEMETRY_DEVICES))"
((FAILURES == 0)) || die "registration failed"
TEL_ARGS=(--devices "$TELEMETRY_DEVICES" --window "$WINDOW" --payload "$PAYLOAD" --duration "$DUR"
    --warmup "$WARM")
# Methods: the devices on node 1, the calls into node 2 (with one node, node 1 for both).
CALL_NODE=$((NODES > 1 ? 2 : 1))
MET_ARGS=(--devices "$METHOD_DEVICES" --rate "$METHOD_RATE" --duration "$METHOD_DUR" --warmup 2)

for ((run = 1; run <= RUNS; run++)); do
    echo "bench: run $run/$RUNS ($((SECONDS - START)) s so far)" >&2
    # Twins and methods first: the telemetry scenario leaves a few hundred thousand rows behind,
    # whose vacuum and statistics PostgreSQL computes on the same two cores; the previous run's
    # are done before this one starts.
    psql_q "VACUUM (ANALYZE) telemetry" >/dev/null
    # Idle connections held by node 1 (directly): its memory per connection, and Mosquitto's.
    # Only in the first run, while node 1 is a fresh process: later its heap holds what earlier
    # connections left, and the difference before and after says nothing.
    IDLE_ARGS=(--devices "$IDLE_N" --hold 4 --settle 3 --concurrency 100)
    ((run > 1)) || loadgen "idle-hub-$run" "${AUTH[@]}" --port "$(node_mqtt 1)" \
        --https-port "$(node_https 1)" idle "${IDLE_ARGS[@]}" --server-pid "${NODE_PIDS[0]}"
    loadgen "reported-hub-$run" "${AUTH[@]}" --port "$ENTRY_MQTT" --https-port "$ENTRY_HTTPS" \
        reported "${TEL_ARGS[@]}"
    loadgen "methods-hub-$run" "${AUTH[@]}" --port "$(node_mqtt 1)" \
        --https-port "$(node_https $CALL_NODE)" methods "${MET_ARGS[@]}"
    start_mosquitto
    # The costs are sampled inside the generator's measured window: after its connections (TLS
    # handshakes cost more than messages) and its warm-up, until a second before its end.
    loadgen "telemetry-hub-$run" "${AUTH[@]}" --port "$ENTRY_MQTT" --https-port "$ENTRY_HTTPS" \
        telemetry "${TEL_ARGS[@]}" &
    LG_WRAP=$!
    f=$TMP/res/telemetry-hub-$run
    for ((i = 0; i < 600; i++)); do
        grep -q '^connect_seconds=' "$f" 2>/dev/null && break
        sleep 0.1
    done
    sleep "$WARM"
    c0=$(commits) n0=$(nodes_cpu_s) p0=$(pg_cpu_s) t0=$(date +%s.%N)
    sleep $((DUR - 1))
    c1=$(commits) n1=$(nodes_cpu_s) p1=$(pg_cpu_s) t1=$(date +%s.%N)
    wait "$LG_WRAP" || true
    rate=$(awk -F= '$1 == "rate_mean" {print $2}' "$f")
    awk -v c0="$c0" -v c1="$c1" -v n0="$n0" -v n1="$n1" -v p0="$p0" -v p1="$p1" -v t0="$t0" \
        -v t1="$t1" -v r="${rate:-0}" 'BEGIN {
        s = t1 - t0
        m = r * s
        printf "commits_per_s=%.0f\n", (c1 - c0) / s
        printf "nodes_cpu_pct=%.0f\n", 100 * (n1 - n0) / s
        printf "pg_cpu_pct=%.0f\n", 100 * (p1 - p0) / s
        if (m > 0) {
            printf "node_cpu_us_per_msg=%.2f\n", 1e6 * (n1 - n0) / m
            printf "pg_cpu_us_per_msg=%.2f\n", 1e6 * (p1 - p0) / m
            printf "msgs_per_commit=%.1f\n", m / (c1 - c0)
        } }' >"$TMP/res/costs-$run"
    loadgen "telemetry-mq-$run" --broker mosquitto --host 127.0.0.1 --port "$MQ_PORT" \
        --ca "$TMP/mq/ca.pem" telemetry "${TEL_ARGS[@]}"
    loadgen "idle-mq-$run" --broker mosquitto --host 127.0.0.1 --port "$MQ_PORT" \
        --ca "$TMP/mq/ca.pem" idle "${IDLE_ARGS[@]}" --server-pid "$MQ_PID"
    stop_pid "$MQ_PID"
    MQ_PID=
done

H_CONN=$(med idle-hub connected) H_MEM=$(med idle-hub server_bytes_per_conn)
M_MEM=$(med idle-mq server_bytes_per_conn)
H_TEL=$(med telemetry-hub rate_median) M_TEL=$(med telemetry-mq rate_median)
H_REP=$(med reported-hub rate_median)
H_P50=$(med methods-hub lat_p50_ms) H_P99=$(med methods-hub lat_p99_ms)
H_MAX=$(med methods-hub lat_max_ms)
COMMITS=$(med costs commits_per_s) PER_COMMIT=$(med costs msgs_per_commit)
NODE_US=$(med costs node_cpu_us_per_msg) PG_US=$(med costs pg_cpu_us_per_msg)
NODE_PCT=$(med costs nodes_cpu_pct) PG_PCT=$(med costs pg_cpu_pct)
TEL_RATIO=$(ratio "$H_TEL" "$M_TEL")

{
    printf 'iotdm-hub on PostgreSQL %s, %d node(s)%s; %d run(s), medians\n' \
        "$(psql_q 'SHOW server_version' | cut -d' ' -f1)" "$NODES" \
        "$( ((NODES > 1)) && echo ' behind HAProxy' || true)" "$RUNS"
    row "figure" "iotdm-hub" "mosquitto" "ratio" "target" "result"
    row "idle TLS connections held by node 1 (run 1)" "$H_CONN" "-" "-" "-" "-"
    row "  RSS per connection (bytes)" "$H_MEM" "$M_MEM" "$(ratio "$H_MEM" "$M_MEM")" \
        "hub <= 16384" "$(verdict "$H_MEM" "<=" 16384)"
    row "telemetry QoS 1, 256 B, 1000 dev (msg/s)" "$H_TEL" "$M_TEL" "$TEL_RATIO" "ratio >= 0.8" \
        "$(verdict "$TEL_RATIO" ">=" 0.8)"
    row "  hub nodes' CPU (% of one core)" "$NODE_PCT" "-" "-" "-" "-"
    row "  hub CPU per message, all nodes (us)" "$NODE_US" "-" "-" "-" "-"
    row "  PostgreSQL CPU (% of one core)" "$PG_PCT" "-" "-" "-" "-"
    row "  PostgreSQL CPU per message (us)" "$PG_US" "-" "-" "-" "-"
    row "  database commits per second" "$COMMITS" "-" "-" "-" "-"
    row "  messages per commit" "$PER_COMMIT" "-" "-" "-" "-"
    row "durable reported patches (/s)" "$H_REP" "-" "-" ">= 5000" "$(verdict "$H_REP" ">=" 5000)"
    row "method p50 @500/s, call on node $CALL_NODE (ms)" "$H_P50" "-" "-" "-" "-"
    row "  p99 (ms)" "$H_P99" "-" "-" "<= 10" "$(verdict "$H_P99" "<=" 10)"
    row "  max (ms)" "$H_MAX" "-" "-" "-" "-"
    printf 'Runs: telemetry %s | mosquitto %s | reported %s | method p99 %s\n' \
        "$(all telemetry-hub rate_median)" "$(all telemetry-mq rate_median)" \
        "$(all reported-hub rate_median)" "$(all methods-hub lat_p99_ms)"
    printf 'Machine: %s CPUs, load before the run %s; %d generator failures; %d s.\n' \
        "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$FAILURES" "$((SECONDS - START))"
} | tee "$TMP/table"
[[ -z $OUT ]] || cp "$TMP/table" "$OUT"
((FAILURES == 0))
