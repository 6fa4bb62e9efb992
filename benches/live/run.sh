#!/usr/bin/env bash
# Live fan-out bench: N sockets on one stream of a real `siaran serve` (release build) against a
# bare in-memory WebSocket broadcaster, same generator, same run; then comment posting.
#   scripts/bench.sh live [--sizes 1000,5000,10000] [--rate 10] [--seconds 15]
#                         [--post-rate 2000] [--post-seconds 10]
# Needs PostgreSQL (a role with CREATEDB: the bench creates and drops its own database) and Redis,
# as `scripts/setup.sh` provides. The machine's load is printed before and after: compare ratios
# from one run, not absolute figures across runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DATABASE_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
echo "before: $(uptime)"
cargo bench --locked --bench live -- "$@"
echo "after:  $(uptime)"
