#!/usr/bin/env bash
# Reconcile: events/s and peak RSS recounting 1,000,000 (embedded broker) and 10,000,000 (Kafka cluster) raw clicks vs one in-memory set and a plain consumer
set -euo pipefail
# The 10,000,000-click run needs a real cluster (the embedded broker keeps 5 MiB per partition): a fresh one, stopped
# when the benchmark ends.
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
start_fresh_cluster
dotnet "$BENCH_DLL" reconcile "$@"
