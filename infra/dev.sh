#!/usr/bin/env bash
# KafkaClicks developer entry point. Idempotent; usable as root on a fresh Debian 12 machine.
#
#   infra/dev.sh demo            install what is missing, start Postgres + Redis, build, migrate,
#                                run every role in one process with demo traffic (Ctrl-C stops it)
#   infra/dev.sh test            the same set-up, then every test project; prints "N passed, N failed[, N skipped]"
#   infra/dev.sh up|down|status  the local PostgreSQL and Redis servers
#   infra/dev.sh bench NAME [--json]   run a benchmark (see benchmarks/README.md)
#   infra/dev.sh cli ARGS...     run the built kafkaclicks command line with the local dev configuration
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
PG_PORT="${KAFKACLICKS_PG_PORT:-54329}"
REDIS_PORT="${KAFKACLICKS_REDIS_PORT:-63799}"
PG_BIN="/usr/lib/postgresql/15/bin"
PG_DATA="$LOCAL/pg"
PG_SOCK="$LOCAL/run"
PG_LOG="$LOCAL/log/postgres.log"
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
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
    -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB -c fsync=on -c synchronous_commit=on" \
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

stop_servers() {
  if pg_running; then log "stopping PostgreSQL"; as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null; fi
  if redis_running; then log "stopping Redis"; redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true; fi
}

status() {
  if pg_running; then echo "postgres: running on 127.0.0.1:$PG_PORT (data $PG_DATA)"; else echo "postgres: stopped"; fi
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
  dotnet publish "$ROOT/services/KafkaClicks.Cli/KafkaClicks.Cli.csproj" -c Release -nologo -v q -clp:ErrorsOnly \
    --no-build -o "$ROOT/artifacts/cli" >/dev/null
}

cli() { KAFKACLICKS_CONFIG="$CONFIG" dotnet "$CLI_DLL" "$@"; }

setup() { ensure_packages; start_postgres; start_redis; ensure_config; build; }

run_tests() {
  setup
  local results="$ROOT/artifacts/test-results" rc=0
  rm -rf "$results"; mkdir -p "$results"
  export KAFKACLICKS_TEST_POSTGRES="Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Database=postgres;Maximum Pool Size=50"
  export KAFKACLICKS_TEST_REDIS="127.0.0.1:$REDIS_PORT"
  export KAFKACLICKS_TEST_PG_CTL="$ROOT/infra/dev.sh"
  for proj in "$ROOT"/tests/*/*.csproj; do
    local name; name=$(basename "$proj" .csproj)
    log "testing $name"
    dotnet test "$proj" -c Release --no-build -nologo \
      --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" --results-directory "$results" \
      || rc=1
  done
  local passed=0 failed=0 skipped=0 total=0 executed=0 p f t e
  for trx in "$results"/*.trx; do
    [ -f "$trx" ] || continue
    t=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' total="[0-9]*"' | grep -o '[0-9]*')
    e=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' executed="[0-9]*"' | grep -o '[0-9]*')
    p=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' passed="[0-9]*"' | grep -o '[0-9]*')
    f=$(grep -o '<Counters [^>]*' "$trx" | grep -o ' failed="[0-9]*"' | grep -o '[0-9]*')
    total=$((total + t)); executed=$((executed + e)); passed=$((passed + p)); failed=$((failed + f))
  done
  skipped=$((total - executed))
  local projects; projects=$(ls "$ROOT"/tests/*/*.csproj | wc -l)
  if [ "$(ls "$results"/*.trx 2>/dev/null | wc -l)" -lt "$projects" ]; then
    echo "dev.sh: a test project produced no results (crash or build failure)" >&2; rc=1
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
    KAFKACLICKS_CONFIG="$CONFIG" CLI_DLL="$CLI_DLL" PG_PORT="$PG_PORT" REDIS_PORT="$REDIS_PORT" "$dir/$name.sh" "$@"
}

cmd="${1:-help}"; shift || true
case "$cmd" in
  demo) demo ;;
  test) run_tests ;;
  up) ensure_packages; start_postgres; start_redis; ensure_config; status ;;
  down) stop_servers ;;
  status) status ;;
  build) build ;;
  cli) cli "$@" ;;
  bench) bench "$@" ;;
  pg-stop) pg_running && as_root runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w stop >/dev/null || true ;;
  pg-start) start_postgres ;;
  help|-h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "dev.sh: unknown command '$cmd'" >&2; sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
