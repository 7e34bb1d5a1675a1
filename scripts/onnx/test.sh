#!/usr/bin/env bash
# The ONNX export, tested (run by scripts/test.sh): every tokenizer kind's bundle (grey and colour)
# exported, then ONNX Runtime with Tessera's sampler must give the tokens `tessera-train generate`
# gives (AR and NAR, 3 seeds x 4 images) and the same pixels; bad inputs are refused with a message.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$ROOT"
bash scripts/onnx/setup.sh
PY="$TESSERA_ONNX_VENV/bin/python"
BIN="${BIN:-$CARGO_TARGET_DIR/release/tessera-train}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in fmnist-vqkd fmnist-fsq fmnist-vqgan emoji-cluster; do
  "$PY" scripts/onnx/export.py "models/$b" "$out/$b" >/dev/null
  "$PY" scripts/onnx/peer.py check "models/$b" "$out/$b" "$BIN" "$out/$b.json" >/dev/null
  "$PY" - "$out/$b.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = sum(c['images'] for c in r['cases']); same = sum(c['identical_token_grids'] for c in r['cases'])
print(f"onnx: {r['bundle']}: {same}/{n} token grids identical, pixels within {max(c['max_abs_pixel_diff'] for c in r['cases']):.1e}")
sys.exit(0 if r['ok'] else 1)
PY
done
# refused, with a message and exit status 1: a text-to-image bundle, a file whose sha256 differs
if "$PY" scripts/onnx/export.py models/emoji-t2i-vqkd "$out/t2i" 2>"$out/err"; then echo "onnx: a text bundle was exported" >&2; exit 1; fi
grep -q "text-to-image bundles are not exported" "$out/err"
mkdir "$out/bad" && cp models/fmnist-vqkd/* "$out/bad/" && printf 'x' >> "$out/bad/ar.safetensors"
if "$PY" scripts/onnx/export.py "$out/bad" "$out/bad-onnx" 2>"$out/err"; then echo "onnx: a corrupt bundle was exported" >&2; exit 1; fi
grep -q "sha256 differs from the manifest" "$out/err"
echo "onnx: ok"
