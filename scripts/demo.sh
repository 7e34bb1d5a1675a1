#!/usr/bin/env bash
# One command: install what is missing, build the wasm package, serve the site on 127.0.0.1.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
bash scripts/build-web.sh
[ -f models/fmnist-vqkd/manifest.json ] || { echo "models/fmnist-vqkd is missing: run scripts/train.sh" >&2; exit 1; }
PORT="${PORT:-8080}"
echo
echo "Tessera is served at: http://127.0.0.1:$PORT/"
echo "(Ctrl-C to stop; ?device=cpu or ?device=webgpu forces a device)"
exec python3 -m http.server "$PORT" --bind 127.0.0.1 --directory web/site
