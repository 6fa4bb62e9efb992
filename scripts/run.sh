#!/usr/bin/env bash
# `make run`: everything a fresh Debian 12 machine needs to serve Siaran on http://localhost:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;34m[run]\033[0m %s\n' "$*"; }

scripts/setup.sh
[ -f .env ] && { set -a; . ./.env; set +a; }

if [ -f frontend/package.json ]; then
  scripts/build-frontend.sh
fi

say "building the server (release)"
cargo build --release --locked -p siaran -p fake-midtrans --bins
bin=target/release/siaran

mkdir -p .siaran
"$bin" migrate
if [ ! -f .siaran/seeded ]; then
  say "first run: creating demo data"
  "$bin" generate-dummy-data | tee .siaran/demo-accounts.txt
  touch .siaran/seeded
fi

# Background processes this script started; stopped (SIGTERM: graceful) when it ends.
pids=()
stop_all() {
  for pid in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Without Midtrans keys, payments go to the fake Midtrans (fake-midtrans/): same protocol, local payment
# page, notifications back to this server. With keys (in .env or the environment), the real one.
payments="Midtrans (${MIDTRANS_SNAP_URL:-https://app.sandbox.midtrans.com})"
if [ -z "${MIDTRANS_SERVER_KEY:-}" ]; then
  random() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
  export MIDTRANS_SERVER_KEY="SB-Mid-server-local-$(random)"
  export MIDTRANS_CLIENT_KEY="SB-Mid-client-local-$(random)"
  http_port=${SIARAN_HTTP_ADDR:-0.0.0.0:8000}; http_port=${http_port##*:}
  addr_file=.siaran/fake-midtrans.addr
  rm -f "$addr_file"
  say "no MIDTRANS_SERVER_KEY: starting the fake Midtrans (log: .siaran/fake-midtrans.log)"
  target/release/fake-midtrans --addr 127.0.0.1:0 --addr-file "$addr_file" \
    --notification-url "http://127.0.0.1:$http_port/api/payments/midtrans/notification" \
    >.siaran/fake-midtrans.log 2>&1 &
  pids+=($!)
  for _ in $(seq 1 50); do [ -s "$addr_file" ] && break; sleep 0.2; done
  [ -s "$addr_file" ] || { echo "the fake Midtrans did not start; see .siaran/fake-midtrans.log" >&2; exit 1; }
  export MIDTRANS_SNAP_URL="http://$(cat "$addr_file")" MIDTRANS_API_URL="http://$(cat "$addr_file")"
  payments="the local fake Midtrans at $MIDTRANS_SNAP_URL (pay, deny or expire on its page)"
fi
mail_to=${SMTP_HOST:+SMTP $SMTP_HOST}
mail_to=${mail_to:-files in ${SIARAN_MAIL_DIR:-.siaran/mail}}

public_url=${SIARAN_PUBLIC_URL:-http://localhost:8000}
cat <<MSG

  Siaran is starting on $public_url
    API docs:    $public_url/api/docs
    RTMP ingest: rtmp://localhost:1935/live  (stream key from the dashboard)
    Demo logins: .siaran/demo-accounts.txt
    Payments:    $payments
    Email:       $mail_to

MSG
"$bin" serve &
pids+=($!)
wait "${pids[-1]}"
