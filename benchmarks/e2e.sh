#!/usr/bin/env bash
# End to end: 10,000 clicks/s for 60 s through every role, one process each; accepted vs counted vs stored, freshness, ingest latency, CPU us per click by process
set -euo pipefail
# BENCH_BROKER=cluster runs it on a fresh Kafka-protocol cluster (the production engines' kfake), stopped when the
# benchmark ends; the default is the embedded broker.
case "${BENCH_BROKER:-embedded}" in
  embedded) exec dotnet "$BENCH_DLL" e2e "$@" ;;
  cluster) ;;
  *) echo "BENCH_BROKER must be embedded or cluster, not '$BENCH_BROKER'" >&2; exit 2 ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
start_fresh_cluster
dotnet "$BENCH_DLL" e2e "$@"
