#!/usr/bin/env bash
# Compares counter-core's generated `increment` with pgbench running the same statement on the
# same hot row, at the same client counts, alternating the two several times so drift of the
# machine hits both alike. Prints every run and, per client count, the mean TPS of each and the
# ratio ours / pgbench.
#
# Both sides use prepared statements: pgbench with `-M prepared`; counter-core prepares its
# statement once per connection (Diesel's statement cache) and then only binds and executes.
# pgbench's script has the constants inline, counter-core binds them as parameters.
#
# Environment (all optional):
#   COUNTER_PG_URL   connection URL   [postgres://postgres@127.0.0.1/test]
#   CLIENTS          client counts    ["1 16"]
#   RUN_SECONDS      seconds per run  [10]
#   ALTERNATIONS     pairs of runs per client count [3]
#   PGBENCH          pgbench binary   [/usr/bin/pgbench, else pgbench on PATH]
#
# Usage: counter-bench/pgbench.sh    (from anywhere inside the workspace)
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi

URL="${COUNTER_PG_URL:-postgres://postgres@127.0.0.1/test}"
CLIENTS="${CLIENTS:-1 16}"
RUN_SECONDS="${RUN_SECONDS:-10}"
ALTERNATIONS="${ALTERNATIONS:-3}"
if [[ -z "${PGBENCH:-}" ]]; then
    if [[ -x /usr/bin/pgbench ]]; then PGBENCH=/usr/bin/pgbench; else PGBENCH=pgbench; fi
fi

cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/increment.sql" <<'SQL'
UPDATE counters SET value = value + 1 WHERE id = 1 AND value <= 9223372036854775806 RETURNING value;
SQL

echo "building counter-bench (release)..." >&2
cargo build --release -q -p counter-bench

# counter-bench recreates the table on every run; make sure it exists for a pgbench run first.
psql -q -X -v ON_ERROR_STOP=1 "$URL" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS counters (id BIGINT PRIMARY KEY, value BIGINT NOT NULL, stock BIGINT NOT NULL);
INSERT INTO counters VALUES (1, 0, 1000000000000) ON CONFLICT (id) DO NOTHING;
SQL

run_ours() { # clients, json path -> ops/s
    cargo run --release -q -p counter-bench -- --backend postgres --workload increment \
        --clients "$1" --seconds "$RUN_SECONDS" --rounds 1 --json "$2" >/dev/null 2>"$2.log" ||
        { cat "$2.log" >&2; return 1; }
    sed -n 's/.*"ops_per_sec": *\([0-9.]*\).*/\1/p' "$2" | head -n 1
}

run_pgbench() { # clients -> tps
    "$PGBENCH" -n -M prepared -f "$work/increment.sql" -c "$1" -j "$1" -T "$RUN_SECONDS" "$URL" \
        >"$work/pgbench.out" 2>&1 || { cat "$work/pgbench.out" >&2; return 1; }
    sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.out" | tail -n 1
}

echo "same statement, row id = 1, ${RUN_SECONDS} s per run, ${ALTERNATIONS} alternations, pgbench -M prepared"
printf '%-8s %-4s %14s %14s\n' clients run ours_ops_s pgbench_tps
declare -A sum_ours sum_pg
for ((i = 1; i <= ALTERNATIONS; i++)); do
    for c in $CLIENTS; do
        # Alternate which side goes first.
        if ((i % 2 == 1)); then
            ours=$(run_ours "$c" "$work/ours-$c-$i.json")
            pg=$(run_pgbench "$c")
        else
            pg=$(run_pgbench "$c")
            ours=$(run_ours "$c" "$work/ours-$c-$i.json")
        fi
        printf '%-8s %-4s %14.1f %14.1f\n' "$c" "$i" "$ours" "$pg"
        sum_ours[$c]=$(awk -v a="${sum_ours[$c]:-0}" -v b="$ours" 'BEGIN { print a + b }')
        sum_pg[$c]=$(awk -v a="${sum_pg[$c]:-0}" -v b="$pg" 'BEGIN { print a + b }')
    done
done

echo
echo "| clients | counter-core increment ops/s | pgbench TPS | ours / pgbench |"
echo "|---:|---:|---:|---:|"
for c in $CLIENTS; do
    awk -v c="$c" -v o="${sum_ours[$c]}" -v p="${sum_pg[$c]}" -v n="$ALTERNATIONS" \
        'BEGIN { printf "| %s | %.0f | %.0f | %.3f |\n", c, o / n, p / n, o / p }'
done
