#!/usr/bin/env bash
# scripts/test.sh: kvnode's whole test suite, the one command a developer and CI run.
#
#   ./scripts/test.sh                      everything: gofmt, vet, staticcheck, build, go test -race
#   ./scripts/test.sh -run TestFoo -v      extra arguments go to `go test`
#   PKGS="./sql/... ./kv/..." ./scripts/test.sh    only these packages (every step)
#   KVNODE_LONG=1 ./scripts/test.sh        also the long scenarios (build tag `long`)
#
# Environment:
#   PKGS               package patterns for every step (default ./...)
#   KVNODE_LONG=1      run the long scenarios: passes `-tags long` to go test and exports
#                      KVNODE_LONG=1 so tests can read it (the default suite skips them)
#   TEST_TIMEOUT       go test -timeout (default 25m; per test binary)
#   KVNODE_NO_INSTALL=1  never install anything (no root, no network): missing tools are an error
#
# What it installs when missing (a fresh CI machine has Go and gcc, not these):
#   psql         Debian's postgresql-client, through apt-get (as root, or with sudo -n)
#   postgresql   Debian's PostgreSQL server (initdb, postgres under /usr/lib/postgresql/*/bin):
#                server/pgcompare_test.go compares kvnode's catalog answers with a real one's
#   python3-psycopg2, python3-psycopg, python3-sqlalchemy, python3-asyncpg, ruby-pg
#                Debian's drivers and ORM, for the real-client transaction tests
#                (server/txn_clients_test.go), run with Debian's /usr/bin/python3
#   python3-alembic  Debian's Alembic, for what migration tools send
#                (server/migration_tools_test.go)
#   java, libpostgresql-jdbc-java   the JDBC driver for the same tests
#   node, npm, node-postgres   npm's pg (pinned) into $KVNODE_NPM_DIR (default ~/.cache/kvnode-npm),
#                for the same tests
#   chromium     Debian's chromium, the same way: the status page's browser tests drive it
#                headless (cmd/kvnode/console_e2e_test.go); their screenshots go to
#                $KVNODE_ARTIFACTS (default: artifacts/ in the repository, ignored by git)
#   staticcheck  honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION into $(go env GOPATH)/bin
#
# Steps run in order and the first failure stops the run. Vet and staticcheck always see the
# files of the `long` tag, so the long scenarios keep compiling even when they do not run.
# The output ends with go test's own result lines (repeated after the total time), which CI reads.
set -euo pipefail

# Staticcheck 2026.2.2: supports Go 1.26 (and 1.27) code. Check newer ones with
# `go list -m -versions honnef.co/go/tools`.
STATICCHECK_VERSION=v0.8.2

cd "$(dirname "$0")/.."

PKGS=${PKGS:-./...}
read -r -a pkgs <<<"$PKGS"
TEST_TIMEOUT=${TEST_TIMEOUT:-25m}

start=$SECONDS
current_step="setup"
finished=""

elapsed() {
  local s=$((SECONDS - start))
  printf '%dm%02ds' $((s / 60)) $((s % 60))
}
step() {
  current_step=$1
  printf '\n==== %s  [%s]\n' "$1" "$(elapsed)"
}
# shellcheck disable=SC2317 # invoked by the trap
on_exit() {
  local rc=$?
  if [[ -z $finished ]]; then
    if ((rc != 0)); then
      printf '\n==== FAILED at step "%s" (exit %d); total time %s\n' "$current_step" "$rc" "$(elapsed)"
    fi
  fi
}
trap on_exit EXIT

# as_root runs a command as root: directly if we are root, else with sudo -n (never prompts).
as_root() {
  if [[ $(id -u) == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "need root to run: $*" >&2
    return 1
  fi
}

# install_deb COMMAND PACKAGE: make COMMAND available, installing Debian's PACKAGE if it is
# missing (apt-get update runs once per script run).
apt_updated=
install_deb() {
  local cmd=$1 pkg=$2
  if command -v "$cmd" >/dev/null 2>&1; then
    echo "$cmd present: $("$cmd" --version 2>/dev/null | head -1)"
    return
  fi
  if [[ ${KVNODE_NO_INSTALL:-} == 1 ]]; then
    echo "$cmd is missing and KVNODE_NO_INSTALL=1: install Debian's $pkg" >&2
    exit 1
  fi
  echo "$cmd missing: installing Debian's $pkg"
  if [[ -z $apt_updated ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  echo "installed: $("$cmd" --version 2>/dev/null | head -1)"
}

step "install: psql"
install_deb psql postgresql-client

# install_deb_pkg PACKAGE: install Debian's PACKAGE (for packages that bring files, not a command).
install_deb_pkg() {
  local pkg=$1
  if [[ ${KVNODE_NO_INSTALL:-} == 1 ]]; then
    echo "$pkg is missing and KVNODE_NO_INSTALL=1: install it" >&2
    exit 1
  fi
  if [[ -z $apt_updated ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
}

# install_py MODULE PACKAGE: make Debian's python3 import MODULE, installing Debian's PACKAGE
# if it cannot (the client tests run /usr/bin/python3, not a python3 earlier on PATH).
install_py() {
  local mod=$1 pkg=$2
  if /usr/bin/python3 -c "import $mod" >/dev/null 2>&1; then
    echo "python3 $mod present"
    return
  fi
  if [[ ${KVNODE_NO_INSTALL:-} == 1 ]]; then
    echo "python3 module $mod is missing and KVNODE_NO_INSTALL=1: install Debian's $pkg" >&2
    exit 1
  fi
  echo "python3 $mod missing: installing Debian's $pkg"
  if [[ -z $apt_updated ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
  /usr/bin/python3 -c "import $mod"
}

step "install: PostgreSQL server"
# The catalog comparison (server/pgcompare_test.go) runs the same clients against a real
# PostgreSQL: the server binaries of Debian's postgresql, under /usr/lib/postgresql/*/bin.
if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  echo "PostgreSQL server present: $(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -1)"
else
  echo "PostgreSQL server missing: installing Debian's postgresql"
  install_deb_pkg postgresql
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
fi

step "install: Python drivers (psycopg2, psycopg 3, SQLAlchemy, asyncpg) and Alembic"
install_py psycopg2 python3-psycopg2
install_py psycopg python3-psycopg
install_py sqlalchemy python3-sqlalchemy
install_py asyncpg python3-asyncpg
install_py alembic python3-alembic

step "install: ruby-pg"
if ruby -e 'require "pg"' >/dev/null 2>&1; then
  echo "ruby-pg present"
else
  install_deb_pkg ruby-pg
  ruby -e 'require "pg"'
fi
step "install: Java and the PostgreSQL JDBC driver"
install_deb java default-jre-headless
if [[ ! -e /usr/share/java/postgresql.jar ]]; then
  install_deb_pkg libpostgresql-jdbc-java
fi
echo "JDBC driver: /usr/share/java/postgresql.jar"

step "install: node-postgres"
install_deb node nodejs
install_deb npm npm
# npm's pg, pinned, into a cache outside the tree; the client tests find it through
# KVNODE_NODE_MODULES. Installed once per machine (the npm registry is reachable here).
NODE_PG_VERSION=8.23.1
npm_dir=${KVNODE_NPM_DIR:-$HOME/.cache/kvnode-npm}
if [[ -e $npm_dir/node_modules/pg/package.json ]] && grep -q "\"version\": \"$NODE_PG_VERSION\"" "$npm_dir/node_modules/pg/package.json"; then
  echo "node-postgres $NODE_PG_VERSION present in $npm_dir"
elif [[ ${KVNODE_NO_INSTALL:-} == 1 ]]; then
  echo "node-postgres is missing and KVNODE_NO_INSTALL=1: npm install --prefix $npm_dir pg@$NODE_PG_VERSION" >&2
  exit 1
else
  mkdir -p "$npm_dir"
  npm install --no-save --no-audit --no-fund --prefix "$npm_dir" "pg@$NODE_PG_VERSION" >/dev/null
  echo "installed: node-postgres $NODE_PG_VERSION in $npm_dir"
fi
export KVNODE_NODE_MODULES=$npm_dir/node_modules
# The real-client tests fail, rather than skip, when a client is missing.
export KVNODE_REQUIRE_CLIENTS=1

step "install: chromium"
install_deb chromium chromium
# The browser tests fail, rather than skip, when the browser is missing.
export KVNODE_REQUIRE_BROWSER=1
export KVNODE_ARTIFACTS=${KVNODE_ARTIFACTS:-$PWD/artifacts}
mkdir -p "$KVNODE_ARTIFACTS"
echo "test artifacts (screenshots): $KVNODE_ARTIFACTS"

step "install: staticcheck $STATICCHECK_VERSION"
gobin="$(go env GOPATH | cut -d: -f1)/bin"
export PATH="$gobin:$PATH"
if staticcheck -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
  echo "staticcheck present: $(staticcheck -version)"
elif [[ ${KVNODE_NO_INSTALL:-} == 1 ]]; then
  echo "staticcheck $STATICCHECK_VERSION is missing and KVNODE_NO_INSTALL=1" >&2
  exit 1
else
  GOBIN="$gobin" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
  echo "installed: $(staticcheck -version)"
fi

echo "go: $(go version)"

step "gofmt"
# The .go files of every package directory that PKGS names (not testdata, which may hold
# deliberately malformed inputs).
mapfile -t dirs < <(go list -e -f '{{.Dir}}' "${pkgs[@]}")
files=()
for d in "${dirs[@]}"; do
  for f in "$d"/*.go; do
    [[ -e $f ]] && files+=("$f")
  done
done
unformatted=
if ((${#files[@]})); then
  unformatted=$(gofmt -l "${files[@]}")
fi
if [[ -n $unformatted ]]; then
  echo "these files are not gofmt-formatted (run: gofmt -w FILE):"
  echo "${unformatted//"$PWD/"/  }"
  exit 1
fi
echo "${#files[@]} files formatted"

step "go vet"
# vet checks the format strings of fmt's functions by itself; those of the
# error constructors are named here (it does not infer them through
# cockroachdb/errors' depth-taking helpers): a %d given a string reached a
# COPY error message in session 14.
printf_funcs=(
  github.com/kvnode/kvnode/sql/pgerror.Newf
  github.com/kvnode/kvnode/sql/pgerror.WithHintf
  github.com/cockroachdb/errors.Newf
  github.com/cockroachdb/errors.NewWithDepthf
  github.com/cockroachdb/errors.Wrapf
  github.com/cockroachdb/errors.WithHintf
  github.com/cockroachdb/errors.WithDetailf
  github.com/cockroachdb/errors.AssertionFailedf
  github.com/cockroachdb/errors.Errorf
)
go vet -tags long -printf.funcs="$(IFS=,; echo "${printf_funcs[*]}")" "${pkgs[@]}"

step "staticcheck"
staticcheck -tags long "${pkgs[@]}"

step "go build"
go build "${pkgs[@]}"

testflags=(-race -count=1 -timeout "$TEST_TIMEOUT")
if [[ ${KVNODE_LONG:-} == 1 ]]; then
  export KVNODE_LONG=1
  testflags+=(-tags long)
  step "go test (with the long scenarios: -tags long, KVNODE_LONG=1)"
else
  step "go test (default suite; KVNODE_LONG=1 adds the long scenarios)"
fi
testcmd=(go test "${testflags[@]}" "$@" "${pkgs[@]}")
echo "${testcmd[*]}"
log=$(mktemp "${TMPDIR:-/tmp}/kvnode-test.XXXXXX")
set +e
"${testcmd[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

finished=1
if ((rc == 0)); then
  printf '\n==== all steps passed; total time %s\n' "$(elapsed)"
else
  printf '\n==== go test failed (exit %d); total time %s\n' "$rc" "$(elapsed)"
fi
# Repeat go test's result lines so the output ends with them.
echo "==== go test results (repeated from above)"
grep -E '^(ok|FAIL)([[:space:]]|$)|^--- FAIL' "$log" || true
rm -f "$log"
exit "$rc"
