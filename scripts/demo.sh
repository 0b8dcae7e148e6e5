#!/usr/bin/env bash
# The demo: iotdm-hub with its dashboard on an embedded SQLite database, plus simulated devices.
# Ctrl-C stops everything.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${IOTDM_BUILD_DIR:-$here/build/ci}
data=${IOTDM_DEMO_DIR:-$here/var/demo}
addr=${IOTDM_DEMO_ADDR:-127.0.0.1}
https_port=443
if [[ $(id -u) -ne 0 ]]; then
    https_port=8443
    echo "demo: not root, so HTTPS is on port $https_port (Azure's service SDKs need 443)"
fi
mkdir -p "$data"

"$build/src/hub/iotdm-hub" --data-dir "$data/hub" --hostname localhost --listen "$addr" \
    --https-port "$https_port" &
hub_pid=$!
sim_pid=
cleanup() {
    trap - INT TERM EXIT
    [[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null || true
    kill "$hub_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "demo: stopped"
}
trap cleanup INT TERM EXIT

for _ in $(seq 50); do
    [[ -s $data/hub/owner.connstr ]] && break
    sleep 0.2
done
connstr=$(cat "$data/hub/owner.connstr")
NODE_PATH="$here/tests/e2e/node_modules" NODE_EXTRA_CA_CERTS="$data/hub/ca.pem" \
    IOTDM_HUB_HOST=localhost IOTDM_OWNER_CONNSTR="$connstr" IOTDM_HTTPS_PORT="$https_port" \
    node "$here/scripts/demo-devices.js" &
sim_pid=$!

cat <<MSG

  iotdm demo is running.
  Dashboard:          https://localhost:$https_port/   (CA: $data/hub/ca.pem)
  Owner connection:   $connstr
  Simulated devices:  demo-device-1, demo-device-2, demo-device-3

  Try the service API with any Azure IoT SDK, for example (Node):
    NODE_EXTRA_CA_CERTS=$data/hub/ca.pem node -e "
      require('azure-iothub').Registry.fromConnectionString(process.env.CS)
        .list().then(r => console.log(r.responseBody.map(d => d.deviceId)))"

  Ctrl-C stops everything.
MSG
wait "$hub_pid"
