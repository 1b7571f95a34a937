#!/usr/bin/env bash
# Sink: upsert 1,000,000 minute rows vs a raw binary COPY baseline
set -euo pipefail
exec dotnet "$BENCH_DLL" sink "$@"
