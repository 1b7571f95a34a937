#!/usr/bin/env bash
# End to end: 10,000 clicks/s for 60 s through every role; accepted vs counted, freshness, ingest latency
set -euo pipefail
exec dotnet "$BENCH_DLL" e2e "$@"
