#!/usr/bin/env bash
# Builds the frontend into frontend/dist when it is missing or older than its sources (what
# `make run` calls). `FORCE=1` rebuilds regardless. Dependencies come from package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/../frontend"
say() { printf '\033[1;34m[frontend]\033[0m %s\n' "$*"; }

SOURCES=(src public index.html package.json package-lock.json vite.config.ts tsconfig.json tsconfig.app.json env.d.ts)

# npm ci when node_modules is missing or older than the lock file it was installed from.
install_deps() {
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    say "installing dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

stale() {
  [ "${FORCE:-0}" = 1 ] && return 0
  [ -f dist/index.html ] || return 0
  [ -n "$(find "${SOURCES[@]}" -newer dist/index.html -print -quit 2>/dev/null)" ]
}

if ! stale; then
  say "dist/ is up to date"
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing: run scripts/setup.sh" >&2; exit 1; }
install_deps
say "building dist/"
npm run build --silent -- --logLevel warn
# `vite build` rewrites dist/index.html; touch it so the staleness check compares against now.
touch dist/index.html
