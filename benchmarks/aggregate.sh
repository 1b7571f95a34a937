#!/usr/bin/env bash
# Aggregate: the Streamiz topology over preloaded raw clicks vs a plain consumer reading the same topic
set -euo pipefail
exec dotnet "$BENCH_DLL" aggregate "$@"
