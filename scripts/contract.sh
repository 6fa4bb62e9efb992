#!/usr/bin/env bash
# The API contract under fuzzing: schemathesis (pinned, in .venv-tools/) generates requests from
# /api/openapi.json and sends them to a real `siaran serve` — its own database seeded with the
# demo data, the shared Redis under a prefix of its own, the fake Midtrans (its own program) — with a real
# access token. Checks: no 5xx, every status and content type documented, every body matching
# its schema; the stateful phase chains operations through the ids they return.
#
#   scripts/contract.sh [SECONDS]     time budget (default 150: `make test`; `make fuzz` runs longer)
#
# Exits non-zero on any failure; the report (JUnit, and the cassette of every request) is in
# artifacts/contract/.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;34m[contract]\033[0m %s\n' "$*"; }

seconds=${1:-${CONTRACT_SECONDS:-150}}
# Access tokens live 15 minutes: longer runs are cut into chunks, each with a fresh login.
chunk_max=600

scripts/tools.sh
export DATABASE_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
cargo build --locked --quiet -p siaran -p fake-midtrans --bins
bin=target/debug/siaran

server_url=${DATABASE_URL%/*}
db_name="siaran_contract_$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -X -q "$server_url/postgres" -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -X -q -v ON_ERROR_STOP=1 "$server_url/postgres" -c "CREATE DATABASE $db_name" >/dev/null
export DATABASE_URL="$server_url/$db_name"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"

export SIARAN_ENV=development
export SIARAN_JWT_SECRET="contract-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export SIARAN_REDIS_PREFIX="siaran-contract-$$"
export SIARAN_HTTP_ADDR="127.0.0.1:$port" SIARAN_RTMP_ADDR="127.0.0.1:0"
export SIARAN_HLS_DIR="$work/hls" SIARAN_MAIL_DIR="$work/mail" SIARAN_FRONTEND_DIR="$work/no-frontend"
export SIARAN_WORKERS=1 SIARAN_LOG_FORMAT=json RUST_LOG=${RUST_LOG:-warn}
# The seeded streams are marked live without a publisher behind them; nobody may end them.
export SIARAN_INGEST_STALE_SECS=100000
# The fuzzer is one client sending thousands of requests: limits would answer most of them 429
# (documented, but no deeper). Their behaviour is tested in tests/api/limits.rs.
for limit in REGISTER_ADDRESS LOGIN_ACCOUNT LOGIN_ADDRESS REFRESH_ACCOUNT REFRESH_ADDRESS \
             DONATION_ACCOUNT DONATION_ADDRESS; do
  export "SIARAN_LIMIT_$limit=1000000/1m"
done
export MIDTRANS_SERVER_KEY="SB-Mid-server-contract-$$" MIDTRANS_CLIENT_KEY="SB-Mid-client-contract-$$"

say "database $db_name: migrating and seeding the demo data"
"$bin" migrate >/dev/null
"$bin" generate-dummy-data >/dev/null
# The fuzzer's account: a streamer (streams, donations received, payout account) who is also
# staff (the admin routes; staff cannot deactivate themselves). Every streamer's newest stream
# is live, so donations and comments get past "not live".
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<'SQL'
UPDATE users SET is_staff = true WHERE username = 'andi';
UPDATE streams SET is_active = true, started_at = now(), ended_at = NULL
 WHERE id IN (SELECT DISTINCT ON (streamer_id) id FROM streams ORDER BY streamer_id, created_at DESC);
SQL

mkdir -p "$work/hls" "$work/mail" artifacts/contract
target/debug/fake-midtrans --addr 127.0.0.1:0 --addr-file "$work/sandbox.addr" \
  --notification-url "$base/api/payments/midtrans/notification" >"$work/sandbox.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/sandbox.addr" ] && break; sleep 0.1; done
[ -s "$work/sandbox.addr" ] || { cat "$work/sandbox.log" >&2; echo "the fake Midtrans did not start" >&2; exit 1; }
export MIDTRANS_SNAP_URL="http://$(cat "$work/sandbox.addr")" MIDTRANS_API_URL="http://$(cat "$work/sandbox.addr")"

"$bin" serve >artifacts/contract/server.log 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -fsS "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$base/healthz" >/dev/null || { tail -n 50 artifacts/contract/server.log >&2; exit 1; }

login() {
  curl -fsS "$base/api/auth/login" -H 'content-type: application/json' \
    -d '{"login": "andi", "password": "siaran-demo"}' \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

left=$seconds
round=0
status=0
while [ "$left" -gt 0 ]; do
  round=$((round + 1))
  budget=$(( left < chunk_max ? left : chunk_max ))
  left=$(( left - budget ))
  say "round $round: schemathesis for ${budget}s against $base"
  token=$(login)
  .venv-tools/bin/schemathesis run "$base/api/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing,stateful \
    --max-time "$budget" \
    --workers 2 \
    --header "Authorization: Bearer $token" \
    --request-timeout 30 \
    --report junit,vcr --report-dir "artifacts/contract/round-$round" \
    --no-color || status=$?
  [ "$status" -eq 0 ] || break
done
if grep -q '"level":"ERROR"' artifacts/contract/server.log; then
  say "the server logged errors meanwhile:"
  grep '"level":"ERROR"' artifacts/contract/server.log | tail -n 20 >&2
  status=1
fi
[ "$status" -eq 0 ] && say "contract holds: 0 failures in ${seconds}s" || say "contract broken (see above and artifacts/contract/)"
exit "$status"
