#!/usr/bin/env bash
# Fuzzes bundle loading (manifest parsing + safetensors + configs + shapes, `tessera::bundle::fuzz_entry`)
# with libFuzzer through cargo-fuzz, for SECONDS (default 600), then prints executions and crashes.
#   scripts/fuzz.sh [SECONDS]        # e.g. scripts/fuzz.sh 3600
# The corpus (crate/tessera/fuzz/corpus/bundle) grows in place and is committed; crashes land in
# crate/tessera/fuzz/artifacts/bundle. cargo-fuzz needs nightly flags: RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. No sanitizer (`-s none`): panics, aborts, OOMs and timeouts are what
# the target looks for, and it runs several times faster.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SECONDS_TO_RUN="${1:-600}"
JOBS="${FUZZ_JOBS:-1}"
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --version 0.13.1 --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$HOME/.cache/tessera-fuzz-target"
corpus=crate/tessera/fuzz/corpus/bundle
seeds="$(mktemp -d)"
mkdir -p "$corpus" crate/tessera/fuzz/artifacts/bundle
# Seed inputs (every shipped manifest, a tiny valid bundle) from the replay test.
TESSERA_FUZZ_SEEDS="$seeds" cargo test -q --release -p tessera --test fuzz_replay >/dev/null
log="$(mktemp)"
(cd crate/tessera && cargo fuzz run bundle -s none --release -j "$JOBS" "../../$corpus" "$seeds" -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1) 2>&1 | tee "$log" | grep -E "^#[0-9]+.*(pulse|DONE)|ERROR|panicked" || true
execs=$(grep -h "stat::number_of_executed_units" "$log" | awk '{s += $2} END {print s + 0}')
crashes=$(find crate/tessera/fuzz/artifacts/bundle -type f | wc -l)
echo "fuzz: $execs executions in ${SECONDS_TO_RUN}s, corpus $(ls "$corpus" | wc -l) inputs, crashes: $crashes"
rm -rf "$seeds"
[ "$crashes" -eq 0 ]
