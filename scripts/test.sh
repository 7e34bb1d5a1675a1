#!/usr/bin/env bash
# Every test: Rust unit/integration tests, then the wasm build and the headless-Chromium tests
# (site on WebGPU and CPU, WebGPU-vs-CPU logits, cross-device token agreement, the npm package).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh

echo "== cargo tests (native, release profile: shares the compiled burn with the CLI)"
cargo test --release -p tessera -p tessera-train

echo "== wasm build"
bash scripts/build-web.sh

echo "== native reference tokens for the cross-device check"
mkdir -p tests/browser/out
cargo run --release -q -p tessera-train -- generate --bundle models/fmnist-vqkd --proposal ar --class Sneaker --count 4 --seed 123 \
  --out tests/browser/out/native.png --tokens-out tests/browser/out/native-tokens.json

echo "== browser tests (headless Chromium: WebGPU on SwiftShader + CPU)"
cd tests/browser
node --test --test-concurrency=1 site.test.mjs package.test.mjs
