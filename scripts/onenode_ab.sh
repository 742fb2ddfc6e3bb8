#!/usr/bin/env bash
# onenode_ab.sh: judges a change to one node's read, write or query path (issues 19 and 22) by
# the toggled method of docs/benchmarks.md. Two kvnode binaries, A (before) and B (after), each
# run one node (`start-single-node`, a fresh store, bench.sh's 100,000 rows of `kv (k INT PRIMARY
# KEY, v TEXT)` and its 1,000 rows of `kj`); both stay up for the whole run, and pgbench (8
# clients, 2 threads, prepared statements, bench.sh's read, write, join and groupby scripts) runs
# against one node at a time in the order A B
# B A A B ..., so that every pair of neighbouring runs shares the machine's minute. For each run it
# prints TPS and the node's CPU time per transaction (utime + stime of its process from
# /proc/PID/stat over the run, divided by pgbench's transactions), which moves less than TPS on a
# machine shared with other work, and the node's Raft log fsyncs per transaction and the share of
# the run its Raft loop spent waiting for them (from kvnode_raft_log_sync_seconds on /metrics);
# and, per script, the medians of B over A in each pair of neighbouring runs. With AB_PARALLEL=1
# the two runs of a pair go at the same time instead,
# pgbench against A and against B at once (AB_CLIENTS each): both see exactly the same
# machine, which on a machine loaded by other work gives much steadier CPU-per-transaction
# ratios than runs one after the other (docs/benchmarks.md, "GROUP BY (session 16)").
#
#   AB_REV_A=main ./scripts/onenode_ab.sh            # A built from a git revision, B from the tree
#   AB_A=/tmp/kvnode-old AB_B=/tmp/kvnode-new ./scripts/onenode_ab.sh
#   AB_A=/tmp/kvnode AB_B=/tmp/kvnode AB_ENV_B=GOGC=200 AB_SCRIPTS=groupby ./scripts/onenode_ab.sh
#
# Knobs: AB_SECONDS (pgbench -T per run, 10), AB_PAIRS (pairs of runs per script, 4), AB_PARALLEL
# (1: the two runs of a pair at the same time),
# AB_SCRIPTS ("read write"; also "join" and "groupby", bench.sh's issue 19 scripts), AB_ROWS
# (100000), AB_CLIENTS (8), AB_ENV_A and AB_ENV_B (space-separated NAME=VALUE settings for the
# environment of node A or B: the same binary with a runtime setting toggled), KEEP=1 keeps the
# work directory.
# It needs psql and pgbench (Debian's postgresql-client), uses free loopback ports and a
# directory under $TMPDIR (/tmp), and stops what it starts.
set -euo pipefail
SECS=${AB_SECONDS:-10}
PAIRS=${AB_PAIRS:-4}
SCRIPTS=${AB_SCRIPTS:-read write}
ROWS=${AB_ROWS:-100000}
CLIENTS=${AB_CLIENTS:-8}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/onenode-ab.XXXXXX")
declare -A PID SQLPORT HTTPPORT
die() { echo "onenode_ab: $*" >&2; exit 1; }
cleanup() {
  local p
  for p in "${PID[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ ${KEEP:-} == 1 ]]; then echo "onenode_ab: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
command -v pgbench >/dev/null || die "pgbench is missing (apt-get install postgresql-client)"

# The binaries: given, or built (A from AB_REV_A with git archive, B from the working tree).
build_rev() { # build_rev REV OUT
  mkdir "$WORK/src-$2"
  git -C "$ROOT" archive "$1" | tar -xf - -C "$WORK/src-$2"
  (cd "$WORK/src-$2" && go build -o "$WORK/kvnode-$2" ./cmd/kvnode)
}
if [[ -n ${AB_A:-} ]]; then cp "$AB_A" "$WORK/kvnode-A"; elif [[ -n ${AB_REV_A:-} ]]; then build_rev "$AB_REV_A" A; else die "set AB_A (a binary) or AB_REV_A (a git revision)"; fi
if [[ -n ${AB_B:-} ]]; then cp "$AB_B" "$WORK/kvnode-B"; elif [[ -n ${AB_REV_B:-} ]]; then build_rev "$AB_REV_B" B; else (cd "$ROOT" && go build -o "$WORK/kvnode-B" ./cmd/kvnode); fi

# shellcheck source=scripts/ports.sh
source "$ROOT/scripts/ports.sh"

cat >"$WORK/read.sql" <<EOF
\\set k random(1, $ROWS)
SELECT v FROM kv WHERE k = :k;
EOF
cat >"$WORK/write.sql" <<EOF
\\set k random(1, $ROWS)
INSERT INTO kv (k, v) VALUES (:k, 'x') ON CONFLICT (k) DO UPDATE SET v = 'y';
EOF
cat >"$WORK/join.sql" <<'EOF'
SELECT count(*), sum(length(kv.v)) FROM kj JOIN kv ON kv.k = kj.k;
EOF
cat >"$WORK/groupby.sql" <<'EOF'
SELECT k % 16, count(*), min(v) FROM kv GROUP BY k % 16;
EOF
for s in $SCRIPTS; do [[ -f $WORK/$s.sql ]] || die "AB_SCRIPTS: no script $s (there are: read write join groupby)"; done
{
  echo "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT);"
  awk -v n="$ROWS" 'BEGIN {
    for (i = 1; i <= n; i++) {
      if ((i - 1) % 1000 == 0) printf "INSERT INTO kv (k, v) VALUES ";
      printf "(%d, '\''value %d'\'')", i, i;
      if (i % 1000 == 0 || i == n) print ";"; else printf ", ";
    }
  }'
  # kj: bench.sh's 1,000 keys spread evenly over kv's (the join script's small side).
  echo "CREATE TABLE kj (id INT PRIMARY KEY, k INT NOT NULL);"
  awk -v n="$ROWS" 'BEGIN {
    printf "INSERT INTO kj (id, k) VALUES ";
    for (i = 1; i <= 1000; i++) { printf "(%d, %d)", i, int((i - 1) * n / 1000) + 1; if (i < 1000) printf ", "; }
    print ";";
  }'
} >"$WORK/load.sql"

declare -A ENVS=([A]=${AB_ENV_A:-} [B]=${AB_ENV_B:-})
for v in A B; do
  free_port l; free_port g; free_port s; free_port h
  read -r -a envs <<<"${ENVS[$v]}"
  env ${envs[@]+"${envs[@]}"} "$WORK/kvnode-$v" start-single-node --insecure --store="$WORK/store-$v" --listen-addr="127.0.0.1:$l" \
    --gossip-addr="127.0.0.1:$g" --sql-addr="127.0.0.1:$s" --http-addr="127.0.0.1:$h" --log-level=warn \
    >"$WORK/node-$v.log" 2>&1 &
  PID[$v]=$! SQLPORT[$v]=$s HTTPPORT[$v]=$h
  ok=0
  for _ in $(seq 1 120); do
    kill -0 "${PID[$v]}" 2>/dev/null || die "node $v died:$'\n'$(tail -5 "$WORK/node-$v.log")"
    if [[ $(psql -qAt -h 127.0.0.1 -p "$s" -U root defaultdb -c "SELECT 1" 2>/dev/null) == 1 ]]; then ok=1; break; fi
    sleep 0.5
  done
  ((ok)) || die "node $v did not answer SQL in 60 s"
  psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$s" -U root defaultdb -f "$WORK/load.sql" >"$WORK/load-$v.log" 2>&1 ||
    die "load into node $v failed:$'\n'$(tail -5 "$WORK/load-$v.log")"
  echo "node $v: pid ${PID[$v]}, SQL port $s, HTTP port $h, $("$WORK/kvnode-$v" version | head -n 1)${ENVS[$v]:+, environment ${ENVS[$v]}}"
done

cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A TPS CPU
# syncs VARIANT: the node's count and total seconds of Raft log fsyncs (kvnode_raft_log_sync_seconds).
syncs() {
  curl -s "http://127.0.0.1:${HTTPPORT[$1]}/metrics" 2>/dev/null |
    awk '/^kvnode_raft_log_sync_seconds_count/ {c = $2} /^kvnode_raft_log_sync_seconds_sum/ {s = $2} END {print c + 0, s + 0}'
}
run() { # run VARIANT SCRIPT N
  local v=$1 script=$2 n=$3 c0 c1 out tps txns cpu s0 s1 fs
  read -r -a s0 <<<"$(syncs "$v")"
  c0=$(cputicks "${PID[$v]}")
  out=$(pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$SECS" -f "$WORK/$script.sql" -h 127.0.0.1 -p "${SQLPORT[$v]}" -U root defaultdb 2>&1) ||
    die "pgbench against node $v failed:$'\n'$(tail -5 <<<"$out")"
  c1=$(cputicks "${PID[$v]}")
  read -r -a s1 <<<"$(syncs "$v")"
  tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1)
  txns=$(grep -oP 'number of transactions actually processed: \K[0-9]+' <<<"$out")
  cpu=$(awk -v d=$((c1 - c0)) -v t="$txns" -v hz="$TCK" 'BEGIN { printf "%.1f", d / hz * 1e6 / t }')
  # Fsyncs per transaction (below 1: group commit), and the share of the run the Raft loop spent
  # waiting for them (near 100%: the disk's latency sets the write TPS).
  fs=$(awk -v n0="${s0[0]}" -v n1="${s1[0]}" -v s0="${s0[1]}" -v s1="${s1[1]}" -v t="$txns" -v secs="$SECS" \
    'BEGIN { printf "%.2f fsyncs/txn, %.0f%% in fsync", (n1 - n0) / t, (s1 - s0) / secs * 100 }')
  TPS[$script-$v-$n]=$tps CPU[$script-$v-$n]=$cpu
  echo "$script-$v-$n $tps $cpu" >>"$WORK/runs" # for the summary, when run in the background
  printf '%-6s %s pair %d: %9.0f TPS  %7s us CPU/txn  %s  load %s\n' "$script" "$v" "$n" "$tps" "$cpu" "$fs" "$(cut -d' ' -f1 /proc/loadavg)"
}
for script in $SCRIPTS; do
  for n in $(seq 1 "$PAIRS"); do
    if [[ ${AB_PARALLEL:-0} == 1 ]]; then
      run A "$script" "$n" & pa=$!
      run B "$script" "$n" & pb=$!
      wait "$pa" || die "run A failed"
      wait "$pb" || die "run B failed"
    elif ((n % 2)); then run A "$script" "$n"; run B "$script" "$n"; else run B "$script" "$n"; run A "$script" "$n"; fi
  done
done
while read -r key tps cpu; do TPS[$key]=$tps CPU[$key]=$cpu; done <"$WORK/runs"

median() { sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
for script in $SCRIPTS; do
  tr=() cr=() ta=() tb=() ca=() cb=()
  for n in $(seq 1 "$PAIRS"); do
    tr+=("$(awk -v a="${TPS[$script-A-$n]}" -v b="${TPS[$script-B-$n]}" 'BEGIN {printf "%.3f", b / a}')")
    cr+=("$(awk -v a="${CPU[$script-A-$n]}" -v b="${CPU[$script-B-$n]}" 'BEGIN {printf "%.3f", b / a}')")
    ta+=("${TPS[$script-A-$n]}") tb+=("${TPS[$script-B-$n]}") ca+=("${CPU[$script-A-$n]}") cb+=("${CPU[$script-B-$n]}")
  done
  printf '%s: TPS A %s, B %s (medians); B/A per pair %s: median %s\n' "$script" \
    "$(printf '%s\n' "${ta[@]}" | median)" "$(printf '%s\n' "${tb[@]}" | median)" "${tr[*]}" "$(printf '%s\n' "${tr[@]}" | median)"
  printf '%s: CPU us/txn A %s, B %s (medians); B/A per pair %s: median %s\n' "$script" \
    "$(printf '%s\n' "${ca[@]}" | median)" "$(printf '%s\n' "${cb[@]}" | median)" "${cr[*]}" "$(printf '%s\n' "${cr[@]}" | median)"
done
