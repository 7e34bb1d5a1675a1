#!/usr/bin/env bash
# Reproduces every shipped bundle: the classifier, the supervised ViT teacher, then for each
# tokenizer the tokenizer and its AR and NAR proposal networks; each is exported to
# models/fmnist-<name>, evaluated and rendered, and models/index.json is refreshed. Every stage
# resumes from its last checkpoint, so re-running after a kill continues where it stopped.
#   ONLY="cluster vqkd" scripts/train.sh      # a subset (default: vq fsq vqkd cluster, the shipped ones)
#   ONLY="cluster-mim vqkd-mim" scripts/train.sh   # the same tokenizers on the self-supervised (MIM) teacher
#   TOKENIZER_STEPS=1200 PROPOSAL_STEPS=1600 scripts/train.sh   # budgets (defaults below)
# Extra arguments go to every `tessera-train train` call (e.g. --device wgpu on a GPU machine).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
cargo build --release -p tessera-train
BIN="${BIN:-$CARGO_TARGET_DIR/release/tessera-train}"
RUNS="${RUNS:-runs}"
ONLY="${ONLY:-vq fsq vqkd cluster}"
TOKENIZER_STEPS="${TOKENIZER_STEPS:-600}"
PROPOSAL_STEPS="${PROPOSAL_STEPS:-500}"
mkdir -p "$RUNS"
log() { tee -a "$RUNS/train.log"; }
base=(--classifier "$RUNS/classifier" --resume)
"$BIN" train --stage classifier "${base[@]}" "$@" 2>&1 | log
for name in $ONLY; do
  tok="${name%%-*}"                       # vq, fsq, vqkd, cluster
  teacher="$RUNS/teacher-vit"; kind=supervised
  [[ "$name" == *-mim ]] && { teacher="$RUNS/teacher-vit-mim"; kind=mim; }
  common=("${base[@]}" --teacher "$teacher")
  if [[ "$tok" == vqkd || "$tok" == cluster ]]; then
    "$BIN" train --stage teacher --teacher-kind "$kind" "${common[@]}" "$@" 2>&1 | log
  fi
  run="$RUNS/$name"
  out="models/fmnist-$name"
  steps=(--tokenizer-steps "$TOKENIZER_STEPS" --proposal-steps "$PROPOSAL_STEPS")
  # The VQ tokenizer and its AR network were trained in session 1 with 1200 / 1600 steps.
  [ "$tok" = vq ] && steps=(--tokenizer-steps 1200 --proposal-steps 1600)
  for stage in tokenizer ar; do
    "$BIN" train --run "$run" --tokenizer "$tok" --stage "$stage" "${steps[@]}" "${common[@]}" "$@" 2>&1 | log
  done
  "$BIN" train --run "$run" --tokenizer "$tok" --stage nar --tokenizer-steps "$TOKENIZER_STEPS" --proposal-steps "$PROPOSAL_STEPS" "${common[@]}" "$@" 2>&1 | log
  "$BIN" export --run "$run" --classifier "$RUNS/classifier" --out "$out" --name "fmnist-$name"
  "$BIN" eval --bundle "$out" --out "$out/eval.json" --recon-png "$out/reconstructions.png" 2>&1 | log
  for p in ar nar; do
    "$BIN" generate --bundle "$out" --proposal "$p" --count 8 --seed 0 --out "$out/samples-$p.png"
  done
  python3 scripts/model_card.py "$out"
  echo "trained, exported and evaluated: $out" | log
done
