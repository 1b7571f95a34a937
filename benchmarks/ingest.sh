#!/usr/bin/env bash
# Ingest: wrk replaying distinct signed clicks over 10,000,000 ads against the ingest role vs a bare 302 endpoint, then both at a fixed 10,000/s
set -euo pipefail
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
exec dotnet "$BENCH_DLL" ingest "$@"
