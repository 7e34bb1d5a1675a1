#!/usr/bin/env bash
# Exports a class-conditional bundle to ONNX (AR step with KV cache, MaskGIT, decoder; f16 weights)
# for ONNX Runtime and other ONNX engines: scripts/export-onnx.sh models/emoji-vqkd out/emoji-vqkd-onnx
# The graphs' inputs and outputs are described in scripts/onnx/export.py and the written onnx.json;
# scripts/onnx/sampler.py (and web/sampler.js) sample from them exactly as Tessera does.
set -euo pipefail
source "$(dirname "$0")/env.sh"
[ $# -eq 2 ] || { echo "usage: scripts/export-onnx.sh BUNDLE_DIR OUT_DIR" >&2; exit 2; }
bash "$ROOT/scripts/onnx/setup.sh"
"$TESSERA_ONNX_VENV/bin/python" "$ROOT/scripts/onnx/export.py" "$1" "$2"
