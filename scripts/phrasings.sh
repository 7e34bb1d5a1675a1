#!/usr/bin/env bash
# The in-project vs pretrained text encoder on held-out phrasings (docs/results/emoji-t2i/phrasings.{json,md}):
# the shipped emoji-t2i-vqkd (in-project encoder, 2,000 steps), the same at 800 steps (trained here,
# resumable, not shipped: runs/emoji/t2i-vqkd-800) and emoji-t2i-vqkd-minilm (all-MiniLM-L6-v2, 800
# steps), each sampling the prompts of docs/results/emoji-t2i/phrasings.jsonl with the same seeds.
# Needs DATA=emoji scripts/train.sh first (the tokenizer, the shipped bundles, the tiny CLIP).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
tessera_train_bin
R=runs/emoji
run="$R/t2i-vqkd-800"
if [ ! -d "$run/tokenizer" ]; then
  mkdir -p "$run/text"
  cp -r "$R/vqkd/tokenizer" "$R/vqkd/data.json" "$run/"
  cp "$R/t2i-vqkd/text/tokenizer.json" "$R/t2i-vqkd/text/words.json" "$run/text/"   # the shipped bundle's vocabulary
fi
"$BIN" train --run "$run" --tokenizer vqkd --stage ar --proposal-steps 800 --data emoji --classifier "$R/classifier" \
  --resume --teacher "$R/teacher-lite0" --text-encoder learned
[ -f "$run/bundle/manifest.json" ] || "$BIN" export --run "$run" --out "$run/bundle" --name emoji-t2i-vqkd-800steps
bash scripts/text-encoders.sh
"$BIN" eval-phrasings --bundle models/emoji-t2i-vqkd --bundle "$run/bundle" --bundle models/emoji-t2i-vqkd-minilm
