#!/usr/bin/env bash
# Reconcile: events/s and peak RSS recounting 1,000,000 (embedded broker) and 10,000,000 (Kafka cluster) raw clicks vs one in-memory set and a plain consumer
set -euo pipefail
# The 10,000,000-click run needs a real cluster (the embedded broker keeps 5 MiB per partition): a fresh one on
# KAFKACLICKS_KAFKA_PORTS (dev.sh's test cluster ports), stopped when the benchmark ends.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
services="${KAFKACLICKS_SERVICES:?run it through infra/dev.sh bench reconcile, which names the production engines}"
data="$root/.local/kafka-bench"
"$services/kafka/stop-cluster.sh" "$data" >/dev/null 2>&1 || true
rm -rf "$data"
BENCH_KAFKA=$("$services/kafka/start-cluster.sh" "$data" "${KAFKACLICKS_KAFKA_PORTS:-39092,39093,39094}")
trap '"$services/kafka/stop-cluster.sh" "$data" >/dev/null 2>&1 || true; rm -rf "$data"' EXIT
BENCH_KAFKA="$BENCH_KAFKA" dotnet "$BENCH_DLL" reconcile "$@"
