#!/usr/bin/env bash
# scripts/bigtxn.sh: how long one large transaction stalls a three-node cluster (txn/DESIGN.md,
# "Limits on a transaction's writes"). Starts three `kvnode start` nodes, creates pgbench's
# tables (pgbench -i -I dt), then, while a side client upserts one row at a time through the
# same node (pgbench -n -c 1 -f side.sql --log), runs through psql
#   BEGIN; TRUNCATE pgbench_accounts; \copy pgbench_accounts from ROWS; COMMIT
# and prints the commit's time, the side client's largest latency and the load average.
#
#   ./scripts/bigtxn.sh                       200,000 rows, the binary built from this tree
#   BIGTXN_ROWS=100000 BIGTXN_RUNS=3 ./scripts/bigtxn.sh
#
# Environment:
#   BIGTXN_ROWS     rows in the transaction (default 200000; pgbench -i -s 2 writes 200,000)
#   BIGTXN_RUNS     transactions, one after the other on the same cluster (default 1)
#   BIGTXN_TRUNCATE 1 (default) = TRUNCATE in the transaction first, as pgbench -i does; 0 = not
#   BIGTXN_SIDE_SECONDS  how long the side client runs (default 60; the transaction starts 3 s
#                   after it): it must end by itself, as pgbench loses its buffered log when killed
#   BIGTXN_BIN      a kvnode binary to use instead of building one
#   BIGTXN_PROFILE  seconds of CPU profile to take during the first transaction (0: none)
#   BIGTXN_PROFILE_NODE  leader (default: the gateway) or follower: the node profiled
#   KEEP=1          keep the work directory
# Every node listens on 127.0.0.1 on free ports; everything started is stopped on exit, by pid.
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${BIGTXN_ROWS:-200000}
RUNS=${BIGTXN_RUNS:-1}
TRUNC=${BIGTXN_TRUNCATE:-1}
PROFILE=${BIGTXN_PROFILE:-0}
PROFILE_NODE=${BIGTXN_PROFILE_NODE:-leader}
SIDE=${BIGTXN_SIDE_SECONDS:-60}
WORK=$(mktemp -d /tmp/bigtxn.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ ${KEEP:-0} == 1 ]]; then echo "work directory: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
die() { echo "bigtxn: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

BIN=${BIGTXN_BIN:-}
if [[ -z $BIN ]]; then
  BIN=$WORK/kvnode
  timeout 600 go build -o "$BIN" ./cmd/kvnode || die "go build failed"
fi

# shellcheck source=scripts/ports.sh
source scripts/ports.sh # the working directory is the repository root (above)
declare -A SQLP HTTPP
free_port l1; free_port l2; free_port l3
join="127.0.0.1:$l1,127.0.0.1:$l2,127.0.0.1:$l3"
for n in 1 2 3; do
  l=l$n
  free_port g; free_port s; free_port h
  SQLP[$n]=$s HTTPP[$n]=$h
  "$BIN" start --insecure --store="$WORK/n$n" --listen-addr="127.0.0.1:${!l}" --gossip-addr="127.0.0.1:$g" \
    --sql-addr="127.0.0.1:$s" --http-addr="127.0.0.1:$h" --log-level=warn --join="$join" >"$WORK/n$n.log" 2>&1 &
  PIDS+=($!)
done
for ((i = 0; ; i++)); do
  timeout 60 "$BIN" init --insecure --host="127.0.0.1:$l1" >"$WORK/init.log" 2>&1 && break
  ((i < 20)) || die "kvnode init failed: $(cat "$WORK/init.log")"
  sleep 1
done
# The gateway: the data group's leader, so that the commit is not forwarded one more hop.
gw=1
for ((i = 0; i < 100; i++)); do
  for n in 1 2 3; do
    st=$(curl -sf --max-time 3 "http://127.0.0.1:${HTTPP[$n]}/_status/node" || true)
    if [[ $st =~ \"node_id\":([0-9]+), ]] && [[ $st == *"\"leader\":${BASH_REMATCH[1]},"* ]]; then gw=$n; break 2; fi
  done
  sleep 0.3
done
URL="postgresql://root@127.0.0.1:${SQLP[$gw]}/defaultdb?sslmode=disable"
for ((i = 0; i < 100; i++)); do psql "$URL" -Xqtc "SELECT 1" >/dev/null 2>&1 && break; sleep 0.3; done
log "three nodes up; gateway n$gw (the leader)"

pgbench -i -I dt -s 1 "$URL" >"$WORK/init-pgbench.log" 2>&1 || die "pgbench -i -I dt: $(tail -3 "$WORK/init-pgbench.log")"
psql "$URL" -Xqc "CREATE TABLE side (k INT PRIMARY KEY, v INT)" || die "create side"
awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\t%d\t0\t\n", i, int((i - 1) / 100000) + 1 }' >"$WORK/rows.tsv"
printf '\\set k random(1, 1000)\nUPSERT INTO side (k, v) VALUES (:k, 1);\n' >"$WORK/side.sql"

printf '#!/bin/sh\nfor p in %s; do cut -d" " -f14,15 /proc/$p/stat; done\n' "${PIDS[*]}" >"$WORK/cputicks"
chmod +x "$WORK/cputicks"
HZ=$(getconf CLK_TCK)

for ((run = 1; run <= RUNS; run++)); do
  (cd "$WORK" && exec pgbench -n -M prepared -c 1 -T "$SIDE" -f side.sql --log --log-prefix="side$run" "$URL" >"side$run.out" 2>&1) &
  side=$!
  PIDS+=("$side")
  sleep 3
  script=$'\\timing on\nBEGIN;'
  ((TRUNC)) && script+=$'\nTRUNCATE pgbench_accounts;'
  # The CPU time every node spends on the COMMIT: from the nodes' /proc stat, just before and
  # just after it (psql's \! runs the command between the statements).
  script+=$'\n'"\\copy pgbench_accounts from '$WORK/rows.tsv'"
  script+=$'\n'"\\! $WORK/cputicks >$WORK/cpu-before"$'\n'"COMMIT;"$'\n'"\\! $WORK/cputicks >$WORK/cpu-after"
  if ((PROFILE > 0 && run == 1)); then
    pn=$gw
    [[ $PROFILE_NODE == follower ]] && pn=$((gw % 3 + 1))
    curl -sf --max-time $((PROFILE + 30)) -o "$WORK/cpu.pprof" "http://127.0.0.1:${HTTPP[$pn]}/debug/pprof/profile?seconds=$PROFILE" &
    prof=$!
  fi
  t0=$(date +%s.%N)
  rc=0
  psql "$URL" -X -v ON_ERROR_STOP=1 -f - <<<"$script" >"$WORK/txn$run.out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  wait "$side" 2>/dev/null || true
  [[ -n ${prof:-} ]] && { wait "$prof" || true; prof=; }
  commit=$(grep -A1 '^COMMIT' "$WORK/txn$run.out" | grep -o 'Time: [0-9.]* ms' | head -1 || true)
  # pgbench's log: client, transaction, latency (µs), script, epoch s, epoch µs; failures have
  # "failed" in the latency column.
  # The largest latency, and the longest time between two statements' ends (a statement
  # whose log line a kill lost still shows as a gap).
  worst=$(cat "$WORK"/side"$run".[0-9]* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ { if ($3 > m) m = $3; n++ } END { printf "%.2f s over %d statements", m / 1e6, n }')
  gap=$(cat "$WORK"/side"$run".[0-9]* 2>/dev/null | awk '{ t = $5 + $6 / 1e6; if (p && t - p > g) g = t - p; p = t } END { printf "%.2f s", g }')
  failed=$(cat "$WORK"/side"$run".[0-9]* 2>/dev/null | awk '$3 !~ /^[0-9]+$/' | wc -l)
  cpu=$(paste "$WORK/cpu-before" "$WORK/cpu-after" 2>/dev/null | awk -v hz="$HZ" '{ printf "n%d %.2f s ", NR, ($3 + $4 - $1 - $2) / hz }')
  echo "run $run: $ROWS rows, truncate=$TRUNC: psql rc=$rc, whole transaction $(echo "$t1 - $t0" | bc) s, COMMIT ${commit:-?} (CPU: ${cpu:-?});" \
    "side client's longest latency $worst (longest gap $gap), $failed failed; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  ((rc == 0)) || tail -3 "$WORK/txn$run.out"
  grep -h -m3 -iE 'error|abort' "$WORK/side$run.out" || true
done
[[ -f $WORK/cpu.pprof ]] && cp "$WORK/cpu.pprof" "/tmp/bigtxn-cpu-$$.pprof" && echo "profile: /tmp/bigtxn-cpu-$$.pprof (go tool pprof -top $BIN /tmp/bigtxn-cpu-$$.pprof)"
exit 0
