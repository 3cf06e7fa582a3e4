# Environment for the test suite: `source .ci/env.sh && cargo test --workspace --all-features`
#
# Meant to be sourced (bash), any number of times: it installs what is missing, starts the
# local PostgreSQL, MariaDB and Redis when they do not answer (and installs memcached, whose
# tests start their own servers), and exports
#   COUNTER_PG_URL    (default postgres://postgres@127.0.0.1/test)
#   COUNTER_MYSQL_URL (default mysql://root@127.0.0.1/test)
#   COUNTER_REDIS_URL (default redis://127.0.0.1:6379/)
# unless they are already set. Works under the caller's `set -euo pipefail` and never exits
# the caller's shell on success. Debian/Ubuntu only (apt-get, pg_ctlcluster); run as root or
# with sudo available.

__counter_ci_env() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    local apt_updated=""

    __counter_log() { printf '[env.sh] %s\n' "$*" >&2; }

    # Installs the given Debian packages; `apt-get update` at most once per sourcing.
    __counter_apt_install() {
        if [ -z "$apt_updated" ]; then
            __counter_log "apt-get update"
            $sudo apt-get update -qq || return 1
            apt_updated=1
        fi
        __counter_log "apt-get install $*"
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" || return 1
    }

    # Runs a command as the postgres system user.
    __counter_as_postgres() {
        if [ -z "$sudo" ]; then
            runuser -u postgres -- "$@"
        else
            sudo -u postgres "$@"
        fi
    }

    # --- Packages: client libraries for the diesel backends, pkg-config, pgbench ---------------
    local missing=() pkg
    for pkg in libpq-dev libmariadb-dev-compat libmariadb-dev pkg-config; do
        if ! dpkg -s "$pkg" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    # pgbench comes with postgresql-client (any version: postgresql-client-15 is enough).
    if [ ! -x /usr/bin/pgbench ] && ! dpkg -s postgresql-client >/dev/null 2>&1; then
        missing+=(postgresql-client)
    fi
    # The servers themselves, on a machine that has none.
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        missing+=(postgresql)
    fi
    if [ ! -x /usr/sbin/mariadbd ] && [ ! -x /usr/sbin/mysqld ]; then
        missing+=(mariadb-server mariadb-client)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then
        __counter_apt_install "${missing[@]}" || {
            __counter_log "installing ${missing[*]} failed"
            return 1
        }
    fi

    # --- PostgreSQL ---------------------------------------------------------------------------
    if ! pg_isready -q -h 127.0.0.1; then
        local version
        version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        __counter_log "starting PostgreSQL $version"
        $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || {
            __counter_log "pg_ctlcluster $version main start failed"
            return 1
        }
        local i
        for i in $(seq 1 60); do
            pg_isready -q -h 127.0.0.1 && break
            sleep 1
        done
        pg_isready -q -h 127.0.0.1 || {
            __counter_log "PostgreSQL does not answer on 127.0.0.1 after 60 s"
            return 1
        }
    fi
    if [ -z "${COUNTER_PG_URL:-}" ]; then
        # The default URL needs user postgres without a password (trust) and database test.
        if ! psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; then
            local hba
            hba="$(__counter_as_postgres psql -X -At -c 'SHOW hba_file')" || return 1
            __counter_log "allowing trust authentication from 127.0.0.1 in $hba"
            $sudo sed -i '1i host all all 127.0.0.1/32 trust' "$hba" || return 1
            __counter_as_postgres psql -X -q -c 'SELECT pg_reload_conf()' >/dev/null || return 1
        fi
        if [ "$(psql -X -At -h 127.0.0.1 -U postgres -d postgres \
            -c "SELECT count(*) FROM pg_database WHERE datname = 'test'")" != "1" ]; then
            __counter_log "creating PostgreSQL database test"
            psql -X -q -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' || return 1
        fi
        export COUNTER_PG_URL="postgres://postgres@127.0.0.1/test"
    fi

    # --- MariaDB ------------------------------------------------------------------------------
    if ! mariadb-admin -uroot -h127.0.0.1 ping >/dev/null 2>&1; then
        __counter_log "starting MariaDB"
        $sudo mkdir -p /run/mysqld
        $sudo chown mysql:mysql /run/mysqld 2>/dev/null || true
        $sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || {
            __counter_log "start-stop-daemon /usr/sbin/mariadbd failed"
            return 1
        }
        local i
        for i in $(seq 1 60); do
            mariadb-admin -uroot -h127.0.0.1 ping >/dev/null 2>&1 && break
            sleep 1
        done
        mariadb-admin -uroot -h127.0.0.1 ping >/dev/null 2>&1 || {
            __counter_log "MariaDB does not answer on 127.0.0.1 after 60 s"
            return 1
        }
    fi
    if [ -z "${COUNTER_MYSQL_URL:-}" ]; then
        mariadb -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS test' || {
            __counter_log "cannot log in to MariaDB as root@127.0.0.1 without a password"
            return 1
        }
        export COUNTER_MYSQL_URL="mysql://root@127.0.0.1/test"
    fi

    # --- Redis ---------------------------------------------------------------------------------
    # redis-server also for tests/redis.rs, which starts (and shuts down) servers of its own;
    # redis-benchmark (redis-tools) for the bench's `redis` workload.
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
        __counter_apt_install redis-server redis-tools || {
            __counter_log "installing redis-server redis-tools failed"
            return 1
        }
    fi
    if [ -z "${COUNTER_REDIS_URL:-}" ]; then
        if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
            __counter_log "starting Redis on 127.0.0.1:6379"
            $sudo mkdir -p /var/lib/redis /var/log/redis
            $sudo redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" \
                --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || {
                __counter_log "redis-server failed to start"
                return 1
            }
            local i
            for i in $(seq 1 30); do
                redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
                sleep 1
            done
            redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || {
                __counter_log "Redis does not answer on 127.0.0.1:6379 after 30 s"
                return 1
            }
        fi
        export COUNTER_REDIS_URL="redis://127.0.0.1:6379/"
    fi

    # --- Memcached -----------------------------------------------------------------------------
    # Only the binary: tests/memcached.rs starts (and kills) servers of its own, on free ports.
    if [ ! -x /usr/bin/memcached ] && ! command -v memcached >/dev/null 2>&1; then
        __counter_apt_install memcached || {
            __counter_log "installing memcached failed"
            return 1
        }
    fi

    __counter_log "COUNTER_PG_URL=$COUNTER_PG_URL"
    __counter_log "COUNTER_MYSQL_URL=$COUNTER_MYSQL_URL"
    __counter_log "COUNTER_REDIS_URL=$COUNTER_REDIS_URL"
    unset -f __counter_log __counter_apt_install __counter_as_postgres
}

if __counter_ci_env; then
    unset -f __counter_ci_env
else
    unset -f __counter_ci_env
    printf '[env.sh] the test environment is NOT ready (see above)\n' >&2
    # `return` when sourced, `exit` when run as a script: both only fail this script.
    return 1 2>/dev/null || exit 1
fi
