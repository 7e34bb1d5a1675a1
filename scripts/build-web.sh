#!/usr/bin/env bash
# Builds the two wasm engines (size-optimised profile) and their JS bindings into web/package/dist:
#   tessera_wasm      the full engine: WebGPU + CPU
#   tessera_wasm_cpu  the CPU-only engine (no wgpu / cubecl / WGSL compiler): the worker loads it for
#                     device 'cpu', and for 'auto' on a browser without a WebGPU adapter
# then shrinks each with binaryen's wasm-opt -Oz (no fast-math: the same floating-point results).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
out=web/package/dist
mkdir -p "$out"
# The features a browser has had since 2021-23, and that rustc's wasm32 target emits by default.
WASM_OPT_FEATURES=(--enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue)
build() { # $1 = output name, $2... = cargo feature flags
  local name=$1; shift
  cargo build --profile wasm-release --target wasm32-unknown-unknown -p tessera-wasm "$@"
  wasm-bindgen --target web --out-dir "$out" --out-name "$name" \
    --remove-name-section --remove-producers-section \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/tessera_wasm.wasm"
  wasm-opt -Oz "${WASM_OPT_FEATURES[@]}" "$out/${name}_bg.wasm" -o "$out/${name}_bg.wasm.opt"
  mv "$out/${name}_bg.wasm.opt" "$out/${name}_bg.wasm"
}
build tessera_wasm
build tessera_wasm_cpu --no-default-features
ls -l "$out"/*.wasm
