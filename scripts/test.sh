#!/usr/bin/env bash
# Every test: Rust unit/integration tests (with the pinned outputs of every shipped bundle and the
# bounded replay of the bundle fuzzer), the wasm build, wasm-bindgen tests of the wasm API in headless
# Chromium (wasm-pack test), and the headless-Chromium tests of the site and the npm package (WebGPU
# on SwiftShader + CPU, cross-device and native token agreement).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh

t0=$SECONDS
stamp() { echo "   ($(( SECONDS - t0 )) s so far)"; }

echo "== cargo tests (native, release profile: shares the compiled burn with the CLI)"
cargo build --release -p tessera-train   # the browser tests compare against the native CLI
bash scripts/text-encoders.sh            # shipped bundles' pretrained text encoder (not committed)
cargo test --release -p tessera -p tessera-train
stamp

echo "== ONNX export (ONNX Runtime gives Tessera's tokens and pixels)"
bash scripts/onnx/test.sh
stamp

echo "== wasm build"
bash scripts/build-web.sh
stamp

echo "== wasm-pack test (wasm-bindgen-test in headless Chromium, WebGPU and CPU; the browser build's profile)"
# (SwiftShader WebGPU and generation take longer than the runner's default 20 s per test)
(cd crate/tessera-wasm && WASM_BINDGEN_TEST_TIMEOUT=900 wasm-pack test --headless --chrome -- --profile wasm-release)
stamp

echo "== browser tests (headless Chromium: WebGPU on SwiftShader + CPU)"
cd tests/browser
node --test --test-concurrency=1 site.test.mjs package.test.mjs folder.test.mjs
stamp
