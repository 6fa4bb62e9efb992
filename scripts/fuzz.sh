#!/usr/bin/env bash
# Fuzzes every target of fuzz/Cargo.toml (libFuzzer through cargo-fuzz), each starting from its
# committed corpus fuzz/corpus/<target>/. One build serves every target.
#
#   scripts/fuzz.sh            `make fuzz`: each target for FUZZ_SECONDS (default 3600) or
#                              FUZZ_RUNS executions (default 10,000,000), whichever comes first
#   scripts/fuzz.sh --short    `make test`: each target for FUZZ_SECONDS (default 60)
#   FUZZ_TARGETS="flv_tags"    only these targets
#
# New inputs libFuzzer finds go to fuzz/target/corpus-new/<target>/ (merge the useful ones into
# the corpus with `cargo fuzz cmin`); a crash stops the run with its input in
# fuzz/artifacts/<target>/ and fails the script: turn it into a regression test.
#
# Stable Rust only: `-s none` builds libFuzzer's coverage instrumentation without a sanitizer
# (AddressSanitizer needs nightly). Safe Rust needs none for memory errors; panics, overflows
# (debug assertions are on), stack overflows, timeouts and memory blow-ups are all caught.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1;34m[fuzz]\033[0m %s\n' "$*"; }

mode=long
if [ "${1:-}" = "--short" ]; then mode=short; fi
if [ "$mode" = short ]; then
  seconds=${FUZZ_SECONDS:-60}
  runs=${FUZZ_RUNS:--1}
else
  seconds=${FUZZ_SECONDS:-3600}
  runs=${FUZZ_RUNS:-10000000}
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd fuzz
say "building the fuzz targets (once for all)"
cargo fuzz build -s none
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}

summary=()
failed=0
for target in $targets; do
  corpus=corpus/$target
  new=target/corpus-new/$target
  mkdir -p "$corpus" "$new" "artifacts/$target"
  log=target/fuzz-$target.log
  say "$target: ${seconds}s$([ "$runs" -gt 0 ] && echo " or $runs executions") from $(ls "$corpus" | wc -l) corpus inputs"
  status=0
  # -rss_limit_mb: one input holding more than this is a bug (the ingest must not pin memory);
  # -timeout: one input taking longer is a hang.
  cargo fuzz run -s none "$target" "$new" "$corpus" -- \
    -max_total_time="$seconds" -runs="$runs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -print_pcs=0 >"$log" 2>&1 || status=$?
  executions=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true) | grep -o '[0-9]*$' | tail -n 1 || true)
  elapsed=$( (grep -o 'Done [0-9]* runs in [0-9]* second' "$log" || true) | grep -o '[0-9]* second' | grep -o '[0-9]*' | tail -n 1 || true)
  executions=${executions:-0}
  elapsed=${elapsed:-$seconds}
  rate=$(( executions / (elapsed > 0 ? elapsed : 1) ))
  if [ "$status" -eq 0 ]; then
    verdict="0 crashes"
  else
    verdict="FAILED (exit $status): see fuzz/$log and fuzz/artifacts/$target/"
    failed=1
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|deadly signal|out-of-memory|timeout' "$log" | head -n 10 >&2 || true
  fi
  line=$(printf '%-20s %12s executions in %5ss  %9s exec/s  %s' "$target" "$executions" "$elapsed" "$rate" "$verdict")
  say "$line"
  summary+=("$line")
done

say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for line in "${summary[@]}"; do say "$line"; done
exit "$failed"
