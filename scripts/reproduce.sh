#!/usr/bin/env bash
# Reproduces the paper's Table 1 in miniature: `tessera-train table` trains VQGAN, FSQ, VQ-KD and
# Cluster with equal AR and NAR proposal networks for 3 seeds, plus the ablations (teacher:
# supervised vs MIM; codebook size 64 / 256 / 1024), evaluates every bundle with the shipped
# evaluator and writes docs/results/{table.json,table.md}, codebook t-SNE figures and sample grids.
# Resumable: run it again after a kill and it continues (checkpoints and eval.json under runs/table).
#   scripts/reproduce.sh                          # the default: preset small, sized for a 2-core CPU
#   scripts/reproduce.sh --preset full --device wgpu   # the shipped budgets and 10k samples, on a GPU
#   scripts/reproduce.sh --seeds 0 --ablations none    # a quicker single-seed table
#   DATA=emoji scripts/reproduce.sh               # the same on colour emoji (runs/table-emoji ->
#                                                 # docs/results/emoji): pretrained EfficientNet-Lite0
#                                                 # teacher, in-domain ViT teachers as the ablation
#   DATA=emoji-t2i scripts/reproduce.sh           # text to image on the emoji captions (after DATA=emoji:
#                                                 # its tokenizers are reused) -> docs/results/emoji-t2i
# Across machines: each finished (row, seed)'s eval.json lands in <out>/runs/ (commit it), and before
# leaving a sitting `python3 scripts/carry.py save runs/table-emoji docs/results/emoji --t2i docs/results/emoji-t2i`
# (and `save runs/table-emoji-t2i docs/results/emoji-t2i`) keeps the unfinished runs' checkpoints to commit;
# the next sitting restores both and resumes. `--max-runs N` stops after N new runs.
# Extra arguments go to `tessera-train table` (see `tessera-train table --help`).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
tessera_train_bin
ARGS=()
if [ "${DATA:-fashion-mnist}" = emoji ]; then
  # EMOJI_TABLE (env.sh): work folder and budgets. Each (row, seed)'s eval.json is also written to
  # docs/results/emoji/runs/ (commit it): a table continued on another machine restores those runs.
  # the teacher ablation at 3 seeds too: at one seed its differences were within the main rows' seed spread
  ARGS=("${EMOJI_TABLE[@]}" --out docs/results/emoji --ablations vqkd-vit,cluster-vit,vqkd-mim,cluster-mim --ablation-seeds 0,1,2)
  mkdir -p docs/results/emoji
  LOG="${LOG:-docs/results/emoji/reproduce.log}"
elif [ "${DATA:-fashion-mnist}" = emoji-t2i ]; then
  # Text to image: the same tokenizers (copied from runs/table-emoji, so run DATA=emoji first), AR
  # proposal networks conditioned on the captions through the in-project text encoder, 3 seeds,
  # evaluated on held-out captions with CLIPScore_tiny (models/clip-emoji, from DATA=emoji
  # scripts/train.sh); the ablation: the frozen pretrained all-MiniLM-L6-v2 text encoder on VQ-KD.
  ARGS=(--data emoji --evaluator models/evaluator-emoji --work runs/table-emoji-t2i --out docs/results/emoji-t2i
        --tokenizers-from runs/table-emoji --tokenizer-steps 1200 --proposal-steps 800 --samples-per-class 30 --grad-clip 1
        --text-encoder learned --proposals ar --clip models/clip-emoji --ablations vqkd-minilm)
  mkdir -p docs/results/emoji-t2i
  LOG="${LOG:-docs/results/emoji-t2i/reproduce.log}"
fi
mkdir -p docs/results
LOG="${LOG:-docs/results/reproduce.log}"
# Checkpoints carried over from an earlier sitting on another machine (scripts/carry.py: `save` them into
# the results folder and commit before leaving; they come back here where the work folder lacks them).
case "${DATA:-fashion-mnist}" in
  emoji) python3 scripts/carry.py restore runs/table-emoji docs/results/emoji ;;
  emoji-t2i)
    python3 scripts/carry.py restore runs/table-emoji docs/results/emoji
    python3 scripts/carry.py restore runs/table-emoji-t2i docs/results/emoji-t2i ;;
esac
echo "== $(date -u +%FT%TZ) $BIN table ${ARGS[*]} $*" >> "$LOG"
start=$(date +%s)
"$BIN" table "${ARGS[@]}" "$@" 2>&1 | grep --line-buffered -v XDG_RUNTIME_DIR | tee -a "$LOG"
echo "== finished in $(( $(date +%s) - start ))s" | tee -a "$LOG"
