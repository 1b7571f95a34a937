#!/usr/bin/env bash
# KafkaClicks developer entry point. Idempotent; usable as root on a fresh Debian 12 machine.
#
#   infra/dev.sh demo            install what is missing, start Postgres + Redis, build, migrate,
#                                run every role in one process with demo traffic (Ctrl-C stops it)
#   infra/dev.sh test [LANE...]  the same set-up, then the unit tests once and the integration and browser tests in each
#                                lane (embedded, timescale, cluster; default all three), the lanes at once
#                                (KAFKACLICKS_TEST_LANES_IN_TURN=1: one after another); prints "N passed, N failed[, N skipped]"
#   infra/dev.sh up|down|status  up: the plain PostgreSQL and Redis; down: those, the TimescaleDB server and the Kafka test cluster
#   infra/dev.sh bench NAME [--json]   run a benchmark (see benchmarks/README.md)
#   infra/dev.sh cli ARGS...     run the kafkaclicks command line with the local dev configuration (built first when
#                                it is missing or older than its sources)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
REDIS_PORT="${KAFKACLICKS_REDIS_PORT:-63799}"
PG_BIN="/usr/lib/postgresql/15/bin"
PG_SOCK="$LOCAL/run"
# Two local PostgreSQL servers: plain (the demo's and the first test lane's) and one with TimescaleDB preloaded.
# KAFKACLICKS_PG_FLAVOR picks the one that up/pg-stop/pg-start/cli talk to.
PG_FLAVOR="${KAFKACLICKS_PG_FLAVOR:-plain}"
case "$PG_FLAVOR" in
  plain) PG_PORT="${KAFKACLICKS_PG_PORT:-54329}"; PG_DATA="$LOCAL/pg"; PG_PRELOAD="" ;;
  timescale) PG_PORT="${KAFKACLICKS_TIMESCALE_PORT:-54339}"; PG_DATA="$LOCAL/pg-timescale"
    PG_PRELOAD="-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off" ;;
  *) echo "dev.sh: KAFKACLICKS_PG_FLAVOR must be plain or timescale" >&2; exit 2 ;;
esac
PG_LOG="$LOCAL/log/postgres-$PG_FLAVOR.log"
# The production engines for the timescale and cluster test lanes (TimescaleDB 2.28.3, a Kafka-protocol broker
# cluster); .ci/run points this at the copy beside the checkout.
SERVICES="${KAFKACLICKS_SERVICES:-$ROOT/../shared/services}"
KAFKA_DATA="$LOCAL/kafka-test"
KAFKA_PORTS="${KAFKACLICKS_KAFKA_PORTS:-39092,39093,39094}"
REDIS_PID="$LOCAL/run/redis.pid"
REDIS_LOG="$LOCAL/log/redis.log"
CONFIG="$LOCAL/kafkaclicks.json"
CLI_DLL="$ROOT/artifacts/cli/kafkaclicks.dll"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local missing=()
  [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  # The browser tests drive Debian's Chromium through Playwright, which downloads no browser of its own.
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v npm >/dev/null || missing+=(npm)
  # The observability test scrapes the product with a real Prometheus.
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v dotnet >/dev/null || die "the .NET 10 SDK is required (dotnet not on PATH)"
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# TimescaleDB must be installed before any PostgreSQL 15 server starts: its installer may upgrade the server package.
ensure_timescaledb() {
  [ -x "$SERVICES/timescaledb/install.sh" ] || return 0
  [ -f /usr/share/postgresql/15/extension/timescaledb.control ] && dpkg --compare-versions \
    "$(dpkg-query -W -f='${Version}' postgresql-15)" ge 15.20 && return 0
  if pg_running; then
    die "TimescaleDB must be installed before PostgreSQL starts: run 'infra/dev.sh down' first"
  fi
  log "installing TimescaleDB from $SERVICES/timescaledb"
  as_root "$SERVICES/timescaledb/install.sh" >&2
}

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }
redis_running() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; }

start_postgres() {
  mkdir -p "$LOCAL/log" "$PG_SOCK"
  chmod 755 "$LOCAL" "$LOCAL/log"
  chmod 777 "$PG_SOCK"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    log "initialising a private PostgreSQL cluster in $PG_DATA"
    mkdir -p "$PG_DATA"
    chown postgres:postgres "$PG_DATA"
    as_root runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" --auth=trust -U postgres -E UTF8 >/dev/null
  fi
  touch "$PG_LOG"; chown postgres:postgres "$PG_LOG"
  if pg_running; then return; fi
  log "starting PostgreSQL ($PG_FLAVOR) on 127.0.0.1:$PG_PORT"
  as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
    -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on $PG_PRELOAD" \
    start >/dev/null
  psql_admin -c "SELECT 1" >/dev/null
  psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = 'kafkaclicks'" | grep -q 1 \
    || psql_admin -c "CREATE DATABASE kafkaclicks" >/dev/null
}

psql_admin() { psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q "$@"; }

start_redis() {
  mkdir -p "$LOCAL/log" "$LOCAL/run"
  if redis_running; then return; fi
  log "starting Redis on 127.0.0.1:$REDIS_PORT"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" --maxmemory 1gb --maxmemory-policy volatile-ttl >/dev/null
  for _ in $(seq 1 50); do redis_running && return; sleep 0.1; done
  die "Redis did not start; see $REDIS_LOG"
}

start_kafka_cluster() {
  [ -x "$SERVICES/kafka/start-cluster.sh" ] || die "no Kafka cluster: $SERVICES/kafka/start-cluster.sh is missing (set KAFKACLICKS_SERVICES, or KAFKACLICKS_TEST_KAFKA to your own cluster)"
  # A fresh cluster per test run: tests name their topics uniquely, but old topics would only fill the disk.
  "$SERVICES/kafka/stop-cluster.sh" "$KAFKA_DATA" >/dev/null 2>&1 || true
  rm -rf "$KAFKA_DATA"
  log "starting a Kafka-protocol cluster on $KAFKA_PORTS"
  "$SERVICES/kafka/start-cluster.sh" "$KAFKA_DATA" "$KAFKA_PORTS"
}

stop_servers() {
  local flavor
  for flavor in plain timescale; do
    KAFKACLICKS_PG_FLAVOR=$flavor "$ROOT/infra/dev.sh" pg-down
  done
  if redis_running; then log "stopping Redis"; redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
  if [ -f "$KAFKA_DATA/kfake.pid" ] && [ -x "$SERVICES/kafka/stop-cluster.sh" ]; then
    log "stopping the Kafka test cluster"; "$SERVICES/kafka/stop-cluster.sh" "$KAFKA_DATA" >/dev/null 2>&1 || true
  fi
}

status() {
  if pg_running; then echo "postgres ($PG_FLAVOR): running on 127.0.0.1:$PG_PORT (data $PG_DATA)"; else echo "postgres ($PG_FLAVOR): stopped"; fi
  if redis_running; then echo "redis:    running on 127.0.0.1:$REDIS_PORT"; else echo "redis:    stopped"; fi
}

# Dev secrets are generated on first use, kept under the git-ignored .local folder, never committed.
ensure_config() {
  [ -f "$CONFIG" ] && return
  log "generating local dev secrets in $CONFIG"
  local key admin frontend demo
  key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
  admin="kc_admin_$(head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  frontend="kc_frontend_$(head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  demo="kc_adv_$(head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  umask 077
  cat > "$CONFIG" <<JSON
{
  "ConnectionStrings": {
    "Postgres": "Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=kafkaclicks;Maximum Pool Size=64",
    "Redis": "127.0.0.1:$REDIS_PORT,abortConnect=false"
  },
  "Ingest": {
    "Tokens": { "ActiveKeyId": "dev1", "Keys": { "dev1": "$key" } },
    "FrontendApiKeys": [ "$frontend" ]
  },
  "Query": { "AdminApiKeys": [ "$admin" ] },
  "Demo": { "AdvertiserApiKey": "$demo" }
}
JSON
}

build() {
  log "building (Release)"
  # Build output goes to stderr so that commands printing JSON (bench --json) keep stdout clean.
  dotnet build "$ROOT/KafkaClicks.sln" -c Release -nologo -v q -clp:ErrorsOnly >&2
  publish_cli --no-build
}

# Publishes the command line to artifacts/cli (building it unless given --no-build).
publish_cli() {
  dotnet publish "$ROOT/services/KafkaClicks.Cli/KafkaClicks.Cli.csproj" -c Release -nologo -v q -clp:ErrorsOnly \
    "$@" -o "$ROOT/artifacts/cli" >&2
  # An unchanged output keeps its old time: mark it as built from the current sources (see cli_stale).
  touch "$CLI_DLL"
}

# True when a source the command line is built from (C#, project files, SQL, schemas, settings) is newer than it.
cli_stale() {
  [ -f "$CLI_DLL" ] || return 0
  [ -n "$(find "$ROOT/Directory.Build.props" "$ROOT/Directory.Packages.props" "$ROOT/services" "$ROOT/streams" "$ROOT/schemas" \
    "$ROOT/infra/KafkaClicks.Broker" "$ROOT/infra/KafkaClicks.Migrations" "$ROOT/infra/sql" \
    \( -name bin -o -name obj \) -prune -o -newer "$CLI_DLL" -type f \
    \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' -o -name '*.sql' -o -name '*.avsc' -o -name '*.json' \) -print -quit)" ]
}

cli() {
  ensure_config
  if cli_stale; then log "building the command line (Release)"; publish_cli; fi
  KAFKACLICKS_CONFIG="$CONFIG" dotnet "$CLI_DLL" "$@"
}

setup() { ensure_packages; ensure_timescaledb; start_postgres; start_redis; ensure_config; build; }

# Runs the test projects matching $1 (a glob under tests/) with results in $2, only the tests matching the filter $3
# (dotnet test --filter); the environment says which lane.
test_projects() {
  local pattern="$1" results="$2" filter="${3:-}" rc=0 proj name
  mkdir -p "$results"
  for proj in "$ROOT"/tests/$pattern/*.csproj; do
    name=$(basename "$proj" .csproj)
    log "testing $name${LANE:+ (lane $LANE)}"
    dotnet test "$proj" -c Release --no-build -nologo ${filter:+--filter "$filter"} \
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" --results-directory "$results" \
      || rc=1
  done
  return $rc
}

# "passed failed skipped" summed over the trx files in $1.
count_results() {
  local passed=0 failed=0 total=0 executed=0 trx counters
  for trx in "$1"/*.trx; do
    [ -f "$trx" ] || continue
    counters=$(grep -o '<Counters [^>]*' "$trx")
    total=$((total + $(grep -o ' total="[0-9]*"' <<<"$counters" | grep -o '[0-9]*')))
    executed=$((executed + $(grep -o ' executed="[0-9]*"' <<<"$counters" | grep -o '[0-9]*')))
    passed=$((passed + $(grep -o ' passed="[0-9]*"' <<<"$counters" | grep -o '[0-9]*')))
    failed=$((failed + $(grep -o ' failed="[0-9]*"' <<<"$counters" | grep -o '[0-9]*')))
  done
  echo "$passed $failed $((total - executed))"
}

# The failed tests in the trx files of $1 ("lane: test: first line of its message"), so that the end of a long run
# names them without a search through its output.
failed_tests() {
  local trx
  for trx in "$1"/*.trx; do
    [ -f "$trx" ] || continue
    LANE_NAME="$(basename "$1")" perl -0ne 'while (/<UnitTestResult [^>]*?testName="([^"]*)"[^>]*?outcome="Failed".*?(?:<Message>([^\n<]*)|<\/UnitTestResult>)/sg) { my ($n, $m) = ($1, $2 // ""); for ($n, $m) { s/&quot;/"/g; s/&lt;/</g; s/&gt;/>/g; s/&apos;/\x27/g; s/&amp;/&/g; } print "FAILED $ENV{LANE_NAME}: $n: $m\n"; }' "$trx" || true
  done
}

# "(a)&(b)" for two dotnet test filters, either of which may be empty.
and_filter() {
  if [ -n "$1" ] && [ -n "$2" ]; then echo "($1)&($2)"; else echo "$1$2"; fi
}

# Lanes: the integration and browser tests run once per lane.
#   embedded   librdkafka's mock broker in process, plain PostgreSQL
#   timescale  the embedded broker, PostgreSQL with TimescaleDB preloaded
#   cluster    a 3-broker Kafka-protocol cluster (transactions, compaction, admin APIs; KAFKACLICKS_TEST_KAFKA to use
#              your own), exactly-once aggregator, replication factor 3, on TimescaleDB
# Tests that only a Kafka cluster can run carry [Trait("Lane", "cluster")]: the embedded lanes leave them out. Tests
# that touch no database carry [Trait("Storage", "none")]: the timescale lane, which differs from the embedded one only
# in its database, leaves them out.
run_lane() {
  local lane="$1" results="$2" rc=0 kafka="" postgres_port filter="Lane!=cluster"
  case "$lane" in
    embedded) postgres_port=$(KAFKACLICKS_PG_FLAVOR=plain "$ROOT/infra/dev.sh" pg-port) ;;
    timescale) postgres_port=$(KAFKACLICKS_PG_FLAVOR=timescale "$ROOT/infra/dev.sh" pg-port); filter="Lane!=cluster&Storage!=none" ;;
    cluster) postgres_port=$(KAFKACLICKS_PG_FLAVOR=timescale "$ROOT/infra/dev.sh" pg-port) ;;
    *) die "unknown test lane '$lane' (embedded, timescale, cluster)" ;;
  esac
  if [ "$lane" != embedded ]; then KAFKACLICKS_PG_FLAVOR=timescale "$ROOT/infra/dev.sh" pg-start; fi
  if [ "$lane" = cluster ]; then
    filter=""
    kafka="${KAFKACLICKS_TEST_KAFKA:-}"
    if [ -z "$kafka" ]; then
      kafka=$(start_kafka_cluster) && [ -n "$kafka" ] || die "the Kafka test cluster did not start"
      export KAFKACLICKS_TEST_KAFKA_PIDFILE="$KAFKA_DATA/kfake.pid"
    fi
  fi
  LANE="$lane" \
  KAFKACLICKS_TEST_LANE="$lane" \
  KAFKACLICKS_TEST_POSTGRES="${KAFKACLICKS_TEST_POSTGRES_OVERRIDE:-Host=127.0.0.1;Port=$postgres_port;Username=postgres;Database=postgres;Maximum Pool Size=50}" \
  KAFKACLICKS_TEST_PG_OPTIONS="$([ "$lane" = embedded ] || echo "-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off")" \
  KAFKACLICKS_TEST_KAFKA="$kafka" \
    test_projects 'KafkaClicks.[IB]*Tests' "$results" "$(and_filter "$filter" "${KAFKACLICKS_TEST_FILTER:-}")" || rc=1
  return $rc
}

run_tests() {
  local lanes=("$@")
  [ ${#lanes[@]} -gt 0 ] || lanes=(embedded timescale cluster)
  local lane
  for lane in "${lanes[@]}"; do
    if [ "$lane" != embedded ] && [ -z "${KAFKACLICKS_TEST_KAFKA:-}" ] && [ ! -d "$SERVICES" ]; then
      die "lane $lane needs the production engines in $SERVICES (TimescaleDB, the Kafka cluster); set KAFKACLICKS_SERVICES, or run 'infra/dev.sh test embedded'"
    fi
  done
  setup
  KAFKACLICKS_PG_FLAVOR=timescale "$ROOT/infra/dev.sh" pg-start
  local results="$ROOT/artifacts/test-results" rc=0
  rm -rf "$results"; mkdir -p "$results"
  export KAFKACLICKS_TEST_REDIS="127.0.0.1:$REDIS_PORT"
  test_projects 'KafkaClicks.UnitTests' "$results/unit" "${KAFKACLICKS_TEST_FILTER:-}" || rc=1
  if [ "${KAFKACLICKS_TEST_LANES_IN_TURN:-}" = 1 ] || [ ${#lanes[@]} -eq 1 ]; then
    for lane in "${lanes[@]}"; do
      run_lane "$lane" "$results/$lane" || rc=1
    done
  else
    # The lanes at once, each line of output tagged with its lane: they share no server a test stops or fills (each
    # lane has its own PostgreSQL server or databases of its own, its own brokers; Redis keys are per impression), and
    # a lane spends most of its time waiting on clocks (windows, grace, timeouts), not on the processors.
    # Each lane in a process group of its own (set -m), so that Ctrl-C or SIGTERM stops every lane's tests and servers.
    local pids=()
    set -m
    for lane in "${lanes[@]}"; do
      ( set -o pipefail; run_lane "$lane" "$results/$lane" 2>&1 | sed -u "s/^/[$lane] /" ) &
      pids+=($!)
    done
    set +m
    trap 'for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done; exit 130' INT TERM
    for pid in "${pids[@]}"; do
      wait "$pid" || rc=1
    done
    trap - INT TERM
  fi

  local passed=0 failed=0 skipped=0 p f s dir expected produced
  for dir in "$results"/*/; do
    failed_tests "${dir%/}"
  done
  for dir in "$results"/*/; do
    read -r p f s < <(count_results "$dir")
    if [ "$s" -gt 0 ]; then echo "$(basename "$dir"): $p passed, $f failed, $s skipped"; else echo "$(basename "$dir"): $p passed, $f failed"; fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  done
  expected=$((1 + ${#lanes[@]} * $(ls "$ROOT"/tests/KafkaClicks.[IB]*Tests/*.csproj | wc -l)))
  produced=$(find "$results" -name '*.trx' | wc -l)
  if [ "$produced" -lt "$expected" ]; then
    echo "dev.sh: $((expected - produced)) test project run(s) produced no results (crash or build failure)" >&2; rc=1
  fi
  [ "$failed" -eq 0 ] || rc=1
  [ "$passed" -gt 0 ] || rc=1
  if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
  return $rc
}

demo() {
  setup
  log "migrating"
  cli migrate
  log "starting every role on the embedded broker with demo traffic (Ctrl-C stops it)"
  exec env KAFKACLICKS_CONFIG="$CONFIG" dotnet "$CLI_DLL" up --demo
}

bench() {
  local name="${1:-}"; shift || true
  local dir="$ROOT/benchmarks"
  if [ -z "$name" ] || [ ! -x "$dir/$name.sh" ]; then
    echo "usage: infra/dev.sh bench NAME [--json]" >&2
    echo "benchmarks:" >&2
    for s in "$dir"/*.sh; do [ -f "$s" ] && echo "  $(basename "$s" .sh)  $(sed -n 2p "$s" | sed 's/^# *//')" >&2; done
    exit 2
  fi
  setup
  BENCH_DLL="$ROOT/benchmarks/KafkaClicks.Benchmarks/bin/Release/net10.0/kafkaclicks-bench.dll" \
    KAFKACLICKS_CONFIG="$CONFIG" CLI_DLL="$CLI_DLL" PG_PORT="$PG_PORT" REDIS_PORT="$REDIS_PORT" KAFKACLICKS_SERVICES="$SERVICES" \
    "$dir/$name.sh" "$@"
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  demo) demo ;;
  test) run_tests "$@" ;;
  up) ensure_packages; ensure_timescaledb; start_postgres; start_redis; ensure_config; status ;;
  down) stop_servers ;;
  status) status ;;
  build) build ;;
  cli) cli "$@" ;;
  bench) bench "$@" ;;
  pg-stop) pg_running && as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null || true ;;
  pg-start) start_postgres ;;
  pg-down) if pg_running; then log "stopping PostgreSQL ($PG_FLAVOR)"; as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null; fi ;;
  pg-port) echo "$PG_PORT" ;;
  help|-h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "dev.sh: unknown command '$cmd'" >&2; sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
