#!/usr/bin/env bash
# End to end: 10,000 clicks/s for 60 s through every role, one process each; accepted vs counted vs stored, freshness, ingest latency, CPU us per click by process
set -euo pipefail
# BENCH_BROKER=cluster runs it on a fresh Kafka-protocol cluster (the production engines' kfake, on
# KAFKACLICKS_KAFKA_PORTS), stopped when the benchmark ends; the default is the embedded broker.
case "${BENCH_BROKER:-embedded}" in
  embedded) exec dotnet "$BENCH_DLL" e2e "$@" ;;
  cluster) ;;
  *) echo "BENCH_BROKER must be embedded or cluster, not '$BENCH_BROKER'" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
services="${KAFKACLICKS_SERVICES:?run it through infra/dev.sh bench e2e, which names the production engines}"
data="$root/.local/kafka-bench"
"$services/kafka/stop-cluster.sh" "$data" >/dev/null 2>&1 || true
rm -rf "$data"
BENCH_KAFKA=$("$services/kafka/start-cluster.sh" "$data" "${KAFKACLICKS_KAFKA_PORTS:-39092,39093,39094}")
trap '"$services/kafka/stop-cluster.sh" "$data" >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
BENCH_KAFKA="$BENCH_KAFKA" BENCH_KAFKA_PIDFILE="$data/kfake.pid" dotnet "$BENCH_DLL" e2e "$@"
