#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests and benchmarks: its own data directory, listening on a
# Unix socket in that directory and on one loopback port, never touching the host's clusters.
#
#   scripts/pg-tmp.sh start DIR [PORT]   initdb (first time) and start; prints the connection URL
#   scripts/pg-tmp.sh stop DIR           fast shutdown (the directory stays)
#   scripts/pg-tmp.sh restart DIR        immediate stop then start (a crash, for recovery tests)
#   scripts/pg-tmp.sh url DIR            the URL of a running server
#   scripts/pg-tmp.sh destroy DIR        stop it and remove its files
#
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user that Debian's
# package creates, and DIR is handed to it. fsync stays on: tests check durability for real.
set -euo pipefail

usage() {
    sed -n '2,12s/^# \{0,1\}//p' "$0"
}

bindir=""
for d in /usr/lib/postgresql/*/bin; do
    [[ -x "$d/pg_ctl" ]] && bindir=$d
done
if [[ -z $bindir ]]; then
    echo "pg-tmp: PostgreSQL server binaries not found (apt-get install postgresql-15)" >&2
    exit 2
fi

as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

url_of() {
    local dir=$1
    local port
    port=$(cat "$dir/port")
    echo "postgresql://iotdm@127.0.0.1:$port/iotdm"
}

# Where the server's files live: DIR itself, or, when the postgres user cannot reach DIR (a
# checkout under a private home), a folder in /tmp named after DIR. DIR/home says which.
home_of() {
    local dir=$1
    if [[ -f $dir/home ]]; then
        cat "$dir/home"
    elif [[ $(id -u) -ne 0 ]] || runuser -u postgres -- test -x "$dir" 2>/dev/null; then
        echo "$dir"
    else
        echo "/tmp/iotdm-pg-$(printf '%s' "$dir" | md5sum | cut -c1-12)"
    fi
}

free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 30000))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
    done
    echo "pg-tmp: no free port found" >&2
    exit 1
}

start() {
    local dir=$1 port=${2:-}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local home
    home=$(home_of "$dir")
    mkdir -p "$home"
    echo "$home" >"$dir/home"
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$home"
        chmod 700 "$home"
    fi
    if [[ ! -f $home/data/PG_VERSION ]]; then
        as_owner "$bindir/initdb" -D "$home/data" -U iotdm -A trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    if [[ -f $dir/port ]] && as_owner "$bindir/pg_ctl" -D "$home/data" status >/dev/null 2>&1; then
        url_of "$dir" # already running (a run that did not stop it): use it
        return
    fi
    [[ -n $port ]] || port=$(free_port)
    echo "$port" >"$dir/port"
    # Sized for tests and the 2-core benchmarks: enough connections for three nodes and their
    # readers, a WAL that does not checkpoint every few seconds under load.
    as_owner "$bindir/pg_ctl" -D "$home/data" -l "$home/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$home' \
         -c max_connections=200 -c shared_buffers=128MB -c max_wal_size=1GB \
         -c fsync=on -c synchronous_commit=on -c log_min_messages=warning" >/dev/null || {
        tail -20 "$home/server.log" >&2
        exit 1
    }
    if ! as_owner "$bindir/psql" -h "$home" -p "$port" -U iotdm -d postgres -qtAc \
        "SELECT 1 FROM pg_database WHERE datname = 'iotdm'" | grep -q 1; then
        as_owner "$bindir/createdb" -h "$home" -p "$port" -U iotdm iotdm
    fi
    url_of "$dir"
}

stop() {
    local dir=$1 mode=${2:-fast}
    local home
    home=$(home_of "$dir")
    [[ -f $home/data/postmaster.pid ]] || return 0
    as_owner "$bindir/pg_ctl" -D "$home/data" -m "$mode" -w stop >/dev/null
}

case ${1:-} in
start)
    start "${2:?DIR}" "${3:-}"
    ;;
stop)
    stop "${2:?DIR}"
    ;;
restart)
    stop "${2:?DIR}" immediate
    start "${2:?DIR}" "$(cat "$2/port")"
    ;;
url)
    url_of "${2:?DIR}"
    ;;
destroy)
    [[ -d ${2:?DIR} ]] || exit 0
    home=$(home_of "$(cd "$2" && pwd)")
    stop "$2" immediate
    rm -rf "$home" "$2"
    ;;
-h | --help | help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
