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
cargo build --release --locked --bin siaran
bin=target/release/siaran

mkdir -p .siaran
"$bin" migrate
if [ ! -f .siaran/seeded ]; then
  say "first run: creating demo data"
  "$bin" generate-dummy-data | tee .siaran/demo-accounts.txt
  touch .siaran/seeded
fi

public_url=${SIARAN_PUBLIC_URL:-http://localhost:8000}
cat <<MSG

  Siaran is starting on $public_url
    API docs:    $public_url/api/docs
    RTMP ingest: rtmp://localhost:1935/live  (stream key from the dashboard)
    Demo logins: .siaran/demo-accounts.txt

MSG
exec "$bin" serve
