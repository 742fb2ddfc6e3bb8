#!/usr/bin/env bash
# scripts/bench.sh: pgbench against PostgreSQL, PostgreSQL with two synchronous standbys, one
# kvnode node and a three-node kvnode cluster, side by side on this machine, with the same
# scripts and the same data. See docs/benchmarks.md.
#
#   ./scripts/bench.sh                                   three rounds of all four targets, 30 s per run
#   BENCH_TARGETS=postgres BENCH_SECONDS=5 BENCH_ROUNDS=1 ./scripts/bench.sh     one quick PostgreSQL run
#
# Environment:
#   BENCH_TARGETS   space-separated subset of: postgres pgha single cluster nolease (default: the
#                   first four)
#                   postgres  PostgreSQL, one server
#                   pgha      PostgreSQL with two streaming standbys in quorum synchronous
#                             replication (synchronous_standby_names = 'ANY 1 (s1, s2)');
#                             pgbench runs against the primary
#                   single    kvnode, one node
#                   cluster   kvnode, three nodes
#                   nolease   kvnode, three nodes with --leased-reads=false: every read takes a
#                             ReadIndex round (the leader lease toggled off, in the same run)
#   BENCH_SECONDS   pgbench -T per run (default 30)
#   BENCH_ROUNDS    how many times every target runs (default 3). The rounds interleave the
#                   targets, each round in a rotated order, and the report gives the median of
#                   each round's ratio to the target's reference in that round (PostgreSQL for
#                   one kvnode node and for pgha, pgha for three kvnode nodes, or PostgreSQL if
#                   pgha did not run): this machine's disk and CPU speed drift by tens of percent
#                   within minutes, and a ratio of two runs minutes apart measures that drift as
#                   much as the servers.
#   BENCH_ROWS      rows loaded into kv (default 100000)
#   BENCH_SCRIPTS   space-separated subset of the pgbench scripts to run: read write lookup
#                   transfer tpcb-like join groupby (default: all seven)
#   BENCH_DOC       the file whose results section is replaced (default docs/benchmarks.md)
#   BENCH_UPDATE_DOC  1 = write the results into BENCH_DOC, 0 = only print them
#                   (default: 1 when all four targets ran every script, else 0)
#   KVNODE_FLAGS    extra flags for every kvnode node, e.g. KVNODE_FLAGS=--leased-reads=false (the
#                   three-node reads without the leader lease, for a toggled comparison)
#   KEEP=1          keep the work directory (stores, logs, pgbench output)
#   BENCH_FLOOR=1   also the latency of one client against the physical floor (issue 22: "an
#                   upsert's latency within 3x of one fdatasync plus one loopback round trip"):
#                   adds the script write1 (the write script with one client, -c 1 -j 1) to
#                   every target, and in every round, before its targets, measures the floor:
#                   fdatasync of one 8 kB write (PostgreSQL's pg_test_fsync, 2 s, on the file
#                   system of the stores) and the median round trip of a 64-byte message over
#                   loopback TCP (go run scripts/rtt.go). The report gives, per round, the floor
#                   and each kvnode target's one-client latency as a multiple of it.
#   BENCH_COPY_ROWS=N  also time a COPY of N rows (psql's \copy of a file, one statement, outside
#                   a transaction) into an empty table kvc (k INT PRIMARY KEY, v TEXT) on every
#                   target, after its pgbench scripts; reported as the script "copy" in rows per
#                   second, with each kvnode node's peak RSS (VmHWM over the whole run) in the
#                   latency column's note. Issue 20 asks for BENCH_COPY_ROWS=1000000 at >= 0.3x
#                   PostgreSQL. Default 0 (not run).
#   BENCH_TLS=1     every target over TLS: kvnode nodes secure (--certs-dir; pgbench and psql
#                   authenticate as root with its client certificate, sslmode=verify-full), and
#                   PostgreSQL with ssl=on and a certificate of the same test CA (sslmode=require,
#                   trust authentication as before), so the ratios compare TLS with TLS. The
#                   results are printed; they go into BENCH_DOC's TLS section only with
#                   BENCH_UPDATE_DOC=1.
#   BENCH_TLS=both  every target twice in each round, in plaintext and over TLS (as BENCH_TLS=1;
#                   the TLS twin of TARGET is reported as TARGET-tls), so that the cost of TLS is
#                   measured in the same run: a "TLS cost" table gives, per script, each target's
#                   TLS TPS over its plaintext TPS, and for kvnode the change of its ratio to
#                   PostgreSQL (TLS against TLS, over plaintext against plaintext), which issue 21
#                   wants within 10%. With BENCH_UPDATE_DOC=1 the results go into BENCH_DOC's TLS
#                   section.
#
# Every server it starts listens on 127.0.0.1 only, on free ports; every step has a time limit;
# everything it started is stopped on exit (trap), by process ID.
# As root it installs what is missing from Debian (postgresql, postgresql-client) and runs
# PostgreSQL (every server of pgha too) as the system user `kvbench`, which it creates if needed
# (postgres refuses root).
set -euo pipefail

cd "$(dirname "$0")/.."

BENCH_TARGETS=${BENCH_TARGETS:-postgres pgha single cluster}
BENCH_SECONDS=${BENCH_SECONDS:-30}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_ROWS=${BENCH_ROWS:-100000}
BENCH_COPY_ROWS=${BENCH_COPY_ROWS:-0}
BENCH_FLOOR=${BENCH_FLOOR:-0}
[[ $BENCH_FLOOR == 0 || $BENCH_FLOOR == 1 ]] || { printf 'bench: BENCH_FLOOR must be 0 or 1, got %s\n' "$BENCH_FLOOR" >&2; exit 1; }
[[ $BENCH_COPY_ROWS =~ ^[0-9]+$ ]] || { printf 'bench: BENCH_COPY_ROWS must be a number of rows, got %s\n' "$BENCH_COPY_ROWS" >&2; exit 1; }
BENCH_DOC=${BENCH_DOC:-docs/benchmarks.md}
KVNODE_FLAGS=${KVNODE_FLAGS:-}
BENCH_TLS=${BENCH_TLS:-0}
[[ $BENCH_TLS == 0 || $BENCH_TLS == 1 || $BENCH_TLS == both ]] || { printf 'bench: BENCH_TLS must be 0, 1 or both, got %s\n' "$BENCH_TLS" >&2; exit 1; }
# TLS_ON: whether the target running now is over TLS (BENCH_TLS=1: all; both: the -tls twins).
TLS_ON=0
[[ $BENCH_TLS == 1 ]] && TLS_ON=1
TLS_ANY=0
[[ $BENCH_TLS != 0 ]] && TLS_ANY=1
read -r -a kvnode_flags <<<"$KVNODE_FLAGS"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
CLIENTS=8
JOBS=2
BATCH=1000
BENCH_USER=kvbench

log() { printf '==== %s\n' "$*" >&2; }
die() {
  printf 'bench: %s\n' "$*" >&2
  exit 1
}

[[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_SECONDS must be a positive integer, got '$BENCH_SECONDS'"
[[ $BENCH_ROWS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS must be a positive integer, got '$BENCH_ROWS'"
[[ $BENCH_ROUNDS =~ ^[1-9][0-9]?$ ]] || die "BENCH_ROUNDS must be an integer from 1 to 99, got '$BENCH_ROUNDS'"
read -r -a targets <<<"$BENCH_TARGETS"
((${#targets[@]})) || die "BENCH_TARGETS is empty"
for t in "${targets[@]}"; do
  case $t in postgres | pgha | single | cluster | nolease) ;; *) die "unknown target '$t' in BENCH_TARGETS (use postgres, pgha, single, cluster, nolease)" ;; esac
done
has_target() { [[ " ${targets[*]} " == *" $1 "* ]]; }
if [[ -z ${BENCH_UPDATE_DOC:-} ]]; then
  BENCH_UPDATE_DOC=0
  if ((!TLS_ANY)) && [[ -z ${BENCH_SCRIPTS:-} ]] && has_target postgres && has_target pgha && has_target single && has_target cluster; then BENCH_UPDATE_DOC=1; fi
fi

# ---------------------------------------------------------------------------------------------
# Processes: every PID this script starts is appended to $WORK/pids and stopped by PID on exit.

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvnode-bench.XXXXXX")
chmod 755 "$WORK" # the kvbench user must reach its PostgreSQL data directory inside
: >"$WORK/pids"
started() { echo "$1" >>"$WORK/pids"; }

# stop_pids SIGNAL PID...: signal each live PID, wait up to 20 s for all, then SIGKILL the rest.
stop_pids() {
  local sig=$1 pid i
  shift
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then kill "-$sig" "$pid" 2>/dev/null || true; fi
  done
  for ((i = 0; i < 200; i++)); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
}

# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
  local pids=()
  if [[ -s $WORK/pids ]]; then mapfile -t pids <"$WORK/pids"; fi
  # SIGINT is PostgreSQL's fast shutdown; kvnode drains on SIGINT/SIGTERM.
  if ((${#pids[@]})); then stop_pids INT "${pids[@]}"; fi
  if [[ ${KEEP:-} == 1 ]]; then
    echo "bench: work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Tools.

as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    die "need root to run: $*"
  fi
}
apt_updated=0
apt_install() {
  log "installing Debian packages: $*"
  if ((!apt_updated)); then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# pg_bindir prints the newest /usr/lib/postgresql/<ver>/bin that has the server binaries.
pg_bindir() {
  local d best=
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/postgres && -x $d/initdb ]] && best=$d
  done
  [[ -n $best ]] || return 1
  echo "$best"
}

needs_pg_server=0
if has_target postgres || has_target pgha; then needs_pg_server=1; fi
if ((needs_pg_server)) && ! pg_bindir >/dev/null; then apt_install postgresql; fi
if ! command -v psql >/dev/null || ! command -v pgbench >/dev/null; then apt_install postgresql-client; fi
PSQL=$(command -v psql)
PGBENCH=$(command -v pgbench) || die "pgbench not found after installing postgresql-client"
PGBIN=
if ((needs_pg_server)); then PGBIN=$(pg_bindir) || die "no PostgreSQL server under /usr/lib/postgresql/*/bin"; fi
PG_TEST_FSYNC=
if ((BENCH_FLOOR)); then
  # pg_test_fsync ships with the server package.
  pg_bindir >/dev/null || apt_install postgresql
  PG_TEST_FSYNC=$(pg_bindir)/pg_test_fsync
  [[ -x $PG_TEST_FSYNC ]] || die "BENCH_FLOOR=1 needs pg_test_fsync (Debian's postgresql package), not found at $PG_TEST_FSYNC"
  command -v go >/dev/null || die "BENCH_FLOOR=1 needs the Go toolchain (go run scripts/rtt.go)"
fi
export PGSSLMODE=disable PGCONNECT_TIMEOUT=10
((TLS_ON)) && export PGSSLMODE=require

# ---------------------------------------------------------------------------------------------
# Ports: random loopback ports that nothing listens on or uses, never handed out twice.

# shellcheck source=scripts/ports.sh
source scripts/ports.sh # the working directory is the repository root (above)

# ---------------------------------------------------------------------------------------------
# Workload files.

cat >"$WORK/read.sql" <<'EOF'
\set k random(1, 100000)
SELECT v FROM kv WHERE k = :k;
EOF
cat >"$WORK/write.sql" <<'EOF'
\set k random(1, 100000)
INSERT INTO kv (k, v) VALUES (:k, 'x') ON CONFLICT (k) DO UPDATE SET v = 'y';
EOF
# Transactions (release 2.1), on pgbench's TPC-B tables as `pgbench -i` makes them (see
# load_data), at the scale that holds BENCH_ROWS accounts (100,000 per scale unit, at least 1).
# transfer: two random accounts per transaction, rarely the same rows: what transactions cost.
cat >"$WORK/transfer.sql" <<'EOF'
\set a random(1, 100000)
\set b random(1, 100000)
\set delta random(1, 100)
BEGIN;
SELECT abalance FROM pgbench_accounts WHERE aid = :a;
UPDATE pgbench_accounts SET abalance = abalance - :delta WHERE aid = :a;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :b;
END;
EOF
# tpcb-like: pgbench's built-in TPC-B-like script (pgbench -b tpcb-like): three UPDATEs, a
# SELECT and an INSERT into pgbench_history in one transaction; every transaction updates the
# one branch row, the hot row of TPC-B. pgbench retries serialization failures (--max-tries).
# lookup: a SELECT by a secondary key through its index (release 2.1; issue 20): kvi has the
# rows of kv with s, a permutation of the keys, indexed.
cat >"$WORK/lookup.sql" <<'EOF'
\set s random(1, 100000)
SELECT k, v FROM kvi WHERE s = :s;
EOF
# join: a join of two tables on a key (issue 19): kj's 1,000 rows name keys spread over kv's
# rows; every transaction joins all of them. groupby: a GROUP BY over all of kv's rows (issue 19).
cat >"$WORK/join.sql" <<'EOF'
SELECT count(*), sum(length(kv.v)) FROM kj JOIN kv ON kv.k = kj.k;
EOF
cat >"$WORK/groupby.sql" <<'EOF'
SELECT k % 16, count(*), min(v) FROM kv GROUP BY k % 16;
EOF
SCRIPTS=(read write lookup transfer tpcb-like join groupby)
if [[ -n ${BENCH_SCRIPTS:-} ]]; then
  read -r -a asked <<<"$BENCH_SCRIPTS"
  for s in "${asked[@]}"; do
    [[ " ${SCRIPTS[*]} write1 " == *" $s "* ]] || { printf 'bench: BENCH_SCRIPTS: no script %s (there are: %s write1)\n' "$s" "${SCRIPTS[*]}" >&2; exit 1; }
  done
  SCRIPTS=("${asked[@]}")
fi
# write1: the write script with one client (BENCH_FLOOR=1 adds it).
if ((BENCH_FLOOR)) && [[ " ${SCRIPTS[*]} " != *" write1 "* ]]; then SCRIPTS+=(write1); fi
# REPORTED: the scripts of the report, the pgbench ones and the COPY (BENCH_COPY_ROWS).
REPORTED=("${SCRIPTS[@]}")
if ((BENCH_COPY_ROWS > 0)); then
  REPORTED+=(copy)
  awk -v n="$BENCH_COPY_ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tvalue %d of the copy benchmark\n", i, i }' >"$WORK/copy.tsv"
fi
if ((BENCH_ROWS != 100000)); then
  sed -i "s/random(1, 100000)/random(1, $BENCH_ROWS)/" "$WORK/read.sql" "$WORK/write.sql" "$WORK/transfer.sql" "$WORK/lookup.sql"
fi
# The load: CREATE TABLE, then multi-row INSERTs of $BATCH rows each.
{
  echo "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT);"
  awk -v n="$BENCH_ROWS" -v b="$BATCH" 'BEGIN {
    for (i = 1; i <= n; i++) {
      if ((i - 1) % b == 0) printf "INSERT INTO kv (k, v) VALUES ";
      printf "(%d, '\''v%d'\'')", i, i;
      if (i % b == 0 || i == n) print ";"; else printf ", ";
    }
  }'
  # kvi: s = (7919 k mod n) + 1 is a permutation of 1..n (7919 is a prime that divides no n
  # this script is run with, so s is unique), with a unique index built after the load (a
  # lookup by a unique secondary key, as by an email address).
  echo "CREATE TABLE kvi (k INT PRIMARY KEY, s INT NOT NULL, v TEXT);"
  awk -v n="$BENCH_ROWS" -v b="$BATCH" 'BEGIN {
    for (i = 1; i <= n; i++) {
      if ((i - 1) % b == 0) printf "INSERT INTO kvi (k, s, v) VALUES ";
      printf "(%d, %d, '\''v%d'\'')", i, (7919 * i) % n + 1, i;
      if (i % b == 0 || i == n) print ";"; else printf ", ";
    }
  }'
  echo "CREATE UNIQUE INDEX kvi_s ON kvi (s);"
  # kj: 1,000 rows whose k are spread evenly over kv's keys (the join script's small side).
  echo "CREATE TABLE kj (id INT PRIMARY KEY, k INT NOT NULL);"
  awk -v n="$BENCH_ROWS" 'BEGIN {
    printf "INSERT INTO kj (id, k) VALUES ";
    for (i = 1; i <= 1000; i++) { printf "(%d, %d)", i, int((i - 1) * n / 1000) + 1; if (i < 1000) printf ", "; }
    print ";";
  }'
} >"$WORK/load.sql"
SCALE=$(((BENCH_ROWS + 99999) / 100000))

# ---------------------------------------------------------------------------------------------
# Helpers on a SQL endpoint: HOST is always 127.0.0.1; each target sets PORT, DBUSER, DBNAME.

sql() { timeout 60 "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d "$DBNAME" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

wait_sql() { # wait_sql PID LOGFILE: until SELECT 1 answers (60 s), or the process dies
  local pid=$1 logf=$2 i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || die "the server (pid $pid) exited; log tail:$'\n'$(tail -20 "$logf")"
    [[ $(sql "SELECT 1" 2>/dev/null) == 1 ]] && return 0
    sleep 0.2
  done
  die "no SQL answer on 127.0.0.1:$PORT after 60 s; log tail:$'\n'$(tail -20 "$logf")"
}

http_ready() { # http_ready PORT: GET /health?ready=1 answers 200
  if ((TLS_ON)); then
    curl -sf --max-time 3 --cacert "$CERTS/ca.crt" "https://127.0.0.1:$1/health?ready=1" >/dev/null 2>&1
    return
  fi
  local status
  # shellcheck disable=SC2016 # $1 is the inner shell's argument
  status=$(timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /health?ready=1 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    head -n 1 <&3' _ "$1" 2>/dev/null) || return 1
  [[ $status == *" 200"* ]]
}

wait_ready() { # wait_ready PID HTTPPORT LOGFILE: until /health?ready=1 (90 s), or the process dies
  local pid=$1 port=$2 logf=$3 i
  for ((i = 0; i < 450; i++)); do
    kill -0 "$pid" 2>/dev/null || die "kvnode (pid $pid) exited; log tail:$'\n'$(tail -20 "$logf")"
    http_ready "$port" && return 0
    sleep 0.2
  done
  die "kvnode (pid $pid) not ready after 90 s; log tail:$'\n'$(tail -20 "$logf")"
}

load_data() { # load_data TARGET
  log "$1: loading $BENCH_ROWS rows in INSERTs of $BATCH"
  local t0=$SECONDS
  timeout 900 "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d "$DBNAME" -X -q -v ON_ERROR_STOP=1 \
    -f "$WORK/load.sql" >"$RW/$1-load.log" 2>&1 || die "$1: load failed:$'\n'$(tail -5 "$RW/$1-load.log")"
  # pgbench's own tables as pgbench -i makes them, on every target alike: its steps d (drop)
  # and t (create), then the rows it generates, sent with COPY outside a transaction (pgbench
  # -i's g step sends them in one transaction, which kvnode commits as one Raft command: at
  # 100,000 rows that outlasts its write timeout on three nodes), then v (vacuum) and p
  # (ALTER TABLE ... ADD PRIMARY KEY).
  local init="$RW/$1-pgbench-init.log" tbl
  timeout 300 "$PGBENCH" -i -q -I dt -s "$SCALE" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" "$DBNAME" >"$init" 2>&1 ||
    die "$1: pgbench -i -I dt failed:$'\n'$(tail -5 "$init")"
  for tbl in branches tellers accounts; do
    awk -v t="$tbl" -v s="$SCALE" 'BEGIN {
      if (t == "branches") for (i = 1; i <= s; i++) printf "%d\t0\t\n", i;
      if (t == "tellers") for (i = 1; i <= 10 * s; i++) printf "%d\t%d\t0\t\n", i, int((i - 1) / 10) + 1;
      if (t == "accounts") for (i = 1; i <= 100000 * s; i++) printf "%d\t%d\t0\t\n", i, int((i - 1) / 100000) + 1;
    }' | timeout 600 "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d "$DBNAME" -X -q -v ON_ERROR_STOP=1 \
      -c "\\copy pgbench_$tbl from stdin" >>"$init" 2>&1 || die "$1: COPY pgbench_$tbl failed:$'\n'$(tail -5 "$init")"
  done
  timeout 600 "$PGBENCH" -i -q -I vp -h 127.0.0.1 -p "$PORT" -U "$DBUSER" "$DBNAME" >>"$init" 2>&1 ||
    die "$1: pgbench -i -I vp failed:$'\n'$(tail -5 "$init")"
  local n
  n=$(sql "SELECT count(*) FROM kv") || die "$1: count(*) failed"
  [[ $n == "$BENCH_ROWS" ]] || die "$1: loaded $n rows, want $BENCH_ROWS"
  log "$1: loaded $n rows in $((SECONDS - t0)) s"
}

# run_copy TARGET [PID...]: when BENCH_COPY_ROWS > 0, times one \copy of $WORK/copy.tsv into a new
# table kvc and appends a line to $WORK/results.tsv as run_pgbench does: script "copy", rows per
# second as its TPS, the whole COPY's milliseconds as its latency, the rows as its transactions, and
# the peak RSS (VmHWM) of each PID given (kvnode's nodes) as its note.
run_copy() {
  ((BENCH_COPY_ROWS > 0)) || return 0
  local target=${BENCH_NAME:-$1} out="$WORK/${BENCH_NAME:-$1}-copy.r$ROUND.out" rc=0 t0 t1 n note="" pid
  shift
  log "round $ROUND, $target: COPY of $BENCH_COPY_ROWS rows"
  sql "CREATE TABLE kvc (k INT PRIMARY KEY, v TEXT)" >/dev/null || die "$target: CREATE TABLE kvc failed"
  t0=$(date +%s.%N)
  timeout 1800 "$PSQL" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" -d "$DBNAME" -X -q -v ON_ERROR_STOP=1 \
    -c "\\copy kvc from '$WORK/copy.tsv'" >"$out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  n=$(sql "SELECT count(*) FROM kvc") || n=-
  ((rc == 0)) || note="COPY failed (exit $rc): $(head -c 120 "$out")"
  [[ $n == "$BENCH_COPY_ROWS" ]] || note+=" loaded $n rows, want $BENCH_COPY_ROWS"
  for pid in "$@"; do
    note+="${note:+; }peak RSS $(awk '/^VmHWM/ {printf "%d MiB", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo '?')"
  done
  local secs rate ms
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  rate=$(awk -v n="$BENCH_COPY_ROWS" -v s="$secs" 'BEGIN { printf "%.1f", n / s }')
  ms=$(awk -v s="$secs" 'BEGIN { printf "%.0f", s * 1000 }')
  ((rc == 0)) || rate=-
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$target" copy "$rate" "$ms" "$BENCH_COPY_ROWS" 0 "$note" >>"$WORK/results.tsv"
  log "$target: COPY of $BENCH_COPY_ROWS rows in $secs s ($rate rows/s)${note:+; $note}"
}

# run_pgbench TARGET SCRIPT: one pgbench run; appends a line to $WORK/results.tsv:
# round, target, script, tps, latency ms, transactions, failed transactions, note.
# server_ticks: the CPU time, in clock ticks, of the servers running now (the PIDs passed to
# started that are still a postgres or kvnode process), all of it: a kvnode process with its
# Raft loop and Pebble's flushes and compactions; a PostgreSQL server with its background
# processes and backends (its postmaster's children) and those that exited (reaped, their time
# is the postmaster's).
server_ticks() {
  local pid comm sum=0 t p
  [[ -f $WORK/pids ]] || { echo 0; return; }
  while read -r pid; do
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
    [[ $comm == postgres || $comm == kvnode ]] || continue
    local procs=("$pid")
    if [[ $comm == postgres ]]; then mapfile -t -O 1 procs < <(pgrep -P "$pid"); fi
    for p in "${procs[@]}"; do
      t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}') || true
      sum=$((sum + ${t:-0}))
    done
  done <"$WORK/pids"
  echo "$sum"
}

run_pgbench() {
  local target=${BENCH_NAME:-$1} script=$2
  local out="$WORK/$target-$script.r$ROUND.out" rc=0 clients=$CLIENTS jobs=$JOBS
  local ticks0 ticks1 t0 t1
  local args=(-f "$WORK/$script.sql")
  case $script in
  transfer) args+=(--max-tries=10) ;;
  tpcb-like) args=(-b tpcb-like --max-tries=10) ;;
  write1) args=(-f "$WORK/write.sql") clients=1 jobs=1 ;;
  esac
  log "round $ROUND, $target: pgbench $script, ${BENCH_SECONDS}s, $clients client(s)"
  ticks0=$(server_ticks) t0=$(date +%s.%N)
  timeout $((BENCH_SECONDS + 120)) "$PGBENCH" -n -M prepared -c "$clients" -j "$jobs" -T "$BENCH_SECONDS" \
    "${args[@]}" -h 127.0.0.1 -p "$PORT" -U "$DBUSER" "$DBNAME" >"$out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  sleep 0.5 # the backends of PostgreSQL exit with their connections; reaped, their time is the postmaster's
  ticks1=$(server_ticks)
  local tps lat txns failed note=
  tps=$(grep -E '^tps = .*(without initial connection|excluding connections)' "$out" | awk '{print $3}' | head -n 1)
  [[ -n $tps ]] || tps=$(grep -E '^tps = ' "$out" | awk '{print $3}' | tail -n 1)
  lat=$(grep -E '^latency average = ' "$out" | awk '{print $4}' | head -n 1)
  txns=$(grep -E '^number of transactions actually processed: ' "$out" | awk '{print $6}' | cut -d/ -f1 | head -n 1)
  failed=$(grep -E '^number of failed transactions: ' "$out" | awk '{print $5}' | head -n 1)
  ((rc == 0)) || note="pgbench exit $rc: $(grep -m1 -iE 'error|abort|fatal' "$out" | cut -c1-120)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$target" "$script" "${tps:--}" "${lat:--}" "${txns:--}" "${failed:-0}" "$note" >>"$WORK/results.tsv"
  sed 's/^/    /' "$out" | grep -E 'tps|latency|processed|failed|abort|error' >&2 || true
  if [[ $txns =~ ^[0-9]+$ ]] && ((txns > 0)); then
    awk -v r="$ROUND" -v t="$target" -v s="$script" -v d=$((ticks1 - ticks0)) -v hz="$(getconf CLK_TCK)" -v n="$txns" -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" \
      'BEGIN {printf "%s\t%s\t%s\t%.3f\t%.2f\n", r, t, s, d / hz * 1000 / n, d / hz / w}' >>"$WORK/cpu.tsv"
    tail -n 1 "$WORK/cpu.tsv" | awk -F'\t' '{printf "    server CPU: %s ms per transaction, %s cores\n", $4, $5}' >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# Targets. Each runs in a subshell; whatever it starts is stopped before the next one begins.

# PostgreSQL servers (postgres and pgha). As root they run as $BENCH_USER, since postgres refuses
# root: PG_RUN is the command prefix that does so, empty otherwise.
PG_RUN=()
pg_setup_user() {
  PG_RUN=()
  [[ $(id -u) == 0 ]] || return 0
  if ! id "$BENCH_USER" >/dev/null 2>&1; then
    log "creating system user $BENCH_USER (PostgreSQL refuses to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$BENCH_USER"
  fi
  if command -v setpriv >/dev/null; then
    PG_RUN=(setpriv --reuid="$BENCH_USER" --regid="$BENCH_USER" --clear-groups --)
  else
    PG_RUN=(runuser -u "$BENCH_USER" --)
  fi
}

pg_dirs() { # pg_dirs DIR...: creates the directories, owned by the user the servers run as
  mkdir -p "$@"
  if [[ $(id -u) == 0 ]]; then chown "$BENCH_USER:" "$@"; fi
}

pg_initdb() { # pg_initdb NAME DATADIR: a fresh cluster, superuser postgres, trust on loopback
  pg_dirs "$2"
  log "$1: initdb ($("$PGBIN/postgres" --version))"
  timeout 120 "${PG_RUN[@]}" "$PGBIN/initdb" -D "$2" -U postgres --auth=trust -E UTF8 --locale=C \
    >"$RW/$1-initdb.log" 2>&1 || die "$1: initdb failed:$'\n'$(tail -5 "$RW/$1-initdb.log")"
}

# pg_start NAME DATADIR PORT [-c SETTING]...: starts a server on 127.0.0.1:PORT, with its own
# socket directory and its log in $RW/NAME.log; its PID goes to PG_PID.
PG_PID=
pg_start() {
  local name=$1 dir=$2 port=$3
  shift 3
  pg_dirs "$RW/$name-sock"
  local tls=()
  if ((TLS_ON)); then
    # The server's copy of the test CA's node certificate, owned by the user it runs as (a
    # key PostgreSQL accepts is readable by its owner only).
    pg_dirs "$RW/$name-tls"
    cp "$CERTS/node.crt" "$CERTS/node.key" "$RW/$name-tls/"
    chmod 600 "$RW/$name-tls/node.key"
    if [[ $(id -u) == 0 ]]; then chown "$BENCH_USER:" "$RW/$name-tls/node.crt" "$RW/$name-tls/node.key"; fi
    tls=(-c ssl=on -c ssl_cert_file="$RW/$name-tls/node.crt" -c ssl_key_file="$RW/$name-tls/node.key")
  fi
  "${PG_RUN[@]}" "$PGBIN/postgres" -D "$dir" -p "$port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$RW/$name-sock" -c shared_buffers=256MB -c fsync=on \
    -c synchronous_commit=on -c max_connections=100 ${tls[@]+"${tls[@]}"} "$@" >"$RW/$name.log" 2>&1 &
  PG_PID=$!
  started "$PG_PID"
}

bench_postgres() {
  pg_setup_user
  pg_initdb postgres "$RW/pg"
  free_port PORT
  DBUSER=postgres DBNAME=postgres
  pg_start postgres "$RW/pg" "$PORT"
  wait_sql "$PG_PID" "$RW/postgres.log"
  load_data postgres
  sql "VACUUM ANALYZE" >/dev/null
  for script in "${SCRIPTS[@]}"; do run_pgbench postgres "$script"; done
  run_copy postgres
}

# pgha: a primary and two hot standbys made from it by pg_basebackup, each with its own data
# directory, port and replication slot, streaming from the primary as application_name s1 and s2.
# Commits wait for the WAL to be flushed on the primary and on at least one of the standbys.
PGHA_SYNC_NAMES='ANY 1 (s1, s2)'
PGHA_STANDBYS=(s1 s2)

# pgha_check: until the primary's pg_stat_replication shows both standbys streaming as quorum
# (synchronous) standbys (60 s), else dies. PORT is the primary's.
pgha_check() {
  local want got='' i
  want=$(printf '%s quorum streaming\n' "${PGHA_STANDBYS[@]}")
  for ((i = 0; i < 300; i++)); do
    got=$(sql "SELECT application_name || ' ' || sync_state || ' ' || state FROM pg_stat_replication ORDER BY 1" 2>/dev/null) || got=
    [[ $got == "$want" ]] && return 0
    sleep 0.2
  done
  die "pgha: the standbys are not both streaming as quorum standbys after 60 s; pg_stat_replication (application_name sync_state state):$'\n'${got:-(no rows)}"
}

bench_pgha() {
  pg_setup_user
  pg_initdb pgha "$RW/pgha-primary"
  local primary s i n port
  free_port primary
  PORT=$primary DBUSER=postgres DBNAME=postgres
  pg_start pgha-primary "$RW/pgha-primary" "$primary" -c synchronous_standby_names="$PGHA_SYNC_NAMES" \
    -c wal_level=replica -c max_wal_senders=10 -c max_replication_slots=10
  wait_sql "$PG_PID" "$RW/pgha-primary.log"
  local -A standby_port standby_pid
  for s in "${PGHA_STANDBYS[@]}"; do
    log "pgha: pg_basebackup of the primary for standby $s"
    pg_dirs "$RW/pgha-$s"
    chmod 700 "$RW/pgha-$s"
    timeout 300 "${PG_RUN[@]}" "$PGBIN/pg_basebackup" -D "$RW/pgha-$s" -h 127.0.0.1 -p "$primary" -U postgres \
      --checkpoint=fast --wal-method=stream --create-slot --slot="$s" >"$RW/pgha-$s-basebackup.log" 2>&1 ||
      die "pgha: pg_basebackup for $s failed:$'\n'$(tail -5 "$RW/pgha-$s-basebackup.log")"
    "${PG_RUN[@]}" touch "$RW/pgha-$s/standby.signal"
    free_port port
    pg_start "pgha-$s" "$RW/pgha-$s" "$port" -c hot_standby=on -c primary_slot_name="$s" \
      -c "primary_conninfo=host=127.0.0.1 port=$primary user=postgres application_name=$s"
    standby_port[$s]=$port standby_pid[$s]=$PG_PID
  done
  for s in "${PGHA_STANDBYS[@]}"; do
    PORT=${standby_port[$s]} wait_sql "${standby_pid[$s]}" "$RW/pgha-$s.log"
    [[ $(PORT=${standby_port[$s]} sql "SELECT pg_is_in_recovery()") == t ]] || die "pgha: $s is not in recovery"
  done
  pgha_check
  local settings
  settings=$(sql "SELECT current_setting('synchronous_standby_names') || '; synchronous_commit=' || current_setting('synchronous_commit') || '; fsync=' || current_setting('fsync')")
  [[ $settings == "$PGHA_SYNC_NAMES; synchronous_commit=on; fsync=on" ]] || die "pgha: the primary's settings are $settings"
  log "pgha: primary on 127.0.0.1:$primary ($settings); standbys s1 on :${standby_port[s1]}, s2 on :${standby_port[s2]}, both quorum"
  load_data pgha
  sql "VACUUM ANALYZE" >/dev/null
  # The standbys hold the data: each replays the load within 60 s.
  for s in "${PGHA_STANDBYS[@]}"; do
    for ((i = 0; ; i++)); do
      n=$(PORT=${standby_port[$s]} sql "SELECT count(*) FROM kv" 2>/dev/null) || n=
      [[ $n == "$BENCH_ROWS" ]] && break
      ((i < 300)) || die "pgha: standby $s has ${n:-no} rows in kv after 60 s, want $BENCH_ROWS"
      sleep 0.2
    done
  done
  for script in "${SCRIPTS[@]}"; do
    pgha_check # measured only while both standbys stream as quorum standbys
    run_pgbench pgha "$script"
  done
  pgha_check
}

KVNODE_BIN=$WORK/kvnode
build_kvnode() {
  log "building kvnode"
  if ! timeout 600 go build -o "$KVNODE_BIN" ./cmd/kvnode; then
    echo "bench: go build ./cmd/kvnode failed; the kvnode targets are skipped" >&2
    return 1
  fi
  "$KVNODE_BIN" version | head -n 1 >&2
}

# start_kvnode NAME SUBCOMMAND LISTENPORT [extra flags]: starts a node on fresh ports (and on
# LISTENPORT for --listen-addr, or a fresh one if it is empty); records its pid, SQL port and
# HTTP port in NODE_PID, NODE_SQL and NODE_HTTP under NAME.
declare -A NODE_PID NODE_SQL NODE_HTTP
start_kvnode() {
  local name=$1 sub=$2 l=$3 g s h
  shift 3
  [[ -n $l ]] || free_port l
  free_port g
  free_port s
  free_port h
  "$KVNODE_BIN" "$sub" "${KVNODE_SEC[@]}" --store="$RW/$name" --listen-addr="127.0.0.1:$l" --gossip-addr="127.0.0.1:$g" \
    --sql-addr="127.0.0.1:$s" --http-addr="127.0.0.1:$h" --log-level=warn ${kvnode_flags[@]+"${kvnode_flags[@]}"} "$@" >"$RW/$name.log" 2>&1 &
  local pid=$!
  started "$pid"
  NODE_PID[$name]=$pid NODE_SQL[$name]=$s NODE_HTTP[$name]=$h
}

# kvnode_client_tls: the kvnode targets' clients check the node against the CA and present
# root's certificate; PostgreSQL's (pg_tls_env) need only encryption.
kvnode_client_tls() {
  if ((TLS_ON)); then
    export PGSSLMODE=verify-full PGSSLROOTCERT="$CERTS/ca.crt" PGSSLCERT="$CERTS/client.root.crt" PGSSLKEY="$CERTS/client.root.key"
  fi
}

bench_single() {
  kvnode_client_tls
  start_kvnode single start-single-node ""
  wait_ready "${NODE_PID[single]}" "${NODE_HTTP[single]}" "$RW/single.log"
  PORT=${NODE_SQL[single]} DBUSER=root DBNAME=defaultdb
  wait_sql "${NODE_PID[single]}" "$RW/single.log"
  load_data single
  for script in "${SCRIPTS[@]}"; do run_pgbench single "$script"; done
  run_copy single "${NODE_PID[single]}"
}

bench_cluster() { three_nodes cluster; }
bench_nolease() { three_nodes nolease --leased-reads=false; }

# three_nodes TARGET [extra flags]: the three-node targets.
three_nodes() {
  local target=$1
  shift
  kvnode_client_tls
  # Reserve the listen ports first so every node gets the full --join list.
  local l1 l2 l3 i n
  free_port l1
  free_port l2
  free_port l3
  local join="127.0.0.1:$l1,127.0.0.1:$l2,127.0.0.1:$l3"
  start_kvnode n1 start "$l1" --join="$join" "$@"
  start_kvnode n2 start "$l2" --join="$join" "$@"
  start_kvnode n3 start "$l3" --join="$join" "$@"
  log "$target: kvnode init --host=127.0.0.1:$l1"
  for ((i = 0; ; i++)); do
    timeout 60 "$KVNODE_BIN" init "${KVNODE_SEC[@]}" --host="127.0.0.1:$l1" >"$RW/init.log" 2>&1 && break
    ((i < 10)) || die "kvnode init failed:$'\n'$(cat "$RW/init.log")"
    sleep 1
  done
  for n in n1 n2 n3; do wait_ready "${NODE_PID[$n]}" "${NODE_HTTP[$n]}" "$RW/$n.log"; done
  PORT=${NODE_SQL[n1]} DBUSER=root DBNAME=defaultdb
  wait_sql "${NODE_PID[n1]}" "$RW/n1.log"
  load_data "$target"
  # Point pgbench at the data group's leader: a gateway that is not the leader forwards every
  # write one more hop, and which node wins the first election would otherwise decide the
  # numbers.
  local st lead=""
  for n in n1 n2 n3; do
    if ((TLS_ON)); then
      st=$(curl -sf --max-time 5 --cacert "$CERTS/ca.crt" --cert "$CERTS/client.root.crt" --key "$CERTS/client.root.key" \
        "https://127.0.0.1:${NODE_HTTP[$n]}/_status/node" || true)
    else
      st=$(curl -sf --max-time 5 "http://127.0.0.1:${NODE_HTTP[$n]}/_status/node" || true)
    fi
    if [[ $st =~ \"node_id\":([0-9]+), ]] && [[ $st == *"\"leader\":${BASH_REMATCH[1]},"* ]]; then
      lead=$n
    fi
  done
  if [[ -n $lead ]]; then
    PORT=${NODE_SQL[$lead]}
    log "$target: pgbench connects to $lead, the Raft leader"
  else
    log "$target: no leader found in /_status/node; pgbench connects to n1"
  fi
  for script in "${SCRIPTS[@]}"; do run_pgbench "$target" "$script"; done
  run_copy "$target" "${NODE_PID[n1]}" "${NODE_PID[n2]}" "${NODE_PID[n3]}"
}

# ---------------------------------------------------------------------------------------------
# Run.

t_start=$SECONDS
failed_targets=()
kvnode_built=0
if has_target single || has_target cluster || has_target nolease || ((TLS_ANY)); then
  if build_kvnode; then kvnode_built=1; fi
fi
# Security: --insecure, or (BENCH_TLS=1) certificates of a test CA, made with kvnode cert, for
# every kvnode node and for PostgreSQL; the kvnode targets' clients present root's certificate.
CERTS=$WORK/certs
KVNODE_SEC=(--insecure)
if ((TLS_ANY)); then
  ((kvnode_built)) || die "BENCH_TLS=$BENCH_TLS needs the kvnode binary (its cert command makes the certificates)"
  for args in "create-ca" "create-node 127.0.0.1 localhost" "create-client root"; do
    # shellcheck disable=SC2086 # the words of args are the command's arguments
    "$KVNODE_BIN" cert $args --certs-dir="$CERTS" --ca-key="$WORK/ca.key" >/dev/null || die "kvnode cert $args failed"
  done
  ((TLS_ON)) && KVNODE_SEC=(--certs-dir="$CERTS")
  log "TLS: certificates in $CERTS; kvnode targets use sslmode=verify-full with root's certificate, PostgreSQL sslmode=require"
fi
order=()
for t in postgres pgha single cluster nolease; do
  if has_target "$t"; then
    [[ $BENCH_TLS == both ]] && order+=("$t") && order+=("$t-tls") && continue
    order+=("$t")
  fi
done
# measure_floor: one line of $WORK/floor.tsv for this round: round, fdatasync of one 8 kB write
# (us/op, pg_test_fsync on the work directory's file system, where the stores are), loopback
# round trip (us, median).
measure_floor() {
  local out fsync rtt
  log "round $ROUND: the floor (pg_test_fsync, 2 s per method; go run scripts/rtt.go)"
  out=$(cd "$WORK" && timeout 120 "$PG_TEST_FSYNC" -f "$WORK/pg_test_fsync.tmp" -s 2 2>&1) || die "pg_test_fsync failed: $out"
  rm -f "$WORK/pg_test_fsync.tmp"
  # The first fdatasync line is the section "Compare file sync methods using one 8kB write".
  fsync=$(awk '$1 == "fdatasync" && $(NF) == "usecs/op" {print $(NF - 1); exit}' <<<"$out")
  [[ $fsync =~ ^[0-9]+$ ]] || die "no fdatasync usecs/op in pg_test_fsync's output: $out"
  rtt=$(timeout 120 go run scripts/rtt.go -n 20000) || die "go run scripts/rtt.go failed"
  printf '%s\t%s\t%s\n' "$ROUND" "$fsync" "$rtt" >>"$WORK/floor.tsv"
  log "round $ROUND: fdatasync $fsync us, loopback round trip $rtt us"
}
: >"$WORK/floor.tsv"
for ((ROUND = 1; ROUND <= BENCH_ROUNDS; ROUND++)); do
  if ((BENCH_FLOOR)); then measure_floor; fi
  # Round r starts r-1 places further along the list, so that over the rounds every target
  # runs early and late, next to each of the others.
  for ((k = 0; k < ${#order[@]}; k++)); do
    t=${order[$(((ROUND - 1 + k) % ${#order[@]}))]}
    if [[ " ${failed_targets[*]} " == *" $t "* ]]; then continue; fi
    if [[ ${t%-tls} == single || ${t%-tls} == cluster || ${t%-tls} == nolease ]] && ((!kvnode_built)); then
      failed_targets+=("$t")
      continue
    fi
    log "round $ROUND of $BENCH_ROUNDS, target: $t"
    RW=$WORK/r$ROUND
    mkdir -p "$RW"
    set +e
    (
      set -e
      # A target's processes are stopped when its subshell ends, so targets never overlap.
      # shellcheck disable=SC2317 # invoked by the trap
      stop_own() {
        local pids=()
        mapfile -t pids <"$WORK/pids"
        if ((${#pids[@]})); then stop_pids INT "${pids[@]}"; fi
        : >"$WORK/pids" # stopped: never signal these PIDs again, they may be reused
      }
      trap stop_own EXIT
      trap 'exit 130' INT TERM
      if [[ $t == *-tls ]]; then
        # The TLS twin: the same target, over TLS (BENCH_TLS=both).
        TLS_ON=1 KVNODE_SEC=(--certs-dir="$CERTS")
        export PGSSLMODE=require
      fi
      # run_pgbench records the results under TARGET (with -tls for a twin).
      BENCH_NAME=$t
      "bench_${t%-tls}"
    )
    rc=$?
    set -e
    if ((rc == 130)); then exit 130; fi
    if ((rc != 0)); then failed_targets+=("$t"); fi
    if [[ ${KEEP:-} != 1 ]]; then rm -rf "${RW:?}"; fi # its stores and logs; pgbench output stays in $WORK
  done
done

# ---------------------------------------------------------------------------------------------
# Report. Every figure is a median over the rounds; a ratio is the median of the rounds' own
# ratios (a run against its reference's run of the same round), with their range.

label() {
  if [[ $1 == *-tls ]]; then
    echo "$(label "${1%-tls}"), TLS"
    return
  fi
  case $1 in
  postgres) echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')" ;;
  pgha) echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), 2 sync standbys" ;;
  single) echo "kvnode, 1 node" ;;
  cluster) echo "kvnode, 3 nodes" ;;
  nolease) echo "kvnode, 3 nodes, --leased-reads=false" ;;
  esac
}
script_name() {
  case $1 in
  read) echo "read: SELECT by key" ;;
  write) echo "write: INSERT … ON CONFLICT DO UPDATE" ;;
  write1) echo "write1: the write script, one client" ;;
  lookup) echo "lookup: SELECT by a secondary key, through its index" ;;
  transfer) echo "transfer: BEGIN; SELECT; 2 UPDATEs; END (random accounts)" ;;
  tpcb-like) echo "tpcb-like: pgbench's built-in TPC-B-like transaction (one hot branch)" ;;
  join) echo "join: 1,000 rows JOIN $BENCH_ROWS rows on the key, count and sum" ;;
  groupby) echo "groupby: GROUP BY over $BENCH_ROWS rows (16 groups)" ;;
  copy) echo "copy: \\copy of $BENCH_COPY_ROWS rows (rows/s; latency: the whole COPY)" ;;
  esac
}
# median: of the numbers on stdin, one per line ("-" lines are skipped); prints nothing if none.
median() {
  awk '$1 != "-"' | sort -g | awk '{v[NR] = $1} END { if (NR) printf "%.15g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# col TARGET SCRIPT FIELD: that field (4 tps, 5 latency, 6 transactions, 7 failed) of every round.
col() { awk -F'\t' -v t="$1" -v s="$2" -v f="$3" '$2 == t && $3 == s {print $f}' "$WORK/results.tsv" 2>/dev/null; }
# reference TARGET: the target whose TPS TARGET's is divided by, in the same round: PostgreSQL for
# one kvnode node and for pgha; pgha for three kvnode nodes (PostgreSQL if pgha does not run).
# Prints nothing for a reference itself: postgres, and pgha when postgres does not run.
reference() {
  if [[ $1 == *-tls ]]; then
    # TLS against TLS.
    local r
    r=$(reference "${1%-tls}")
    if [[ -n $r ]]; then echo "$r-tls"; fi
    return
  fi
  case $1 in
  pgha) if has_target postgres; then echo postgres; fi ;;
  single) echo postgres ;;
  cluster | nolease) if has_target pgha; then echo pgha; else echo postgres; fi ;;
  esac
}
# against REF: the name of a reference for the tables.
against() {
  if has_target "${1%-tls}"; then label "$1"; else echo "$1 (not in BENCH_TARGETS)"; fi
}
# ratios TARGET REF SCRIPT: "ROUND<tab>RATIO" of TARGET's TPS over REF's, for every round in
# which both ran.
ratios() {
  awk -F'\t' -v t="$1" -v ref="$2" -v s="$3" '$3 == s && $4 != "-" { tps[$1, $2] = $4; r[$1] = 1 }
    END { for (i in r) if (((i, ref) in tps) && ((i, t) in tps) && tps[i, ref] > 0)
      printf "%s\t%.4f\n", i, tps[i, t] / tps[i, ref] }' "$WORK/results.tsv" 2>/dev/null
}
# num FORMAT VALUE: VALUE printed with FORMAT, or "-" if it is empty or "-".
num() {
  if [[ -z $2 || $2 == - ]]; then echo -; else awk -v f="$1" -v a="$2" 'BEGIN { printf f, a }'; fi
}

table=$WORK/table.md
rounds_table=$WORK/rounds.md
{
  echo "| script | target | TPS | avg latency (ms) | TPS ratio | ratio against | transactions | failed |"
  echo "|---|---|---:|---:|---:|---|---:|---:|"
  if [[ -s $WORK/results.tsv ]]; then
    for s in "${REPORTED[@]}"; do
      for target in "${order[@]}"; do
        [[ -n $(col "$target" "$s" 4) ]] || continue
        tps=$(col "$target" "$s" 4 | median)
        lat=$(col "$target" "$s" 5 | median)
        txns=$(col "$target" "$s" 6 | median | awk '{printf "%.0f", $1}')
        failed=$(col "$target" "$s" 7 | awk '{n += $1} END {print n + 0}')
        ratio=n/a against=
        ref=$(reference "$target")
        rs=
        if [[ -z $ref ]]; then
          ratio=1.00× against="(reference)"
        else
          against=$(against "$ref")
          rs=$(ratios "$target" "$ref" "$s" | cut -f2)
        fi
        if [[ -n $rs ]]; then
          ratio=$(median <<<"$rs" | awk '{printf "%.3f×", $1}')
          ratio+=$(sort -g <<<"$rs" | awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR > 1) printf " (%.3f–%.3f)", lo, hi}')
        fi
        tpsf=$(num %.0f "$tps") latf=$(num %.2f "$lat")
        notes=$(awk -F'\t' -v t="$target" -v s="$s" '$2 == t && $3 == s && $8 != "" {printf "round %s: %s; ", $1, $8}' "$WORK/results.tsv")
        if [[ -n $notes ]]; then latf="$latf (${notes%; })"; fi
        echo "| $(script_name "$s") | $(label "$target") | $tpsf | $latf | $ratio | $against | ${txns:--} | $failed |"
      done
    done
  fi
  for t in "${failed_targets[@]}"; do
    echo "| (all) | $(label "$t") | failed | see the run's log | | | | |"
  done
} >"$table"
{
  echo "| round | script | target | TPS | avg latency (ms) | TPS ratio in the round | ratio against |"
  echo "|---:|---|---|---:|---:|---:|---|"
  if [[ -s $WORK/results.tsv ]]; then
    awk -F'\t' '$3 != "" {print}' "$WORK/results.tsv" | sort -t$'\t' -k1,1n -k3,3 -s |
      while IFS=$'\t' read -r round target script tps lat _ _ _; do
        ratio='' against=''
        ref=$(reference "$target")
        if [[ -n $ref ]]; then
          against=$(against "$ref")
          ratio=$(ratios "$target" "$ref" "$script" | awk -F'\t' -v r="$round" '$1 == r {printf "%.3f×", $2}')
          [[ -n $ratio ]] || ratio=n/a
        fi
        echo "| $round | ${script} | $(label "$target") | $(num %.0f "$tps") | $(num %.2f "$lat") | $ratio | $against |"
      done
  fi
} >"$rounds_table"

# BENCH_TLS=both: the cost of TLS, each round's TLS run against the plaintext run of the same
# target in that round; and for a target with a reference, how its ratio to the reference moves
# (TLS against TLS over plaintext against plaintext, per round).
tls_table=$WORK/tls.md
: >"$tls_table"
# pair_ratio A B SCRIPT: per round, (TPS of A / TPS of B) printed as "ROUND<tab>RATIO".
pair_ratio() { ratios "$1" "$2" "$3"; }
# ratio_of_ratios T REF SCRIPT: per round, (T-tls / REF-tls) / (T / REF).
ratio_of_ratios() {
  awk -F'\t' -v t="$1" -v ref="$2" -v s="$3" '$3 == s && $4 != "-" { tps[$1, $2] = $4; r[$1] = 1 }
    END { for (i in r) if (((i, t) in tps) && ((i, ref) in tps) && ((i, t "-tls") in tps) && ((i, ref "-tls") in tps) &&
      tps[i, ref] > 0 && tps[i, ref "-tls"] > 0 && tps[i, t] > 0)
      printf "%s\t%.4f\n", i, (tps[i, t "-tls"] / tps[i, ref "-tls"]) / (tps[i, t] / tps[i, ref]) }' "$WORK/results.tsv" 2>/dev/null
}
# summarize: the median of the second column on stdin, with the range if more than one.
summarize() {
  local v
  v=$(cut -f2)
  [[ -n $v ]] || { echo n/a; return; }
  median <<<"$v" | awk '{printf "%.3f×", $1}'
  sort -g <<<"$v" | awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR > 1) printf " (%.3f–%.3f)", lo, hi}'
}
if [[ $BENCH_TLS == both && -s $WORK/results.tsv ]]; then
  {
    echo "| script | target | TPS plaintext | TPS TLS | TLS / plaintext | ratio change (TLS vs TLS over plaintext vs plaintext) | ratio against | within 10% |"
    echo "|---|---|---:|---:|---:|---:|---|---|"
    for s in "${SCRIPTS[@]}"; do
      for t in "${order[@]}"; do
        [[ $t == *-tls ]] && continue
        [[ -n $(col "$t" "$s" 4) && -n $(col "$t-tls" "$s" 4) ]] || continue
        plain=$(col "$t" "$s" 4 | median) tlstps=$(col "$t-tls" "$s" 4 | median)
        cost=$(pair_ratio "$t-tls" "$t" "$s" | summarize)
        ref=$(reference "$t") change=- against=- within=-
        if [[ -n $ref ]]; then
          rr=$(ratio_of_ratios "$t" "$ref" "$s")
          change=$(summarize <<<"$rr")
          against=$(label "$ref")
          if [[ -n $rr ]]; then
            within=$(cut -f2 <<<"$rr" | median | awk '{d = $1 - 1; if (d < 0) d = -d; print (d <= 0.10) ? "yes" : "no"}')
          fi
        fi
        echo "| $(script_name "$s") | $(label "$t") | $(num %.0f "$plain") | $(num %.0f "$tlstps") | $cost | $change | $against | $within |"
      done
    done
  } >"$tls_table"
fi

# BENCH_FLOOR=1: each round's floor (one fdatasync + one loopback round trip) and each target's
# one-client write latency (write1) in that round as a multiple of it.
floor_table=$WORK/floor.md
: >"$floor_table"
if [[ -s $WORK/floor.tsv ]]; then
  {
    echo "| round | fdatasync (µs) | loopback round trip (µs) | floor (ms) | target | one-client upsert (ms) | multiple of the floor |"
    echo "|---:|---:|---:|---:|---|---:|---:|"
    while IFS=$'\t' read -r round fsync rtt; do
      floor=$(awk -v a="$fsync" -v b="$rtt" 'BEGIN {printf "%.3f", (a + b) / 1000}')
      for t in "${order[@]}"; do
        lat=$(awk -F'\t' -v r="$round" -v t="$t" '$1 == r && $2 == t && $3 == "write1" {print $5}' "$WORK/results.tsv" 2>/dev/null)
        [[ -n $lat && $lat != - ]] || continue
        mult=$(awk -v l="$lat" -v f="$floor" 'BEGIN {printf "%.2f×", l / f}')
        echo "| $round | $fsync | $rtt | $floor | $(label "$t") | $(num %.3f "$lat") | $mult |"
      done
    done <"$WORK/floor.tsv"
  } >"$floor_table"
fi

# The servers' CPU per transaction and the cores they used, per script and target (medians of
# the rounds): how much work a transaction costs each server, apart from the share of the CPUs
# each got, which on a machine shared with other work decides much of the TPS (docs/benchmarks.md,
# "GROUP BY (session 16)": every PostgreSQL backend is a scheduling group of its own).
cpu_table=$WORK/cpu.md
: >"$cpu_table"
if [[ -s $WORK/cpu.tsv ]]; then
  {
    echo "| script | target | server CPU per transaction (ms) | CPU against the reference's | cores used |"
    echo "|---|---|---:|---:|---:|"
    for s in "${SCRIPTS[@]}"; do
      for t in "${order[@]}"; do
        ms=$(awk -F'\t' -v t="$t" -v s="$s" '$2 == t && $3 == s {print $4}' "$WORK/cpu.tsv" | median)
        [[ -n $ms ]] || continue
        cores=$(awk -F'\t' -v t="$t" -v s="$s" '$2 == t && $3 == s {print $5}' "$WORK/cpu.tsv" | median)
        rel=
        ref=$(reference "$t")
        if [[ -n $ref ]]; then
          rms=$(awk -F'\t' -v t="$ref" -v s="$s" '$2 == t && $3 == s {print $4}' "$WORK/cpu.tsv" | median)
          if [[ -n $rms ]]; then rel=$(awk -v a="$ms" -v b="$rms" 'BEGIN {if (b > 0) printf "%.2f×", a / b}'); fi
        fi
        echo "| $(script_name "$s") | $(label "$t") | $(num %.2f "$ms") | ${rel:-(reference)} | $(num %.2f "$cores") |"
      done
    done
  } >"$cpu_table"
fi

mem=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cmd="BENCH_SECONDS=$BENCH_SECONDS BENCH_ROUNDS=$BENCH_ROUNDS"
if [[ $BENCH_TARGETS != "postgres pgha single cluster" ]]; then cmd+=" BENCH_TARGETS=\"$BENCH_TARGETS\""; fi
if ((BENCH_ROWS != 100000)); then cmd+=" BENCH_ROWS=$BENCH_ROWS"; fi
if ((BENCH_COPY_ROWS > 0)); then cmd+=" BENCH_COPY_ROWS=$BENCH_COPY_ROWS"; fi
if [[ -n ${BENCH_SCRIPTS:-} ]]; then cmd+=" BENCH_SCRIPTS=\"$BENCH_SCRIPTS\""; fi
if [[ -n $KVNODE_FLAGS ]]; then cmd+=" KVNODE_FLAGS=\"$KVNODE_FLAGS\""; fi
if [[ $BENCH_TLS != 0 ]]; then cmd+=" BENCH_TLS=$BENCH_TLS"; fi
if ((BENCH_FLOOR)); then cmd+=" BENCH_FLOOR=1"; fi
cmd+=" ./scripts/bench.sh"

section=$WORK/section.md
{
  echo "Run on $(date -u '+%Y-%m-%d %H:%M UTC'), kvnode commit \`$rev\`, $(go version | awk '{print $3}')."
  echo
  echo "- machine: $(nproc) cores${cpu:+ ($cpu)}, $mem memory, $(uname -sr); server and pgbench share it;"
  echo "  load average (1, 5, 15 min) $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "- command: \`$cmd\`"
  echo "- pgbench: \`pgbench -n -M prepared -c $CLIENTS -j $JOBS -T $BENCH_SECONDS -f SCRIPT\`, $BENCH_ROWS rows"
  if ((BENCH_FLOOR)); then echo "  (write1: \`-c 1 -j 1\` with the write script)"; fi
  echo "- $BENCH_ROUNDS round(s), the targets interleaved; medians over the rounds, and for a ratio the"
  echo "  median (and the range) of the rounds' own ratios to the reference named beside it, run in"
  echo "  the same round: PostgreSQL for one kvnode node and for the HA baseline (PostgreSQL with two"
  echo "  synchronous standbys, \`synchronous_standby_names = '$PGHA_SYNC_NAMES'\`); the HA baseline for three"
  echo "  kvnode nodes (PostgreSQL when the HA baseline did not run)"
  echo
  cat "$table"
  if [[ -s $tls_table ]]; then
    echo
    echo "The cost of TLS, same run (each TLS run against the plaintext run of the same target in the same"
    echo "round; the ratio change is the kvnode target's TLS-against-TLS ratio over its plaintext one):"
    echo
    cat "$tls_table"
  fi
  if [[ -s $cpu_table ]]; then
    echo
    echo "The servers' CPU per transaction (user + system time over the run of all the servers' processes,"
    echo "PostgreSQL's postmaster with its children, from /proc/PID/stat, over pgbench's transactions; medians"
    echo "of the rounds, against the same reference as the TPS ratio) and the cores they used (that time over"
    echo "the pgbench run's wall time, its connections included):"
    echo
    cat "$cpu_table"
  fi
  if [[ -s $floor_table ]]; then
    echo
    echo "One client against the physical floor (BENCH_FLOOR=1): each round's floor is one fdatasync of an"
    echo "8 kB write (pg_test_fsync) plus one loopback round trip (scripts/rtt.go), measured before the"
    echo "round's targets; the multiple is the target's average write1 latency in that round over it:"
    echo
    cat "$floor_table"
  fi
  if ((BENCH_ROUNDS > 1)); then
    echo
    echo "Each round:"
    echo
    cat "$rounds_table"
  fi
} >"$section"

echo
cat "$section"
echo
log "total time $((SECONDS - t_start)) s"

if [[ $BENCH_UPDATE_DOC == 1 ]]; then
  begin='<!-- bench-results:begin -->' end='<!-- bench-results:end -->'
  if ((TLS_ANY)); then begin='<!-- bench-results-tls:begin -->' end='<!-- bench-results-tls:end -->'; fi
  if ! grep -qF "$begin" "$BENCH_DOC" || ! grep -qF "$end" "$BENCH_DOC"; then
    die "$BENCH_DOC has no $begin ... $end markers; results not written"
  fi
  awk -v begin="$begin" -v end="$end" -v f="$section" '
    $0 == begin { print; while ((getline line < f) > 0) print line; skip = 1; next }
    $0 == end   { skip = 0 }
    !skip       { print }
  ' "$BENCH_DOC" >"$WORK/doc.md"
  cp "$WORK/doc.md" "$BENCH_DOC"
  log "results written to $BENCH_DOC"
else
  log "results not written to $BENCH_DOC (BENCH_UPDATE_DOC=1 writes them; the default writes only full runs)"
fi

((${#failed_targets[@]} == 0)) || die "failed targets: ${failed_targets[*]}"
