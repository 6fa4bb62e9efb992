#!/usr/bin/env bash
# The frontend's part of `make test`: install, the API types checked against the OpenAPI
# document, component and store tests (vitest), type-check and build, then the browser scenario
# against a real Siaran (frontend/e2e/run.mjs).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/frontend"
say() { printf '\033[1;34m[frontend]\033[0m %s\n' "$*"; }

say "npm ci"
npm ci --no-audit --no-fund --loglevel=error

say "API types: frontend/src/api/schema.d.ts against the OpenAPI document"
"$root/scripts/api-types.sh" --check

say "vitest"
npx vitest run

say "build"
FORCE=1 "$root/scripts/build-frontend.sh"

# The scenario runs the debug server; after `make test`'s cargo step this build is a no-op.
say "cargo build: siaran and fake-midtrans (debug)"
(cd "$root" && cargo build --locked --quiet -p siaran -p fake-midtrans --bins)
say "end-to-end in headless Chromium"
SIARAN_BIN="$root/target/debug/siaran" node e2e/run.mjs
