#!/usr/bin/env bash
# `make test`: every test suite, against real PostgreSQL and Redis. What CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;34m[test]\033[0m %s\n' "$*"; }

scripts/setup.sh
export DATABASE_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}

say "lint: rustfmt and clippy"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
python3 scripts/import-graph.py src --check

say "SQL: every checked query and .sqlx/ against the migrated schema"
scripts/sqlx.sh --check

say "Rust: unit and integration tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

say "API contract: schemathesis against a real server (scripts/contract.sh)"
scripts/contract.sh "${CONTRACT_SECONDS:-150}"

say "fuzzing: every target briefly (make fuzz runs them long)"
scripts/fuzz.sh --short

if [ -f frontend/package.json ]; then
  say "frontend: unit and end-to-end tests"
  scripts/test-frontend.sh
fi
say "all tests passed"
