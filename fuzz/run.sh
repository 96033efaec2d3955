#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer on the stable toolchain and runs each for a bounded
# time. Usage: fuzz/run.sh [SECONDS_PER_TARGET] (default 30); FUZZ_TARGETS="roles http" picks
# targets. Prints the executions per target; exits 1 if any target found a crash, a timeout
# or an out-of-memory input (its reproducer is under fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")"

SECONDS_PER_TARGET="${1:-30}"
TARGETS="${FUZZ_TARGETS:-roles fixtures request http}"
# Its own target dir: coverage flags change every crate's build, so sharing the workspace's
# would rebuild both back and forth.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/portcullis/fuzz-target}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"

# What `cargo fuzz build -s none` passes, minus its nightly-only flags: SanitizerCoverage
# through LLVM's pass and options, which stable rustc accepts. An explicit `--target` keeps
# these flags off build scripts and proc macros.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cforce-frame-pointers"

echo "== building fuzz targets ($TRIPLE)"
# Not `--locked`: fuzz/Cargo.lock follows the workspace's dependencies, which change without
# this crate; cargo adds what a merge brings in and keeps every version it can.
cargo build --release --target "$TRIPLE" --bins

failed=()
summary=()
for t in $TARGETS; do
  bin="$CARGO_TARGET_DIR/$TRIPLE/release/$t"
  # New inputs go to a work corpus outside the repository; the committed seeds are read only.
  work="$CARGO_TARGET_DIR/corpus/$t"
  mkdir -p "$work" "artifacts/$t"
  log="$CARGO_TARGET_DIR/fuzz-$t.log"
  echo "== fuzzing $t for ${SECONDS_PER_TARGET}s"
  status=0
  "$bin" "$work" "corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=20 \
    -rss_limit_mb=2048 \
    -max_len=65536 \
    -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" \
    >"$log" 2>&1 || status=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  units="$(find "$work" -type f | wc -l)"
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "!! $t failed (exit $status); last lines of $log:"
    tail -40 "$log"
    summary+=("$(printf '%-9s %8s s  %12s execs  %8s exec/s  %6s inputs  FAILED' "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "${rate:-?}" "$units")")
  else
    summary+=("$(printf '%-9s %8s s  %12s execs  %8s exec/s  %6s inputs  ok' "$t" "$SECONDS_PER_TARGET" "${execs:-?}" "${rate:-?}" "$units")")
  fi
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz findings in: ${failed[*]} (reproducers under fuzz/artifacts/)"
  exit 1
fi
