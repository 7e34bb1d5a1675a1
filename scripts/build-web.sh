#!/usr/bin/env bash
# Builds the two wasm engines (size-optimised profile) and their JS bindings into web/package/dist:
#   tessera_wasm      the full engine: WebGPU + CPU
#   tessera_wasm_cpu  the CPU-only engine (no wgpu / cubecl / WGSL compiler): the worker loads it for
#                     device 'cpu', and for 'auto' on a browser without a WebGPU adapter
#   tessera_wasm_cpu_mt  the CPU-only engine on several threads, for cross-origin isolated pages
# (binaryen's wasm-opt is not run: measured on the CPU engine, -Oz / -Os / -O2 shrink the raw module by
# 8-11% but grow its gzip by 8-9%, 1.058 MB -> 1.146-1.155 MB; what a browser downloads is the gzip.)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
out=web/package/dist
mkdir -p "$out"
build() { # $1 = output name, $2 = cargo profile, $3... = cargo feature flags
  local name=$1 profile=$2; shift 2
  cargo build --profile "$profile" --target wasm32-unknown-unknown -p tessera-wasm "$@"
  wasm-bindgen --target web --out-dir "$out" --out-name "$name" \
    --remove-name-section --remove-producers-section \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$profile/tessera_wasm.wasm"
}
build tessera_wasm wasm-release
# The CPU engine is optimised for speed, not size (Cargo.toml: profile wasm-release-cpu): at
# opt-level "z" it ran AR 1.4-1.6x and decode 1.7x slower than the same code inside the full engine
# (LLVM's size-first inlining decisions differ with the module's contents; docs/perf.md).
build tessera_wasm_cpu wasm-release-cpu --no-default-features
# The threaded CPU engine: the CPU engine on a pool of wasm threads (wasm-bindgen-rayon), for pages that
# are cross-origin isolated (SharedArrayBuffer). Threads need std built with atomics: stable rustc with
# RUSTC_BOOTSTRAP=1 and -Z build-std (rust-src, setup.sh), a shared memory imported by every thread
# (max 2 GiB) and the TLS exports wasm-bindgen's thread support calls.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C target-feature=+atomics,+bulk-memory -C link-arg=--shared-memory \
  -C link-arg=--max-memory=2147483648 -C link-arg=--import-memory -C link-arg=--export=__wasm_init_tls \
  -C link-arg=--export=__tls_size -C link-arg=--export=__tls_align -C link-arg=--export=__tls_base" \
  build tessera_wasm_cpu_mt wasm-release-mt --no-default-features --features threads -Z build-std=std,panic_abort
ls -l "$out"/*.wasm
