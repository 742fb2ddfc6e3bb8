#!/usr/bin/env bash
# scripts/gcstall.sh: how long the collection of the transaction records stalls a writer (issue 22,
# item 4; txn/DESIGN.md, "The GC horizon"). One node (start-single-node) with the default
# collection timing (every minute, of the records more than five minutes old: the first
# collection comes due about six minutes after the node starts); kv (k INT PRIMARY KEY, v TEXT)
# is loaded with GCSTALL_ROWS rows by COPY outside a transaction, then one pgbench client upserts
# one random row at a time (prepared) until the node is GCSTALL_UNTIL seconds old. Prints the
# load time, the client's largest latencies with the node's age when each ended, its largest
# latency outside the minutes around collections, and the node's log lines about collections.
#
#   ./scripts/gcstall.sh                              3,000,000 rows, the tree's binary
#   GCSTALL_BIN=/tmp/old/kvnode ./scripts/gcstall.sh  another build (for a before/after)
#
# Environment:
#   GCSTALL_ROWS   rows loaded (default 3000000)
#   GCSTALL_UNTIL  the node's age in seconds when the writer stops (default 540: the first collections)
#   GCSTALL_BIN    the kvnode binary (default: built from this tree)
#   KEEP=1         keep the work directory (store, log, pgbench's latency log)
# Everything listens on 127.0.0.1; the node is stopped on exit, by process ID.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${GCSTALL_ROWS:-3000000}
UNTIL=${GCSTALL_UNTIL:-540}
die() {
  printf 'gcstall: %s\n' "$*" >&2
  exit 1
}
log() { printf '==== %s\n' "$*" >&2; }
[[ $ROWS =~ ^[1-9][0-9]*$ ]] || die "GCSTALL_ROWS must be a positive row count"
[[ $UNTIL =~ ^[1-9][0-9]*$ ]] || die "GCSTALL_UNTIL must be a positive number of seconds"
command -v pgbench >/dev/null && command -v psql >/dev/null || die "needs pgbench and psql (Debian's postgresql-client)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gcstall.XXXXXX")
PIDNODE=""
cleanup() {
  if [[ -n $PIDNODE ]]; then
    kill -TERM "$PIDNODE" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$PIDNODE" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PIDNODE" 2>/dev/null || true
  fi
  if [[ ${KEEP:-} == 1 ]]; then echo "gcstall: work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/ports.sh
source scripts/ports.sh # the working directory is the repository root (above)

BIN=${GCSTALL_BIN:-}
if [[ -z $BIN ]]; then
  BIN=$WORK/kvnode
  log "building kvnode"
  go build -o "$BIN" ./cmd/kvnode
fi
"$BIN" version | head -n 1 >&2

free_port L; free_port G; free_port S; free_port H
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
t0=$(date +%s.%N)
"$BIN" start-single-node --insecure --store="$WORK/store" --listen-addr="127.0.0.1:$L" --gossip-addr="127.0.0.1:$G" \
  --sql-addr="127.0.0.1:$S" --http-addr="127.0.0.1:$H" --log-level=info >"$WORK/node.log" 2>&1 &
PIDNODE=$!
for ((i = 0; i < 600; i++)); do
  kill -0 "$PIDNODE" 2>/dev/null || die "the node exited:$'\n'$(tail -20 "$WORK/node.log")"
  curl -sf --max-time 3 "http://127.0.0.1:$H/health?ready=1" >/dev/null 2>&1 && break
  sleep 0.2
done
export PGCONNECT_TIMEOUT=10 PGSSLMODE=disable
psql -h 127.0.0.1 -p "$S" -U root -d defaultdb -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)" >/dev/null
log "loading $ROWS rows"
l0=$(date +%s.%N)
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tv%d\n", i, i }' |
  timeout 1800 psql -h 127.0.0.1 -p "$S" -U root -d defaultdb -X -q -v ON_ERROR_STOP=1 -c '\copy kv from stdin' >"$WORK/load.log" 2>&1 ||
  die "load failed:$'\n'$(tail -5 "$WORK/load.log")"
now=$(date +%s.%N)
printf 'loaded %d rows in %.1f s (node age %.0f s)\n' "$ROWS" "$(echo "$now - $l0" | bc)" "$(echo "$now - $t0" | bc)"
secs=$(echo "$UNTIL - ($now - $t0)" | bc | cut -d. -f1)
((secs > 10)) || die "the load ended after GCSTALL_UNTIL; raise it"
cat >"$WORK/upsert.sql" <<EOF
\set k random(1, $ROWS)
INSERT INTO kv (k, v) VALUES (:k, 'x') ON CONFLICT (k) DO UPDATE SET v = 'y';
EOF
log "one client upserting for $secs s"
rc=0
(cd "$WORK" && timeout $((secs + 120)) pgbench -n -M prepared -c 1 -T "$secs" -f upsert.sql --log --log-prefix="$WORK/lat" \
  -h 127.0.0.1 -p "$S" -U root defaultdb >"$WORK/pgbench.out" 2>&1) || rc=$?
((rc == 0)) || echo "pgbench failed (exit $rc): $(grep -m 3 -iE 'error|abort' "$WORK/pgbench.out" | tr '\n' ' ')"
grep -E '^(number of transactions actually processed|tps = )' "$WORK/pgbench.out" || true
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# pgbench's log: client, transaction, latency (us), script, epoch s, us (when it ended).
echo "largest latencies (ms) and the node's age (s) when each ended:"
cat "$WORK"/lat* | awk -v t0="$t0" '{printf "%10.1f %7.1f\n", $3 / 1000, $5 + $6 / 1e6 - t0}' | sort -rn | awk 'NR <= 8'
echo "largest latency (ms) away from collections (outside 350-370 s, 410-430 s, 470-490 s of age...):"
cat "$WORK"/lat* | awk -v t0="$t0" '{a = $5 + $6 / 1e6 - t0; m = (a - 350) % 60; if (a < 340 || m > 25) print $3 / 1000}' | sort -rn | awk 'NR == 1'
echo "the node's log about collections:"
grep -iE 'collect|signal' "$WORK/node.log" | cut -c1-300 || echo "(none)"
