#!/usr/bin/env bash
# Reconcile: recount 1,000,000 raw clicks and correct the database vs a plain consumer reading the same topic
set -euo pipefail
exec dotnet "$BENCH_DLL" reconcile "$@"
