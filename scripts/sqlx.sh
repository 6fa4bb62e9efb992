#!/usr/bin/env bash
# The checked query data in .sqlx/ (sqlx's offline mode, which builds use; see .cargo/config.toml).
#   scripts/sqlx.sh          migrate DATABASE_URL's database, re-check every query against it and
#                            rewrite .sqlx/ (run after changing a query or a migration; `make sqlx`)
#   scripts/sqlx.sh --check  the same, failing when .sqlx/ differs from what the schema gives
#                            (`make test` runs this)
# Installs sqlx-cli (the version of sqlx in Cargo.lock) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;34m[sqlx]\033[0m %s\n' "$*"; }

export DATABASE_URL=${DATABASE_URL:-postgres://siaran:siaran@127.0.0.1:5432/siaran}
version=$(awk '/^name = "sqlx"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ "$(sqlx --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  say "installing sqlx-cli $version"
  cargo install "sqlx-cli@$version" --locked --no-default-features --features postgres,rustls
fi

say "migrating $(printf '%s' "$DATABASE_URL" | sed -E 's#//[^@]*@#//#')"
sqlx migrate run --source migrations
if [ "${1:-}" = "--check" ]; then
  say "checking that .sqlx/ matches every query and the schema"
  cargo sqlx prepare --workspace --check -- --all-targets --locked
else
  cargo sqlx prepare --workspace -- --all-targets --locked
  say "wrote .sqlx/ ($(ls .sqlx | wc -l) queries)"
fi
