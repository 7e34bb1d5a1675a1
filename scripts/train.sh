#!/usr/bin/env bash
# Retrains the shipped model from scratch (or continues an interrupted run: checkpoints are
# resumed automatically), exports it to models/fmnist-vq-ar, evaluates it and renders samples.
# Extra arguments go to `tessera-train train` (e.g. --device wgpu, --proposal-steps 4000).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
RUN="${RUN:-runs/fmnist}"
OUT="${OUT:-models/fmnist-vq-ar}"
cargo build --release -p tessera-train
BIN="$CARGO_TARGET_DIR/release/tessera-train"
mkdir -p "$RUN"
"$BIN" train --run "$RUN" --resume "$@" 2>&1 | tee -a "$RUN/train.log"
"$BIN" export --run "$RUN" --out "$OUT"
"$BIN" eval --bundle "$OUT" --out "$OUT/eval.json" --recon-png "$OUT/reconstructions.png"
"$BIN" generate --bundle "$OUT" --count 8 --seed 0 --out "$OUT/samples.png"
python3 scripts/model_card.py "$OUT"
echo "trained, exported and evaluated: $OUT"
