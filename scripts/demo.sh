#!/usr/bin/env bash
# The demo: iotdm-hub with its dashboard on an embedded SQLite database, three simulated devices
# (iotdm-agent with a sandboxed iotdm-configd each: nothing on this machine is changed), and a
# sensor that sends telemetry. A simulated reboot visibly restarts a device. Ctrl-C stops it all.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${IOTDM_BUILD_DIR:-$here/build/ci}
data=${IOTDM_DEMO_DIR:-$here/var/demo}
addr=${IOTDM_DEMO_ADDR:-127.0.0.1}
https_port=443
if [[ $(id -u) -ne 0 ]]; then
    https_port=8443
    echo "demo: not root, so HTTPS is on port $https_port (the CLI and Azure's service SDKs need 443)"
fi
mkdir -p "$data"
pids=()
stopping=0
cleanup() {
    trap - INT TERM EXIT
    stopping=1
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "demo: stopped"
}
trap cleanup INT TERM EXIT

"$build/src/hub/iotdm-hub" --data-dir "$data/hub" --hostname localhost --listen "$addr" \
    --https-port "$https_port" 2>>"$data/hub.log" &
pids+=($!)
for _ in $(seq 100); do
    grep -q "hub: ready" "$data/hub.log" 2>/dev/null && break
    sleep 0.1
done
owner=$(cat "$data/hub/owner.connstr")
cli() { IOTDM_CONNECTION_STRING=$owner IOTDM_CA=$data/hub/ca.pem "$build/src/cli/iotdm" "$@"; }

dps_cli() { IOTDM_CA=$data/hub/ca.pem "$build/src/cli/iotdm" --login-file "$data/hub/dps.connstr" "$@"; }

# How a device's agent finds the hub: a connection string made in the registry, or (zero-touch)
# an individual enrollment in the hub's DPS whose key is all the device holds.
identity_args() {
    local id=$1 dir=$data/$1 mode=$2
    if [[ $mode != dps ]]; then
        cli device show --device-id "$id" >/dev/null 2>&1 || cli device create --device-id "$id" >/dev/null
        echo "--connection-string"
        cli device connection-string --device-id "$id" | tr -d '\n'
        echo
        return
    fi
    dps_cli dps enrollment show --registration-id "$id" >/dev/null 2>&1 ||
        dps_cli dps enrollment create --registration-id "$id" \
            --initial-tags '{"provisionedBy":"dps"}' >/dev/null
    (umask 077 && dps_cli --json dps enrollment show --registration-id "$id" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>
            process.stdout.write(JSON.parse(s).attestation.symmetricKey.primaryKey))' >"$dir/dps.key")
    printf '%s\n' --dps-id-scope "$(cat "$data/hub/idscope")" --dps-endpoint localhost \
        --dps-registration-id "$id" --dps-key-file "$dir/dps.key"
}

# A device: configd on its own sandbox root, and the agent under a supervisor loop that starts it
# again when it exits (as systemd would after a reboot).
start_device() {
    local id=$1 dir=$data/$1
    mkdir -p "$dir/root/var/lib/app-data"
    echo "demo data of $id" >"$dir/root/var/lib/app-data/settings"
    printf 'socket = %s\nallow_uid = %s\nfactory_reset_path = /var/lib/app-data\n' \
        "$dir/configd.sock" "$(id -u)" >"$dir/configd.conf"
    rm -f "$dir/configd.sock"
    "$build/src/configd/iotdm-configd" --config "$dir/configd.conf" --sandbox "$dir/root" \
        2>>"$dir/device.log" &
    pids+=($!)
    local ident
    mapfile -t ident < <(identity_args "$id" "${2:-registry}")
    (
        trap 'kill $agent 2>/dev/null; exit 0' TERM INT
        while :; do
            "$build/src/agent/iotdm-agent" --config /dev/null "${ident[@]}" \
                --ca-file "$data/hub/ca.pem" --state-dir "$dir/state" \
                --configd-socket "$dir/configd.sock" --reboot-inhibit-file "$dir/reboot-inhibit" \
                2>>"$dir/device.log" &
            agent=$!
            wait $agent || true
            echo "demo: $id rebooted (the agent restarts)"
            sleep 1
        done
    ) &
    pids+=($!)
}

if [[ $https_port == 443 ]]; then
    start_device demo-device-1
    start_device demo-device-2
    start_device demo-device-3 dps # zero-touch: registers through the hub's DPS on first start
    NODE_PATH="$here/tests/e2e/node_modules" NODE_EXTRA_CA_CERTS="$data/hub/ca.pem" \
        IOTDM_HUB_HOST=localhost IOTDM_OWNER_CONNSTR="$owner" \
        node "$here/scripts/demo-devices.js" 2>>"$data/sensor.log" &
    pids+=($!)
fi

cat <<MSG

  iotdm demo is running.
  Dashboard:          https://localhost:$https_port/   (trust $data/hub/ca.pem, or accept the warning)
  Owner connection:   $owner
  Devices:            demo-device-1..3 (iotdm-agent + sandboxed iotdm-configd; demo-device-3
                      provisions itself through DPS), demo-sensor (telemetry)
  DPS connection:     $data/hub/dps.connstr (the dashboard's Provisioning page)
  Logs:               $data/*.log, $data/demo-device-N/device.log

  Try the CLI:
    export IOTDM_CONNECTION_STRING='$owner' IOTDM_CA=$data/hub/ca.pem
    $build/src/cli/iotdm device list
    $build/src/cli/iotdm dm set-time-zone --device-id demo-device-1 --time-zone Europe/Berlin
    $build/src/cli/iotdm dm status --device-id demo-device-1
    $build/src/cli/iotdm dm reboot --device-id demo-device-2
    $build/src/cli/iotdm monitor --device-id demo-sensor

  Ctrl-C stops everything.
MSG
wait "${pids[0]}"
