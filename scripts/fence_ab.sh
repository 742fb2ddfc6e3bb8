#!/usr/bin/env bash
# fence_ab.sh: what the schema fence (sql/DESIGN.md) costs a write. Builds
# kvnode twice from this tree, as it is and with writeTable's fence check
# taken out, then runs, on one node each, 8 clients of prepared UPSERTs and
# UPDATEs by key for FENCE_SECONDS (default 15) in FENCE_ROUNDS (default 3)
# interleaved rounds, and prints each round's TPS and the medians' ratio.
#
#   ./scripts/fence_ab.sh                  (about 4 minutes)
#
# It needs psql and pgbench (Debian's postgresql-client), uses loopback
# ports 27257-27259 and a directory under /tmp, and stops what it starts.
set -euo pipefail
SECONDS_EACH=${FENCE_SECONDS:-15}
ROUNDS=${FENCE_ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/fence-ab.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir "$WORK/src-nofence"
(cd "$ROOT" && tar --exclude=.git -cf - .) | tar -xf - -C "$WORK/src-nofence"
f="$WORK/src-nofence/sql/schemachange.go"
grep -q '	if !e.fencesActive() {' "$f" || { echo "fence_ab: writeTable's fence check not found in $f" >&2; exit 1; }
# The first occurrence is writeTable's: write without the check.
sed -i '0,/	if !e.fencesActive() {/s//	if true { \/\/ fence_ab: no fence check/' "$f"
(cd "$ROOT" && go build -o "$WORK/kvnode-fence" ./cmd/kvnode)
(cd "$WORK/src-nofence" && go build -o "$WORK/kvnode-nofence" ./cmd/kvnode)

URL="postgresql://root@127.0.0.1:27258/defaultdb?sslmode=disable"
printf '\\set k random(1, 10000)\nUPSERT INTO kv VALUES (:k, :k)\n' >"$WORK/upsert.sql"
printf '\\set k random(1, 10000)\nUPDATE kv SET v = v + 1 WHERE k = :k\n' >"$WORK/update.sql"
declare -A tps
run() { # variant round
  local dir="$WORK/store-$1-$2"
  "$WORK/kvnode-$1" start-single-node --insecure --store="$dir" --listen-addr=127.0.0.1:27257 \
    --sql-addr=127.0.0.1:27258 --http-addr=127.0.0.1:27259 >"$dir.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do psql -qAt "$URL" -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
  psql -q "$URL" -c "CREATE TABLE kv (k INT PRIMARY KEY, v INT)"
  for s in $(seq 0 9); do
    psql -q "$URL" -c "INSERT INTO kv VALUES $(seq -s, $((s * 1000 + 1)) $((s * 1000 + 1000)) | sed 's/\([0-9]*\)/(\1,\1)/g')"
  done
  for script in upsert update; do
    local t
    t=$(pgbench -n -M prepared -c 8 -j 2 -T "$SECONDS_EACH" -f "$WORK/$script.sql" "$URL" 2>/dev/null | grep -oP 'tps = \K[0-9.]+' | head -1)
    echo "$1 round $2 $script: $t tps"
    tps[$1-$script]+="$t "
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
for r in $(seq 1 "$ROUNDS"); do run fence "$r"; run nofence "$r"; done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for script in upsert update; do
  a=$(median "${tps[fence-$script]}") b=$(median "${tps[nofence-$script]}")
  echo "$script: with the fence $a tps, without $b tps (medians of $ROUNDS): $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2fx", a / b}')"
done
