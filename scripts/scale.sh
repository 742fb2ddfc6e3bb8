#!/usr/bin/env bash
# scripts/scale.sh: how kvnode's cost grows with the data (issue 22, item 4). For every row count
# and cluster size asked, on a fresh cluster: load kv (k INT PRIMARY KEY, v TEXT) with COPY
# outside a transaction (committed every 1,000 rows), then pgbench's point reads and upserts
# (8 clients, prepared), then add one node with an empty store and time its catch-up (by Raft
# snapshot once the leader's log was truncated). Prints one Markdown row per run:
#
#   | rows | nodes | load s | read TPS | read p99 ms | write TPS | write p99 ms | peak RSS MiB per node | store MiB per node | catch-up s (how) |
#
#   ./scripts/scale.sh                                 100,000 and 1,000,000 rows, 1 and 3 nodes
#   SCALE_ROWS="100000" SCALE_NODES="3" SCALE_SECONDS=10 ./scripts/scale.sh
#
# Environment:
#   SCALE_ROWS     space-separated row counts (default "100000 1000000")
#   SCALE_NODES    space-separated cluster sizes, 1 or 3 (default "1 3")
#   SCALE_SECONDS  pgbench -T of each of the read and write runs (default 20)
#   KEEP=1         keep the work directory (stores, logs, pgbench output)
#
# Peak RSS is each node's VmHWM (/proc/PID/status) at the end of the run, before the new node
# joins; the new node's is not counted. Store size is `du -s --apparent-size` of each node's
# --store (the bytes of its files; the disk usage is about 280 MiB more, space Pebble reserves
# for its write-ahead log). The
# catch-up time runs from starting the new node (empty --store, --join naming the cluster) to
# its applied Raft index reaching the leader's commit index as it was when the node started;
# "snapshot" means the new node's log says it applied a Raft snapshot, "log" that it did not.
# Every server listens on 127.0.0.1 only; everything started is stopped on exit, by process ID.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE_ROWS=${SCALE_ROWS:-100000 1000000}
SCALE_NODES=${SCALE_NODES:-1 3}
SCALE_SECONDS=${SCALE_SECONDS:-20}
CLIENTS=8
JOBS=2

die() {
  printf 'scale: %s\n' "$*" >&2
  exit 1
}
log() { printf '==== %s\n' "$*" >&2; }
[[ $SCALE_SECONDS =~ ^[1-9][0-9]*$ ]] || die "SCALE_SECONDS must be a positive integer"
for n in $SCALE_NODES; do [[ $n == 1 || $n == 3 ]] || die "SCALE_NODES takes 1 and 3, not $n"; done
for r in $SCALE_ROWS; do [[ $r =~ ^[1-9][0-9]*$ ]] || die "SCALE_ROWS: '$r' is not a row count"; done
if ! command -v pgbench >/dev/null || ! command -v psql >/dev/null; then die "needs pgbench and psql (Debian's postgresql-client)"; fi
command -v curl >/dev/null || die "needs curl"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kvnode-scale.XXXXXX")
: >"$WORK/pids"
cleanup() {
  local pid
  while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$WORK/pids"
  sleep 1
  while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$WORK/pids"
  if [[ ${KEEP:-} == 1 ]]; then echo "scale: work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# shellcheck source=scripts/ports.sh
source scripts/ports.sh # the working directory is the repository root (above)

BIN=$WORK/kvnode
log "building kvnode"
go build -o "$BIN" ./cmd/kvnode
"$BIN" version | head -n 1 >&2

export PGCONNECT_TIMEOUT=10 PGSSLMODE=disable
sql() { timeout 120 psql -h 127.0.0.1 -p "$1" -U root -d defaultdb -X -q -A -t -v ON_ERROR_STOP=1 -c "$2"; }
status() { curl -sf --max-time 5 "http://127.0.0.1:$1/_status/node" || true; }
json_num() { [[ $1 =~ \"$2\":([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }

# start_node NAME SUB LISTEN [flags]: records PID, SQL and HTTP ports in the arrays.
declare -A PID SQLP HTTPP
start_node() {
  local name=$1 sub=$2 l=$3 g s h
  shift 3
  free_port g
  free_port s
  free_port h
  "$BIN" "$sub" --insecure --store="$RUN/$name" --listen-addr="127.0.0.1:$l" --gossip-addr="127.0.0.1:$g" \
    --sql-addr="127.0.0.1:$s" --http-addr="127.0.0.1:$h" "$@" >"$RUN/$name.log" 2>&1 &
  PID[$name]=$!
  echo "$!" >>"$WORK/pids"
  SQLP[$name]=$s HTTPP[$name]=$h
}
wait_ready() { # wait_ready NAME
  local i
  for ((i = 0; i < 600; i++)); do
    kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited:$'\n'$(tail -20 "$RUN/$1.log")"
    curl -sf --max-time 3 "http://127.0.0.1:${HTTPP[$1]}/health?ready=1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "$1 not ready after 120 s"
}
hwm_mib() { awk '/^VmHWM/ {printf "%d", $2 / 1024}' "/proc/$1/status"; }

cat >"$WORK/write.sql.in" <<'EOF'
\set k random(1, ROWS)
INSERT INTO kv (k, v) VALUES (:k, 'x') ON CONFLICT (k) DO UPDATE SET v = 'y';
EOF
cat >"$WORK/read.sql.in" <<'EOF'
\set k random(1, ROWS)
SELECT v FROM kv WHERE k = :k;
EOF

# bench NAME PORT SCRIPT: prints "tps p99ms"; a run pgbench aborted (a client got an error) has
# its TPS marked with "!" and the error goes to stderr and $WORK/errors.
bench() {
  local out="$RUN/pgbench-$3" rc=0
  sed "s/ROWS/$ROWS/" "$WORK/$3.sql.in" >"$RUN/$3.sql"
  (cd "$RUN" && timeout $((SCALE_SECONDS + 120)) pgbench -n -M prepared -c "$CLIENTS" -j "$JOBS" -T "$SCALE_SECONDS" \
    -f "$RUN/$3.sql" --log --log-prefix="$RUN/lat-$3" -h 127.0.0.1 -p "$2" -U root defaultdb >"$out" 2>&1) || rc=$?
  local tps p99
  tps=$(grep -E '^tps = ' "$out" | awk '{printf "%d", $3}' | head -n 1)
  if ((rc != 0)); then
    [[ -n $tps ]] || die "pgbench $3 failed:$'\n'$(tail -5 "$out")"
    tps="$tps!"
    echo "$ROWS rows, $NODES node(s), $3: pgbench aborted: $(grep -m 2 -iE 'error' "$out" | tr '\n' ' ')" | tee -a "$WORK/errors" >&2
  fi
  p99=$(cat "$RUN"/lat-"$3".* | awk '{print $3}' | sort -n | awk '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.1f", a[i] / 1000}')
  echo "$tps $p99"
}

ROWS_OUT=()
for ROWS in $SCALE_ROWS; do
  for NODES in $SCALE_NODES; do
    RUN=$WORK/r$ROWS-n$NODES
    mkdir -p "$RUN"
    PID=() SQLP=() HTTPP=()
    names=()
    declare -A LISTEN=()
    join=""
    for ((i = 1; i <= NODES + 1; i++)); do
      free_port "LISTEN[n$i]"
      ((i <= NODES)) && join+="127.0.0.1:${LISTEN[n$i]},"
    done
    join=${join%,}
    log "$ROWS rows, $NODES node(s): starting"
    if ((NODES == 1)); then
      start_node n1 start-single-node "${LISTEN[n1]}"
      names=(n1)
    else
      for ((i = 1; i <= NODES; i++)); do
        start_node "n$i" start "${LISTEN[n$i]}" --join="$join"
        names+=("n$i")
      done
      for ((i = 0; i < 20; i++)); do
        "$BIN" init --insecure --host="127.0.0.1:${LISTEN[n1]}" >"$RUN/init.log" 2>&1 && break
        sleep 1
      done
    fi
    for n in "${names[@]}"; do wait_ready "$n"; done
    # pgbench and the load go to the data group's leader (as scripts/bench.sh does).
    lead=n1
    for n in "${names[@]}"; do
      st=$(status "${HTTPP[$n]}")
      id=$(json_num "$st" node_id) || continue
      [[ $st == *"\"leader\":$id,"* ]] && lead=$n
    done
    P=${SQLP[$lead]}
    sql "$P" "CREATE TABLE kv (k INT PRIMARY KEY, v TEXT)"
    log "$ROWS rows, $NODES node(s): loading through $lead"
    t0=$(date +%s.%N)
    awk -v n="$ROWS" 'BEGIN { for (i = 1; i <= n; i++) printf "%d\tv%d\n", i, i }' |
      timeout 3600 psql -h 127.0.0.1 -p "$P" -U root -d defaultdb -X -q -v ON_ERROR_STOP=1 -c '\copy kv from stdin' >"$RUN/load.log" 2>&1 ||
      die "load failed:$'\n'$(tail -5 "$RUN/load.log")"
    load=$(echo "$(date +%s.%N) - $t0" | bc)
    got=$(sql "$P" "SELECT count(*) FROM kv")
    [[ $got == "$ROWS" ]] || die "loaded $got rows, want $ROWS"
    log "$ROWS rows, $NODES node(s): loaded in $(printf '%.1f' "$load") s; pgbench read and write, ${SCALE_SECONDS}s each"
    read -r rtps rp99 < <(bench "$lead" "$P" read)
    read -r wtps wp99 < <(bench "$lead" "$P" write)
    rss="" size=""
    for n in "${names[@]}"; do
      rss+="$(hwm_mib "${PID[$n]}")/"
      size+="$(($(du -sk --apparent-size "$RUN/$n" | cut -f1) / 1024))/"
    done
    rss=${rss%/} size=${size%/}
    # A new node with an empty store joins; time until it has applied what the leader had
    # committed when it started.
    new=n$((NODES + 1))
    target=$(json_num "$(status "${HTTPP[$lead]}")" commit) || die "no commit index from $lead"
    log "$ROWS rows, $NODES node(s): $new joins (leader's commit index $target)"
    t0=$(date +%s.%N)
    start_node "$new" start "${LISTEN[$new]}" --join="$join" --log-level=info
    catch=""
    for ((i = 0; i < 6000; i++)); do
      kill -0 "${PID[$new]}" 2>/dev/null || die "$new exited:$'\n'$(tail -20 "$RUN/$new.log")"
      applied=$(json_num "$(status "${HTTPP[$new]}")" applied) || applied=0
      if ((applied >= target)); then
        catch=$(echo "$(date +%s.%N) - $t0" | bc)
        break
      fi
      sleep 0.1
    done
    [[ -n $catch ]] || die "$new did not catch up in 600 s"
    how=log
    grep -q "applied Raft snapshot" "$RUN/$new.log" && how=snapshot
    row=$(printf '| %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %.1f (%s) |' "$ROWS" "$NODES" "$load" "$rtps" "$rp99" "$wtps" "$wp99" "$rss" "$size" "$catch" "$how")
    ROWS_OUT+=("$row")
    echo "$row"
    for n in "${!PID[@]}"; do kill -TERM "${PID[$n]}" 2>/dev/null || true; done
    for n in "${!PID[@]}"; do
      for ((i = 0; i < 200; i++)); do kill -0 "${PID[$n]}" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "${PID[$n]}" 2>/dev/null || true
    done
    unset LISTEN
  done
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
echo "| rows | nodes | load s | read TPS | read p99 ms | write TPS | write p99 ms | peak RSS MiB per node | store MiB per node | catch-up s (how) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS_OUT[@]}"
if [[ -s $WORK/errors ]]; then
  echo
  echo "! = pgbench aborted the run after an error:"
  cat "$WORK/errors"
fi
