#!/usr/bin/env bash
# Donations bench (benches/donations/main.rs): Midtrans notification acknowledgement latency
# against GET /healthz on the same server in the same run (their ratio), and the time from a
# payment at the local fake Midtrans to the donation being `completed`.
#
#   benches/donations/run.sh            # 300 notifications, 100 payments
#   BENCH_N=1000 benches/donations/run.sh
#
# Needs PostgreSQL and Redis (scripts/setup.sh); uses a throwaway database and Redis prefix.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DATABASE_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
export RUST_LOG=${RUST_LOG:-warn}
exec cargo bench --locked --bench donations "$@"
