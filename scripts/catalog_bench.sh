#!/usr/bin/env bash
# scripts/catalog_bench.sh: how fast the catalog queries psql sends are answered with
# CATALOG_TABLES (default 1000) tables, on one kvnode node and on PostgreSQL with the same
# tables, side by side (issue 19 asks for under 10 ms each; docs/benchmarks.md).
#
#   ./scripts/catalog_bench.sh                 (about 3 minutes)
#   CATALOG_TABLES=100 CATALOG_SECONDS=3 ./scripts/catalog_bench.sh
#
# For each psql command (\dt, \d, \di, \d TABLE, \d+ TABLE) it captures the exact queries psql
# sends to each server (psql -E: psql sends kvnode the queries of the PostgreSQL 13 it reports
# being, PostgreSQL 15 its own), writes them into one pgbench script, and runs it with one
# client over the simple protocol, as psql does, for CATALOG_SECONDS (default 10) per command
# and server: the script's latency is what the user waits for the command, and pgbench -r gives
# each query's.
#
# Each table: CREATE TABLE tNNNN (id INT8 PRIMARY KEY, name TEXT NOT NULL, n NUMERIC(10, 2),
# at TIMESTAMPTZ DEFAULT now()) and an index on name.
#
# It needs Debian's postgresql (server) and postgresql-client (psql, pgbench), builds kvnode
# from this tree, listens on free loopback ports only, runs PostgreSQL as user nobody when run as
# root, and stops what it starts (by process ID) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

TABLES=${CATALOG_TABLES:-1000}
SECS=${CATALOG_SECONDS:-10}
[[ $TABLES =~ ^[1-9][0-9]*$ ]] || { echo "CATALOG_TABLES must be a positive integer" >&2; exit 1; }
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "CATALOG_SECONDS must be a positive integer" >&2; exit 1; }
PGBIN=
for d in /usr/lib/postgresql/*/bin; do [[ -x $d/postgres && -x $d/initdb ]] && PGBIN=$d; done
[[ -n $PGBIN ]] || { echo "catalog_bench: no PostgreSQL server under /usr/lib/postgresql/*/bin (apt-get install postgresql)" >&2; exit 1; }
command -v psql >/dev/null && command -v pgbench >/dev/null ||
  { echo "catalog_bench: psql and pgbench are needed (apt-get install postgresql-client)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvnode-catbench.XXXXXX")
chmod 755 "$WORK"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '==== %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10

# PostgreSQL: as nobody when root (postgres refuses root); a role root and a database
# defaultdb, so that psql's commands are the same on both.
PG_RUN=()
if [[ $(id -u) == 0 ]]; then
  PG_RUN=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --)
  chown nobody "$WORK"
fi
log "PostgreSQL: initdb ($("$PGBIN/postgres" --version))"
timeout 120 "${PG_RUN[@]}" "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$WORK/initdb.log" 2>&1 ||
  { tail -5 "$WORK/initdb.log" >&2; exit 1; }
PGPORT_=$(free_port)
"${PG_RUN[@]}" "$PGBIN/postgres" -D "$WORK/pg" -p "$PGPORT_" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$WORK" -c fsync=off >"$WORK/pg.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do psql -X -qAt -h 127.0.0.1 -p "$PGPORT_" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql -X -q -h 127.0.0.1 -p "$PGPORT_" -U postgres -d postgres -v ON_ERROR_STOP=1 \
  -c "CREATE ROLE root SUPERUSER LOGIN" -c "CREATE DATABASE defaultdb OWNER root" >/dev/null

# kvnode: one node.
log "kvnode: go build ./cmd/kvnode"
go build -o "$WORK/kvnode" ./cmd/kvnode
KVPORT=$(free_port)
"$WORK/kvnode" start-single-node --insecure --store="$WORK/kv" --listen-addr="127.0.0.1:$(free_port)" \
  --gossip-addr="127.0.0.1:$(free_port)" --sql-addr="127.0.0.1:$KVPORT" --http-addr="127.0.0.1:$(free_port)" \
  --log-level=warn >"$WORK/kv.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 450); do psql -X -qAt -h 127.0.0.1 -p "$KVPORT" -U root -d defaultdb -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done

declare -A PORT=([postgres]=$PGPORT_ [kvnode]=$KVPORT)
psql_to() { # psql_to TARGET ARGS...
  local t=$1
  shift
  timeout 600 psql -X -h 127.0.0.1 -p "${PORT[$t]}" -U root -d defaultdb "$@"
}

awk -v n="$TABLES" 'BEGIN {
  for (i = 1; i <= n; i++) {
    printf "CREATE TABLE t%04d (id INT8 PRIMARY KEY, name TEXT NOT NULL, n NUMERIC(10, 2), at TIMESTAMPTZ DEFAULT now());\n", i
    printf "CREATE INDEX t%04d_name ON t%04d (name);\n", i, i
  }
}' >"$WORK/schema.sql"
mid=$(printf 't%04d' $(((TABLES + 1) / 2)))
for t in postgres kvnode; do
  log "$t: creating $TABLES tables, each with a secondary index"
  t0=$SECONDS
  psql_to "$t" -q -v ON_ERROR_STOP=1 -f "$WORK/schema.sql" >"$WORK/$t-schema.log" 2>&1 || { tail -5 "$WORK/$t-schema.log" >&2; exit 1; }
  log "$t: created in $((SECONDS - t0)) s"
done

commands=('\dt' '\d' '\di' "\\d $mid" "\\d+ $mid")
printf '| psql command | queries sent (PostgreSQL / kvnode) | PostgreSQL 15: command (ms) | kvnode: command (ms) | kvnode: slowest query (ms) | kvnode / PostgreSQL |\n' >"$WORK/table.md"
printf '|---|---:|---:|---:|---:|---:|\n' >>"$WORK/table.md"
for i in "${!commands[@]}"; do
  cmd=${commands[$i]}
  declare -A lat=() slow=() nq=()
  for t in postgres kvnode; do
    # The queries psql sends for the command, between psql -E's markers, each ended by ';'.
    psql_to "$t" -E -c "$cmd" >"$WORK/$t-$i.echo" 2>&1 || { cat "$WORK/$t-$i.echo" >&2; exit 1; }
    awk '/^\*\*\*\*\*\*\*\*\* QUERY \*\*\*\*\*\*\*\*\*\*$/ { q = 1; next }
         /^\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*\*$/ { if (q) print ";"; q = 0; next }
         q { print }' "$WORK/$t-$i.echo" >"$WORK/$t-$i.sql"
    nq[$t]=$(grep -c '^;$' "$WORK/$t-$i.sql")
    ((nq[$t] > 0)) || { echo "catalog_bench: psql -E $cmd showed no query for $t" >&2; exit 1; }
    log "$t: pgbench of psql's $cmd (${nq[$t]} queries), ${SECS}s, 1 client"
    timeout $((SECS + 60)) pgbench -n -M simple -r -c 1 -j 1 -T "$SECS" -h 127.0.0.1 -p "${PORT[$t]}" -U root \
      -f "$WORK/$t-$i.sql" defaultdb >"$WORK/$t-$i.out" 2>&1 || { cat "$WORK/$t-$i.out" >&2; exit 1; }
    grep -q 'number of failed transactions: 0 ' "$WORK/$t-$i.out" ||
      { echo "catalog_bench: $t: $cmd failed under pgbench" >&2; cat "$WORK/$t-$i.out" >&2; exit 1; }
    lat[$t]=$(grep -oP 'latency average = \K[0-9.]+' "$WORK/$t-$i.out")
    # pgbench -r: after "statement latencies", each query's average latency leads its line.
    slow[$t]=$(awk '/statement latencies/ { s = 1; next } s && $1 ~ /^[0-9.]+$/ && $1 > m { m = $1 } END { printf "%.2f", m }' "$WORK/$t-$i.out")
  done
  ratio=$(awk -v a="${lat[kvnode]}" -v b="${lat[postgres]}" 'BEGIN { printf "%.2f×", a / b }')
  printf '| `%s` | %s / %s | %.2f | %.2f | %s | %s |\n' "$cmd" "${nq[postgres]}" "${nq[kvnode]}" "${lat[postgres]}" "${lat[kvnode]}" \
    "${slow[kvnode]}" "$ratio" >>"$WORK/table.md"
done
printf '\n%s tables, each with a secondary index; kvnode commit %s; %s; load average %s\n' "$TABLES" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$("$PGBIN/postgres" --version)" "$(cut -d' ' -f1-3 /proc/loadavg)"
cat "$WORK/table.md"
