#!/usr/bin/env bash
# End to end: 10,000 clicks/s for 60 s through every role, one process each; accepted vs counted vs stored, freshness, ingest latency, CPU us per click by process
set -euo pipefail
exec dotnet "$BENCH_DLL" e2e "$@"
