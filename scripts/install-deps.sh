#!/usr/bin/env bash
# Installs everything iotdm needs on Debian 12: build tools, libraries, test tools, npm packages.
# Idempotent: a second run changes nothing. Run as root (or with sudo available).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo"

apt_packages=(
    build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
    libssl-dev libevent-dev libjansson-dev libsqlite3-dev sqlite3 libcmocka-dev
    libmosquitto-dev libcurl4-openssl-dev libncurses-dev libhttp-parser-dev
    mosquitto mosquitto-clients openssl ca-certificates curl procps tmux chromium
    swtpm swtpm-tools tpm2-tools libtss2-dev
    libpq-dev postgresql-15 haproxy
)

missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi

# npm packages for the end-to-end tests (the official Azure SDKs), pinned by the committed lock file.
if [[ -f "$here/tests/e2e/package-lock.json" ]]; then
    (cd "$here/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error)
fi
if [[ -f "$here/tests/web/package-lock.json" ]]; then
    (cd "$here/tests/web" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: done"
