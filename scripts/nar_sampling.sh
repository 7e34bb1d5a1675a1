#!/usr/bin/env bash
# Is a row's NAR FID_eval a matter of MaskGIT sampling settings? Re-evaluates the seed-0 bundles of
# the table (run scripts/reproduce.sh first) with other settings and writes
# docs/results/nar-sampling/{<row>-<variant>.json,README.md}. Resumable: existing JSONs are kept.
#   scripts/nar_sampling.sh                 # rows cluster and vqkd
#   ROWS="cluster vqkd vqgan" scripts/nar_sampling.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
tessera_train_bin
OUT=docs/results/nar-sampling
mkdir -p "$OUT"
declare -A VARIANTS=(
  [cn0]="--confidence-noise 0"
  [cn1.5]="--confidence-noise 1.5"
  [topp]="--top-k 100 --top-p 0.92"
  [steps32]="--steps 32"
)
for row in ${ROWS:-cluster vqkd}; do
  bundle="runs/table/$row/s0/bundle"
  [ -f "runs/table/$row/s0/eval.json" ] || { echo "nar_sampling: $row seed 0 is not evaluated yet (scripts/reproduce.sh)" >&2; exit 1; }
  cp "runs/table/$row/s0/eval.json" "$OUT/$row-default.json"
  for v in "${!VARIANTS[@]}"; do
    [ -f "$OUT/$row-$v.json" ] && continue
    echo "nar_sampling: $row $v (${VARIANTS[$v]})"
    # shellcheck disable=SC2086
    "$BIN" eval --bundle "$bundle" ${VARIANTS[$v]} --out "$OUT/$row-$v.json" 2>&1 | grep -v XDG_RUNTIME_DIR | tail -n 1
  done
done
python3 "$ROOT/scripts/nar_sampling_table.py" "$OUT"
