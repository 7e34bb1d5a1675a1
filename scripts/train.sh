#!/usr/bin/env bash
# Reproduces every shipped bundle: the classifier, the supervised ViT teacher, then for each
# tokenizer (VQ, FSQ, VQ-KD, Cluster) the tokenizer and its AR and NAR proposal networks; each is
# exported to models/fmnist-<tokenizer>, evaluated and rendered. Every stage resumes from its last
# checkpoint, so re-running after a kill continues where it stopped.
#   ONLY="cluster vqkd" scripts/train.sh     # a subset of tokenizers
#   TOKENIZER_STEPS=1200 PROPOSAL_STEPS=1600 scripts/train.sh   # budgets (defaults below)
# Extra arguments go to every `tessera-train train` call (e.g. --device wgpu on a GPU machine).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
cargo build --release -p tessera-train
BIN="${BIN:-$CARGO_TARGET_DIR/release/tessera-train}"
RUNS="${RUNS:-runs}"
ONLY="${ONLY:-vq cluster vqkd fsq}"
TOKENIZER_STEPS="${TOKENIZER_STEPS:-600}"
PROPOSAL_STEPS="${PROPOSAL_STEPS:-500}"
mkdir -p "$RUNS"
common=(--classifier "$RUNS/classifier" --teacher "$RUNS/teacher-vit" --resume)
log() { tee -a "$RUNS/train.log"; }
"$BIN" train --stage classifier "${common[@]}" "$@" 2>&1 | log
"$BIN" train --stage teacher "${common[@]}" "$@" 2>&1 | log
for tok in $ONLY; do
  run="$RUNS/$tok"
  out="models/fmnist-$tok"
  # The VQ bundle's tokenizer and AR network were trained in session 1 with 1200 / 1600 steps.
  steps=(--tokenizer-steps "$TOKENIZER_STEPS" --proposal-steps "$PROPOSAL_STEPS")
  [ "$tok" = vq ] && steps=(--tokenizer-steps 1200 --proposal-steps 1600)
  for stage in tokenizer ar; do
    "$BIN" train --run "$run" --tokenizer "$tok" --stage "$stage" "${steps[@]}" "${common[@]}" "$@" 2>&1 | log
  done
  "$BIN" train --run "$run" --tokenizer "$tok" --stage nar --tokenizer-steps "$TOKENIZER_STEPS" --proposal-steps "$PROPOSAL_STEPS" "${common[@]}" "$@" 2>&1 | log
  "$BIN" export --run "$run" --classifier "$RUNS/classifier" --out "$out" --name "fmnist-$tok"
  "$BIN" eval --bundle "$out" --out "$out/eval.json" --recon-png "$out/reconstructions.png" 2>&1 | log
  for p in ar nar; do
    "$BIN" generate --bundle "$out" --proposal "$p" --count 8 --seed 0 --out "$out/samples-$p.png"
  done
  python3 scripts/model_card.py "$out"
  echo "trained, exported and evaluated: $out" | log
done
