#!/usr/bin/env bash
# Builds the wasm module (size-optimised profile) and the JS bindings into web/package/dist.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
cargo build --profile wasm-release --target wasm32-unknown-unknown -p tessera-wasm
wasm-bindgen --target web --out-dir web/package/dist --out-name tessera_wasm \
  --remove-name-section --remove-producers-section \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/tessera_wasm.wasm"
ls -l web/package/dist/tessera_wasm_bg.wasm
