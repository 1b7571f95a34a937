#!/usr/bin/env bash
# Scale: every query route at 10,000,000 ads (seeded once into kc_bench_scale) under a live 10,000 clicks/s write load and the rollup refresh, vs the 100,000-ad query seed
set -euo pipefail
exec dotnet "$BENCH_DLL" scale "$@"
