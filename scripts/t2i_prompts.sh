#!/usr/bin/env bash
# The committed prompt -> samples grid of the shipped text-to-image bundle, failures included:
# docs/results/emoji-t2i/prompts-{ar,nar}.png (one row of 8 samples per prompt, seed 0) and
# prompts.md (each row's prompt and what the model could not read in it). Prompts: names seen in
# training, keyword-only and paraphrased phrasings, compositions of a colour and an object, a word
# training never showed, an emoji character, and the empty prompt (unconditional).
#   BUNDLE=models/emoji-t2i-vqkd scripts/t2i_prompts.sh          # -> prompts{.md,-ar.png,-nar.png}
#   BUNDLE=models/emoji-t2i-vqkd-minilm scripts/t2i_prompts.sh   # -> prompts-minilm{.md,-ar.png,-nar.png}
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
tessera_train_bin
BUNDLE="${BUNDLE:-models/emoji-t2i-vqkd}"
OUT=docs/results/emoji-t2i
mkdir -p "$OUT"
NAME=prompts
[ "$(basename "$BUNDLE")" = emoji-t2i-vqkd ] || NAME="prompts-${BUNDLE##*-t2i-vqkd-}"
PROMPTS=(
  "red apple" "cat with heart eyes" "grinning face" "rocket" "pizza" "dog face"
  "fruit" "happy" "an emoji of a smiling cat" "a picture of a green tree"
  "blue heart" "purple heart" "yellow star" "red car" "green apple" "blue fish"
  "zorblax" "🍎" "")
args=()
for p in "${PROMPTS[@]}"; do args+=(--prompt "$p"); done
{
  echo "# Prompt -> samples: $(basename "$BUNDLE")"
  echo
  echo "Written by \`scripts/t2i_prompts.sh\` (\`tessera-train generate --prompt ... --count 8 --seed 0\`): one row per prompt, top to"
  echo "bottom, in [$NAME-ar.png]($NAME-ar.png) (AR) and [$NAME-nar.png]($NAME-nar.png) (NAR). Successes and failures alike;"
  echo "the warnings are what the model reported about each prompt."
  echo
  echo "| row | prompt | kind |"
  echo "|---|---|---|"
} > "$OUT/$NAME.md"
kinds=(seen seen seen seen seen seen keyword keyword paraphrase paraphrase composition composition composition composition composition composition "unseen word" "emoji character" "empty (unconditional)")
for i in "${!PROMPTS[@]}"; do echo "| $((i + 1)) | \"${PROMPTS[$i]}\" | ${kinds[$i]} |" >> "$OUT/$NAME.md"; done
echo >> "$OUT/$NAME.md"
for p in ar nar; do
  [ -f "$BUNDLE/$p.safetensors" ] || continue
  "$BIN" generate --bundle "$BUNDLE" --proposal "$p" "${args[@]}" --count 8 --seed 0 --out "$OUT/$NAME-$p.png" --tokens-out "$OUT/$NAME-$p.json" 2> "$OUT/$NAME-$p.log"
done
{
  echo "Warnings (AR run):"
  echo
  echo '```'
  grep -v "^[0-9]* images" "$OUT/$NAME-ar.log" || true
  echo '```'
} >> "$OUT/$NAME.md"
rm -f "$OUT/$NAME"-*.log
echo "wrote $OUT/$NAME-ar.png, $NAME-nar.png, $NAME.md"
