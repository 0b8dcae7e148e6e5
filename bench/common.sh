# Shared by the benchmark scripts (run.sh, cluster.sh): process control, the Mosquitto baseline,
# the generator, and the medians and verdicts of the tables. Expects TMP, RUNS, LG and MQ_PORT set
# by the caller; FAILURES counts generator runs that went wrong.

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

die() {
    echo "bench: $*" >&2
    exit 1
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_port() { # port pid log
    local i
    for ((i = 0; i < 100; i++)); do
        port_free "$1" || return 0
        kill -0 "$2" 2>/dev/null || die "server exited; see $3: $(tail -3 "$3")"
        sleep 0.1
    done
    die "nothing listens on port $1 after 10 s"
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

# mb KIB: KiB as MB with one decimal ("-" stays).
mb() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
# diffmb A B: (A - B) KiB as MB.
diffmb() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.1f", (a - b) / 1024 }'; }

row() { printf '%-44s %12s %12s %8s  %-22s %s\n' "$@"; }
