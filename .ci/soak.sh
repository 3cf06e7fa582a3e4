#!/usr/bin/env bash
# The soak: the example service as three processes on one PostgreSQL and one Redis, under a
# loopback load of its mixed routes (sales in a transaction, page views counted in Redis and
# flushed by every process), one process killed with SIGKILL halfway and started again, the
# others stopped with SIGTERM at the end; then every invariant is checked from the database
# and Redis against the requests that were answered (examples/src/bin/soak.rs says which).
#
#   bash .ci/soak.sh           # 60 seconds
#   bash .ci/soak.sh 600       # ten minutes
#   CI runs `bash .ci/soak.sh 10`.
#
# Needs COUNTER_PG_URL and COUNTER_REDIS_URL; sources .ci/env.sh (which installs and starts
# what is missing) when either is unset. Prints the figures; the last line is
# `soak exact: true`, or the script exits non-zero.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-60}"

if [ -z "${COUNTER_PG_URL:-}" ] || [ -z "${COUNTER_REDIS_URL:-}" ]; then
    # shellcheck source=.ci/env.sh
    source .ci/env.sh
fi

cargo build -p counter-examples --bin service --bin soak
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
"$target_dir/debug/soak" --seconds "$seconds" --processes 3 --clients 32
