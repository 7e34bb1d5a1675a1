#!/usr/bin/env bash
# The ONNX tools' Python environment ($TESSERA_ONNX_VENV: onnx, onnxruntime, numpy, safetensors from
# PyPI, pinned) and, with --web, ONNX Runtime Web for the browser peer (npm, scripts/onnx/web).
# Idempotent: a venv whose pinned set is installed is left alone.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
req="$ROOT/scripts/onnx/requirements.txt"
stamp="$TESSERA_ONNX_VENV/.requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  echo "onnx setup: pip install -r scripts/onnx/requirements.txt into $TESSERA_ONNX_VENV"
  python3 -m venv "$TESSERA_ONNX_VENV"
  "$TESSERA_ONNX_VENV/bin/pip" install --quiet -r "$req"
  cp "$req" "$stamp"
fi
if [ "${1:-}" = "--web" ]; then
  web="$ROOT/scripts/onnx/web"
  if [ ! -d "$web/node_modules/onnxruntime-web" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
    (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
