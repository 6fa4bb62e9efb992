#!/usr/bin/env bash
# Abuse bench: each scenario against a fresh real `siaran serve` (release build); memory growth
# and /healthz p99 before and during, and for RTMP the time until a real publish is live.
#   scripts/bench.sh abuse [--only slowloris,hls,register,rtmp,overlay] [--scale 0.1] [--seconds 30]
#                          [--slowloris 5000] [--hls-readers 1000] [--registers 2000]
#                          [--rtmp-idle 256] [--overlay 20000]
# Needs PostgreSQL (a role with CREATEDB: the bench creates and drops its own database), Redis and
# ffmpeg, as `scripts/setup.sh` provides. Figures are only worth comparing on an idle machine;
# the load is printed before and after.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DATABASE_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
echo "before: $(uptime)"
cargo bench --locked --bench abuse -- "$@"
echo "after:  $(uptime)"
