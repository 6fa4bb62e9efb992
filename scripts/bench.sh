#!/usr/bin/env bash
# Runs a benchmark from benches/<name>/run.sh (see benches/README.md). Without a name, lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-${BENCH:-}}
if [ -z "$name" ]; then
  echo "benchmarks:"; for d in benches/*/; do [ -x "$d/run.sh" ] && echo "  $(basename "$d")"; done; exit 0
fi
[ -x "benches/$name/run.sh" ] || { echo "no benchmark named $name" >&2; exit 2; }
shift || true
exec "benches/$name/run.sh" "$@"
