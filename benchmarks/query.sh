#!/usr/bin/env bash
# Query: 32 clients, 30 s of mixed queries over 10,000,000 minute rows (seeded once into kc_bench_query), cache off then on
set -euo pipefail
exec dotnet "$BENCH_DLL" query "$@"
